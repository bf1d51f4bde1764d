-- Points right on every time axis (docs/concepts.md, Balances as of any
-- instant, Inactivity): future-dated and back-dated entries, inactivity
-- deadlines between activities, reversals of purchases dated in the future,
-- debt met by a back-dated credit.  One test per wrong answer found by the
-- model-based test (test/model), each failing on the code before the fix.
\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(45);

------------------------------------------------------------------------------
-- A. Inactivity: an earn dated in the future does not bring back points that
--    expired at a deadline before it
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval)
VALUES ('ia', 'Idle 3 months', 'inactivity', '3 months');
SELECT loyalty.enroll('a', 'ia') \g /dev/null
SELECT loyalty.earn('a', 333, NULL, now() - interval '30 days', program => 'ia') \g /dev/null
SELECT loyalty.earn('a', 100, NULL, now() + interval '200 days', program => 'ia') \g /dev/null
SELECT is(loyalty.balance('a', now() - interval '30 days' + interval '3 months' - interval '1 microsecond', 'ia'),
		  333::bigint, 'A: 333 points until the deadline of the earn 30 days ago');
SELECT is(loyalty.balance('a', now() - interval '30 days' + interval '3 months', 'ia'), 0::bigint,
		  'A: 0 at that deadline');
SELECT is(loyalty.balance('a', now() + interval '200 days', 'ia'), 100::bigint,
		  'A: 100 (not 433) once the future earn is released: it comes after the deadline');
SELECT is(loyalty.balance('a', now() + interval '200 days' + interval '3 months', 'ia'), 0::bigint,
		  'A: and its own deadline takes them');
-- the same with an activity now, after the future earn was recorded
SELECT loyalty.enroll('a2', 'ia') \g /dev/null
SELECT loyalty.earn('a2', 333, NULL, now() - interval '30 days', program => 'ia') \g /dev/null
SELECT loyalty.earn('a2', 100, NULL, now() + interval '200 days', program => 'ia') \g /dev/null
SELECT loyalty.adjust('a2', 5, 'goodwill', program => 'ia') \g /dev/null
SELECT is(ARRAY[loyalty.balance('a2', now() + interval '3 months' - interval '1 microsecond', 'ia'),
				loyalty.balance('a2', now() + interval '3 months', 'ia'),
				loyalty.balance('a2', now() + interval '200 days', 'ia')],
		  ARRAY[338, 0, 100]::bigint[],
		  'A: an adjust now moves the deadline to now + 3 months, still before the future earn');
SELECT is((SELECT row(available, pending)::text FROM loyalty.balance_detail('a2', now() + interval '100 days', 'ia')),
		  row(0, 0)::text,
		  'A: between the deadline and the future earn: nothing (the earn counts from its own instant)');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'A: verify() is clean');

------------------------------------------------------------------------------
-- B. Inactivity: a purchase after the deadline expires the points that were
--    pending at the last activity and released before the deadline
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval)
VALUES ('ib', 'Idle 60 days', 'inactivity', '60 days', '14 days');
CREATE TABLE orders_b (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders_b', 'customer', 'total', 'at', program => 'ib') \g /dev/null
INSERT INTO orders_b VALUES (1, 'b', 139, now() - interval '200 days');
SELECT is(loyalty.balance('b', now() - interval '100 days', 'ib'), 0::bigint,
		  'B: 100 days ago the 139 points had expired (released at -186 days, deadline at -140 days)');
INSERT INTO orders_b VALUES (2, 'b', 18, now() - interval '50 days');
SELECT is(loyalty.balance('b', now() - interval '50 days', 'ib'), 0::bigint,
		  'B: the purchase 50 days ago does not revive them (the 18 are pending)');
SELECT is(loyalty.balance('b', now(), 'ib'), 18::bigint, 'B: now the 18 released points only');
SELECT is((SELECT string_agg(format('%s %s %s', kind, points, effective_at = now() - interval '140 days'), ', ' ORDER BY l.member_key, l.seq)
			 FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key
			WHERE m.member_key = 'b' AND l.reason = 'inactivity'),
		  'expire -139 t', 'B: one inactivity expiry of the 139 points at their deadline');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'B: verify() is clean');

