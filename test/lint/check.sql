-- Run by test/lint/run in a database with loyalty and plpgsql_check: every
-- PL/pgSQL function of schema loyalty through plpgsql_check_function_tb,
-- every warning class on, in-comment options off (what is allowed is in
-- test/lint/allowed.txt only, given as psql variable "allowed").  Prints
-- one line per finding, tab-separated:
--   error    function  line  message[: detail]
--   warning  ...       (not in allowed.txt)
--   allowed  ...       (listed in allowed.txt)
--   stale    function  -     warning   (a line of allowed.txt that matched nothing)
-- then "functions <N>" and "canary <errors found in a function with one bug>".
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE TEMP TABLE allowed AS
SELECT btrim(split_part(l, ' | ', 1)) AS fn, btrim(split_part(l, ' | ', 2)) AS warning
  FROM string_to_table(:'allowed', E'\n') AS a(l)
 WHERE l !~ '^\s*(#|$)';

-- Trigger functions are checked against each table a trigger of theirs is
-- on (with its transition tables), event trigger functions as they are; a
-- trigger function on no table cannot be checked and is an error.
CREATE TEMP TABLE targets AS
SELECT p.oid AS fn, p.prorettype = 'trigger'::regtype AS is_trigger, t.tgrelid, t.tgoldtable, t.tgnewtable
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang
  LEFT JOIN (SELECT DISTINCT tgfoid, tgrelid, tgoldtable, tgnewtable
               FROM pg_trigger WHERE NOT tgisinternal) t
    ON t.tgfoid = p.oid AND p.prorettype = 'trigger'::regtype
 WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'loyalty'::regnamespace;

CREATE TEMP TABLE findings AS
SELECT t.fn::regprocedure::text AS fn, c.lineno, c.level,
       c.message || coalesce(': ' || nullif(c.detail, ''), '') AS warning
  FROM targets t
 CROSS JOIN LATERAL plpgsql_check_function_tb(t.fn, coalesce(t.tgrelid, 0),
       fatal_errors => false, other_warnings => true, extra_warnings => true,
       performance_warnings => true, security_warnings => true, compatibility_warnings => true,
       oldtable => t.tgoldtable, newtable => t.tgnewtable, use_incomment_options => false) c
 WHERE NOT t.is_trigger OR t.tgrelid IS NOT NULL
UNION ALL
SELECT t.fn::regprocedure::text, NULL, 'error', 'trigger function on no table: nothing to check it against'
  FROM targets t WHERE t.is_trigger AND t.tgrelid IS NULL;

\pset format unaligned
\pset tuples_only on
\pset fieldsep '\t'
SELECT CASE WHEN f.level = 'error' THEN 'error'
            WHEN EXISTS (SELECT 1 FROM allowed a WHERE a.fn = f.fn AND a.warning = f.warning) THEN 'allowed'
            ELSE 'warning' END,
       f.fn, coalesce(f.lineno::text, '-'), f.level || ': ' || f.warning
  FROM findings f
UNION ALL
SELECT 'stale', a.fn, '-', a.warning
  FROM allowed a
 WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.fn = a.fn AND f.warning = a.warning AND f.level <> 'error')
 ORDER BY 1, 2, 3;
SELECT 'functions', count(DISTINCT fn) FROM targets;

-- the check itself works: a function with one bug in it gives one error
CREATE FUNCTION pg_temp.lint_canary() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT count(no_such_column) FROM loyalty.members);
END $$;
SELECT 'canary', count(*) FROM plpgsql_check_function_tb('pg_temp.lint_canary()', fatal_errors => false) c
 WHERE c.level = 'error';
