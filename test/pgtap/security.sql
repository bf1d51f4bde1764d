-- Security: who runs what, program isolation, the append-only ledger.
-- A role without loyalty privileges: a throwaway role stands for an
-- application login here (the transaction is rolled back).
\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(30);

-- 1. Functions that write.  Every VOLATILE function of schema loyalty either
-- runs as the extension owner (SECURITY DEFINER) with a pinned search_path,
-- or is listed here as running as the caller, with the reason (also in
-- docs/reliability.md).  A new writing function (transfer, run_maintenance,
-- ...) fails this test until it is one or the other.
CREATE TEMP TABLE runs_as_caller (fn text PRIMARY KEY, why text);
INSERT INTO runs_as_caller VALUES
  ('loyalty.enroll(anyelement,text,timestamp with time zone)', 'converts the key as the caller, then calls the SECURITY DEFINER text version'),
  ('loyalty.earn(anyelement,bigint,text,timestamp with time zone,text)', 'the same'),
  ('loyalty.redeem(anyelement,bigint,text,text)', 'the same'),
  ('loyalty.adjust(anyelement,bigint,text,text,text)', 'the same'),
  ('loyalty.track_purchases(regclass,name,name,name,name[],name,text[],name,name,name,text)', 'administration: needs rights on loyalty.tracked_tables and on the table'),
  ('loyalty.untrack_purchases(regclass,text)', 'administration, as track_purchases'),
  ('loyalty._drop_triggers(regclass,integer)', 'helper of track/untrack_purchases'),
  ('loyalty._partition_triggers(regclass,integer)', 'helper of track_purchases (as the caller) and of the event trigger loyalty_partition_guard'),
  ('loyalty._tracked_table_save(regclass,integer,name,name,name,name[],name,text[],name,name,name)', 'C: checks the calling role''s TRIGGER privilege, the table and its column types, then writes tracked_tables as its owner'),
  ('loyalty._tracked_table_deactivate(regclass,integer)', 'C: the same check, then marks the row inactive as its owner'),
  ('loyalty._kpi_customers_save(integer,regclass,name)', 'C: checks the calling role''s SELECT on the key column, the table and the column type, then writes kpi_settings as its owner'),
  ('loyalty.set_kpi_customers(regclass,name,text)', 'administration: resolves the program and calls _kpi_customers_save as the caller'),
  ('loyalty._member(loyalty.programs,text,boolean)', 'internal helper, called by SECURITY DEFINER functions'),
  ('loyalty._settle(loyalty.members,timestamp with time zone)', 'the same'),
  ('loyalty._replayed(loyalty.programs,text,text,text,bigint)', 'the same'),
  ('loyalty._append(loyalty.programs,text,text,bigint,loyalty.lots,text,text,timestamp with time zone)', 'the same'),
  ('loyalty.set_tier(anyelement,text,timestamp with time zone,text,text)', 'converts the key as the caller, then calls the SECURITY DEFINER text version'),
  ('loyalty.redeem_reward(anyelement,text,text,text)', 'the same'),
  ('loyalty.transfer(anyelement,anyelement,bigint,text,text)', 'the same'),
  ('loyalty.donate(anyelement,text,bigint,text,text)', 'the same'),
  ('loyalty.record_event(anyelement,text,text,timestamp with time zone,text,text)', 'the same'),
  ('loyalty._settle_lots(integer,text,loyalty.lots,timestamp with time zone)', 'internal helper, called by SECURITY DEFINER functions'),
  ('loyalty._next_seq(integer,text)', 'internal helper, called by SECURITY DEFINER functions'),
  ('loyalty._settled(loyalty.programs,loyalty.members)', 'the same'),
  ('loyalty._after_write(loyalty.programs,loyalty.members,loyalty.lots)', 'the same'),
  ('loyalty._rebuild(loyalty.members,timestamp with time zone)', 'the same (and the purchase triggers)'),
  ('loyalty._expire_inactive(integer,text,loyalty.lots,timestamp with time zone)', 'the same'),
  ('loyalty._timeline_step(internal,integer,text,timestamp with time zone,timestamp with time zone,text,bigint,loyalty.lots,text,timestamp with time zone,bigint)', 'C: the transition function of the _timeline aggregate; no SQL'),
  ('loyalty._timeline_final(internal)', 'C: its final function; reads the program cache only'),
  ('loyalty._maintain_lots(timestamp with time zone,integer,integer,text,integer,text)', 'the same (run_maintenance and its workers)'),
  ('loyalty._maintain_parallel(timestamp with time zone,integer,integer)', 'the same (run_maintenance with workers; starts background workers that connect as the caller)'),
  ('loyalty._maintain_inactive(timestamp with time zone,integer)', 'the same (run_maintenance)'),
  ('loyalty._maintain_tiers(timestamp with time zone,integer)', 'the same (run_maintenance)'),
  ('loyalty._progress(text,bigint,bigint,text)', 'C: sets this session''s own pg_stat_activity query text (run_maintenance, refresh_reports); no SQL'),
  ('loyalty._tier_apply(loyalty.members,loyalty.members,text,text)', 'the same (set_tier, run_maintenance, purchase triggers)'),
  ('loyalty._tier_review(loyalty.members,timestamp with time zone)', 'the same (run_maintenance)'),
  ('loyalty._tier_upgrade(integer,text,text,timestamp with time zone)', 'the same (purchase triggers)'),
  ('loyalty._transfer(loyalty.programs,text,text,bigint,text,boolean)', 'the same (transfer, donate)'),
  ('loyalty.config_changed()', 'statement trigger on configuration tables: only invalidates caches'),
  ('loyalty.earning_rule_check()', 'row trigger on earning_rules: reads loyalty''s tables as their owner, of the tracked tables only the catalog, and parses with built-in input functions'),
  ('loyalty.ledger_append_only()', 'trigger that only raises LY005');

