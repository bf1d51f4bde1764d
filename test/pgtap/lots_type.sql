\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(81);

-- binary receive of raw bytes
\set recv_type loyalty.lots
\ir lib/binary_recv.psql
-- "SQLSTATE: message / detail" of the error receiving b, or 'accepted'
CREATE FUNCTION pg_temp.recv_error(b bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text;
BEGIN
	PERFORM pg_temp.recv(b);
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || ' / ' || coalesce(det, '');
END
$$;
-- header of the binary form: nlots, npending, debt
CREATE FUNCTION pg_temp.hdr(nlots int, npending int, debt bigint) RETURNS bytea
LANGUAGE sql AS $$ SELECT int4send(nlots) || int4send(npending) || int8send(debt) $$;
CREATE FUNCTION pg_temp.lot(expires bigint, points bigint) RETURNS bytea
LANGUAGE sql AS $$ SELECT int8send(expires) || int8send(points) $$;

-- Microseconds since 2000-01-01 00:00 UTC, worked out by hand:
--   2026-06-01: 26*365 + 7 leap days + 151 days of Jan..May = 9648 days
--   2027-01-01: 27*365 + 7 leap days = 9862 days
\set us_2026_06_01 833587200000000
\set us_2027_01_01 852076800000000

------------------------------------------------------------------------------
-- Text input and output
------------------------------------------------------------------------------
SELECT is('{}'::loyalty.lots::text, '{}', 'empty balance prints as {}');
SELECT is('  {   }  '::loyalty.lots::text, '{}', 'whitespace inside and around the braces is ignored');
SELECT is('{5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, 10 until 2027-01-01 00:00:00+00, debt 4}'::loyalty.lots::text,
		  '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}',
		  'output is canonical: lots by expiry, then pending lots, then debt');
SELECT is('{10 until 2027-01-01 01:00:00+01, 3 until 2027-01-01 00:00:00+00}'::loyalty.lots::text,
		  '{13 until 2027-01-01 00:00:00+00}',
		  'lots with the same expiry instant (written in different offsets) merge');
SELECT is('{pending 2 from 2026-06-01 00:00:00+00 until infinity, pending 3 from 2026-06-01 02:00:00+02 until infinity}'::loyalty.lots::text,
		  '{pending 5 from 2026-06-01 00:00:00+00 until infinity}',
		  'pending lots with the same release and expiry merge');
SELECT is('{pending 1 from 2026-06-01 00:00:00+00 until infinity, pending 2 from 2026-06-01 00:00:00+00 until 2027-01-01 00:00:00+00}'::loyalty.lots::text,
		  '{pending 2 from 2026-06-01 00:00:00+00 until 2027-01-01 00:00:00+00, pending 1 from 2026-06-01 00:00:00+00 until infinity}',
		  'pending lots with the same release are ordered by expiry');
SELECT is('{pending 1 from 2026-07-01 00:00:00+00 until 2026-08-01 00:00:00+00, pending 2 from 2026-06-01 00:00:00+00 until infinity}'::loyalty.lots::text,
		  '{pending 2 from 2026-06-01 00:00:00+00 until infinity, pending 1 from 2026-07-01 00:00:00+00 until 2026-08-01 00:00:00+00}',
		  'pending lots are ordered by release first');
SELECT is('{debt 5, 10 until infinity}'::loyalty.lots::text, '{10 until infinity, debt 5}',
		  'debt written first does not eat a lot written after it (input order never matters)');
SELECT is('{debt 2, debt 3}'::loyalty.lots::text, '{debt 5}', 'debts add up');
SELECT is('{debt 0, 1 until infinity}'::loyalty.lots::text, '{1 until infinity}', 'a zero debt is allowed and not printed');
SELECT is('{100 UNTIL infinity, Debt 3}'::loyalty.lots::text, '{100 until infinity, debt 3}',
		  'keywords of lots and debt are case-insensitive');
SELECT is('{PENDING 5 FROM 2027-01-01 00:00:00+00 until infinity}'::loyalty.lots::text,
		  '{pending 5 from 2027-01-01 00:00:00+00 until infinity}',
		  'pending and from are case-insensitive too');
SELECT is('{1 until 2027-01-01 00:00:00.5+00}'::loyalty.lots::text, '{1 until 2027-01-01 00:00:00.5+00}',
		  'fractional seconds survive');
SELECT is('{1 until 0100-01-01 00:00:00+00 BC}'::loyalty.lots::text::loyalty.lots::text,
		  '{1 until 0100-01-01 00:00:00+00 BC}', 'BC timestamps round-trip');
SELECT is(v::text::loyalty.lots::text, v::text, 'text output reads back as the same value')
  FROM (SELECT '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until 2026-12-01 12:34:56.789+00, debt 4}'::loyalty.lots AS v) s;
SELECT is('{9223372036854775807 until infinity}'::loyalty.lots::text, '{9223372036854775807 until infinity}',
		  'the largest bigint is a valid lot');

-- Output never depends on the session: UTC, ISO, whatever TimeZone/DateStyle say.
SET LOCAL TimeZone = 'America/New_York';
SET LOCAL DateStyle = 'SQL, DMY';
SELECT is(loyalty.lots_out(loyalty.lots_add('{}', 1, '2027-01-01 00:00:00+00'))::text,
		  '{1 until 2027-01-01 00:00:00+00}', 'output is UTC/ISO under another TimeZone and DateStyle');
SELECT is(loyalty.lots_in('{1 until 2027-01-01 00:00}'::cstring)::text, '{1 until 2027-01-01 05:00:00+00}',
		  'a timestamp without offset is read in the session TimeZone');
SET LOCAL DateStyle = 'ISO, MDY';
SET LOCAL TimeZone = 'UTC';
-- lots_in depends on TimeZone, so a cached plan must not fold it into a constant
PREPARE lots_in_tz AS SELECT loyalty.lots_in('{1 until 2027-01-01 00:00}'::cstring)::text;
SELECT results_eq('lots_in_tz', $$VALUES ('{1 until 2027-01-01 00:00:00+00}'::text)$$,
	'prepared lots_in under TimeZone UTC');
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT results_eq('lots_in_tz', $$VALUES ('{1 until 2026-12-31 15:00:00+00}'::text)$$,
	'the same prepared statement under TimeZone Asia/Tokyo reads the timestamp in Tokyo time');
SET LOCAL TimeZone = 'UTC';
DEALLOCATE lots_in_tz;

-- Accessors on a known value
SELECT is(loyalty.lots_total(v), 13::bigint, 'lots_total = lots + pending - debt')
  FROM (SELECT '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}'::loyalty.lots AS v) s;
SELECT is(loyalty.lots_points(v), 17::bigint, 'lots_points = lots + pending, before debt')
  FROM (SELECT '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}'::loyalty.lots AS v) s;
SELECT is(loyalty.lots_debt(v), 4::bigint, 'lots_debt')
  FROM (SELECT '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}'::loyalty.lots AS v) s;
SELECT results_eq(
	$$SELECT state, release_at, expires_at, points FROM loyalty.lots_entries(
		'{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}')$$,
	$$VALUES ('lot', NULL::timestamptz, '2027-01-01 00:00:00+00'::timestamptz, 10::bigint),
			 ('lot', NULL, 'infinity', 5),
			 ('pending', '2026-06-01 00:00:00+00', 'infinity', 2),
			 ('debt', NULL, NULL, -4)$$,
	'lots_entries lists lots, pending lots and debt in canonical order');

-- Equality
SELECT ok('{5 until infinity, 10 until 2027-01-01 00:00:00+00}'::loyalty.lots OPERATOR(loyalty.=)
		  '{10 until 2027-01-01 01:00:00+01, 2 until infinity, 3 until infinity}'::loyalty.lots,
		  '= holds for the same lots written differently');
SELECT ok(NOT ('{5 until infinity}'::loyalty.lots OPERATOR(loyalty.<>) '{2 until infinity, 3 until infinity}'::loyalty.lots),
		  '<> is false for equal values');
SELECT ok(NOT ('{5 until infinity}'::loyalty.lots OPERATOR(loyalty.=) '{5 until 2027-01-01 00:00:00+00}'::loyalty.lots),
		  '= is false when only the expiry differs');
SELECT ok('{5 until infinity}'::loyalty.lots OPERATOR(loyalty.<>) '{6 until infinity}'::loyalty.lots,
		  '<> is true when the points differ');
SELECT ok(v OPERATOR(loyalty.=) '{7 until infinity}'::loyalty.lots, '= works on a value read back from a table')
  FROM (SELECT v FROM (VALUES ('{7 until infinity}'::loyalty.lots)) t(v)) s;

------------------------------------------------------------------------------
-- Malformed text
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT 'garbage'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "garbage"', 'garbage is refused');
SELECT throws_ok($$SELECT '100 until infinity'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "100 until infinity"', 'missing braces are refused');
SELECT throws_ok($$SELECT '{100 until infinity'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100 until infinity"', 'a missing closing brace is refused');
SELECT throws_ok($$SELECT '100 until infinity}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "100 until infinity}"', 'a missing opening brace is refused');
SELECT throws_ok($$SELECT '{'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{"', 'a lone brace is refused');
SELECT throws_ok($$SELECT '{100 until infinity} 5'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100 until infinity} 5"', 'text after the closing brace is refused');
SELECT throws_ok($$SELECT '{-5 until infinity}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{-5 until infinity}"', 'negative points are refused');
SELECT throws_ok($$SELECT '{0 until infinity}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{0 until infinity}"', 'a lot of zero points is refused');
SELECT throws_ok($$SELECT '{pending 0 from 2026-01-01 00:00:00+00 until infinity}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{pending 0 from 2026-01-01 00:00:00+00 until infinity}"',
	'a pending lot of zero points is refused');
SELECT throws_ok($$SELECT '{100.5 until infinity}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100.5 until infinity}"', 'fractional points are refused');
SELECT throws_ok($$SELECT '{9223372036854775808 until infinity}'::loyalty.lots$$, '22003',
	'points value out of range in loyalty.lots input: "{9223372036854775808 until infinity}"',
	'points beyond bigint are out of range');
SELECT throws_ok($$SELECT '{4611686018427387904 until infinity, 4611686018427387904 until 2027-01-01 00:00:00+00}'::loyalty.lots$$,
	'22003', 'points total out of range', 'two lots of 2^62 overflow the total');
SELECT throws_ok($$SELECT '{4611686018427387904 until infinity, 4611686018427387904 until infinity}'::loyalty.lots$$,
	'22003', 'points total out of range', 'merging two lots of 2^62 overflows');
SELECT throws_ok($$SELECT '{9223372036854775807 until infinity, pending 1 from 2026-01-01 00:00:00+00 until infinity}'::loyalty.lots$$,
	'22003', 'points total out of range', 'lots plus pending lots overflow the total');
SELECT throws_ok($$SELECT '{debt 9223372036854775807, debt 1}'::loyalty.lots$$,
	'22003', 'points total out of range', 'debt overflow');
SELECT throws_ok($$SELECT '{100 until -infinity}'::loyalty.lots$$, '22008',
	'expiry must be a finite timestamp or infinity', '-infinity expiry is refused');
SELECT throws_ok($$SELECT '{pending 5 from infinity until infinity}'::loyalty.lots$$, '22008',
	'release time must be a finite timestamp', 'an infinite release time is refused');
SELECT throws_ok($$SELECT '{pending 5 from 2027-01-01 00:00:00+00 until 2026-01-01 00:00:00+00}'::loyalty.lots$$, '22023',
	'pending points must expire after they are released', 'pending lot that expires before release is refused');
SELECT throws_ok($$SELECT '{pending 5 from 2027-01-01 00:00:00+00 until 2027-01-01 00:00:00+00}'::loyalty.lots$$, '22023',
	'pending points must expire after they are released', 'pending lot that expires at its release is refused');
SELECT throws_ok($$SELECT '{100 until}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100 until}"', 'truncated: no expiry');
SELECT throws_ok($$SELECT '{100}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100}"', 'truncated: no until');
SELECT throws_ok($$SELECT '{pending 5 from 2026-01-01 00:00:00+00}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{pending 5 from 2026-01-01 00:00:00+00}"', 'truncated pending lot');
SELECT throws_ok($$SELECT '{100 until infinity,}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{100 until infinity,}"', 'trailing comma is refused');
SELECT throws_ok($$SELECT '{debt}'::loyalty.lots$$, '22P02',
	'invalid input syntax for type loyalty.lots: "{debt}"', 'debt without an amount is refused');
SELECT throws_ok($$SELECT '{100 until someday}'::loyalty.lots$$, '22007',
	'invalid input syntax for type timestamp with time zone: "someday"', 'a bad timestamp is refused');

------------------------------------------------------------------------------
-- Binary send/recv
------------------------------------------------------------------------------
SELECT is(loyalty.lots_send('{}'), '\x00000000000000000000000000000000'::bytea,
		  'send of {}: two zero counts and zero debt');
SELECT is(loyalty.lots_send('{100 until infinity}'),
		  '\x000000010000000000000000000000007fffffffffffffff0000000000000064'::bytea,
		  'send of one lot: counts, debt, then (expires, points); infinity is int64 max');
SELECT is(loyalty.lots_send('{10 until 2027-01-01 00:00:00+00, pending 2 from 2026-06-01 00:00:00+00 until infinity, debt 4}'),
		  pg_temp.hdr(1, 1, 4) || pg_temp.lot(:us_2027_01_01, 10)
			|| int8send(:us_2026_06_01) || int8send(9223372036854775807) || int8send(2),
		  'send of lots, pending and debt: microseconds since 2000 in UTC');
SELECT is(loyalty.lots_send('{3 until infinity, debt 1, 2 until infinity}'),
		  loyalty.lots_send('{debt 1, 5 until infinity}'),
		  'equal values send identical bytes');
SELECT is(pg_temp.recv(loyalty.lots_send(v))::text, v::text, 'binary round trip of lots, pending and debt')
  FROM (SELECT '{10 until 2027-01-01 00:00:00+00, 5 until infinity, pending 2 from 2026-06-01 00:00:00+00 until 2026-12-01 12:34:56.789+00, debt 4}'::loyalty.lots AS v) s;
SELECT ok(pg_temp.recv(loyalty.lots_send(v)) OPERATOR(loyalty.=) v, 'binary round trip gives an equal value')
  FROM (SELECT '{1 until 0100-01-01 00:00:00+00 BC, 9223372036854775806 until infinity}'::loyalty.lots AS v) s;
SELECT is(pg_temp.recv('\x00000000000000000000000000000000')::text, '{}', 'recv of the empty value');
SELECT is(pg_temp.recv(pg_temp.hdr(2, 0, 0) || pg_temp.lot(:us_2026_06_01, 7) || pg_temp.lot(:us_2027_01_01, 8))::text,
		  '{7 until 2026-06-01 00:00:00+00, 8 until 2027-01-01 00:00:00+00}', 'recv of hand-built bytes');

-- malformed binary
SELECT is(pg_temp.recv_error('\x0000000000000000'),
		  '22P03: invalid loyalty.lots value / The value is truncated.', 'recv: truncated header');
SELECT is(pg_temp.recv_error(pg_temp.hdr(-1, 0, 0)),
		  '22P03: invalid loyalty.lots value / Lot counts are out of range.', 'recv: negative lot count');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1000001, 0, 0)),
		  '22P03: invalid loyalty.lots value / Lot counts are out of range.', 'recv: lot count above the limit');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0) || pg_temp.lot(:us_2026_06_01, 7)),
		  '22P03: invalid loyalty.lots value / The message length does not match the lot counts.',
		  'recv: fewer lots than announced');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0) || pg_temp.lot(:us_2026_06_01, 7) || '\x00'::bytea),
		  '22P03: invalid loyalty.lots value / The message length does not match the lot counts.',
		  'recv: trailing bytes');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0) || pg_temp.lot(:us_2027_01_01, 8) || pg_temp.lot(:us_2026_06_01, 7)),
		  '22P03: invalid loyalty.lots value / Lots are not sorted by expiry.', 'recv: unsorted lots');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0) || pg_temp.lot(:us_2027_01_01, 8) || pg_temp.lot(:us_2027_01_01, 7)),
		  '22P03: invalid loyalty.lots value / Lots are not sorted by expiry.', 'recv: unmerged lots with the same expiry');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0) || pg_temp.lot(:us_2027_01_01, 0)),
		  '22P03: invalid loyalty.lots value / A lot has no points.', 'recv: zero points');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0) || pg_temp.lot(:us_2027_01_01, -5)),
		  '22P03: invalid loyalty.lots value / A lot has no points.', 'recv: negative points');
