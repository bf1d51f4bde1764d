\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(50);

\ir lib/error_text.psql

-- caps are counted in calendar periods of the program's zone
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone, is_default)
VALUES ('shop', 'Shop', 'after', '1 year', 'Europe/Berlin', true);
INSERT INTO loyalty.programs (code, name) VALUES ('other', 'Other');
DO $$ BEGIN
	PERFORM loyalty.enroll(k) FROM unnest('{ann,bob,cat,new1,new2}'::text[]) k;
	PERFORM loyalty.enroll('ann', 'other');
END $$;
INSERT INTO loyalty.event_rules (program_id, action, points, cap_count, cap_period, is_referral, active)
SELECT p.id, r.* FROM loyalty.programs p,
	(VALUES ('signup', 50::bigint, 1, 'ever', false, true),
			('review', 20, 2, 'month', false, true),
			('share', 5, 3, 'day', false, true),
			('birthday', 100, 1, 'year', false, true),
			('referral', 200, NULL, NULL, true, true),
			('survey', 10, NULL, NULL, false, false)) r
 WHERE p.code = 'shop';

SELECT throws_ok($$INSERT INTO loyalty.event_rules (program_id, action, points) VALUES (1, 'zero', 0)$$,
	'23514', NULL, 'an action earns at least one point');
SELECT throws_ok($$INSERT INTO loyalty.event_rules (program_id, action, points, cap_count) VALUES (1, 'x', 5, 1)$$,
	'23514', NULL, 'a cap needs its period');
SELECT throws_ok($$INSERT INTO loyalty.event_rules (program_id, action, points) VALUES (1, 'review', 5)$$,
	'23505', NULL, 'one rule per action and program');

------------------------------------------------------------------------------
-- refusals
------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM loyalty.ledger;
SELECT throws_ok($$SELECT loyalty.record_event('ann', NULL, 'r')$$, '22004', 'action must not be null', 'null action');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', NULL)$$, '22023', 'an event needs a reference', 'null reference');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', ' ')$$, '22023', 'an event needs a reference', 'blank reference');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', 'r', NULL)$$, '22008',
	'event time must be a finite timestamp', 'null time');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', 'r', 'infinity')$$, '22008',
	'event time must be a finite timestamp', 'infinite time');
SELECT throws_ok($$SELECT loyalty.record_event('zed', 'review', 'r', '2030-01-05 12:00+00')$$, 'LY002',
	'member "zed" is not enrolled in loyalty program "shop"', 'unknown member');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', 'r', '2030-01-05 12:00+00', 'nowhere')$$, 'LY003',
	'loyalty program "nowhere" does not exist', 'unknown program');
SELECT is(pg_temp.err($$SELECT loyalty.record_event('ann', 'like', 'r', '2030-01-05 12:00+00')$$),
	'LY017: action "like" earns nothing in loyalty program "shop" | Actions with an active rule: birthday, referral, review, share, signup. | Add a row to loyalty.event_rules.',
	'an action without a rule: LY017 listing the actions');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'survey', 'r', '2030-01-05 12:00+00')$$, 'LY017',
	'action "survey" earns nothing in loyalty program "shop"', 'an inactive rule earns nothing');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', 'r', '2030-01-05 12:00+00', 'other')$$, 'LY017',
	'action "review" earns nothing in loyalty program "other"', 'rules are per program');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'review', 'r', '2030-01-05 12:00+00', referred => 'bob')$$, '22023',
	'action "review" does not take a referred member', 'only referrals name a referred member');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT n FROM before), 'refused events wrote nothing');
SELECT is((SELECT count(*) FROM loyalty.events), 0::bigint, 'and recorded no event');

------------------------------------------------------------------------------
-- an event earns the rule's points at its time, once per reference
------------------------------------------------------------------------------
CREATE TEMP TABLE s1 AS SELECT * FROM loyalty.record_event('ann', 'signup', 'signup-ann', '2030-01-02 09:00+00');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", effective_at FROM s1$$,
	$$VALUES ('pending', 50::bigint, '{pending 50 from 2030-01-02 09:00:00+00 until 2031-01-02 09:00:00+00}', 'signup-ann',
			  '2030-01-02 09:00+00'::timestamptz)$$,
	'signup earns 50 points at the event time, expiring as the program says');
SELECT results_eq($$SELECT member_key COLLATE "default", action, reference, occurred_at, points, seq FROM loyalty.events$$,
	$$SELECT 'ann'::text, 'signup'::text, 'signup-ann'::text, '2030-01-02 09:00+00'::timestamptz, 50::bigint, seq FROM s1$$,
	'the event is recorded with its ledger entry');
SELECT is((loyalty.record_event('ann', 'signup', 'signup-ann', '2030-01-02 09:00+00')).seq, (SELECT seq FROM s1),
	'the same event again returns the first entry');
SELECT is((loyalty.record_event('ann', 'signup', 'signup-ann', '2030-03-01 09:00+00')).seq, (SELECT seq FROM s1),
	'also with another time');
SELECT is((SELECT count(*) FROM loyalty.events), 1::bigint, 'exactly once: one event');
SELECT is(loyalty.balance('ann', '2030-01-03 00:00+00'), 50::bigint, 'and 50 points');
SELECT is(pg_temp.err($$SELECT loyalty.record_event('ann', 'review', 'signup-ann', '2030-01-02 09:00+00')$$),
	format('LY004: reference "signup-ann" was already used for a different event in program "shop" | Event %s of member "ann" is action "signup". | Use a new reference for a new event; repeat an event with the same arguments.',
		   (SELECT seq FROM loyalty.events)),
	'the reference for another action: LY004');
