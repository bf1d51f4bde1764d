-- Progress of run_maintenance and refresh_reports: the view
-- loyalty.maintenance_progress, read from another session while a run is
-- held at gates.  A trigger on the ledger and on tier_history waits for an
-- advisory lock when it writes for a gate member (k035, k115, s025, i01,
-- c15); session c holds those locks and lets the run through one gate at a
-- time, and session s reads the view in between.  The run (session b)
-- commits what its workers write, so the members live in a database of
-- their own, written through dblink.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(23);

\set db loyalty_progress
\ir lib/dblink_sessions.psql
\o /dev/null
SELECT dblink_exec('s', $$
    SET TimeZone = 'UTC';
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval,
                                  time_zone, is_default, tier_window_months, tier_validity_months)
    VALUES ('w', 'Workers', 'after', '12 months', '14 days', 'Europe/Berlin', true, 1, 1);
    INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone)
    VALUES ('idle', 'Inactivity', 'inactivity', '30 days', 'UTC');
    INSERT INTO loyalty.tiers (program_id, name, rank, min_orders)
    SELECT id, t.name, t.rank, t.min_orders
      FROM loyalty.programs, (VALUES ('Bronze', 0, NULL::bigint), ('Silver', 1, 1)) AS t(name, rank, min_orders)
     WHERE code = 'w';
    -- n members prefix001.., each with a lot that expired on 1 June 2025 and
    -- pending points released on 15 June, and the matching ledger entries
    CREATE PROCEDURE public.add_members(prefix text, n int)
    LANGUAGE sql AS $f$
        INSERT INTO loyalty.members (program_id, member_key, balance, last_activity_at)
        SELECT 1, prefix || lpad(i::text, 3, '0'),
               loyalty.lots_add_pending(loyalty.lots_add('{}', 100, '2025-06-01 00:00+02'), 20,
                                        '2025-06-15 00:00+02', '2026-06-15 00:00+02'),
               '2025-06-01 00:00+02'
          FROM generate_series(1, n) i;
        INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
        SELECT 1, m.member_key, row_number() OVER (PARTITION BY m.member_key),
               CASE e.state WHEN 'lot' THEN 'earn' ELSE 'pending' END, e.points,
               CASE e.state WHEN 'lot' THEN loyalty.lots_add('{}', e.points, e.expires_at)
                    ELSE loyalty.lots_add_pending('{}', e.points, e.release_at, e.expires_at) END,
               coalesce(e.release_at - interval '14 days', e.expires_at - interval '12 months')
          FROM loyalty.members m, loyalty.lots_entries(m.balance) e
         WHERE m.member_key LIKE prefix || '%';
    $f$;
    CALL public.add_members('k', 120);
    -- the gates: a write for one of the trigger's members waits while
    -- session c holds its lock
    CREATE FUNCTION public.gate() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.member_key = ANY (TG_ARGV) THEN
            PERFORM pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtext(NEW.member_key));
        END IF;
        RETURN NEW;
    END $f$;
    CREATE TRIGGER gate BEFORE INSERT ON loyalty.ledger
        FOR EACH ROW EXECUTE FUNCTION public.gate('k035', 'k115', 's025', 'i01');
    CREATE TRIGGER gate BEFORE INSERT ON loyalty.tier_history
        FOR EACH ROW EXECUTE FUNCTION public.gate('c15');
$$);
SELECT dblink_exec('c', $$SET lock_timeout = '10s'$$);
SELECT dblink_exec('b', $$SET statement_timeout = '60s'$$);
SELECT pid AS caller_pid FROM dblink('b', 'SELECT pg_backend_pid()') AS t(pid int) \gset
\o
CREATE TEMP TABLE caller AS SELECT :caller_pid AS pid;

