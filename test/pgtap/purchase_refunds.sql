\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(86);

-- main: UTC, 1 point per unit, floor, never expires, no pending period
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('main', 'Main', true);
-- exp: points expire a year after they are earned, so that lots can be told apart
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval) VALUES ('exp', 'Expiring', 'after', '1 year');
-- pend: points are pending for 14 days
INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('pend', 'Pending', '14 days');

CREATE TABLE orders (order_id int PRIMARY KEY, customer text, total numeric(10,2), ordered_at timestamptz,
					 status text NOT NULL DEFAULT 'paid', note text);
CREATE TABLE eorders (LIKE orders INCLUDING ALL);
CREATE TABLE porders (LIKE orders INCLUDING ALL);
SELECT lives_ok($$SELECT loyalty.track_purchases('orders', 'customer', 'total', 'ordered_at', status_column => 'status')$$,
	'orders are tracked in main');
SELECT lives_ok($$SELECT loyalty.track_purchases('eorders', 'customer', 'total', 'ordered_at', status_column => 'status',
												program => 'exp')$$, 'eorders are tracked in exp');
SELECT lives_ok($$SELECT loyalty.track_purchases('porders', 'customer', 'total', 'ordered_at', status_column => 'status',
												program => 'pend')$$, 'porders are tracked in pend');

-- the ledger entries of one purchase of one table, oldest first
CREATE FUNCTION pg_temp.entries(tbl regclass, ref text)
	RETURNS TABLE (kind text, points bigint, reason text, effective_at timestamptz)
	LANGUAGE sql AS $$
	SELECT l.kind::text, l.points, l.reason, l.effective_at
	  FROM loyalty.ledger l JOIN loyalty.tracked_tables t ON t.id = l.track_id
	 WHERE t.table_name = tbl AND l.reference = ref -- the ledger orders entries per member (seq); across members, the
	 -- heap order of this append-only table is the order they were written
	 ORDER BY l.ctid
$$;
CREATE FUNCTION pg_temp.net(tbl regclass, ref text) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(points), 0)::bigint FROM pg_temp.entries(tbl, ref)
$$;
CREATE FUNCTION pg_temp.last_lots(tbl regclass, ref text) RETURNS text LANGUAGE sql AS $$
	SELECT l.lots::text FROM loyalty.ledger l JOIN loyalty.tracked_tables t ON t.id = l.track_id
	 WHERE t.table_name = tbl AND l.reference = ref ORDER BY l.ctid DESC LIMIT 1
$$;

------------------------------------------------------------------------------
-- a rolled-back INSERT earns nothing
------------------------------------------------------------------------------
SAVEPOINT before_insert;
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (1, 'rita', 50, '2025-04-01 10:00+00');
SELECT loyalty.balance('rita') AS rita_in_savepoint \gset
ROLLBACK TO SAVEPOINT before_insert;
SELECT is(:rita_in_savepoint::bigint, 50::bigint, 'inside the savepoint the purchase had earned 50');
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '1')), 0::bigint, 'after the rollback no entry is left');
SELECT is((SELECT count(*) FROM loyalty.members WHERE member_key = 'rita'), 0::bigint, 'nor the enrollment');
SELECT throws_ok($$INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(2, 'rita', 10, '2025-04-01 10:00+00'), (2, 'rita', 20, '2025-04-01 10:00+00')$$,
	'23505', NULL, 'an INSERT that fails');
SELECT is((SELECT count(*) FROM loyalty.ledger), 0::bigint, 'earns nothing');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (1, 'rita', 50, '2025-04-01 10:00+00');
SELECT is(loyalty.balance('rita'), 50::bigint, 'the purchase inserted again for real earns 50');

------------------------------------------------------------------------------
-- UPDATE of the amount
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (10, 'ann', 40.00, '2025-04-02 10:00+00');
UPDATE orders SET total = 55.50 WHERE order_id = 10;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '10')$$,
	$$VALUES ('earn'::text, 40::bigint, NULL::text, '2025-04-02 10:00+00'::timestamptz),
			 ('adjust', 15, 'purchase amount changed', '2025-04-02 10:00+00')$$,
	'raising the amount adds an adjust entry for the difference, effective at the purchase time');
SELECT is(loyalty.balance('ann'), 55::bigint, 'ann: 55');
UPDATE orders SET total = 30.00 WHERE order_id = 10;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '10') OFFSET 2$$,
	$$VALUES ('reverse'::text, -25::bigint, 'purchase amount changed'::text, now())$$,
	'lowering the amount reverses the difference, effective now');
