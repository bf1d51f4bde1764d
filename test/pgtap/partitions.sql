\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(40);

\ir lib/as_role.psql

-- A partitioned purchases table, by month, one partition itself partitioned
-- by channel: inserts through the root, straight into a partition and into
-- a sub-partition; an UPDATE that moves a row to another partition; new,
-- attached and detached partitions.
INSERT INTO loyalty.programs (code, name, expiry_policy, is_default) VALUES ('shop', 'Shop', 'never', true);
CREATE TABLE orders (
	id bigint NOT NULL,
	customer text NOT NULL,
	total numeric NOT NULL,
	channel text NOT NULL DEFAULT 'web',
	at timestamptz NOT NULL,
	status text NOT NULL DEFAULT 'paid',
	PRIMARY KEY (id, at, channel)
) PARTITION BY RANGE (at);
CREATE TABLE orders_jan PARTITION OF orders FOR VALUES FROM ('2030-01-01') TO ('2030-02-01');
CREATE TABLE orders_feb PARTITION OF orders FOR VALUES FROM ('2030-02-01') TO ('2030-03-01')
	PARTITION BY LIST (channel);
CREATE TABLE orders_feb_web PARTITION OF orders_feb FOR VALUES IN ('web');
CREATE TABLE orders_feb_app PARTITION OF orders_feb FOR VALUES IN ('app');
-- the reference is the order id: a move keeps it
SELECT ok(loyalty.track_purchases('orders', 'customer', 'total', 'at', reference_columns => '{id}',
								  status_column => 'status') > 0,
	'a partitioned table is tracked');
SELECT is((SELECT array_agg(tgrelid::regclass::text ORDER BY tgrelid::regclass::text) FROM pg_trigger
			WHERE tgname ~ '^loyalty_purchase_insert_[0-9]+$'),
	'{orders,orders_feb,orders_feb_app,orders_feb_web,orders_jan}'::text[],
	'the insert trigger is on the table and on every partition, at every level');

-- inserts by every route, each earning once
INSERT INTO orders (id, customer, total, at) VALUES (1, 'ann', 10, '2030-01-05');
SELECT is(loyalty.balance('ann', '2030-06-01'), 10::bigint, 'through the root');
INSERT INTO orders_jan (id, customer, total, at) VALUES (2, 'ann', 20, '2030-01-06');
SELECT is(loyalty.balance('ann', '2030-06-01'), 30::bigint, 'straight into a partition');
INSERT INTO orders_feb (id, customer, total, at) VALUES (3, 'ann', 40, '2030-02-06');
SELECT is(loyalty.balance('ann', '2030-06-01'), 70::bigint, 'into a partitioned partition');
INSERT INTO orders_feb_app (id, customer, total, channel, at) VALUES (4, 'ann', 80, 'app', '2030-02-07');
SELECT is(loyalty.balance('ann', '2030-06-01'), 150::bigint, 'into a leaf of it');
COPY orders_jan (id, customer, total, at) FROM stdin;
5	bob	5	2030-01-09
\.
SELECT is(loyalty.balance('bob', '2030-06-01'), 5::bigint, 'COPY into a partition');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE track_id IS NOT NULL), 5::bigint,
	'one award per purchase, none twice');

-- an UPDATE that moves a row to another partition is an UPDATE
UPDATE orders SET at = '2030-02-10' WHERE id = 1;
SELECT is(loyalty.balance('ann', '2030-06-01'), 150::bigint, 'a purchase moved to another partition keeps its points');
SELECT is((SELECT string_agg(kind || ':' || points, ', ' ORDER BY member_key, seq) FROM loyalty.ledger WHERE reference = '1'),
	'pending:10', 'and its award stands as it was: no reversal');
UPDATE orders SET at = '2030-01-20', total = 13 WHERE id = 4;
SELECT is(loyalty.balance('ann', '2030-06-01'), 83::bigint, 'a move with a new amount corrects the award to it (150 - 80 + 13)');
UPDATE orders SET at = '2030-02-11', customer = 'bob' WHERE id = 2;
SELECT is(loyalty.balance('ann', '2030-06-01') || ' ' || loyalty.balance('bob', '2030-06-01'), '63 25',
	'a move to another customer moves the points');
