\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(46);

-- Every policy, in two zones.  Berlin: CET->CEST 2025-03-30, CEST->CET
-- 2025-10-26.  New York: EST->EDT 2025-03-09, EDT->EST 2025-11-02.
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, expiry_period,
							  expiry_extra_periods, time_zone) VALUES
	('never_b',   'never',            'never',      NULL,       NULL,      0, 'Europe/Berlin'),
	('month_b',   '1 month after',    'after',      '1 month',  NULL,      0, 'Europe/Berlin'),
	('day_ny',    '1 day after',      'after',      '1 day',    NULL,      0, 'America/New_York'),
	('year_ny',   '1 year after',     'after',      '1 year',   NULL,      0, 'America/New_York'),
	('eom_b',     'end of month',     'period_end', NULL,       'month',   0, 'Europe/Berlin'),
	('eoq_ny',    'end of quarter+1', 'period_end', NULL,       'quarter', 1, 'America/New_York'),
	('eoy_b',     'end of year',      'period_end', NULL,       'year',    0, 'Europe/Berlin'),
	('idle_b',    '6 idle months',    'inactivity', '6 months', NULL,      0, 'Europe/Berlin'),
	('idle_ny',   '1 idle month',     'inactivity', '1 month',  NULL,      0, 'America/New_York');

-- the expiry of the lot one earn() created
CREATE FUNCTION pg_temp.expiry(program text, at timestamptz) RETURNS timestamptz
	LANGUAGE sql AS $$
	SELECT e.expires_at
	  FROM loyalty.earn('x-' || program || at::text, 10, NULL, at, program) l,
		   loyalty.lots_entries(l.lots) e
$$;
CREATE FUNCTION pg_temp.local(ts timestamptz, zone text) RETURNS text
	LANGUAGE sql AS $$ SELECT to_char(ts AT TIME ZONE zone, 'YYYY-MM-DD HH24:MI') $$;

SELECT loyalty.enroll('x-' || p.code || t.at::text, p.code)
  FROM loyalty.programs p,
	   (VALUES ('2025-01-31 10:00+00'::timestamptz), ('2024-02-29 12:00+00'), ('2025-03-08 17:00+00'),
			   ('2025-03-29 12:00+00'), ('2025-10-25 12:00+00'), ('2025-10-31 23:30+00'),
			   ('2025-11-01 16:00+00'), ('2025-12-31 23:30+00'), ('2025-06-30 23:00+00'),
			   ('2025-09-30 12:00+00')) AS t(at);

------------------------------------------------------------------------------
-- never
------------------------------------------------------------------------------
SELECT is(pg_temp.expiry('never_b', '2025-01-31 10:00+00'), 'infinity', 'never: the lot never expires');

------------------------------------------------------------------------------
-- fixed interval after earning, on the program's wall clock
------------------------------------------------------------------------------
SELECT is(pg_temp.local(pg_temp.expiry('month_b', '2025-01-31 10:00+00'), 'Europe/Berlin'),
		  '2025-02-28 11:00', '1 month after 31 January is 28 February (month end clamps)');
SELECT is(pg_temp.local(pg_temp.expiry('month_b', '2025-03-29 12:00+00'), 'Europe/Berlin'),
		  '2025-04-29 13:00', '1 month after, across Berlin spring forward: same local time');
SELECT is(pg_temp.expiry('month_b', '2025-03-29 12:00+00'), '2025-04-29 11:00+00',
		  '... which is an hour earlier in UTC');
SELECT is(pg_temp.local(pg_temp.expiry('month_b', '2025-10-25 12:00+00'), 'Europe/Berlin'),
		  '2025-11-25 14:00', '1 month after, across Berlin fall back: same local time (14:00 CEST -> 14:00 CET)');
SELECT is(pg_temp.expiry('day_ny', '2025-03-08 17:00+00'), '2025-03-09 16:00+00',
		  '1 day after, across New York spring forward, is 23 hours');
SELECT is(pg_temp.expiry('day_ny', '2025-11-01 16:00+00'), '2025-11-02 17:00+00',
		  '1 day after, across New York fall back, is 25 hours');
