\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(45);

\ir lib/error_text.psql

INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, is_default)
VALUES ('shop', 'Shop', 'after', '1 year', true);
INSERT INTO loyalty.programs (code, name) VALUES ('other', 'Other');
DO $$ BEGIN
	PERFORM loyalty.enroll(k) FROM unnest('{ann,bob,cat,1,2}'::text[]) k;
	PERFORM loyalty.enroll('ann', 'other');
END $$;
-- ann: 50 points expiring in 30 days, 100 expiring in 355 days (a day later
-- when a 29 February lies ahead: the expected expiries below are the earning
-- instants plus the program's year, not now() plus days)
SELECT loyalty.earn('ann', 50, 'a1', now() - interval '335 days') IS NOT NULL;
SELECT loyalty.earn('ann', 100, 'a2', now() - interval '10 days') IS NOT NULL;
-- cat: 10 points pending until tomorrow
SELECT loyalty.earn('cat', 10, 'c1', now() + interval '1 day') IS NOT NULL;
SELECT loyalty.earn('1', 30, 'k1', now() - interval '1 day') IS NOT NULL;

------------------------------------------------------------------------------
-- refusals
------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM loyalty.ledger;
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'bob', 0)$$, '22023', 'points must be positive', 'transfer 0 points');
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'bob', NULL)$$, '22023', 'points must be positive', 'transfer NULL points');
SELECT throws_ok($$SELECT loyalty.transfer(NULL, 'bob', 5)$$, '22004', 'member key must not be null', 'null sender');
SELECT throws_ok($$SELECT loyalty.transfer('ann', NULL, 5)$$, '22004', 'member key must not be null', 'null receiver');
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'zed', 5)$$, 'LY002',
	'member "zed" is not enrolled in loyalty program "shop"', 'unknown receiver');
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'bob', 5, program => 'other')$$, 'LY002',
	'member "bob" is not enrolled in loyalty program "other"', 'both members must be in the program');
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'bob', 5, program => 'nowhere')$$, 'LY003',
	'loyalty program "nowhere" does not exist', 'unknown program');
SELECT is(pg_temp.err($$SELECT loyalty.transfer('ann', 'ann', 5)$$),
	'22023: cannot transfer points from a member to the same member | Both sides are member "ann". | ',
	'a transfer to oneself');
SELECT is(pg_temp.err($$SELECT loyalty.transfer('ann', 'bob', 151)$$),
	'LY001: insufficient points | Transfer needs 151 points; member "ann" has 150 available. | Only points usable now count: pending and expired points do not.',
	'insufficient points: LY001');
SELECT throws_ok($$SELECT loyalty.transfer('cat', 'bob', 10)$$, 'LY001', 'insufficient points',
	'pending points cannot be transferred');
SELECT is(pg_temp.err($$SELECT loyalty.donate('ann', 'bob', 5)$$),
	'LY016: member "bob" is not an active cause account |  | Register it with loyalty.register_cause(), or use loyalty.transfer().',
	'a donation needs a cause account: LY016');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT n FROM before), 'refused transfers wrote nothing');

------------------------------------------------------------------------------
-- a transfer: the receiver gets the sender's lots with their expiry
------------------------------------------------------------------------------
CREATE TEMP TABLE t1 AS SELECT * FROM loyalty.transfer('ann', 'bob', 70, 't1');
CREATE TEMP TABLE drawn AS
SELECT loyalty.lots_add(loyalty.lots_add('{}', 50, now() - interval '335 days' + interval '1 year'), 20, now() - interval '10 days' + interval '1 year') AS l;
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", reason COLLATE "default", effective_at FROM t1 ORDER BY points$$,
	$$SELECT * FROM (VALUES ('transfer', -70::bigint, (SELECT l::text FROM drawn), 't1', 'transfer to bob', now()),
							('transfer', 70::bigint, (SELECT l::text FROM drawn), 't1', 'transfer from ann', now())) v$$,
	'two legs: the sender''s lots drawn soonest-expiry first, and the same lots credited');
