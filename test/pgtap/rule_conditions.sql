\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(87);
\ir lib/error_text.psql
\ir lib/as_role.psql

-- Earning rule conditions beyond equality (loyalty.earning_rules.conditions,
-- src/conditions.c): not equal, lists, ranges and nulls on columns of any
-- common type, evaluated in C from the cached configuration, on the single
-- row, bulk and COPY paths and again when a purchase changes.

-- Asia/Singapore (UTC+8), 1 point per unit, floor, never expires, no pending period
INSERT INTO loyalty.programs (code, name, currency, time_zone, is_default)
VALUES ('cond', 'Conditions', 'SGD', 'Asia/Singapore', true);

CREATE TYPE shop_kind AS ENUM ('kiosk', 'store', 'flagship');
CREATE TABLE orders (
	order_id	int PRIMARY KEY,
	customer	text NOT NULL,
	total		numeric(10,2) NOT NULL,
	ordered_at	timestamptz NOT NULL DEFAULT '2025-06-02 10:00+00',
	status		text NOT NULL DEFAULT 'paid',
	channel		text,
	currency	char(3),
	country		text,
	items		integer,
	weight		numeric,
	gift		boolean,
	kind		shop_kind,
	delivery	date,
	paid_local	timestamp,
	shipped_at	timestamptz,
	tags		text[]
);
SELECT lives_ok($$SELECT loyalty.track_purchases('orders', 'customer', 'total', 'ordered_at',
	status_column => 'status', channel_column => 'channel')$$, 'orders are tracked with a channel');

-- net points of one purchase (its first-purchase bonus has another reference)
CREATE FUNCTION pg_temp.award(ref int) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(points), 0)::bigint FROM loyalty.ledger
	 WHERE reference = ref::text AND track_id IS NOT NULL
$$;
CREATE FUNCTION pg_temp.awards(refs int[]) RETURNS bigint[] LANGUAGE sql AS $$
	SELECT array_agg(pg_temp.award(r) ORDER BY n) FROM unnest(refs) WITH ORDINALITY AS u(r, n)
$$;
CREATE PROCEDURE pg_temp.rule(name text, kind text, conditions jsonb, multiplier numeric DEFAULT NULL,
							  points bigint DEFAULT NULL, priority int DEFAULT 100,
							  exclusive boolean DEFAULT false, min_amount numeric DEFAULT NULL,
							  cap_period text DEFAULT NULL, channel text DEFAULT NULL,
							  active boolean DEFAULT true)
	LANGUAGE sql AS $$
	INSERT INTO loyalty.earning_rules (program_id, name, kind, conditions, multiplier, points, priority,
									   exclusive, min_amount, cap_period, channel, active)
	SELECT id, $1, kind, conditions, multiplier, points, priority, exclusive, min_amount, cap_period,
		   channel, active
	  FROM loyalty.programs WHERE code = 'cond'
$$;
CREATE PROCEDURE pg_temp.no_rules() LANGUAGE sql AS $$ DELETE FROM loyalty.earning_rules $$;
CREATE FUNCTION pg_temp.next_rule() RETURNS bigint LANGUAGE sql AS $$
	SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM loyalty.earning_rules_id_seq
$$;
-- pg_temp.err() of a statement that writes a rule, the rule's id shown as N
CREATE FUNCTION pg_temp.rule_err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	nr bigint := pg_temp.next_rule();
BEGIN
	RETURN replace(pg_temp.err(q), 'rule ' || nr || ' ', 'rule N ');
END $$;

------------------------------------------------------------------------------
-- not equal: "overseas purchases (currency other than SGD) earn 2x"
------------------------------------------------------------------------------
CALL pg_temp.rule('overseas x2', 'multiplier', '{"currency": {"not": "SGD"}}', multiplier => 2);
INSERT INTO orders (order_id, customer, total, currency) VALUES (101, 'ne', 10, 'SGD');
INSERT INTO orders (order_id, customer, total, currency) VALUES (102, 'ne', 10, 'USD');
INSERT INTO orders (order_id, customer, total, currency) VALUES (103, 'ne', 10, NULL);
SELECT is(pg_temp.awards('{101,102,103}'), '{10,20,10}'::bigint[],
	'single rows: SGD 10, USD 2 x 10, a NULL currency matches no "not" (as SQL''s <>)');
INSERT INTO orders (order_id, customer, total, currency)
SELECT 110 + i, 'ne' || i % 3, 10, (ARRAY['SGD', 'EUR', NULL])[i % 3 + 1] FROM generate_series(0, 8) i;
SELECT is(pg_temp.awards('{110,111,112,113,114,115,116,117,118}'), '{10,20,10,10,20,10,10,20,10}'::bigint[],
	'bulk INSERT ... SELECT: the same per row');
