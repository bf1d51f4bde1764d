------------------------------------------------------------------------------
-- Automatic accrual from the application's purchases table (src/purchase_*.c)
------------------------------------------------------------------------------

-- Triggers run as the extension owner so that the application's role needs
-- no rights on loyalty's tables; the C code checks that the tracked-table id
-- it is given belongs to the table it fires on.
CREATE FUNCTION loyalty.purchase_insert() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_purchase_insert' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION loyalty.purchase_change() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_purchase_change' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Checks a purchases table and its columns against the calling role (its
-- TRIGGER privilege on the table), then writes the tracked_tables row as
-- the row's owner: the only way that row is written (src/app_tables.c).
CREATE FUNCTION loyalty._tracked_table_save(tbl regclass, program_id integer, member_column name,
											amount_column name, time_column name,
											reference_columns name[], status_column name,
											reversed_statuses text[], channel_column name,
											category_column name, store_column name)
	RETURNS integer
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_save' LANGUAGE C VOLATILE;

-- program_id NULL: every tracking of the table.
CREATE FUNCTION loyalty._tracked_table_deactivate(tbl regclass, program_id integer) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_deactivate' LANGUAGE C VOLATILE;

-- Why a tracked table cannot be read as configured now (NULL: it can).
CREATE FUNCTION loyalty._tracked_table_problem(track_id integer) RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_problem' LANGUAGE C STABLE;

-- Why the active rules of a tracked table's program can no longer read it
-- (a column a condition names is gone, or of a type conditions do not
-- compare; NULL: they can).  For the alter guard.
CREATE FUNCTION loyalty._rule_columns_problem(track_id integer) RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_rule_columns_problem' LANGUAGE C STABLE;

-- The triggers of one tracking of tbl (track_id NULL: of all), known by
-- their names, function and argument: a table tracked for several
-- programs has one set per tracking, named with its id.
CREATE FUNCTION loyalty._drop_triggers(tbl regclass, track_id integer) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
BEGIN
	-- the table's, and the statement triggers of its partitions (the row
	-- trigger's clones go with the table's)
	FOR t IN SELECT g.tgname, g.tgrelid::regclass AS rel FROM pg_trigger g
			  WHERE (g.tgrelid = tbl OR g.tgrelid IN (SELECT relid FROM pg_partition_tree(tbl)))
				AND g.tgparentid = 0
				AND g.tgname ~ '^loyalty_purchase_(insert|change|moves)_[0-9]+$'
				AND g.tgfoid IN ('loyalty.purchase_insert()'::regprocedure, 'loyalty.purchase_change()'::regprocedure)
				AND (g.tgrelid = tbl OR g.tgfoid = 'loyalty.purchase_insert()'::regprocedure)
				AND (track_id IS NULL
					 OR split_part(encode(g.tgargs, 'escape'), '\000', 1) = track_id::text)
			  ORDER BY g.tgrelid::regclass::text, g.tgname
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
	END LOOP;
END
$$;