SELECT is(loyalty.balance('ann'), 30::bigint, 'ann: 30');
UPDATE orders SET note = 'gift wrap' WHERE order_id = 10;
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '10')), 3::bigint, 'an UPDATE of another column writes nothing');

------------------------------------------------------------------------------
-- status changes
------------------------------------------------------------------------------
UPDATE orders SET status = 'refunded' WHERE order_id = 10;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '10') OFFSET 3$$,
	$$VALUES ('reverse'::text, -30::bigint, 'purchase refunded'::text, now())$$,
	'status refunded reverses what is left of the award');
SELECT is(loyalty.balance('ann'), 0::bigint, 'ann: 0');
UPDATE orders SET status = 'cancelled' WHERE order_id = 10;
DELETE FROM orders WHERE order_id = 10;
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '10')), 4::bigint,
		  'refunded -> cancelled, then DELETE: nothing is reversed twice');
SELECT is(loyalty.balance('ann'), 0::bigint, 'ann: still 0');

INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (11, 'ann', 20, '2025-04-03 10:00+00');
UPDATE orders SET status = 'refunded' WHERE order_id = 11;
UPDATE orders SET status = 'paid' WHERE order_id = 11;
SELECT is(pg_temp.net('orders', '11'), 20::bigint, 'refunded and back to paid: the award is back');
SELECT is((SELECT kind FROM pg_temp.entries('orders', '11') OFFSET 2), 'adjust', 'as an adjust entry');

INSERT INTO orders (order_id, customer, total, ordered_at, status) VALUES (12, 'ann', 99, '2025-04-03 11:00+00', 'cancelled');
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '12')), 0::bigint, 'a purchase inserted as cancelled earns nothing');
UPDATE orders SET status = 'paid' WHERE order_id = 12;
SELECT results_eq($$SELECT kind, points, effective_at FROM pg_temp.entries('orders', '12')$$,
	$$VALUES ('earn'::text, 99::bigint, '2025-04-03 11:00+00'::timestamptz)$$,
	'when it becomes paid it gets its first award');
SELECT is(loyalty.balance('ann'), 119::bigint, 'ann: 20 + 99');

------------------------------------------------------------------------------
-- DELETE
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (20, 'bob', 70, '2025-04-04 10:00+00');
DELETE FROM orders WHERE order_id = 20;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '20')$$,
	$$VALUES ('earn'::text, 70::bigint, NULL::text, '2025-04-04 10:00+00'::timestamptz),
			 ('reverse', -70, 'purchase deleted', now())$$,
	'DELETE reverses the award');
SELECT is(loyalty.balance('bob'), 0::bigint, 'bob: 0');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (20, 'bob', 70, '2025-04-04 10:00+00');
SELECT is(pg_temp.net('orders', '20'), 70::bigint, 'a deleted purchase inserted again is live again: awarded again');

------------------------------------------------------------------------------
-- the first-purchase bonus goes with the purchase
------------------------------------------------------------------------------
INSERT INTO loyalty.earning_rules (program_id, name, kind, points)
SELECT id, 'welcome', 'first_purchase', 100 FROM loyalty.programs WHERE code = 'main';
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (30, 'bea', 20, '2025-04-05 10:00+00');
DELETE FROM loyalty.earning_rules;
SELECT is(loyalty.balance('bea'), 120::bigint, 'bea: 20 + 100 welcome bonus');
UPDATE orders SET status = 'refunded' WHERE order_id = 30;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '30#first-purchase-bonus')$$,
	$$VALUES ('earn'::text, 100::bigint, 'first-purchase bonus'::text, '2025-04-05 10:00+00'::timestamptz),
			 ('reverse', -100, 'purchase refunded', now())$$,
	'refunding the first purchase reverses its bonus too');
SELECT is(loyalty.balance('bea'), 0::bigint, 'bea: 0');

------------------------------------------------------------------------------
-- a reversal takes the purchase's own lots first, then FIFO
------------------------------------------------------------------------------
INSERT INTO eorders (order_id, customer, total, ordered_at) VALUES
	(40, 'eve', 100, now() - interval '60 days'), (41, 'eve', 50, now() - interval '30 days');
DELETE FROM eorders WHERE order_id = 41;
SELECT is(pg_temp.last_lots('eorders', '41'),
		  loyalty.lots_add('{}', 50, now() - interval '30 days' + interval '1 year')::text,
		  'a refund takes the purchase''s own lot, not the older one');
