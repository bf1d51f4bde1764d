\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(123);

-- binary receive of raw bytes
\set recv_type loyalty.activity
\ir lib/binary_recv.psql
-- "SQLSTATE: detail" of the error running a statement, or 'no error'
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text; det text;
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || coalesce(det, '');
END
$$;
CREATE FUNCTION pg_temp.recv_error(b bytea) RETURNS text
LANGUAGE sql AS $$ SELECT pg_temp.err(format('SELECT pg_temp.recv(%L::bytea)', b)) $$;
-- binary pieces: header (count, before) and one bucket
CREATE FUNCTION pg_temp.hdr(n int, spend bigint, orders bigint, points bigint) RETURNS bytea
LANGUAGE sql AS $$ SELECT int4send(n) || int8send(spend) || int8send(orders) || int8send(points) $$;
CREATE FUNCTION pg_temp.bkt(month int, spend bigint, orders bigint, points bigint) RETURNS bytea
LANGUAGE sql AS $$ SELECT int4send(month) || int8send(spend) || int8send(orders) || int8send(points) $$;
-- n consecutive months from first, each spend 1 orders 1 points 10
CREATE FUNCTION pg_temp.months(first date, n int) RETURNS loyalty.activity
LANGUAGE plpgsql AS $$
DECLARE
	a loyalty.activity := '{}';
BEGIN
	FOR i IN 0 .. n - 1 LOOP
		a := loyalty.activity_add(a, (first + make_interval(months => i))::date, 1, 1, 10);
	END LOOP;
	RETURN a;
END
$$;
-- text of n consecutive months from first
CREATE FUNCTION pg_temp.months_text(first date, n int) RETURNS text
LANGUAGE sql AS $$
	SELECT '{' || string_agg(format('%s: spend 1 orders 1 points 1', to_char(d, 'YYYY-MM')), ', ' ORDER BY d) || '}'
	  FROM generate_series(first, first + make_interval(months => n - 1), '1 month') d
$$;
-- throws_ok for text input refused with the message <message>: "<input>"
CREATE FUNCTION pg_temp.refuses(input text, code text, message text, description text) RETURNS text
LANGUAGE sql AS $$
	SELECT throws_ok(format('SELECT %L::loyalty.activity', input), code, format('%s: "%s"', message, input), description)
$$;
\set syntax '''invalid input syntax for type loyalty.activity'''
CREATE FUNCTION pg_temp.sum(a loyalty.activity, f date, t date) RETURNS text
LANGUAGE sql AS $$ SELECT format('%s %s %s', spend, orders, points) FROM loyalty.activity_sum(a, f, t) $$;
CREATE FUNCTION pg_temp.total(a loyalty.activity) RETURNS text
LANGUAGE sql AS $$ SELECT format('%s %s %s', spend, orders, points) FROM loyalty.activity_total(a) $$;

-- months since year 0: 2026-01 = 2026 * 12 = 24312
\set m_2026_01 24312
\set m_2026_02 24313
\set sample '''{before: spend 10.5 orders 1 points 10, 2025-12: spend 5 orders 1 points 5, 2026-01: spend 120.5 orders 3 points 240, 2026-02: spend 0 orders -1 points -20, 2026-03: spend 7.25 orders 1 points 7}'''

------------------------------------------------------------------------------
-- Text input and output
------------------------------------------------------------------------------
SELECT is('{}'::loyalty.activity::text, '{}', 'empty activity prints as {}');
SELECT is('  {   }  '::loyalty.activity::text, '{}', 'whitespace inside and around the braces is ignored');
SELECT is('{before: spend 10.5 orders 1 points 10, 2026-01: spend 120.5 orders 3 points 240, 2026-02: spend 0 orders -1 points -20}'::loyalty.activity::text,
		  '{before: spend 10.5 orders 1 points 10, 2026-01: spend 120.5 orders 3 points 240, 2026-02: spend 0 orders -1 points -20}',
		  'canonical text reads back unchanged');
SELECT is(E' {\tBEFORE :SPEND 10.50  Orders 1 points 10 ,2026-01 :  spend 120.5000 orders\n3 POINTS 240 } '::loyalty.activity::text,
		  '{before: spend 10.5 orders 1 points 10, 2026-01: spend 120.5 orders 3 points 240}',
		  'extra whitespace and keywords in any case are accepted; output is canonical');
