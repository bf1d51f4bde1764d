\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(49);

\ir lib/as_role.psql

SELECT has_role('loyalty_reader', 'CREATE EXTENSION made loyalty_reader');
SELECT has_role('loyalty_app', 'CREATE EXTENSION made loyalty_app');
SELECT has_role('loyalty_admin', 'CREATE EXTENSION made loyalty_admin');

CREATE ROLE t_reader IN ROLE loyalty_reader;
CREATE ROLE t_app IN ROLE loyalty_app;
CREATE ROLE t_admin IN ROLE loyalty_admin;
-- may use the schema, but has only what PUBLIC has on the functions
CREATE ROLE t_public;
GRANT USAGE ON SCHEMA loyalty TO t_public;

INSERT INTO loyalty.programs (code, name, is_default) VALUES ('shop', 'Shop', true);
SELECT loyalty.earn((loyalty.enroll('ann')).member_key, 100, 'a1') \g /dev/null

-- loyalty_reader: the views, nothing else
SELECT is(pg_temp.as_role('t_reader', format('SELECT * FROM loyalty.%I', v)), 'ok',
		  format('loyalty_reader reads loyalty.%s', v))
  FROM unnest('{member_summary,ledger_entries,tier_distribution,points_liability,points_liability_by_month,breakage_by_cohort,expiring_soon,leaderboard,program_kpis,retention}'::text[]) v;
SELECT is(pg_temp.as_role('t_reader', 'SELECT * FROM loyalty.members'),
		  '42501: permission denied for table members', 'loyalty_reader cannot read the tables');
SELECT is(pg_temp.as_role('t_reader', 'SELECT * FROM loyalty.ledger'),
		  '42501: permission denied for table ledger', 'loyalty_reader cannot read the ledger');
SELECT is(pg_temp.as_role('t_reader', $$SELECT loyalty.earn('ann', 5)$$),
		  '42501: permission denied for function earn', 'loyalty_reader cannot earn');
SELECT is(pg_temp.as_role('t_reader', $$SELECT loyalty.balance('ann')$$),
		  '42501: permission denied for function balance', 'loyalty_reader cannot call member functions');
-- (trigger functions run only as triggers: see PUBLIC below)
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	   WHERE p.pronamespace = 'loyalty'::regnamespace AND p.provolatile = 'v'
		 AND p.prorettype <> 'trigger'::regtype
		 AND has_function_privilege('loyalty_reader', p.oid, 'EXECUTE')$$,
	'loyalty_reader may call no volatile (writing) function');

-- loyalty_app: member functions and its own tracked purchases table
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.enroll('bob')$$), 'ok', 'loyalty_app enrolls');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.earn('bob', 50, 'b1')$$), 'ok', 'loyalty_app earns');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.earn(42::bigint, 50)$$),
		  'LY002: member "42" is not enrolled in loyalty program "shop"',
		  'loyalty_app reaches the text version through the anyelement wrapper');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.redeem('bob', 20, 'b2')$$), 'ok', 'loyalty_app redeems');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.adjust('bob', 5, 'goodwill')$$), 'ok', 'loyalty_app adjusts');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.transfer('bob', 'ann', 5)$$), 'ok', 'loyalty_app transfers');
SELECT is(pg_temp.as_role('t_app',
		  $q$DO $d$ BEGIN IF loyalty.balance('bob') <> 30 OR (loyalty.balance_detail('bob')).available <> 30
		  OR (SELECT count(*) FROM loyalty.statement('bob')) <> 4 OR loyalty.tier('bob') IS NOT NULL
		  OR loyalty.points_for(10) <> 10
		  THEN RAISE 'wrong'; END IF; END $d$$q$), 'ok',
		  'loyalty_app reads balance, balance_detail, statement, tier, points_for');
SELECT is(pg_temp.as_role('t_app', 'SELECT * FROM loyalty.rewards'), 'ok', 'loyalty_app reads the rewards catalog');
SELECT is(pg_temp.as_role('t_app', 'SELECT * FROM loyalty.ledger'),
		  '42501: permission denied for table ledger', 'loyalty_app cannot read the ledger directly');
SELECT is(pg_temp.as_role('t_app', $$UPDATE loyalty.ledger SET points = points + 1$$),
		  '42501: permission denied for table ledger', 'loyalty_app cannot edit the ledger');
SELECT is(pg_temp.as_role('t_app', $$INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at) VALUES (1, 'x', 1, 'earn', 5, '{5 until infinity}', now())$$),
		  '42501: permission denied for table ledger', 'loyalty_app cannot write ledger entries of its own');
SELECT is(pg_temp.as_role('t_app', $$UPDATE loyalty.members SET balance = '{}'$$),
		  '42501: permission denied for table members', 'loyalty_app cannot write balances');
SELECT is(pg_temp.as_role('t_app', $$UPDATE loyalty.programs SET name = 'x'$$),
		  '42501: permission denied for table programs', 'loyalty_app cannot configure programs');
SELECT is(pg_temp.as_role('t_app', 'SELECT * FROM loyalty.member_summary'),
		  '42501: permission denied for view member_summary', 'loyalty_app does not read the reports');
SELECT is(pg_temp.as_role('t_app', $$SELECT loyalty.run_maintenance()$$),
		  '42501: permission denied for function run_maintenance', 'loyalty_app does not run maintenance');

