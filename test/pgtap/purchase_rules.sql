\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(117);

-- Europe/Berlin, 1 point per unit, floor, never expires, no pending period
INSERT INTO loyalty.programs (code, name, time_zone, is_default) VALUES ('rules', 'Rules', 'Europe/Berlin', true);

CREATE TABLE orders (
	order_id	int PRIMARY KEY,
	customer	text,
	total		numeric,
	ordered_at	timestamptz NOT NULL DEFAULT '2025-02-03 10:00+00',
	channel		text,
	category	text,
	store		text
);
SELECT lives_ok($$SELECT loyalty.track_purchases('orders', 'customer', 'total', 'ordered_at',
	channel_column => 'channel', category_column => 'category', store_column => 'store')$$,
	'orders are tracked with channel, category and store');

-- net points of one purchase (its bonus has another reference)
CREATE FUNCTION pg_temp.award(ref int) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(points), 0)::bigint FROM loyalty.ledger
	 WHERE reference = ref::text AND track_id IS NOT NULL
$$;
CREATE FUNCTION pg_temp.entries(ref int) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM loyalty.ledger WHERE reference = ref::text AND track_id IS NOT NULL
$$;
-- add a rule to the program
CREATE PROCEDURE pg_temp.rule(name text, kind text, priority int DEFAULT 100, exclusive boolean DEFAULT false,
							 multiplier numeric DEFAULT NULL, points bigint DEFAULT NULL,
							 min_amount numeric DEFAULT NULL, cap_period text DEFAULT NULL,
							 tier text DEFAULT NULL, channel text DEFAULT NULL, category text DEFAULT NULL,
							 store text DEFAULT NULL, valid_from timestamptz DEFAULT NULL,
							 valid_until timestamptz DEFAULT NULL, days_of_week int[] DEFAULT NULL,
							 hour_from int DEFAULT NULL, hour_until int DEFAULT NULL)
	LANGUAGE sql AS $$
	INSERT INTO loyalty.earning_rules (program_id, name, kind, priority, exclusive, multiplier, points, min_amount,
									   cap_period, tier, channel, category, store, valid_from, valid_until,
									   days_of_week, hour_from, hour_until)
	SELECT id, $1, kind, priority, exclusive, multiplier, points, min_amount, cap_period, tier, channel,
		   category, store, valid_from, valid_until, days_of_week, hour_from, hour_until
	  FROM loyalty.programs WHERE code = 'rules'
$$;
CREATE PROCEDURE pg_temp.no_rules() LANGUAGE sql AS $$ DELETE FROM loyalty.earning_rules $$;

------------------------------------------------------------------------------
-- no rules; rounding modes and points_per_unit
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total) VALUES (101, 'r1', 10.99);
SELECT is(pg_temp.award(101), 10::bigint, 'no rules: floor(10.99) = 10');

CALL pg_temp.rule('triple', 'multiplier', multiplier => 3, category => 'x3');
INSERT INTO orders (order_id, customer, total, category) VALUES (102, 'r1', 3.5, 'x3');
SELECT is(pg_temp.award(102), 10::bigint, 'floor: 3.5 x 3 = 10.5 -> 10 (rounded after multiplying, not 3 x 3 = 9)');

UPDATE loyalty.programs SET rounding = 'half_up' WHERE code = 'rules';
INSERT INTO orders (order_id, customer, total, category) VALUES
	(103, 'r1', 3.5, 'x3'), (104, 'r1', 10.49, NULL), (105, 'r1', 2.5, NULL);
SELECT is(pg_temp.award(103), 11::bigint, 'half_up: 10.5 -> 11');
SELECT is(pg_temp.award(104), 10::bigint, 'half_up: 10.49 -> 10');
SELECT is(pg_temp.award(105), 3::bigint, 'half_up: 2.5 -> 3');

UPDATE loyalty.programs SET rounding = 'ceil' WHERE code = 'rules';
INSERT INTO orders (order_id, customer, total, category) VALUES
	(106, 'r1', 10.01, NULL), (107, 'r1', 3.4, 'x3'), (108, 'r1', 7, NULL);
SELECT is(pg_temp.award(106), 11::bigint, 'ceil: 10.01 -> 11');
SELECT is(pg_temp.award(107), 11::bigint, 'ceil: 3.4 x 3 = 10.2 -> 11');
SELECT is(pg_temp.award(108), 7::bigint, 'ceil: 7 -> 7');

