-- loyalty demo: one program, a few members, a year of activity.
set SHOW_CONTEXT never
-- Run by scripts/demo inside a throwaway cluster.
\pset footer off
\echo
\echo '== CREATE EXTENSION loyalty'
CREATE EXTENSION loyalty;

\echo '== A program: 1 point per EUR, points expire at the end of the quarter after next,'
\echo '   purchases are pending for 14 days (return window), Berlin time.'
INSERT INTO loyalty.programs (code, name, currency, points_per_unit, rounding, point_value,
                              expiry_policy, expiry_period, expiry_extra_periods,
                              pending_interval, time_zone, is_default)
VALUES ('cafe', 'Cafe Rewards', 'EUR', 1, 'floor', 0.01,
        'period_end', 'quarter', 1, '14 days', 'Europe/Berlin', true);
SELECT code, name, currency, points_per_unit, rounding, expiry_policy, expiry_period,
       expiry_extra_periods, pending_interval, time_zone
  FROM loyalty.programs;

\echo '== Members are the application''s own customer keys: text, bigint or uuid'
SELECT member_key FROM loyalty.enroll('alice')
UNION ALL SELECT member_key FROM loyalty.enroll(1042::bigint)
UNION ALL SELECT member_key FROM loyalty.enroll('7d444840-9dc0-11d1-b245-5ffdce74fad2'::uuid);

\echo '== A year of purchases (points from amounts with the program''s rate and rounding)'
SELECT count(*) AS purchases_recorded FROM (
  SELECT loyalty.earn(who, loyalty.points_for(amount), ref, now() - ago)
    FROM (VALUES
      ('alice', 42.90, 'order-1001', interval '300 days'),
      ('alice', 18.50, 'order-1002', interval '200 days'),
      ('alice', 77.00, 'order-1003', interval '40 days'),
      ('alice', 12.99, 'order-1004', interval '3 days'),
      ('1042', 250.00, 'order-2001', interval '100 days'),
      ('1042', 19.99, 'order-2002', interval '10 days'),
      ('7d444840-9dc0-11d1-b245-5ffdce74fad2', 5.49, 'order-3001', interval '1 day')
    ) AS p(who, amount, ref, ago)
) s;

\echo '== The same purchase sent twice is credited once (idempotent on reference)'
SELECT id, kind, points, reference FROM loyalty.earn('alice', 77, 'order-1003', now() - interval '40 days');

\echo '== Redemptions spend the soonest-expiring points first'
SELECT id, kind, points, lots AS drawn_from FROM loyalty.redeem('1042', 100, 'reward-coffee-1');

\echo '== Not enough points: a clear error (SQLSTATE LY001), nothing written'
\set ON_ERROR_STOP 0
SELECT loyalty.redeem('alice', 100000, 'reward-espresso-machine');
\set ON_ERROR_STOP 1

\echo '== Balances now: available, pending (return window), expiring within 30 days'
SELECT m.member_key, d.available, d.pending, d.expiring_30d
  FROM loyalty.members m, LATERAL loyalty.balance_detail(m.member_key) d
 ORDER BY m.id;

\echo '== Balances as of any instant, without a batch job'
SELECT member_key,
       loyalty.balance(member_key, now() - interval '6 months') AS six_months_ago,
       loyalty.balance(member_key) AS now,
       loyalty.balance(member_key, now() + interval '6 months') AS in_six_months
  FROM loyalty.members ORDER BY id;

\echo '== Points expiring in the next 180 days (for "your points expire soon" mails)'
SELECT m.member_key, e.expires_at AT TIME ZONE 'Europe/Berlin' AS expires_berlin, e.points
  FROM loyalty.members m, LATERAL loyalty.expiring(m.member_key, interval '180 days') e
 ORDER BY e.expires_at, m.member_key;

\echo '== alice''s statement'
SELECT effective_at::date AS day, kind, points, running_total, reference,
       expires_at AT TIME ZONE 'Europe/Berlin' AS expires_berlin
  FROM loyalty.statement('alice');

\echo '== The ledger is append-only'
\set ON_ERROR_STOP 0
UPDATE loyalty.ledger SET points = 1000000 WHERE id = 1;
\set ON_ERROR_STOP 1

\echo '== loyalty.verify(): members whose balance disagrees with the ledger (none)'
SELECT count(*) AS broken_members FROM loyalty.verify();
\echo
\echo 'Tiers arrive with issue #4; see docs/ for everything that exists today.'
