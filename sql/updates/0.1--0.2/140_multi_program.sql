-- One table, several programs (issue #19): a table is tracked at most once
-- per program instead of once, each tracking with its own triggers, named
-- with its id.  untrack_purchases() and the functions under it take the
-- program (their new signatures are created with every function of sql/src
-- after this file).
ALTER TABLE loyalty.tracked_tables DROP CONSTRAINT tracked_tables_table_name_key;
ALTER TABLE loyalty.tracked_tables ADD CONSTRAINT one_tracking_per_program UNIQUE (table_name, program_id);

DROP FUNCTION loyalty.untrack_purchases(regclass);
DROP FUNCTION loyalty._drop_triggers(regclass);
DROP FUNCTION loyalty._tracked_table_deactivate(regclass);

-- The triggers that tracking created on the application's tables are
-- renamed as tracking names them now: loyalty_purchase_insert_<id>, and so
-- on.  Renaming the row trigger of a partitioned table renames its clones.
DO $$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT g.tgname, g.tgrelid::regclass AS rel,
					split_part(encode(g.tgargs, 'escape'), '\000', 1) AS track_id
			   FROM pg_catalog.pg_trigger g
			  WHERE g.tgparentid = 0
				AND g.tgname IN ('loyalty_purchase_insert', 'loyalty_purchase_change', 'loyalty_purchase_moves')
				AND g.tgfoid IN ('loyalty.purchase_insert()'::pg_catalog.regprocedure,
								 'loyalty.purchase_change()'::pg_catalog.regprocedure)
			  ORDER BY 2::text, 1 LOOP
		EXECUTE pg_catalog.format('ALTER TRIGGER %I ON %s RENAME TO %I', t.tgname, t.rel,
								  t.tgname || '_' || t.track_id);
	END LOOP;
END
$$;
