\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(47);

------------------------------------------------------------------------------
-- CHECK constraints
------------------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO loyalty.programs (code, name) VALUES ('base', 'Base')$$, 'a program with defaults');
SELECT results_eq($$SELECT currency, points_per_unit, rounding, point_value, expiry_policy, pending_interval, time_zone, is_default
					  FROM loyalty.programs WHERE code = 'base'$$,
	$$VALUES ('USD'::text, 1::numeric, 'floor'::text, 0.01::numeric, 'never'::text, interval '0', 'UTC'::text, false)$$,
	'defaults: USD, 1 point per unit, floor, 0.01, never expires, no pending, UTC, not default');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name) VALUES ('bad code', 'x')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_code_check"', 'code with a space');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name) VALUES ('', 'x')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_code_check"', 'empty code');
SELECT throws_ok(format($$INSERT INTO loyalty.programs (code, name) VALUES (%L, 'x')$$, repeat('a', 65)), '23514',
	'new row for relation "programs" violates check constraint "programs_code_check"', 'code of 65 characters');
SELECT lives_ok(format($$INSERT INTO loyalty.programs (code, name) VALUES (%L, 'x')$$, repeat('a', 64)), 'code of 64 characters');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name) VALUES ('base', 'again')$$, '23505', NULL, 'codes are unique');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, currency) VALUES ('c1', 'x', 'usd')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_currency_check"', 'lower-case currency');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, points_per_unit) VALUES ('c2', 'x', -1)$$, '23514',
	'new row for relation "programs" violates check constraint "programs_points_per_unit_check"', 'negative rate');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, rounding) VALUES ('c3', 'x', 'bankers')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_rounding_check"', 'unknown rounding');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, point_value) VALUES ('c4', 'x', -0.01)$$, '23514',
	'new row for relation "programs" violates check constraint "programs_point_value_check"', 'negative point value');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy) VALUES ('c5', 'x', 'sometimes')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_expiry_policy_check"', 'unknown expiry policy');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy) VALUES ('c6', 'x', 'after')$$, '23514',
	'new row for relation "programs" violates check constraint "expiry_after_needs_interval"', 'after without an interval');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_interval) VALUES ('c7', 'x', '1 year')$$, '23514',
	'new row for relation "programs" violates check constraint "expiry_after_needs_interval"', 'an interval without policy after');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval) VALUES ('c8', 'x', 'after', '0')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_expiry_interval_check"', 'zero expiry interval');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy) VALUES ('c9', 'x', 'period_end')$$, '23514',
	'new row for relation "programs" violates check constraint "expiry_period_end_needs_period"', 'period_end without a period');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_period) VALUES ('c10', 'x', 'month')$$, '23514',
	'new row for relation "programs" violates check constraint "expiry_period_end_needs_period"', 'a period without policy period_end');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period) VALUES ('c11', 'x', 'period_end', 'week')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_expiry_period_check"', 'unsupported period');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, expiry_extra_periods) VALUES ('c12', 'x', 'period_end', 'month', 1001)$$, '23514',
	'new row for relation "programs" violates check constraint "programs_expiry_extra_periods_check"', 'too many extra periods');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, expiry_extra_periods) VALUES ('c13', 'x', 'period_end', 'month', -1)$$, '23514',
	'new row for relation "programs" violates check constraint "programs_expiry_extra_periods_check"', 'negative extra periods');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('c14', 'x', '-1 day')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_pending_interval_check"', 'negative pending interval');

-- Points count as earned when released, so expiry runs from the release:
-- earned late in May, released in June, one extra period: end of July.
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, expiry_extra_periods, pending_interval)
VALUES ('monthly', 'Monthly', 'period_end', 'month', 1, '14 days');
DO $$ BEGIN PERFORM loyalty.enroll('m1', 'monthly'); END $$;
SELECT is((loyalty.earn('m1', 10, 'late-in-month', '2025-05-25 12:00:00+00', 'monthly')).lots::text,
		  '{pending 10 from 2025-06-08 12:00:00+00 until 2025-08-01 00:00:00+00}',
		  'earned late in May: pending 14 days, released in June, expiring at the end of July');

-- expiry_interval > '0' compares intervals with 30-day months, so
-- '1 mon -29 days' passes; from 1 February it ends on 31 January.  Such a
-- program must be refused, or earn must refuse such points; otherwise the
-- ledger expires points before they were earned, and a replay as of
-- 31 January 12:00 has to remove points it never added.
CREATE FUNCTION pg_temp.backwards_expiry() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text;
BEGIN
	BEGIN
		INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval)
		VALUES ('backwards', 'Backwards', 'after', '1 mon -29 days');
	EXCEPTION WHEN check_violation THEN
		RETURN 'refused';
	END;
	PERFORM loyalty.enroll('b1', 'backwards');
	BEGIN
		PERFORM loyalty.earn('b1', 10, 'b-1', '2025-02-01 00:00:00+00', 'backwards');
	EXCEPTION WHEN invalid_parameter_value OR datetime_field_overflow THEN
		RETURN 'refused';
	END;
	BEGIN
		PERFORM loyalty.balance('b1', '2025-01-31 12:00:00+00', 'backwards');
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		RETURN 'accepted; then balance as of 2025-01-31 12:00 fails: ' || st || ' ' || msg;
	END;
	IF EXISTS (SELECT 1 FROM loyalty.ledger WHERE kind = 'expire' AND effective_at < '2025-02-01 00:00:00+00') THEN
		RETURN 'accepted; points expire before they are earned';
	END IF;
	RETURN 'ok';
