-- run_maintenance(workers => n): lot settlement in background workers that
-- commit batch by batch.  The workers see only committed data, so the
-- members live in a database of their own, written through dblink.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(31);

\set db loyalty_workers
\ir lib/dblink_sessions.psql
\o /dev/null
-- 2,000 members as in bench/maintenance.sql, with points that differ from
-- member to member: two thirds of them have a lot that expired on 1 June 2025
-- and pending points released on 15 June; the others' are due in 2040.  The
-- ledger holds the matching earn and pending entries, so verify() is clean.
SELECT dblink_exec('s', $$
    SET TimeZone = 'America/New_York';
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval,
                                  time_zone, is_default)
    VALUES ('w', 'Workers', 'after', '12 months', '14 days', 'Europe/Berlin', true);
    CREATE PROCEDURE public.add_members(prefix text, n int, due_every int)
    LANGUAGE sql AS $f$
        INSERT INTO loyalty.members (program_id, member_key, balance, last_activity_at)
        SELECT 1, prefix || i,
               loyalty.lots_add_pending(loyalty.lots_add('{}', 100 + i % 7, e.expires), 20 + i % 5,
                                        e.release, e.release + interval '12 months'),
               e.release - interval '14 days'
          FROM generate_series(1, n) i
         CROSS JOIN LATERAL (SELECT CASE WHEN i % due_every <> 0 THEN '2025-06-01 00:00+02'::timestamptz
                                         ELSE '2040-06-01 00:00+02' END AS expires,
                                    CASE WHEN i % due_every <> 0 THEN '2025-06-15 00:00+02'::timestamptz
                                         ELSE '2040-06-15 00:00+02' END AS release) e;
        INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
        SELECT 1, m.member_key, row_number() OVER (PARTITION BY m.member_key), CASE e.state WHEN 'lot' THEN 'earn' ELSE 'pending' END, e.points,
               CASE e.state WHEN 'lot' THEN loyalty.lots_add('{}', e.points, e.expires_at)
                    ELSE loyalty.lots_add_pending('{}', e.points, e.release_at, e.expires_at) END,
               coalesce(e.release_at - interval '14 days', e.expires_at - interval '12 months')
          FROM loyalty.members m, loyalty.lots_entries(m.balance) e
         WHERE m.member_key LIKE prefix || '%';
    $f$;
    CALL public.add_members('m', 2000, 3);
    -- what settling each member as of 1 July 2025 must write
    CREATE TABLE expected AS
    SELECT m.member_key, s.*
      FROM loyalty.members m, loyalty.lots_settlement(m.balance, '2025-07-01') s;
$$);
\o

-- a purchase (session b) holds m5, who is due
SELECT is(dblink_exec('b', $q$BEGIN; DO $d$ BEGIN PERFORM FROM loyalty.members WHERE member_key = 'm5' FOR UPDATE; END $d$$q$),
          'DO', 'session b holds due member m5');
CREATE TEMP TABLE run1 AS
SELECT * FROM dblink('s', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 50, workers => 3)$$)
           AS t(task text, members bigint, entries bigint, points bigint);
SELECT is((SELECT array_agg(row(task, members, entries, points)::text ORDER BY task) FROM run1),
          (SELECT array_agg(x ORDER BY x) FROM dblink('s', $$
               SELECT row('expire', count(*), sum(cardinality(array_positions(kinds, 'expire'))),
                          -sum((SELECT sum(p) FROM unnest(points) p)))::text
                 FROM expected WHERE cardinality(kinds) > 0 AND member_key <> 'm5'
               UNION ALL SELECT row('inactivity', 0, 0, 0)::text
               UNION ALL SELECT row('release', NULL, count(*), NULL)::text
                 FROM expected, unnest(kinds) k WHERE k = 'release' AND member_key <> 'm5'
               UNION ALL SELECT row('tier', 0, 0, NULL)::text$$) AS t(x text)),
          '3 workers in ranges of 50 members: what they report is what settling every due member but m5 writes');
SELECT is((SELECT members FROM run1 WHERE task = 'expire'), 1333::bigint,
          '1,333 of the 1,334 due members settled');
SELECT is((SELECT n FROM dblink('s', $$
              SELECT count(*) FROM expected x JOIN loyalty.members m USING (member_key)
               WHERE m.balance::text IS DISTINCT FROM CASE WHEN x.member_key = 'm5' OR cardinality(x.kinds) = 0
                                                           THEN m.balance ELSE x.remaining END::text$$) AS t(n bigint)),
          0::bigint, 'every settled member holds the lots that settling leaves');
