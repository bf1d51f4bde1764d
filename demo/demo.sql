-- loyalty demo: one program, a few members, a year of activity.
\set SHOW_CONTEXT never
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
\echo '   (enrolled here explicitly; the orders below also enroll new customers automatically)'
SELECT member_key FROM loyalty.enroll('alice')
UNION ALL SELECT member_key FROM loyalty.enroll(1042::bigint)
UNION ALL SELECT member_key FROM loyalty.enroll('7d444840-9dc0-11d1-b245-5ffdce74fad2'::uuid);

\echo '== The application''s own orders table; loyalty tracks it (no change to the app)'
CREATE TABLE orders (
    order_id   bigserial PRIMARY KEY,
    customer   text NOT NULL,
    total      numeric(10,2) NOT NULL,
    channel    text NOT NULL DEFAULT 'web',
    status     text NOT NULL DEFAULT 'paid',
    ordered_at timestamptz NOT NULL DEFAULT now()
);
SELECT loyalty.track_purchases('orders', member_column => 'customer', amount_column => 'total',
                               time_column => 'ordered_at', status_column => 'status',
                               channel_column => 'channel') AS tracking_id;

\echo '== Earning rules as rows: double points in the app, 50 points welcome bonus'
INSERT INTO loyalty.earning_rules (program_id, name, kind, channel, multiplier)
SELECT id, 'double points in the app', 'multiplier', 'app', 2 FROM loyalty.programs;
INSERT INTO loyalty.earning_rules (program_id, name, kind, points)
SELECT id, 'welcome bonus', 'first_purchase', 50 FROM loyalty.programs;
SELECT name, kind, channel, multiplier, points FROM loyalty.earning_rules ORDER BY id;

\echo '== Tiers as rows: Silver at 100 points, Gold at 300 points or 5 orders, in a rolling 12 months;'
\echo '   a tier lasts 12 months, then goes down one step if the member no longer qualifies'
INSERT INTO loyalty.tiers (program_id, name, rank, min_points, min_orders)
SELECT id, t.name, t.rank, t.min_points, t.min_orders FROM loyalty.programs,
       (VALUES ('Bronze', 0, NULL::bigint, NULL::bigint), ('Silver', 1, 100, NULL),
               ('Gold', 2, 300, 5)) AS t(name, rank, min_points, min_orders);
SELECT name, rank, min_points, min_orders, combine FROM loyalty.tiers ORDER BY rank;

\echo '== The application listens for tier changes (NOTIFY loyalty_tier), e.g. to send an e-mail'
LISTEN loyalty_tier;

\echo '== A year of orders, written by the application as usual'
INSERT INTO orders (customer, total, channel, ordered_at)
VALUES ('alice', 42.90, 'web', now() - interval '300 days'),
       ('alice', 18.50, 'app', now() - interval '200 days'),
       ('alice', 77.00, 'web', now() - interval '40 days'),
       ('alice', 12.99, 'app', now() - interval '3 days'),
       ('1042', 250.00, 'web', now() - interval '100 days'),
       ('1042', 19.99, 'app', now() - interval '10 days'),
       ('7d444840-9dc0-11d1-b245-5ffdce74fad2', 5.49, 'web', now() - interval '1 day'),
       ('carol', 64.00, 'web', now() - interval '20 days'),
       ('dave', 30.00, 'web', now() - interval '60 days'),
       ('erin', 20.00, 'web', now() - interval '300 days');

\echo '== Points were awarded in the same transaction, one ledger entry per order'
SELECT l.reference AS order_id, l.member_key, l.seq, l.kind, l.points, l.reason
  FROM loyalty.ledger l
 WHERE l.track_id IS NOT NULL ORDER BY split_part(l.reference, '#', 1)::int, l.member_key, l.seq;

\echo '== carol''s order is refunded: the award is reversed'
UPDATE orders SET status = 'refunded' WHERE customer = 'carol';
SELECT seq, kind, points, reference, reason FROM loyalty.ledger
 WHERE member_key = 'carol' ORDER BY seq;