SELECT is('{before: spend 0 orders 0 points 0, 2026-01: spend 1 orders 1 points 1}'::loyalty.activity::text,
		  '{2026-01: spend 1 orders 1 points 1}', 'a zero before bucket is not printed');
SELECT is('{2026-01: spend 0 orders 0 points 0}'::loyalty.activity::text,
		  '{2026-01: spend 0 orders 0 points 0}', 'a bucket whose values are all zero is kept');
SELECT is('{2026-01: spend -0.0001 orders 0 points 0, 2026-02: spend 0.12 orders 0 points 0, 2026-03: spend -3 orders 0 points 0}'::loyalty.activity::text,
		  '{2026-01: spend -0.0001 orders 0 points 0, 2026-02: spend 0.12 orders 0 points 0, 2026-03: spend -3 orders 0 points 0}',
		  'spend is a plain decimal without trailing zeros, negative values allowed');
SELECT is('{2026-01: spend 1.23445 orders 0 points 0, 2026-02: spend -1.23445 orders 0 points 0, 2026-03: spend 1.2344499 orders 0 points 0}'::loyalty.activity::text,
		  '{2026-01: spend 1.2345 orders 0 points 0, 2026-02: spend -1.2345 orders 0 points 0, 2026-03: spend 1.2344 orders 0 points 0}',
		  'spend with more than 4 decimals is rounded half away from zero');
SELECT is('{2026-01: spend -922337203685477.5807 orders -9223372036854775807 points 9223372036854775807}'::loyalty.activity::text,
		  '{2026-01: spend -922337203685477.5807 orders -9223372036854775807 points 9223372036854775807}',
		  'the extreme values of each field round-trip');
SELECT throws_ok($$SELECT '{2026-01: spend 0 orders -9223372036854775808 points 0}'::loyalty.activity$$, '22003', 'orders total out of range for loyalty.activity',
	'a field whose absolute value exceeds the bigint maximum is refused');
SELECT throws_ok($$SELECT '{before: spend 600000000000000 orders 1 points 1, 2026-01: spend 600000000000000 orders 1 points 1}'::loyalty.activity$$, '22003',
	'spend total out of range for loyalty.activity',
	'buckets whose spend adds up beyond the bigint of ten-thousandths are refused, each of them in range');
SELECT is('{0001-01: spend 1 orders 1 points 1, 9999-12: spend 2 orders 2 points 2}'::loyalty.activity::text,
		  '{0001-01: spend 1 orders 1 points 1, 9999-12: spend 2 orders 2 points 2}', 'years 0001 and 9999 are in range');
SELECT is(v::text::loyalty.activity::text, v::text, 'text output reads back as the same value')
  FROM (SELECT :sample::loyalty.activity AS v) s;

------------------------------------------------------------------------------
-- Malformed text
------------------------------------------------------------------------------
SELECT pg_temp.refuses('garbage', '22P02', :syntax,
	'garbage is refused');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 1 points 1', '22P02', :syntax,
	'a missing closing brace is refused');
SELECT pg_temp.refuses('{}x', '22P02', :syntax,
	'text after the closing brace is refused');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 1 points 1,}', '22P02', :syntax,
	'a trailing comma is refused');
SELECT pg_temp.refuses('{2026-03: spend 1 orders 1 points 1, 2026-01: spend 1 orders 1 points 1}', '22P02', :syntax,
	'months out of order are refused');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 1 points 1, 2026-01: spend 1 orders 1 points 1}', '22P02', :syntax,
	'a repeated month is refused');
SELECT pg_temp.refuses('{0000-12: spend 1 orders 1 points 1}', '22P02', :syntax,
	'year 0 is refused');
SELECT pg_temp.refuses('{2026-13: spend 1 orders 1 points 1}', '22P02', :syntax,
	'month 13 is refused');
SELECT pg_temp.refuses('{1.5e3: spend 1 orders 1 points 1}', '22P02', :syntax,
	'a month not written YYYY-MM is refused');
SELECT pg_temp.refuses('{2026-01: orders 1 points 1}', '22P02', :syntax,
	'a missing spend is refused');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 1.5 points 1}', '22P02', :syntax,
	'fractional orders are refused');
