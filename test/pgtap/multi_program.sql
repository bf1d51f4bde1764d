\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(46);

-- One table, several programs (issue #19): a brand's points and a partner's
-- miles from the same orders, each with its own rules, tiers, time zone and
-- members.
-- brand: 1 point per unit, UTC, anyone who buys is enrolled; app orders earn
-- double; gold from 30 spent
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('brand', 'Brand points', true);
-- miles: 2 miles per unit, Singapore, members only; a cap of 50 miles a day
INSERT INTO loyalty.programs (code, name, points_per_unit, time_zone, auto_enroll)
VALUES ('miles', 'Partner miles', 2, 'Asia/Singapore', false);
INSERT INTO loyalty.earning_rules (program_id, name, kind, multiplier, conditions)
SELECT id, 'app orders double', 'multiplier', 2, '{"channel": "app"}' FROM loyalty.programs WHERE code = 'brand';
INSERT INTO loyalty.earning_rules (program_id, name, kind, points, cap_period)
SELECT id, '50 miles a day', 'cap', 50, 'day' FROM loyalty.programs WHERE code = 'miles';
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend)
SELECT id, t.name, t.rank, t.min_spend FROM loyalty.programs,
	   (VALUES ('base', 0, NULL), ('gold', 1, 30)) AS t(name, rank, min_spend) WHERE code = 'brand';
INSERT INTO loyalty.tiers (program_id, name, rank, min_orders)
SELECT id, t.name, t.rank, t.min_orders FROM loyalty.programs,
	   (VALUES ('blue', 0, NULL), ('elite', 1, 10)) AS t(name, rank, min_orders) WHERE code = 'miles';
SELECT loyalty.enroll('ann', 'miles', '2025-01-01') \g /dev/null

CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL,
					 channel text NOT NULL DEFAULT 'web', at timestamptz NOT NULL,
					 status text NOT NULL DEFAULT 'paid');

-- points of a member in a program, from the ledger
CREATE FUNCTION pg_temp.pts(program text, customer text) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(l.points), 0)::bigint FROM loyalty.ledger l JOIN loyalty.programs p ON p.id = l.program_id
	 WHERE p.code = $1 AND l.member_key = $2
$$;

------------------------------------------------------------------------------
-- tracking for a second program adds a tracking
------------------------------------------------------------------------------
SELECT loyalty.track_purchases('orders', 'customer', 'amount', 'at', status_column => 'status',
							   channel_column => 'channel', program => 'brand') AS brand_track \gset
SELECT loyalty.track_purchases('orders', 'customer', 'amount', 'at', status_column => 'status',
							   program => 'miles') AS miles_track \gset
SELECT isnt(:miles_track, :brand_track, 'tracking the table for another program gives a new tracking id');
SELECT results_eq($$SELECT p.code, x.active FROM loyalty.tracked_tables x JOIN loyalty.programs p ON p.id = x.program_id
					 WHERE x.table_name = 'orders'::regclass ORDER BY x.id$$,
	$$VALUES ('brand', true), ('miles', true)$$, 'one active tracked_tables row per program');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'orders'::regclass),
	ARRAY['loyalty_purchase_change_' || :brand_track, 'loyalty_purchase_change_' || :miles_track,
		  'loyalty_purchase_insert_' || :brand_track, 'loyalty_purchase_insert_' || :miles_track],
	'each tracking has its own triggers, named with its id');

------------------------------------------------------------------------------
-- inserts earn in both, each under its own rules
------------------------------------------------------------------------------
INSERT INTO orders VALUES (1, 'ann', 10, 'web', '2025-03-10 10:00+00');
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[10, 20]::bigint[],
	'a single-row insert earns in both programs: 10 points, 20 miles');
INSERT INTO orders SELECT i, 'ann', 10, 'app', '2025-03-11 10:00+00' FROM generate_series(2, 3) i;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[50, 60]::bigint[],
	'INSERT ... SELECT: app orders earn double in brand only (+40), +40 miles');
COPY orders (id, customer, amount, channel, at) FROM stdin;
4	bob	7	web	2025-03-12 10:00+00
5	ann	30	web	2025-03-12 10:00+00
\.
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[80, 110]::bigint[],
	'COPY earns in both: 30 points, and 60 miles capped to 50 a day');
SELECT is(pg_temp.pts('brand', 'bob'), 7::bigint, 'bob earns in brand, which enrols whoever buys');
SELECT is((SELECT count(*) FROM loyalty.members m JOIN loyalty.programs p ON p.id = m.program_id
			WHERE p.code = 'miles' AND m.member_key = 'bob'), 0::bigint,
	'and is not enrolled in miles, which is for members only');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE track_id = :brand_track AND kind IN ('earn', 'pending')), 5::bigint,
	'five first awards under the brand tracking');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE track_id = :miles_track AND kind IN ('earn', 'pending')), 4::bigint,
	'four under the miles tracking (bob is no member)');
