-- A purchase moved to another customer and a transfer between the same two
-- members, in two real sessions (dblink), in a database of their own.
-- Found by test/stress/run (a deadlock between the move and transfer
-- scripts, docs/reliability.md "Bugs found"): transfer locks both members
-- in key order, the purchase change trigger locked the old customer and
-- then the new one.  Fixed: the trigger locks both in key order first.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(3);

\set db loyalty_deadlock
\ir lib/dblink_sessions.psql
\o /dev/null
-- ann's key sorts before ben's
SELECT dblink_exec('s', $$
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, is_default) VALUES ('p', 'P', true);
    DO $d$ BEGIN PERFORM loyalty.enroll('ann'); PERFORM loyalty.enroll('ben'); END $d$;
    CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric);
    DO $d$ BEGIN PERFORM loyalty.track_purchases('orders', 'customer', 'total'); END $d$;
    INSERT INTO orders VALUES (1, 'ben', 100), (2, 'ann', 100);
    -- runs a statement, returns 'ok' or its SQLSTATE
    CREATE FUNCTION try_sql(q text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN
        EXECUTE q;
        RETURN 'ok';
    EXCEPTION WHEN OTHERS THEN
        RETURN SQLSTATE;
    END $f$;
$$);
\o

-- b holds ann (an adjustment in an open transaction); c moves ben's
-- purchase to ann: the trigger locks ben, then waits for ann; b transfers
-- from ann to ben: waits for ben.  Locking in id order (ann, then ben), c
-- would wait for ann before taking ben and nothing would deadlock.
CREATE TEMP TABLE outcome (session text, code text);
DO $$
DECLARE
    c_pid int := (SELECT pid FROM dblink('c', 'SELECT pg_backend_pid()') AS t(pid int));
BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $q$SELECT seq FROM loyalty.adjust('ann', 1, 'hold ann')$q$) AS t(seq bigint);
    PERFORM dblink_send_query('c', $q$SELECT try_sql('UPDATE orders SET customer = ''ann'' WHERE id = 1')$q$);
    INSERT INTO outcome VALUES ('c waited', pg_temp.blocked(c_pid)::text);
    INSERT INTO outcome SELECT 'b', code FROM dblink('b',
        $q$SELECT try_sql('SELECT count(*) FROM loyalty.transfer(''ann'', ''ben'', 10, ''t1'')')$q$) AS t(code text);
    PERFORM dblink_exec('b', 'COMMIT');
    INSERT INTO outcome SELECT 'c', code FROM dblink_get_result('c') AS t(code text);
    PERFORM * FROM dblink_get_result('c') AS t(code text);
END $$;

SELECT is((SELECT code FROM outcome WHERE session = 'c waited'), 'true', 'the move waited for ann');
SELECT is((SELECT string_agg(session || ' ' || code, ', ' ORDER BY session) FROM outcome WHERE session IN ('b', 'c')),
          'b ok, c ok', 'neither the transfer (b) nor the move (c) is a deadlock victim (40P01)');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
\o
SELECT is(dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_deadlock'), 'DROP DATABASE',
          'database dropped');

SELECT * FROM finish();
ROLLBACK;
