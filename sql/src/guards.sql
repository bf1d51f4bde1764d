------------------------------------------------------------------------------
-- Guards on the application's tables that loyalty is told about.  Event
-- triggers catch at the source what would otherwise break the purchase
-- triggers and the reports later: a tracked table or a customers table
-- dropped, a column of theirs dropped or changed to a type loyalty does not
-- read.  A renamed column is followed.  (The reports check again when they
-- read: event triggers can be disabled.)
------------------------------------------------------------------------------

-- A configured column name after a rename of attnum of relid: the new name
-- when the configured one no longer exists (a RENAME COLUMN renames one
-- column, so it was this one).
CREATE FUNCTION loyalty._renamed(relid oid, col name, attnum smallint) RETURNS name
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE WHEN col IS NULL OR EXISTS (SELECT 1 FROM pg_attribute a
											 WHERE a.attrelid = relid AND a.attname = col
											   AND a.attnum > 0 AND NOT a.attisdropped)
				THEN col
				ELSE (SELECT a.attname FROM pg_attribute a
					   WHERE a.attrelid = relid AND a.attnum = _renamed.attnum) END;

-- An earning rule's conditions after a rename of attnum of relid: each key
-- that is not a role of the table (roles) and names no column any more is
-- the renamed column (the active rules' keys named columns of the table).
CREATE FUNCTION loyalty._renamed_conditions(conditions jsonb, relid oid, attnum smallint, roles text[])
	RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	RETURN (SELECT jsonb_object_agg(CASE WHEN e.key = ANY (roles) OR octet_length(e.key) >= 64 THEN e.key
										 ELSE loyalty._renamed(relid, e.key::name, attnum)::text END,
									e.value)
			  FROM jsonb_each(conditions) AS e);

CREATE FUNCTION loyalty._alter_guard() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	c record;
	t record;
	problem text;
BEGIN
	FOR c IN SELECT DISTINCT d.objid, d.objsubid, d.object_type
			   FROM pg_event_trigger_ddl_commands() d
			  WHERE d.classid = 'pg_class'::regclass
				AND d.objid IN (SELECT x.table_name FROM loyalty.tracked_tables x
								UNION ALL SELECT x.customers_table FROM loyalty.kpi_settings x) LOOP
		IF c.object_type = 'table column' THEN
			UPDATE loyalty.tracked_tables x
			   SET member_column = loyalty._renamed(c.objid, x.member_column, c.objsubid::smallint),
				   amount_column = loyalty._renamed(c.objid, x.amount_column, c.objsubid::smallint),
				   time_column = loyalty._renamed(c.objid, x.time_column, c.objsubid::smallint),
				   status_column = loyalty._renamed(c.objid, x.status_column, c.objsubid::smallint),
				   channel_column = loyalty._renamed(c.objid, x.channel_column, c.objsubid::smallint),
				   category_column = loyalty._renamed(c.objid, x.category_column, c.objsubid::smallint),
				   store_column = loyalty._renamed(c.objid, x.store_column, c.objsubid::smallint),
				   reference_columns = ARRAY(SELECT loyalty._renamed(c.objid, r.col, c.objsubid::smallint)
											   FROM unnest(x.reference_columns) WITH ORDINALITY AS r(col, n)
											  ORDER BY r.n)
			 WHERE x.table_name = c.objid;
			UPDATE loyalty.kpi_settings x
			   SET customer_key_column = loyalty._renamed(c.objid, x.customer_key_column, c.objsubid::smallint)
			 WHERE x.customers_table = c.objid;
			-- and the conditions of the active rules that name it (their
			-- trigger checks them against every table the program tracks)
			UPDATE loyalty.earning_rules r
			   SET conditions = n.conditions
			  FROM (SELECT r2.id, loyalty._renamed_conditions(r2.conditions, c.objid, c.objsubid::smallint,
															   array_remove(ARRAY['amount',
																	CASE WHEN x.channel_column IS NOT NULL THEN 'channel' END,
																	CASE WHEN x.category_column IS NOT NULL THEN 'category' END,
																	CASE WHEN x.store_column IS NOT NULL THEN 'store' END],
																NULL)) AS conditions
					  FROM loyalty.earning_rules r2
					  JOIN loyalty.tracked_tables x ON x.program_id = r2.program_id
					 WHERE x.table_name = c.objid AND x.active AND r2.active
					   AND r2.conditions IS NOT NULL) AS n
			 WHERE r.id = n.id AND r.conditions IS DISTINCT FROM n.conditions;
		END IF;
		FOR t IN SELECT x.id, x.table_name FROM loyalty.tracked_tables x
				  WHERE x.table_name = c.objid AND x.active LOOP
			problem := coalesce(loyalty._tracked_table_problem(t.id), loyalty._rule_columns_problem(t.id));
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'table % is tracked by loyalty: %', t.table_name, problem
					USING ERRCODE = 'LY020',
						  DETAIL = 'Its purchase triggers and the reports read it as it was tracked.',
						  HINT = format('Track it again without that column (loyalty.track_purchases), or untrack it first (loyalty.untrack_purchases(%L)). Columns changed together are checked together: one ALTER TABLE can change several.',
										t.table_name::text);
			END IF;
		END LOOP;
		FOR t IN SELECT x.program_id, x.customers_table FROM loyalty.kpi_settings x
				  WHERE x.customers_table = c.objid LOOP
			problem := loyalty._kpi_customers_problem(t.program_id);
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'table % is the customers table of loyalty''s KPIs: %', t.customers_table, problem
					USING ERRCODE = 'LY020',
						  HINT = 'Name another table or none first: SELECT loyalty.set_kpi_customers(NULL, NULL, program => ...).';
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- A dropped table leaves no OID behind: a tracked table's row stays (its
-- awards link to it) with its last name, inactive; a customers table is
-- unset.
CREATE FUNCTION loyalty._drop_guard() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	-- any relation: a table may have become a view since it was named
	UPDATE loyalty.tracked_tables x
	   SET table_name = NULL, active = false, dropped_name = d.object_identity, dropped_at = now()
	  FROM pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND x.table_name = d.objid;
	UPDATE loyalty.kpi_settings x SET customers_table = NULL, customer_key_column = NULL
	  FROM pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND x.customers_table = d.objid;
END
$$;

-- Partitions follow their tracked table: one created (CREATE TABLE ...
-- PARTITION OF) or attached gets the statement triggers of every tracking
-- of the table; one detached loses them, so that inserts into it neither
-- earn nor fail.
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
			  WHERE g.tgname ~ '^loyalty_purchase_(insert|moves)_[0-9]+$'
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
CREATE EVENT TRIGGER loyalty_alter_guard ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION loyalty._alter_guard();
CREATE EVENT TRIGGER loyalty_drop_guard ON sql_drop
	EXECUTE FUNCTION loyalty._drop_guard();

