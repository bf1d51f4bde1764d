-- A reference repeated within one statement, when reference_columns are not
-- unique: a reference is the customer's own (docs/concepts.md), so of a
-- customer's rows under one reference only the first in processing order
-- (purchase time, reference) is awarded, and another customer's row under
-- the same reference is a purchase of its own.  pg_temp.winners() below
-- states the rule in SQL and every load is compared with it: bulk
-- INSERT ... SELECT, COPY, and repeats across statements.  They pass on the quadratic marking that the sort
-- replaced (the same rows earn), and fail when the marking keeps another
-- row than the first (9 of 16 failed with the sort's tie order reversed).
\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(16);

INSERT INTO loyalty.programs (code, name, is_default) VALUES ('p', 'P', true);
-- order lines: the order number is the reference and repeats
CREATE TABLE lines (line_id serial PRIMARY KEY, order_no text NOT NULL, customer text NOT NULL,
					total numeric NOT NULL, at timestamptz NOT NULL);
SELECT loyalty.track_purchases('lines', 'customer', 'total', 'at', reference_columns => '{order_no}') \g /dev/null

-- the first row of each reference and customer among the given lines, by the rule
CREATE FUNCTION pg_temp.winners(first_id int, last_id int)
RETURNS TABLE (reference text, member_key text, total numeric, at timestamptz)
LANGUAGE sql AS $$
	SELECT DISTINCT ON (order_no, customer) order_no, customer, total, at
	  FROM lines
	 WHERE line_id BETWEEN first_id AND last_id
	 ORDER BY order_no, customer, at$$;
-- the first awards of the lines' references
CREATE FUNCTION pg_temp.awards(first_id int, last_id int)
RETURNS TABLE (reference text, member_key text, points bigint, at timestamptz)
LANGUAGE sql AS $$
	SELECT l.reference, m.member_key, l.points, l.effective_at
	  FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key
	 WHERE l.track_id IS NOT NULL AND l.kind = 'earn'
	   AND l.reference IN (SELECT order_no FROM lines WHERE line_id BETWEEN first_id AND last_id)$$;

------------------------------------------------------------------------------
-- one bulk INSERT ... SELECT: 10,000 orders and 2,286 repeats of them
------------------------------------------------------------------------------
-- Repeats of three kinds, each placed after the order it repeats, so that
-- "first in the statement" and "first in processing order" differ:
--   same customer, an hour earlier (it wins: earlier purchase time);
--   another customer, same time (the member order decides);
--   two more rows, of two more customers, a day later (a reference thrice).
INSERT INTO lines (order_no, customer, total, at)
SELECT order_no, customer, total, at FROM (
	SELECT 0 AS part, i, 'o' || i AS order_no, 'c' || (i % 500) AS customer, (i % 90 + 1)::numeric AS total,
		   '2025-03-01 00:00+00'::timestamptz + i * interval '1 minute' AS at
	  FROM generate_series(1, 10000) i
	UNION ALL
	SELECT 1, i, 'o' || (i * 7), 'c' || ((i * 7) % 500), 1000 + i,
		   '2025-03-01 00:00+00'::timestamptz + i * 7 * interval '1 minute' - interval '1 hour'
	  FROM generate_series(1, 1000) i
	UNION ALL
	SELECT 2, i, 'o' || (i * 11), 'd' || i, 2000 + i,
		   '2025-03-01 00:00+00'::timestamptz + i * 11 * interval '1 minute'
	  FROM generate_series(1, 900) i
	UNION ALL
	SELECT 3, i, 'o' || (i * 13), 'e' || (i % 37 + k), 3000 + i,
		   '2025-03-02 00:00+00'::timestamptz + i * 13 * interval '1 minute'
	  FROM generate_series(1, 193) i, generate_series(0, 1) k
) s ORDER BY part, i;

SELECT is((SELECT count(*) FROM lines), 12286::bigint, 'the bulk insert holds 12,286 lines');
SELECT is((SELECT count(DISTINCT order_no) FROM lines), 10000::bigint, 'of 10,000 orders');
SELECT bag_eq($$SELECT reference, member_key, points, at FROM pg_temp.awards(1, 12286)$$,
			  $$SELECT reference, member_key, floor(total)::bigint, at FROM pg_temp.winners(1, 12286)$$,
			  'bulk INSERT ... SELECT: each order is awarded once per customer, for its first line in processing order');
-- 885 of the 1,000 repeats an hour earlier are their order's only repeat
-- (the others share it with repeats of other customers): they must win
SELECT is((SELECT count(*) FROM pg_temp.awards(1, 12286)
			WHERE points BETWEEN 1001 AND 2000
			  AND reference IN (SELECT order_no FROM lines GROUP BY order_no HAVING count(*) = 2)),
		  885::bigint, 'an order''s only repeat, an hour earlier, is awarded instead of the line before it');
SELECT is((SELECT sum(loyalty.balance(member_key)) FROM loyalty.members),
		  (SELECT sum(points)::numeric FROM pg_temp.awards(1, 12286)),
		  'balances hold exactly the awards');

------------------------------------------------------------------------------
-- COPY, and the first line that earns nothing
------------------------------------------------------------------------------
-- o-a: zoe twice, the later line first in the data; o-b: three customers at
-- one instant; o-c: its first line is worth 0, so its repeat earns nothing
-- either (the reference is taken by the first line, as before); o-d: once.
COPY lines (order_no, customer, total, at) FROM STDIN;
o-a	zoe	20	2025-04-01 12:00+00
o-a	zoe	10	2025-04-01 11:00+00
o-b	yan	30	2025-04-01 12:00+00
o-b	xia	40	2025-04-01 12:00+00
o-b	wes	50	2025-04-01 12:00+00
o-c	vic	0	2025-04-01 10:00+00
o-c	vic	60	2025-04-01 11:00+00
o-d	uma	70	2025-04-01 12:00+00
\.
SELECT bag_eq($$SELECT reference, member_key, points, at FROM pg_temp.awards(12287, 12294)$$,
			  $$SELECT reference, member_key, floor(total)::bigint, at FROM pg_temp.winners(12287, 12294)
				 WHERE total > 0$$,
			  'COPY: each order is awarded once per customer, for its first line in processing order');
SELECT results_eq($$SELECT member_key, points FROM pg_temp.awards(12287, 12294) WHERE reference = 'o-a'$$,
				  $$VALUES ('zoe', 10::bigint)$$, 'COPY: the earlier purchase of a repeated order wins, whatever its place');
SELECT is((SELECT count(*) FROM pg_temp.awards(12287, 12294) WHERE reference = 'o-b'), 3::bigint,
		  'COPY: three customers under one order: an award each (a reference is the customer''s own)');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference = 'o-c'), 0::bigint,
		  'COPY: an order whose first line earns nothing earns nothing');
