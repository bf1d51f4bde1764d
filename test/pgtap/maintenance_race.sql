-- A purchase committed while a maintenance batch runs, after
-- the batch's snapshot and before the batch locks that member, must not be
-- undone by the batch.  Before 8b9b726, _maintain_lots computed the
-- settlement in a LATERAL function scan, whose result PostgreSQL's recheck of
-- the newly locked row version (EvalPlanQual) reuses for the old version: the
-- batch wrote the settlement of the old balance and the award was lost (found
-- by test/stress/crash under CPU load, docs/reliability.md "Bugs found").
-- With SKIP LOCKED nothing waits, so to place the purchase inside that window the
-- test holds the batch inside lots_settlement: it replaces it with a wrapper
-- that first waits for an advisory lock held by session s.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(6);

\set db loyalty_maint_race
\ir lib/dblink_sessions.psql
\o /dev/null
SELECT dblink_exec('s', $$
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, pending_interval, is_default) VALUES ('p', 'P', '1 second', true);
    CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric);
    DO $d$ BEGIN PERFORM loyalty.track_purchases('orders', 'customer', 'total'); END $d$;
    INSERT INTO orders VALUES (1, 'ann', 100);
    -- the C function under another name, and a wrapper in its place that,
    -- in a session with loyalty_test.hold_settlement on (b), waits while
    -- session s holds advisory lock 4242 (declared immutable as the
    -- original, so that the batch statement keeps its plan)
    CREATE FUNCTION public.settlement_c(lots loyalty.lots, as_of timestamptz,
        OUT remaining loyalty.lots, OUT kinds text[], OUT points bigint[],
        OUT entry_lots loyalty.lots[], OUT effective timestamptz[])
        AS '$libdir/loyalty', 'lots_settlement' LANGUAGE C IMMUTABLE STRICT;
    CREATE OR REPLACE FUNCTION loyalty.lots_settlement(lots loyalty.lots, as_of timestamptz,
        OUT remaining loyalty.lots, OUT kinds text[], OUT points bigint[],
        OUT entry_lots loyalty.lots[], OUT effective timestamptz[])
        LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
    BEGIN
        IF current_setting('loyalty_test.hold_settlement', true) = 'on' THEN
            PERFORM pg_advisory_lock_shared(4242);
            PERFORM pg_advisory_unlock_shared(4242);
        END IF;
        SELECT * INTO remaining, kinds, points, entry_lots, effective
          FROM public.settlement_c(lots, as_of);
    END $f$;
$$);
-- the 100 points are pending for a second: then they are due for release
SELECT * FROM dblink('s', 'SELECT pg_sleep(1.2)') AS t(x text);
SELECT * FROM dblink('s', 'SELECT pg_advisory_lock(4242)') AS t(x text);
\o

CREATE FUNCTION pg_temp.pid(conn text) RETURNS int LANGUAGE sql AS $$
    SELECT pid FROM dblink(conn, 'SELECT pg_backend_pid()') AS t(pid int)
$$;
-- 'done' once the session's query has finished, 'waits' while it waits for a lock
CREATE FUNCTION pg_temp.state(conn text, pid int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1000 LOOP
        IF dblink_is_busy(conn) = 0 THEN
            RETURN 'done';
        END IF;
        PERFORM pg_stat_clear_snapshot();
        IF EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = state.pid AND a.wait_event_type = 'Lock') THEN
            RETURN 'waits';
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN 'timeout';
END $$;
SELECT pg_temp.pid('b') AS b_pid, pg_temp.pid('c') AS c_pid \gset

-- b: maintenance, held inside lots_settlement for ann, after its snapshot
\o /dev/null
SELECT dblink_exec('b', 'SET loyalty_test.hold_settlement = on');
\o
SELECT dblink_send_query('b', $$SELECT entries FROM loyalty.run_maintenance() WHERE task = 'release'$$) AS sent \gset
SELECT is(pg_temp.state('b', :b_pid), 'waits', 'the maintenance batch waits inside lots_settlement');
-- c: ann buys for 50 and commits, while the batch has not locked her yet
SELECT dblink_send_query('c', 'INSERT INTO orders VALUES (2, ''ann'', 50)') AS sent \gset
SELECT is(pg_temp.state('c', :c_pid), 'done', 'the purchase commits while the batch waits (it holds no lock on ann yet)');
-- let the batch go on (before reading results: nothing may wait on s then)
\o /dev/null
SELECT * FROM dblink('s', 'SELECT pg_advisory_unlock(4242)') AS t(x boolean);
\o
SELECT is((SELECT st FROM dblink_get_result('c') AS t(st text)), 'INSERT 0 1', 'the purchase went in');
\o /dev/null
SELECT * FROM dblink_get_result('c') AS t(st text);
\o
SELECT is((SELECT m FROM dblink_get_result('b') AS t(m bigint)), 1::bigint,
          'the batch then releases ann''s 100 points (one entry)');
\o /dev/null
SELECT * FROM dblink_get_result('b') AS t(m bigint);
\o

SELECT is((SELECT v FROM dblink('s', $$
    SELECT coalesce(string_agg(problem, '; '), 'clean') FROM loyalty.verify()$$) AS t(v text)),
    'clean', 'verify() is clean: the batch kept the award committed after its snapshot');
SELECT is((SELECT v FROM dblink('s', $$
    SELECT loyalty.lots_total(balance) FROM loyalty.members WHERE member_key = 'ann'$$) AS t(v bigint)),
    150::bigint, 'ann holds 150 points (100 released, 50 pending)');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
SELECT dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_maint_race');
\o

SELECT * FROM finish();
ROLLBACK;
