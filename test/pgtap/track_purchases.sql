\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(107);

-- main: UTC, 1 point per unit, floor, never expires, no pending period, no rules
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('main', 'Main', true);
INSERT INTO loyalty.programs (code, name, time_zone) VALUES ('berlin', 'Berlin', 'Europe/Berlin');
INSERT INTO loyalty.programs (code, name, auto_enroll) VALUES ('closed', 'Members only', false);

CREATE TABLE orders (
	order_id	bigint PRIMARY KEY,
	customer_id bigint,
	total		numeric(10,2),
	ordered_at	timestamptz,
	status		text NOT NULL DEFAULT 'paid',
	note		text
);
CREATE TABLE no_pk (order_no text, customer text, amount numeric, at timestamptz);
CREATE TABLE bad_types (id int PRIMARY KEY, customer text, amount text, at text, good_amount numeric);
CREATE VIEW orders_view AS SELECT * FROM orders;

-- ledger rows of one tracked table, oldest first
CREATE FUNCTION pg_temp.awards(tbl regclass)
	RETURNS TABLE (reference text, kind text, points bigint, effective_at timestamptz)
	LANGUAGE sql AS $$
	SELECT l.reference::text, l.kind::text, l.points, l.effective_at
	  FROM loyalty.ledger l JOIN loyalty.tracked_tables t ON t.id = l.track_id
	 WHERE t.table_name = tbl -- the ledger orders entries per member (seq); across members, the
	 -- heap order of this append-only table is the order they were written
	 ORDER BY l.ctid
$$;

------------------------------------------------------------------------------
-- argument checks
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'nope', 'total')$$,
	'42703', NULL, 'a member column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'nope')$$,
	'42703', NULL, 'an amount column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'total', 'nope')$$,
	'42703', NULL, 'a time column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'total', status_column => 'nope')$$,
	'42703', NULL, 'a status column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'total', channel_column => 'nope')$$,
	'42703', NULL, 'a channel column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'total', reference_columns => '{order_id,nope}')$$,
	'42703', NULL, 'a reference column that does not exist: 42703');
SELECT throws_ok($$SELECT loyalty.track_purchases('bad_types', 'customer', 'amount')$$,
	'42804', 'amount column "amount" has type text', 'an amount column of type text: 42804');
SELECT throws_ok($$SELECT loyalty.track_purchases('bad_types', 'customer', 'good_amount', 'at')$$,
	'42804', 'purchase time column "at" has type text', 'a time column of type text: 42804');
SELECT throws_ok($$SELECT loyalty.track_purchases('no_pk', 'customer', 'amount', 'at')$$,
	'42P10', NULL, 'a table without primary key and without reference_columns: 42P10');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', 'customer_id', 'total', program => 'nope')$$,
	'LY003', NULL, 'an unknown program: LY003');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders', NULL, 'total')$$,
	'22004', NULL, 'a NULL member column: 22004');
SELECT throws_ok($$SELECT loyalty.track_purchases('orders_view', 'customer_id', 'total')$$,
	'42809', NULL, 'a view cannot be tracked: 42809');
SELECT throws_ok($$SELECT loyalty.track_purchases('loyalty.ledger', 'member_id', 'points')$$,
	'42809', NULL, 'loyalty''s own ledger cannot be tracked: 42809');
SELECT is((SELECT count(*) FROM loyalty.tracked_tables), 0::bigint, 'refused calls recorded no tracked table');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('orders'::regclass, 'bad_types'::regclass, 'no_pk'::regclass)),
		  0::bigint, 'and attached no trigger');

------------------------------------------------------------------------------
-- tracking: an id, a configuration row, two triggers
------------------------------------------------------------------------------
-- a row that exists before tracking is never awarded
INSERT INTO orders VALUES (100, 7, 500.00, '2025-03-01 10:00+00');

CREATE TEMP TABLE track_ids AS
	SELECT 'orders'::text AS tbl,
		   loyalty.track_purchases('orders', member_column => 'customer_id', amount_column => 'total',
								   time_column => 'ordered_at', status_column => 'status') AS id;
