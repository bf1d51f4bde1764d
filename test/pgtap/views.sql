\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(34);

\ir lib/error_text.psql

-- The views answer as of now(): the data is placed relative to the start of
-- the current month (m0) and to now(), which is fixed in this transaction.
INSERT INTO loyalty.programs (code, name, currency, point_value, expiry_policy, expiry_interval, auto_enroll, is_default)
VALUES ('shop', 'Shop', 'EUR', 0.01, 'after', '1 year', false, true);
UPDATE loyalty.programs SET pending_interval = '3 days' WHERE code = 'shop';
INSERT INTO loyalty.programs (code, name, currency, point_value, expiry_policy, expiry_interval)
VALUES ('club', 'Club', 'USD', 0.05, 'inactivity', '6 months');
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend)
SELECT 1, t.* FROM (VALUES ('Bronze', 0, NULL::numeric), ('Silver', 1, 100), ('Gold', 2, 1000)) t;
CREATE TEMP TABLE t0 AS SELECT date_trunc('month', now()) AS m0;
SELECT loyalty.enroll(k) FROM unnest('{ann,bob,cat}'::text[]) k \g /dev/null
-- ann: 100 points that expired last month, 50 expiring within 30 days, 200
-- earned 10 days ago, 40 earned yesterday and pending for 2 more days
SELECT loyalty.earn('ann', 100, 'a1', m0 - interval '13 months' + interval '1 day') FROM t0 \g /dev/null
SELECT loyalty.earn('ann', 200, 'a2', now() - interval '10 days') \g /dev/null
SELECT loyalty.earn('ann', 50, 'a3', now() - interval '340 days') \g /dev/null
SELECT loyalty.earn('ann', 40, 'a4', now() - interval '1 day') \g /dev/null
CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric, at timestamptz, status text);
SELECT loyalty.track_purchases('orders', 'customer', 'amount', 'at', status_column => 'status') \g /dev/null
-- purchases on the 3rd of the months m0-3 and m0-2; zed and yan are customers, not members
INSERT INTO orders (customer, amount, at, status)
SELECT c, a, m0 + o * interval '1 month' + interval '2 days', s FROM t0,
 (VALUES ('bob', 150, -3, 'paid'), ('bob', 50, -2, 'paid'), ('cat', 1200, -3, 'paid'),
         ('cat', 80, -2, 'refunded'), ('zed', 10, -3, 'paid'), ('zed', 10, -2, 'paid'),
         ('yan', 10, -2, 'paid')) v(c, a, o, s);
SELECT count(*) FROM (SELECT loyalty.enroll('dan', 'club'), loyalty.enroll('eve', 'club')) x \g /dev/null
SELECT loyalty.earn('dan', 500, 'd1', now() - interval '8 months', 'club') \g /dev/null
SELECT loyalty.earn('eve', 70, 'e1', now() - interval '1 month', 'club') \g /dev/null
CREATE TABLE customers (id text PRIMARY KEY);
INSERT INTO customers VALUES ('ann'), ('bob'), ('cat'), ('zed'), ('yan'), ('xi');
SELECT loyalty.set_kpi_customers('customers', 'id', 'shop') \g /dev/null
UPDATE loyalty.kpi_settings SET active_days = 20 WHERE program_id = 1;
-- eve's last activity and settlement move back 7 months: her inactivity
-- deadline has passed and nothing has written the expiry yet
UPDATE loyalty.members SET last_activity_at = now() - interval '7 months',
						   settled_at = now() - interval '7 months'
 WHERE member_key = 'eve';

-- member_summary
SELECT results_eq(
	$$SELECT member_key COLLATE "default", available, pending, expiring_30d, debt, tier, lifetime_spend, lifetime_orders
		FROM loyalty.member_summary ORDER BY program_code DESC, member_key$$,
	$$VALUES ('ann', 250::bigint, 40::bigint, 50::bigint, 0::bigint, NULL::text, 0::numeric, 0::bigint),
			 ('bob', 200, 0, 0, 0, 'Silver', 200, 2),
			 ('cat', 1200, 0, 0, 0, 'Gold', 1200, 1),
			 ('dan', 0, 0, 0, 0, NULL, 0, 0),
			 ('eve', 0, 0, 0, 0, NULL, 0, 0)$$,
	'member_summary: available, pending, expiring in 30 days, tier and lifetime purchases');