UPDATE orders SET at = '2030-01-21', status = 'refunded' WHERE id = 3;
SELECT is(loyalty.balance('ann', '2030-06-01'), 23::bigint, 'a move that refunds takes the points back');
UPDATE orders_feb SET channel = 'app' WHERE id = 1;
SELECT is(loyalty.balance('ann', '2030-06-01'), 23::bigint, 'a move between the leaves of a partitioned partition too');
DELETE FROM orders WHERE id = 5;
SELECT is(loyalty.balance('bob', '2030-06-01'), 20::bigint, 'a delete from a partition still reverses the award');

-- a reference that holds the partition key (the primary key by default):
-- a move changes the reference, as an UPDATE of a reference column of any
-- table does: the old reference is taken back, the new one awarded
CREATE TABLE visits (id bigint, customer text, total numeric, at timestamptz, PRIMARY KEY (id, at))
	PARTITION BY RANGE (at);
CREATE TABLE visits_1 PARTITION OF visits FOR VALUES FROM ('2030-01-01') TO ('2030-02-01');
CREATE TABLE visits_2 PARTITION OF visits FOR VALUES FROM ('2030-02-01') TO ('2030-03-01');
SELECT ok(loyalty.track_purchases('visits', 'customer', 'total', 'at') > 0, 'a table with the partition key in its reference');
INSERT INTO visits VALUES (1, 'eve', 30, '2030-01-10'), (2, 'eve', 4, '2030-01-11');
UPDATE visits SET at = at + interval '1 month';
SELECT is(loyalty.balance('eve', '2030-06-01'), 34::bigint, 'moved rows keep their points');
SELECT is((SELECT string_agg(kind || ':' || points, ', ' ORDER BY member_key, seq) FROM loyalty.ledger l
			WHERE l.member_key = 'eve'),
	'pending:30, pending:4, reverse:-30, reverse:-4, pending:30, pending:4',
	'taken back under the old reference and earned under the new one');
UPDATE visits SET total = 5 WHERE id = 2;
SELECT is(loyalty.balance('eve', '2030-06-01'), 35::bigint, 'an UPDATE that moves nothing corrects as before, once');

-- partitions made later follow the table
CREATE TABLE orders_mar PARTITION OF orders FOR VALUES FROM ('2030-03-01') TO ('2030-04-01');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'orders_mar'::regclass AND tgname ~ '^loyalty_purchase_insert_[0-9]+$'),
	'a partition created later gets the insert trigger');
INSERT INTO orders_mar (id, customer, total, at) VALUES (6, 'cat', 7, '2030-03-02');
SELECT is(loyalty.balance('cat', '2030-06-01'), 7::bigint, 'and earns');
CREATE TABLE orders_apr (LIKE orders INCLUDING ALL);
ALTER TABLE orders ATTACH PARTITION orders_apr FOR VALUES FROM ('2030-04-01') TO ('2030-05-01');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'orders_apr'::regclass AND tgname ~ '^loyalty_purchase_insert_[0-9]+$'),
	'an attached partition gets it');
INSERT INTO orders_apr (id, customer, total, at) VALUES (7, 'cat', 9, '2030-04-02');
SELECT is(loyalty.balance('cat', '2030-06-01'), 16::bigint, 'and earns');
ALTER TABLE orders DETACH PARTITION orders_apr;
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'orders_apr'::regclass AND tgname LIKE 'loyalty%'),
	'a detached partition loses the triggers');
SELECT lives_ok($$INSERT INTO orders_apr (id, customer, total, at) VALUES (8, 'cat', 100, '2030-04-03')$$,
	'inserts into it neither fail');
SELECT is(loyalty.balance('cat', '2030-06-01'), 16::bigint, 'nor earn');

-- untracking removes every trigger
SELECT ok(loyalty.untrack_purchases('orders'), 'untracked');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'loyalty_purchase%'
			 AND tgrelid IN (SELECT relid FROM pg_partition_tree('orders'))), 0::bigint,
	'no loyalty trigger left on the table or its partitions');
SELECT lives_ok($$INSERT INTO orders_jan (id, customer, total, at) VALUES (9, 'dan', 1, '2030-01-03')$$,
	'an insert into a partition of an untracked table works');