SELECT is((SELECT id FROM track_ids WHERE tbl = 'orders'),
		  (SELECT id FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass),
		  'track_purchases returns the id of the tracked_tables row');
SELECT results_eq($$SELECT program_id, member_column::text COLLATE "default", amount_column::text COLLATE "default",
						   time_column::text COLLATE "default", reference_columns::text[] COLLATE "default",
						   status_column::text COLLATE "default", reversed_statuses, active
					  FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass$$,
	$$SELECT id, 'customer_id'::text, 'total'::text, 'ordered_at'::text, '{order_id}'::text[], 'status'::text,
			 '{refunded,cancelled}'::text[], true
		FROM loyalty.programs WHERE code = 'main'$$,
	'the configuration: default program, the primary key as reference, the default reversed statuses');
SELECT bag_eq($$SELECT tgname::text COLLATE "default" FROM pg_trigger WHERE tgrelid = 'orders'::regclass$$,
	$$SELECT 'loyalty_purchase_' || t || '_' || id FROM loyalty.tracked_tables, unnest('{insert,change}'::text[]) t
		WHERE table_name = 'orders'::regclass$$,
	'two triggers are attached, named with the tracking id');
SELECT is((SELECT count(*) FROM loyalty.ledger), 0::bigint, 'the row already in the table was not awarded');

------------------------------------------------------------------------------
-- inserts earn in the same transaction; bigint member keys
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES
	(1, 7, 42.90, '2025-03-10 10:00+00'),
	(2, 8, 10.00, '2025-03-10 11:00+00');
SELECT results_eq($$SELECT * FROM pg_temp.awards('orders') ORDER BY reference$$,
	$$VALUES ('1'::text, 'earn'::text, 42::bigint, '2025-03-10 10:00+00'::timestamptz),
			 ('2', 'earn', 10, '2025-03-10 11:00+00')$$,
	'one earn entry per purchase: reference = primary key, floor(amount) points, effective at the purchase time');
SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN track_ids t ON t.id = l.track_id), 2::bigint,
		  'the entries carry the track id');
SELECT is(loyalty.balance(7::bigint), 42::bigint, 'customer 7 (a bigint key) has 42 points');
SELECT is(loyalty.balance('8'), 10::bigint, 'customer 8 has 10 points, found by the text of the key');
SELECT results_eq($$SELECT member_key COLLATE "default", first_purchase_at, last_activity_at FROM loyalty.members ORDER BY member_key$$,
	$$VALUES ('7'::text, '2025-03-10 10:00+00'::timestamptz, '2025-03-10 10:00+00'::timestamptz),
			 ('8', '2025-03-10 11:00+00', '2025-03-10 11:00+00')$$,
	'unknown customers were enrolled, with first purchase and last activity set');

-- a NULL member, a NULL amount, a NULL time
INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES
	(3, NULL, 50.00, '2025-03-10 12:00+00'),
	(4, 9, NULL, '2025-03-10 12:00+00'),
	(5, 8, 5.00, NULL);
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference IN ('3', '4')), 0::bigint,
		  'a purchase with a NULL member or a NULL amount earns nothing');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = '9'), 0::bigint,
		  'a purchase with a NULL amount enrolls nobody');
SELECT results_eq($$SELECT kind::text, points, effective_at FROM loyalty.ledger WHERE reference = '5'$$,
	$$VALUES ('earn'::text, 5::bigint, now())$$,
	'a NULL purchase time means the start of the transaction');
SELECT is(loyalty.balance(8), 15::bigint, 'customer 8: 10 + 5');

------------------------------------------------------------------------------
-- untrack and track again
------------------------------------------------------------------------------
SELECT is(loyalty.untrack_purchases('orders'), true, 'untrack_purchases returns true for a tracked table');
SELECT is(loyalty.untrack_purchases('orders'), false, 'and false the second time');
SELECT is((SELECT active FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass), false,
		  'the row stays, inactive');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass), 0::bigint, 'the triggers are gone');

INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES (6, 7, 100.00, '2025-03-11 10:00+00');
UPDATE orders SET total = 1.00 WHERE order_id = 1;
DELETE FROM orders WHERE order_id = 2;
SELECT is((SELECT count(*) FROM loyalty.ledger), 3::bigint, 'inserts, updates and deletes while untracked write nothing');
SELECT is(loyalty.balance(7), 42::bigint, 'customer 7 still has 42');
SELECT is(loyalty.balance(8), 15::bigint, 'customer 8 still has 15');

SELECT is(loyalty.track_purchases('orders', member_column => 'customer_id', amount_column => 'total',
								  time_column => 'ordered_at', status_column => 'status'),
		  (SELECT id FROM track_ids WHERE tbl = 'orders'), 'tracking again returns the same id');
SELECT results_eq($$SELECT count(*), bool_and(active) FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass$$,
	$$VALUES (1::bigint, true)$$, 'one row, active again');
SELECT is((SELECT count(*) FROM loyalty.ledger), 3::bigint, 'rows inserted while untracked are not awarded later');

-- order 2 was deleted while untracked (no reversal); inserting it again must not award it twice
INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES (2, 8, 10.00, '2025-03-10 11:00+00');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference = '2'), 1::bigint,
		  'a purchase awarded before untracking is not awarded again after tracking again');
SELECT is(loyalty.balance(8), 15::bigint, 'customer 8 still has 15');
INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES (7, 7, 20.00, '2025-03-12 10:00+00');
SELECT is(loyalty.balance(7), 62::bigint, 'a new purchase after tracking again earns: 42 + 20');

-- TRUNCATE reverses nothing, and restoring the rows awards nothing
TRUNCATE orders;
SELECT is(loyalty.balance(7), 62::bigint, 'TRUNCATE of a tracked table reverses nothing');
INSERT INTO orders (order_id, customer_id, total, ordered_at) VALUES
	(1, 7, 42.90, '2025-03-10 10:00+00'), (7, 7, 20.00, '2025-03-12 10:00+00');
SELECT is(loyalty.balance(7), 62::bigint, 'inserting the truncated rows again awards nothing');
SELECT is((SELECT count(*) FROM loyalty.ledger), 4::bigint, 'and writes no entry');

------------------------------------------------------------------------------
-- uuid member keys, integer amounts
------------------------------------------------------------------------------
CREATE TABLE uorders (id serial PRIMARY KEY, customer uuid, amount integer, at timestamptz);
SELECT isnt(loyalty.track_purchases('uorders', 'customer', 'amount', 'at'), (SELECT id FROM track_ids WHERE tbl = 'orders'),
			'another table gets another id');