SELECT is_empty(
	$$SELECT member_key FROM loyalty.member_summary s
	   WHERE s.available <> loyalty.balance(s.member_key, now(), s.program_code)
		  OR s.pending <> (loyalty.balance_detail(s.member_key, now(), s.program_code)).pending$$,
	'member_summary agrees with balance() and balance_detail() for every member, an unwritten inactivity expiry included');
SELECT is((SELECT last_activity_at FROM loyalty.member_summary WHERE member_key = 'bob'),
		  (SELECT m0 + interval '-2 months 2 days' FROM t0), 'member_summary: last activity');

-- ledger_entries
SELECT results_eq(
	$$SELECT program_code, kind, points, reference, expires_at, purchase_table
		FROM loyalty.ledger_entries WHERE member_key = 'bob' ORDER BY seq$$,
	$$SELECT 'shop', 'pending', p, r, m0 + o * interval '1 month' + interval '5 days' + interval '1 year',
			 'orders' FROM t0, (VALUES (150::bigint, '1', -3), (50, '2', -2)) v(p, r, o)$$,
	'ledger_entries: purchases with program, kind, reference, expiry (a year after the release) and table');
SELECT is((SELECT expires_at FROM loyalty.ledger_entries WHERE reference = 'd1'), NULL,
		  'ledger_entries: points that never expire have no expiry');
SELECT is((SELECT reason FROM loyalty.ledger_entries WHERE member_key = 'dan' AND kind = 'expire'),
		  'inactivity', 'ledger_entries: reason');
SELECT is((SELECT count(*) FROM loyalty.ledger_entries), (SELECT count(*) FROM loyalty.ledger),
		  'ledger_entries: one row per ledger entry');

-- tier_distribution
SELECT results_eq(
	$$SELECT program_code, tier, rank, members, share FROM loyalty.tier_distribution
	   ORDER BY program_code, rank NULLS LAST$$,
	$$VALUES ('club', NULL::text, NULL::integer, 2::bigint, 1.0000::numeric),
			 ('shop', 'Bronze', 0, 0, 0.0000), ('shop', 'Silver', 1, 1, 0.3333),
			 ('shop', 'Gold', 2, 1, 0.3333), ('shop', NULL, NULL, 1, 0.3333)$$,
	'tier_distribution: every tier of the ladder, members without a tier, shares');

-- points_liability
SELECT results_eq(
	$$SELECT program_code, currency, members, available_points, pending_points, debt_points,
			 liability_points, liability_value
		FROM loyalty.points_liability ORDER BY program_code$$,
	$$VALUES ('club', 'USD', 2::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0.00::numeric),
			 ('shop', 'EUR', 3, 1650, 40, 0, 1690, 16.90)$$,
	'points_liability: available, pending, debt, points and value per program');
SELECT is((SELECT sum(points) FROM loyalty.points_liability_by_month WHERE program_code = 'shop'),
		  1690::numeric, 'points_liability_by_month adds up to the program''s liability');
SELECT results_eq(
	$$SELECT available_points, pending_points, points, value FROM loyalty.points_liability_by_month
	   WHERE program_code = 'shop' AND expiry_month = (SELECT (m0 + interval '9 months')::date FROM t0)$$,
	$$VALUES (1350::numeric, 0::numeric, 1350::numeric, 13.50::numeric)$$,
	'points_liability_by_month: the purchases of one month expire together a year later');
SELECT is((SELECT pending_points FROM loyalty.points_liability_by_month
			WHERE program_code = 'shop' AND pending_points > 0), 40::numeric,
		  'points_liability_by_month: pending points');
SELECT is_empty($$SELECT 1 FROM loyalty.points_liability_by_month WHERE program_code = 'club'$$,
				'points_liability_by_month: points lost to inactivity are no liability');

-- breakage_by_cohort, as of refresh_reports()
SELECT is_empty('SELECT 1 FROM loyalty.breakage_by_cohort UNION ALL SELECT 1 FROM loyalty.retention',
				'breakage_by_cohort and retention: empty until refreshed');