------------------------------------------------------------------------------
-- C. Deleting a tracked purchase dated in the future: the reversal is
--    effective where the award was, and every balance answers
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, pending_interval) VALUES ('nc', 'Never', '12 hours');
CREATE TABLE orders_c (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders_c', 'customer', 'total', 'at', program => 'nc') \g /dev/null
INSERT INTO orders_c VALUES (1, 'c', 40, now() + interval '30 days');
SELECT loyalty.earn('c', 10, 'c-e', now() - interval '1 day', 'nc') \g /dev/null
DELETE FROM orders_c WHERE id = 1;
SELECT is(ARRAY[loyalty.balance('c', now(), 'nc'), loyalty.balance('c', now() + interval '15 days', 'nc'),
				loyalty.balance('c', now() + interval '31 days', 'nc')],
		  ARRAY[10, 10, 10]::bigint[], 'C: 10 points at every instant, before and after the purchase time');
SELECT is((SELECT effective_at FROM loyalty.ledger WHERE kind = 'reverse' AND reference = '1'),
		  now() + interval '30 days', 'C: the reversal is effective at the purchase time, where the award is');
SELECT is((SELECT lots::text FROM loyalty.ledger WHERE kind = 'reverse' AND reference = '1'),
		  loyalty.lots_add_pending('{}', 40, now() + interval '30 days 12 hours', 'infinity')::text,
		  'C: it takes back the purchase''s own pending lot');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'C: verify() is clean');

------------------------------------------------------------------------------
-- Decision 1: a reversal takes first what the purchase itself created, its
-- increases included: a member never owes points they hold as the
-- purchase's pending lot
------------------------------------------------------------------------------
INSERT INTO orders_c VALUES (2, 'd', 28, now() + interval '20 days');
UPDATE orders_c SET total = 93 WHERE id = 2;
UPDATE orders_c SET customer = 'd2' WHERE id = 2;
SELECT is(ARRAY[loyalty.balance('d', now(), 'nc'), loyalty.balance('d', now() + interval '21 days', 'nc')],
		  ARRAY[0, 0]::bigint[], 'D1: the old customer owes nothing, now or at the release (was -65)');
SELECT is((loyalty.balance_detail('d', now(), 'nc')).debt, 0::bigint, 'D1: no debt');
SELECT is(loyalty.balance('d2', now() + interval '21 days', 'nc'), 93::bigint,
		  'D1: the new customer gets the 93 points at the release');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'D1: verify() is clean');

------------------------------------------------------------------------------
-- Decision 2: debt met by a credit dated back: every balance answers, and
-- the stored lots are the replay (lots with an expiry tell which paid)
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval)
VALUES ('af', 'A year', 'after', '1 year');
CREATE TABLE orders_d (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders_d', 'customer', 'total', 'at', program => 'af') \g /dev/null
INSERT INTO orders_d VALUES (1, 'e', 100, now() - interval '10 days');
SELECT loyalty.redeem('e', 100, 'e-r1', 'af') \g /dev/null
UPDATE orders_d SET total = 0 WHERE id = 1;
SELECT is(loyalty.balance('e', program => 'af'), -100::bigint, 'D2: a refund after the redemption left debt 100');
SELECT loyalty.earn('e', 30, 'e-late', now() - interval '5 days', 'af') \g /dev/null
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'e'), '{debt 70}',
		  'D2: 30 points dated before the debt pay part of it');
SELECT loyalty.earn('e', 100, 'e-new', program => 'af') \g /dev/null
SELECT loyalty.redeem('e', 30, 'e-r2', 'af') \g /dev/null
SELECT loyalty.earn('e', 5, 'e-future', now() + interval '10 days', 'af') \g /dev/null
SELECT is(ARRAY[loyalty.balance('e', now() - interval '7 days', 'af'), loyalty.balance('e', now(), 'af'),
				loyalty.balance('e', now() + interval '11 days', 'af')],
		  ARRAY[100, 0, 5]::bigint[], 'D2: balances before, at and after the debt answer (LY006 before)');