CREATE TEMP VIEW fns AS
SELECT p.oid::regprocedure::text AS fn, p.prosecdef, p.proconfig, p.provolatile, l.lanname AS lang
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = 'loyalty'::regnamespace;

SELECT is_empty($$SELECT fn FROM fns WHERE provolatile = 'v' AND NOT prosecdef
                   AND fn NOT IN (SELECT fn FROM runs_as_caller)$$,
                'every volatile function is SECURITY DEFINER or documented as running as the caller');
SELECT is_empty($$SELECT fn FROM fns WHERE prosecdef
                   AND NOT coalesce('search_path=pg_catalog, loyalty, pg_temp' = ANY (proconfig)
                                    OR 'search_path=pg_catalog, pg_temp' = ANY (proconfig), false)$$,
                'every SECURITY DEFINER function pins search_path to pg_catalog first and pg_temp last');
SELECT is_empty($$SELECT fn FROM runs_as_caller EXCEPT SELECT fn FROM fns$$,
                'the list of functions running as the caller names existing functions');
SELECT ok((SELECT bool_and(prosecdef) FROM fns WHERE fn IN (
             'loyalty.enroll(text,text,timestamp with time zone)',
             'loyalty.earn(text,bigint,text,timestamp with time zone,text)',
             'loyalty.redeem(text,bigint,text,text)',
             'loyalty.adjust(text,bigint,text,text,text)',
             'loyalty.purchase_insert()', 'loyalty.purchase_change()')),
          'enroll, earn, redeem, adjust and the purchase triggers run as the extension owner');
SELECT is_empty($$SELECT fn FROM fns WHERE fn IN (SELECT fn FROM runs_as_caller)
                   AND proconfig IS NULL
                   AND NOT (fn LIKE '%(anyelement,%' AND lang = 'sql')
                   AND lang <> 'c'$$,
                'functions running as the caller pin search_path, except the SQL key wrappers (they call loyalty.* by name) and C code');

-- a function or operator planted on the caller's search_path is not used
CREATE SCHEMA evil;
CREATE FUNCTION evil.lots_merge(loyalty.lots, loyalty.lots) RETURNS loyalty.lots
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql RETURN timestamptz '2000-01-01';
INSERT INTO loyalty.programs (code, name, is_default) VALUES ('a', 'Program A', true);
INSERT INTO loyalty.programs (code, name) VALUES ('b', 'Program B');
SELECT ok((loyalty.enroll('alice')).member_key IS NOT NULL, 'alice enrolled in program a');
SET search_path = evil, public;
SELECT lives_ok($$SELECT loyalty.earn('alice', 100, 'e1')$$,
                'earn ignores functions planted on the caller''s search_path');
RESET search_path;

-- 2. A member function writes only its own program's data.
SELECT throws_ok($$SELECT loyalty.earn('alice', 10, 'e2', program => 'b')$$, 'LY002', NULL,
                 'earn in a program the member is not enrolled in: LY002');
SELECT throws_ok($$SELECT loyalty.redeem('alice', 10, 'r1', program => 'b')$$, 'LY002', NULL,
                 'redeem in another program: LY002');
SELECT throws_ok($$SELECT loyalty.adjust('alice', 5, 'goodwill', program => 'nope')$$, 'LY003', NULL,
                 'an unknown program code: LY003');