SELECT ok(loyalty.track_purchases('orders', 'customer', 'total', 'at', reference_columns => '{id}',
								  status_column => 'status') > 0,
	'tracked again');

-- a table owned by a role below superuser, with no loyalty role: its owner
-- creates, attaches and detaches partitions itself (PostgreSQL clones the
-- row trigger to a new partition, and checks that role's EXECUTE on
-- loyalty.purchase_change)
CREATE ROLE part_owner;
GRANT CREATE ON SCHEMA public TO part_owner;
CREATE TABLE public.bookings (id bigint, customer text NOT NULL, total numeric NOT NULL, at timestamptz NOT NULL,
							  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.bookings_jan PARTITION OF public.bookings FOR VALUES FROM ('2030-01-01') TO ('2030-02-01');
ALTER TABLE public.bookings OWNER TO part_owner;
ALTER TABLE public.bookings_jan OWNER TO part_owner;
SELECT ok(loyalty.track_purchases('public.bookings', 'customer', 'total', 'at', reference_columns => '{id}') > 0,
	'a partitioned table of a role below superuser is tracked');
SELECT is(pg_temp.as_role('part_owner', $$
	CREATE TABLE public.bookings_feb PARTITION OF public.bookings FOR VALUES FROM ('2030-02-01') TO ('2030-03-01');
	CREATE TABLE public.bookings_mar PARTITION OF public.bookings FOR VALUES FROM ('2030-03-01') TO ('2030-04-01')
		PARTITION BY RANGE (id);
	CREATE TABLE public.bookings_mar_1 PARTITION OF public.bookings_mar FOR VALUES FROM (0) TO (1000);
	CREATE TABLE public.bookings_apr (LIKE public.bookings);
	ALTER TABLE public.bookings ATTACH PARTITION public.bookings_apr FOR VALUES FROM ('2030-04-01') TO ('2030-05-01')$$),
	'ok', 'its owner creates a partition, a partitioned one with a leaf, and attaches one');
SELECT is((SELECT array_agg(tgrelid::regclass::text || ' ' || regexp_replace(tgname, '_[0-9]+$', '') ORDER BY tgrelid::regclass::text, tgname) FROM pg_trigger
			WHERE tgrelid IN ('bookings_feb'::regclass, 'bookings_mar_1'::regclass, 'bookings_apr'::regclass)),
	'{"bookings_apr loyalty_purchase_change","bookings_apr loyalty_purchase_insert","bookings_feb loyalty_purchase_change","bookings_feb loyalty_purchase_insert","bookings_mar_1 loyalty_purchase_change","bookings_mar_1 loyalty_purchase_insert"}'::text[],
	'each new leaf has the row trigger and the insert trigger');
SELECT is(pg_temp.as_role('part_owner', $$
	INSERT INTO public.bookings VALUES (1, 'fay', 10, '2030-02-02');
	INSERT INTO public.bookings_feb VALUES (2, 'fay', 20, '2030-02-03');
	INSERT INTO public.bookings_mar_1 VALUES (3, 'fay', 40, '2030-03-03');
	INSERT INTO public.bookings_apr VALUES (4, 'fay', 80, '2030-04-04')$$),
	'ok', 'its owner inserts orders into them, through the table and straight');
SELECT is(loyalty.balance('fay', '2030-06-01'), 150::bigint, 'the orders in the new partitions earn');
SELECT is(pg_temp.as_role('part_owner', $$
	UPDATE public.bookings SET total = 30 WHERE id = 3;
	UPDATE public.bookings SET at = '2030-04-10' WHERE id = 2;
	DELETE FROM public.bookings_apr WHERE id = 4$$),
	'ok', 'its owner corrects, moves and deletes orders in them');
SELECT is(loyalty.balance('fay', '2030-06-01'), 60::bigint, 'and the points follow (150 - 10 - 80)');
SELECT is(pg_temp.as_role('part_owner', $$ALTER TABLE public.bookings DETACH PARTITION public.bookings_apr;
	INSERT INTO public.bookings_apr VALUES (5, 'fay', 100, '2030-04-05')$$),
	'ok', 'its owner detaches a partition and writes to it');
SELECT is(loyalty.balance('fay', '2030-06-01'), 60::bigint, 'which earns no more');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
