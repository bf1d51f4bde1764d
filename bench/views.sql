-- The reporting views at size: :members members (default 1,000,000) with
-- about 20 ledger entries each, a tracked orders table and a customers
-- table, then each view's time.  Run by bench/views; psql variable members.
-- Rows are written set-based, straight into the tables, and agree with the
-- members' stored lots, so verify() stays empty.
\set ON_ERROR_STOP 1
\if :{?members}
\else
\set members 1000000
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS loyalty;
SET TimeZone = 'UTC';
\timing on

INSERT INTO loyalty.programs (id, code, name, currency, point_value, expiry_policy, expiry_interval,
							  auto_enroll, is_default)
VALUES (1, 'bench', 'Bench', 'EUR', 0.01, 'after', '12 months', false, true);
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend)
VALUES (1, 'Bronze', 0, NULL), (1, 'Silver', 1, 300), (1, 'Gold', 2, 600);

-- Member i buys in 13 slots 56 days apart over the last two years; in slot
-- k at at(i, k) for p(i, k) points (amount = points).  The first lot is
-- redeemed whole just after the second purchase (FIFO takes it); lots
-- older than a year have expired; every other member got 10 points of
-- goodwill 3 days ago.  The purchases go in slot-major order, so that
-- effective_at follows the physical order as in a live ledger.
-- the benchmark's "now": midnight before the run
SELECT date_trunc('day', now()) AS t_now,
	   (date_trunc('month', now()) - interval '11 months')::date AS window_from \gset
CREATE SCHEMA bench;
CREATE FUNCTION bench.at(i bigint, k integer, n bigint) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN :'t_now'::timestamptz - interval '728 days'
		   + (k - 1) * interval '56 days' + (i * 56 * 86400 / n) * interval '1 second';
CREATE FUNCTION bench.p(i bigint, k integer) RETURNS bigint
	LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 5 + (i * 7 + k * 13) % 96;
CREATE AGGREGATE bench.lots(bigint, timestamptz) (
	SFUNC = loyalty.lots_add, STYPE = loyalty.lots, INITCOND = '{}');
CREATE AGGREGATE bench.activity(date, numeric, bigint, bigint) (
	SFUNC = loyalty.activity_add, STYPE = loyalty.activity, INITCOND = '{}');

CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL,
					 ordered_at timestamptz NOT NULL);
INSERT INTO orders
SELECT (k - 1) * :members + i, 'm' || i, bench.p(i, k), bench.at(i, k, :members)
  FROM generate_series(1, 13) k
 CROSS JOIN LATERAL generate_series(1::bigint, :members + 0 * k) i;
-- customers who are not members, two purchases each, for retention
INSERT INTO orders
SELECT 13 * :members + (k - 1) * (:members / 2) + i, 'c' || i, 20, bench.at(i * 2, 10 + k, :members)
  FROM generate_series(1, 2) k
 CROSS JOIN LATERAL generate_series(1::bigint, :members / 2 + 0 * k) i;
CREATE INDEX orders_ordered_at ON orders (ordered_at);
CREATE TABLE customers (key text PRIMARY KEY);
INSERT INTO customers SELECT 'm' || i FROM generate_series(1, :members) i
UNION ALL SELECT 'c' || i FROM generate_series(1, :members / 2) i;

INSERT INTO loyalty.members (program_id, member_key, balance, enrolled_at, last_activity_at,
							 first_purchase_at, tier, activity, tier_since, tier_valid_until,
							 tier_review_at)
SELECT 1, 'm' || i, b.lots, bench.at(i, 1, :members) - interval '1 day',
	   -- the goodwill 3 days ago comes after the last purchase, except for
	   -- the members whose slots fall in the last 3 days of the 56
	   greatest(bench.at(i, 13, :members),
				CASE WHEN i % 2 = 0 THEN :'t_now'::timestamptz - interval '3 days' END),
	   bench.at(i, 1, :members), t.tier, b.activity, :'t_now'::timestamptz - interval '30 days',
	   CASE WHEN t.tier <> 'Bronze' THEN :'t_now'::timestamptz + interval '11 months' END,
	   CASE WHEN t.tier <> 'Bronze' THEN :'t_now'::timestamptz + interval '11 months' END
  FROM generate_series(1::bigint, :members) i
 CROSS JOIN LATERAL (
	SELECT loyalty.lots_merge(
			   bench.lots(bench.p(i, k), bench.at(i, k, :members) + interval '12 months')
				   FILTER (WHERE k > 1 AND bench.at(i, k, :members) + interval '12 months' > :'t_now'),
			   CASE WHEN i % 2 = 0
					THEN loyalty.lots_add('{}', 10, :'t_now'::timestamptz + interval '12 months' - interval '3 days')
					ELSE '{}' END) AS lots,
		   bench.activity(bench.at(i, k, :members)::date, bench.p(i, k), 1, bench.p(i, k)) AS activity
	  FROM generate_series(1, 13) k) b
 CROSS JOIN LATERAL (
	SELECT CASE WHEN s.spend >= 600 THEN 'Gold' WHEN s.spend >= 300 THEN 'Silver' ELSE 'Bronze' END
	  FROM loyalty.activity_sum(b.activity, :'window_from', 'infinity') s) AS t(tier);

-- the orders table is tracked (after the load: its rows are in the ledger below)
SELECT loyalty.track_purchases('orders', 'customer', 'amount', 'ordered_at') AS track \gset
SELECT loyalty.set_kpi_customers('customers', 'key') \g /dev/null

