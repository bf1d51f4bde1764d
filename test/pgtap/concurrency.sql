-- Concurrent corrections of one tracked purchase, in two real sessions
-- (dblink), in a database of their own because both need committed data.
-- Found by test/stress/run: the change trigger read the ledger with the
-- statement's snapshot, older than the member lock it waited for (see
-- docs/reliability.md, "Bugs found").  Both cases failed before the fix.
\ir preamble.psql
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(7);

\set db loyalty_race
\ir lib/dblink_sessions.psql
\o /dev/null
SELECT dblink_exec('s', $$
    CREATE EXTENSION loyalty;
    INSERT INTO loyalty.programs (code, name, is_default) VALUES ('p', 'P', true);
    CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, status text NOT NULL DEFAULT 'paid');
    DO $d$ BEGIN PERFORM loyalty.track_purchases('orders', 'customer', 'total', status_column => 'status'); END $d$;
    INSERT INTO orders VALUES (1, 'ann', 100), (2, 'ann', 50), (3, 'ann', 1000);
    DO $d$ BEGIN PERFORM loyalty.redeem('ann', 1000); END $d$;
$$);
\o

-- b runs first_sql and holds its locks; c sends second_sql, which waits; b commits
CREATE FUNCTION pg_temp.race(first_sql text, second_sql text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    c_pid int := (SELECT pid FROM dblink('c', 'SELECT pg_backend_pid()') AS t(pid int));
    waited boolean;
BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM dblink_exec('b', first_sql);
    PERFORM dblink_send_query('c', second_sql);
    waited := pg_temp.blocked(c_pid);
    PERFORM dblink_exec('b', 'COMMIT');
    PERFORM * FROM dblink_get_result('c') AS t(status text);
    PERFORM * FROM dblink_get_result('c') AS t(status text);
    RETURN waited;
END $$;
CREATE FUNCTION pg_temp.net(reference text, member text) RETURNS bigint LANGUAGE sql AS $$
    SELECT n FROM dblink('s', format(
        'SELECT coalesce(sum(l.points), 0) FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key'
        ' WHERE l.reference = %L AND m.member_key = %L', reference, member)) AS t(n bigint)
$$;

-- a refund, and a DELETE of the same purchase waiting for it
SELECT ok(pg_temp.race($$UPDATE orders SET status = 'refunded' WHERE id = 1$$,
                       $$DELETE FROM orders WHERE id = 1$$),
          'the DELETE waited for the refund');
SELECT is(pg_temp.net('1', 'ann'), 0::bigint,
          'refund then concurrent DELETE: the purchase nets 0 points (was reversed twice: -100)');

-- a move to another customer, and a refund waiting for it
SELECT ok(pg_temp.race($$UPDATE orders SET customer = 'ben' WHERE id = 2$$,
                       $$UPDATE orders SET status = 'refunded' WHERE id = 2$$),
          'the refund waited for the move');
SELECT is(pg_temp.net('2', 'ann'), 0::bigint, 'the old customer nets 0 for the moved purchase');
SELECT is(pg_temp.net('2', 'ben'), 0::bigint,
          'move then concurrent refund: the new customer nets 0 (kept the 50 points)');

SELECT is((SELECT n FROM dblink('s', 'SELECT count(*) FROM loyalty.verify()') AS t(n bigint)), 0::bigint,
          'verify() is clean: balances match the ledger either way');

\o /dev/null
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
\o
SELECT is(dblink_exec(:'conn' || ' dbname=postgres', 'DROP DATABASE loyalty_race'), 'DROP DATABASE',
          'race database dropped');

SELECT * FROM finish();
ROLLBACK;