UPDATE loyalty.programs SET rounding = 'floor', points_per_unit = 2 WHERE code = 'rules';
INSERT INTO orders (order_id, customer, total) VALUES (109, 'r1', 10.25), (110, 'r1', 0.49);
SELECT is(pg_temp.award(109), 20::bigint, 'points_per_unit 2, floor: 10.25 x 2 = 20.5 -> 20');
SELECT is(pg_temp.entries(110), 0::bigint, '0.49 x 2 = 0.98 -> 0: no entry');
UPDATE loyalty.programs SET points_per_unit = 1 WHERE code = 'rules';
SELECT is(loyalty.balance('r1'), 10 + 10 + 11 + 10 + 3 + 11 + 11 + 7 + 20::bigint, 'r1''s balance is the sum');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- multipliers: priority, then id; exclusive stops the search
------------------------------------------------------------------------------
-- created in the opposite order of their priorities
CALL pg_temp.rule('x5, prio 30', 'multiplier', priority => 30, multiplier => 5, category => 'prio');
CALL pg_temp.rule('x3, prio 20, exclusive', 'multiplier', priority => 20, exclusive => true, multiplier => 3, category => 'prio');
CALL pg_temp.rule('x2, prio 10', 'multiplier', priority => 10, multiplier => 2, category => 'prio');
INSERT INTO orders (order_id, customer, total, category) VALUES (201, 'r2', 10, 'prio');
SELECT is(pg_temp.award(201), 60::bigint, 'x2 (prio 10) then x3 (prio 20, exclusive) stops before x5: 10 x 6 = 60');

CALL pg_temp.rule('x7 web, prio 5, exclusive', 'multiplier', priority => 5, exclusive => true, multiplier => 7,
					channel => 'web', category => 'prio');
INSERT INTO orders (order_id, customer, total, channel, category) VALUES
	(202, 'r2', 10, 'store', 'prio'), (203, 'r2', 10, 'web', 'prio');
SELECT is(pg_temp.award(202), 60::bigint, 'an exclusive rule that does not match stops nothing');
SELECT is(pg_temp.award(203), 70::bigint, 'an exclusive rule that matches first stops at once: x7');

CALL pg_temp.rule('tie x2', 'multiplier', priority => 50, exclusive => true, multiplier => 2, category => 'tie');
CALL pg_temp.rule('tie x3', 'multiplier', priority => 50, exclusive => true, multiplier => 3, category => 'tie');
INSERT INTO orders (order_id, customer, total, category) VALUES (204, 'r2', 10, 'tie');
SELECT is(pg_temp.award(204), 20::bigint, 'equal priorities go by id: the first exclusive x2 wins');

CALL pg_temp.rule('x2 from 100', 'multiplier', multiplier => 2, min_amount => 100, category => 'big');
INSERT INTO orders (order_id, customer, total, category) VALUES (205, 'r2', 99.99, 'big'), (206, 'r2', 100, 'big');
SELECT is(pg_temp.award(205), 99::bigint, 'a multiplier with min_amount 100 does not apply to 99.99');
SELECT is(pg_temp.award(206), 200::bigint, 'and applies to exactly 100');

CALL pg_temp.rule('nothing', 'multiplier', multiplier => 0, category => 'zero');
INSERT INTO orders (order_id, customer, total, category) VALUES (207, 'r2', 50, 'zero'), (208, 'r2', -5, NULL), (209, 'r2', 0, NULL);
SELECT is(pg_temp.entries(207), 0::bigint, 'a multiplier of 0: 0 points, no entry');
SELECT is(pg_temp.entries(208) + pg_temp.entries(209), 0::bigint, 'negative and zero amounts earn nothing');
SELECT is(loyalty.balance('r2'), 60 + 60 + 70 + 20 + 99 + 200::bigint, 'r2''s balance is the sum');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- bonuses: after rounding, in order, exclusive stops
------------------------------------------------------------------------------
CALL pg_temp.rule('+3', 'bonus', priority => 10, points => 3, category => 'bon');
CALL pg_temp.rule('+7', 'bonus', priority => 20, points => 7, category => 'bon');
INSERT INTO orders (order_id, customer, total, category) VALUES (301, 'r3', 10.5, 'bon');
SELECT is(pg_temp.award(301), 20::bigint, 'floor(10.5) + 3 + 7 = 20');