SELECT is(loyalty.balance('vic'), 0::bigint, 'vic: 0');

------------------------------------------------------------------------------
-- across statements
------------------------------------------------------------------------------
-- an order awarded before, repeated twice in a later statement, beside a new
-- one that is itself repeated
CREATE TEMP TABLE before AS SELECT count(*) AS n, loyalty.balance('zoe') AS zoe FROM loyalty.ledger;
INSERT INTO lines (order_no, customer, total, at) VALUES
	('o-a', 'zoe', 5, '2025-04-01 09:00+00'),
	('o-new', 'zoe', 7, '2025-04-02 10:00+00'),
	('o-a', 'zoe', 6, '2025-04-01 08:00+00'),
	('o-new', 'zoe', 8, '2025-04-02 09:00+00');
SELECT results_eq($$SELECT member_key, points, at FROM pg_temp.awards(1, 100000) WHERE reference = 'o-a'$$,
				  $$VALUES ('zoe', 10::bigint, '2025-04-01 11:00+00'::timestamptz)$$,
				  'an order awarded by an earlier statement is not awarded again, even for an earlier line');
SELECT results_eq($$SELECT member_key, points, at FROM pg_temp.awards(1, 100000) WHERE reference = 'o-new'$$,
				  $$VALUES ('zoe', 8::bigint, '2025-04-02 09:00+00'::timestamptz)$$,
				  'the new order beside it is awarded once, for its earlier line');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT n + 1 FROM before), 'the statement wrote one entry');
SELECT is(loyalty.balance('zoe'), (SELECT zoe + 8 FROM before), 'zoe gained 8');
-- the whole bulk load again, in one statement: nothing is awarded twice
INSERT INTO lines (order_no, customer, total, at)
SELECT order_no, customer, total, at FROM lines WHERE line_id <= 12286 ORDER BY line_id DESC;
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT n + 1 FROM before),
		  'the bulk load inserted again, reversed, awards nothing');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds nothing wrong');

SELECT * FROM finish();
ROLLBACK;