COPY orders (order_id, customer, total, currency) FROM STDIN;
121	ne	10	JPY
122	ne	10	SGD
123	ne	10	\N
\.
SELECT is(pg_temp.awards('{121,122,123}'), '{20,10,10}'::bigint[], 'COPY: the same per row');
INSERT INTO orders (order_id, customer, total, currency) VALUES (124, 'ne', 10, 'sgd');
SELECT is(pg_temp.award(124), 20::bigint, 'values compare as the column''s type does: sgd is not SGD in char(3)');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- equality, lists, not in; text, a long list searched in order
------------------------------------------------------------------------------
CALL pg_temp.rule('SG +1', 'bonus', '{"country": "SG"}', points => 1);
CALL pg_temp.rule('neighbours +10', 'bonus', '{"country": ["MY", "TH", "ID"]}', points => 10);
CALL pg_temp.rule('far away +100', 'bonus', '{"country": {"not in": ["SG", "MY", "TH", "ID"]}}', points => 100);
INSERT INTO orders (order_id, customer, total, country) VALUES
	(201, 'li', 10, 'SG'), (202, 'li', 10, 'TH'), (203, 'li', 10, 'FR'), (204, 'li', 10, NULL), (205, 'li', 10, 'sg');
SELECT is(pg_temp.awards('{201,202,203,204,205}'), '{11,20,110,10,110}'::bigint[],
	'a value, a list and "not in" on a text column; NULL matches neither a list nor "not in"');
CALL pg_temp.no_rules();
-- more than 8 values: sorted once, searched by the type's comparison
CALL pg_temp.rule('EU +5', 'bonus',
	'{"country": ["AT","BE","BG","HR","CY","CZ","DK","EE","FI","FR","DE","GR","HU","IE","IT","LV","LT","LU","MT","NL","PL","PT","RO","SK","SI","ES","SE"]}',
	points => 5);
CALL pg_temp.rule('not EU +50', 'bonus',
	'{"country": {"not in": ["AT","BE","BG","HR","CY","CZ","DK","EE","FI","FR","DE","GR","HU","IE","IT","LV","LT","LU","MT","NL","PL","PT","RO","SK","SI","ES","SE"]}}',
	points => 50);
INSERT INTO orders (order_id, customer, total, country) VALUES
	(211, 'li', 10, 'AT'), (212, 'li', 10, 'SE'), (213, 'li', 10, 'LT'), (214, 'li', 10, 'GB'), (215, 'li', 10, 'AA'),
	(216, 'li', 10, 'ZZ');
SELECT is(pg_temp.awards('{211,212,213,214,215,216}'), '{15,15,15,60,60,60}'::bigint[],
	'a list of 27: its first, last and a middle value match, values around and outside it do not');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- ranges on the purchase amount
------------------------------------------------------------------------------
CALL pg_temp.rule('from 100 x2', 'multiplier', '{"amount": {">=": 100}}', multiplier => 2);
CALL pg_temp.rule('over 200 +7', 'bonus', '{"amount": {">": 200}}', points => 7);
CALL pg_temp.rule('under 10 +3', 'bonus', '{"amount": {"<": 10}}', points => 3);
CALL pg_temp.rule('up to 20 +2', 'bonus', '{"amount": {"<=": 20}}', points => 2);
CALL pg_temp.rule('50 to 60 +1000', 'bonus', '{"amount": {"between": [50, 60]}}', points => 1000);
INSERT INTO orders (order_id, customer, total) VALUES
	(301, 'am', 99.99), (302, 'am', 100), (303, 'am', 200), (304, 'am', 200.01), (305, 'am', 9.99),
	(306, 'am', 10), (307, 'am', 20), (308, 'am', 20.01), (309, 'am', 49.99), (310, 'am', 50), (311, 'am', 60),
	(312, 'am', 60.01);
SELECT is(pg_temp.awards('{301,302,303,304,305,306,307,308,309,310,311,312}'),
	'{99,200,400,407,14,12,22,20,49,1050,1060,60}'::bigint[],
	'>=, >, <, <= and between (both ends included) on the amount, at and beside each bound');
