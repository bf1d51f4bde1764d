-- A bug found by the long reliability runs (docs/reliability.md, "Bugs
-- found"): a tracked purchase inserted again (a restore of the purchases
-- table) must not count towards tiers again.  The upgrade assertions failed
-- before the fix.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(7);

-- A purchase inserted again with the same reference (restoring the purchases
-- table, as test/stress/run does, or replaying a load) is not awarded twice:
-- the award is refused by ledger_purchase_award.  Its activity must not be
-- counted twice either, nor move the member up a tier.
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('p', 'P', true);
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend)
SELECT id, t.name, t.rank, t.min_spend FROM loyalty.programs,
       (VALUES ('Base', 0, NULL::numeric), ('Silver', 1, 150)) t(name, rank, min_spend);
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric);
SELECT loyalty.track_purchases('orders', 'customer', 'total') \g /dev/null
-- ann: one row, inserted again alone; bob: two rows, inserted again in one
-- statement (as COPY and pg_restore do)
INSERT INTO orders VALUES (1, 'ann', 100);
INSERT INTO orders VALUES (2, 'bob', 100), (3, 'bob', 40);
CREATE TEMP TABLE before AS
SELECT m.member_key, (SELECT count(*) FROM loyalty.ledger) AS entries, m.balance::text,
       m.activity::text, m.tier
  FROM loyalty.members m;
TRUNCATE orders;
INSERT INTO orders VALUES (1, 'ann', 100);
INSERT INTO orders VALUES (2, 'bob', 100), (3, 'bob', 40);

SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT min(entries) FROM before),
          'purchases inserted again write no second award');
SELECT is((SELECT string_agg(balance::text, ',' ORDER BY member_key) FROM loyalty.members),
          (SELECT string_agg(balance, ',' ORDER BY member_key) FROM before), 'nor change balances');
SELECT is((SELECT activity::text FROM loyalty.members WHERE member_key = 'ann'),
          (SELECT activity FROM before WHERE member_key = 'ann'), 'one row inserted again: no activity counted');
SELECT is((SELECT activity::text FROM loyalty.members WHERE member_key = 'bob'),
          (SELECT activity FROM before WHERE member_key = 'bob'), 'two rows inserted again in one statement: no activity counted');
SELECT is((SELECT tier FROM loyalty.members WHERE member_key = 'ann'),
          (SELECT tier FROM before WHERE member_key = 'ann'), 'one row inserted again: no upgrade');
SELECT is((SELECT tier FROM loyalty.members WHERE member_key = 'bob'),
          (SELECT tier FROM before WHERE member_key = 'bob'), 'two rows inserted again in one statement: no upgrade');
SELECT is((SELECT count(*) FROM loyalty.tier_history), 2::bigint,
          'tier_history has only the first inserts'' two Base tiers, nothing from the replay');

SELECT * FROM finish();
ROLLBACK;