SELECT pg_temp.refuses('{2026-01: spend 1e3 orders 1 points 1}', '22P02', :syntax,
	'spend in exponent notation is refused');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 9223372036854775808 points 1}', '22003', 'orders value out of range in loyalty.activity input',
	'orders beyond bigint are out of range');
SELECT pg_temp.refuses('{2026-01: spend 1 orders 1 points -9223372036854775809}', '22003', 'points value out of range in loyalty.activity input',
	'points below bigint are out of range');
SELECT pg_temp.refuses('{2026-01: spend 922337203685477.5808 orders 1 points 1}', '22003', 'spend value out of range in loyalty.activity input',
	'spend beyond the stored range is out of range');
SELECT pg_temp.refuses('{before: spend -922337203685477.58085 orders 1 points 1}', '22003', 'spend value out of range in loyalty.activity input',
	'spend that rounds beyond the stored range is out of range');
SELECT throws_ok(format('SELECT %L::loyalty.activity', pg_temp.months_text('2016-01-01', 121)), '22P02', NULL,
	'121 months are refused');
SELECT is(pg_temp.err($$SELECT '{2026-01: spend 1 orders 1 points 1, before: spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: "before" must come first.', 'detail: before after a month');
SELECT is(pg_temp.err($$SELECT '{2026-02: spend 1 orders 1 points 1, 2026-02: spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Months must be strictly ascending: 2026-02 follows 2026-02.', 'detail: a repeated month');
SELECT is(pg_temp.err($$SELECT '{2026-00: spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Months must be between 01 and 12.', 'detail: month 00');
SELECT is(pg_temp.err($$SELECT '{2026-1: spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Expected a month as YYYY-MM, or "before".', 'detail: a one-digit month');
SELECT is(pg_temp.err($$SELECT '{2026-01 spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Expected ":" after the month.', 'detail: a missing colon');
SELECT is(pg_temp.err($$SELECT '{2026-01: spend 1. orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Expected digits after the decimal point of spend.', 'detail: a decimal point without digits');
SELECT is(pg_temp.err($$SELECT '{2026-01: spend 1 points 1 orders 1}'::loyalty.activity$$),
		  '22P02: Expected "orders" after the spend.', 'detail: fields in another order');
SELECT is(pg_temp.err($$SELECT '{2026-01: spend 1 orders 1 points 1 2026-02: spend 1 orders 1 points 1}'::loyalty.activity$$),
		  '22P02: Expected "," or "}" after a bucket.', 'detail: a missing comma');
SELECT is(pg_temp.err(format('SELECT %L::loyalty.activity', pg_temp.months_text('2016-01-01', 121))),
		  '22P02: An activity value holds at most 120 months.', 'detail: 121 months');
SELECT is((SELECT count(*) FROM loyalty.activity_buckets(pg_temp.months_text('2016-02-01', 120)::loyalty.activity)),
		  120::bigint, '120 months are accepted');

------------------------------------------------------------------------------
-- Binary send/recv
------------------------------------------------------------------------------
SELECT is(loyalty.activity_send('{}'), pg_temp.hdr(0, 0, 0, 0), 'send of {}: zero count, zero before');
SELECT is(loyalty.activity_send('{before: spend 10.5 orders 1 points 10, 2026-01: spend 120.5 orders 3 points 240, 2026-02: spend -0.0001 orders -1 points -20}'),
		  pg_temp.hdr(2, 105000, 1, 10) || pg_temp.bkt(:m_2026_01, 1205000, 3, 240) || pg_temp.bkt(:m_2026_02, -1, -1, -20),
		  'send: count, before, then (month, spend in ten-thousandths, orders, points) per bucket');
SELECT is(loyalty.activity_send(' { 2026-01 : spend 1.50 orders 1 points 1 } '),
		  loyalty.activity_send('{2026-01: spend 1.5 orders 1 points 1}'), 'equal values send identical bytes');
SELECT is(pg_temp.recv(loyalty.activity_send(v))::text, v::text, 'binary round trip')
  FROM (SELECT :sample::loyalty.activity AS v) s;
SELECT ok(pg_temp.recv(loyalty.activity_send(v)) OPERATOR(loyalty.=) v, 'binary round trip of 120 months gives an equal value')
  FROM (SELECT pg_temp.months('2016-01-01', 121) AS v) s;
SELECT is(pg_temp.recv(pg_temp.hdr(1, -5, 0, 0) || pg_temp.bkt(12, 1, 2, 3))::text,
		  '{before: spend -0.0005 orders 0 points 0, 0001-01: spend 0.0001 orders 2 points 3}', 'recv of hand-built bytes');
SELECT is(pg_temp.recv_error('\x00000000'), '22P03: The value is truncated.', 'recv: truncated header');
SELECT is(pg_temp.recv_error(pg_temp.hdr(-1, 0, 0, 0)), '22P03: The bucket count is out of range.', 'recv: negative count');
SELECT is(pg_temp.recv_error(pg_temp.hdr(121, 0, 0, 0)), '22P03: The bucket count is out of range.', 'recv: 121 buckets');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0, 0) || pg_temp.bkt(:m_2026_01, 1, 1, 1)),
		  '22P03: The message length does not match the bucket count.', 'recv: fewer buckets than announced');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0, 0) || pg_temp.bkt(:m_2026_01, 1, 1, 1) || '\x00'::bytea),
		  '22P03: The message length does not match the bucket count.', 'recv: trailing garbage');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0, 0) || pg_temp.bkt(:m_2026_02, 1, 1, 1) || pg_temp.bkt(:m_2026_01, 1, 1, 1)),
		  '22P03: Months are not strictly ascending.', 'recv: unsorted months');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0, 0) || pg_temp.bkt(:m_2026_01, 1, 1, 1) || pg_temp.bkt(:m_2026_01, 1, 1, 1)),
		  '22P03: Months are not strictly ascending.', 'recv: a repeated month');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0, 0) || pg_temp.bkt(11, 1, 1, 1)),
		  '22P03: A month is out of range.', 'recv: year 0');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0, 0) || pg_temp.bkt(120000, 1, 1, 1)),
		  '22P03: A month is out of range.', 'recv: year 10000');