-- The view in a line: each caller's phase and counts (and the lock it waits
-- for), then its workers; 'none' when nothing runs.  Workers report the
-- ranges done when they took their current one: only their number, phase,
-- total and waits are stable enough to compare.
CREATE FUNCTION pg_temp.progress() RETURNS text LANGUAGE sql AS $$
    SELECT x FROM dblink('s', format($q$
        SELECT coalesce(string_agg(x, '; ' ORDER BY o), 'none') FROM (
            SELECT 1 AS o, format('caller%%s: %%s, %%s of %%s %%s (%%s%%%%)%%s',
                                  CASE WHEN pid <> %s THEN ' (another)' ELSE '' END, phase, done, total, unit, percent,
                                  CASE WHEN wait_event_type = 'Lock' THEN ', waiting for a lock (' || wait_event || ')'
                                       ELSE '' END) AS x
              FROM loyalty.maintenance_progress WHERE backend = 'caller'
            UNION ALL
            SELECT 2, format('%%s workers for %%s: %%s, at most %%s of %%s %%s, %%s waiting for a lock',
                             count(*), CASE WHEN bool_and(w.caller_pid = %s) THEN 'it' ELSE 'another caller' END,
                             string_agg(DISTINCT w.phase, ','), max(w.done), max(w.total), max(w.unit),
                             count(*) FILTER (WHERE w.wait_event_type = 'Lock'))
              FROM loyalty.maintenance_progress w WHERE w.backend = 'worker' HAVING count(*) > 0) p$q$,
        (SELECT pid FROM pg_temp.caller), (SELECT pid FROM pg_temp.caller))) AS t(x text);
$$;
-- passes once the view says want (polled for up to 10 s), or fails with what it said last
CREATE FUNCTION pg_temp.progress_is(want text, description text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE seen text;
BEGIN
    FOR i IN 1 .. 500 LOOP
        seen := pg_temp.progress();
        EXIT WHEN seen = want;
        PERFORM pg_sleep(0.02);
    END LOOP;
    RETURN is(seen, want, description);
END $$;
-- close (session c takes its lock) or open a gate
CREATE FUNCTION pg_temp.gate(member text, open boolean) RETURNS text LANGUAGE sql AS $$
    SELECT x FROM dblink('c', format('SELECT pg_advisory_%slock(hashtext(%L))::text',
                                     CASE WHEN open THEN 'un' ELSE '' END, member)) AS t(x text) $$;

SELECT is(pg_temp.progress(), 'none', 'nothing runs: the view is empty');
SELECT is((SELECT x FROM dblink('s', $$
              SELECT string_agg(r || ' ' || has_table_privilege(r, 'loyalty.maintenance_progress', 'SELECT'), ', ')
                FROM unnest(ARRAY['loyalty_admin', 'loyalty_app', 'loyalty_reader']) r$$) AS t(x text)),
          'loyalty_admin true, loyalty_app false, loyalty_reader false',
          'loyalty_admin may read the view, loyalty_app and loyalty_reader may not');

------------------------------------------------------------------------------
-- With 2 workers: 120 due members in 13 ranges of 10 (the last one open and
-- empty); range 4 holds k035 and range 12 k115.  One worker stops at each
-- gate, the other ranges are settled.
------------------------------------------------------------------------------
\o /dev/null
SELECT pg_temp.gate('k035', false), pg_temp.gate('k115', false);
SELECT dblink_send_query('b', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 10, workers => 2)$$);
\o
SELECT pg_temp.progress_is('caller: releases and expiries, 10 of 13 ranges (76.9%); '
                           '2 workers for it: releases and expiries, at most 10 of 13 ranges, 2 waiting for a lock',
                           'each worker waits at a gate: 10 of 13 ranges are done, by the caller''s row and no more by the workers''');
SELECT is((SELECT row(started_at = query_start, updated_at >= started_at)::text
             FROM dblink('s', format($$SELECT p.started_at, p.updated_at, a.query_start
                                         FROM loyalty.maintenance_progress p JOIN pg_stat_activity a USING (pid)
                                        WHERE p.pid = %s$$, :caller_pid))
                  AS t(started_at timestamptz, updated_at timestamptz, query_start timestamptz)),
          '(t,t)', 'the caller''s run started with its call, and was last reported since');