SELECT is(pg_temp.local(pg_temp.expiry('year_ny', '2024-02-29 12:00+00'), 'America/New_York'),
		  '2025-02-28 07:00', '1 year after a leap day is 28 February');

------------------------------------------------------------------------------
-- end of month / quarter / year after earning (+N periods), local midnight
------------------------------------------------------------------------------
SELECT is(pg_temp.expiry('eom_b', '2025-01-31 10:00+00'), '2025-01-31 23:00+00',
		  'end of month: midnight Berlin (CET) at the end of January');
SELECT is(pg_temp.expiry('eom_b', '2025-03-29 12:00+00'), '2025-03-31 22:00+00',
		  'end of March is midnight CEST after spring forward');
SELECT is(pg_temp.expiry('eom_b', '2025-10-31 23:30+00'), '2025-11-30 23:00+00',
		  '23:30 UTC on 31 October is already November in Berlin (CET)');
SELECT is(pg_temp.expiry('eom_b', '2024-02-29 12:00+00'), '2024-02-29 23:00+00',
		  'a leap day earning expires at the end of that February');
SELECT is(pg_temp.expiry('eoq_ny', '2025-06-30 23:00+00'), '2025-10-01 04:00+00',
		  'end of quarter + 1: 30 June 19:00 in New York is Q2, so the end of Q3');
SELECT is(pg_temp.expiry('eoq_ny', '2025-09-30 12:00+00'), '2026-01-01 05:00+00',
		  'end of quarter + 1 from Q3 is the end of Q4, midnight EST');
SELECT is(pg_temp.expiry('eoy_b', '2025-12-31 23:30+00'), '2026-12-31 23:00+00',
		  'end of year: 23:30 UTC on 31 December is already next year in Berlin');
SELECT is(pg_temp.expiry('eoy_b', '2024-02-29 12:00+00'), '2024-12-31 23:00+00',
		  'end of year from a leap day');

------------------------------------------------------------------------------
-- inactivity: all points expire N months after the last activity
------------------------------------------------------------------------------
SELECT is(pg_temp.expiry('idle_b', '2025-01-31 10:00+00'), 'infinity',
		  'inactivity: a lot has no expiry of its own');

-- Correct as of any instant with no job run: a member earning in 2041 (the
-- points are pending until then), asked about later instants
SELECT loyalty.enroll('ann', 'idle_b');
SELECT loyalty.earn('ann', 100, 'a1', '2041-01-31 10:00+00', 'idle_b');
SELECT loyalty.earn('ann', 50, 'a2', '2041-02-28 10:00+00', 'idle_b');
SELECT is(loyalty.balance('ann', '2041-08-28 08:59+00', 'idle_b'), 150::bigint,
		  'inactivity: all points are there a minute before the deadline');
SELECT is(loyalty.balance('ann', '2041-08-28 09:00+00', 'idle_b'), 0::bigint,
		  'inactivity: all points expire 6 months after the last activity (11:00 CET -> 11:00 CEST), with no job run');
SELECT is(loyalty.balance('ann', '2041-05-01', 'idle_b'), 150::bigint,
		  'inactivity: as of an earlier instant the points are there');
SELECT is((SELECT count(*) FROM loyalty.ledger
			WHERE kind = 'expire' AND member_key = 'ann'),
		  0::bigint, 'nothing was written to answer those questions');
SELECT is((SELECT points FROM loyalty.expiring_points('30 days', '2041-08-10', 'idle_b')
			WHERE member_key = 'ann'), 150::bigint,
		  'expiring_points lists the inactive member''s whole balance');
SELECT is((SELECT expires_at FROM loyalty.expiring_points('30 days', '2041-08-10', 'idle_b')
			WHERE member_key = 'ann'), '2041-08-28 09:00+00'::timestamptz,
		  '... at the deadline');

-- earning after the deadline does not revive the expired points
SELECT loyalty.enroll('cy', 'idle_b');
SELECT loyalty.earn('cy', 100, 'c1', '2025-01-31 10:00+00', 'idle_b');
SELECT loyalty.earn('cy', 7, 'c2', '2025-09-15 10:00+00', 'idle_b');
SELECT is(loyalty.balance('cy', '2025-09-15 10:00+00', 'idle_b'), 7::bigint,
		  'earning after the deadline: only the new 7 points');