SELECT loyalty.refresh_reports() \g /dev/null
SELECT results_eq(
	$$SELECT earned_points, expired_points, breakage_rate FROM loyalty.breakage_by_cohort
	   WHERE program_code = 'shop' AND cohort_month = (SELECT (m0 - interval '13 months')::date FROM t0)$$,
	$$VALUES (100::numeric, 100::numeric, 1.0000::numeric)$$,
	'breakage_by_cohort: a cohort that expired entirely');
SELECT results_eq(
	$$SELECT earned_points, expired_points, breakage_rate FROM loyalty.breakage_by_cohort
	   WHERE program_code = 'shop' AND cohort_month = (SELECT (m0 - interval '3 months')::date FROM t0)$$,
	$$VALUES (1350::numeric, 0::numeric, 0.0000::numeric)$$,
	'breakage_by_cohort: a cohort with nothing expired');
SELECT results_eq(
	$$SELECT earned_points, expired_points FROM loyalty.breakage_by_cohort
	   WHERE program_code = 'club' ORDER BY cohort_month$$,
	$$VALUES (500::numeric, 500::numeric), (70, 0)$$,
	'breakage_by_cohort: an inactivity expiry counts in the member''s own cohort');
SELECT is((SELECT sum(earned_points) FROM loyalty.breakage_by_cohort WHERE program_code = 'shop'),
		  1790::numeric, 'breakage_by_cohort: every earned point in some cohort');

-- two cohorts sharing one expiry instant share its expired points
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period)
VALUES ('year', 'Year end', 'period_end', 'year');
SELECT count(*) FROM (SELECT loyalty.enroll('gil', 'year')) x \g /dev/null
-- written directly: earned in March and May 2024, half spent in June, the
-- rest expired at the end of 2024
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT m.program_id, m.member_key, coalesce((SELECT max(x.seq) FROM loyalty.ledger x WHERE x.program_id = m.program_id AND x.member_key = m.member_key), 0)
	   + row_number() OVER (PARTITION BY m.program_id, m.member_key ORDER BY v.at), v.kind, v.points, v.lots::loyalty.lots, v.at::timestamptz
  FROM loyalty.members m,
	   (VALUES ('earn', 300, '{300 until 2025-01-01 00:00:00+00}', '2024-03-10'),
			   ('earn', 100, '{100 until 2025-01-01 00:00:00+00}', '2024-05-10'),
			   ('redeem', -200, '{200 until 2025-01-01 00:00:00+00}', '2024-06-01'),
			   ('expire', -200, '{200 until 2025-01-01 00:00:00+00}', '2025-01-01')) v(kind, points, lots, at)
 WHERE m.member_key = 'gil';
SELECT loyalty.refresh_reports() \g /dev/null
SELECT results_eq(
	$$SELECT cohort_month, earned_points, expired_points, breakage_rate FROM loyalty.breakage_by_cohort
	   WHERE program_code = 'year' ORDER BY cohort_month$$,
	$$VALUES ('2024-03-01'::date, 300::numeric, 150::numeric, 0.5000::numeric),
			 ('2024-05-01', 100, 50, 0.5000)$$,
	'breakage_by_cohort: points of one expiry instant shared in proportion');

-- expiring_soon
SELECT results_eq(
	$$SELECT program_code, member_key, points, available, reason FROM loyalty.expiring_soon$$,
	$$VALUES ('shop', 'ann', 50::bigint, 250::bigint, 'expiry')$$,
	'expiring_soon: the points expiring in the next 30 days');

-- leaderboard
SELECT results_eq(
	$$SELECT program_code, rank, member_key, points, spend, orders FROM loyalty.leaderboard
	   WHERE period = 'lifetime'$$,
	$$VALUES ('shop', 1::bigint, 'cat', 1200::bigint, 1200::numeric, 1::bigint),
			 ('shop', 2, 'bob', 200, 200, 2)$$,
	'leaderboard: lifetime ranking by purchase points');
SELECT is_empty($$SELECT 1 FROM loyalty.leaderboard WHERE period = 'month'$$,
				'leaderboard: nobody bought this month');
