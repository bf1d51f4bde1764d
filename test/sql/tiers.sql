-- Tiers: a ladder as rows, purchases upgrade at once, downgrades at the end
-- of the validity, progress towards the next tier, and maintenance.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
DROP TABLE IF EXISTS orders;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\set SHOW_CONTEXT never
-- Qualify on points or orders over a rolling 12 months in Berlin; a tier is
-- valid 12 months, then goes down one step if no longer earned.
INSERT INTO loyalty.programs (code, name, currency, time_zone, expiry_policy, expiry_interval,
                              tier_window, tier_window_months, tier_validity_months, is_default)
VALUES ('club', 'Club', 'EUR', 'Europe/Berlin', 'inactivity', '18 months', 'rolling', 12, 12, true);
INSERT INTO loyalty.tiers (program_id, name, rank, min_points, min_orders)
SELECT id, t.* FROM loyalty.programs,
       (VALUES ('Bronze', 0, NULL::bigint, NULL::bigint), ('Silver', 1, 200, NULL), ('Gold', 2, 500, 10)) t;
-- Gold earns double: a tier multiplier is an earning rule.
INSERT INTO loyalty.earning_rules (program_id, name, kind, tier, multiplier)
SELECT id, 'gold double', 'multiplier', 'Gold', 2 FROM loyalty.programs;

CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at') > 0 AS tracked;
INSERT INTO orders VALUES (1, 'alice', 120, '2024-02-10 12:00+00'),
                          (2, 'alice', 150, '2024-03-05 12:00+00'),
                          (3, 'alice', 260, '2024-04-20 12:00+00'),
                          (4, 'alice', 50, '2024-04-21 12:00+00');

-- Each step of the climb, effective at the purchase that reached it.
SELECT from_tier, to_tier, reason, effective_at, valid_until
  FROM loyalty.tier_history ORDER BY id;
-- The purchase after Gold earned double.
SELECT reference, points FROM loyalty.ledger WHERE reference = '4';
-- The tier as of any instant, and what is missing for the next one.
SELECT loyalty.tier('alice', '2024-03-01'), loyalty.tier('alice', '2024-05-01');
SELECT tier, next_tier, points, orders, message, drops_at, drops_points
  FROM loyalty.tier_progress('alice', '2024-04-21 12:00+00');
SELECT member_key, tier FROM loyalty.enroll('bob');  -- a tier comes with the first purchase that earns
SELECT tier, next_tier, points, orders, message FROM loyalty.tier_progress('bob', '2024-05-01');

-- Gold ends on 2025-04-20; alice's 2024 purchases have left the window by
-- then, so she goes down one step: right without a job, written by
-- run_maintenance at the instant the validity ended.
SELECT loyalty.tier('alice', '2025-04-20 11:59+00') AS before_end,
       loyalty.tier('alice', '2025-04-20 12:00+00') AS at_end;
SELECT task, members, entries FROM loyalty.run_maintenance('2025-05-01') WHERE task = 'tier';
SELECT from_tier, to_tier, reason, effective_at FROM loyalty.tier_history WHERE reason = 'downgrade';
-- Every change to a new tier is also an event for the application (NOTIFY
-- loyalty_tier), but for the base tier a new member starts in.
SELECT member_key, from_tier, to_tier, reason FROM loyalty.tier_events ORDER BY id;

-- Inactivity: 18 months after the last purchase all points expire at once.
SELECT loyalty.balance('alice', '2025-10-21 11:59+00') AS before_deadline,
       loyalty.balance('alice', '2025-10-21 12:00+00') AS at_deadline;
SELECT member_key, expires_at, points, reason FROM loyalty.expiring_points('30 days', '2025-10-01');
