\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(43);

------------------------------------------------------------------------------
-- tz_add: days and months on the wall clock of the zone, time as elapsed time
------------------------------------------------------------------------------
-- Europe/Berlin: CET->CEST on Sunday 2026-03-29, CEST->CET on Sunday 2026-10-25
-- America/New_York: EST->EDT on Sunday 2026-03-08, EDT->EST on Sunday 2026-11-01
SELECT is(loyalty.tz_add('2026-03-28 12:00 Europe/Berlin', '1 day', 'Europe/Berlin'),
		  '2026-03-29 10:00:00+00'::timestamptz, 'Berlin spring forward: +1 day is 23 hours');
SELECT is((loyalty.tz_add('2026-03-28 12:00 Europe/Berlin', '1 day', 'Europe/Berlin') AT TIME ZONE 'Europe/Berlin')::time,
		  '12:00'::time, 'Berlin spring forward: +1 day keeps 12:00 local');
SELECT is(loyalty.tz_add('2026-03-28 12:00 Europe/Berlin', '24 hours', 'Europe/Berlin'),
		  '2026-03-29 11:00:00+00'::timestamptz, 'hours are elapsed time, not wall-clock time');
SELECT is(loyalty.tz_add('2026-03-28 12:00 Europe/Berlin', '1 day', 'UTC'),
		  '2026-03-29 11:00:00+00'::timestamptz, 'the same instant + 1 day in UTC is 24 hours');
SELECT is(loyalty.tz_add('2026-10-24 12:00 Europe/Berlin', '1 day', 'Europe/Berlin'),
		  '2026-10-25 11:00:00+00'::timestamptz, 'Berlin fall back: +1 day is 25 hours');
SELECT is(loyalty.tz_add('2026-03-07 12:00 America/New_York', '1 day', 'America/New_York'),
		  '2026-03-08 16:00:00+00'::timestamptz, 'New York spring forward: +1 day keeps 12:00 local');
SELECT is(loyalty.tz_add('2026-10-31 12:00 America/New_York', '1 day', 'America/New_York'),
		  '2026-11-01 17:00:00+00'::timestamptz, 'New York fall back: +1 day keeps 12:00 local');
SELECT is(loyalty.tz_add('2026-02-20 12:00 America/New_York', '30 days', 'America/New_York'),
		  '2026-03-22 16:00:00+00'::timestamptz, 'New York: 30 days across the change keep 12:00 local');
SELECT is(loyalty.tz_add('2026-03-28 02:30 Europe/Berlin', '1 day', 'Europe/Berlin'),
		  '2026-03-29 01:30:00+00'::timestamptz, 'a wall-clock time in the DST gap resolves as PostgreSQL does (03:30 CEST)');
SELECT is(loyalty.tz_add('2026-10-24 02:30 Europe/Berlin', '1 day', 'Europe/Berlin'),
		  '2026-10-25 01:30:00+00'::timestamptz, 'an ambiguous wall-clock time resolves as PostgreSQL does (02:30 CET)');

SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT is(loyalty.tz_add('2026-03-28 11:00:00+00', '1 day', 'Europe/Berlin'),
		  '2026-03-29 10:00:00+00'::timestamptz, 'the session TimeZone does not matter');
SELECT is(loyalty.period_end('2026-05-15 12:00:00+00', 'quarter', 0, 'Europe/Berlin'),
		  '2026-06-30 22:00:00+00'::timestamptz, 'period_end does not depend on the session TimeZone');

-- tz_add(ts, span, zone) = ts + span in a session whose TimeZone is zone
SET LOCAL TimeZone = 'Europe/Berlin';
SELECT is_empty($$
	SELECT ts, span FROM generate_series('2025-12-31 00:00:00+00'::timestamptz, '2027-01-02 00:00:00+00', '7 hours 13 minutes') ts,
		 unnest('{1 day, 1 month, -1 month, 1 year, 30 days, 3 months, 1 mon 1 day 1 hour, -2 days -3 hours}'::interval[]) span
	 WHERE loyalty.tz_add(ts, span, 'Europe/Berlin') <> ts + span$$,
	'Berlin: tz_add agrees with timestamptz + interval under TimeZone = Europe/Berlin');
SET LOCAL TimeZone = 'America/New_York';
SELECT is_empty($$
	SELECT ts, span FROM generate_series('2025-12-31 00:00:00+00'::timestamptz, '2027-01-02 00:00:00+00', '7 hours 13 minutes') ts,
		 unnest('{1 day, 1 month, -1 month, 1 year, 30 days, 3 months, 1 mon 1 day 1 hour, -2 days -3 hours}'::interval[]) span
	 WHERE loyalty.tz_add(ts, span, 'America/New_York') <> ts + span$$,
	'New York: tz_add agrees with timestamptz + interval under TimeZone = America/New_York');
SET LOCAL TimeZone = 'UTC';

-- month ends and leap days
SELECT is(loyalty.tz_add('2026-01-31 10:00 Europe/Berlin', '1 month', 'Europe/Berlin'),
		  '2026-02-28 09:00:00+00'::timestamptz, 'Jan 31 + 1 month = Feb 28');
SELECT is(loyalty.tz_add('2028-01-31 12:00:00+00', '1 month', 'UTC'),
		  '2028-02-29 12:00:00+00'::timestamptz, 'Jan 31 + 1 month = Feb 29 in a leap year');
SELECT is(loyalty.tz_add('2028-02-29 12:00:00+00', '1 year', 'UTC'),
		  '2029-02-28 12:00:00+00'::timestamptz, 'leap day + 1 year = Feb 28');