CALL pg_temp.no_rules();
-- several operators in one object, several keys: all must hold
CALL pg_temp.rule('10 to 20 from SG +100', 'bonus', '{"amount": {">=": 10, "<": 20}, "country": "SG"}', points => 100);
INSERT INTO orders (order_id, customer, total, country) VALUES
	(321, 'am', 9.99, 'SG'), (322, 'am', 10, 'SG'), (323, 'am', 19.99, 'SG'), (324, 'am', 20, 'SG'), (325, 'am', 15, 'MY');
SELECT is(pg_temp.awards('{321,322,323,324,325}'), '{9,110,119,20,15}'::bigint[],
	'operators of one object and keys of one rule combine with AND');
CALL pg_temp.no_rules();
-- the amount is the purchase amount in numeric whatever the column's type
CREATE TABLE int_orders (id int PRIMARY KEY, customer text, cents bigint);
CALL pg_temp.rule('from 1000 x3', 'multiplier', '{"amount": {">=": "1000"}}', multiplier => 3);
SELECT lives_ok($$SELECT loyalty.track_purchases('int_orders', 'customer', 'cents')$$,
	'a table with a bigint amount is tracked for a program with an amount condition');
INSERT INTO int_orders VALUES (1, 'ia', 999), (2, 'ia', 1000);
SELECT is(ARRAY(SELECT points FROM loyalty.ledger WHERE member_key = 'ia' ORDER BY reference),
	'{999,3000}'::bigint[], 'an amount condition on a bigint amount column: 999 and 3 x 1000');
SELECT ok(loyalty.untrack_purchases('int_orders'), 'int_orders is untracked');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- integer, numeric, boolean and enum columns
------------------------------------------------------------------------------
CALL pg_temp.rule('3 items or more +30', 'bonus', '{"items": {">=": 3}}', points => 30);
CALL pg_temp.rule('exactly 7 items +700', 'bonus', '{"items": "07"}', points => 700);
CALL pg_temp.rule('light x2', 'multiplier', '{"weight": {"between": ["0.5", 2.25]}}', multiplier => 2);
INSERT INTO orders (order_id, customer, total, items, weight) VALUES
	(401, 'ty', 10, 2, 0.49), (402, 'ty', 10, 3, 0.5), (403, 'ty', 10, 7, 2.25), (404, 'ty', 10, NULL, 2.26);
SELECT is(pg_temp.awards('{401,402,403,404}'), '{10,50,750,10}'::bigint[],
	'integer >= and equality written "07", numeric between written as a string and a number');
CALL pg_temp.no_rules();

CALL pg_temp.rule('gift +5', 'bonus', '{"gift": true}', points => 5);
CALL pg_temp.rule('gift written yes +50', 'bonus', '{"gift": "yes"}', points => 50);
CALL pg_temp.rule('not a gift +500', 'bonus', '{"gift": {"not": true}}', points => 500);
INSERT INTO orders (order_id, customer, total, gift) VALUES (411, 'ty', 10, true), (412, 'ty', 10, false), (413, 'ty', 10, NULL);
SELECT is(pg_temp.awards('{411,412,413}'), '{65,510,10}'::bigint[],
	'boolean: true, "yes" read as true, {"not": true} matches false but not NULL');
CALL pg_temp.no_rules();

CALL pg_temp.rule('stores and flagships x2', 'multiplier', '{"kind": {">=": "store"}}', multiplier => 2);
CALL pg_temp.rule('kiosks +1', 'bonus', '{"kind": ["kiosk"]}', points => 1);
INSERT INTO orders (order_id, customer, total, kind) VALUES
	(421, 'ty', 10, 'kiosk'), (422, 'ty', 10, 'store'), (423, 'ty', 10, 'flagship'), (424, 'ty', 10, NULL);
SELECT is(pg_temp.awards('{421,422,423,424}'), '{11,20,20,10}'::bigint[],
	'enum: a range follows the order of the enum''s labels, not the alphabet (flagship > store)');
SELECT throws_ok($$CALL pg_temp.rule('bad kind', 'bonus', '{"kind": "mall"}', points => 1)$$, 'LY008',
	'earning rule ' || pg_temp.next_rule() || ' compares "kind" with "mall", which is not a value of type shop_kind',
	'a label the enum does not have is refused');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- date and time columns
------------------------------------------------------------------------------
CALL pg_temp.rule('Christmas delivery +20', 'bonus', '{"delivery": {"between": ["2025-12-20", "2025-12-24"]}}', points => 20);
CALL pg_temp.rule('evening (local timestamp) x3', 'multiplier', '{"paid_local": {">=": "2025-06-01 18:00"}}', multiplier => 3);
INSERT INTO orders (order_id, customer, total, delivery, paid_local) VALUES
	(501, 'dt', 10, '2025-12-19', '2025-06-01 17:59:59.999999'), (502, 'dt', 10, '2025-12-20', '2025-06-01 18:00'),
	(503, 'dt', 10, '2025-12-24', NULL), (504, 'dt', 10, '2025-12-25', NULL);
