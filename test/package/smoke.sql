-- Smoke test of an installed package (test/package/run), in a fresh
-- database of a throwaway cluster: the extension is created from the
-- package's files, the C library loads, and the main paths work.  Every
-- check raises an error when it fails (psql runs with ON_ERROR_STOP); the
-- last line sums up.  Instants are relative to now(), with TimeZone set.
\set QUIET on
SET TimeZone = 'UTC';
SET client_min_messages = warning;

CREATE EXTENSION loyalty;
SELECT extversion = :'version' AS ok FROM pg_extension WHERE extname = 'loyalty' \gset
\if :ok
\else
  \echo 'CREATE EXTENSION did not install version' :version
  DO $$ BEGIN RAISE EXCEPTION 'wrong version'; END $$;
\endif

INSERT INTO loyalty.programs (code, name, currency, expiry_policy, expiry_interval,
                              pending_interval, time_zone, is_default)
VALUES ('shop', 'Shop Points', 'EUR', 'after', '12 months', '14 days', 'UTC', true);

-- a program, a member, points earned 30 days ago (pending for 14 of them),
-- some redeemed now
SELECT member_key FROM loyalty.enroll('alice') \gset
SELECT kind AS earn_kind FROM loyalty.earn('alice', 100, 'order-1', now() - interval '30 days') \gset
SELECT points AS redeemed FROM loyalty.redeem('alice', 30, 'reward-1') \gset

-- purchases through the C triggers of a tracked table
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL,
                     total numeric(10,2) NOT NULL, ordered_at timestamptz NOT NULL);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'ordered_at') AS tracking_id \gset
INSERT INTO orders (customer, total, ordered_at)
VALUES ('bob', 25.00, now() - interval '20 days'), ('alice', 5.00, now() - interval '20 days');

-- maintenance writes the release that fell due for bob (alice's were
-- written when her redemption and her order settled her)
SELECT coalesce(sum(entries) FILTER (WHERE task = 'release'), 0) AS released
  FROM loyalty.run_maintenance() \gset

DO $$
DECLARE
    problems bigint := (SELECT count(*) FROM loyalty.verify());
BEGIN
    ASSERT loyalty.balance('alice', now() - interval '20 days') = 0,
           'points pending in the return window count';
    ASSERT loyalty.balance('alice') = 75, format('alice has %s points, not 75', loyalty.balance('alice'));
    ASSERT loyalty.balance('bob') = 25, format('bob has %s points, not 25', loyalty.balance('bob'));
    ASSERT (SELECT count(*) FROM loyalty.statement('alice')) >= 4, 'alice''s statement is short';
    ASSERT problems = 0, format('verify() lists %s problems', problems);
    ASSERT (SELECT count(*) FROM loyalty.statement('bob') WHERE kind = 'release') = 1,
           'run_maintenance wrote no release for bob';
END
$$;

-- the upgrade script is packaged too: 0.1 updated to the default version
SELECT count(*) > 0 AS has_01 FROM pg_available_extension_versions
 WHERE name = 'loyalty' AND version = '0.1' \gset
\if :has_01
  DROP EXTENSION loyalty CASCADE;
  CREATE EXTENSION loyalty VERSION '0.1';
  ALTER EXTENSION loyalty UPDATE;
  SELECT 'updated from 0.1 to ' || extversion AS upgrade FROM pg_extension WHERE extname = 'loyalty' \gset
\else
  \set upgrade 'no 0.1 script'
\endif

SELECT format('smoke: loyalty %s created; enroll %s, earn (%s), redeem (%s), 2 orders through track_purchases, run_maintenance (%s release), balances 75 and 25, verify() empty; %s',
              :'version', :'member_key', :'earn_kind', :'redeemed', :'released', :'upgrade') AS summary \gset
\echo :summary