-- Each member's entries are numbered in the order they are written here: the
-- purchase of slot k is entry k, the redemption 14, the expiry of slot k
-- 13 + k (the slots that have expired are the first ones, from 2 on), the
-- goodwill the member's greatest seq + 1.
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference,
							effective_at, recorded_at, track_id)
SELECT 1, 'm' || i, k, 'earn', bench.p(i, k),
	   loyalty.lots_add('{}', bench.p(i, k), bench.at(i, k, :members) + interval '12 months'),
	   ((k - 1) * :members + i)::text, bench.at(i, k, :members), bench.at(i, k, :members), :track
  FROM generate_series(1, 13) k
 CROSS JOIN LATERAL generate_series(1::bigint, :members + 0 * k) i;
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, effective_at)
SELECT 1, 'm' || i, 14, 'redeem', -bench.p(i, 1),
	   loyalty.lots_add('{}', bench.p(i, 1), bench.at(i, 1, :members) + interval '12 months'),
	   'r' || i, bench.at(i, 2, :members) + interval '1 hour'
  FROM generate_series(1::bigint, :members) i;
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT 1, 'm' || i, 13 + k, 'expire', -bench.p(i, k),
	   loyalty.lots_add('{}', bench.p(i, k), bench.at(i, k, :members) + interval '12 months'),
	   bench.at(i, k, :members) + interval '12 months'
  FROM generate_series(2, 13) k
 CROSS JOIN LATERAL generate_series(1::bigint, :members + 0 * k) i
 WHERE bench.at(i, k, :members) + interval '12 months' <= :'t_now';
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reason, effective_at)
SELECT 1, 'm' || i,
	   (SELECT max(l.seq) + 1 FROM loyalty.ledger l WHERE l.program_id = 1 AND l.member_key = 'm' || i),
	   'adjust', 10,
	   loyalty.lots_add('{}', 10, :'t_now'::timestamptz + interval '12 months' - interval '3 days'),
	   'goodwill', :'t_now'::timestamptz - interval '3 days'
  FROM generate_series(2::bigint, :members, 2) i;
\timing off
VACUUM ANALYZE;
CHECKPOINT;
SELECT (SELECT count(*) FROM loyalty.members) AS members, (SELECT count(*) FROM loyalty.ledger) AS ledger_rows,
	   (SELECT count(*) FROM orders) AS orders,
	   pg_size_pretty(pg_total_relation_size('loyalty.ledger')) AS ledger_size;

-- Each view's time: every row fetched (as a BI tool would), first run and
-- second run.
CREATE TABLE bench.timings (id serial, view text, query text, run integer, rows bigint, ms numeric);
CREATE PROCEDURE bench.time(v text, q text) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	n bigint;
	r record;
BEGIN
	FOR run IN 1..2 LOOP
		n := 0;
		t0 := clock_timestamp();
		FOR r IN EXECUTE q LOOP
			n := n + 1;
		END LOOP;
		INSERT INTO bench.timings (view, query, run, rows, ms)
		VALUES (v, q, run, n, round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1));
		COMMIT;
	END LOOP;
END $$;
CALL bench.time('member_summary', $$SELECT * FROM loyalty.member_summary WHERE program_code = 'bench' AND member_key = 'm424242'$$);
CALL bench.time('member_summary', $$SELECT * FROM loyalty.member_summary ORDER BY available DESC LIMIT 100$$);
CALL bench.time('member_summary', $$SELECT count(*), sum(available), sum(pending), sum(expiring_30d) FROM loyalty.member_summary$$);
CALL bench.time('ledger_entries', $$SELECT * FROM loyalty.ledger_entries WHERE program_code = 'bench' AND member_key = 'm424242'$$);
-- the newest entries: across members only recorded_at orders the ledger
CALL bench.time('ledger_entries', $$SELECT * FROM loyalty.ledger_entries ORDER BY recorded_at DESC LIMIT 100$$);
CALL bench.time('ledger_entries', $$SELECT * FROM loyalty.ledger_entries WHERE effective_at >= date_trunc('day', now()) - interval '3 days' AND effective_at < date_trunc('day', now()) - interval '2 days'$$);
CALL bench.time('ledger_entries', $$SELECT kind, count(*), sum(points) FROM loyalty.ledger_entries WHERE effective_at >= date_trunc('month', now()) - interval '1 month' AND effective_at < date_trunc('month', now()) GROUP BY kind$$);
CALL bench.time('tier_distribution', 'SELECT * FROM loyalty.tier_distribution');
CALL bench.time('points_liability', 'SELECT * FROM loyalty.points_liability');
CALL bench.time('points_liability_by_month', 'SELECT * FROM loyalty.points_liability_by_month');
CALL bench.time('refresh_reports()', 'SELECT loyalty.refresh_reports()');
CALL bench.time('breakage_by_cohort', 'SELECT * FROM loyalty.breakage_by_cohort');
CALL bench.time('expiring_soon', 'SELECT * FROM loyalty.expiring_soon');
CALL bench.time('leaderboard', 'SELECT * FROM loyalty.leaderboard');
CALL bench.time('program_kpis', 'SELECT * FROM loyalty.program_kpis');
CALL bench.time('retention', 'SELECT * FROM loyalty.retention');
CALL bench.time('retention()', $$SELECT * FROM loyalty.retention('month', 12)$$);
SELECT view, query, rows, max(ms) FILTER (WHERE run = 1) AS run1_ms, max(ms) FILTER (WHERE run = 2) AS run2_ms
  FROM bench.timings GROUP BY view, query, rows ORDER BY min(id);
\timing on
SELECT count(*) AS verify_problems FROM loyalty.verify();