INSERT INTO uorders (customer, amount, at) VALUES
	('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 25, '2025-03-10 10:00+00'),
	('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 4, '2025-03-10 11:00+00');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 1::bigint,
		  'a uuid key is the uuid''s text (lower case): one member for both spellings');
SELECT is(loyalty.balance('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid), 29::bigint,
		  'integer amounts earn their value: 25 + 4');
SELECT results_eq($$SELECT reference, kind, points FROM pg_temp.awards('uorders')$$,
	$$VALUES ('1'::text, 'earn'::text, 25::bigint), ('2', 'earn', 4)$$,
	'a serial primary key is the reference');

------------------------------------------------------------------------------
-- text member keys, timestamp without time zone read in the program's zone
------------------------------------------------------------------------------
CREATE TABLE torders (id text PRIMARY KEY, customer text, amount numeric, at timestamp);
SELECT lives_ok($$SELECT loyalty.track_purchases('torders', 'customer', 'amount', 'at', program => 'berlin')$$,
	'a table can be tracked for a program other than the default');
INSERT INTO torders VALUES
	('T-1', 'alice', 12.345, '2025-01-15 10:00'),	-- CET, UTC+1
	('T-2', 'alice', 7.999, '2025-07-15 10:00'),	-- CEST, UTC+2
	('T-3', 'Alice', 3, '2025-07-15 10:00');
SELECT results_eq($$SELECT reference, kind, points, effective_at FROM pg_temp.awards('torders') ORDER BY reference$$,
	$$VALUES ('T-1'::text, 'earn'::text, 12::bigint, '2025-01-15 09:00+00'::timestamptz),
			 ('T-2', 'earn', 7, '2025-07-15 08:00+00'),
			 ('T-3', 'earn', 3, '2025-07-15 08:00+00')$$,
	'timestamp without time zone is Berlin wall-clock time (winter and summer); numeric amounts are floored');
SELECT is(loyalty.balance('alice', program => 'berlin'), 19::bigint, 'alice: 12 + 7 in program berlin');
SELECT is(loyalty.balance('Alice', program => 'berlin'), 3::bigint, 'text keys are case sensitive: Alice is another member');
SELECT is((SELECT count(*) FROM loyalty.members m JOIN loyalty.programs p ON p.id = m.program_id
			WHERE p.code = 'main' AND m.member_key IN ('alice', 'Alice')), 0::bigint,
		  'nobody was enrolled in the default program');

-- date and double precision
CREATE TABLE dorders (id int PRIMARY KEY, customer int, amount double precision, day date);
SELECT lives_ok($$SELECT loyalty.track_purchases('dorders', 'customer', 'amount', 'day', program => 'berlin')$$,
	'a date column and a double precision amount are accepted');
INSERT INTO dorders VALUES (1, 42, 19.99, '2025-07-15');
SELECT results_eq($$SELECT reference, points, effective_at FROM pg_temp.awards('dorders')$$,
	$$VALUES ('1'::text, 19::bigint, '2025-07-14 22:00+00'::timestamptz)$$,
	'a date is midnight in the program''s zone; a float amount is floored');

-- no time column at all
CREATE TABLE ntorders (id int PRIMARY KEY, customer int, amount numeric);
SELECT lives_ok($$SELECT loyalty.track_purchases('ntorders', 'customer', 'amount')$$, 'the time column is optional');
INSERT INTO ntorders VALUES (1, 42, 8.5);
SELECT results_eq($$SELECT reference, kind, points, effective_at FROM pg_temp.awards('ntorders')$$,
	$$VALUES ('1'::text, 'earn'::text, 8::bigint, now())$$,
	'without a time column the purchase time is the start of the transaction');
SELECT is(loyalty.balance(42), 8::bigint, 'customer 42 in main: 8 (42 in berlin is another member)');

------------------------------------------------------------------------------
-- composite primary keys
------------------------------------------------------------------------------
CREATE TABLE lines (order_no text, line_no int, customer text, amount numeric, at timestamptz,
					PRIMARY KEY (order_no, line_no));
SELECT lives_ok($$SELECT loyalty.track_purchases('lines', 'customer', 'amount', 'at')$$, 'a composite primary key');
SELECT is((SELECT reference_columns::text[] FROM loyalty.tracked_tables WHERE table_name = 'lines'::regclass),
		  '{order_no,line_no}'::text[], 'both key columns, in key order, are the reference');
INSERT INTO lines VALUES
	('A-1', 1, 'carl', 10, '2025-03-10 10:00+00'),
	('A-1', 2, 'carl', 5, '2025-03-10 10:00+00'),
	('B 2', 1, 'carl', 3, '2025-03-10 10:00+00'),
	('', 1, 'carl', 4, '2025-03-10 10:00+00'),
	('q"\', 1, 'carl', 2, '2025-03-10 10:00+00');
SELECT results_eq($$SELECT reference, points FROM pg_temp.awards('lines') ORDER BY points DESC$$,
	$$VALUES ('(A-1,1)'::text, 10::bigint), ('(A-1,2)', 5), ('("",1)', 4), ('("B 2",1)', 3), ('("q""\\",1)', 2)$$,
	'composite references are written "(a,b)", quoted as in record syntax');
SELECT is((SELECT count(*) FROM lines l JOIN loyalty.ledger g ON g.reference = ROW(l.order_no, l.line_no)::text), 5::bigint,
		  'each reference equals ROW(order_no, line_no)::text');
SELECT is(loyalty.balance('carl'), 24::bigint, 'carl: 10 + 5 + 3 + 4 + 2');
INSERT INTO lines VALUES (E'tab\there', 1, 'carl', 1, '2025-03-10 10:00+00');
SELECT is((SELECT reference FROM pg_temp.awards('lines') WHERE points = 1),
		  ROW(E'tab\there', 1)::text, 'a key value with a tab is quoted as in record syntax too');

------------------------------------------------------------------------------
-- explicit reference columns on a table without primary key
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT loyalty.track_purchases('no_pk', 'customer', 'amount', 'at', reference_columns => '{order_no}')$$,
	'a table without primary key is tracked with reference_columns');
INSERT INTO no_pk VALUES ('N-1', 'dora', 11, '2025-03-10 10:00+00');
SELECT results_eq($$SELECT reference, points FROM pg_temp.awards('no_pk')$$, $$VALUES ('N-1'::text, 11::bigint)$$,
	'the reference is the given column');
SELECT throws_ok($$INSERT INTO no_pk VALUES (NULL, 'dora', 11, '2025-03-10 10:00+00')$$,
	'23502', NULL, 'a NULL reference makes the insert fail: 23502');
SELECT is(loyalty.balance('dora'), 11::bigint, 'and earned nothing');

------------------------------------------------------------------------------
-- auto_enroll = false: only members earn
------------------------------------------------------------------------------
CREATE TABLE corders (id int PRIMARY KEY, customer text, amount numeric, at timestamptz);
SELECT lives_ok($$SELECT loyalty.track_purchases('corders', 'customer', 'amount', 'at', program => 'closed')$$,
	'tracking for a program without auto_enroll');
SELECT lives_ok($$SELECT loyalty.enroll('known', 'closed')$$, 'one customer enrolls');
INSERT INTO corders VALUES (1, 'known', 30, '2025-03-10 10:00+00'), (2, 'stranger', 40, '2025-03-10 10:00+00');
SELECT is(loyalty.balance('known', program => 'closed'), 30::bigint, 'the member earns');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 'stranger'), 0::bigint,
		  'the non-member is not enrolled');