SELECT is((SELECT count(*) FROM loyalty.statement('e', program => 'af')),
		  (SELECT count(*) FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key WHERE m.member_key = 'e'),
		  'D2: the statement lists every entry');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'D2: verify() is clean');

------------------------------------------------------------------------------
-- Late entries under inactivity: a late activity between a written deadline
-- and its activity cancels it (reinstate), one before it expires with it
------------------------------------------------------------------------------
SELECT loyalty.enroll('f', 'ia') \g /dev/null
SELECT loyalty.earn('f', 50, NULL, now() - interval '5 months', program => 'ia') \g /dev/null
SELECT is(loyalty.balance('f', program => 'ia'), 0::bigint, 'late: 50 earned 5 months ago expired 2 months ago');
SELECT loyalty.earn('f', 20, NULL, now() - interval '4 months', program => 'ia') \g /dev/null
SELECT is(ARRAY[loyalty.balance('f', now() - interval '5 months' + interval '3 months', 'ia'),
				loyalty.balance('f', now() - interval '4 months' + interval '3 months' - interval '1 microsecond', 'ia'),
				loyalty.balance('f', now() - interval '4 months' + interval '3 months', 'ia')],
		  ARRAY[70, 70, 0]::bigint[],
		  'late: an earn dated 4 months ago cancels the deadline at -2 months; both expire a month later');
SELECT is((SELECT string_agg(kind || ' ' || points, ', ' ORDER BY l.member_key, l.seq) FROM loyalty.ledger l
			 JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key WHERE m.member_key = 'f' AND l.reason = 'inactivity'),
		  'expire -50, reinstate 50, expire -70', 'late: the first expiry is given back, then both expire');
SELECT loyalty.enroll('g', 'ia') \g /dev/null
SELECT loyalty.earn('g', 50, NULL, now() - interval '5 months', program => 'ia') \g /dev/null
SELECT loyalty.earn('g', 20, NULL, now() - interval '6 months', program => 'ia') \g /dev/null
SELECT is(ARRAY[loyalty.balance('g', now() - interval '5 months' - interval '1 day', 'ia'),
				loyalty.balance('g', now() - interval '3 months', 'ia'),
				loyalty.balance('g', now(), 'ia')],
		  ARRAY[20, 70, 0]::bigint[], 'late: an earn dated before the last activity expires with the rest');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'late: verify() is clean');

------------------------------------------------------------------------------
-- A purchase deleted, inserted again at another time (awards nothing: its
-- reference has its award), raised, deleted again: the last reversal is
-- effective where the increase counted, not at the first award's time
-- (found by test/model)
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name) VALUES ('rz', 'plain');
CREATE TABLE rz_orders (id bigint PRIMARY KEY, customer text, amount numeric, at timestamptz);
SELECT loyalty.track_purchases('rz_orders', 'customer', 'amount', 'at', program => 'rz') \g /dev/null
INSERT INTO rz_orders VALUES (100, 'bob', 100, now() + interval '30 days');
DELETE FROM rz_orders WHERE id = 100;
INSERT INTO rz_orders VALUES (100, 'bob', 50, now() + interval '10 days');
UPDATE rz_orders SET amount = 80 WHERE id = 100;
DELETE FROM rz_orders WHERE id = 100;
SELECT is(ARRAY[loyalty.balance('bob', now() + interval '10 days', 'rz'),
				loyalty.balance('bob', now() + interval '20 days', 'rz'),
				loyalty.balance('bob', now() + interval '30 days', 'rz')],
		  ARRAY[0, 0, 0]::bigint[], 'reinserted: the deleted purchase never counted');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'reinserted: verify() is clean');

