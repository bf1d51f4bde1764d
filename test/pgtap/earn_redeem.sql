\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(69);

-- main: points expire 30 days (UTC) after they are earned
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, is_default)
VALUES ('main', 'Main', 'after', '30 days', true);
INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('pend', 'Pending 14 days', '14 days');
INSERT INTO loyalty.programs (code, name) VALUES ('never', 'Never expires');
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone)
VALUES ('month_berlin', 'One month, Berlin', 'after', '1 month', 'Europe/Berlin');
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, expiry_extra_periods, time_zone)
VALUES ('quarter_berlin', 'Quarter after next, Berlin', 'period_end', 'quarter', 1, 'Europe/Berlin');
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, time_zone)
VALUES ('year_ny', 'End of year, New York', 'period_end', 'year', 'America/New_York');

DO $$ BEGIN
	PERFORM loyalty.enroll('ann');
	PERFORM loyalty.enroll('bob');
	PERFORM loyalty.enroll('cat');
	PERFORM loyalty.enroll('ann', 'never');
	PERFORM loyalty.enroll('pia', 'pend');
	PERFORM loyalty.enroll('nina', 'never');
	PERFORM loyalty.enroll('nina', 'month_berlin');
	PERFORM loyalty.enroll('nina', 'quarter_berlin');
	PERFORM loyalty.enroll('nina', 'year_ny');
END $$;

------------------------------------------------------------------------------
-- argument checks
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.earn('ann', 0)$$, '22023', 'points must be positive', 'earn 0 points');
SELECT throws_ok($$SELECT loyalty.earn('ann', -5)$$, '22023', 'points must be positive', 'earn negative points');
SELECT throws_ok($$SELECT loyalty.earn('ann', NULL)$$, '22023', 'points must be positive', 'earn NULL points');
SELECT throws_ok($$SELECT loyalty.earn('ann', 5, at => 'infinity')$$, '22008', 'earning time must be a finite timestamp', 'earn at infinity');
SELECT throws_ok($$SELECT loyalty.redeem('ann', 0)$$, '22023', 'points must be positive', 'redeem 0 points');
SELECT throws_ok($$SELECT loyalty.redeem('ann', -1)$$, '22023', 'points must be positive', 'redeem negative points');
SELECT throws_ok($$SELECT loyalty.adjust('ann', 0, 'nothing')$$, '22023', 'adjustment must not be zero', 'adjust by 0');
SELECT throws_ok($$SELECT loyalty.adjust('ann', 5, NULL)$$, '22023', 'an adjustment needs a reason', 'adjust without a reason');
SELECT throws_ok($$SELECT loyalty.adjust('ann', 5, '   ')$$, '22023', 'an adjustment needs a reason', 'adjust with a blank reason');
SELECT throws_ok($$SELECT loyalty.adjust('ann', -9223372036854775808, 'all of it')$$, '22003', 'adjustment out of range', 'adjust by min bigint');
SELECT is((SELECT count(*) FROM loyalty.ledger), 0::bigint, 'refused calls wrote nothing');

------------------------------------------------------------------------------
-- earn
------------------------------------------------------------------------------
CREATE TEMP TABLE e1 AS SELECT * FROM loyalty.earn('ann', 100, 'o-1', now() - interval '25 days');
CREATE TEMP TABLE e2 AS SELECT * FROM loyalty.earn('ann', 100, 'o-2', now() - interval '20 days');
CREATE TEMP TABLE e3 AS SELECT * FROM loyalty.earn('ann', 100, 'o-3', now() - interval '5 days');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", effective_at FROM e1$$,
	$$VALUES ('earn'::text, 100::bigint, loyalty.lots_add('{}', 100, now() + interval '5 days')::text, 'o-1'::text,
			  now() - interval '25 days')$$,
	'earn returns its ledger entry: 100 points expiring 30 days after the earning time');
SELECT is(loyalty.balance('ann'), 300::bigint, 'three earnings: 300 points');