SELECT ok((loyalty.earn('bob', 5, 'e-1')).seq IS NOT NULL, 'an earn with a reference');
SELECT throws_ok($$SELECT loyalty.record_event('bob', 'review', 'e-1', '2030-01-02 09:00+00')$$, 'LY004',
	'reference "e-1" was already used for a different earn in program "shop"', 'an event cannot take an earn''s reference');
SELECT throws_ok($$SELECT loyalty.earn('ann', 7, 'signup-ann')$$, 'LY004', NULL, 'nor an earn an event''s');

------------------------------------------------------------------------------
-- caps per member and period
------------------------------------------------------------------------------
SELECT is(pg_temp.err($$SELECT loyalty.record_event('ann', 'signup', 'signup-ann-2', '2030-05-02 09:00+00')$$),
	'LY018: member "ann" reached the cap for action "signup" | 1 of 1 events allowed in total already recorded. | ',
	'a signup once ever: LY018');
SELECT ok((loyalty.record_event('ann', 'review', 'rv-1', '2030-01-10 12:00+00')).seq IS NOT NULL, 'first review in January');
SELECT ok((loyalty.record_event('ann', 'review', 'rv-2', '2030-01-31 22:59:59+00')).seq IS NOT NULL, 'second review in January (Berlin)');
SELECT is(pg_temp.err($$SELECT loyalty.record_event('ann', 'review', 'rv-3', '2030-01-20 12:00+00')$$),
	'LY018: member "ann" reached the cap for action "review" | 2 of 2 events allowed per month already recorded (period 2029-12-31 23:00:00+00 to 2030-01-31 23:00:00+00). | ',
	'a third review in January: LY018 with the Berlin month in the detail');
SELECT ok((loyalty.record_event('ann', 'review', 'rv-3', '2030-01-31 23:00:00+00')).seq IS NOT NULL,
	'23:00 UTC on 31 January is February in Berlin: a new period');
SELECT ok((loyalty.record_event('bob', 'review', 'rv-4', '2030-01-20 12:00+00')).seq IS NOT NULL, 'caps are per member');
SELECT ok((loyalty.record_event('ann', 'birthday', 'bd-2030', '2030-03-10 08:00+00')).seq IS NOT NULL, 'birthday bonus');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'birthday', 'bd-2030b', '2030-11-01 08:00+00')$$, 'LY018',
	'member "ann" reached the cap for action "birthday"', 'once a year');
SELECT ok((loyalty.record_event('ann', 'birthday', 'bd-2031', '2031-03-10 08:00+00')).seq IS NOT NULL, 'and again the next year');
SELECT is((SELECT count(*) FROM loyalty.events WHERE action = 'review'), 4::bigint, 'four reviews recorded, the capped one not');

------------------------------------------------------------------------------
-- referrals: the referred member must have bought, and is referred once
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-01 12:00+00')$$, 'LY019',
	'action "referral" needs the referred member', 'a referral names the referred member');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-01 12:00+00', referred => 'zed')$$, 'LY002',
	'member "zed" is not enrolled in loyalty program "shop"', 'who must be enrolled');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-01 12:00+00', referred => 'ann')$$, 'LY019',
	'member "ann" cannot refer themselves', 'and not the referrer');
SELECT is(pg_temp.err($$SELECT loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-01 12:00+00', referred => 'new1')$$),
	'LY019: referred member "new1" has not bought yet | A referral earns points once the new member''s first tracked purchase is recorded, at or before the event time. | Record the referral after the referred member''s first purchase.',
	'a referred member who has not bought: LY019');
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at') IS NOT NULL;
INSERT INTO orders VALUES (1, 'new1', 30, '2030-02-03 10:00+00');
SELECT throws_ok($$SELECT loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-01 12:00+00', referred => 'new1')$$, 'LY019',
	'referred member "new1" has not bought yet', 'a referral dated before the first purchase');
CREATE TEMP TABLE ref1 AS SELECT * FROM loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-05 12:00+00', referred => 'new1');
SELECT is((SELECT points FROM ref1), 200::bigint, 'after the purchase the referrer earns 200');
SELECT is((SELECT e.referred_key FROM loyalty.events e WHERE e.reference = 'ref-1'),
	'new1', 'the event records who was referred');
SELECT is((loyalty.record_event('ann', 'referral', 'ref-1', '2030-02-05 12:00+00', referred => 'new1')).seq, (SELECT seq FROM ref1),
	'a repeated referral returns the first entry');
SELECT throws_ok($$SELECT loyalty.record_event('bob', 'referral', 'ref-2', '2030-02-06 12:00+00', referred => 'new1')$$, 'LY019',
	'member "new1" was already referred', 'a member is referred once');
SELECT is(loyalty.balance('ann', '2030-02-06 00:00+00'), 50 + 20 * 3 + 200::bigint, 'ann: signup, three reviews and a referral');
SELECT is((loyalty.record_event('cat'::text, 'share', 'sh-1', '2030-01-02 09:00+00')).points, 5::bigint, 'share through the text version');
SELECT is((loyalty.record_event('cat'::varchar, 'share', 'sh-2', '2030-01-02 09:00+00')).points, 5::bigint, 'and through the anyelement version');
SELECT is((loyalty.record_event('bob', 'review', 'signup-ann', '2031-05-01 09:00+00')).points, 20::bigint,
	'references are per member: another member''s event may use ann''s reference');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