SELECT is((SELECT count(*) FROM pg_temp.awards('corders')), 1::bigint, 'and earns nothing');

------------------------------------------------------------------------------
-- moved to another program (untracked, then tracked for it): a purchase
-- awarded before is corrected
-- in the program that awarded it, never paid in both
------------------------------------------------------------------------------
CREATE TABLE rorders (id int PRIMARY KEY, customer text, amount numeric, at timestamptz, status text);
CREATE FUNCTION pg_temp.points_in(program text, customer text) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(l.points), 0)::bigint FROM loyalty.ledger l
	  JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key JOIN loyalty.programs p ON p.id = m.program_id
	 WHERE p.code = $1 AND m.member_key = $2
$$;
SELECT loyalty.track_purchases('rorders', 'customer', 'amount', 'at', status_column => 'status') \g /dev/null
INSERT INTO rorders VALUES (1, 'q', 10, '2025-03-10 10:00+00', 'paid');
INSERT INTO rorders SELECT i, 'q', 10, '2025-03-10 10:00+00', 'paid' FROM generate_series(2, 3) i;
-- moved: untracked, then tracked for berlin, which takes over the tracking
SELECT loyalty.untrack_purchases('rorders') \g /dev/null
SELECT loyalty.track_purchases('rorders', 'customer', 'amount', 'at', status_column => 'status',
							   program => 'berlin') \g /dev/null