-- A statement trigger on a partitioned table fires only for statements
-- that name it: an INSERT straight into a partition fires the partition's.
-- So every partition of a tracked table, at every level, gets the insert
-- trigger too (the row trigger is cloned to partitions by PostgreSQL).  An
-- UPDATE that moves a row to another partition fires only the old
-- partition's DELETE row trigger: the partitioned table and its partitioned
-- partitions get an UPDATE statement trigger that passes the new rows
-- through the insert trigger's function, which awards the moved ones
-- (src/purchase_insert.c).  Each tracking of the table has its own, named
-- with its id.  Called by track_purchases() and, for partitions
-- created or attached later, by the event trigger loyalty_partition_guard.
CREATE FUNCTION loyalty._partition_triggers(tbl regclass, track_id integer) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
BEGIN
	-- the insert trigger on every partition; the moves trigger on the table
	-- and every partitioned partition
	FOR t IN SELECT x.relid, g.name, g.on_insert
			   FROM pg_partition_tree(tbl) x JOIN pg_class c ON c.oid = x.relid
			  CROSS JOIN (VALUES ('loyalty_purchase_insert_' || track_id, true),
								 ('loyalty_purchase_moves_' || track_id, false)) AS g(name, on_insert)
			  WHERE CASE WHEN g.on_insert THEN x.relid <> tbl AND c.relkind IN ('r', 'p')
								 ELSE c.relkind = 'p' END
				AND NOT EXISTS (SELECT 1 FROM pg_trigger y WHERE y.tgrelid = x.relid AND y.tgname = g.name)
			  ORDER BY x.level, x.relid::regclass::text, g.name LOOP
		-- the event is a keyword written here, not text from a query: no
		-- text reaches the statement unquoted
		EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s'
					   ' REFERENCING NEW TABLE AS loyalty_new_purchases'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
					   t.name, CASE WHEN t.on_insert THEN 'INSERT' ELSE 'UPDATE' END,
					   t.relid::regclass, track_id);
	END LOOP;
END
$$;

CREATE FUNCTION loyalty.track_purchases(
	tbl regclass,
	member_column name,
	amount_column name,
	time_column name DEFAULT NULL,
	reference_columns name[] DEFAULT NULL,
	status_column name DEFAULT NULL,
	reversed_statuses text[] DEFAULT '{refunded,cancelled}',
	channel_column name DEFAULT NULL,
	category_column name DEFAULT NULL,
	store_column name DEFAULT NULL,
	program text DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	track_id integer;
BEGIN
	IF tbl IS NULL OR member_column IS NULL OR amount_column IS NULL THEN
		RAISE EXCEPTION 'table, member column and amount column are required' USING ERRCODE = '22004';
	END IF;
	-- reference_columns NULL: the primary key's.  The program's tracking of
	-- the table if it has one, else an untracked one it takes over (a table
	-- moved to another program), else a new one (docs/concepts.md)
	track_id := loyalty._tracked_table_save(tbl, p.id, member_column, amount_column, time_column,
											reference_columns, status_column,
											coalesce(reversed_statuses, '{}'), channel_column,
											category_column, store_column);
	PERFORM loyalty._drop_triggers(tbl, track_id);
	EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s'
				   ' REFERENCING NEW TABLE AS loyalty_new_purchases'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
				   'loyalty_purchase_insert_' || track_id, tbl, track_id);
	EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OR DELETE ON %s'
				   ' FOR EACH ROW EXECUTE FUNCTION loyalty.purchase_change(%L)',
				   'loyalty_purchase_change_' || track_id, tbl, track_id);
	PERFORM loyalty._partition_triggers(tbl, track_id);
	RETURN track_id;
END
$$;
COMMENT ON FUNCTION loyalty.track_purchases(regclass, name, name, name, name[], name, text[], name, name, name, text) IS
	'award points for the rows of an application table; returns the tracking id';

CREATE FUNCTION loyalty.untrack_purchases(tbl regclass, program text DEFAULT NULL) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	track_id integer;
BEGIN
	-- program NULL: every tracking of the table
	IF program IS NOT NULL THEN
		p := loyalty._program(program);
		SELECT x.id INTO track_id FROM loyalty.tracked_tables x
		 WHERE x.table_name = tbl AND x.program_id = p.id;
		IF track_id IS NULL THEN
			RETURN false;
		END IF;
	END IF;
	PERFORM loyalty._drop_triggers(tbl, track_id);
	-- the row stays (inactive): awards keep their link, and tracking again
	-- reuses the id so that no purchase is awarded twice
	RETURN loyalty._tracked_table_deactivate(tbl, p.id);
END
$$;
COMMENT ON FUNCTION loyalty.untrack_purchases(regclass, text) IS
	'stop awarding points for a table, in one program or all; earlier awards stay in the ledger';