\echo '== Points can also be credited directly, idempotent on reference'
SELECT kind, points, reference FROM loyalty.earn('alice', 25, 'survey-2026', now() - interval '2 days');
SELECT kind, points, reference FROM loyalty.earn('alice', 25, 'survey-2026', now() - interval '2 days');

\echo '== Redemptions spend the soonest-expiring points first'
SELECT member_key, seq, kind, points, lots AS drawn_from FROM loyalty.redeem('1042', 100, 'reward-coffee-1');

\echo '== Not enough points: a clear error (SQLSTATE LY001), nothing written'
\set ON_ERROR_STOP 0
SELECT loyalty.redeem('alice', 100000, 'reward-espresso-machine');
\set ON_ERROR_STOP 1

\echo '== Balances now: available, pending (return window), expiring within 30 days'
SELECT m.member_key, d.available, d.pending, d.expiring_30d
  FROM loyalty.members m, LATERAL loyalty.balance_detail(m.member_key) d
 ORDER BY m.member_key;

\echo '== Balances as of any instant, without a batch job'
SELECT member_key,
       loyalty.balance(member_key, now() - interval '6 months') AS six_months_ago,
       loyalty.balance(member_key) AS now,
       loyalty.balance(member_key, now() + interval '6 months') AS in_six_months
  FROM loyalty.members ORDER BY member_key;

\echo '== Points expiring in the next 180 days (for "your points expire soon" mails)'
SELECT m.member_key, e.expires_at AT TIME ZONE 'Europe/Berlin' AS expires_berlin, e.points
  FROM loyalty.members m, LATERAL loyalty.expiring(m.member_key, interval '180 days') e
 ORDER BY e.expires_at, m.member_key;

\echo '== alice''s statement'
SELECT effective_at::date AS day, kind, points, running_total, reference,
       expires_at AT TIME ZONE 'Europe/Berlin' AS expires_berlin
  FROM loyalty.statement('alice');

\echo '== Tiers: upgraded at once by the purchases above, and what is missing for the next one'
SELECT m.member_key, p.tier, p.points, p.orders, p.message
  FROM loyalty.members m, LATERAL loyalty.tier_progress(m.member_key) p ORDER BY m.member_key;

\echo '== Every tier change is in tier_history, and an event row for the application'
SELECT member_key, from_tier, to_tier, reason, effective_at::date AS day
  FROM loyalty.tier_events ORDER BY id;

\echo '== run_maintenance() writes the releases, expiries and tier reviews that fell due'
\echo '   (dave and erin have not been back since their only order: their points were'
\echo '   released, and erin''s expired, but nothing wrote that yet; their balances were right'
\echo '   all along.  Schedule it with pg_cron, see docs/concepts.md)'
SELECT * FROM loyalty.run_maintenance();
SELECT l.member_key, l.seq, l.kind, l.points, l.effective_at::date AS effective
  FROM loyalty.ledger l
 WHERE l.member_key IN ('dave', 'erin') ORDER BY l.member_key, l.seq;

\echo '== For BI tools: views such as loyalty.member_summary and loyalty.points_liability'
\echo '   (read by the role loyalty_reader; see docs/analysts.md)'
SELECT member_key, tier, available, pending, lifetime_spend, lifetime_orders
  FROM loyalty.member_summary ORDER BY member_key;
SELECT * FROM loyalty.points_liability;

\echo '== The ledger is append-only'
\set ON_ERROR_STOP 0
UPDATE loyalty.ledger SET points = 1000000 WHERE member_key = 'alice' AND seq = 1;
\set ON_ERROR_STOP 1

\echo '== loyalty.verify(): members whose balance disagrees with the ledger (none)'
SELECT count(*) AS broken_members FROM loyalty.verify();
\echo
\echo 'Rewards, transfers and behavioural points: docs/developers.md; views and KPIs: docs/analysts.md; roles and scheduling: docs/dba.md.'