------------------------------------------------------------------------------
-- Operators
------------------------------------------------------------------------------
SELECT ok('{2026-01: spend 1.50 orders 1 points 1}'::loyalty.activity OPERATOR(loyalty.=)
		  loyalty.activity_add(loyalty.activity_add('{}', '2026-01-31', 1, 0, 1), '2026-01-01', 0.5, 1, 0),
		  '= holds for the same buckets reached by different routes');
SELECT ok(NOT ('{2026-01: spend 1 orders 1 points 1}'::loyalty.activity OPERATOR(loyalty.<>) '{ 2026-01 : spend 1.0 orders 1 points 1 }'),
		  '<> is false for equal values');
SELECT ok('{2026-01: spend 1 orders 1 points 1}'::loyalty.activity OPERATOR(loyalty.<>) '{2026-01: spend 1 orders 1 points 2}',
		  '<> is true when one value differs');
SELECT ok(NOT ('{}'::loyalty.activity OPERATOR(loyalty.=) '{2026-01: spend 0 orders 0 points 0}'),
		  '= is false between {} and a kept zero bucket');
SELECT ok(NOT ('{2026-01: spend 1 orders 1 points 1}'::loyalty.activity OPERATOR(loyalty.=) '{before: spend 1 orders 1 points 1}'),
		  '= is false when the same totals sit in before instead of a month');

------------------------------------------------------------------------------
-- activity_add
------------------------------------------------------------------------------
SELECT is(loyalty.activity_add(loyalty.activity_add('{}', '2026-03-15', 10, 1, 100), '2026-01-31', 2.5, 1, 25)::text,
		  '{2026-01: spend 2.5 orders 1 points 25, 2026-03: spend 10 orders 1 points 100}',
		  'a month before the others is inserted in order');
SELECT is(loyalty.activity_add('{2026-01: spend 10 orders 1 points 100}', '2026-01-20', -10, 0, -100)::text,
		  '{2026-01: spend 0 orders 1 points 0}', 'a reversal in the same month nets out; the bucket is kept');
SELECT is(loyalty.activity_add('{}', '2026-02-01', -4, -1, -40)::text,
		  '{2026-02: spend -4 orders -1 points -40}', 'negative values are not clamped');