-- idempotency
SELECT is((loyalty.earn('ann', 100, 'o-1', now() - interval '25 days')).seq, (SELECT seq FROM e1),
		  'the same earn request returns the first ledger entry');
SELECT is((loyalty.earn('ann', 100, 'o-1')).seq, (SELECT seq FROM e1),
		  'a retry with another earning time is still the same request');
SELECT is(loyalty.balance('ann'), 300::bigint, 'and credits nothing more');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference = 'o-1'), 1::bigint, 'one ledger entry for the reference');
SELECT throws_ok($$SELECT loyalty.earn('ann', 101, 'o-1')$$, 'LY004',
	'reference "o-1" was already used for a different earn in program "main"', 'same reference, other points');
SELECT isnt((SELECT (l.program_id, l.member_key, l.seq)::text FROM loyalty.earn('bob', 100, 'o-1') l),
			(SELECT (program_id, member_key, seq)::text FROM e1),
			'references are per member: the same reference for another member is its own request');
SELECT isnt((SELECT (l.program_id, l.member_key, l.seq)::text FROM loyalty.earn('ann', 5, 'o-1', program => 'never') l),
			(SELECT (program_id, member_key, seq)::text FROM e1),
			'references are per program');
SELECT is(loyalty.balance('ann', program => 'never'), 5::bigint, 'and the other program credits its own request');
SELECT is(loyalty.balance('bob'), 100::bigint, 'and credits the other member');
SELECT is((loyalty.earn('bob', 100, 'o-1')).seq,
		  (SELECT l.seq FROM loyalty.ledger l WHERE l.member_key = 'bob' AND l.reference = 'o-1'),
		  'whose retry returns its own entry');
SELECT throws_ok($$SELECT loyalty.earn('bob', 99, 'o-1')$$, 'LY004',
	'reference "o-1" was already used for a different earn in program "main"',
	'and whose other use of the reference is refused');

------------------------------------------------------------------------------
-- redeem: FIFO by soonest expiry
------------------------------------------------------------------------------
CREATE TEMP TABLE r1 AS SELECT * FROM loyalty.redeem('ann', 150, 'rw-1');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", effective_at FROM r1$$,
	$$VALUES ('redeem'::text, -150::bigint,
			  loyalty.lots_add(loyalty.lots_add('{}', 100, now() + interval '5 days'), 50, now() + interval '10 days')::text,
			  'rw-1'::text, now())$$,
	'redeem draws the soonest-expiring lots first and records which');
SELECT is(loyalty.member_lots('ann')::text,
		  loyalty.lots_add(loyalty.lots_add('{}', 50, now() + interval '10 days'), 100, now() + interval '25 days')::text,
		  'the later lots are left');
SELECT is(loyalty.balance('ann'), 150::bigint, '300 - 150');
SELECT is((loyalty.redeem('ann', 150, 'rw-1')).seq, (SELECT seq FROM r1), 'the same redeem request returns the first entry');
SELECT is(loyalty.balance('ann'), 150::bigint, 'and debits nothing more');
SELECT throws_ok($$SELECT loyalty.redeem('ann', 10, 'rw-1')$$, 'LY004',
	'reference "rw-1" was already used for a different redeem in program "main"', 'same redeem reference, other points');

-- earn and redeem references are separate
DO $$ BEGIN PERFORM loyalty.earn('cat', 10, 'c-1', now() - interval '1 day'); END $$;
SELECT lives_ok($$SELECT loyalty.redeem('cat', 3, 'c-1')$$, 'a redeem may use a reference an earn used');
SELECT is(loyalty.balance('cat'), 7::bigint, 'and both count');

-- insufficient points: an error and nothing changed
CREATE TEMP TABLE before AS
	SELECT (SELECT count(*) FROM loyalty.ledger) AS entries,
		   (SELECT balance::text FROM loyalty.members WHERE member_key = 'ann' AND program_id = (SELECT program_id FROM e1)) AS lots;
