-- Partitioned purchases tables: every partition gets the insert trigger
-- (an INSERT straight into a partition fires only the partition's statement
-- triggers), partitioned ones an UPDATE statement trigger for rows moved to
-- another partition, and an event trigger keeps partitions created,
-- attached or detached later in line (docs/concepts.md, Automatic accrual).
-- Only what this step runs is defined here (the event trigger and the
-- triggers of tables tracked before); track_purchases and _drop_triggers
-- come with the rest of sql/src at the end of this script (the Makefile).

-- A statement trigger on a partitioned table fires only for statements
-- that name it: an INSERT straight into a partition fires the partition's.
-- So every partition of a tracked table, at every level, gets the insert
-- trigger too (the row trigger is cloned to partitions by PostgreSQL).  An
-- UPDATE that moves a row to another partition fires only the old
-- partition's DELETE row trigger: the partitioned table and its partitioned
-- partitions get an UPDATE statement trigger that passes the new rows
-- through the insert trigger's function, which awards the moved ones
-- (src/purchase_insert.c).  Called by track_purchases() and, for partitions
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
	FOR t IN SELECT x.relid, g.name, g.event
			   FROM pg_partition_tree(tbl) x JOIN pg_class c ON c.oid = x.relid
			  CROSS JOIN (VALUES ('loyalty_purchase_insert', 'INSERT'),
								 ('loyalty_purchase_moves', 'UPDATE')) AS g(name, event)
			  WHERE CASE g.event WHEN 'INSERT' THEN x.relid <> tbl AND c.relkind IN ('r', 'p')
								 ELSE c.relkind = 'p' END
				AND NOT EXISTS (SELECT 1 FROM pg_trigger y WHERE y.tgrelid = x.relid AND y.tgname = g.name)
			  ORDER BY x.level, x.relid::regclass::text, g.name LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s'
					   ' REFERENCING NEW TABLE AS loyalty_new_purchases'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
					   t.name, t.event, t.relid::regclass, track_id);
	END LOOP;
END
$$;

-- Partitions follow their tracked table: one created (CREATE TABLE ...
-- PARTITION OF) or attached gets the statement triggers; one detached loses
-- them, so that inserts into it neither earn nor fail.
CREATE FUNCTION loyalty._partition_guard() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	t record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d
					WHERE d.classid = 'pg_class'::regclass AND d.object_type IN ('table', 'table column')) THEN
		RETURN;
	END IF;
	FOR t IN SELECT x.id, x.table_name FROM loyalty.tracked_tables x
			   JOIN pg_class c ON c.oid = x.table_name
			  WHERE x.active AND c.relkind = 'p' LOOP
		PERFORM loyalty._partition_triggers(t.table_name, t.id);
	END LOOP;
	FOR t IN SELECT g.tgname, g.tgrelid::regclass AS rel FROM pg_trigger g
			  WHERE g.tgname IN ('loyalty_purchase_insert', 'loyalty_purchase_moves')
				AND g.tgfoid = 'loyalty.purchase_insert()'::regprocedure
				AND NOT EXISTS (SELECT 1 FROM loyalty.tracked_tables x
								 WHERE x.id = split_part(encode(g.tgargs, 'escape'), '\000', 1)::integer
								   AND x.table_name IS NOT NULL
								   AND (x.table_name = g.tgrelid
										OR g.tgrelid IN (SELECT relid FROM pg_partition_tree(x.table_name))))
				AND EXISTS (SELECT 1 FROM loyalty.tracked_tables x
							 WHERE x.id = split_part(encode(g.tgargs, 'escape'), '\000', 1)::integer
							   AND x.table_name IS NOT NULL AND x.table_name <> g.tgrelid) LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
	END LOOP;
END
$$;

CREATE EVENT TRIGGER loyalty_partition_guard ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
	EXECUTE FUNCTION loyalty._partition_guard();

REVOKE EXECUTE ON FUNCTION loyalty._partition_triggers(regclass, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION loyalty._partition_guard() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._partition_triggers(regclass, integer) TO loyalty_admin;

-- tables tracked before: their partitions get the triggers now
SELECT loyalty._partition_triggers(x.table_name, x.id)
  FROM loyalty.tracked_tables x JOIN pg_catalog.pg_class c ON c.oid = x.table_name
 WHERE x.active AND c.relkind = 'p';