SELECT is((SELECT array_agg(DISTINCT started_at = backend_start)::text
             FROM dblink('s', $$SELECT p.started_at, a.backend_start
                                  FROM loyalty.maintenance_progress p JOIN pg_stat_activity a USING (pid)
                                 WHERE p.backend = 'worker' AND a.backend_type = 'loyalty maintenance'$$)
                  AS t(started_at timestamptz, backend_start timestamptz)),
          '{t}', 'the workers'' rows are loyalty''s background workers, started when they were');
\o /dev/null
SELECT pg_temp.gate('k035', true);
\o
SELECT pg_temp.progress_is('caller: releases and expiries, 12 of 13 ranges (92.3%); '
                           '1 workers for it: releases and expiries, at most 10 of 13 ranges, 1 waiting for a lock',
                           'the first gate opened: its worker settled range 4 and the empty last range, and stopped; 12 of 13');
-- the next step, inactivity, counts the programs first: hold them, so that
-- the caller stays where the lot settlement ended
\o /dev/null
SELECT dblink_exec('c', 'BEGIN; LOCK TABLE loyalty.programs IN ACCESS EXCLUSIVE MODE');
SELECT pg_temp.gate('k115', true);
\o
SELECT pg_temp.progress_is('caller: releases and expiries, 13 of 13 ranges (100.0%), waiting for a lock (relation)',
                           'the second gate opened: the workers are gone and the caller reached 13 of 13 ranges');
\o /dev/null
SELECT dblink_exec('c', 'ROLLBACK');
\o
SELECT is((SELECT array_agg(row(task, members, entries)::text ORDER BY task)
             FROM dblink_get_result('b') AS t(task text, members bigint, entries bigint, points bigint)),
          ARRAY['(expire,120,120)', '(inactivity,0,0)', '(release,,120)', '(tier,0,0)'],
          'the run settled the 120 members');
\o /dev/null
SELECT * FROM dblink_get_result('b') AS t(task text, members bigint, entries bigint, points bigint);
\o
SELECT is(pg_temp.progress(), 'none', 'after the run the view is empty');
SELECT is((SELECT q FROM dblink('s', format('SELECT query FROM pg_stat_activity WHERE pid = %s', :caller_pid))
                  AS t(q text)),
          'SELECT * FROM loyalty.run_maintenance(''2025-07-01'', batch_size => 10, workers => 2)',
          'pg_stat_activity shows the caller''s statement again');

------------------------------------------------------------------------------
-- In the caller's transaction: every step in turn.  90 members due in
-- program w (c01..c30 from orders, s001..s060), batches of 10: s025 is in
-- the sixth.  Then i01's inactivity expiry (30 days after 1 January) in
-- program idle, then the tier reviews of c01..c30 (their one-month Silver
-- ended) in batches of 10, c15's in the second.
------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_exec('s', $$
    CALL public.add_members('s', 60);
    -- (written here: earn would settle it as of now(), the expiry included)
    INSERT INTO loyalty.members (program_id, member_key, balance, last_activity_at)
    VALUES (2, 'i01', loyalty.lots_add('{}', 100, 'infinity'), '2025-01-01 00:00+00');
    INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
    VALUES (2, 'i01', 1, 'earn', 100, loyalty.lots_add('{}', 100, 'infinity'), '2025-01-01 00:00+00');
    CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer text NOT NULL,
                                total numeric(10,2) NOT NULL, ordered_at timestamptz NOT NULL);
    SELECT loyalty.track_purchases('public.orders', 'customer', 'total', 'ordered_at', program => 'w');
    INSERT INTO public.orders (customer, total, ordered_at)
    SELECT 'c' || lpad(i::text, 2, '0'), 10 + i, '2025-03-01 00:00+00'::timestamptz + i * interval '1 minute'
      FROM generate_series(1, 30) i;