SELECT is(ARRAY[loyalty.tier('ann', '2025-03-31', 'brand'), loyalty.tier('ann', '2025-03-31', 'miles')],
	ARRAY['gold', 'blue'], 'each program has its own tiers: gold in brand (60 spent), blue in miles (4 orders)');
SELECT is((SELECT string_agg(to_char(effective_at AT TIME ZONE 'UTC', 'HH24:MI'), ',' ORDER BY seq)
			 FROM loyalty.ledger WHERE track_id = :miles_track AND reference = '1'),
	'10:00', 'awards carry the purchase time in both');

------------------------------------------------------------------------------
-- corrections in both
------------------------------------------------------------------------------
UPDATE orders SET status = 'refunded' WHERE id = 1;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[70, 90]::bigint[],
	'a refund is taken back in both');
UPDATE orders SET amount = 15 WHERE id = 2;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[80, 100]::bigint[],
	'an amount change is corrected in both: +10 points (app, double), +10 miles');
UPDATE orders SET customer = 'bob' WHERE id = 3;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('brand', 'bob')], ARRAY[60, 27]::bigint[],
	'a purchase moved to another customer moves in brand');
SELECT is(ARRAY[pg_temp.pts('miles', 'ann'), pg_temp.pts('miles', 'bob')], ARRAY[80, 0]::bigint[],
	'and is taken back in miles, where bob is no member');
DELETE FROM orders WHERE id = 5;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[30, 30]::bigint[],
	'a delete is taken back in both: 30 points, the 50 miles it was paid');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean in both programs');

------------------------------------------------------------------------------
-- the same program again replaces its configuration; untracking one
-- tracking leaves the other working
------------------------------------------------------------------------------
SELECT is(loyalty.track_purchases('orders', 'customer', 'amount', 'at', status_column => 'status',
								  program => 'miles'), :miles_track,
	'tracking again for the same program keeps its id');
SELECT is((SELECT count(*) FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass), 2::bigint,
	'and adds no tracking');
SELECT is((SELECT channel_column FROM loyalty.tracked_tables WHERE id = :brand_track), 'channel'::name,
	'nor changes the other program''s configuration');
SELECT is(loyalty.untrack_purchases('orders', program => 'miles'), true, 'untracking one program');
SELECT is(loyalty.untrack_purchases('orders', program => 'miles'), false, 'false the second time');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'orders'::regclass),
	ARRAY['loyalty_purchase_change_' || :brand_track, 'loyalty_purchase_insert_' || :brand_track],
	'drops that tracking''s triggers only');
INSERT INTO orders VALUES (6, 'ann', 5, 'web', '2025-03-13 10:00+00');
UPDATE orders SET amount = 20 WHERE id = 2;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[45, 30]::bigint[],
	'brand goes on earning and correcting (+5, +10), miles does not');
SELECT is(loyalty.track_purchases('orders', 'customer', 'amount', 'at', status_column => 'status',
								  program => 'miles'), :miles_track,
	'tracking it again for miles reuses its id');
UPDATE orders SET amount = 10 WHERE id = 2;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[25, 20]::bigint[],
	'and its purchases awarded before are corrected in it again');
SELECT is(loyalty.untrack_purchases('orders'), true, 'untracking without a program untracks every tracking');
SELECT is((SELECT count(*) FROM loyalty.tracked_tables WHERE table_name = 'orders'::regclass AND active), 0::bigint,
	'both rows are inactive');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass), 0::bigint, 'and no trigger is left');

------------------------------------------------------------------------------
-- moving a table to another program: untrack, then track; the new program
-- takes over the tracking, and purchases awarded before are settled in
-- the program that awarded them
------------------------------------------------------------------------------
CREATE TABLE morders (id int PRIMARY KEY, customer text, amount numeric, at timestamptz, channel text DEFAULT 'web');
SELECT loyalty.track_purchases('morders', 'customer', 'amount', 'at', channel_column => 'channel', program => 'brand') AS m_track \gset
INSERT INTO morders VALUES (1, 'ann', 4, '2025-03-10 10:00+00', 'app');
SELECT is(loyalty.untrack_purchases('morders', program => 'brand'), true, 'untracked from brand');
SELECT is(loyalty.track_purchases('morders', 'customer', 'amount', 'at', program => 'miles'), :m_track,
	'tracked for miles: it takes over the untracked tracking');
UPDATE morders SET amount = 6 WHERE id = 1;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[25 + 12, 20]::bigint[],
	'a purchase awarded before is corrected in brand, which awarded it, under its rules (app, double), and miles pays nothing');
INSERT INTO morders VALUES (2, 'ann', 1, '2025-03-10 11:00+00');
SELECT is(pg_temp.pts('miles', 'ann'), 22::bigint, 'a new one earns in miles');