SELECT is(pg_temp.awards('{501,502,503,504}'), '{10,50,30,10}'::bigint[],
	'a date range includes both ends; a timestamp range at its bound');
CALL pg_temp.no_rules();
-- timestamptz values without an offset are read in the program's zone,
-- whatever the session's: midnight in Singapore is 16:00 UTC
SET TimeZone = 'America/New_York';
CALL pg_temp.rule('shipped before 2 June (Singapore) +9', 'bonus', '{"shipped_at": {"<": "2025-06-02"}}', points => 9);
CALL pg_temp.rule('shipped from noon UTC +90', 'bonus', '{"shipped_at": {">=": "2025-06-02 12:00+00"}}', points => 90);
INSERT INTO orders (order_id, customer, total, shipped_at) VALUES
	(511, 'dt', 10, '2025-06-01 15:59:59+00'), (512, 'dt', 10, '2025-06-01 16:00+00'), (513, 'dt', 10, '2025-06-02 12:00+00');
SET TimeZone = 'UTC';
SELECT is(pg_temp.awards('{511,512,513}'), '{19,10,100}'::bigint[],
	'timestamptz: "2025-06-02" is midnight in the program''s zone (16:00 UTC), not the session''s; an offset is kept');
SELECT throws_ok($$CALL pg_temp.rule('bad date', 'bonus', '{"delivery": "next week"}', points => 1)$$, 'LY008',
	'earning rule ' || pg_temp.next_rule() || ' compares "delivery" with "next week", which is not a value of type date',
	'a value that is no date is refused');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- null and not null
------------------------------------------------------------------------------
CALL pg_temp.rule('no country +4', 'bonus', '{"country": null}', points => 4);
CALL pg_temp.rule('a country +40', 'bonus', '{"country": {"not": null}}', points => 40);
INSERT INTO orders (order_id, customer, total, country) VALUES (601, 'nu', 10, NULL), (602, 'nu', 10, 'SG');
INSERT INTO orders (order_id, customer, total, country) VALUES (603, 'nu', 10, '');
SELECT is(pg_temp.awards('{601,602,603}'), '{14,50,50}'::bigint[], 'null, {"not": null}; an empty string is not null');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- a purchase that changes is settled under the conditions again
------------------------------------------------------------------------------
CALL pg_temp.rule('overseas x2', 'multiplier', '{"currency": {"not": "SGD"}}', multiplier => 2);
CALL pg_temp.rule('from 100 +25', 'bonus', '{"amount": {">=": 100}}', points => 25);
INSERT INTO orders (order_id, customer, total, currency) VALUES (701, 'ch', 50, 'SGD');
SELECT is(pg_temp.award(701), 50::bigint, 'SGD 50: 50');
UPDATE orders SET currency = 'USD' WHERE order_id = 701;
SELECT is(pg_temp.award(701), 100::bigint, 'the currency changed to USD: 2 x 50, the difference awarded');
UPDATE orders SET total = 120 WHERE order_id = 701;
SELECT is(pg_temp.award(701), 265::bigint, 'the amount raised to 120: 2 x 120 + 25');
UPDATE orders SET total = 99.99 WHERE order_id = 701;
SELECT is(pg_temp.award(701), 199::bigint, 'lowered under 100: the bonus is taken back with the difference');
UPDATE orders SET currency = 'SGD' WHERE order_id = 701;
SELECT is(pg_temp.award(701), 99::bigint, 'back to SGD: 99');
UPDATE orders SET status = 'refunded' WHERE order_id = 701;
SELECT is(pg_temp.award(701), 0::bigint, 'refunded: 0');
UPDATE orders SET status = 'paid', currency = 'EUR', total = 100 WHERE order_id = 701;
SELECT is(pg_temp.award(701), 225::bigint, 'paid again in EUR for 100: 2 x 100 + 25');
SELECT results_eq($$SELECT kind::text, points, reason FROM loyalty.ledger WHERE reference = '701' ORDER BY seq$$,
	$$VALUES ('earn', 50::bigint, NULL::text), ('adjust', 50, 'purchase amount changed'),
			 ('adjust', 165, 'purchase amount changed'), ('reverse', -66, 'purchase amount changed'),
			 ('reverse', -100, 'purchase amount changed'), ('reverse', -99, 'purchase refunded'),
			 ('adjust', 225, 'purchase amount changed')$$,
	'each change is one entry of the difference');
