\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(35);

-- "SQLSTATE: message / detail" of the error a statement raises
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || ' / ' || coalesce(det, '');
END
$$;

INSERT INTO loyalty.programs (code, name, is_default) VALUES ('never', 'Never expires', true);
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval)
VALUES ('month', '30 days', 'after', '30 days');

DO $$ BEGIN
	PERFORM loyalty.enroll('sam');
	PERFORM loyalty.earn('sam', 100, 's-1', '2025-01-01 00:00:00+00');
	PERFORM loyalty.earn('sam', 50, 's-2', '2025-03-01 00:00:00+00');
	PERFORM loyalty.earn('sam', 20, 's-3', '2025-02-01 00:00:00+00');	-- recorded late, effective earlier
	PERFORM loyalty.redeem('sam', 30, 's-r');
	PERFORM loyalty.adjust('sam', 5, 'goodwill');
	PERFORM loyalty.enroll('tim', 'month');
	PERFORM loyalty.earn('tim', 70, 't-1', '2025-01-10 12:00:00+00', 'month');
END $$;
CREATE TEMP TABLE snapshot AS SELECT * FROM loyalty.ledger;

------------------------------------------------------------------------------
-- append-only
------------------------------------------------------------------------------
SELECT throws_ok($$UPDATE loyalty.ledger SET points = points + 1000 WHERE reference = 's-1'$$, 'LY005',
	'loyalty.ledger is append-only', 'UPDATE is refused');
SELECT throws_ok($$DELETE FROM loyalty.ledger WHERE reference = 's-1'$$, 'LY005',
	'loyalty.ledger is append-only', 'DELETE is refused');
SELECT throws_ok($$TRUNCATE loyalty.ledger$$, 'LY005', 'loyalty.ledger is append-only', 'TRUNCATE is refused');
SELECT throws_ok($$UPDATE loyalty.ledger SET reason = 'edited'$$, 'LY005',
	'loyalty.ledger is append-only', 'even an UPDATE of a harmless column is refused');
SELECT is(pg_temp.error_of($$DELETE FROM loyalty.ledger$$),
		  'LY005: loyalty.ledger is append-only / DELETE is not allowed on the ledger.', 'the detail names the operation');
SELECT set_eq($$SELECT member_key, seq, kind::text, points, lots::text, reference COLLATE "default", reason, effective_at FROM loyalty.ledger$$,
			  $$SELECT member_key, seq, kind::text, points, lots::text, reference COLLATE "default", reason, effective_at FROM snapshot$$,
			  'the ledger is exactly as it was');