SELECT is(loyalty.balance('cy', '2025-07-01', 'idle_b'), 100::bigint,
		  'as of before the deadline the old points were there (replay)');
SELECT is((SELECT row(points, effective_at, reason)::text FROM loyalty.ledger
			WHERE kind = 'expire' AND member_key = 'cy'
			  AND effective_at < '2025-09-01'),
		  row(-100, '2025-07-31 09:00+00'::timestamptz, 'inactivity')::text,
		  'one expire entry for all lots, effective at the deadline, reason inactivity');

-- tracked purchases in New York: 1 idle month on the local wall clock
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at', program => 'idle_ny');
INSERT INTO orders VALUES (1, 'dee', 40, '2025-01-15 12:00+00');
INSERT INTO orders VALUES (2, 'dee', 30, '2025-02-10 12:00+00');
SELECT is(loyalty.balance('dee', '2025-03-10 10:59+00', 'idle_ny'), 70::bigint,
		  'purchases in New York: 70 points before the deadline');
SELECT is(loyalty.balance('dee', '2025-03-10 11:00+00', 'idle_ny'), 0::bigint,
		  'a month after the last purchase on the New York wall clock (07:00 EST -> 07:00 EDT) they expire');
-- each statement writes what fell due by now: the first purchase's deadline
-- (15 February), given back by the second purchase (active before it, though
-- inserted after it passed), and the second's (10 March)
SELECT results_eq($$SELECT kind::text, points, effective_at FROM loyalty.ledger
					 WHERE reason = 'inactivity'
					   AND member_key = 'dee'
					 ORDER BY seq$$,
				  $$VALUES ('expire', -40::bigint, '2025-02-15 12:00+00'::timestamptz),
						   ('reinstate', 40, '2025-02-15 12:00+00'),
						   ('expire', -70, '2025-03-10 11:00+00')$$,
				  'purchases dated in the past write the deadlines they pass, and withdraw those a later-inserted earlier purchase cancels');
INSERT INTO orders VALUES (3, 'dee', 5, '2025-04-01 12:00+00');
SELECT is(loyalty.balance('dee', '2025-04-01 12:00+00', 'idle_ny'), 5::bigint,
		  'a purchase after the deadline earns 5 and does not revive the 70');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reason = 'inactivity'
			AND member_key = 'dee'),
		  4::bigint, 'and wrote the expiry of its own deadline (1 May)');
INSERT INTO orders VALUES (4, 'dee', 10, '2025-04-20 12:00+00');
SELECT is(loyalty.balance('dee', '2025-05-15 12:00+00', 'idle_ny'), 15::bigint,
		  'purchases within a month of each other keep the points: any activity extends');

-- maintenance writes what fell due, once.  A write settles what is due by
-- its now(), so purchases dated months back wrote their deadlines already
-- (gus); fay's member row and ledger are as purchases on 31 January and 28
-- February 2025 left them, when they were recorded, and nothing touched her
-- since.
CREATE TABLE shop (id bigint PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('shop', 'customer', 'total', 'at', program => 'idle_b');
INSERT INTO shop VALUES (3, 'gus', 80, '2025-01-10 10:00+00'), (4, 'gus', 20, '2025-05-10 10:00+00');
INSERT INTO loyalty.members (program_id, member_key, balance, last_activity_at, settled_at, enrolled_at)
SELECT id, 'fay', '{150 until infinity}', '2025-02-28 10:00+00', '2025-02-28 10:00+00', '2025-01-31 10:00+00'
  FROM loyalty.programs WHERE code = 'idle_b';
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at, recorded_at)
SELECT m.program_id, m.member_key, row_number() OVER (ORDER BY v.at), 'earn', v.points, loyalty.lots_add('{}', v.points, 'infinity'), v.at, v.at
  FROM loyalty.members m, (VALUES (100, timestamptz '2025-01-31 10:00+00'), (50, '2025-02-28 10:00+00')) v(points, at)
 WHERE m.member_key = 'fay';
SELECT is(loyalty.balance('gus', '2025-08-10 10:00+00', 'idle_b'), 100::bigint,
		  'activity on 10 May keeps 10 January''s points past 10 July');