$$);
SELECT pg_temp.gate('s025', false), pg_temp.gate('i01', false), pg_temp.gate('c15', false);
SELECT dblink_send_query('b', $$SELECT * FROM loyalty.run_maintenance('2025-07-01', batch_size => 10)$$);
\o
SELECT pg_temp.progress_is('caller: releases and expiries, 50 of 90 members (55.6%), waiting for a lock (advisory)',
                           'releases and expiries: 5 batches of 10 members settled, the sixth waits at s025');
\o /dev/null
SELECT pg_temp.gate('s025', true);
\o
SELECT pg_temp.progress_is('caller: inactivity, 0 of 1 programs (0.0%), waiting for a lock (advisory)',
                           'inactivity: program idle, whose i01 waits at the gate');
\o /dev/null
SELECT pg_temp.gate('i01', true);
\o
SELECT pg_temp.progress_is('caller: tiers, 10 of 30 members (33.3%), waiting for a lock (advisory)',
                           'tiers: a batch of 10 reviewed, the second waits at c15');
\o /dev/null
SELECT pg_temp.gate('c15', true);
\o
SELECT is((SELECT array_agg(row(task, members, entries)::text ORDER BY task)
             FROM dblink_get_result('b') AS t(task text, members bigint, entries bigint, points bigint)),
          ARRAY['(expire,90,60)', '(inactivity,1,1)', '(release,,90)', '(tier,30,30)'],
          'the run settled the 90 members, expired i01''s points and reviewed the 30 tiers');
\o /dev/null
SELECT * FROM dblink_get_result('b') AS t(task text, members bigint, entries bigint, points bigint);
\o
SELECT is(pg_temp.progress(), 'none', 'after the serial run the view is empty');

------------------------------------------------------------------------------
-- refresh_reports: two materialized views; a lock on the orders, which
-- retention reads, holds the second
------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_exec('c', 'BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE');
SELECT dblink_send_query('b', 'SELECT loyalty.refresh_reports()');
\o
SELECT pg_temp.progress_is('caller: reports, 1 of 2 views (50.0%), waiting for a lock (relation)',
                           'refresh_reports: breakage_by_cohort refreshed, retention waits');
\o /dev/null
SELECT dblink_exec('c', 'ROLLBACK');
SELECT * FROM dblink_get_result('b') AS t(r text);
SELECT * FROM dblink_get_result('b') AS t(r text);
\o
SELECT is(pg_temp.progress(), 'none', 'after refresh_reports the view is empty');
SELECT is((SELECT q FROM dblink('s', format('SELECT query FROM pg_stat_activity WHERE pid = %s', :caller_pid))
                  AS t(q text)),
          'SELECT loyalty.refresh_reports()', 'and pg_stat_activity shows its statement again');

------------------------------------------------------------------------------
-- The view shows running sessions only: a session left idle with a report
-- as its last statement text (a run that failed) does not show
------------------------------------------------------------------------------
\o /dev/null
SELECT * FROM dblink('b', $$SELECT loyalty._progress('tiers', 1, 2, 'members')$$) AS t(x text);
\o
SELECT is((SELECT row(state, query)::text FROM dblink('s', format('SELECT state, query FROM pg_stat_activity WHERE pid = %s',
                                                                  :caller_pid)) AS t(state text, query text)),
          '(idle,"loyalty maintenance: tiers, 1 of 2 members")',
          'that session is idle now, its report its last statement text');
SELECT is(pg_temp.progress(), 'none', 'and the view does not show it');
SELECT throws_ok($$SELECT * FROM dblink('s', 'SELECT loyalty._progress(''Tiers!'', 1, 2, ''members'')') AS t(x text)$$,
                 'XX000', NULL, 'a report the view could not read is refused');

SELECT is((SELECT n FROM dblink('s', 'SELECT count(*) FROM loyalty.verify()') AS t(n bigint)),
          0::bigint, 'verify() is clean');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
\o
SELECT is(dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_progress'), 'DROP DATABASE',
          'progress database dropped');

SELECT * FROM finish();
ROLLBACK;