------------------------------------------------------------------------------
-- An inactivity expiry is never written ahead of its deadline: a purchase
-- dated in the future wrote the deadline between now and it, and the adjust
-- that cancels that deadline left the expiry (found by test/model)
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval) VALUES ('ah', 'idle 3 days', 'inactivity', '3 days');
CREATE TABLE ah_orders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('ah_orders', 'customer', 'total', 'at', program => 'ah') \g /dev/null
SELECT loyalty.enroll('al', 'ah') \g /dev/null
SELECT loyalty.earn('al', 100, NULL, now() - interval '1 day', program => 'ah') \g /dev/null
INSERT INTO ah_orders VALUES (1, 'al', 20, now() + interval '5 days');
SELECT loyalty.adjust('al', 1, 'goodwill', program => 'ah') \g /dev/null
SELECT is(ARRAY[loyalty.balance('al', now() + interval '2 days 12 hours', 'ah'),
				loyalty.balance('al', now() + interval '5 days', 'ah'),
				(SELECT count(*) FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key
				  WHERE m.member_key = 'al' AND l.kind = 'expire')],
		  ARRAY[101, 20, 0]::bigint[], 'ahead: the deadline at +2 days is cancelled, nothing expired yet');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'ahead: verify() is clean');

------------------------------------------------------------------------------
-- Debt is paid by the pending points released after it: a read after the
-- release showed the whole debt beside the released points (found by
-- test/model)
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, pending_interval, rounding) VALUES ('dp', 'pending 30 days', 'never', '30 days', 'half_up');
CREATE TABLE dp_orders (id int PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('dp_orders', 'customer', 'total', 'at', program => 'dp') \g /dev/null
SELECT loyalty.enroll('dan', 'dp') \g /dev/null
INSERT INTO dp_orders VALUES (100, 'dan', 10.5, now() + interval '131 days');
SELECT loyalty.earn('dan', 186, NULL, now() - interval '127 days', program => 'dp') \g /dev/null
INSERT INTO dp_orders VALUES (101, 'dan', 258.52, now() - interval '174 days');
INSERT INTO dp_orders VALUES (102, 'dan', 93.12, now() - interval '67 days');
SELECT loyalty.redeem('dan', 459, program => 'dp') \g /dev/null
DELETE FROM dp_orders WHERE id = 102;
SELECT is(ARRAY[(loyalty.balance_detail('dan', now() + interval '162 days', 'dp')).debt,
				(loyalty.balance_detail('dan', now() + interval '162 days', 'dp')).pending,
				loyalty.balance('dan', now() + interval '162 days', 'dp'),
				(loyalty.balance_detail('dan', now(), 'dp')).debt],
		  ARRAY[3, 0, -3, 14]::bigint[], 'debt: the 11 points released at +161 days pay 11 of the debt of 14');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'debt: verify() is clean');

------------------------------------------------------------------------------
-- Late entries that bring a deadline forward: an activity dated before an
-- older deadline sets one of its own, which expires points first
------------------------------------------------------------------------------
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval)
VALUES ('ip', 'Idle 3 days, 14 days pending', 'inactivity', '3 days', '14 days');
SELECT loyalty.enroll('k', 'ip') \g /dev/null
SELECT loyalty.earn('k', 65, NULL, now() - interval '46 days', program => 'ip') \g /dev/null
SELECT loyalty.earn('k', 407, NULL, now() - interval '263 days', program => 'ip') \g /dev/null
-- written so far: the deadline at -43 days took the 407 (released at -249 days)
SELECT loyalty.earn('k', 387, NULL, now() - interval '244 days', program => 'ip') \g /dev/null
SELECT is(ARRAY[loyalty.balance('k', now() - interval '241 days' - interval '1 microsecond', 'ip'),
				loyalty.balance('k', now() - interval '241 days', 'ip'),
				loyalty.balance('k', now() - interval '43 days' - interval '1 microsecond', 'ip'),
				loyalty.balance('k', now() - interval '43 days', 'ip'),
				loyalty.balance('k', now(), 'ip')],
		  ARRAY[407, 0, 387, 0, 65]::bigint[],
		  'forward: the 407 expire at -241 days, the deadline at -43 days takes the 387');