INSERT INTO eorders (order_id, customer, total, ordered_at) VALUES (42, 'eve', 40, now() - interval '10 days');
SELECT is((loyalty.redeem('eve', 30, program => 'exp')).lots::text,
		  loyalty.lots_add('{}', 30, now() - interval '60 days' + interval '1 year')::text,
		  'eve redeems 30 from her oldest lot (order 40)');
DELETE FROM eorders WHERE order_id = 40;
SELECT is(pg_temp.last_lots('eorders', '40'),
		  loyalty.lots_add(loyalty.lots_add('{}', 70, now() - interval '60 days' + interval '1 year'),
						   30, now() - interval '10 days' + interval '1 year')::text,
		  'refunding order 40: its own 70, then 30 FIFO from the next lot');
SELECT is(loyalty.member_lots('eve', program => 'exp')::text,
		  loyalty.lots_add('{}', 10, now() - interval '10 days' + interval '1 year')::text,
		  'eve keeps 10 of order 42');

------------------------------------------------------------------------------
-- a refund after the points were spent leaves debt; later purchases pay it
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (50, 'dan', 100, '2025-04-06 10:00+00');
SELECT is((loyalty.redeem('dan', 80)).points, -80::bigint, 'dan redeems 80 of 100');
DELETE FROM orders WHERE order_id = 50;
SELECT is(pg_temp.last_lots('orders', '50'), (loyalty.lots_spend('{20 until infinity}', 100, now(), true)).drawn::text,
		  'the reversal takes the 20 left and records 80 as debt');
SELECT results_eq($$SELECT available, debt FROM loyalty.balance_detail('dan')$$, $$VALUES (-80::bigint, 80::bigint)$$,
	'dan: balance -80, debt 80');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (51, 'dan', 50, '2025-04-07 10:00+00');
SELECT results_eq($$SELECT available, debt FROM loyalty.balance_detail('dan')$$, $$VALUES (-30::bigint, 30::bigint)$$,
	'the next purchase of 50 pays debt first: -30, debt 30');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (52, 'dan', 40, '2025-04-08 10:00+00');
SELECT results_eq($$SELECT available, debt FROM loyalty.balance_detail('dan')$$, $$VALUES (10::bigint, 0::bigint)$$,
	'then 40 more: debt paid, 10 available');
SELECT is(loyalty.member_lots('dan')::text, '{10 until infinity}', 'dan''s lots: 10');

------------------------------------------------------------------------------
-- pending points
------------------------------------------------------------------------------
INSERT INTO porders (order_id, customer, total, ordered_at) VALUES (60, 'pia', 70, now() - interval '2 days');
SELECT results_eq($$SELECT kind::text, points, lots::text FROM loyalty.ledger WHERE reference = '60'$$,
	$$VALUES ('pending'::text, 70::bigint, loyalty.lots_add_pending('{}', 70, now() + interval '12 days', 'infinity')::text)$$,
	'a purchase in a program with a pending period is pending until 14 days after the purchase');
SELECT results_eq($$SELECT available, pending FROM loyalty.balance_detail('pia', program => 'pend')$$,
	$$VALUES (0::bigint, 70::bigint)$$, 'not available now, 70 pending');
SELECT is(loyalty.balance('pia', now() + interval '12 days' - interval '1 microsecond', 'pend'), 0::bigint,
		  'not available 1 us before the release');
SELECT is(loyalty.balance('pia', now() + interval '12 days', 'pend'), 70::bigint, 'available at the release');

INSERT INTO porders (order_id, customer, total, ordered_at) VALUES (61, 'pete', 80, now() - interval '1 day');
DELETE FROM porders WHERE order_id = 61;
SELECT is(pg_temp.last_lots('porders', '61'),
		  loyalty.lots_add_pending('{}', 80, now() + interval '13 days', 'infinity')::text,
		  'a refund during the pending period takes the pending lot');
SELECT results_eq($$SELECT available, pending, lots::text FROM loyalty.balance_detail('pete', program => 'pend')$$,
	$$VALUES (0::bigint, 0::bigint, '{}'::text)$$, 'nothing pending is left');
SELECT is(loyalty.balance('pete', now() + interval '13 days', 'pend'), 0::bigint, 'and nothing is released later');

INSERT INTO porders (order_id, customer, total, ordered_at) VALUES (62, 'paula', 100, now() - interval '1 day');
UPDATE porders SET total = 60 WHERE order_id = 62;
SELECT results_eq($$SELECT available, pending FROM loyalty.balance_detail('paula', program => 'pend')$$,
	$$VALUES (0::bigint, 60::bigint)$$, 'a partial refund during the pending period leaves 60 pending');