-- What may be inserted behind the API's back: an entry whose points do not
-- match its lots must be refused by a constraint or reported by verify().
-- The insert is rolled back either way.
CREATE FUNCTION pg_temp.bad_entry(k text, pts bigint, l text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	new_seq bigint;
	result text;
BEGIN
	BEGIN
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
		SELECT program_id, member_key, 1000, k, pts, l::loyalty.lots, now() FROM snapshot WHERE reference = 's-1'
		RETURNING seq INTO new_seq;
		result := CASE WHEN EXISTS (SELECT 1 FROM loyalty.verify() v
									 WHERE v.problem LIKE format('ledger entry %s %%', new_seq))
					   THEN 'reported' ELSE 'accepted silently' END;
		RAISE EXCEPTION 'undo' USING ERRCODE = 'LYTST';
	EXCEPTION
		WHEN check_violation THEN
			RETURN 'refused';
		WHEN SQLSTATE 'LYTST' THEN
			RETURN result;
	END;
END
$$;
SELECT matches(pg_temp.bad_entry('earn', 101, '{100 until infinity}'), '^(refused|reported)$',
	'a credit whose points do not match its lots is refused or reported');
SELECT matches(pg_temp.bad_entry('redeem', -100, '{99 until infinity}'), '^(refused|reported)$',
	'a debit whose points do not match its lots is refused or reported');
SELECT matches(pg_temp.bad_entry('release', 5, '{pending 5 from 2025-01-01 00:00:00+00 until infinity}'), '^(refused|reported)$',
	'a release that moves points is refused or reported');
SELECT is(pg_temp.bad_entry('earn', 100, '{100 until infinity}'), 'accepted silently',
	'a consistent entry is neither refused nor reported as inconsistent (the helper can tell)');
SELECT throws_ok($$INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
				   SELECT program_id, member_key, 2001, 'gift', 1, '{1 until infinity}', now() FROM snapshot WHERE reference = 's-1'$$,
	'23514', NULL, 'unknown kinds are refused');
SELECT is_empty($$SELECT member_key, seq, kind, points, lots FROM loyalty.ledger
				   WHERE points <> CASE WHEN kind = 'release' THEN 0
										WHEN points < 0 THEN -(loyalty.lots_points(lots) + loyalty.lots_debt(lots))
										ELSE loyalty.lots_total(lots) END$$,
	'every entry the API wrote moves exactly the points its lots hold');

------------------------------------------------------------------------------
-- entries and their lots
------------------------------------------------------------------------------
SELECT results_eq($$SELECT kind::text, points, lots::text FROM loyalty.ledger
					 WHERE member_key = 'sam' ORDER BY seq$$,
	$$VALUES ('earn'::text, 100::bigint, '{100 until infinity}'::text),
			 ('earn', 50, '{50 until infinity}'),
			 ('earn', 20, '{20 until infinity}'),
			 ('redeem', -30, '{30 until infinity}'),
			 ('adjust', 5, '{5 until infinity}')$$,
	'every entry records the lots it moved');
SELECT results_eq($$SELECT kind::text, points, lots::text, effective_at FROM loyalty.ledger
					 WHERE member_key = 'tim' ORDER BY seq$$,
	$$VALUES ('earn'::text, 70::bigint, '{70 until 2025-02-09 12:00:00+00}'::text, '2025-01-10 12:00:00+00'::timestamptz),
			 ('expire', -70, '{70 until 2025-02-09 12:00:00+00}', '2025-02-09 12:00:00+00')$$,
	'an expiry entry removes exactly the expired lot, effective at its expiry');
SELECT is_empty($$SELECT m.member_key FROM loyalty.members m
				   WHERE (SELECT loyalty.replay(l.lots, CASE WHEN l.kind = 'release' THEN 'release'
															 WHEN l.points < 0 THEN 'debit' ELSE 'credit' END
											ORDER BY l.effective_at, l.seq)
							FROM loyalty.ledger l WHERE l.program_id = m.program_id AND l.member_key = m.member_key)::text
						<> m.balance::text$$,
	'replaying each member''s ledger gives exactly the stored lots');

------------------------------------------------------------------------------
-- statements
------------------------------------------------------------------------------
SELECT results_eq($$SELECT effective_at, kind, points, running_total, reference, reason, expires_at FROM loyalty.statement('sam')$$,
	$$VALUES ('2025-01-01 00:00:00+00'::timestamptz, 'earn'::text, 100::bigint, 100::bigint, 's-1'::text, NULL::text, 'infinity'::timestamptz),
			 ('2025-02-01 00:00:00+00', 'earn', 20, 120, 's-3', NULL, 'infinity'),
			 ('2025-03-01 00:00:00+00', 'earn', 50, 170, 's-2', NULL, 'infinity'),
			 (now(), 'redeem', -30, 140, 's-r', NULL, 'infinity'),
			 (now(), 'adjust', 5, 145, NULL, 'goodwill', 'infinity')$$,
	'statement: entries in effective order with running totals');
SELECT is((SELECT running_total FROM loyalty.statement('sam') ORDER BY effective_at DESC, seq DESC LIMIT 1),
		  loyalty.balance('sam'), 'the last running total is the balance');
SELECT results_eq($$SELECT kind::text, points, running_total FROM loyalty.statement('sam', '2025-02-01 00:00:00+00', '2025-03-01 00:00:00+00')$$,
	$$VALUES ('earn'::text, 20::bigint, 120::bigint)$$,
	'statement period [from, to): opening balance carried, end excluded');
SELECT results_eq($$SELECT kind::text, running_total FROM loyalty.statement('sam', from_ts => '2025-03-01 00:00:00+00')$$,
	$$VALUES ('earn'::text, 170::bigint), ('redeem', 140), ('adjust', 145)$$,
	'statement from an instant: the opening balance counts every earlier entry');
SELECT results_eq($$SELECT kind::text, points, running_total, expires_at FROM loyalty.statement('tim', program => 'month')$$,
	$$VALUES ('earn'::text, 70::bigint, 70::bigint, '2025-02-09 12:00:00+00'::timestamptz),
			 ('expire', -70, 0, '2025-02-09 12:00:00+00')$$,
	'statement shows expiries with their expiry instant');
SELECT is_empty($$SELECT * FROM loyalty.statement('sam', '2025-02-01 00:00:00+00', '2025-02-01 00:00:00+00')$$,
	'an empty period has no entries');
SELECT is_empty($$SELECT * FROM loyalty.statement('sam', '2024-01-01 00:00:00+00', '2024-12-31 00:00:00+00')$$,
	'a period before any activity has no entries');
SELECT throws_ok($$SELECT * FROM loyalty.statement('sam', '2025-03-01 00:00:00+00', '2025-02-01 00:00:00+00')$$,
	'22023', 'statement period is empty or null', 'from after to is refused');
SELECT throws_ok($$SELECT * FROM loyalty.statement('sam', NULL, '2025-02-01 00:00:00+00')$$,
	'22023', 'statement period is empty or null', 'a null start is refused');
SELECT throws_ok($$SELECT * FROM loyalty.statement('sam', '2025-02-01 00:00:00+00', NULL)$$,
	'22023', 'statement period is empty or null', 'a null end is refused');
SELECT is((SELECT count(*) FROM loyalty.statement(m.member_key) s)::int, 5, 'statement by the stored key')
  FROM loyalty.members m WHERE m.member_key = 'sam';

------------------------------------------------------------------------------
-- the ledger cannot be bypassed quietly: the unique reference index
------------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, effective_at)
				   SELECT program_id, member_key, 2002, 'pending', 10, '{pending 10 from 2030-01-01 00:00:00+00 until infinity}', 's-1', now()
					 FROM snapshot WHERE reference = 's-1'$$,
	'23505', NULL, 'an earn reference cannot be reused by a pending entry');
