-- Short, fixed-seed run of the input fuzzer (test/fuzz/fuzz.psql): 3000
-- text and binary inputs of loyalty.lots and loyalty.activity, malformed, truncated, mutated from
-- valid values and their lots_send form, and a few huge ones.  Each must be
-- accepted (and round-trip) or refused with a clear error: class 22, LY006
-- or 54000, never XX000.  A crash ends this file early (bad plan).  The long
-- run is test/fuzz/run.
\ir preamble.psql
CREATE EXTENSION loyalty;
\ir ../fuzz/fuzz.psql
SELECT plan(7);

SELECT setseed(0.4242);
SELECT is((SELECT count(*)::int FROM (SELECT fuzz.one(i) FROM generate_series(1, 3000) i) s),
          3000, '3000 inputs fuzzed, the server survived every one');
SELECT is((SELECT count(*)::int FROM fuzz.results WHERE NOT fuzz.acceptable(sqlstate)), 0,
          'every input was accepted or refused with SQLSTATE class 22, LY006 or 54000');
SELECT is((SELECT count(*)::int FROM fuzz.results WHERE sqlstate = 'roundtrip'), 0,
          'every accepted input round-trips');
SELECT cmp_ok((SELECT count(*)::int FROM fuzz.results WHERE form = 'text' AND sqlstate = 'ok'), '>', 20,
              'some mutated text inputs are accepted');
SELECT cmp_ok((SELECT count(*)::int FROM fuzz.results WHERE form = 'text' AND sqlstate <> 'ok'), '>', 1000,
              'most text inputs are refused');
SELECT cmp_ok((SELECT count(*)::int FROM fuzz.results WHERE form = 'binary' AND sqlstate = 'ok'), '>', 20,
              'some mutated binary inputs are accepted');
SELECT cmp_ok((SELECT count(*)::int FROM fuzz.results WHERE form = 'binary' AND sqlstate = '22P03'), '>', 1000,
              'most binary inputs are refused as invalid binary representation');

SELECT * FROM finish();
ROLLBACK;