-- loyalty_admin: configuration, and tracking a table it may put triggers on
CREATE TABLE public.orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
ALTER TABLE public.orders OWNER TO t_app;
GRANT TRIGGER ON public.orders TO t_admin;
SELECT is(pg_temp.as_role('t_admin', $$
	INSERT INTO loyalty.programs (code, name) VALUES ('club', 'Club');
	UPDATE loyalty.programs SET points_per_unit = 2 WHERE code = 'shop';
	INSERT INTO loyalty.earning_rules (program_id, name, kind, points)
	SELECT id, 'welcome', 'first_purchase', 10 FROM loyalty.programs WHERE code = 'shop';
	INSERT INTO loyalty.tiers (program_id, name, rank) SELECT id, 'Base', 0 FROM loyalty.programs WHERE code = 'shop';
	INSERT INTO loyalty.rewards (program_id, code, name, cost) SELECT id, 'mug', 'Mug', 100 FROM loyalty.programs WHERE code = 'shop';
	INSERT INTO loyalty.event_rules (program_id, action, points) SELECT id, 'review', 5 FROM loyalty.programs WHERE code = 'shop';
	INSERT INTO loyalty.kpi_settings (program_id) SELECT id FROM loyalty.programs WHERE code = 'shop';
	$$), 'ok', 'loyalty_admin configures programs, earning rules, tiers, rewards, event rules, KPI settings');
SELECT is(pg_temp.as_role('t_admin', $$SELECT loyalty.track_purchases('public.orders', 'customer', 'amount')$$),
		  'ok', 'loyalty_admin tracks a table it may create triggers on');
SELECT is(pg_temp.as_role('t_admin', $$SELECT loyalty.run_maintenance(), loyalty.verify(), loyalty.refresh_reports()$$),
		  'ok', 'loyalty_admin runs maintenance, verify and refresh_reports');
SELECT is(pg_temp.as_role('t_reader', $$SELECT loyalty.refresh_reports()$$),
		  '42501: permission denied for function refresh_reports', 'loyalty_reader cannot refresh the reports');
SELECT is(pg_temp.as_role('t_admin', 'SELECT * FROM loyalty.points_liability'), 'ok',
		  'loyalty_admin reads the reports');
SELECT is(pg_temp.as_role('t_admin', $$SELECT loyalty.earn('ann', 5)$$),
		  '42501: permission denied for function earn', 'loyalty_admin does not move points');
SELECT is(pg_temp.as_role('t_admin', $$DELETE FROM loyalty.ledger$$),
		  '42501: permission denied for table ledger', 'loyalty_admin cannot write the ledger');

-- the application's purchase earns points through the triggers
SELECT is(pg_temp.as_role('t_app', $$INSERT INTO public.orders (customer, amount) VALUES ('bob', 20)$$),
		  'ok', 'loyalty_app inserts into its tracked table');
SELECT is(loyalty.balance('bob'), 30 + 2 * 20 + 10::bigint,
		  'the tracked insert earned points at the rate and the first-purchase bonus set by loyalty_admin');
SELECT is(pg_temp.as_role('t_app', $$UPDATE public.orders SET amount = 10 WHERE customer = 'bob'$$),
		  'ok', 'loyalty_app changes its purchase');
SELECT is(loyalty.balance('bob'), 30 + 2 * 10 + 10::bigint, 'the change took points back');

-- PUBLIC
SELECT is(pg_temp.as_role('t_public', $$SELECT loyalty.earn('ann', 5)$$),
		  '42501: permission denied for function earn', 'PUBLIC cannot earn');
SELECT is(pg_temp.as_role('t_public', $$SELECT loyalty.enroll('zed')$$),
		  '42501: permission denied for function enroll', 'PUBLIC cannot enroll');
SELECT results_eq(
	$$SELECT p.oid::regprocedure::text FROM pg_proc p
	   WHERE p.pronamespace = 'loyalty'::regnamespace
		 AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
										  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))$$,
	$$VALUES ('loyalty.purchase_change()')$$,
	'PUBLIC may execute no function of the extension but the row trigger purchase_change');
-- (PostgreSQL checks EXECUTE on it when it clones the row trigger to a new
-- partition of a tracked table: test/pgtap/partitions.sql, attacks.sql)
SELECT is(pg_temp.as_role('t_public', $$SELECT loyalty.purchase_change()$$),
		  '39P01: loyalty.purchase_change() must run as an AFTER UPDATE OR DELETE row trigger',
		  'PUBLIC cannot call it but as that trigger');
-- a function added to the API without a grant would be unusable
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	   WHERE p.pronamespace = 'loyalty'::regnamespace AND p.proname !~ '^_'
		 AND p.prorettype <> 'trigger'::regtype
		 AND p.proname NOT IN ('lots_in', 'lots_out', 'lots_recv', 'lots_send', 'activity_in',
							   'activity_out', 'activity_recv', 'activity_send')
		 AND NOT has_function_privilege('loyalty_reader', p.oid, 'EXECUTE')
		 AND NOT has_function_privilege('loyalty_app', p.oid, 'EXECUTE')
		 AND NOT has_function_privilege('loyalty_admin', p.oid, 'EXECUTE')$$,
	'every API function is granted to one of the roles');

SELECT * FROM finish();
ROLLBACK;