CALL pg_temp.rule('+100 from 50, exclusive', 'bonus', priority => 5, exclusive => true, points => 100,
					min_amount => 50, category => 'bon');
INSERT INTO orders (order_id, customer, total, category) VALUES (302, 'r3', 10.5, 'bon'), (303, 'r3', 50, 'bon');
SELECT is(pg_temp.award(302), 20::bigint, 'an exclusive bonus whose min_amount is not reached stops nothing');
SELECT is(pg_temp.award(303), 150::bigint, 'an exclusive bonus that matches stops the others: 50 + 100');

CALL pg_temp.rule('x2', 'multiplier', multiplier => 2, category => 'bon');
INSERT INTO orders (order_id, customer, total, category) VALUES (304, 'r3', 10.5, 'bon');
SELECT is(pg_temp.award(304), 31::bigint, 'bonuses are added after multiplying: 10.5 x 2 + 3 + 7 = 31');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- minimum amount
------------------------------------------------------------------------------
CALL pg_temp.rule('nothing under 5 in stores', 'minimum', min_amount => 5, channel => 'store');
CALL pg_temp.rule('+10', 'bonus', points => 10, category => 'bon');
INSERT INTO orders (order_id, customer, total, channel, category) VALUES
	(401, 'r4', 4.99, 'store', NULL), (402, 'r4', 5.00, 'store', NULL), (403, 'r4', 4.99, 'web', NULL),
	(404, 'r4', 4.99, 'store', 'bon'), (405, 'r4', 4.99, 'web', 'bon');
SELECT is(pg_temp.entries(401), 0::bigint, 'below the minimum: no points, no entry');
SELECT is(pg_temp.award(402), 5::bigint, 'exactly the minimum earns');
SELECT is(pg_temp.award(403), 4::bigint, 'a minimum scoped to a channel does not apply to another channel');
SELECT is(pg_temp.entries(404), 0::bigint, 'below the minimum, bonuses do not count either');
SELECT is(pg_temp.award(405), 14::bigint, 'the other channel gets 4 + 10');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- conditions: tier, store
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT loyalty.enroll('goldie')$$, 'goldie enrolls');
UPDATE loyalty.members SET tier = 'gold' WHERE member_key = 'goldie';
CALL pg_temp.rule('gold x2', 'multiplier', multiplier => 2, tier => 'gold');
CALL pg_temp.rule('store S1 x3', 'multiplier', multiplier => 3, store => 'S1');
INSERT INTO orders (order_id, customer, total, store) VALUES
	(501, 'goldie', 10, NULL), (502, 'plain', 10, NULL), (503, 'plain', 10, 'S1'), (504, 'plain', 10, 'S2'),
	(505, 'goldie', 10, 'S1');
SELECT is(pg_temp.award(501), 20::bigint, 'a tier rule applies to the member with that tier');
SELECT is(pg_temp.award(502), 10::bigint, 'and not to others');
SELECT is(pg_temp.award(503), 30::bigint, 'a store rule applies to that store');
SELECT is(pg_temp.award(504), 10::bigint, 'and not to another store');
SELECT is(pg_temp.award(505), 60::bigint, 'both apply together: 10 x 2 x 3');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- conditions: validity [valid_from, valid_until)
------------------------------------------------------------------------------
CALL pg_temp.rule('May Day +50', 'bonus', points => 50,
					valid_from => '2025-05-01 00:00 Europe/Berlin', valid_until => '2025-05-02 00:00 Europe/Berlin');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(511, 'r5', 10, '2025-04-30 21:59:59.999999+00'), (512, 'r5', 10, '2025-04-30 22:00:00+00'),
	(513, 'r5', 10, '2025-05-01 21:59:59.999999+00'), (514, 'r5', 10, '2025-05-01 22:00:00+00');