SELECT is((SELECT array_agg(m.member_key ORDER BY t1.points) FROM t1 JOIN loyalty.members m ON m.program_id = t1.program_id AND m.member_key = t1.member_key),
	'{ann,bob}'::text[], 'the debit is ann''s, the credit bob''s');
SELECT is(loyalty.balance('ann'), 80::bigint, 'ann has 80 left');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'bob'), (SELECT l::text FROM drawn),
	'bob holds the lots with their original expiry');
SELECT is(loyalty.balance('bob', now() + interval '31 days'), 20::bigint, 'so 50 of them expire in 30 days');
SELECT is((SELECT array_agg((member_key, seq)::text ORDER BY points) FROM loyalty.transfer('ann', 'bob', 70, 't1')),
	(SELECT array_agg((member_key, seq)::text ORDER BY points) FROM t1),
	'a repeat returns the first two entries');
SELECT is(loyalty.balance('ann') + loyalty.balance('bob'), 150::bigint, 'and moves nothing');
SELECT is(pg_temp.err($$SELECT loyalty.transfer('ann', 'bob', 71, 't1')$$),
	format('LY004: reference "t1" was already used for a different transfer in program "shop" | Entry %s of member "ann" sends 70 points. | Use a new reference for a new request; repeat a request with the same arguments.',
		   (SELECT seq FROM t1 WHERE points < 0)),
	'the reference with other points: LY004');
SELECT throws_ok($$SELECT loyalty.transfer('ann', 'cat', 70, 't1')$$, 'LY004', NULL, 'the reference to another receiver');
SELECT is(pg_temp.err($$SELECT loyalty.transfer('cat', 'bob', 70, 't1')$$),
	format('LY004: reference "t1" was already used for a different transfer in program "shop" | Entry %s of member "bob" receives 70 points. | Use a new reference for a new request; repeat a request with the same arguments.',
		   (SELECT seq FROM t1 WHERE points > 0)),
	'another sender''s reference that the receiver already received: LY004');
SELECT is((SELECT array_agg(points ORDER BY points) FROM loyalty.transfer('bob', 'ann', 5, 't1')), '{-5,5}'::bigint[],
	'references are per member: bob may send with the reference he received');
SELECT is((SELECT count(*) FROM loyalty.transfer('bob', 'ann', 5)), 2::bigint, 'without a reference: a new transfer each time');
SELECT is((SELECT count(*) FROM loyalty.transfer('bob', 'ann', 5)), 2::bigint, 'and another');
SELECT is(loyalty.balance('bob'), 55::bigint, 'bob gave 15 back');
SELECT is((SELECT count(*) FROM loyalty.transfer(1, 2, 30, 'k-t')), 2::bigint, 'any key type through the anyelement version');
SELECT is(loyalty.balance(2), 30::bigint, 'member 2 got 30');

------------------------------------------------------------------------------
-- donations to cause accounts
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.register_cause('redcross', ' ')$$, '22023', 'a cause needs a name', 'a cause needs a name');
SELECT is((loyalty.register_cause('redcross', 'Red Cros')).name, 'Red Cros', 'register a cause: enrolls the key');
SELECT is((loyalty.register_cause('redcross', 'Red Cross')).name, 'Red Cross', 'registering again renames it');
SELECT is((SELECT count(*) FROM loyalty.causes), 1::bigint, 'one cause');
CREATE TEMP TABLE d1 AS SELECT * FROM loyalty.donate('ann', 'redcross', 10, 'd1');
SELECT results_eq($$SELECT points, reason COLLATE "default" FROM d1 ORDER BY points$$,
	$$VALUES (-10::bigint, 'donation to redcross'), (10, 'donation from ann')$$, 'a donation is a transfer marked as one');
SELECT is(loyalty.balance('redcross'), 10::bigint, 'the cause received 10 points');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'redcross'),
	loyalty.lots_add('{}', 10, now() - interval '335 days' + interval '1 year')::text,
	'with the expiry of the donor''s soonest lot (which bob gave back to ann)');
