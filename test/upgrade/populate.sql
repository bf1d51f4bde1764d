-- A populated database for the upgrade test: two programs, 3,000 members
-- and about 30,000 tracked purchases over the last 400 days, with refunds,
-- deletions, amount changes, direct earnings back-dated into the past,
-- redemptions, debt (refunds after spending), pending points, transfers,
-- donations to a cause, rewards redeemed and cancelled, behavioural events,
-- manual and qualified tier changes, inactivity expiry, and maintenance.
-- Written only through the public API of the oldest version, so it runs on
-- every version the upgrade test starts from.  Deterministic: setseed().
\set ON_ERROR_STOP 1
SELECT setseed(0.17);

INSERT INTO loyalty.programs (code, name, currency, points_per_unit, expiry_policy, expiry_interval,
                              pending_interval, time_zone, is_default)
VALUES ('club', 'Club', 'EUR', 1, 'after', '12 months', '7 days', 'Europe/Berlin', true);
INSERT INTO loyalty.programs (code, name, currency, points_per_unit, expiry_policy, expiry_interval,
                              time_zone)
VALUES ('miles', 'Miles', 'USD', 2, 'inactivity', '90 days', 'America/New_York');

INSERT INTO loyalty.tiers (program_id, name, rank, min_spend, min_orders)
SELECT p.id, t.name, t.rank, t.min_spend, t.min_orders
  FROM loyalty.programs p,
       (VALUES ('Bronze', 0, NULL::numeric, NULL::bigint), ('Silver', 1, 300, NULL),
               ('Gold', 2, 1000, 12)) AS t(name, rank, min_spend, min_orders)
 WHERE p.code = 'club';
INSERT INTO loyalty.earning_rules (program_id, name, kind, channel, multiplier)
SELECT id, 'app double', 'multiplier', 'app', 2 FROM loyalty.programs WHERE code = 'club';
INSERT INTO loyalty.earning_rules (program_id, name, kind, points)
SELECT id, 'welcome', 'first_purchase', 25 FROM loyalty.programs WHERE code = 'club';
INSERT INTO loyalty.rewards (program_id, code, name, cost, stock)
SELECT id, 'coffee', 'Coffee', 40, 100000 FROM loyalty.programs WHERE code = 'club';
INSERT INTO loyalty.event_rules (program_id, action, points, cap_count, cap_period)
SELECT id, 'review', 10, 3, 'month' FROM loyalty.programs WHERE code = 'club';

CREATE TABLE orders (
    order_id   bigint PRIMARY KEY,
    customer   text NOT NULL,
    total      numeric(10,2) NOT NULL,
    channel    text NOT NULL,
    status     text NOT NULL DEFAULT 'paid',
    ordered_at timestamptz NOT NULL
);
SELECT loyalty.track_purchases('orders', member_column => 'customer', amount_column => 'total',
                               time_column => 'ordered_at', status_column => 'status',
                               channel_column => 'channel');
CREATE TABLE flights (
    flight_id  bigint PRIMARY KEY,
    customer   text NOT NULL,
    fare       numeric(10,2) NOT NULL,
    flown_at   timestamptz NOT NULL
);
SELECT loyalty.track_purchases('flights', member_column => 'customer', amount_column => 'fare',
                               time_column => 'flown_at', program => 'miles');

-- A year of orders for 3,000 customers, in one statement (the bulk path),
-- then a few hundred single-row orders dated in the last weeks.
INSERT INTO orders (order_id, customer, total, channel, ordered_at)
SELECT i, 'm' || (i % 3000), round((random() * 180 + 1)::numeric, 2),
       CASE WHEN random() < 0.3 THEN 'app' ELSE 'web' END,
       now() - interval '400 days' + (i / 30000.0) * interval '395 days'
  FROM generate_series(1, 30000) i;
DO $$
BEGIN
	FOR i IN 30001 .. 30400 LOOP
		INSERT INTO orders (order_id, customer, total, channel, ordered_at)
		VALUES (i, 'm' || (i % 500), 20 + i % 70, 'web', now() - (i % 20) * interval '1 day');
	END LOOP;