SELECT is(pg_temp.recv_error(pg_temp.hdr(0, 0, -1)),
		  '22P03: invalid loyalty.lots value / Debt is negative.', 'recv: negative debt');
SELECT is(pg_temp.recv_error(pg_temp.hdr(1, 0, 0) || pg_temp.lot(-9223372036854775808, 5)),
		  '22P03: invalid loyalty.lots value / A lot has an invalid expiry.', 'recv: -infinity expiry');
SELECT is(pg_temp.recv_error(pg_temp.hdr(2, 0, 0) || pg_temp.lot(:us_2026_06_01, 4611686018427387904)
							 || pg_temp.lot(:us_2027_01_01, 4611686018427387904)),
		  '22P03: invalid loyalty.lots value / The points total does not fit in a bigint.', 'recv: total overflow');
SELECT is(pg_temp.recv_error(pg_temp.hdr(0, 1, 0) || int8send(:us_2027_01_01) || int8send(:us_2026_06_01) || int8send(5)),
		  '22P03: invalid loyalty.lots value / A pending lot expires before it is released.', 'recv: pending expires before release');
SELECT is(pg_temp.recv_error(pg_temp.hdr(0, 1, 0) || int8send(9223372036854775807) || int8send(9223372036854775807) || int8send(5)),
		  '22P03: invalid loyalty.lots value / A pending lot has an invalid release time.', 'recv: infinite release time');
