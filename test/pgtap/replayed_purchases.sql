-- A bug found by the long reliability runs (docs/reliability.md, "Bugs
-- found"): a tracked purchase inserted again (a restore of the purchases
-- table) must not count towards tiers again.  The upgrade assertions failed
-- before the fix.
\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(22);

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

-- Nor may it move the member's first purchase or last activity (found by
-- test/stress/run on 2026-12-01: after the purchases table was restored
-- again, m10's first_purchase_at had moved 0.09 s earlier).  Here: order 11
-- was dan's and moved to cid, whose first purchase stays 11:00; inserted
-- again, order 11 (10:00) is refused as a replay and must change nothing.
-- Both failed before the fix (cid's first purchase became 10:00).
CREATE TABLE torders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('torders', 'customer', 'total', 'at') \g /dev/null
INSERT INTO torders VALUES (10, 'cid', 50, '2025-01-01 11:00+00');
INSERT INTO torders VALUES (11, 'dan', 50, '2025-01-01 10:00+00');
UPDATE torders SET customer = 'cid' WHERE id = 11;
CREATE TEMP TABLE saved AS SELECT * FROM torders;
CREATE TEMP TABLE cid_before AS
SELECT first_purchase_at, last_activity_at FROM loyalty.members WHERE member_key = 'cid';
TRUNCATE torders;
INSERT INTO torders SELECT * FROM saved ORDER BY id;
SELECT is((SELECT row(first_purchase_at, last_activity_at)::text FROM loyalty.members WHERE member_key = 'cid'),
          (SELECT row(first_purchase_at, last_activity_at)::text FROM cid_before),
          'two rows inserted again in one statement: first purchase and last activity unchanged');
TRUNCATE torders;
INSERT INTO torders SELECT * FROM saved WHERE id = 11;
SELECT is((SELECT row(first_purchase_at, last_activity_at)::text FROM loyalty.members WHERE member_key = 'cid'),
          (SELECT row(first_purchase_at, last_activity_at)::text FROM cid_before),
          'one row inserted again: first purchase and last activity unchanged');

-- Nor may a statement whose awards were all refused upgrade the member (found
-- by test/stress/run on 2026-12-01: m8 went from Gold, set by hand, to
-- Platinum when the purchases table was restored again).  cid qualifies for
-- Silver but holds Base by hand; inserting cid's orders again changes nothing.
INSERT INTO torders VALUES (12, 'cid', 200, '2025-01-02 10:00+00');
SELECT is((SELECT tier FROM loyalty.members WHERE member_key = 'cid'), 'Silver', 'cid reaches Silver');
SELECT loyalty.set_tier('cid', 'Base', reason => 'by hand') \g /dev/null
CREATE TEMP TABLE saved2 AS SELECT * FROM torders;
CREATE TEMP TABLE history_before AS SELECT count(*) AS n FROM loyalty.tier_history;
TRUNCATE torders;
INSERT INTO torders SELECT * FROM saved2 ORDER BY id;
SELECT is((SELECT row(tier, (SELECT count(*) FROM loyalty.tier_history) - (SELECT n FROM history_before))::text
             FROM loyalty.members WHERE member_key = 'cid'),
          row('Base', 0)::text, 'orders inserted again, all refused: no upgrade, no tier_history row');

-- Nor may it write anything else: a purchase dated before the member's
-- newest entry is replayed on the time axis, which writes the releases that
-- fell due; a refused one is no write at all (found by test/stress/run on
-- 2026-12-04: the re-restore wrote 2,957 release entries).  Both failed
-- before the fix.
INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('pp', 'pending', '2 days');
CREATE TABLE porders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('porders', 'customer', 'total', 'at', program => 'pp') \g /dev/null
INSERT INTO porders VALUES (20, 'eve', 30, now() - interval '10 days');
INSERT INTO porders VALUES (21, 'eve', 10, now() + interval '1 hour');
INSERT INTO porders VALUES (22, 'fay', 30, now() - interval '10 days'), (23, 'fay', 10, now() + interval '1 hour'),
                           (24, 'gus', 5, now() - interval '10 days');
CREATE TEMP TABLE saved3 AS SELECT * FROM porders;
CREATE TEMP TABLE ledger_before AS SELECT count(*) AS n FROM loyalty.ledger;
-- (one transaction has one now(): as if the members were written yesterday)
UPDATE loyalty.members SET settled_at = now() - interval '1 day' WHERE member_key IN ('eve', 'fay', 'gus');
CREATE TEMP TABLE members_before AS SELECT * FROM loyalty.members WHERE member_key IN ('eve', 'fay', 'gus');
TRUNCATE porders;
INSERT INTO porders SELECT * FROM saved3 WHERE id = 20;
SELECT is((SELECT count(*) FROM loyalty.ledger) - (SELECT n FROM ledger_before), 0::bigint,
          'one back-dated row inserted again: no ledger row written');
INSERT INTO porders SELECT * FROM saved3 WHERE id <> 20;
SELECT is((SELECT count(*) FROM loyalty.ledger) - (SELECT n FROM ledger_before), 0::bigint,
          'back-dated rows of two members inserted again in one statement: no ledger row written');
SELECT is((SELECT count(*) FROM loyalty.members m JOIN members_before b USING (program_id, member_key) WHERE row(m.*)::text = row(b.*)::text),
          3::bigint, 'and the member rows are unchanged, settled_at included');

-- Exactly once per live purchase: a purchase deleted (its award taken back)
-- and inserted again is live again and earns again; a replayed insert of a
-- live row still earns nothing.
CREATE TABLE sales (id int PRIMARY KEY, customer text, total numeric);
SELECT loyalty.track_purchases('sales', 'customer', 'total') \g /dev/null
INSERT INTO sales VALUES (1, 'cat', 30);
DELETE FROM sales WHERE id = 1;
SELECT is(loyalty.balance('cat'), 0::bigint, 'a deleted purchase is taken back');
INSERT INTO sales VALUES (1, 'cat', 30);
SELECT is(loyalty.balance('cat'), 30::bigint, 'inserted again, it earns again');
SELECT is((SELECT string_agg(kind || ':' || points || ':' || coalesce(reason, ''), ', ' ORDER BY member_key, seq)
			 FROM loyalty.ledger WHERE reference = '1' AND track_id = (SELECT max(id) FROM loyalty.tracked_tables)),
	'earn:30:, reverse:-30:purchase deleted, adjust:30:purchase inserted again',
	'as a correction: an adjust "purchase inserted again"');
TRUNCATE sales;
INSERT INTO sales VALUES (1, 'cat', 30);
SELECT is(loyalty.balance('cat'), 30::bigint, 'a replayed insert of the live row earns nothing');
DELETE FROM sales WHERE id = 1;
INSERT INTO sales VALUES (1, 'cat', 55);
SELECT is(loyalty.balance('cat'), 55::bigint, 'deleted again and inserted with another amount: earns that amount');
-- several customers in one statement (the batched path), one row back under another customer
INSERT INTO sales VALUES (2, 'dan', 10), (3, 'dan', 20);
DELETE FROM sales WHERE id IN (2, 3);
INSERT INTO sales VALUES (2, 'dan', 10), (3, 'eve', 20), (4, 'eve', 5);
SELECT is(ARRAY[loyalty.balance('dan'), loyalty.balance('eve')], '{10,25}'::bigint[],
	'in one statement for several customers: each purchase back earns once, under its customer now');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reason = 'purchase inserted again'), 3::bigint,
	'three purchases came back to their customer (order 3 is eve''s first award: a reference is the customer''s own)');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