END
$$;
INSERT INTO flights (flight_id, customer, fare, flown_at)
SELECT i, 'm' || (i % 800), 50 + i % 400, now() - interval '300 days' + (i % 290) * interval '1 day'
  FROM generate_series(1, 2000) i;

-- Corrections: refunds, deletions, amount changes, a moved date.
UPDATE orders SET status = 'refunded' WHERE order_id % 97 = 0;
DELETE FROM orders WHERE order_id % 211 = 0;
UPDATE orders SET total = total + 15 WHERE order_id % 173 = 0;
UPDATE orders SET total = greatest(total - 10, 1) WHERE order_id % 181 = 0;
UPDATE orders SET ordered_at = ordered_at - interval '3 days' WHERE order_id % 401 = 0;

-- Direct credits back-dated into the past, and adjustments.
SELECT count(*) FROM (
	SELECT loyalty.earn('m' || i, 30 + i % 50, 'survey-' || i, now() - (i % 300) * interval '1 day')
	  FROM generate_series(0, 2999, 7) i) s;
SELECT count(*) FROM (
	SELECT loyalty.adjust('m' || i, CASE WHEN i % 2 = 0 THEN 20 ELSE -5 END, 'goodwill', 'case-' || i)
	  FROM generate_series(3, 2999, 29) i) s;

-- Redemptions, then refunds of orders those points came from: debt.
DO $$
DECLARE
	k text;
BEGIN
	FOR i IN 0 .. 2999 BY 13 LOOP
		k := 'm' || i;
		IF loyalty.balance(k) >= 60 THEN
			PERFORM loyalty.redeem(k, loyalty.balance(k) - 5, 'spend-' || i);
		END IF;
	END LOOP;
END
$$;
UPDATE orders SET status = 'refunded'
 WHERE customer IN (SELECT 'm' || i FROM generate_series(0, 2999, 13) i)
   AND ordered_at > now() - interval '60 days' AND status = 'paid';

-- Rewards: redeemed, some cancelled.
DO $$
BEGIN
	FOR i IN 1 .. 2999 BY 17 LOOP
		IF loyalty.balance('m' || i) >= 40 THEN
			PERFORM loyalty.redeem_reward('m' || i, 'coffee', 'coffee-' || i);
		END IF;
	END LOOP;
	FOR i IN 1 .. 2999 BY 51 LOOP
		IF EXISTS (SELECT 1 FROM loyalty.reward_redemptions WHERE reference = 'coffee-' || i) THEN
			PERFORM loyalty.cancel_redemption('coffee-' || i);
		END IF;
	END LOOP;
END
$$;

-- Transfers between members and donations to a cause account.
SELECT loyalty.enroll('charity');
SELECT loyalty.register_cause('charity', 'Charity');
DO $$
BEGIN
	FOR i IN 2 .. 2999 BY 19 LOOP
		IF loyalty.balance('m' || i) >= 30 THEN
			PERFORM loyalty.transfer('m' || i, 'm' || ((i + 1000) % 3000), 25, 'gift-' || i);
		END IF;
		IF loyalty.balance('m' || i) >= 10 THEN
			PERFORM loyalty.donate('m' || i, 'charity', 10, 'give-' || i);
		END IF;
	END LOOP;
END
$$;

-- Behavioural events and manual tiers.
SELECT count(*) FROM (
	SELECT loyalty.record_event('m' || i, 'review', 'review-' || i, now() - (i % 40) * interval '1 day')
	  FROM generate_series(5, 2999, 11) i) s;
SELECT count(*) FROM (
	SELECT loyalty.set_tier('m' || i, 'Gold', now() + interval '90 days', 'vip')
	  FROM generate_series(7, 2999, 101) i) s;

-- Maintenance writes the releases, expiries (inactivity included) and tier
-- reviews that fell due.
SELECT task, members FROM loyalty.run_maintenance() ORDER BY task;
SELECT count(*) AS verify_problems FROM loyalty.verify();
CREATE TABLE upgrade_t0 AS SELECT now() AS t0;
