\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(36);

INSERT INTO loyalty.programs (code, name, is_default) VALUES ('main', 'Main', true);
INSERT INTO loyalty.programs (code, name) VALUES ('other', 'Other');

------------------------------------------------------------------------------
-- enroll
------------------------------------------------------------------------------
CREATE TEMP TABLE first_enroll AS SELECT * FROM loyalty.enroll('alice', at => '2025-01-01 00:00:00+00');
SELECT is(member_key, 'alice', 'enroll returns the member row') FROM first_enroll;
SELECT is(program_id, (SELECT id FROM loyalty.programs WHERE code = 'main'), 'in the default program') FROM first_enroll;
SELECT is(balance::text, '{}', 'with an empty balance') FROM first_enroll;
SELECT is(enrolled_at, '2025-01-01 00:00:00+00'::timestamptz, 'enrolled at the given instant') FROM first_enroll;
SELECT is((SELECT (program_id, member_key, enrolled_at)::text FROM loyalty.enroll('alice', at => '2025-06-01 00:00:00+00')),
		  (SELECT (program_id, member_key, enrolled_at)::text FROM first_enroll),
		  'enrolling again returns the same member');
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'alice'), '2025-01-01 00:00:00+00'::timestamptz,
		  'enrolling again keeps the first enrollment time');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 'alice'), 1::bigint, 'one row after two enrollments');
SELECT is((loyalty.enroll('zed', at => NULL)).enrolled_at, now(), 'enroll at => NULL means now()');
SELECT isnt((loyalty.enroll('alice', 'other')).program_id, (SELECT program_id FROM first_enroll),
			'the same key in another program is another member');
SELECT throws_ok($$INSERT INTO loyalty.members (program_id, member_key) SELECT program_id, member_key FROM first_enroll$$,
	'23505', NULL, 'members are unique per program and key');

------------------------------------------------------------------------------
-- keys of any type are stored as text
------------------------------------------------------------------------------
SELECT is((loyalty.enroll(42::bigint)).member_key, '42', 'a bigint key is stored as its text');
SELECT is((SELECT (program_id, member_key, enrolled_at)::text FROM loyalty.enroll('42')),
		  (SELECT (program_id, member_key, enrolled_at)::text FROM loyalty.members
			WHERE member_key = '42' AND program_id = (SELECT program_id FROM first_enroll)),
		  '''42'' is the same member as 42::bigint');
SELECT is((loyalty.enroll(42)).enrolled_at, (loyalty.enroll(42::bigint)).enrolled_at, 'an integer 42 is the same member too');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = '42'), 1::bigint, 'one member for 42, ''42'' and 42::bigint');
SELECT is((loyalty.enroll('7D444840-9DC0-11D1-B245-5FFDCE74FAD2'::uuid)).member_key, '7d444840-9dc0-11d1-b245-5ffdce74fad2',
		  'a uuid key is stored in its canonical text form');

DO $$ BEGIN
	PERFORM loyalty.earn(42::bigint, 5, 'k1', '2025-02-01 00:00:00+00');
	PERFORM loyalty.earn('42', 3, 'k2', '2025-02-02 00:00:00+00');
	PERFORM loyalty.earn('7d444840-9dc0-11d1-b245-5ffdce74fad2'::uuid, 11, 'k3', '2025-02-03 00:00:00+00');
END $$;
SELECT is(loyalty.balance('42'), 8::bigint, 'points earned under 42::bigint and ''42'' land on one balance (text key)');
SELECT is(loyalty.balance(42::bigint), 8::bigint, 'and the bigint key reads the same balance');
SELECT is(loyalty.balance('7d444840-9dc0-11d1-b245-5ffdce74fad2'), 11::bigint, 'uuid key: earned as uuid, read as text');
SELECT is(loyalty.balance('7d444840-9dc0-11d1-b245-5ffdce74fad2'::uuid), 11::bigint, 'uuid key: read as uuid');
SELECT is(loyalty.balance('alice', program => 'other'), 0::bigint, 'the other program''s alice is untouched');

-- last_activity_at follows the latest activity, not the latest call
DO $$ BEGIN
	PERFORM loyalty.earn('alice', 1, 'a1', '2025-03-01 00:00:00+00');
	PERFORM loyalty.earn('alice', 1, 'a2', '2025-02-01 00:00:00+00');
END $$;
SELECT is((SELECT last_activity_at FROM loyalty.members WHERE (program_id, member_key) = (SELECT program_id, member_key FROM first_enroll)),
		  '2025-03-01 00:00:00+00'::timestamptz, 'a backdated earning does not move last_activity_at back');

------------------------------------------------------------------------------
-- unknown members and null keys
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.earn('ghost', 5)$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'earn: unknown member');
SELECT throws_ok($$SELECT loyalty.redeem('ghost', 5)$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'redeem: unknown member');
SELECT throws_ok($$SELECT loyalty.adjust('ghost', 5, 'why')$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'adjust: unknown member');
SELECT throws_ok($$SELECT loyalty.balance('ghost')$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'balance: unknown member');
SELECT throws_ok($$SELECT * FROM loyalty.statement('ghost')$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'statement: unknown member');
SELECT throws_ok($$SELECT * FROM loyalty.expiring('ghost')$$, 'LY002',
	'member "ghost" is not enrolled in loyalty program "main"', 'expiring: unknown member');
SELECT throws_ok($$SELECT loyalty.balance(43::bigint)$$, 'LY002',
	'member "43" is not enrolled in loyalty program "main"', 'balance: unknown bigint member');
SELECT throws_ok($$SELECT loyalty.earn(42::bigint, 5, program => 'other')$$, 'LY002',
	'member "42" is not enrolled in loyalty program "other"', 'enrolled in one program is not enrolled in another');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key IN ('ghost', '43')), 0::bigint,
		  'failed calls enroll nobody');
SELECT throws_ok($$SELECT loyalty.enroll(NULL::text)$$, '22004', 'member key must not be null', 'enroll: null text key');
SELECT throws_ok($$SELECT loyalty.enroll(NULL::bigint)$$, '22004', 'member key must not be null', 'enroll: null bigint key');
SELECT throws_ok($$SELECT loyalty.earn(NULL::text, 5)$$, '22004', 'member key must not be null', 'earn: null key');
SELECT throws_ok($$SELECT loyalty.redeem(NULL::uuid, 5)$$, '22004', 'member key must not be null', 'redeem: null uuid key');
SELECT throws_ok($$SELECT loyalty.balance(NULL::text)$$, '22004', 'member key must not be null', 'balance: null key');

------------------------------------------------------------------------------
-- a member with history cannot vanish
------------------------------------------------------------------------------
-- Either the member row is protected, or verify() reports the entries it left behind.
CREATE FUNCTION pg_temp.delete_member(k text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	pid integer := (SELECT id FROM loyalty.programs WHERE is_default);
BEGIN
	BEGIN
		DELETE FROM loyalty.members WHERE member_key = k AND program_id = pid;
	EXCEPTION WHEN SQLSTATE '23503' OR SQLSTATE 'LY005' THEN
		RETURN 'refused';
	END;
	RETURN (SELECT count(*) FROM loyalty.verify() v
			 WHERE v.member_key = k AND v.ledger_sum = 8 AND v.problem ~ 'does not exist')::text;
END
$$;
SELECT matches(pg_temp.delete_member('42'), '^(refused|1)$',
	'deleting a member with ledger entries is refused, or verify() reports the orphaned entries');
SELECT * FROM finish();
ROLLBACK;