SELECT is(pg_temp.award(511), 10::bigint, '1 us before valid_from: no bonus');
SELECT is(pg_temp.award(512), 60::bigint, 'at valid_from: bonus');
SELECT is(pg_temp.award(513), 60::bigint, '1 us before valid_until: bonus');
SELECT is(pg_temp.award(514), 10::bigint, 'at valid_until: no bonus');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- conditions: "double points on Wednesdays after 21:00" (Berlin time)
------------------------------------------------------------------------------
CALL pg_temp.rule('Wednesday night x2', 'multiplier', multiplier => 2, days_of_week => '{3}',
					hour_from => 21, hour_until => 24);
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(521, 'r6', 10, '2025-01-15 19:59:00+00'),	-- Wed 20:59 CET
	(522, 'r6', 10, '2025-01-15 20:00:00+00'),	-- Wed 21:00 CET (20:00 in UTC)
	(523, 'r6', 10, '2025-01-15 22:59:59+00'),	-- Wed 23:59:59 CET
	(524, 'r6', 10, '2025-01-15 23:00:00+00'),	-- Thu 00:00 CET (still Wednesday in UTC)
	(525, 'r6', 10, '2025-07-16 18:59:00+00'),	-- Wed 20:59 CEST
	(526, 'r6', 10, '2025-07-16 19:00:00+00'),	-- Wed 21:00 CEST
	(527, 'r6', 10, '2025-01-14 20:30:00+00');	-- Tue 21:30 CET
SELECT is(pg_temp.award(521), 10::bigint, 'Wednesday 20:59 Berlin: single points');
SELECT is(pg_temp.award(522), 20::bigint, 'Wednesday 21:00 Berlin (20:00 UTC): double points');
SELECT is(pg_temp.award(523), 20::bigint, 'Wednesday 23:59:59 Berlin: double points');
SELECT is(pg_temp.award(524), 10::bigint, 'Thursday 00:00 Berlin (Wednesday 23:00 UTC): single points');
SELECT is(pg_temp.award(525), 10::bigint, 'summer time: Wednesday 20:59 Berlin: single points');
SELECT is(pg_temp.award(526), 20::bigint, 'summer time: Wednesday 21:00 Berlin (19:00 UTC): double points');
SELECT is(pg_temp.award(527), 10::bigint, 'Tuesday 21:30 Berlin: single points');
CALL pg_temp.no_rules();

-- hours that wrap past midnight, 22 to 2
CALL pg_temp.rule('night +5', 'bonus', points => 5, hour_from => 22, hour_until => 2);
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(531, 'r6', 10, '2025-03-03 20:59:00+00'),	-- 21:59 CET
	(532, 'r6', 10, '2025-03-03 21:00:00+00'),	-- 22:00
	(533, 'r6', 10, '2025-03-04 00:59:59+00'),	-- 01:59:59
	(534, 'r6', 10, '2025-03-04 01:00:00+00');	-- 02:00
SELECT is(pg_temp.award(531), 10::bigint, 'wrapping hours: 21:59 local is outside');
SELECT is(pg_temp.award(532), 15::bigint, 'wrapping hours: 22:00 local is inside');
SELECT is(pg_temp.award(533), 15::bigint, 'wrapping hours: 01:59:59 local is inside');
SELECT is(pg_temp.award(534), 10::bigint, 'wrapping hours: 02:00 local is outside');
CALL pg_temp.no_rules();

-- ISO days: 7 is Sunday
CALL pg_temp.rule('Sunday x4', 'multiplier', multiplier => 4, days_of_week => '{7}');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(535, 'r6', 10, '2025-03-09 12:00:00+00'),	-- Sunday
	(536, 'r6', 10, '2025-03-10 12:00:00+00'),	-- Monday
	(537, 'r6', 10, '2025-03-09 23:30:00+00'),	-- Monday 00:30 CET
	(538, 'r6', 10, '2025-03-08 23:30:00+00');	-- Sunday 00:30 CET
SELECT is(pg_temp.award(535), 40::bigint, 'days_of_week {7}: Sunday');
SELECT is(pg_temp.award(536), 10::bigint, 'days_of_week {7}: not Monday');
SELECT is(pg_temp.award(537), 10::bigint, 'Sunday 23:30 UTC is Monday in Berlin');
SELECT is(pg_temp.award(538), 40::bigint, 'Saturday 23:30 UTC is Sunday in Berlin');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- caps
------------------------------------------------------------------------------
CALL pg_temp.rule('100 a day', 'cap', points => 100, cap_period => 'day');