SELECT is(loyalty.balance('gus', '2025-11-10 11:00+00', 'idle_b'), 0::bigint,
		  '... until 6 months after that activity');
SELECT is((SELECT row(members, points)::text FROM loyalty.run_maintenance('2025-09-01') WHERE task = 'inactivity'),
		  row(1, 150)::text, 'run_maintenance on 1 September expires fay''s 150 points');
SELECT is(loyalty.balance('gus', '2025-09-01', 'idle_b'), 100::bigint, '... and leaves gus, active in May');
SELECT is((SELECT row(points, effective_at, reason)::text FROM loyalty.ledger
			WHERE kind = 'expire' AND member_key = 'fay'),
		  row(-150, '2025-08-28 09:00+00'::timestamptz, 'inactivity')::text,
		  'written effective at the deadline');
SELECT is((SELECT members FROM loyalty.run_maintenance('2025-09-01') WHERE task = 'inactivity'),
		  0::bigint, 'run_maintenance is idempotent');
SELECT is(loyalty.balance('fay', '2025-08-28 08:59+00', 'idle_b'), 150::bigint,
		  'the balance before the deadline is the same after maintenance (replayed)');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong');

------------------------------------------------------------------------------
-- an earning rule can carry its own expiry for the points it matches
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone)
VALUES ('rules_b', 'rule expiry', 'after', '12 months', 'Europe/Berlin');
INSERT INTO loyalty.earning_rules (program_id, name, kind, channel, multiplier, expiry_policy, expiry_period)
SELECT id, 'app campaign', 'multiplier', 'app', 2, 'period_end', 'month' FROM loyalty.programs WHERE code = 'rules_b';
INSERT INTO loyalty.earning_rules (program_id, name, kind, points, expiry_policy, expiry_interval)
SELECT id, 'welcome', 'first_purchase', 50, 'after', '7 days' FROM loyalty.programs WHERE code = 'rules_b';
CREATE TABLE buys (id bigint PRIMARY KEY, who text, total numeric, channel text, at timestamptz);
SELECT loyalty.track_purchases('buys', 'who', 'total', 'at', channel_column => 'channel', program => 'rules_b');
INSERT INTO buys VALUES (1, 'hal', 10, 'web', '2025-03-10 12:00+00'), (2, 'hal', 10, 'app', '2025-03-11 12:00+00');
SELECT is((SELECT string_agg(e.expires_at::text, ',' ORDER BY l.reference)
			 FROM loyalty.ledger l, loyalty.lots_entries(l.lots) e
			WHERE l.member_key = 'hal'),
		  '2026-03-10 12:00:00+00,2025-03-17 12:00:00+00,2025-03-31 22:00:00+00',
		  'web purchase: the program''s 12 months; its welcome bonus: the rule''s 7 days; app purchase: the campaign''s end of month');
UPDATE buys SET total = 20 WHERE id = 2;
SELECT is((SELECT e.expires_at FROM loyalty.ledger l, loyalty.lots_entries(l.lots) e
			WHERE l.reference = '2' AND l.kind = 'adjust'),
		  '2025-03-31 22:00+00'::timestamptz, 'a correction upwards keeps the rule''s expiry');
SELECT throws_ok($$INSERT INTO loyalty.earning_rules (program_id, name, kind, min_amount, expiry_policy, expiry_interval)
				   SELECT id, 'x', 'minimum', 5, 'after', '1 day' FROM loyalty.programs WHERE code = 'rules_b'$$,
				 '23514', NULL, 'only rules that award points can carry an expiry');
SELECT throws_ok($$INSERT INTO loyalty.earning_rules (program_id, name, kind, points, expiry_policy)
				   SELECT id, 'x', 'bonus', 5, 'inactivity' FROM loyalty.programs WHERE code = 'rules_b'$$,
				 '23514', NULL, 'inactivity is a program policy, not a rule''s');

------------------------------------------------------------------------------
-- configuration errors
------------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy) VALUES ('bad', 'x', 'inactivity')$$,
				 '23514', NULL, 'inactivity needs an interval');
SELECT throws_ok($$INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval) VALUES ('bad', 'x', 'whenever', '1 day')$$,
				 '23514', NULL, 'an unknown policy is refused');

SELECT * FROM finish();
ROLLBACK;