DELETE FROM orders WHERE order_id = 701;
SELECT is(pg_temp.award(701), 0::bigint, 'deleted: 0');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- with priorities, exclusive rules, minimums, caps, first-purchase bonuses
------------------------------------------------------------------------------
CALL pg_temp.rule('overseas x3, exclusive', 'multiplier', '{"currency": {"not": "SGD"}}', multiplier => 3,
				  priority => 10, exclusive => true);
CALL pg_temp.rule('x2 for everyone', 'multiplier', NULL, multiplier => 2, priority => 20);
INSERT INTO orders (order_id, customer, total, currency) VALUES (801, 'co', 10, 'USD'), (802, 'co', 10, 'SGD');
SELECT is(pg_temp.awards('{801,802}'), '{30,20}'::bigint[],
	'a matching exclusive rule with conditions stops the search; one that does not match stops nothing');
CALL pg_temp.no_rules();

CALL pg_temp.rule('nothing under 20 overseas', 'minimum', '{"currency": {"not": "SGD"}}', min_amount => 20);
INSERT INTO orders (order_id, customer, total, currency) VALUES
	(811, 'co', 19.99, 'USD'), (812, 'co', 20, 'USD'), (813, 'co', 19.99, 'SGD');
SELECT is(pg_temp.awards('{811,812,813}'), '{0,20,19}'::bigint[], 'a minimum scoped by a condition');
CALL pg_temp.no_rules();

CALL pg_temp.rule('at most 50 a day from big orders', 'cap', '{"amount": {">=": 40}}', points => 50, cap_period => 'day');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(821, 'cap', 30, '2025-06-03 01:00+00'), (822, 'cap', 40, '2025-06-03 02:00+00'), (823, 'cap', 5, '2025-06-03 03:00+00');
SELECT is(pg_temp.awards('{821,822,823}'), '{30,20,5}'::bigint[],
	'a cap scoped by a condition limits the purchases it matches (40 -> 20: 30 already that day), not the others');
CALL pg_temp.no_rules();

CALL pg_temp.rule('app welcome 100', 'first_purchase', '{"channel": {"in": ["app", "web"]}}', points => 100);
INSERT INTO orders (order_id, customer, total, channel) VALUES (831, 'fp1', 10, 'store'), (832, 'fp2', 10, 'app');
SELECT is(ARRAY[(SELECT coalesce(sum(points), 0) FROM loyalty.ledger WHERE reference = '831#first-purchase-bonus'),
				(SELECT coalesce(sum(points), 0) FROM loyalty.ledger WHERE reference = '832#first-purchase-bonus')],
	'{0,100}'::numeric[], 'a first-purchase rule on the mapped channel with a list');
CALL pg_temp.no_rules();

-- a condition and the equality columns of one rule combine with AND
CALL pg_temp.rule('web orders from abroad x5', 'multiplier', '{"country": {"not": "SG"}}', multiplier => 5,
				  channel => 'web');
INSERT INTO orders (order_id, customer, total, channel, country) VALUES
	(841, 'co', 10, 'web', 'MY'), (842, 'co', 10, 'web', 'SG'), (843, 'co', 10, 'app', 'MY');
SELECT is(pg_temp.awards('{841,842,843}'), '{50,10,10}'::bigint[], 'channel = web and country not SG');
CALL pg_temp.no_rules();

-- more than 64 rules: a condition's result per rule beyond one word
DO $$
BEGIN
	FOR i IN 1..70 LOOP
		CALL pg_temp.rule('item ' || i, 'bonus', jsonb_build_object('items', jsonb_build_object('>=', i)),
						  points => 1, priority => i);
	END LOOP;
