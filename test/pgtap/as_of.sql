\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(36);

INSERT INTO loyalty.programs (code, name, is_default) VALUES ('never', 'Never expires', true);
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval)
VALUES ('month', '30 days', 'after', '30 days');
INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('pend', 'Pending 14 days', '14 days');

-- ava: the stored lots after every step, to compare with replays later
CREATE TEMP TABLE steps (n int, at timestamptz, lots text);
DO $$
DECLARE
	k text := 'ava';
BEGIN
	PERFORM loyalty.enroll(k);
	PERFORM loyalty.earn(k, 100, 'a-1', '2025-01-01 00:00:00+00');
	INSERT INTO steps SELECT 1, '2025-01-01 00:00:00+00', balance::text FROM loyalty.members WHERE member_key = k;
	PERFORM loyalty.earn(k, 50, 'a-2', '2025-03-01 00:00:00+00');
	INSERT INTO steps SELECT 2, '2025-03-01 00:00:00+00', balance::text FROM loyalty.members WHERE member_key = k;
	PERFORM loyalty.redeem(k, 30, 'a-r');
	PERFORM loyalty.adjust(k, 5, 'goodwill');
	INSERT INTO steps SELECT 3, now(), balance::text FROM loyalty.members WHERE member_key = k;
END $$;

------------------------------------------------------------------------------
-- past instants: replay of the ledger
------------------------------------------------------------------------------
SELECT is(loyalty.balance('ava', '2024-12-31 23:59:59.999999+00'), 0::bigint, 'nothing before the first earning');
SELECT is(loyalty.balance('ava', '2025-01-01 00:00:00+00'), 100::bigint, 'the first earning counts from its instant');
SELECT is(loyalty.balance('ava', '2025-02-28 23:59:59.999999+00'), 100::bigint, 'until the second one');
SELECT is(loyalty.balance('ava', '2025-03-01 00:00:00+00'), 150::bigint, 'both earnings');
SELECT is(loyalty.balance('ava', now() - interval '1 microsecond'), 150::bigint, 'just before the redemption');
SELECT is(loyalty.balance('ava', now()), 125::bigint, 'after redemption and adjustment');
SELECT is(loyalty.balance('ava'), 125::bigint, 'as_of defaults to now');
SELECT is(loyalty.balance('ava', '-infinity'), 0::bigint, 'at -infinity nothing');
SELECT is(loyalty.member_lots('ava', at)::text, lots, format('member_lots as of step %s is what was stored then', n))
  FROM steps ORDER BY n;
SELECT throws_ok($$SELECT loyalty.balance('ava', NULL)$$, '22004', 'as_of must not be null', 'as_of NULL');

------------------------------------------------------------------------------
-- expiry: entries written late, effective at the expiry instant
------------------------------------------------------------------------------
DO $$ BEGIN
	PERFORM loyalty.enroll('max', 'month');
	PERFORM loyalty.earn('max', 70, 'm-1', '2025-01-10 12:00:00+00', 'month');
	PERFORM loyalty.earn('max', 30, 'm-2', now() - interval '10 days', 'month');
END $$;
SELECT results_eq($$SELECT points, effective_at, recorded_at FROM loyalty.ledger
					 WHERE kind = 'expire' AND member_key = 'max'$$,
	$$VALUES (-70::bigint, '2025-02-09 12:00:00+00'::timestamptz, now())$$,
	'the expiry written today is effective at the expiry instant');
SELECT is(loyalty.balance('max', '2025-02-09 11:59:59.999999+00', 'month'), 70::bigint, 'available 1us before expiry');
SELECT is(loyalty.balance('max', '2025-02-09 12:00:00+00', 'month'), 0::bigint, 'gone at the expiry instant');
SELECT is(loyalty.balance('max', '2025-02-09 12:00:00.000001+00', 'month'), 0::bigint, 'gone 1us after');
SELECT results_eq($$SELECT available, pending, expiring_30d, debt FROM loyalty.balance_detail('max', '2025-01-20 00:00:00+00', 'month')$$,
	$$VALUES (70::bigint, 0::bigint, 70::bigint, 0::bigint)$$, 'balance_detail in the past');
