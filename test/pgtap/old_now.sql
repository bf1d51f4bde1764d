-- Writes from a transaction that started before another session's write to
-- the same member (dblink, real sessions, committed data): session b's
-- now() is older than c's entry, so b's entry comes first on the time axis
-- though it is written second.  The ledger must still replay in effective
-- order, and no point may be spent twice.  Found by test/stress/run
-- (docs/reliability.md, "Bugs found"): b's redeem drew lots that c's redeem
-- had already drawn; verify() reported the member and the member could
-- spend more than it held.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(12);

\set db loyalty_old_now
\ir lib/dblink_sessions.psql
\o /dev/null
SELECT dblink_exec('s', $$
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, is_default) VALUES ('p', 'P', true);
    CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, status text NOT NULL DEFAULT 'paid');
    DO $d$ BEGIN PERFORM loyalty.track_purchases('orders', 'customer', 'total', status_column => 'status'); END $d$;
    DO $d$ BEGIN PERFORM loyalty.enroll('ann'); PERFORM loyalty.enroll('bob');
                   PERFORM loyalty.earn('ann', 100); PERFORM loyalty.earn('bob', 100); END $d$;
    INSERT INTO orders VALUES (1, 'cid', 100);
$$);
\o

CREATE FUNCTION pg_temp.s(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT v FROM dblink('s', sql) AS t(v text)
$$;
-- b's transaction starts (its now() is fixed), then c writes and commits
CREATE FUNCTION pg_temp.b_then_c(c_sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', 'SELECT now()') AS t(n timestamptz);
    PERFORM pg_sleep(0.01);
    PERFORM * FROM dblink('c', c_sql) AS t(v text);
END $$;

-- a redeem in b after c redeemed: b may spend only what c left
SELECT pg_temp.b_then_c($$SELECT loyalty.redeem('ann', 60)::text$$);
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT loyalty.redeem(''ann'', 50)::text') AS t(v text)$$,
                 'LY001', NULL, 'b cannot redeem 50 of the 40 that c left, though 100 were there at its now()');
SELECT dblink_exec('b', 'ROLLBACK') \g /dev/null
SELECT pg_temp.b_then_c($$SELECT loyalty.redeem('ann', 1)::text$$);
SELECT is((SELECT v FROM dblink('b', 'SELECT loyalty.redeem(''ann'', 39)::text') AS t(v text)) IS NOT NULL, true,
          'b redeems the 39 left');
SELECT dblink_exec('b', 'COMMIT') \g /dev/null
SELECT is(pg_temp.s($$SELECT loyalty.balance('ann')::text$$), '0', 'ann: 100 - 60 - 1 - 39 = 0');
SELECT is(pg_temp.s($$SELECT count(*)::text FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key
                       WHERE m.member_key = 'ann' AND l.kind = 'redeem'
                         AND l.effective_at < (SELECT max(effective_at) FROM loyalty.ledger x
                                                WHERE x.program_id = l.program_id AND x.member_key = l.member_key
                                                  AND x.seq < l.seq)$$),
          '1', 'b''s redeem is written after c''s, effective before it');

-- a transfer and an adjust in b after c redeemed
SELECT pg_temp.b_then_c($$SELECT loyalty.redeem('bob', 70)::text$$);
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT loyalty.transfer(''bob'', ''ann'', 31)::text') AS t(v text)$$,
                 'LY001', NULL, 'b cannot transfer 31 of the 30 that c left');
SELECT dblink_exec('b', 'ROLLBACK') \g /dev/null
SELECT pg_temp.b_then_c($$SELECT loyalty.adjust('bob', -5, 'test')::text$$);
SELECT lives_ok($$SELECT * FROM dblink('b', 'SELECT loyalty.transfer(''bob'', ''ann'', 20)::text') AS t(v text)$$,
                'b transfers 20 of the 25 left');
SELECT dblink_exec('b', 'SAVEPOINT more') \g /dev/null
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT loyalty.adjust(''bob'', -6, ''test'')::text') AS t(v text)$$,
                 'LY001', NULL, 'and cannot take 6 more of the 5 left');
SELECT dblink_exec('b', 'ROLLBACK TO SAVEPOINT more') \g /dev/null
SELECT dblink_exec('b', 'COMMIT') \g /dev/null
SELECT is(pg_temp.s($$SELECT loyalty.balance('bob')::text || ' ' || loyalty.balance('ann')::text$$), '5 20',
          'bob 100 - 70 - 5 - 20 = 5, ann 0 + 20');

-- a refund in b after c redeemed the purchase's points: the points are owed
SELECT pg_temp.b_then_c($$SELECT loyalty.redeem('cid', 60)::text$$);
SELECT dblink_exec('b', $$UPDATE orders SET status = 'refunded' WHERE id = 1$$) \g /dev/null
SELECT dblink_exec('b', 'COMMIT') \g /dev/null
SELECT is(pg_temp.s($$SELECT loyalty.balance('cid')::text$$), '-60', 'cid: the refund takes back 100 of which 60 were spent');
SELECT is(pg_temp.s($$SELECT loyalty.lots_debt(balance)::text FROM loyalty.members WHERE member_key = 'cid'$$), '60',
          'cid owes 60');

SELECT is(pg_temp.s($$SELECT count(*)::text FROM loyalty.verify()$$), '0',
          'verify() is clean: every ledger replays in effective order');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
\o
SELECT is(dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_old_now'), 'DROP DATABASE',
          'database dropped');

SELECT * FROM finish();
ROLLBACK;