SELECT is(loyalty.activity_add('{}', '2026-01-01', 1.23445, 0, 0)::text || loyalty.activity_add('{}', '2026-01-01', -1.23445, 0, 0)::text,
		  '{2026-01: spend 1.2345 orders 0 points 0}{2026-01: spend -1.2345 orders 0 points 0}',
		  'spend is rounded to 4 decimals, half away from zero');
SELECT is(loyalty.activity_add('{}', '2028-02-29', 1, 1, 1)::text, '{2028-02: spend 1 orders 1 points 1}', 'leap day 2028-02-29 is in February');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', 'infinity', 1, 1, 1)$$, '22008', 'month must be a finite date', 'an infinite month is refused');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', '10000-01-01', 1, 1, 1)$$, '22008', 'month out of range for loyalty.activity', 'year 10000 is refused');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', '0001-12-31 BC', 1, 1, 1)$$, '22008', 'month out of range for loyalty.activity', '1 BC is refused');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', '2026-01-01', 'NaN', 1, 1)$$, '22023', 'spend must not be NaN', 'NaN spend is refused');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', '2026-01-01', 'Infinity', 1, 1)$$, '22003', 'spend out of range for loyalty.activity', 'infinite spend is out of range');
SELECT throws_ok($$SELECT loyalty.activity_add('{}', '2026-01-01', 922337203685477.58075, 1, 1)$$, '22003', 'spend out of range for loyalty.activity',
	'spend that rounds beyond the range is out of range');
SELECT is(loyalty.activity_add('{}', '2026-01-01', 922337203685477.58074, 1, 1)::text,
		  '{2026-01: spend 922337203685477.5807 orders 1 points 1}', 'the largest spend rounds down into range');
SELECT throws_ok($$SELECT loyalty.activity_add('{2026-01: spend 0 orders 9223372036854775807 points 0}', '2026-01-10', 0, 1, 0)$$,
	'22003', 'orders total out of range', 'orders overflow in a bucket is an error');
SELECT throws_ok($$SELECT loyalty.activity_add('{2026-01: spend 0 orders 0 points -9223372036854775807}', '2026-01-10', 0, 0, -1)$$,
	'22003', 'points total out of range for loyalty.activity', 'points beyond the bigint range in a bucket are an error');
SELECT throws_ok($$SELECT loyalty.activity_add('{2026-01: spend 600000000000000 orders 1 points 1}', '2026-02-10', 600000000000000, 1, 1)$$,
	'22003', 'spend total out of range for loyalty.activity',
	'a second purchase of 6*10^14 in another month is refused at the door (its sum with the first would not fit)');
SELECT throws_ok($$SELECT loyalty.activity_add('{2026-01: spend 922337203685477.5807 orders 0 points 0}', '2026-01-10', 0.0001, 0, 0)$$,
	'22003', 'spend total out of range', 'spend overflow in a bucket is an error');

-- the month of an instant in a zone
SELECT is(loyalty.activity_add('{}', '2026-01-31 23:30+00', 'Europe/Berlin', 1, 1, 1)::text,
		  '{2026-02: spend 1 orders 1 points 1}', '2026-01-31 23:30 UTC is February in Berlin');
SELECT is(loyalty.activity_add('{}', '2026-01-31 23:30+00', 'America/New_York', 1, 1, 1)::text,
		  '{2026-01: spend 1 orders 1 points 1}', '2026-01-31 23:30 UTC is January in New York');
SELECT is(loyalty.activity_add('{}', '2026-03-01 03:30+00', 'America/New_York', 1, 1, 1)::text,
		  '{2026-02: spend 1 orders 1 points 1}', '2026-03-01 03:30 UTC is still February in New York');
