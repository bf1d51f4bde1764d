-- Roles.  Roles belong to the cluster, not the database: they are created
-- here only when missing and survive DROP EXTENSION; the grants below live
-- with the extension's objects and are made again by every CREATE EXTENSION.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['loyalty_reader', 'loyalty_app', 'loyalty_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

GRANT USAGE ON SCHEMA loyalty TO loyalty_reader, loyalty_app, loyalty_admin;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA loyalty FROM PUBLIC;

-- Reports.  Functions called by a view are checked against the caller, so
-- the readers of the views need the read-only functions they use.
GRANT SELECT ON loyalty.member_summary, loyalty.ledger_entries, loyalty.tier_distribution,
	loyalty.points_liability, loyalty.points_liability_by_month, loyalty.breakage_by_cohort,
	loyalty.expiring_soon, loyalty.leaderboard, loyalty.program_kpis, loyalty.retention
	TO loyalty_reader, loyalty_admin;

-- Configuration: loyalty_admin.  track_purchases() runs as the caller, who
-- must also be allowed to create triggers on the application's table.
-- Rows that name relations are written only through the functions that
-- check them: tracked_tables by track_purchases()/untrack_purchases(),
-- kpi_settings.customers_table and customer_key_column by
-- set_kpi_customers().
GRANT SELECT, INSERT, UPDATE ON loyalty.programs TO loyalty_admin;
GRANT SELECT ON loyalty.tracked_tables TO loyalty_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.earning_rules, loyalty.tiers, loyalty.rewards,
	loyalty.event_rules TO loyalty_admin;
GRANT SELECT, DELETE, INSERT (program_id, active_days, window_months),
	UPDATE (active_days, window_months) ON loyalty.kpi_settings TO loyalty_admin;
GRANT SELECT ON loyalty.members, loyalty.ledger, loyalty.tier_history, loyalty.tier_events,
	loyalty.reward_redemptions, loyalty.causes, loyalty.events TO loyalty_admin;
-- the progress of maintenance it runs (pg_stat_activity shows it the rest
-- only with pg_read_all_stats)
GRANT SELECT ON loyalty.maintenance_progress TO loyalty_admin;
GRANT USAGE ON SEQUENCE loyalty.programs_id_seq,
	loyalty.earning_rules_id_seq, loyalty.tiers_id_seq, loyalty.rewards_id_seq,
	loyalty.event_rules_id_seq TO loyalty_admin;

-- The application reads the catalog it shows to members and handles the
-- tier outbox.
GRANT SELECT ON loyalty.programs, loyalty.rewards, loyalty.tiers, loyalty.event_rules
	TO loyalty_app;
GRANT SELECT, UPDATE (handled_at) ON loyalty.tier_events TO loyalty_app;

DO $$
DECLARE
	g record;
	f regprocedure;
BEGIN
	FOR g IN SELECT * FROM (VALUES
		-- pure functions on the types and on time: harmless, used by the
		-- views and by the invoker-rights wrappers
		('lots_eq,lots_ne,lots_add,lots_add_pending,lots_spend,lots_expire,lots_settle,'
		 'lots_expire_all,lots_next_event,lots_settlement,lots_merge,lots_subtract,lots_apply,lots_available,'
		 'lots_pending,lots_expiring,lots_total,lots_points,lots_debt,lots_entries,replay,'
		 'activity_eq,activity_ne,activity_add,activity_sum,activity_total,activity_buckets,'
		 'activity_month,tz_add,interval_sign,valid_time_zone,period_end,expiry_for,lots_expire_usable,'
		 'inactivity_deadline', 'loyalty_reader,loyalty_app,loyalty_admin'),
		-- what the views call (_lots_now answers what member_summary shows
		-- these roles anyway)
		('expiring_points,leaderboard,program_kpis,retention,_lots_now,_inactive_after',
		 'loyalty_reader,loyalty_admin'),
		-- member functions
		('enroll,earn,redeem,adjust,balance,balance_detail,member_lots,expiring,statement,tier,'
		 'tier_progress,set_tier,redeem_reward,cancel_redemption,transfer,donate,register_cause,'
		 'record_event,points_for,expiring_points,_program', 'loyalty_app'),
		-- configuration and operation
		('track_purchases,untrack_purchases,_program,_drop_triggers,_partition_triggers,purchase_insert,'
		 'purchase_change,run_maintenance,refresh_reports,verify,points_for,_tracked_table_save,'
		 '_tracked_table_deactivate,set_kpi_customers,_kpi_customers_save', 'loyalty_admin'))
		AS x(funcs, roles)
	LOOP
		FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
				  WHERE p.pronamespace = 'loyalty'::regnamespace
					AND p.proname = ANY (string_to_array(g.funcs, ','))
		LOOP
			EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, g.roles);
		END LOOP;
	END LOOP;
END
$$;

-- PostgreSQL clones the row trigger of a tracked partitioned table to each
-- partition created in it or attached to it, and checks EXECUTE on its
-- function for the role that runs the DDL: the table's owner, often the
-- application's own role.  The function cannot be called but as an AFTER
-- UPDATE OR DELETE row trigger, and refuses any table but the one its
-- tracked-table id names (or a partition of it): on any other table it does
-- nothing (test/pgtap/attacks.sql, section 11).  The statement trigger
-- function purchase_insert stays revoked: the partition guard adds it, as
-- the extension owner.
GRANT EXECUTE ON FUNCTION loyalty.purchase_change() TO PUBLIC;
