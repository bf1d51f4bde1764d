-- test/cron/run: a program whose data needs maintenance, in the database
-- pg_cron runs its jobs in.  Three customers ordered 90 days ago: their
-- points were pending for 14 days and expired 30 days after that, and the
-- Silver tier their order gave them was valid one month, so its review
-- (a downgrade: the one-month window no longer holds the order) is due.
-- Nothing has written those releases, expiries and reviews yet: balances
-- and tiers read right without them, and run_maintenance() writes them.
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION loyalty;

INSERT INTO loyalty.programs (code, name, currency, expiry_policy, expiry_interval,
                              pending_interval, time_zone, is_default,
                              tier_window_months, tier_validity_months)
VALUES ('shop', 'Shop Points', 'EUR', 'after', '30 days', '14 days', 'UTC', true, 1, 1);
INSERT INTO loyalty.tiers (program_id, name, rank, min_orders)
SELECT id, t.name, t.rank, t.min_orders
  FROM loyalty.programs, (VALUES ('Bronze', 0, NULL::bigint), ('Silver', 1, 1)) AS t(name, rank, min_orders);

CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL,
                     total numeric(10,2) NOT NULL, ordered_at timestamptz NOT NULL);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'ordered_at') \gset
INSERT INTO orders (customer, total, ordered_at)
VALUES ('ann', 50, now() - interval '90 days'), ('ben', 40, now() - interval '90 days'),
       ('cem', 60, now() - interval '90 days');