SELECT is((SELECT count(*)::int FROM loyalty.ledger WHERE program_id = (SELECT id FROM loyalty.programs WHERE code = 'b')),
          0, 'program b has no ledger entries');
SELECT ok((loyalty.enroll('alice', 'b')).member_key IS NOT NULL, 'alice enrolled in program b too');
SELECT throws_ok($$SELECT loyalty.redeem('alice', 10, 'r1', program => 'b')$$, 'LY001', NULL,
                 'b''s alice cannot spend a''s points');
SELECT isnt((loyalty.earn('alice', 7, 'e1', program => 'b')).program_id,
            (SELECT program_id FROM loyalty.ledger WHERE reference = 'e1' AND program_id = (SELECT id FROM loyalty.programs WHERE code = 'a')),
            'a reference used in program a is a new request in program b');
SELECT is(ARRAY[loyalty.balance('alice', program => 'a'), loyalty.balance('alice', program => 'b')],
          ARRAY[100, 7]::bigint[], 'each program keeps its own balance');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() is clean');

-- 3. An ordinary role (an application login with USAGE on loyalty).
CREATE ROLE loyalty_security_probe;
GRANT USAGE ON SCHEMA loyalty TO loyalty_security_probe;
GRANT CREATE, USAGE ON SCHEMA public TO loyalty_security_probe;
CREATE TABLE public.orders (id int PRIMARY KEY, customer text, total numeric);
SELECT ok(loyalty.track_purchases('public.orders', 'customer', 'total', program => 'b') > 0, 'orders tracked for program b');
GRANT INSERT, UPDATE, DELETE, SELECT ON public.orders TO loyalty_security_probe;
SELECT id AS orders_track FROM loyalty.tracked_tables WHERE table_name = 'public.orders'::regclass \gset
SET ROLE loyalty_security_probe;
SELECT throws_ok($$INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
                   VALUES (1, 'alice', 1, 'earn', 1000, '{1000 until infinity}', now())$$, '42501', NULL,
                 'an ordinary role cannot insert into the ledger');
SELECT throws_ok($$UPDATE loyalty.members SET balance = '{1000 until infinity}'$$, '42501', NULL,
                 'an ordinary role cannot write balances');
SELECT throws_ok($$SELECT loyalty._settle(m, now()) FROM loyalty.members m$$, '42501', NULL,
                 'internal helpers run as the caller: no rights, no writes');
SELECT throws_ok($$SELECT loyalty.track_purchases('public.orders', 'customer', 'total', program => 'a')$$, '42501', NULL,
                 'an ordinary role cannot track tables (or move one to another program)');
SELECT lives_ok($$INSERT INTO public.orders VALUES (1, 'bob', 25)$$,
                'inserting into the tracked table needs no rights on loyalty');
-- a trigger of the role's own table that names another table's tracking id
CREATE TABLE public.forged (id int PRIMARY KEY, customer text, total numeric);
SELECT throws_ok(format('CREATE TRIGGER forge AFTER INSERT ON public.forged REFERENCING NEW TABLE AS loyalty_new_purchases'
                        ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
                        :'orders_track'), '42501', NULL,
                 'PUBLIC may not execute the trigger functions: the role cannot attach them');
-- granted anyway, the C code still checks the tracking id against the table
RESET ROLE;
GRANT EXECUTE ON FUNCTION loyalty.purchase_insert() TO loyalty_security_probe;
SET ROLE loyalty_security_probe;
SELECT lives_ok(format('CREATE TRIGGER forge AFTER INSERT ON public.forged REFERENCING NEW TABLE AS loyalty_new_purchases'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
                       :'orders_track'),
                'the role can attach the purchase trigger to its own table');
SELECT throws_ok($$INSERT INTO public.forged VALUES (1, 'bob', 100000)$$, '55000', NULL,
                 'a forged tracking id is refused: the id must name the table the trigger fires on');
RESET ROLE;
SELECT is((SELECT sum(points)::int FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key
            WHERE m.member_key = 'bob'), 25, 'bob earned only the tracked purchase, in program b');

-- 4. The ledger is append-only, even for its owner.
SELECT throws_ok($$UPDATE loyalty.ledger SET points = points + 1$$, 'LY005', NULL, 'UPDATE of the ledger: LY005');
SELECT throws_ok($$DELETE FROM loyalty.ledger$$, 'LY005', NULL, 'DELETE from the ledger: LY005');
SELECT throws_ok($$TRUNCATE loyalty.ledger$$, 'LY005', NULL, 'TRUNCATE of the ledger: LY005');
SELECT is((SELECT count(*)::int FROM loyalty.ledger), 3, 'the ledger still holds its 3 entries');

SELECT * FROM finish();
ROLLBACK;