SELECT is(loyalty.balance('paula', now() + interval '13 days', 'pend'), 60::bigint, '60 are released');

INSERT INTO porders (order_id, customer, total, ordered_at) VALUES (63, 'olga', 50, now() - interval '20 days');
SELECT is(loyalty.balance('olga', program => 'pend'), 50::bigint, 'a purchase 20 days ago is released');
DELETE FROM porders WHERE order_id = 63;
SELECT is(loyalty.balance('olga', program => 'pend'), 0::bigint, 'deleting it takes the 50 back');
SELECT is(loyalty.balance('olga', now() - interval '1 day', 'pend'), 50::bigint, 'yesterday olga had 50 available');
SELECT is(loyalty.balance('olga', now() - interval '7 days', 'pend'), 0::bigint, 'a week ago they were still pending');

INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (64, 'fred', 25, now() + interval '1 day');
SELECT is((SELECT kind FROM pg_temp.entries('orders', '64')), 'pending', 'a purchase dated tomorrow is pending');
SELECT is(loyalty.balance('fred'), 0::bigint, 'not available now');
SELECT is(loyalty.balance('fred', now() + interval '1 day'), 25::bigint, 'available at its purchase time');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong after all of the above');

------------------------------------------------------------------------------
-- exactly once
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (1, 'rita', 50, '2025-04-01 10:00+00')
	ON CONFLICT DO NOTHING;
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '1')), 1::bigint,
		  'INSERT ... ON CONFLICT DO NOTHING re-sending a purchase writes nothing');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (1, 'rita', 50, '2025-04-01 10:00+00')
	ON CONFLICT (order_id) DO UPDATE SET total = excluded.total;
SELECT is((SELECT count(*) FROM pg_temp.entries('orders', '1')), 1::bigint,
		  'ON CONFLICT DO UPDATE with the same amount writes nothing');
SELECT is(loyalty.balance('rita'), 50::bigint, 'rita: still 50');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (1, 'rita', 60, '2025-04-01 10:00+00')
	ON CONFLICT (order_id) DO UPDATE SET total = excluded.total;
SELECT is(loyalty.balance('rita'), 60::bigint, 'ON CONFLICT DO UPDATE with a new amount adds the difference: 60');
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES
	(1, 'rita', 60, '2025-04-01 10:00+00'), (3, 'rita', 5, '2025-04-01 11:00+00')
	ON CONFLICT DO NOTHING;
SELECT is(loyalty.balance('rita'), 65::bigint, 'a re-sent and a new purchase in one INSERT: only the new one earns');

-- 1000 purchases of 50 customers in one INSERT ... SELECT
CREATE TABLE bulk (id int PRIMARY KEY, customer int, amount numeric, at timestamptz);
SELECT lives_ok($$SELECT loyalty.track_purchases('bulk', 'customer', 'amount', 'at')$$, 'bulk is tracked');
-- purchase i: customer i % 50, amount i + 0.75 -> i points
INSERT INTO bulk SELECT i, i % 50, i + 0.75, '2025-05-01 00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 1000) i;
SELECT results_eq($$SELECT count(*), sum(l.points)::bigint, count(DISTINCT l.member_key)
					 FROM loyalty.ledger l JOIN loyalty.tracked_tables t ON t.id = l.track_id
					WHERE t.table_name = 'bulk'::regclass$$,
	$$VALUES (1000::bigint, 500500::bigint, 50::bigint)$$,
	'1000 ledger entries, 1 + 2 + ... + 1000 = 500500 points, 50 members');
SELECT is(loyalty.balance(0), 10500::bigint, 'customer 0: 50 + 100 + ... + 1000 = 10500');
SELECT is(loyalty.balance(1), 9520::bigint, 'customer 1: 1 + 51 + ... + 951 = 9520');
SELECT is(loyalty.balance(49), 10480::bigint, 'customer 49: 49 + 99 + ... + 999 = 10480');
SELECT is((SELECT sum(loyalty.lots_total(balance)) FROM loyalty.members WHERE member_key ~ '^[0-9]+$')::bigint,
		  500500::bigint, 'the balances add up to 500500');

-- the table is restored from a backup: the 1000 rows come again, with 5 new ones
TRUNCATE bulk;
INSERT INTO bulk SELECT i, i % 50, i + 0.75, '2025-05-01 00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 1005) i;
SELECT results_eq($$SELECT count(*), sum(l.points)::bigint
					 FROM loyalty.ledger l JOIN loyalty.tracked_tables t ON t.id = l.track_id
					WHERE t.table_name = 'bulk'::regclass$$,
	$$VALUES (1005::bigint, 505515::bigint)$$,
	'replaying 1000 purchases with 5 new ones awards only the 5: 500500 + 1001 + ... + 1005');