SELECT is(pg_temp.recv_error(pg_temp.hdr(0, 2, 0)
							 || int8send(:us_2027_01_01) || int8send(9223372036854775807) || int8send(5)
							 || int8send(:us_2026_06_01) || int8send(9223372036854775807) || int8send(5)),
		  '22P03: invalid loyalty.lots value / Pending lots are not sorted.', 'recv: unsorted pending lots');

-- A value that recv accepts must be usable.  BALANCE_MAX_LOTS lots pass
-- lots_recv, so lots_total must work on them (or recv must refuse them).
CREATE FUNCTION pg_temp.max_lots_total() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v loyalty.lots;
BEGIN
	BEGIN
		v := pg_temp.recv((SELECT pg_temp.hdr(1000000, 0, 0)
								  || string_agg(pg_temp.lot(i * 1000000, 1), ''::bytea ORDER BY i)
							 FROM generate_series(1::bigint, 1000000) i));
	EXCEPTION WHEN invalid_binary_representation THEN
		RETURN 'refused on input';
	END;
	-- add to an existing lot (2000-01-01 00:00:01 UTC): no new lot is needed
	RETURN loyalty.lots_available(loyalty.lots_add(v, 1, '2000-01-01 00:00:01+00'), '-infinity')::text;
EXCEPTION WHEN OTHERS THEN
	RETURN 'accepted by recv, then ' || SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT matches(pg_temp.max_lots_total(), '^(refused on input|1000001)$',
			   'a balance of 1000000 lots is either refused by recv or usable afterwards (lots_add, lots_available)');
-- leave no large file behind
SELECT is(pg_temp.recv('\x00000000000000000000000000000000')::text, '{}', 'recv still works afterwards');

------------------------------------------------------------------------------
-- Declared properties
------------------------------------------------------------------------------
SELECT volatility_is('loyalty', 'lots_in', ARRAY['cstring'], 'stable',
	'lots_in reads timestamps in the session TimeZone (and accepts ''now''), so it cannot be IMMUTABLE');
SELECT volatility_is('loyalty', 'lots_out', ARRAY['loyalty.lots'], 'immutable',
	'lots_out prints UTC whatever the session says, so it is IMMUTABLE');

DO $$ BEGIN
	EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'rm -f /tmp/loyalty_tap_recv_' || pg_backend_pid() || '.bin');
END $$;

SELECT * FROM finish();
ROLLBACK;