END
$$;
SELECT matches(pg_temp.backwards_expiry(), '^(refused|ok)$',
	'an expiry interval that can end before it starts is refused, or never expires points before they are earned');

------------------------------------------------------------------------------
-- default program resolution
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.enroll('x')$$, 'LY003', 'no default loyalty program', 'no default program');
SELECT throws_ok($$SELECT loyalty.points_for(10)$$, 'LY003', 'no default loyalty program', 'points_for without a default program');
SELECT throws_ok($$SELECT loyalty.enroll('x', 'nope')$$, 'LY003', 'loyalty program "nope" does not exist', 'unknown program');
SELECT throws_ok($$SELECT loyalty.balance('x', now(), 'nope')$$, 'LY003', 'loyalty program "nope" does not exist', 'unknown program in balance');

INSERT INTO loyalty.programs (code, name, points_per_unit, rounding, is_default)
VALUES ('half', 'Half up', 1.5, 'half_up', true);
INSERT INTO loyalty.programs (code, name, points_per_unit, rounding)
VALUES ('ceil', 'Ceil', 1.5, 'ceil'), ('floor', 'Floor', 1.5, 'floor'), ('one', 'One', 1, 'half_up');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, is_default) VALUES ('d2', 'x', true)$$, '23505', NULL,
	'only one default program');
SELECT is((loyalty.enroll('x')).program_id, (SELECT id FROM loyalty.programs WHERE code = 'half'), 'no program => the default program');
SELECT is((loyalty.enroll('x', 'ceil')).program_id, (SELECT id FROM loyalty.programs WHERE code = 'ceil'), 'program => code picks that program');

------------------------------------------------------------------------------
-- points_for: rate and rounding
------------------------------------------------------------------------------
SELECT is(loyalty.points_for(2.9), 4::bigint, 'default program (half_up, 1.5): 4.35 -> 4');
SELECT is(loyalty.points_for(3.1, 'half'), 5::bigint, 'half_up: 4.65 -> 5');
SELECT is(loyalty.points_for(3.0, 'half'), 5::bigint, 'half_up: 4.5 -> 5');
SELECT is(loyalty.points_for(-3.0, 'half'), -5::bigint, 'half_up: -4.5 -> -5 (away from zero)');
SELECT is(loyalty.points_for(-2.9, 'half'), -4::bigint, 'half_up: -4.35 -> -4');
SELECT is(loyalty.points_for(2.9, 'floor'), 4::bigint, 'floor: 4.35 -> 4');
SELECT is(loyalty.points_for(3.3, 'floor'), 4::bigint, 'floor: 4.95 -> 4');
SELECT is(loyalty.points_for(-2.9, 'floor'), -5::bigint, 'floor: -4.35 -> -5');
SELECT is(loyalty.points_for(2.9, 'ceil'), 5::bigint, 'ceil: 4.35 -> 5');
SELECT is(loyalty.points_for(-3.3, 'ceil'), -4::bigint, 'ceil: -4.95 -> -4');
SELECT is(loyalty.points_for(0.49, 'one'), 0::bigint, 'half_up: 0.49 -> 0');
SELECT is(loyalty.points_for(NULL, 'one'), NULL::bigint, 'NULL amount gives NULL');
SELECT is(loyalty.points_for(9223372036854775807, 'one'), 9223372036854775807::bigint, 'the largest bigint fits');
SELECT throws_ok($$SELECT loyalty.points_for(9223372036854775807.5, 'one')$$, '22003',
	'points for amount 9223372036854775807.5 out of range', 'half_up rounding past bigint');
SELECT throws_ok($$SELECT loyalty.points_for(6148914691236517205, 'ceil')$$, '22003',
	'points for amount 6148914691236517205 out of range', 'rate pushes the points past bigint');
SELECT throws_ok($$SELECT loyalty.points_for(1e30, 'floor')$$, '22003', NULL, 'huge amount');

------------------------------------------------------------------------------
-- pg_dump keeps the configuration and data
------------------------------------------------------------------------------
SELECT set_has($$SELECT c::regclass::text FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'loyalty'$$,
	$$VALUES ('loyalty.programs'), ('loyalty.programs_id_seq'), ('loyalty.members'), ('loyalty.ledger')$$,
	'programs, members, ledger and the programs'' sequence are dumped by pg_dump');

SELECT * FROM finish();
ROLLBACK;