SELECT throws_ok($$SELECT loyalty.redeem('ann', 151, 'rw-2')$$, 'LY001', 'insufficient points', 'redeem one point too many');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM before), 'no ledger entry was written');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'ann' AND program_id = (SELECT program_id FROM e1)),
		  (SELECT lots FROM before), 'the stored balance is unchanged');
SELECT is(loyalty.balance('ann'), 150::bigint, 'the balance is still 150');
SELECT lives_ok($$SELECT loyalty.redeem('ann', 1, 'rw-2')$$, 'the refused reference is still free');
SELECT is(loyalty.balance('ann'), 149::bigint, 'the later request counted');

------------------------------------------------------------------------------
-- adjust
------------------------------------------------------------------------------
CREATE TEMP TABLE a1 AS SELECT * FROM loyalty.adjust('ann', -20, 'damaged goods', 'adj-1');
SELECT results_eq($$SELECT kind::text, points, lots::text, reason FROM a1$$,
	$$VALUES ('adjust'::text, -20::bigint, loyalty.lots_add('{}', 20, now() + interval '10 days')::text, 'damaged goods'::text)$$,
	'a negative adjustment removes points FIFO');
SELECT is((loyalty.adjust('ann', -20, 'damaged goods', 'adj-1')).seq, (SELECT seq FROM a1), 'adjust is idempotent on reference');
SELECT is(loyalty.balance('ann'), 129::bigint, '149 - 20');
SELECT results_eq($$SELECT points, lots::text, reason FROM loyalty.adjust('ann', 10, 'goodwill')$$,
	$$VALUES (10::bigint, loyalty.lots_add('{}', 10, now() + interval '30 days')::text, 'goodwill'::text)$$,
	'a positive adjustment adds points expiring under the program policy from now');
SELECT is(loyalty.balance('ann'), 139::bigint, '129 + 10');
SELECT throws_ok($$SELECT loyalty.adjust('ann', -140, 'too much')$$, 'LY001', 'insufficient points', 'adjust below zero');
SELECT throws_ok($$SELECT loyalty.adjust('ann', 9223372036854775807, 'too much')$$, '22003', 'points total out of range',
	'adjust past bigint');
SELECT is(loyalty.balance('ann'), 139::bigint, 'refused adjustments change nothing');
SELECT is((loyalty.redeem('ann', 150, 'rw-1')).seq, (SELECT seq FROM r1),
		  'a retry of a redemption that succeeded returns it even when the points are no longer there');
SELECT is(loyalty.balance('ann'), 139::bigint, 'and takes nothing');
DO $$ BEGIN
	PERFORM loyalty.earn('cat', 1, NULL, now() - interval '1 day');
	PERFORM loyalty.earn('cat', 1, NULL, now() - interval '1 day');
END $$;
SELECT is(loyalty.balance('cat'), 9::bigint, 'without a reference every call counts');

------------------------------------------------------------------------------
-- pending points
------------------------------------------------------------------------------
CREATE TEMP TABLE p1 AS SELECT * FROM loyalty.earn('pia', 40, 'p-1', now() - interval '20 days', 'pend');
SELECT results_eq($$SELECT kind::text, points, lots::text FROM p1$$,
	$$VALUES ('pending'::text, 40::bigint, loyalty.lots_add_pending('{}', 40, now() - interval '6 days', 'infinity')::text)$$,
	'an earning is pending for the pending interval');
SELECT results_eq($$SELECT kind::text, points, effective_at FROM loyalty.ledger
					 WHERE (program_id, member_key) = (SELECT program_id, member_key FROM p1) ORDER BY seq$$,
	$$VALUES ('pending'::text, 40::bigint, now() - interval '20 days'), ('release', 0, now() - interval '6 days')$$,
	'a release entry is written at the release instant once it has passed');
SELECT is(loyalty.balance('pia', program => 'pend'), 40::bigint, 'released points are available');
DO $$ BEGIN PERFORM loyalty.earn('pia', 25, 'p-2', now() - interval '5 days', 'pend'); END $$;
SELECT results_eq($$SELECT available, pending FROM loyalty.balance_detail('pia', program => 'pend')$$,
	$$VALUES (40::bigint, 25::bigint)$$, 'points still in their pending interval are pending, not available');
