-- Programs are rows; members are the application's customer keys.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

INSERT INTO loyalty.programs (code, name, currency, points_per_unit, rounding,
                              expiry_policy, expiry_interval, time_zone, is_default)
VALUES ('shop', 'Shop Points', 'EUR', 2, 'half_up', 'after', '12 months', 'Europe/Berlin', true);

INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, expiry_extra_periods,
                              time_zone)
VALUES ('club', 'Club', 'period_end', 'year', 0, 'America/New_York');

-- Configuration is checked.
\set VERBOSITY terse
INSERT INTO loyalty.programs (code, name, time_zone) VALUES ('bad', 'Bad', 'Mars/Olympus');
INSERT INTO loyalty.programs (code, name, expiry_policy) VALUES ('bad', 'Bad', 'after');
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('bad', 'Bad', true);
\set VERBOSITY default

-- Points for an amount: rate 2, rounding half up.
SELECT amount, loyalty.points_for(amount) FROM (VALUES (10.24), (10.25), (0.2)) v(amount);

-- When points earned at an instant expire, in the program's zone.
SELECT code, loyalty.expiry_for(p, '2026-03-28 23:30:00+00') AT TIME ZONE time_zone AS local_expiry
  FROM loyalty.programs p ORDER BY id;

-- Members keyed by text, bigint or uuid; the key is stored as text.
SELECT member_key FROM loyalty.enroll('alice');
SELECT member_key FROM loyalty.enroll(42::bigint);
SELECT member_key FROM loyalty.enroll('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid);
SELECT member_key FROM loyalty.enroll('bob', program => 'club');
-- 42 and '42' are the same member.
SELECT count(*) FROM loyalty.members WHERE member_key = '42';
SELECT enrolled_at = (loyalty.enroll('42')).enrolled_at AS same_member FROM loyalty.members WHERE member_key = '42';

-- Unknown members and programs are errors with their own SQLSTATE.
\set VERBOSITY sqlstate
SELECT loyalty.balance('nobody');
SELECT loyalty.balance('alice', program => 'nope');
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT loyalty.balance('nobody');