SELECT is((SELECT string_agg(format('%s %s', kind, points), ', ' ORDER BY l.member_key, l.seq) FROM loyalty.ledger l
			 JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key WHERE m.member_key = 'k' AND l.reason = 'inactivity'),
		  'expire -407, expire -407, reinstate 20',
		  'forward: the deadline at -43 days keeps its expiry, less the 20 points it can no longer take');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'k'), '{65 until infinity}',
		  'forward: the stored lots are the replay');
-- a spend made before the late activity was known: the points it drew had
-- expired by then, so it is owed
SELECT loyalty.enroll('n', 'ip') \g /dev/null
SELECT loyalty.earn('n', 361, NULL, now() - interval '202 days', program => 'ip') \g /dev/null
SELECT loyalty.adjust('n', -37, 'goodwill reversal', program => 'ip') \g /dev/null
SELECT loyalty.earn('n', 40, NULL, now() - interval '4 days', program => 'ip') \g /dev/null
SELECT is(ARRAY[loyalty.balance('n', now() - interval '1 day' - interval '1 microsecond', 'ip'),
				loyalty.balance('n', now() - interval '1 day', 'ip'),
				loyalty.balance('n', now(), 'ip'),
				loyalty.balance('n', now() + interval '10 days', 'ip')],
		  ARRAY[361, 0, -37, 3]::bigint[],
		  'forward: the 361 expire at -1 day; the 37 spent now are owed, and paid by the release');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'n'),
		  format('{pending 40 from %s until infinity, debt 37}', now() + interval '10 days'),
		  'forward: the stored lots hold the debt');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'forward: verify() is clean');
-- a spend written after the expiry that took its lots is not excused (the
-- totals agree: a credit after it)
SAVEPOINT tamper;
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT m.program_id, m.member_key, coalesce((SELECT max(x.seq) FROM loyalty.ledger x WHERE x.program_id = m.program_id AND x.member_key = m.member_key), 0)
	   + row_number() OVER (PARTITION BY m.program_id, m.member_key ORDER BY v.n), v.k, v.p, v.l::loyalty.lots, v.at
  FROM loyalty.members m,
	   (VALUES (1, 'adjust', 1, '{1 until infinity}', now() + interval '1 day'),
			   (2, 'redeem', -1, '{1 until infinity}', now() - interval '12 hours')) v(n, k, p, l, at)
 WHERE m.member_key = 'n' ORDER BY v.n;
SELECT is((SELECT problem FROM loyalty.verify() WHERE member_key = 'n'),
		  'the ledger replayed in effective order removes lots the member did not hold at '
		  || (now() - interval '12 hours'),
		  'verify(): a debit written after the expiry that took its lots');
ROLLBACK TO SAVEPOINT tamper;

------------------------------------------------------------------------------
-- verify() sees a ledger that does not replay at a past instant, and stored
-- lots that are not the replay
------------------------------------------------------------------------------
SELECT loyalty.enroll('h', 'nc') \g /dev/null
SELECT loyalty.earn('h', 10, 'h-1', now() - interval '2 days', 'nc') \g /dev/null
-- a debit dated before the credit it draws (the totals agree)
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT m.program_id, m.member_key, coalesce((SELECT max(x.seq) FROM loyalty.ledger x WHERE x.program_id = m.program_id AND x.member_key = m.member_key), 0)
	   + row_number() OVER (PARTITION BY m.program_id, m.member_key ORDER BY v.n), v.k, v.p, v.l::loyalty.lots, v.at
  FROM loyalty.members m,
	   (VALUES (1, 'adjust', 4, '{4 until infinity}', now() - interval '1 day'),
			   (2, 'redeem', -4, '{4 until infinity}', now() - interval '3 days')) v(n, k, p, l, at)
 WHERE m.member_key = 'h' ORDER BY v.n;
SELECT is((SELECT problem FROM loyalty.verify() WHERE member_key = 'h'),
		  'the ledger replayed in effective order removes lots the member did not hold at '
		  || (now() - interval '3 days'),
		  'verify(): a debit that does not replay at its own instant');
SELECT is(loyalty.balance('h', now() - interval '3 days', 'nc'), -4::bigint,
		  'and a balance at that instant still answers (the missing points owed)');

SELECT * FROM finish();
ROLLBACK;