SELECT is(loyalty.activity_month('2026-01-31 22:59:59+00', 'Europe/Berlin'), '2026-01-01'::date, 'one second before midnight in Berlin is January');
SELECT is(loyalty.activity_month('2026-01-31 23:00:00+00', 'Europe/Berlin'), '2026-02-01'::date, 'midnight in Berlin is February');
SELECT is(loyalty.activity_month('2026-03-31 21:59:59+00', 'Europe/Berlin'), '2026-03-01'::date, 'end of March in Berlin under summer time (UTC+2)');
SELECT is(loyalty.activity_month('2026-03-31 22:00:00+00', 'Europe/Berlin'), '2026-04-01'::date, 'April starts at 22:00 UTC in Berlin summer time');
SELECT is(loyalty.activity_month('2028-02-29 23:30+00', 'Europe/Berlin'), '2028-03-01'::date, '2028-02-29 23:30 UTC is March in Berlin');
SELECT is(loyalty.activity_month('2028-02-29 23:30+00', 'America/New_York'), '2028-02-01'::date, '2028-02-29 23:30 UTC is leap-day February in New York');
SELECT is(loyalty.activity_month('2028-03-01 04:59:59+00', 'America/New_York'), '2028-02-01'::date, 'the last second of 2028-02-29 in New York');
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT is(loyalty.activity_month('2026-01-31 23:30+00', 'America/New_York'), '2026-01-01'::date,
		  'the month does not depend on the session TimeZone');
SET LOCAL TimeZone = 'UTC';
SELECT throws_ok($$SELECT loyalty.activity_add('{}', now(), 'Mars/Olympus_Mons', 1, 1, 1)$$, '22023',
	'time zone "Mars/Olympus_Mons" not recognized', 'an unknown zone is refused');
SELECT throws_ok($$SELECT loyalty.activity_month('infinity', 'UTC')$$, '22008', 'timestamp must be finite', 'an infinite instant has no month');

------------------------------------------------------------------------------
-- Folding beyond 120 months
------------------------------------------------------------------------------
CREATE TEMP TABLE full_history AS SELECT pg_temp.months('2016-01-01', 120) AS a;
CREATE TEMP TABLE folded AS SELECT loyalty.activity_add(a, '2026-01-01', 1, 1, 10) AS a FROM full_history;
SELECT is((SELECT count(*) FROM loyalty.activity_buckets(a)), 120::bigint, '120 months fill the history')
  FROM full_history;
SELECT unalike(a::text, '%before%', 'a full history has no before bucket yet') FROM full_history;
SELECT is((SELECT count(*) FROM loyalty.activity_buckets(a)), 120::bigint, 'a 121st month keeps 120 buckets') FROM folded;
SELECT is((SELECT min(month) FROM loyalty.activity_buckets(a)), '2016-02-01'::date, 'the oldest month was folded') FROM folded;
SELECT alike(a::text, '{before: spend 1 orders 1 points 10, 2016-02: %, 2026-01: spend 1 orders 1 points 10}',
			'the folded month is in before') FROM folded;
SELECT is(pg_temp.total(a), '121 121 1210', 'folding keeps the lifetime totals') FROM folded;
SELECT alike(loyalty.activity_add(a, '2016-01-15', -1, -1, -10)::text, '{2016-02: %',
			'a refund for a folded month goes to before (now zero, so not printed) and adds no bucket') FROM folded;
SELECT alike(loyalty.activity_add(a, '2010-06-01', -3, 0, 0)::text, '{before: spend -2 orders 1 points 10, 2016-02: %',
			'a month older than the kept history goes to before') FROM folded;
SELECT is(pg_temp.sum(loyalty.activity_add(a, '2016-02-01', 5, 0, 0), '2016-02-01', '2016-02-29'), '6 1 10',
		  'the oldest kept month still takes its own amounts') FROM folded;
SELECT alike(loyalty.activity_add(a, '2026-02-01', 1, 1, 10)::text, '{before: spend 2 orders 2 points 20, 2016-03: %',
			'each further month folds one more') FROM folded;
SELECT is(loyalty.activity_add('{before: spend 1 orders 1 points 1, 2026-01: spend 1 orders 1 points 1}', '2020-01-01', 1, 1, 1)::text,
		  '{before: spend 1 orders 1 points 1, 2020-01: spend 1 orders 1 points 1, 2026-01: spend 1 orders 1 points 1}',
		  'while the history is not full an older month gets its own bucket');
SELECT is(pg_temp.recv(loyalty.activity_send(a))::text, a::text, 'a folded value round-trips through binary') FROM folded;