END $$;
INSERT INTO orders (order_id, customer, total, items) VALUES (851, 'many', 10, 35), (852, 'many', 10, 70), (853, 'many', 10, 0);
SELECT is(pg_temp.awards('{851,852,853}'), '{45,80,10}'::bigint[], '70 rules with conditions: 35, 70 and none match');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- the grammar: LY022, whether the rule is active or not
------------------------------------------------------------------------------
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{"currency": {"!=": "SGD"}}', points => 1)$$),
	'LY022: earning rule N has an invalid condition on "currency" | "!=" is not an operator. | '
	|| 'A condition is a value, a list of values, null, or an object of operators: not, in, not in, <, <=, >, >=, between.',
	'an unknown operator: what is wrong, and the grammar as a hint');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"currency": {"not": ["SGD", "MYR"]}}', points => 1)$$, 'LY022', NULL,
	'"not" with a list');
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{"currency": {"not": ["SGD"]}}', points => 1)$$),
	'LY022: earning rule N has an invalid condition on "currency" | "not" takes one value; for a list write "not in". | '
	|| 'A condition is a value, a list of values, null, or an object of operators: not, in, not in, <, <=, >, >=, between.',
	'which says to write "not in"');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"country": []}', points => 1)$$, 'LY022', NULL, 'an empty list');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"country": {"in": "SG"}}', points => 1)$$, 'LY022', NULL,
	'"in" with a value, not a list');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"country": ["SG", null]}', points => 1)$$, 'LY022', NULL,
	'null in a list');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"country": [["SG"]]}', points => 1)$$, 'LY022', NULL,
	'a list in a list');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"amount": {"between": [1]}}', points => 1)$$, 'LY022', NULL,
	'between with one value');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"amount": {">": null}}', points => 1)$$, 'LY022', NULL,
	'a range with null');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"amount": {">": {"a": 1}}}', points => 1)$$, 'LY022', NULL,
	'a range with an object');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"amount": {}}', points => 1)$$, 'LY022', NULL,
	'an object without operators');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"": 1}', points => 1)$$, 'LY022', NULL, 'an empty key');
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{}', points => 1)$$),
	'LY022: earning rule N has invalid conditions | Conditions name at least one column; '
	|| 'a rule without conditions has conditions NULL. | A condition is a value, a list of values, null, or an object of '
	|| 'operators: not, in, not in, <, <=, >, >=, between.', 'no conditions at all: NULL, not {}');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '["currency"]', points => 1)$$, '23514', NULL,
	'conditions that are not an object break the check constraint conditions_are_an_object');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"currency": {"nor": 1}}', points => 1, active => false)$$, 'LY022', NULL,
	'an inactive rule''s grammar is checked too');
SELECT is((SELECT count(*) FROM loyalty.earning_rules), 0::bigint, 'no rule was written');

------------------------------------------------------------------------------
-- columns, types and values: against every table the program tracks
------------------------------------------------------------------------------
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{"coupon": "X"}', points => 1)$$),
	'42703: earning rule N has a condition on column "coupon", which table "orders" does not have'
	|| ' | A condition names amount, channel, category, store, or a column of every table the rule''s program tracks.'
	|| ' | Columns of orders: order_id, customer, total, ordered_at, status, channel, currency, country, items, weight, gift, kind, delivery, paid_local, shipped_at, tags.',
	'a column the table does not have: 42703, with the table''s columns as a hint');
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{"tags": "x"}', points => 1)$$),
	'42804: earning rule N has a condition on column "tags" of table "orders", whose type text[] conditions cannot compare'
	|| ' | A condition names amount, channel, category, store, or a column of every table the rule''s program tracks.'
	|| ' | A condition compares text, varchar, char, an integer, numeric, real, double precision, uuid, boolean, an enum, date, time, timestamp or timestamptz (or a domain over one of them).',
	'a column of a type conditions do not compare: 42804');
SELECT is(pg_temp.rule_err($$CALL pg_temp.rule('r', 'bonus', '{"items": {">": "three"}}', points => 1)$$),
	'LY008: earning rule N compares "items" with "three", which is not a value of type integer'
	|| ' | The condition is read in the type of column "items" of table "orders": invalid input syntax for type integer: "three".'
	|| ' | Write a value of type integer.',
	'a value that is not of the column''s type: LY008');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"amount": {">": "lots"}}', points => 1)$$, 'LY008', NULL,
	'the amount is numeric');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"currency": "SGDX"}', points => 1)$$, 'LY008', NULL,
	'too long for char(3)');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"category": "books"}', points => 1)$$, '42703', NULL,
	'a role the table does not map is a column name: orders has no category column');
CALL pg_temp.rule('inactive, names a missing column', 'bonus', '{"coupon": "X"}', points => 1, active => false);
SELECT pass('an inactive rule may name a column no table has');
SELECT throws_ok($$UPDATE loyalty.earning_rules SET active = true WHERE name = 'inactive, names a missing column'$$,
	'42703', NULL, 'until it is made active');
CALL pg_temp.no_rules();

