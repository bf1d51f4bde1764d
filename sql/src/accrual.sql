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

CREATE FUNCTION loyalty._tracked_table_deactivate(tbl regclass) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_deactivate' LANGUAGE C VOLATILE;

-- Why a tracked table cannot be read as configured now (NULL: it can).
CREATE FUNCTION loyalty._tracked_table_problem(track_id integer) RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_problem' LANGUAGE C STABLE;

CREATE FUNCTION loyalty._drop_triggers(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t name;
BEGIN
	FOR t IN SELECT tgname FROM pg_trigger
			  WHERE tgrelid = tbl AND tgname IN ('loyalty_purchase_insert', 'loyalty_purchase_change')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
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
	-- reference_columns NULL: the primary key's
	track_id := loyalty._tracked_table_save(tbl, p.id, member_column, amount_column, time_column,
											reference_columns, status_column,
											coalesce(reversed_statuses, '{}'), channel_column,
											category_column, store_column);
	PERFORM loyalty._drop_triggers(tbl);
	EXECUTE format('CREATE TRIGGER loyalty_purchase_insert AFTER INSERT ON %s'
				   ' REFERENCING NEW TABLE AS loyalty_new_purchases'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
				   tbl, track_id);
	EXECUTE format('CREATE TRIGGER loyalty_purchase_change AFTER UPDATE OR DELETE ON %s'
				   ' FOR EACH ROW EXECUTE FUNCTION loyalty.purchase_change(%L)',
				   tbl, track_id);
	RETURN track_id;
END
$$;
COMMENT ON FUNCTION loyalty.track_purchases(regclass, name, name, name, name[], name, text[], name, name, name, text) IS
	'award points for the rows of an application table; returns the tracking id';

CREATE FUNCTION loyalty.untrack_purchases(tbl regclass) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	PERFORM loyalty._drop_triggers(tbl);
	-- the row stays (inactive): awards keep their link, and tracking again
	-- reuses the id so that no purchase is awarded twice
	RETURN loyalty._tracked_table_deactivate(tbl);
END
$$;
COMMENT ON FUNCTION loyalty.untrack_purchases(regclass) IS
	'stop awarding points for a table; earlier awards stay in the ledger';