------------------------------------------------------------------------------
-- Sums over windows, totals, buckets
------------------------------------------------------------------------------
SELECT is(pg_temp.sum(:sample, '2026-01-31', '2026-02-01'), '120.5 2 220', 'a window from a month end to a month start covers both months');
SELECT is(pg_temp.sum(:sample, '2026-01-01', '2026-01-31'), '120.5 3 240', 'the first and last day of a month cover that month only');
SELECT is(pg_temp.sum(:sample, '2026-01-31', '2026-01-01'), '120.5 3 240', 'dates in the same month are the same month whatever the days');
SELECT is(pg_temp.sum(:sample, '-infinity', '2025-12-31'), '15.5 2 15', 'from -infinity includes before');
SELECT is(pg_temp.sum(:sample, '-infinity', '-infinity'), '10.5 1 10', 'from -infinity to -infinity is before alone');
SELECT is(pg_temp.sum(:sample, '0001-01-01', '2025-12-31'), '5 1 5', 'a finite start excludes before');
SELECT is(pg_temp.sum(:sample, '2026-02-15', 'infinity'), '7.25 0 -13', 'infinity is an open end');
SELECT is(pg_temp.sum(:sample, '-infinity', 'infinity'), pg_temp.total(:sample), 'the whole range equals activity_total');
SELECT is(pg_temp.total(:sample), '143.25 5 242', 'activity_total adds before and every bucket');
SELECT is(pg_temp.sum(:sample, '2026-04-01', '2030-01-01'), '0 0 0', 'an empty window sums to zero');
SELECT is(pg_temp.sum('{}', '-infinity', 'infinity'), '0 0 0', 'the sum of {} is zero');
SELECT is(pg_temp.sum(:sample, ('2026-03-31'::date - interval '11 months')::date, '2026-03-31'), '132.75 4 232',
		  'a rolling 12-month window ending in March 2026 starts in April 2025');
SELECT throws_ok(format('SELECT loyalty.activity_sum(%L, %L, %L)', :sample, '2026-02-01', '2026-01-31'), '22023',
	'from_month must not be after to_month', 'from after to is refused');
SELECT throws_ok(format('SELECT loyalty.activity_sum(%L, %L, %L)', :sample, 'infinity', '2026-01-31'), '22023',
	'from_month must not be after to_month', 'from infinity to a finite month is refused');
SELECT throws_ok($$SELECT loyalty.activity_sum('{2026-01: spend 0 orders 9223372036854775807 points 0, 2026-02: spend 0 orders 1 points 0}', '-infinity', 'infinity')$$,
	'22003', 'orders total out of range for loyalty.activity', 'a value whose sum would overflow is refused at input');
SELECT is((SELECT spend FROM loyalty.activity_total('{before: spend -922337203685477.5806 orders 0 points 0, 2026-02: spend -0.0001 orders 0 points 0}')),
	-922337203685477.5807, 'a total at the bound is summed');
SELECT results_eq(format('SELECT month, spend, orders, points FROM loyalty.activity_buckets(%L)', :sample),
	$$VALUES ('2025-12-01'::date, 5::numeric, 1::bigint, 5::bigint),
			 ('2026-01-01', 120.5, 3, 240),
			 ('2026-02-01', 0, -1, -20),
			 ('2026-03-01', 7.25, 1, 7)$$,
	'activity_buckets lists the kept months oldest first, without before');
SELECT is((SELECT spend::text FROM loyalty.activity_buckets('{2026-01: spend 120.5 orders 0 points 0}')), '120.5',
		  'bucket spend has no trailing zeros');
SELECT matches(obj_description('loyalty.activity_buckets(loyalty.activity)'::regprocedure, 'pg_proc'), 'before.*not listed',
			   'the comment of activity_buckets says that before is not listed');

------------------------------------------------------------------------------
-- Declared properties
------------------------------------------------------------------------------
SELECT volatility_is('loyalty', 'activity_add', ARRAY['loyalty.activity', 'date', 'numeric', 'bigint', 'bigint'], 'immutable',
	'activity_add by date is IMMUTABLE');
SELECT volatility_is('loyalty', 'activity_add', ARRAY['loyalty.activity', 'timestamp with time zone', 'text', 'numeric', 'bigint', 'bigint'], 'stable',
	'activity_add by instant and zone is STABLE like tz_add (time zone database)');
SELECT volatility_is('loyalty', 'activity_month', ARRAY['timestamp with time zone', 'text'], 'stable',
	'activity_month is STABLE');

DO $$ BEGIN
	EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'rm -f /tmp/loyalty_tap_activity_' || pg_backend_pid() || '.bin');
END $$;

SELECT * FROM finish();
ROLLBACK;