-- a second table of the program must have the columns the rules name
CALL pg_temp.rule('overseas x2', 'multiplier', '{"currency": {"not": "SGD"}, "amount": {">=": 1}}', multiplier => 2);
CREATE TABLE pos_sales (sale_id int PRIMARY KEY, customer text, amount numeric);
SELECT throws_ok($$SELECT loyalty.track_purchases('pos_sales', 'customer', 'amount')$$, '42703',
	'earning rule ' || (SELECT id FROM loyalty.earning_rules WHERE name = 'overseas x2')
	|| ' has a condition on column "currency", which table "pos_sales" does not have',
	'a table without the column is not tracked for the program');
SELECT is((SELECT count(*) FROM loyalty.tracked_tables WHERE table_name = 'pos_sales'::regclass), 0::bigint,
	'and no row was written for it');
ALTER TABLE pos_sales ADD COLUMN currency text;
SELECT lives_ok($$SELECT loyalty.track_purchases('pos_sales', 'customer', 'amount')$$, 'with a currency column it is');
INSERT INTO pos_sales VALUES (1, 'pos', 10, 'USD'), (2, 'pos', 10, 'SGD');
SELECT is(loyalty.balance('pos'), 30::bigint, 'and the rule reads its text column: 20 + 10');
SELECT throws_ok($$CALL pg_temp.rule('r', 'bonus', '{"items": 1}', points => 1)$$, '42703',
	'earning rule ' || pg_temp.next_rule() || ' has a condition on column "items", which table "pos_sales" does not have',
	'a new rule must fit every table the program tracks');
SELECT ok(loyalty.untrack_purchases('pos_sales'), 'pos_sales is untracked');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- who may name a column: the points tell what it holds
------------------------------------------------------------------------------
CREATE ROLE t_cond_admin IN ROLE loyalty_admin;
ALTER TABLE orders ADD COLUMN margin numeric;
SELECT is(pg_temp.as_role('t_cond_admin', $$CALL pg_temp.rule('high margin +1', 'bonus', '{"margin": {">": 0.5}}', points => 1)$$),
	'42501: permission denied to read column "margin" of table "orders"',
	'loyalty_admin cannot name a column it may not read');
SELECT is(pg_temp.as_role('t_cond_admin', $$CALL pg_temp.rule('big +1', 'bonus', '{"amount": {">": 100}, "channel": "app"}', points => 1)$$),
	'ok', 'the roles tracked (amount, channel) need no grant');
GRANT SELECT (currency) ON orders TO t_cond_admin;
SELECT is(pg_temp.as_role('t_cond_admin', $$CALL pg_temp.rule('overseas +1', 'bonus', '{"currency": {"not": "SGD"}}', points => 1)$$),
	'ok', 'a column it may read, by a column grant');
SELECT is(pg_temp.rule_err($$SET LOCAL ROLE t_cond_admin; CALL pg_temp.rule('m', 'bonus', '{"margin": {">": 0.5}}', points => 1)$$),
	'42501: permission denied to read column "margin" of table "orders" | Earning rule N'
	|| ' has a condition on it: the points a purchase earns would tell what the column holds. | '
	|| 'The table''s owner can run GRANT SELECT (margin) ON orders TO t_cond_admin.',
	'with a hint naming the grant');
RESET ROLE;
CALL pg_temp.no_rules();
-- and tracking a table for a program whose rules name a column: the tracker may read it too
CALL pg_temp.rule('high margin +1', 'bonus', '{"margin": {">": 0.5}}', points => 1);
CREATE TABLE shop_secrets (id int PRIMARY KEY, customer text, total numeric, margin numeric);
GRANT TRIGGER ON shop_secrets TO t_cond_admin;
SELECT is(pg_temp.as_role('t_cond_admin', $$SELECT loyalty.track_purchases('shop_secrets', 'customer', 'total')$$),
	'42501: permission denied to read column "margin" of table "shop_secrets"',
	'a role that may attach triggers but not read a column a rule names cannot track the table');
GRANT SELECT (margin) ON shop_secrets TO t_cond_admin;
SELECT is(pg_temp.as_role('t_cond_admin', $$SELECT loyalty.track_purchases('shop_secrets', 'customer', 'total')$$),
	'ok', 'with SELECT on the column it can');
SELECT ok(loyalty.untrack_purchases('shop_secrets'), 'shop_secrets is untracked');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- the table changes: a renamed column is followed, a dropped one refused
------------------------------------------------------------------------------
CALL pg_temp.rule('overseas x2', 'multiplier', '{"currency": {"not": "SGD"}}', multiplier => 2);
SELECT ok(loyalty.track_purchases('pos_sales', 'customer', 'amount') > 0, 'pos_sales is tracked again');
SELECT throws_ok($$ALTER TABLE orders RENAME COLUMN currency TO currency_code$$, '42703',
	'earning rule ' || (SELECT id FROM loyalty.earning_rules WHERE name = 'overseas x2')
	|| ' has a condition on column "currency_code", which table "pos_sales" does not have',
	'a column renamed in one of the program''s tables but not in the other is refused');