SELECT is((SELECT n FROM dblink('s', $$
              SELECT count(*) FROM (
                (SELECT member_key, kind, points, lots::text, effective_at FROM loyalty.ledger
                  WHERE kind IN ('release', 'expire')
                 EXCEPT ALL
                 SELECT x.member_key, u.* FROM expected x,
                        unnest(x.kinds, x.points, x.entry_lots::text[], x.effective) u
                  WHERE x.member_key <> 'm5')
                UNION ALL
                (SELECT x.member_key, u.* FROM expected x,
                        unnest(x.kinds, x.points, x.entry_lots::text[], x.effective) u
                  WHERE x.member_key <> 'm5'
                 EXCEPT ALL
                 SELECT member_key, kind, points, lots::text, effective_at FROM loyalty.ledger
                  WHERE kind IN ('release', 'expire'))) d$$) AS t(n bigint)),
          0::bigint, 'the ledger holds exactly the release and expire entries of those members, once each');
SELECT is((SELECT k FROM dblink('s', $$SELECT string_agg(member_key, ',') FROM loyalty.members
                                       WHERE next_event_at <= '2025-07-01'$$) AS t(k text)),
          'm5', 'only the locked member is left due');
SELECT is(dblink_exec('b', 'ROLLBACK'), 'ROLLBACK', 'session b lets m5 go');
SELECT is((SELECT row(members, entries)::text
             FROM dblink('s', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', workers => 2)$$)
                  AS t(task text, members bigint, entries bigint, points bigint) WHERE task = 'expire'),
          row(1, 1)::text, 'the next run catches m5');
SELECT is((SELECT sum(entries) FROM dblink('s', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', workers => 2)$$)
                  AS t(task text, members bigint, entries bigint, points bigint)),
          0::numeric, 'a third run finds nothing to do');
SELECT is((SELECT n FROM dblink('s', 'SELECT count(*) FROM loyalty.verify()') AS t(n bigint)),
          0::bigint, 'verify() is clean');

-- the workers commit on their own: a rollback of the caller keeps their work
\o /dev/null
SELECT dblink_exec('s', $$CALL public.add_members('r', 300, 2)$$);
\o
SELECT is(dblink_exec('b', $$BEGIN; SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 7, workers => 2); ROLLBACK$$),
          'ROLLBACK', 'a caller rolls back after run_maintenance with workers');
SELECT is((SELECT n FROM dblink('s', $$SELECT count(*) FROM loyalty.members WHERE next_event_at <= '2025-07-01'$$)
                  AS t(n bigint)),
          0::bigint, 'the 150 members the workers settled stay settled');

-- an error in a worker stops them all and is raised in the caller with its SQLSTATE
\o /dev/null
SELECT dblink_exec('s', $$
    CALL public.add_members('e', 400, 2);
    CREATE FUNCTION public.fail_e201() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.member_key = 'e201' THEN
            RAISE EXCEPTION 'refused for e201' USING ERRCODE = 'P0042', DETAIL = 'a test trigger';
        END IF;
        RETURN NEW;
    END $f$;
    CREATE TRIGGER fail_e201 BEFORE INSERT ON loyalty.ledger FOR EACH ROW EXECUTE FUNCTION public.fail_e201();
$$);
\o
SELECT throws_ok($$SELECT * FROM dblink('s', 'SELECT * FROM loyalty.run_maintenance(''2025-07-01'', batch_size => 5, workers => 2)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 'P0042', 'refused for e201', 'a worker''s error reaches the caller with its SQLSTATE and message');
SELECT ok((SELECT n FROM dblink('s', $$SELECT count(*) FROM loyalty.members
                                       WHERE member_key = 'e201' AND next_event_at <= '2025-07-01'$$)
                  AS t(n bigint)) = 1, 'the failed batch wrote nothing: e201 is still due');
\o /dev/null
SELECT dblink_exec('s', 'DROP TRIGGER fail_e201 ON loyalty.ledger');
\o
SELECT ok((SELECT sum(entries) FROM dblink('s', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 5, workers => 2)$$)
                  AS t(task text, members bigint, entries bigint, points bigint)) > 0,
          'after the error, a new run settles the rest');
SELECT is((SELECT n FROM dblink('s', $$
              SELECT count(*) FROM (SELECT m.member_key FROM loyalty.members m
                                      LEFT JOIN loyalty.ledger l ON l.program_id = m.program_id
                                       AND l.member_key = m.member_key AND l.kind IN ('release', 'expire')
                                     WHERE m.member_key LIKE 'e%' AND (substr(m.member_key, 2)::int) % 2 <> 0
                                     GROUP BY m.member_key HAVING count(l.seq) <> 2) d$$) AS t(n bigint)),
          0::bigint, 'every due member has one release and one expiry: no batch was lost or written twice');
SELECT is((SELECT n FROM dblink('s', $$SELECT count(*) FROM loyalty.members WHERE next_event_at <= '2025-07-01'$$)
                  AS t(n bigint)),
          0::bigint, 'nothing is left due');
SELECT is((SELECT n FROM dblink('s', 'SELECT count(*) FROM loyalty.verify()') AS t(n bigint)),
          0::bigint, 'verify() is clean after the failed run and the one after it');

-- a caller holding a table lock the workers need: they give up after the
-- caller's lock_timeout instead of waiting for it forever
\o /dev/null
SELECT dblink_exec('s', $$CALL public.add_members('t', 20, 2)$$);
\o
-- (statement_timeout: without the workers' lock_timeout this fails, not hangs)
SELECT is(dblink_exec('b', $$BEGIN; LOCK TABLE loyalty.ledger IN SHARE MODE; SET LOCAL lock_timeout = '300ms';
                             SET LOCAL statement_timeout = '10s'$$),
          'SET', 'a caller holds the ledger in SHARE mode');
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT * FROM loyalty.run_maintenance(''2025-07-01'', workers => 1)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 '55P03', 'canceling statement due to lock timeout',
                 'the worker gives up after the caller''s lock_timeout, and the caller gets its error');
\o /dev/null
SELECT dblink_exec('b', 'ROLLBACK');
\o
SELECT is((SELECT members FROM dblink('s', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', workers => 2)$$)
                  AS t(task text, members bigint, entries bigint, points bigint) WHERE task = 'expire'),
          10::bigint, 'once the lock is gone, the next run settles those 10 members');

-- arguments and the transaction the caller is in
SELECT throws_ok($$SELECT * FROM dblink('s', 'SELECT * FROM loyalty.run_maintenance(now(), workers => -1)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 '22023', 'workers must be 0 or more', 'a negative number of workers is refused');
SELECT throws_ok($$SELECT * FROM dblink('s', 'SELECT * FROM loyalty.run_maintenance(now(), workers => 100000)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 '22023', NULL, 'more workers than max_worker_processes is refused');
\o /dev/null
SELECT dblink_exec('b', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
\o
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT * FROM loyalty.run_maintenance(now(), workers => 2)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 '25000', 'run_maintenance with workers needs READ COMMITTED',
                 'workers are refused in a REPEATABLE READ transaction, which would not see their work');

\o /dev/null
SELECT dblink_exec('b', 'ROLLBACK');
SELECT dblink_exec('b', 'BEGIN READ ONLY');
\o
SELECT throws_ok($$SELECT * FROM dblink('b', 'SELECT * FROM loyalty.run_maintenance(now(), workers => 2)')
                          AS t(task text, members bigint, entries bigint, points bigint)$$,
                 '25006', 'cannot execute run_maintenance with workers in a read-only transaction',
                 'workers are refused in a read-only transaction: they would write what it may not');
\o /dev/null
SELECT dblink_exec('b', 'ROLLBACK');
\o

-- a caller terminated with pg_terminate_backend stops its workers, as a
-- cancelled one does: 200 members due, the worker made to wait for the
-- ledger (session c holds it), the caller terminated, the ledger let go
\o /dev/null
SELECT dblink_exec('s', $$CALL public.add_members('k', 200, 1000000)$$);
SELECT dblink_exec('c', 'BEGIN; LOCK TABLE loyalty.ledger IN SHARE MODE');
SELECT pid AS caller_pid FROM dblink('b', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SELECT dblink_exec('b', $$SET lock_timeout = '60s'$$);
SELECT dblink_send_query('b', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 10, workers => 1)$$);
\o
-- true once the query returns true (polled for up to 10 s)
CREATE FUNCTION pg_temp.eventually(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE r boolean;
BEGIN
    FOR i IN 1 .. 1000 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE q INTO r;
        IF r THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT ok(pg_temp.eventually($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'loyalty maintenance'
                                  AND datname = 'loyalty_workers' AND wait_event_type = 'Lock')$$),
          'the worker waits for the ledger');
SELECT ok(pg_terminate_backend(:caller_pid, 10000), 'the caller is terminated');
\o /dev/null
SELECT dblink_exec('c', 'ROLLBACK');
\o
SELECT ok(pg_temp.eventually($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'loyalty maintenance'
                                  AND datname = 'loyalty_workers')$$),
          'its worker is gone too');
SELECT is((SELECT n FROM dblink('s', $$SELECT count(*) FROM loyalty.members
                                       WHERE member_key LIKE 'k%' AND next_event_at <= '2025-07-01'$$)
                  AS t(n bigint)),
          200::bigint, 'the worker stopped at once: the 200 members it would have settled are still due');
SELECT is((SELECT n FROM dblink('s', 'SELECT count(*) FROM loyalty.verify()') AS t(n bigint)),
          0::bigint, 'verify() is clean after the terminated run');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
\o
SELECT is(dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_workers'), 'DROP DATABASE',
          'workers database dropped');

SELECT * FROM finish();
ROLLBACK;