SELECT results_eq(
	$$SELECT member_key COLLATE "default", rank, points FROM loyalty.leaderboard(
		(SELECT (m0 - interval '2 months')::date FROM t0), (SELECT (m0 - interval '2 months')::date FROM t0))$$,
	$$VALUES ('bob', 1::bigint, 50::bigint)$$,
	'leaderboard(): one month, refunded purchases excluded');
SELECT is((SELECT count(*) FROM loyalty.leaderboard('-infinity', 'infinity', 1)), 1::bigint,
		  'leaderboard(): top limits the rows');
SELECT is(pg_temp.err($$SELECT * FROM loyalty.leaderboard('2026-02-01', '2026-01-01')$$),
		  '22023: leaderboard period is empty or null |  | Pass from_month <= to_month.',
		  'leaderboard(): an empty period is refused');

-- program_kpis
SELECT results_eq(
	$$SELECT program_code, members, customers, enrolled_customers, enrolment_rate, active_members,
			 activation_rate, buying_members, orders, spend, purchase_frequency, average_basket,
			 lifetime_spend, lifetime_buyers, customer_lifetime_value
		FROM loyalty.program_kpis WHERE program_code = 'shop'$$,
	$$VALUES ('shop', 3::bigint, 6::bigint, 3::bigint, 0.5000::numeric, 1::bigint, 0.3333::numeric,
			  2::bigint, 3::bigint, 1400::numeric, 1.5000::numeric, 466.67::numeric, 1400::numeric,
			  2::bigint, 700.00::numeric)$$,
	'program_kpis: enrolment, activation (20 days from kpi_settings), frequency, basket, lifetime value');
SELECT results_eq(
	$$SELECT customers, enrolment_rate, members, active_members, note FROM loyalty.program_kpis
	   WHERE program_code = 'club'$$,
	$$VALUES (NULL::bigint, NULL::numeric, 2::bigint, 0::bigint,
			  'enrolment rate needs a customers table: loyalty.set_kpi_customers()')$$,
	'program_kpis: without a customers table the enrolment columns are NULL and the note says why');
SELECT is((SELECT active_members FROM loyalty.program_kpis(days => 100000, program => 'club')), 2::bigint,
		  'program_kpis(): days overrides kpi_settings');
SELECT is((SELECT buying_members FROM loyalty.program_kpis(months => 1, program => 'shop')), 0::bigint,
		  'program_kpis(): months narrows the purchase window');

-- retention
SELECT results_eq(
	$$SELECT period_start, customer_group, customers, retained, retention_rate FROM loyalty.retention
	   WHERE program_code = 'shop' AND period_start >= (SELECT (m0 - interval '3 months')::date FROM t0)$$,
	$$SELECT (m0 + o * interval '1 month')::date, g, c, r, rate FROM t0,
		(VALUES (-3, 'member', 2::bigint, 1::bigint, 0.5000::numeric), (-3, 'non_member', 1, 1, 1.0000),
				(-2, 'member', 1, 0, 0.0000), (-2, 'non_member', 2, 0, 0.0000)) v(o, g, c, r, rate)$$,
	'retention: members and non-members who bought again the next month; refunds do not count');
SELECT is((SELECT count(*) FROM loyalty.retention WHERE program_code = 'shop'
			AND period_start >= (SELECT (m0 - interval '1 month')::date FROM t0)), 0::bigint,
		  'retention: a month whose next month has not ended is not listed');
SELECT is_empty($$SELECT 1 FROM loyalty.retention WHERE program_code = 'club'$$,
				'retention: nothing for a program without tracked purchases');
SELECT is((SELECT count(*) FROM loyalty.retention('month', 12) r
			 JOIN loyalty.retention v USING (program_code, period_start, customer_group)
			WHERE (r.customers, r.retained) = (v.customers, v.retained)), 4::bigint,
		  'retention: the materialized view holds what retention() returns');
SELECT is(pg_temp.err($$SELECT * FROM loyalty.retention('fortnight')$$),
		  '22023: unknown period "fortnight" |  | Use week, month, quarter or year.',
		  'retention(): an unknown period is refused');

SELECT * FROM finish();
ROLLBACK;