UPDATE rorders SET status = 'refunded' WHERE id = 1;
UPDATE rorders SET customer = 'q2' WHERE id = 2;
DELETE FROM rorders WHERE id = 3;
SELECT is(ARRAY[pg_temp.points_in('main', 'q'), pg_temp.points_in('main', 'q2')], ARRAY[0, 10]::bigint[],
		  'after tracking for berlin: a refund, a move and a delete are settled in main, which awarded them');
SELECT is(pg_temp.points_in('berlin', 'q') + pg_temp.points_in('berlin', 'q2'), 0::bigint,
		  'and berlin pays nothing for them');
INSERT INTO rorders VALUES (4, 'q', 5, '2025-03-11 10:00+00', 'paid');
UPDATE rorders SET amount = 8 WHERE id = 4;
SELECT is(pg_temp.points_in('berlin', 'q'), 8::bigint, 'a purchase inserted after is awarded and corrected in berlin');
UPDATE rorders SET status = 'paid', amount = 12 WHERE id = 1;
SELECT is(ARRAY[pg_temp.points_in('main', 'q'), pg_temp.points_in('berlin', 'q')], ARRAY[12, 8]::bigint[],
		  'a refunded purchase of main made valid again earns in main');
DELETE FROM rorders WHERE id = 1;
INSERT INTO rorders VALUES (1, 'q', 10, '2025-03-10 10:00+00', 'paid');
SELECT is(ARRAY[pg_temp.points_in('main', 'q'), pg_temp.points_in('berlin', 'q')], ARRAY[0, 8]::bigint[],
		  'a purchase of main deleted and inserted again is awarded in neither');
SELECT is_empty($$SELECT * FROM loyalty.verify() WHERE member_key IN ('q', 'q2')$$, 'verify() is clean');

------------------------------------------------------------------------------
-- a renamed column is followed (event trigger loyalty_alter_guard); without
-- the event trigger, the application's statement fails instead
------------------------------------------------------------------------------
ALTER TABLE corders RENAME COLUMN amount TO amount_eur;
SELECT is((SELECT amount_column::text FROM loyalty.tracked_tables WHERE table_name = 'corders'::regclass),
	'amount_eur', 'a renamed amount column is followed in tracked_tables');
INSERT INTO corders VALUES (3, 'known', 30, '2025-03-10 10:00+00');
SELECT is(loyalty.balance('known', program => 'closed'), 60::bigint, 'and the next insert earns');
ALTER EVENT TRIGGER loyalty_alter_guard DISABLE;
ALTER TABLE corders RENAME COLUMN amount_eur TO amount;
SELECT throws_ok($$INSERT INTO corders VALUES (4, 'known', 30, '2025-03-10 10:00+00')$$,
	'42703', NULL, 'with the event trigger disabled, an insert after the rename fails with 42703');
SELECT is(loyalty.balance('known', program => 'closed'), 60::bigint, 'and earned nothing');
ALTER EVENT TRIGGER loyalty_alter_guard ENABLE;

------------------------------------------------------------------------------
-- the inserting role needs no privileges on loyalty
------------------------------------------------------------------------------
CREATE TABLE shop_orders (id serial PRIMARY KEY, customer text, total numeric(10,2), ordered_at timestamptz,
						  status text NOT NULL DEFAULT 'paid');
SELECT lives_ok($$SELECT loyalty.track_purchases('shop_orders', 'customer', 'total', 'ordered_at', status_column => 'status')$$,
	'shop_orders is tracked');
CREATE ROLE app_writer;
GRANT INSERT, UPDATE, DELETE, SELECT ON shop_orders TO app_writer;
GRANT USAGE ON SEQUENCE shop_orders_id_seq TO app_writer;
SELECT ok(NOT has_schema_privilege('app_writer', 'loyalty', 'USAGE')
		  AND NOT has_table_privilege('app_writer', 'loyalty.ledger', 'INSERT')
		  AND NOT has_table_privilege('app_writer', 'loyalty.members', 'UPDATE'),
		  'app_writer has no privileges on loyalty''s schema or tables');