SELECT ok(loyalty.untrack_purchases('pos_sales'), 'pos_sales is untracked again');
ALTER TABLE orders RENAME COLUMN currency TO currency_code;
SELECT is((SELECT conditions FROM loyalty.earning_rules WHERE name = 'overseas x2'),
	'{"currency_code": {"not": "SGD"}}'::jsonb, 'a renamed column is renamed in the conditions that name it');
INSERT INTO orders (order_id, customer, total, currency_code) VALUES (901, 'al', 10, 'USD');
SELECT is(pg_temp.award(901), 20::bigint, 'and the rule still applies');
SELECT throws_ok($$ALTER TABLE orders DROP COLUMN currency_code$$, 'LY020',
	'table public.orders is tracked by loyalty: column "currency_code" of relation "orders" does not exist (earning rule '
	|| (SELECT id FROM loyalty.earning_rules WHERE name = 'overseas x2') || ' has a condition on it: change the rule first)',
	'a column an active rule names cannot be dropped');
SELECT throws_ok($$ALTER TABLE orders ALTER COLUMN currency_code TYPE text[] USING ARRAY[currency_code]$$, 'LY020', NULL,
	'nor given a type conditions do not compare');
UPDATE loyalty.earning_rules SET active = false WHERE name = 'overseas x2';
SELECT lives_ok($$ALTER TABLE orders DROP COLUMN currency_code$$, 'once the rule is inactive it can');
CALL pg_temp.no_rules();
-- a column given another type changes no configuration: the value is read again in the new type
CALL pg_temp.rule('3 items or more +30', 'bonus', '{"items": {">=": 3}}', points => 30);
INSERT INTO orders (order_id, customer, total, items) VALUES (911, 'al', 10, 10);
ALTER TABLE orders ALTER COLUMN items TYPE text USING items::text;
INSERT INTO orders (order_id, customer, total, items) VALUES (912, 'al', 10, '10'), (913, 'al', 10, '4');
SELECT is(pg_temp.awards('{911,912,913}'), '{40,10,40}'::bigint[],
	'items as an integer: 10 >= 3; as text: ''10'' < ''3'' and ''4'' >= ''3''');
CALL pg_temp.no_rules();

------------------------------------------------------------------------------
-- a partitioned table whose partitions number their columns differently
------------------------------------------------------------------------------
SELECT ok(loyalty.untrack_purchases('orders'), 'orders is untracked');
CREATE TABLE sales (id int, customer text, total numeric, sold_on date, region text) PARTITION BY RANGE (sold_on);
CREATE TABLE sales_2025 PARTITION OF sales FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
-- built apart, with a dropped column: region is attribute 6 here, 5 in sales
CREATE TABLE sales_2026 (dropped int, id int, customer text, total numeric, sold_on date, region text);
ALTER TABLE sales_2026 DROP COLUMN dropped;
ALTER TABLE sales ATTACH PARTITION sales_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CALL pg_temp.rule('north x4', 'multiplier', '{"region": "north", "sold_on": {">=": "2025-06-01"}}', multiplier => 4);
SELECT lives_ok($$SELECT loyalty.track_purchases('sales', 'customer', 'total', 'sold_on', reference_columns => '{id}')$$,
	'a partitioned table is tracked');
INSERT INTO sales VALUES (1, 'pa', 10, '2025-07-01', 'north'), (2, 'pa', 10, '2026-07-01', 'north'),
						 (3, 'pa', 10, '2026-07-01', 'south'), (4, 'pa', 10, '2025-01-01', 'north');
INSERT INTO sales_2026 (id, customer, total, sold_on, region) VALUES (5, 'pa', 10, '2026-08-01', 'north');
SELECT is(ARRAY(SELECT points FROM loyalty.ledger WHERE member_key = 'pa' ORDER BY reference),
	'{40,40,10,10,40}'::bigint[], 'each partition''s rows are read by its own column numbers');
UPDATE sales SET region = 'south' WHERE id = 5;
SELECT is((SELECT sum(points) FROM loyalty.ledger WHERE member_key = 'pa' AND reference = '5'), 10::numeric,
	'and corrected by them');
SELECT ok(loyalty.untrack_purchases('sales'), 'sales is untracked');
CALL pg_temp.no_rules();

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong');

SELECT * FROM finish();
ROLLBACK;