SELECT is((SELECT array_agg((member_key, seq)::text ORDER BY points) FROM loyalty.donate('ann', 'redcross', 10, 'd1')),
	(SELECT array_agg((member_key, seq)::text ORDER BY points) FROM d1),
	'a repeated donation returns the first entries');
UPDATE loyalty.causes SET active = false;
SELECT throws_ok($$SELECT loyalty.donate('ann', 'redcross', 5, 'd2')$$, 'LY016',
	'member "redcross" is not an active cause account', 'an inactive cause takes no donations');
SELECT is((SELECT count(*) FROM loyalty.transfer('ann', 'redcross', 5, 'd2')), 2::bigint, 'a plain transfer to it still works');
------------------------------------------------------------------------------
-- a receiver with debt and a pending lot that fell due since it was last
-- written: the release comes first, in the balance and in the ledger (the
-- ledger replayed in seq order must give the stored lots)
------------------------------------------------------------------------------
CREATE TABLE sales (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('sales', 'customer', 'total', 'at') IS NOT NULL;
INSERT INTO sales VALUES (1, 'dee', 50, now() - interval '30 days');
SELECT loyalty.redeem('dee', 50) IS NOT NULL;
DELETE FROM sales WHERE id = 1;
-- 80 points earned two days ago, pending until a second ago: what an earlier
-- transaction wrote, untouched since (the ledger entry and the balance as
-- earn() writes them; a test's now() does not move)
WITH e AS (
	INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at, recorded_at)
	SELECT m.program_id, m.member_key, loyalty._next_seq(m.program_id, m.member_key), 'pending', 80,
		   loyalty.lots_add_pending('{}', 80, now() - interval '1 second', now() + interval '1 year'),
		   now() - interval '2 days', now() - interval '2 days'
	  FROM loyalty.members m WHERE m.member_key = 'dee' AND m.program_id = (SELECT id FROM loyalty.programs WHERE code = 'shop')
	RETURNING program_id, member_key, lots)
UPDATE loyalty.members m SET balance = loyalty.lots_merge(m.balance, e.lots) FROM e
 WHERE m.program_id = e.program_id AND m.member_key = e.member_key;
SELECT is(loyalty.lots_debt((SELECT balance FROM loyalty.members WHERE member_key = 'dee' AND program_id = 1)), 50::bigint,
	'dee owes 50 points (a refund after spending) and has 80 points due for release');
SELECT is((SELECT count(*) FROM loyalty.transfer('ann', 'dee', 30, 'to-dee')), 2::bigint, 'ann transfers 30 to dee');
SELECT is(loyalty.balance('dee'), 60::bigint, 'dee: the release pays the debt, the 30 transferred stay: 60 points');
SELECT is((SELECT loyalty.replay(e.lots, CASE WHEN e.kind = 'release' THEN 'release'
											  WHEN e.points < 0 THEN 'debit' ELSE 'credit' END ORDER BY e.seq)::text
			 FROM loyalty.ledger e JOIN loyalty.members m ON m.program_id = e.program_id AND m.member_key = e.member_key
			WHERE m.member_key = 'dee' AND m.program_id = 1),
	(SELECT balance::text FROM loyalty.members WHERE member_key = 'dee' AND program_id = 1),
	'dee''s ledger replayed in write order gives the stored lots (the release is written before the transfer)');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'dee' AND program_id = 1),
	loyalty.lots_add(loyalty.lots_add('{}', 30, now() + interval '1 year'), 30,
					 now() - interval '10 days' + interval '1 year')::text,
	'dee keeps 30 of the released lot (80 less the debt of 50) and ann''s 30 with their expiry');

SELECT ok(EXISTS (SELECT FROM loyalty.statement('bob') WHERE kind = 'transfer' AND reference = 't1'), 'transfers appear in the statement');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