SET LOCAL ROLE app_writer;
CREATE TEMP TABLE writer_result (step text, sqlstate text);
DO $$
BEGIN
	INSERT INTO shop_orders (customer, total, ordered_at) VALUES
		('wendy', 40.00, '2025-03-10 10:00+00'), ('walt', 25.00, '2025-03-10 10:00+00');
	INSERT INTO shop_orders (customer, total, ordered_at) VALUES ('wendy', 12.00, '2025-03-10 11:00+00');
	UPDATE shop_orders SET total = 50.00 WHERE customer = 'wendy' AND total = 40.00;
	UPDATE shop_orders SET status = 'refunded' WHERE customer = 'wendy' AND total = 12.00;
	DELETE FROM shop_orders WHERE customer = 'walt';
	INSERT INTO writer_result VALUES ('dml', 'ok');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO writer_result VALUES ('dml', SQLSTATE || ': ' || SQLERRM);
END $$;
RESET ROLE;
SELECT is((SELECT sqlstate FROM writer_result WHERE step = 'dml'), 'ok',
		  'app_writer can insert, update and delete tracked purchases');
SELECT bag_eq($$SELECT reference, kind, points FROM pg_temp.awards('shop_orders')$$,
	$$VALUES ('1'::text, 'earn'::text, 40::bigint), ('2', 'earn', 25), ('3', 'earn', 12),
			 ('1', 'adjust', 10), ('3', 'reverse', -12), ('2', 'reverse', -25)$$,
	'the triggers wrote the awards, the increase and both reversals');
SELECT is(loyalty.balance('wendy'), 50::bigint, 'wendy has 50 points');
SELECT is(loyalty.balance('walt'), 0::bigint, 'walt has 0 points');

------------------------------------------------------------------------------
-- nobody can borrow another table's tracking
------------------------------------------------------------------------------
SELECT id AS orders_track FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass \gset
CREATE ROLE mallory;
GRANT USAGE ON SCHEMA loyalty TO mallory;
CREATE TABLE evil (order_id bigint PRIMARY KEY, customer_id bigint, total numeric(10,2), ordered_at timestamptz,
				   status text NOT NULL DEFAULT 'paid', note text);
ALTER TABLE evil OWNER TO mallory;
INSERT INTO evil VALUES (1, 7, 1.00, '2025-03-10 10:00+00');
-- PUBLIC may not execute them (loyalty_admin may): grant them, so that the
-- check in C is what stops mallory
GRANT EXECUTE ON FUNCTION loyalty.purchase_insert(), loyalty.purchase_change() TO mallory;
SELECT ok(has_function_privilege('mallory', 'loyalty.purchase_insert()', 'EXECUTE'),
		  'mallory may execute the trigger functions');

SET LOCAL ROLE mallory;
CREATE TRIGGER steal_insert AFTER INSERT ON evil REFERENCING NEW TABLE AS loyalty_new_purchases
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(:'orders_track');
CREATE TRIGGER steal_change AFTER UPDATE OR DELETE ON evil
	FOR EACH ROW EXECUTE FUNCTION loyalty.purchase_change(:'orders_track');
CREATE TEMP TABLE mallory_result (step text, sqlstate text);
DO $$
BEGIN
	INSERT INTO evil VALUES (2, 7, 1000000.00, '2025-03-10 10:00+00');
	INSERT INTO mallory_result VALUES ('insert', 'ok');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO mallory_result VALUES ('insert', SQLSTATE);
END $$;
DO $$
BEGIN
	UPDATE evil SET total = 1000000.00 WHERE order_id = 1;
	INSERT INTO mallory_result VALUES ('update', 'ok');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO mallory_result VALUES ('update', SQLSTATE);
END $$;
DO $$
BEGIN
	-- the order of the real orders table with reference 1 earned 42 points for customer 7
	DELETE FROM evil WHERE order_id = 1;
	INSERT INTO mallory_result VALUES ('delete', 'ok');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO mallory_result VALUES ('delete', SQLSTATE);