SELECT is(loyalty.balance(1), 9520 + 1001::bigint, 'customer 1 gained only order 1001');
SELECT is(loyalty.balance(0), 10500::bigint, 'customer 0 gained nothing');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong after the replays');

------------------------------------------------------------------------------
-- more exactly-once cases
------------------------------------------------------------------------------
-- order lines whose reference (the order number) is not unique
CREATE TABLE lines (line_id serial PRIMARY KEY, order_no text, customer text, total numeric, at timestamptz);
SELECT lives_ok($$SELECT loyalty.track_purchases('lines', 'customer', 'total', 'at', reference_columns => '{order_no}')$$,
	'lines are tracked by order number');
INSERT INTO lines (order_no, customer, total, at) VALUES
	('o-1', 'lou', 10, '2025-04-09 10:00+00'), ('o-1', 'lou', 20, '2025-04-09 10:00+00');
SELECT is((SELECT count(*) FROM pg_temp.entries('lines', 'o-1')), 1::bigint, 'two rows with one reference: one award');
SELECT is(loyalty.balance('lou'), pg_temp.net('lines', 'o-1'), 'and the balance holds what the ledger says');

-- long references
CREATE TABLE longrefs (ref text PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT lives_ok($$SELECT loyalty.track_purchases('longrefs', 'customer', 'total', 'at')$$, 'longrefs are tracked');
INSERT INTO longrefs VALUES (repeat('x', 300) || '1', 'lena', 10, '2025-04-09 10:00+00');
TRUNCATE longrefs;
INSERT INTO longrefs VALUES (repeat('x', 300) || '1', 'lena', 10, '2025-04-09 10:00+00'),
							(repeat('x', 300) || '2', 'leo', 20, '2025-04-09 10:00+00');
SELECT is(loyalty.balance('lena'), 10::bigint, 'a replayed purchase with a 301-character reference is not awarded again');
SELECT is(loyalty.balance('leo'), 20::bigint, 'the new one beside it is');

------------------------------------------------------------------------------
-- moved purchases
------------------------------------------------------------------------------
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (72, 'nia', 15, '2025-04-10 10:00+00');
UPDATE orders SET order_id = 73 WHERE order_id = 72;
SELECT results_eq($$SELECT * FROM pg_temp.entries('orders', '72') UNION ALL SELECT * FROM pg_temp.entries('orders', '73')$$,
	$$VALUES ('earn'::text, 15::bigint, NULL::text, '2025-04-10 10:00+00'::timestamptz),
			 ('reverse', -15, 'purchase moved', now()),
			 ('earn', 15, NULL, '2025-04-10 10:00+00')$$,
	'a new order number: the old reference is reversed, the new one awarded');
SELECT is(loyalty.balance('nia'), 15::bigint, 'nia: 15');

INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (70, 'mia', 30, '2025-04-10 10:00+00');
SELECT lives_ok($$UPDATE orders SET customer = 'max' WHERE order_id = 70$$, 'a purchase can be moved to another customer');
SELECT is(loyalty.balance('mia'), 0::bigint, 'the old customer loses the points');
SELECT is((SELECT loyalty.lots_total(balance) FROM loyalty.members WHERE member_key = 'max'), 30::bigint,
		  'the new customer gets them');

------------------------------------------------------------------------------
-- an UPDATE recomputes with the member's tier
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT loyalty.enroll('tia')$$, 'tia enrolls');
UPDATE loyalty.members SET tier = 'gold' WHERE member_key = 'tia';
INSERT INTO loyalty.earning_rules (program_id, name, kind, points, tier)
SELECT id, 'gold +10', 'bonus', 10, 'gold' FROM loyalty.programs WHERE code = 'main';
INSERT INTO orders (order_id, customer, total, ordered_at) VALUES (80, 'tia', 0.50, '2025-04-11 10:00+00');
SELECT is(loyalty.balance('tia'), 10::bigint, 'a gold member''s purchase of 0.50 earns 0 + 10');
UPDATE orders SET note = 'left at the door' WHERE order_id = 80;
SELECT is(loyalty.balance('tia'), 10::bigint, 'an UPDATE of another column leaves the 10');
DELETE FROM loyalty.earning_rules;

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong at the end');

SELECT * FROM finish();
ROLLBACK;