SELECT results_eq($$SELECT expires_at, points FROM loyalty.expiring('max', '30 days', '2025-01-20 00:00:00+00', 'month')$$,
	$$VALUES ('2025-02-09 12:00:00+00'::timestamptz, 70::bigint)$$, 'expiring() as of a past instant');

-- future instants: nothing is written, but expired lots do not count
SELECT is(loyalty.balance('max', now() + interval '20 days' - interval '1 microsecond', 'month'), 30::bigint,
		  'available 1us before a future expiry');
SELECT is(loyalty.balance('max', now() + interval '20 days', 'month'), 0::bigint, 'not at the future expiry');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'expire'), 1::bigint, 'future expiries are not written ahead of time');
SELECT results_eq($$SELECT expires_at, points FROM loyalty.expiring('max', program => 'month')$$,
	$$VALUES (now() + interval '20 days', 30::bigint)$$, 'expiring() now, within 30 days');
SELECT is_empty($$SELECT * FROM loyalty.expiring('max', '20 days' - interval '1 microsecond', program => 'month')$$,
	'expiring() within a window that ends before the expiry');
SELECT results_eq($$SELECT available, expiring_30d FROM loyalty.balance_detail('max', program => 'month')$$,
	$$VALUES (30::bigint, 30::bigint)$$, 'balance_detail now');
SELECT results_eq($$SELECT available, expiring_30d FROM loyalty.balance_detail('max', now() + interval '1 year', 'month')$$,
	$$VALUES (0::bigint, 0::bigint)$$, 'balance_detail in a year');
SELECT throws_ok($$SELECT * FROM loyalty.expiring('max', '-1 day', program => 'month')$$, '22023',
	'within must be a non-negative interval', 'expiring() with a negative window');
SELECT throws_ok($$SELECT * FROM loyalty.expiring('max', NULL, program => 'month')$$, '22023',
	'within must be a non-negative interval', 'expiring() with a NULL window');

------------------------------------------------------------------------------
-- pending points as of past and future instants
------------------------------------------------------------------------------
DO $$ BEGIN
	PERFORM loyalty.enroll('pat', 'pend');
	PERFORM loyalty.earn('pat', 40, 'p-1', now() - interval '20 days', 'pend');
	PERFORM loyalty.earn('pat', 15, 'p-2', now() - interval '2 days', 'pend');
END $$;
SELECT is(loyalty.member_lots('pat', now() - interval '10 days', 'pend')::text,
		  loyalty.lots_add_pending('{}', 40, now() - interval '6 days', 'infinity')::text, 'lots as of a past instant while pending');
SELECT results_eq($$SELECT available, pending FROM loyalty.balance_detail('pat', now() - interval '10 days', 'pend')$$,
	$$VALUES (0::bigint, 40::bigint)$$, 'pending, not available, in the past');
SELECT is(loyalty.balance('pat', now() - interval '6 days', 'pend'), 40::bigint, 'available from the past release instant');
SELECT results_eq($$SELECT available, pending FROM loyalty.balance_detail('pat', program => 'pend')$$,
	$$VALUES (40::bigint, 15::bigint)$$, 'now: the second earning is still pending');
SELECT is(loyalty.balance('pat', now() + interval '12 days', 'pend'), 55::bigint, 'available after its future release');

------------------------------------------------------------------------------
-- verify()
------------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is empty on a healthy database');
UPDATE loyalty.members SET balance = '{999 until infinity}' WHERE member_key = 'ava';
SELECT results_eq($$SELECT member_key, program_code, ledger_sum, balance_total FROM loyalty.verify()$$,
	$$VALUES ('ava'::text, 'never'::text, 125::bigint, 999::bigint)$$,
	'verify() reports the member whose stored balance was corrupted');
SELECT is(loyalty.balance('ava', '2025-02-01 00:00:00+00'), 100::bigint, 'past balances come from the ledger, not the stored lots');
UPDATE loyalty.members SET balance = (SELECT lots::loyalty.lots FROM steps WHERE n = 3) WHERE member_key = 'ava';
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is empty again once the balance is restored');

SELECT * FROM finish();
ROLLBACK;