END $$;
RESET ROLE;
SELECT is((SELECT sqlstate FROM mallory_result WHERE step = 'insert'), '55000',
		  'purchase_insert(<orders'' id>) on another table raises 55000');
SELECT is((SELECT sqlstate FROM mallory_result WHERE step = 'update'), '55000',
		  'purchase_change(<orders'' id>) on another table raises 55000 for an UPDATE');
SELECT is((SELECT sqlstate FROM mallory_result WHERE step = 'delete'), '55000',
		  'and for a DELETE');
SELECT is(loyalty.balance(7), 62::bigint, 'customer 7 gained and lost nothing');
SELECT throws_ok($$INSERT INTO evil VALUES (3, 7, 5.00, '2025-03-10 10:00+00')$$, '55000',
	'table "evil" has a loyalty trigger but is not tracked', 'a superuser''s INSERT into that table is refused the same way');

-- the id of an untracked table is refused too
SELECT is(loyalty.untrack_purchases('ntorders'), true, 'ntorders is untracked');
SELECT id AS ntorders_track FROM loyalty.tracked_tables WHERE table_name = 'ntorders'::regclass \gset
CREATE TABLE ntorders_copy (id int PRIMARY KEY, customer int, amount numeric);
CREATE TRIGGER t AFTER INSERT ON ntorders_copy REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(:'ntorders_track');
CREATE TRIGGER t AFTER INSERT ON ntorders REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(:'ntorders_track');
SELECT throws_ok($$INSERT INTO ntorders_copy VALUES (2, 42, 100)$$, '55000', NULL,
	'the id of an untracked table is refused on another table');
SELECT throws_ok($$INSERT INTO ntorders VALUES (2, 42, 100)$$, '55000', NULL,
	'and on its own table (a leftover trigger after untrack)');
SELECT is(loyalty.balance(42), 8::bigint, 'customer 42 still has 8');

------------------------------------------------------------------------------
-- a customer enrolled by a purchase is enrolled at its first purchase (a
-- backfill of last year's orders enrolls last year), never later than now
------------------------------------------------------------------------------
CREATE TABLE backfill (id int PRIMARY KEY, customer text, amount numeric, at timestamptz,
					   status text NOT NULL DEFAULT 'paid');
SELECT loyalty.track_purchases('backfill', 'customer', 'amount', 'at', status_column => 'status');
INSERT INTO backfill (id, customer, amount, at) VALUES
	(1, 'old', 10, '2024-02-01 10:00+00'), (2, 'old', 10, '2023-11-05 10:00+00'),
	(3, 'soon', 10, now() + interval '1 day'), (4, 'now', 10, NULL);
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'old'),
		  '2023-11-05 10:00+00'::timestamptz,
		  'a customer enrolled by a backfill: enrolled at the first of its purchases, not at the load');
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'soon'), now(),
		  'a purchase dated in the future enrolls now');
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'now'), now(),
		  'a purchase without a time enrolls now');
SELECT is((loyalty.enroll('kept', at => '2025-01-01 00:00+00')).enrolled_at,
		  '2025-01-01 00:00+00'::timestamptz, 'kept enrolled by hand on 1 January 2025');
INSERT INTO backfill (id, customer, amount, at) VALUES (5, 'kept', 10, '2024-01-01 10:00+00');
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'kept'),
		  '2025-01-01 00:00+00'::timestamptz, 'an earlier purchase leaves a member''s enrolled_at alone');
INSERT INTO backfill VALUES (6, 'late', 10, '2024-05-01 10:00+00', 'refunded');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 'late'), 0::bigint,
		  'a refunded purchase enrolls nobody');
UPDATE backfill SET status = 'paid' WHERE id = 6;
SELECT is((SELECT enrolled_at FROM loyalty.members WHERE member_key = 'late'),
		  '2024-05-01 10:00+00'::timestamptz, 'paid after all: enrolled at its purchase time');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong');

SELECT * FROM finish();
ROLLBACK;