SELECT throws_ok($$SELECT loyalty.redeem('pia', 41, program => 'pend')$$, 'LY001', 'insufficient points',
	'pending points cannot be redeemed');
SELECT is(loyalty.balance('pia', now() + interval '9 days' - interval '1 microsecond', 'pend'), 40::bigint,
		  'still pending 1us before the release');
SELECT is(loyalty.balance('pia', now() + interval '9 days', 'pend'), 65::bigint, 'available from the release instant');
CREATE TEMP TABLE f1 AS SELECT * FROM loyalty.earn('nina', 10, 'f-1', now() + interval '1 day', 'never');
SELECT is((SELECT kind FROM f1), 'pending', 'points earned at a future instant are pending until then');
SELECT is(loyalty.balance('nina', program => 'never'), 0::bigint, 'not available now');
SELECT is(loyalty.balance('nina', now() + interval '1 day', 'never'), 10::bigint, 'available at the earning instant');

------------------------------------------------------------------------------
-- expiry policies
------------------------------------------------------------------------------
SELECT is((SELECT expires_at FROM loyalty.lots_entries((loyalty.earn('nina', 1, 'x-1', '2025-05-15 12:00:00+00', 'never')).lots)),
		  'infinity'::timestamptz, 'never: points never expire');
SELECT is((SELECT expires_at FROM loyalty.lots_entries((loyalty.earn('nina', 1, 'x-2', '2025-01-31 10:00 Europe/Berlin', 'month_berlin')).lots)),
		  '2025-02-28 09:00:00+00'::timestamptz, 'after 1 month in Berlin: Jan 31 10:00 -> Feb 28 10:00 local');
SELECT is((SELECT expires_at FROM loyalty.lots_entries((loyalty.earn('nina', 1, 'x-3', '2025-05-15 12:00:00+00', 'quarter_berlin')).lots)),
		  '2025-09-30 22:00:00+00'::timestamptz, 'period_end quarter + 1: end of Q3, Berlin midnight');
SELECT is((SELECT expires_at FROM loyalty.lots_entries((loyalty.earn('nina', 1, 'x-4', '2025-07-04 12:00 America/New_York', 'year_ny')).lots)),
		  '2026-01-01 05:00:00+00'::timestamptz, 'period_end year: New York midnight on Jan 1');
SELECT is((SELECT expires_at FROM loyalty.lots_entries((loyalty.earn('nina', 1, 'x-5', '2025-09-30 21:59:59.999999+00', 'quarter_berlin')).lots)),
		  '2025-12-31 23:00:00+00'::timestamptz, 'the last microsecond of Q3 in Berlin belongs to Q3 (expires end of Q4)');
SELECT results_eq($$SELECT kind::text, points, effective_at FROM loyalty.ledger
					 WHERE member_key = 'nina'
					   AND program_id = (SELECT id FROM loyalty.programs WHERE code = 'month_berlin')
					 ORDER BY seq$$,
	$$VALUES ('earn'::text, 1::bigint, '2025-01-31 09:00:00+00'::timestamptz), ('expire', -1, '2025-02-28 09:00:00+00')$$,
	'points earned long ago are expired at once, effective at their expiry');
SELECT is(loyalty.balance('nina', program => 'month_berlin'), 0::bigint, 'and are not available');

-- FIFO across programs is not a thing: each program has its own lots
SELECT is(loyalty.balance('ann', program => 'never'), 5::bigint, 'redeeming in main left the never program alone');

------------------------------------------------------------------------------
-- the stored balance agrees with the ledger
------------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong after all of the above');
SELECT is((SELECT sum(points) FROM loyalty.ledger WHERE (program_id, member_key) = (SELECT program_id, member_key FROM e1))::bigint,
		  139::bigint, 'the ledger of ann in main sums to her balance');

SELECT * FROM finish();
ROLLBACK;
