-- 0.2 builds its install script from sql/src/, one file per concern, and
-- gathers every table and index in tables.sql.  Objects are created in
-- another order; none changes, so an installed 0.1 needs nothing for it.