SELECT is(loyalty.tz_add('2028-02-29 12:00:00+00', '4 years', 'UTC'),
		  '2032-02-29 12:00:00+00'::timestamptz, 'leap day + 4 years = leap day');
SELECT is(loyalty.tz_add('2026-01-30 23:30:00+00', '1 month', 'Europe/Berlin'),
		  '2026-02-27 23:30:00+00'::timestamptz, 'the month end is the local one (Jan 31 00:30 Berlin + 1 month = Feb 28 00:30)');
SELECT is(loyalty.tz_add('2026-03-31 12:00 Europe/Berlin', '-1 month', 'Europe/Berlin'),
		  '2026-02-28 11:00:00+00'::timestamptz, 'negative months clamp and cross DST');
SELECT is(loyalty.tz_add('2026-12-15 00:00:00+00', '-13 months', 'UTC'),
		  '2025-11-15 00:00:00+00'::timestamptz, 'negative months across a year');
SELECT is(loyalty.tz_add('infinity', '1 month', 'UTC'), 'infinity'::timestamptz, 'infinity stays infinity');
SELECT throws_ok($$SELECT loyalty.tz_add('294276-12-01 00:00:00+00', '1 month', 'UTC')$$, '22008',
	'timestamp out of range', 'result beyond the timestamp range');
SELECT throws_ok($$SELECT loyalty.tz_add(now(), '1 day', 'Mars/Olympus')$$, '22023',
	'time zone "Mars/Olympus" not recognized', 'unknown zone');
SELECT ok(loyalty.valid_time_zone('Europe/Berlin'), 'valid_time_zone: Europe/Berlin');
SELECT ok(NOT loyalty.valid_time_zone('Mars/Olympus'), 'valid_time_zone: Mars/Olympus is not a zone');
SELECT ok(NOT loyalty.valid_time_zone(''), 'valid_time_zone: empty string is not a zone');

------------------------------------------------------------------------------
-- period_end
------------------------------------------------------------------------------
SELECT is(loyalty.period_end('2026-05-15 12:00:00+00', 'quarter', 0, 'Europe/Berlin'),
		  '2026-06-30 22:00:00+00'::timestamptz, 'end of Q2 in Berlin is July 1 00:00 CEST');
SELECT is(loyalty.period_end('2026-10-15 12:00:00+00', 'month', 0, 'Europe/Berlin'),
		  '2026-10-31 23:00:00+00'::timestamptz, 'end of October in Berlin is Nov 1 00:00 CET (after the change)');
SELECT is(loyalty.period_end('2026-07-04 12:00 America/New_York', 'year', 0, 'America/New_York'),
		  '2027-01-01 05:00:00+00'::timestamptz, 'end of the year in New York');
SELECT is(loyalty.period_end('2026-07-04 12:00 America/New_York', 'year', 1, 'America/New_York'),
		  '2028-01-01 05:00:00+00'::timestamptz, 'end of the next year in New York');
SELECT is(loyalty.period_end('2026-01-15 12:00:00+00', 'month', 2, 'Europe/Berlin'),
		  '2026-03-31 22:00:00+00'::timestamptz, 'two extra months end with March, local (CEST) midnight');
SELECT is(loyalty.period_end('2026-12-31 23:00:00+00', 'year', 0, 'Europe/Berlin'),
		  '2027-12-31 23:00:00+00'::timestamptz, 'an instant at the local start of a year belongs to that year');
SELECT is(loyalty.period_end('2026-12-31 22:59:59.999999+00', 'year', 0, 'Europe/Berlin'),
		  '2026-12-31 23:00:00+00'::timestamptz, '1us earlier it belongs to the previous year');
SELECT is(loyalty.period_end('2026-03-31 22:30:00+00', 'month', 0, 'Europe/Berlin'),
		  '2026-04-30 22:00:00+00'::timestamptz, 'the month is the local month (March 31 22:30 UTC is April in Berlin)');
SELECT is(loyalty.period_end('2026-03-31 22:30:00+00', 'month', 0, 'UTC'),
		  '2026-04-01 00:00:00+00'::timestamptz, 'and March in UTC');
SELECT is(loyalty.period_end('2026-03-29 12:00:00+00', 'day', 0, 'Europe/Berlin'),
		  '2026-03-29 22:00:00+00'::timestamptz, 'end of the 23-hour day in Berlin');
SELECT is(loyalty.period_end('2026-03-25 12:00:00+00', 'week', 0, 'Europe/Berlin'),
		  '2026-03-29 22:00:00+00'::timestamptz, 'end of the week: Monday 00:00 local');
SELECT throws_ok($$SELECT loyalty.period_end(now(), 'bogus', 0, 'UTC')$$, '22023', NULL, 'period_end: unknown unit');
SELECT throws_ok($$SELECT loyalty.period_end(now(), 'month', 0, 'Mars/Olympus')$$, '22023', NULL, 'period_end: unknown zone');

------------------------------------------------------------------------------
-- programs.time_zone
------------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, time_zone) VALUES ('tz1', 'x', 'Mars/Olympus')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_time_zone_check"', 'programs refuse an unknown time zone');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, time_zone) VALUES ('tz2', 'x', '')$$, '23514',
	'new row for relation "programs" violates check constraint "programs_time_zone_check"', 'programs refuse an empty time zone');
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone)
VALUES ('berlin', 'Berlin', 'after', '1 month', 'Europe/Berlin');
SELECT is(loyalty.expiry_for(p, '2026-03-15 12:00 Europe/Berlin'), '2026-04-15 10:00:00+00'::timestamptz,
		  'expiry after 1 month is computed on the program''s wall clock')
  FROM loyalty.programs p WHERE code = 'berlin';

SELECT * FROM finish();
ROLLBACK;