-- one statement per purchase
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (601, 'cap1', 60, '2025-06-10 08:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (602, 'cap1', 70, '2025-06-10 09:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (603, 'cap1', 50, '2025-06-10 10:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (604, 'cap1', 10, '2025-06-10 21:59+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (605, 'cap1', 50, '2025-06-10 22:00+00');
SELECT is(pg_temp.award(601), 60::bigint, 'day cap 100, separate statements: 60 of 60');
SELECT is(pg_temp.award(602), 40::bigint, 'then 40 of 70');
SELECT is(pg_temp.entries(603), 0::bigint, 'then nothing (no entry)');
SELECT is(pg_temp.entries(604), 0::bigint, '23:59 Berlin is the same day: nothing');
SELECT is(pg_temp.award(605), 50::bigint, '00:00 Berlin (22:00 UTC) is the next day: 50 of 50');

-- one statement, rows in reverse time order, and another customer
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(613, 'cap2', 50, '2025-06-10 10:00+00'),
	(612, 'cap2', 70, '2025-06-10 09:00+00'),
	(611, 'cap2', 60, '2025-06-10 08:00+00'),
	(614, 'cap2', 50, '2025-06-10 22:30+00'),
	(615, 'cap2b', 90, '2025-06-10 08:00+00');
SELECT is(pg_temp.award(611), 60::bigint, 'day cap within one INSERT, in time order: 60 of 60');
SELECT is(pg_temp.award(612), 40::bigint, 'then 40 of 70');
SELECT is(pg_temp.entries(613), 0::bigint, 'then nothing');
SELECT is(pg_temp.award(614), 50::bigint, 'the next Berlin day: 50');
SELECT is(pg_temp.award(615), 90::bigint, 'another customer in the same INSERT has its own cap');
CALL pg_temp.no_rules();

-- week, from Monday in Berlin
CALL pg_temp.rule('100 a week', 'cap', points => 100, cap_period => 'week');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(621, 'cap3', 80, '2025-06-15 20:00+00'),	-- Sunday 22:00 CEST
	(622, 'cap3', 80, '2025-06-15 21:30+00'),	-- Sunday 23:30
	(623, 'cap3', 80, '2025-06-15 22:30+00');	-- Monday 00:30
SELECT is(pg_temp.award(621), 80::bigint, 'week cap: 80');
SELECT is(pg_temp.award(622), 20::bigint, 'week cap: 20 more on the same Sunday');
SELECT is(pg_temp.award(623), 80::bigint, 'Monday 00:30 Berlin starts a new week');
CALL pg_temp.no_rules();

-- day and month together
CALL pg_temp.rule('100 a day', 'cap', points => 100, cap_period => 'day');
CALL pg_temp.rule('150 a month', 'cap', points => 150, cap_period => 'month');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(631, 'cap4', 80, '2025-06-01 08:00+00'),
	(632, 'cap4', 50, '2025-06-01 09:00+00'),
	(633, 'cap4', 40, '2025-06-02 08:00+00'),
	(634, 'cap4', 30, '2025-06-03 08:00+00'),
	(635, 'cap4', 30, '2025-06-30 22:30+00');	-- 1 July 00:30 in Berlin
SELECT is(pg_temp.award(631), 80::bigint, 'day + month caps in one INSERT: 80');
SELECT is(pg_temp.award(632), 20::bigint, 'the day cap: 20 of 50');
SELECT is(pg_temp.award(633), 40::bigint, 'next day: 40 (month at 140)');
SELECT is(pg_temp.award(634), 10::bigint, 'the month cap: 10 of 30');
SELECT is(pg_temp.award(635), 30::bigint, 'July in Berlin: a new month');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (636, 'cap4', 50, '2025-06-20 08:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (637, 'cap4', 130, '2025-07-02 08:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (638, 'cap4', 100, '2025-07-20 08:00+00');
SELECT is(pg_temp.entries(636), 0::bigint, 'a later statement sees the full June: nothing');
SELECT is(pg_temp.award(637), 100::bigint, '2 July: the day cap, 100 of 130');
SELECT is(pg_temp.award(638), 20::bigint, 'July already has 130: 20 of 100');

-- corrections are capped too, and reversals give no room back
UPDATE orders SET total = 60 WHERE order_id = 636;
SELECT is(pg_temp.entries(636), 0::bigint, 'raising a purchase in a full month adds nothing');
UPDATE orders SET total = 10 WHERE order_id = 632;
SELECT is(pg_temp.award(632), 10::bigint, 'lowering 632 to 10 takes 10 back (20 -> 10)');
UPDATE orders SET total = 50 WHERE order_id = 632;
SELECT is(pg_temp.award(632), 10::bigint, 'raising it again: the day''s 100 were used, the reversal gave no room back');
SELECT is(loyalty.balance('cap4'), 80 + 10 + 40 + 10 + 30 + 100 + 20::bigint, 'cap4''s balance is the sum');
CALL pg_temp.no_rules();

-- a cap that starts at noon: the result must not depend on how the rows are batched
CALL pg_temp.rule('60 a day from noon', 'cap', points => 60, cap_period => 'day',
					valid_from => '2025-08-05 12:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(651, 'cv1', 50, '2025-08-05 08:00+00'), (652, 'cv1', 50, '2025-08-05 13:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (653, 'cv2', 50, '2025-08-05 08:00+00');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (654, 'cv2', 50, '2025-08-05 13:00+00');
SELECT is(pg_temp.award(652), pg_temp.award(654),
		  'a cap valid from noon gives the same points whether the purchases came in one INSERT or two');
CALL pg_temp.no_rules();

-- a cap scoped to a channel: the result must not depend on the batching either
CALL pg_temp.rule('60 a day online', 'cap', points => 60, cap_period => 'day', channel => 'web');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES
	(661, 'cs1', 50, '2025-08-06 08:00+00', 'store'), (662, 'cs1', 50, '2025-08-06 09:00+00', 'web');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (663, 'cs2', 50, '2025-08-06 08:00+00', 'store');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (664, 'cs2', 50, '2025-08-06 09:00+00', 'web');
SELECT is(pg_temp.award(662), pg_temp.award(664),
		  'a channel cap gives the same points whether the purchases came in one INSERT or two');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- first-purchase bonus
------------------------------------------------------------------------------
CALL pg_temp.rule('welcome 100', 'first_purchase', priority => 10, points => 100);
CALL pg_temp.rule('welcome +20 from 50', 'first_purchase', priority => 20, points => 20, min_amount => 50);
CALL pg_temp.rule('online welcome 7', 'first_purchase', priority => 5, exclusive => true, points => 7, channel => 'web');

-- three purchases of a new customer in one INSERT, latest first
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES
	(703, 'fp1', 10, '2025-09-03 10:00+00', 'store'),
	(702, 'fp1', 30, '2025-09-02 10:00+00', 'store'),
	(701, 'fp1', 60, '2025-09-01 10:00+00', 'store');
SELECT results_eq($$SELECT kind::text, points, reference::text, reason, effective_at FROM loyalty.ledger
					 WHERE member_key = 'fp1'
					   AND reference LIKE '%#first-purchase-bonus'$$,
	$$VALUES ('earn'::text, 120::bigint, '701#first-purchase-bonus'::text, 'first-purchase bonus'::text,
			  '2025-09-01 10:00+00'::timestamptz)$$,
	'one bonus for the earliest purchase of the INSERT: 100 + 20, its own entry');
SELECT is((SELECT first_purchase_at FROM loyalty.members WHERE member_key = 'fp1'), '2025-09-01 10:00+00'::timestamptz,
		  'first_purchase_at is the earliest purchase time');
SELECT is(pg_temp.award(701) + pg_temp.award(702) + pg_temp.award(703), 100::bigint,
		  'the purchases earn their own points besides the bonus');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (704, 'fp1', 100, '2025-09-04 10:00+00', 'store');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference LIKE '%#first-purchase-bonus'
			AND member_key = 'fp1'), 1::bigint,
		  'a later purchase gets no second bonus');
SELECT is(loyalty.balance('fp1'), 60 + 30 + 10 + 120 + 100::bigint, 'fp1: 200 points + 120 bonus');

-- points from earn() do not make a first purchase
SELECT lives_ok($q$DO $do$ BEGIN
	PERFORM loyalty.enroll('fp2');
	PERFORM loyalty.earn('fp2', 5, at => '2025-08-01 10:00+00');
END $do$$q$, 'fp2 enrolls and earns 5 points by earn()');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (711, 'fp2', 30, '2025-09-01 10:00+00', 'store');
SELECT is(pg_temp.award(711) + (SELECT coalesce(sum(points), 0) FROM loyalty.ledger WHERE reference = '711#first-purchase-bonus')::bigint,
		  130::bigint, 'fp2''s first tracked purchase gets the bonus (100; 30 is under 50): 30 + 100');

-- an exclusive first_purchase rule
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (721, 'fp3', 60, '2025-09-01 10:00+00', 'web');
SELECT is((SELECT points FROM loyalty.ledger WHERE reference = '721#first-purchase-bonus'), 7::bigint,
		  'an exclusive first_purchase rule stops the others: 7');

-- the bonus is neither capped nor counted by a cap
CALL pg_temp.rule('150 a day', 'cap', points => 150, cap_period => 'day');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (731, 'fp4', 60, '2025-09-10 10:00+00', 'store');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES (732, 'fp4', 100, '2025-09-10 11:00+00', 'store');
SELECT is((SELECT points FROM loyalty.ledger WHERE reference = '731#first-purchase-bonus'), 120::bigint,
		  'with a day cap of 150 the bonus is still 120');
SELECT is(pg_temp.award(732), 90::bigint, 'the bonus does not use up the cap: 60 + 90 = 150');
INSERT INTO orders (order_id, customer, total, ordered_at, channel) VALUES
	(741, 'fp5', 60, '2025-09-10 10:00+00', 'store'), (742, 'fp5', 100, '2025-09-10 11:00+00', 'store');
SELECT is(loyalty.balance('fp5'), 60 + 90 + 120::bigint, 'the same in one INSERT: 60 + 90 + bonus 120');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- rule changes apply to the next statement of the same transaction
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (801, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(801), 10::bigint, 'no rules: 10');
CALL pg_temp.rule('promo', 'multiplier', multiplier => 4);
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (802, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(802), 40::bigint, 'a new rule applies to the next INSERT: 40');
UPDATE loyalty.earning_rules SET multiplier = 5 WHERE name = 'promo';
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (803, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(803), 50::bigint, 'a changed rule applies to the next INSERT: 50');
UPDATE loyalty.earning_rules SET active = false WHERE name = 'promo';
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (804, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(804), 10::bigint, 'an inactive rule does not apply: 10');
SAVEPOINT before_rule;
CALL pg_temp.rule('short-lived', 'multiplier', multiplier => 9);
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (805, 'ch', 10, '2025-10-01 10:00+00');
SELECT pg_temp.award(805) AS award_in_savepoint \gset
ROLLBACK TO SAVEPOINT before_rule;
SELECT is(:award_in_savepoint::bigint, 90::bigint, 'a rule added in a savepoint applies in it: 90');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (806, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(806), 10::bigint, 'after ROLLBACK TO SAVEPOINT the rule is gone: 10');
SELECT is(pg_temp.entries(805), 0::bigint, 'and so is the purchase made in the savepoint');
UPDATE loyalty.programs SET points_per_unit = 3 WHERE code = 'rules';
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (807, 'ch', 10, '2025-10-01 10:00+00');
SELECT is(pg_temp.award(807), 30::bigint, 'a changed points_per_unit applies to the next INSERT: 30');
SELECT is(loyalty.balance('ch'), 10 + 40 + 50 + 10 + 10 + 30::bigint, 'ch''s balance is the sum');

------------------------------------------------------------------------------
-- conditions compare by value, in the type of the tracked column
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name) VALUES ('typed', 'Typed columns');
CREATE TYPE pg_temp.shop AS ENUM ('north', 'south');
CREATE TABLE typed_orders (id int PRIMARY KEY, customer text, total numeric,
						   online boolean, aisle int, till char(5));
CREATE PROCEDURE pg_temp.typed_rule(name text, multiplier numeric, channel text DEFAULT NULL,
									category text DEFAULT NULL, store text DEFAULT NULL)
	LANGUAGE sql AS $$
	INSERT INTO loyalty.earning_rules (program_id, name, kind, multiplier, channel, category, store)
	SELECT id, $1, 'multiplier', multiplier, channel, category, store FROM loyalty.programs WHERE code = 'typed'
$$;
CALL pg_temp.typed_rule('online', 2, channel => 'TRUE');
CALL pg_temp.typed_rule('aisle 7', 3, category => '07');
CALL pg_temp.typed_rule('till', 5, store => 'web');
SELECT lives_ok($$SELECT loyalty.track_purchases('typed_orders', 'customer', 'total', channel_column => 'online',
				  category_column => 'aisle', store_column => 'till', program => 'typed')$$,
	'a table with boolean, integer and char(5) label columns is tracked under rules written TRUE, 07 and web');
INSERT INTO typed_orders VALUES (1, 't1', 10, true, NULL, NULL);
INSERT INTO typed_orders VALUES (2, 't2', 10, NULL, 7, NULL);
INSERT INTO typed_orders VALUES (3, 't3', 10, NULL, NULL, 'web');
SELECT is(ARRAY[loyalty.balance('t1', program => 'typed'), loyalty.balance('t2', program => 'typed'),
				loyalty.balance('t3', program => 'typed')], ARRAY[20, 30, 50]::bigint[],
	'single rows: boolean true = TRUE, integer 7 = 07, char(5) ''web  '' = web');
INSERT INTO typed_orders VALUES (4, 't4', 10, false, 70, 'webs'), (5, 't4', 10, true, 7, 'web'),
								(6, 't4', 10, NULL, NULL, NULL);
SELECT is(loyalty.balance('t4', program => 'typed'), 10 + 300 + 10::bigint,
	'bulk: no condition matches other values or NULL; all three match together (x30)');
UPDATE typed_orders SET total = 20 WHERE id = 1;
SELECT is(loyalty.balance('t1', program => 'typed'), 40::bigint, 'an amount change is settled under the same rule');

-- a value that is not one of the column's type is refused, with a hint
SELECT throws_ok($$CALL pg_temp.typed_rule('bad', 2, channel => 'yes please')$$, 'LY008',
	'earning rule ' || (SELECT last_value FROM loyalty.earning_rules_id_seq) + 1
	|| ' has channel "yes please", which is not a value of type boolean',
	'a rule written with a value that is no boolean is refused when created');
SELECT throws_ok($$UPDATE loyalty.earning_rules SET category = 'seven' WHERE name = 'aisle 7'$$, 'LY008', NULL,
	'and when updated');
CREATE FUNCTION pg_temp.hint_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	h text;
BEGIN
	EXECUTE sql;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN h;
END
$$;
SELECT is(pg_temp.hint_of($$CALL pg_temp.typed_rule('bad', 2, channel => 'yes please')$$),
	'Write true or false, or set the rule''s channel to NULL.', 'with a hint');
SELECT lives_ok($$UPDATE loyalty.earning_rules SET active = false WHERE name = 'till'$$,
	'an inactive rule is not checked');
SELECT lives_ok($$UPDATE loyalty.earning_rules SET store = 'too long a value' WHERE name = 'till'$$,
	'so it may hold anything');
SELECT throws_ok($$UPDATE loyalty.earning_rules SET active = true WHERE name = 'till'$$, 'LY008', NULL,
	'until it is made active: too long for char(5)');

-- tracking a table whose columns the program's rules do not fit is refused
CREATE TABLE typed_orders2 (id int PRIMARY KEY, customer text, total numeric, kind pg_temp.shop);
SELECT throws_ok($$SELECT loyalty.track_purchases('typed_orders2', 'customer', 'total',
				   channel_column => 'kind', program => 'typed')$$, 'LY008', NULL,
	'tracking an enum column for a program with a channel rule TRUE is refused');
SELECT is((SELECT count(*) FROM loyalty.tracked_tables WHERE table_name = 'typed_orders2'::regclass), 0::bigint,
	'and the table is not tracked');

-- a column retyped since: the configuration load refuses the purchase
ALTER TABLE typed_orders ALTER COLUMN aisle TYPE text;
CALL pg_temp.typed_rule('aisle b', 2, category => 'b');
ALTER TABLE typed_orders ALTER COLUMN aisle TYPE boolean USING aisle::int::boolean;
SELECT throws_ok($$INSERT INTO typed_orders VALUES (7, 't5', 10, NULL, true, NULL)$$, 'LY008', NULL,
	'a column retyped to boolean under a rule ''b'': the purchase fails with LY008');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 't5'), 0::bigint, 'and nothing is written');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong');

SELECT * FROM finish();
ROLLBACK;