------------------------------------------------------------------------------
-- a tracking added later leaves the purchases awarded before it to the
-- tracking that awarded them: it pays nothing for their changes
------------------------------------------------------------------------------
SELECT loyalty.enroll('cy', 'miles', '2025-01-01') \g /dev/null
CREATE TABLE lorders (id int PRIMARY KEY, customer text, amount numeric, at timestamptz, channel text DEFAULT 'web');
SELECT loyalty.track_purchases('lorders', 'customer', 'amount', 'at', channel_column => 'channel', program => 'brand') \g /dev/null
INSERT INTO lorders VALUES (1, 'cy', 10, '2025-03-10 10:00+00'), (2, 'cy', 10, '2025-03-10 10:00+00');
SELECT loyalty.track_purchases('lorders', 'customer', 'amount', 'at', program => 'miles') \g /dev/null
UPDATE lorders SET amount = 20 WHERE id = 1;
UPDATE lorders SET customer = 'ann' WHERE id = 2;
SELECT is(ARRAY[pg_temp.pts('brand', 'cy'), pg_temp.pts('brand', 'ann') - 37, pg_temp.pts('miles', 'cy'), pg_temp.pts('miles', 'ann')],
	ARRAY[20, 10, 0, 22]::bigint[],
	'an amount change and a move of purchases from before miles are corrected in brand only');
INSERT INTO lorders VALUES (3, 'cy', 5, '2025-03-11 10:00+00');
DELETE FROM lorders WHERE id IN (1, 3);
SELECT is(ARRAY[pg_temp.pts('brand', 'cy'), pg_temp.pts('miles', 'cy')], ARRAY[0, 0]::bigint[],
	'a delete takes back what each program paid; one inserted after earned and is taken back in both');
SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN loyalty.programs p ON p.id = l.program_id
			WHERE p.code = 'miles' AND l.member_key = 'cy'), 2::bigint, 'miles wrote only order 3''s award and its reversal');
DELETE FROM lorders;
SELECT is(pg_temp.pts('brand', 'ann'), 37::bigint, 'order 2, moved to ann, is taken back in brand');

------------------------------------------------------------------------------
-- a partitioned table tracked for two programs
------------------------------------------------------------------------------
CREATE TABLE porders (id int, customer text, amount numeric, at timestamptz, channel text DEFAULT 'web',
					  PRIMARY KEY (id, at))
	PARTITION BY RANGE (at);
CREATE TABLE porders_mar PARTITION OF porders FOR VALUES FROM ('2025-03-01') TO ('2025-04-01');
SELECT loyalty.track_purchases('porders', 'customer', 'amount', 'at', reference_columns => '{id}',
							   channel_column => 'channel', program => 'brand') AS p_brand \gset
SELECT loyalty.track_purchases('porders', 'customer', 'amount', 'at', reference_columns => '{id}',
							   program => 'miles') AS p_miles \gset
CREATE TABLE porders_apr PARTITION OF porders FOR VALUES FROM ('2025-04-01') TO ('2025-05-01');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'porders_apr'::regclass),
	ARRAY['loyalty_purchase_change_' || :p_brand, 'loyalty_purchase_change_' || :p_miles,
		  'loyalty_purchase_insert_' || :p_brand, 'loyalty_purchase_insert_' || :p_miles],
	'a new partition gets the triggers of both trackings');
INSERT INTO porders_mar VALUES (1, 'ann', 3, '2025-03-20 10:00+00');
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[40, 28]::bigint[],
	'an insert straight into a partition earns in both');
UPDATE porders SET at = '2025-04-02 10:00+00', amount = 4 WHERE id = 1;
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[41, 30]::bigint[],
	'a row moved to another partition with a new amount is corrected in both');
SELECT is(loyalty.untrack_purchases('porders', program => 'brand'), true, 'untracking brand');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'porders_mar'::regclass),
	ARRAY['loyalty_purchase_change_' || :p_miles, 'loyalty_purchase_insert_' || :p_miles],
	'leaves the partitions the miles triggers');
INSERT INTO porders VALUES (2, 'ann', 5, '2025-04-03 10:00+00');
SELECT is(ARRAY[pg_temp.pts('brand', 'ann'), pg_temp.pts('miles', 'ann')], ARRAY[41, 40]::bigint[],
	'which go on earning');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean');

-- a dropped table: every tracking of it is marked
DROP TABLE porders;
SELECT results_eq($$SELECT x.id, x.active, x.dropped_name FROM loyalty.tracked_tables x
					 WHERE x.dropped_at IS NOT NULL ORDER BY x.id$$,
	format('VALUES (%s, false, %L), (%s, false, %L)', :p_brand, 'public.porders', :p_miles, 'public.porders'),
	'dropping the table marks every tracking of it dropped');

SELECT * FROM finish();
ROLLBACK;
