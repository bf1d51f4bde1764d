-- examples/shop/setup.sql: what a DBA runs once (and may run again) before
-- the shop application connects.  Run as the extension owner or another
-- superuser: it creates a login role.  Every statement is idempotent.
--
--   psql -X -q -v ON_ERROR_STOP=1 -v app_password=secret -f examples/shop/setup.sql
--
-- The extension itself must exist (CREATE EXTENSION loyalty).  The program
-- is not the default one, so the application always names it
-- (program => 'shop'); that keeps it apart from the demo's own program.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'loyalty') THEN
		RAISE EXCEPTION 'extension loyalty is not installed in database %', current_database()
			USING HINT = 'Run CREATE EXTENSION loyalty; as a superuser first.';
	END IF;
END $$;

-- The program: 1 point per EUR (floor), points pending for 14 days (the
-- return window), then valid for 12 months, Berlin time.
INSERT INTO loyalty.programs (code, name, currency, points_per_unit, rounding, point_value,
                              expiry_policy, expiry_interval, pending_interval, time_zone)
VALUES ('shop', 'Shop Points', 'EUR', 1, 'floor', 0.01,
        'after', '12 months', '14 days', 'Europe/Berlin')
ON CONFLICT (code) DO NOTHING;

-- Tiers on spend over a rolling 12 months.
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend)
SELECT p.id, t.name, t.rank, t.min_spend
  FROM loyalty.programs p,
       (VALUES ('Member', 0, NULL::numeric), ('Silver', 1, 500), ('Gold', 2, 2000)) AS t(name, rank, min_spend)
 WHERE p.code = 'shop'
ON CONFLICT DO NOTHING;

-- A welcome bonus on the first purchase whose points never expire.
INSERT INTO loyalty.earning_rules (program_id, name, kind, points, expiry_policy)
SELECT p.id, 'welcome bonus', 'first_purchase', 50, 'never'
  FROM loyalty.programs p
 WHERE p.code = 'shop'
   AND NOT EXISTS (SELECT FROM loyalty.earning_rules r
                    WHERE r.program_id = p.id AND r.name = 'welcome bonus');

-- Rewards: a coffee for 50 points, and a mug that is sold out.
INSERT INTO loyalty.rewards (program_id, code, name, cost, stock)
SELECT p.id, r.code, r.name, r.cost, r.stock
  FROM loyalty.programs p,
       (VALUES ('coffee', 'Free coffee', 50, NULL::bigint), ('mug', 'Shop mug', 200, 0)) AS r(code, name, cost, stock)
 WHERE p.code = 'shop'
ON CONFLICT DO NOTHING;

-- The shop's own table, in a schema of its own (PostgreSQL 15 gives nobody
-- CREATE on public).  Customers are uuids; order numbers are the shop's.
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.orders (
    order_no   text PRIMARY KEY,
    customer   uuid NOT NULL,
    amount     numeric(10,2) NOT NULL CHECK (amount >= 0),
    channel    text NOT NULL DEFAULT 'web',
    status     text NOT NULL DEFAULT 'paid',
    ordered_at timestamptz NOT NULL DEFAULT now()
);
-- Tracking again replaces the configuration and keeps the id.
SELECT loyalty.track_purchases('shop.orders', member_column => 'customer', amount_column => 'amount',
                               time_column => 'ordered_at', status_column => 'status',
                               channel_column => 'channel', program => 'shop') AS tracked_table \gset

-- The application's login role: loyalty_app for the member functions, and
-- its own grants on its own table.
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_app') AS create_role \gset
\if :create_role
CREATE ROLE shop_app LOGIN IN ROLE loyalty_app;
\endif
GRANT loyalty_app TO shop_app;
\if :{?app_password}
ALTER ROLE shop_app PASSWORD :'app_password';
\endif
GRANT USAGE ON SCHEMA shop TO shop_app;
GRANT SELECT, INSERT, UPDATE ON shop.orders TO shop_app;