SELECT lives_ok($$INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, effective_at)
				   SELECT program_id, member_key, 2003, 'expire', -1, '{1 until infinity}', 's-1', now()
					 FROM snapshot WHERE reference = 's-1'$$,
	'references of other kinds are not constrained');
SELECT ok(EXISTS (SELECT 1 FROM loyalty.verify() WHERE member_key = 'sam'),
	'a ledger entry inserted behind the API''s back shows up in verify()');
SELECT is((SELECT ledger_sum - balance_total FROM loyalty.verify() WHERE member_key = 'sam'), -1::bigint,
	'verify() reports the sums that differ');

INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT (SELECT id FROM loyalty.programs WHERE code = 'month'), member_key, 1, 'adjust', 1, '{1 until infinity}', now()
  FROM snapshot WHERE reference = 's-1';
SELECT is((SELECT count(*) FROM loyalty.verify()
			WHERE member_key = 'sam' AND program_code = 'month'
			  AND problem = 'ledger entries for a member that does not exist'),
		  1::bigint, 'verify() reports an entry filed under a program the member is not enrolled in');

------------------------------------------------------------------------------
-- verify() checks which lots, not only how many points: the ledger replayed
-- on the time axis must give the stored lots
------------------------------------------------------------------------------
SELECT loyalty.enroll('vic') IS NOT NULL;
SELECT loyalty.earn('vic', 30, 'v-1', '2025-01-10 00:00:00+00') IS NOT NULL;
SELECT loyalty.earn('vic', 20, 'v-2', '2025-03-10 00:00:00+00') IS NOT NULL;
SELECT is_empty($$SELECT * FROM loyalty.verify() WHERE member_key = 'vic'$$, 'vic is in line with the ledger');
CREATE TEMP TABLE vic AS SELECT program_id, member_key, balance FROM loyalty.members WHERE member_key = 'vic';
-- the same 50 points in other lots (the ledger's never expire)
UPDATE loyalty.members
   SET balance = loyalty.lots_add(loyalty.lots_add('{}', 25, '2030-01-01 00:00:00+00'), 25, 'infinity')
 WHERE member_key = 'vic';
SELECT results_eq($$SELECT problem, ledger_sum, balance_total FROM loyalty.verify() WHERE member_key = 'vic'$$,
	$$VALUES ('stored lots differ from the ledger replayed in effective order', 50::bigint, 50::bigint)$$,
	'verify() reports stored lots with the right total but the wrong split');
UPDATE loyalty.members m SET balance = vic.balance FROM vic
 WHERE m.program_id = vic.program_id AND m.member_key = vic.member_key;
SELECT is_empty($$SELECT * FROM loyalty.verify() WHERE member_key = 'vic'$$, 'and nothing once they are back');
-- a debit of a lot the member never held, with a credit that makes the sums agree
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT m.program_id, m.member_key, (SELECT max(x.seq) FROM loyalty.ledger x
										WHERE x.program_id = m.program_id AND x.member_key = m.member_key) + v.n,
	   k, p, l::loyalty.lots, now()
  FROM loyalty.members m,
	   (VALUES (1, 'adjust', 5, '{5 until 2031-01-01 00:00:00+00}'),
			   (2, 'redeem', -5, '{5 until 2032-01-01 00:00:00+00}')) v(n, k, p, l)
 WHERE m.member_key = 'vic' ORDER BY v.n;
SELECT results_eq($$SELECT problem FROM loyalty.verify() WHERE member_key = 'vic'$$,
	$$VALUES ('the ledger replayed in effective order removes lots the member did not hold at ' || now())$$,
	'verify() reports a debit of lots the replayed ledger does not hold, without an error');

SELECT * FROM finish();
ROLLBACK;
