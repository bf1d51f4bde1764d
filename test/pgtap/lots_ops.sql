\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(77);

-- S: three lots.  L: lots and a pending lot released on 2026-03-01.
\set S '\'{20 until infinity, 50 until 2027-01-01 00:00:00+00, 100 until 2026-06-01 00:00:00+00}\'::loyalty.lots'
\set L '\'{100 until 2026-06-01 00:00:00+00, 50 until 2027-01-01 00:00:00+00, 20 until infinity, pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00}\'::loyalty.lots'

------------------------------------------------------------------------------
-- lots_add / lots_add_pending
------------------------------------------------------------------------------
SELECT is(loyalty.lots_add('{}', 10, '2027-01-01 00:00:00+00')::text, '{10 until 2027-01-01 00:00:00+00}', 'add to empty');
SELECT is(loyalty.lots_add('{10 until 2027-01-01 00:00:00+00}', 5, '2027-01-01 01:00:00+01')::text,
		  '{15 until 2027-01-01 00:00:00+00}', 'add merges into the lot with the same expiry instant');
SELECT is(loyalty.lots_add('{10 until 2027-01-01 00:00:00+00}', 5, '2026-01-01 00:00:00+00')::text,
		  '{5 until 2026-01-01 00:00:00+00, 10 until 2027-01-01 00:00:00+00}', 'add keeps lots sorted by expiry');
SELECT is(loyalty.lots_add('{debt 70}', 50, 'infinity')::text, '{debt 20}', 'new points pay off debt first (partly)');
SELECT is(loyalty.lots_add('{debt 70}', 100, '2027-01-01 00:00:00+00')::text, '{30 until 2027-01-01 00:00:00+00}',
		  'what is left after paying the debt becomes a lot');
SELECT is(loyalty.lots_add('{debt 70}', 70, 'infinity')::text, '{}', 'exact payoff leaves nothing');
SELECT throws_ok($$SELECT loyalty.lots_add('{}', 0, 'infinity')$$, '22023', 'points must be positive', 'add 0 points');
SELECT throws_ok($$SELECT loyalty.lots_add('{}', -5, 'infinity')$$, '22023', 'points must be positive', 'add negative points');
SELECT throws_ok($$SELECT loyalty.lots_add('{}', 5, '-infinity')$$, '22008',
	'expiry must be a finite timestamp or infinity', 'add with -infinity expiry');
SELECT throws_ok($$SELECT loyalty.lots_add('{9223372036854775807 until infinity}', 1, 'infinity')$$, '22003',
	'points total out of range', 'add overflowing the same lot');
SELECT throws_ok($$SELECT loyalty.lots_add('{9223372036854775807 until infinity}', 1, '2027-01-01 00:00:00+00')$$, '22003',
	'points total out of range', 'add overflowing the total through another lot');
SELECT is(loyalty.lots_add('{9223372036854775807 until infinity, debt 1}', 1, 'infinity')::text,
		  '{9223372036854775807 until infinity}', 'a point that only pays debt does not overflow');
SELECT is(loyalty.lots_add_pending('{}', 5, '2026-03-01 00:00:00+00', '2026-09-01 00:00:00+00')::text,
		  '{pending 5 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00}', 'add a pending lot');
SELECT is(loyalty.lots_add_pending('{debt 3}', 5, '2026-03-01 00:00:00+00', 'infinity')::text,
		  '{pending 5 from 2026-03-01 00:00:00+00 until infinity, debt 3}', 'pending points do not pay debt before release');
SELECT throws_ok($$SELECT loyalty.lots_add_pending('{}', 5, '2026-09-01 00:00:00+00', '2026-03-01 00:00:00+00')$$, '22023',
	'pending points must expire after they are released', 'pending lot expiring before release');
SELECT throws_ok($$SELECT loyalty.lots_add_pending('{}', 5, 'infinity', 'infinity')$$, '22008',
	'release time must be a finite timestamp', 'pending lot released at infinity');

------------------------------------------------------------------------------
-- lots_spend: FIFO by soonest expiry among lots usable at as_of
------------------------------------------------------------------------------
SELECT is(drawn::text, '{100 until 2026-06-01 00:00:00+00, 30 until 2027-01-01 00:00:00+00}', 'spend draws the soonest-expiring lot first')
  FROM loyalty.lots_spend(:S, 130, '2026-04-01 00:00:00+00');
SELECT is(remaining::text, '{20 until 2027-01-01 00:00:00+00, 20 until infinity}', 'spend leaves the later lots')
  FROM loyalty.lots_spend(:S, 130, '2026-04-01 00:00:00+00');
SELECT is(drawn::text, '{60 until 2026-06-01 00:00:00+00}', 'at E - 1us the lot expiring at E is still spent first')
  FROM loyalty.lots_spend(:S, 60, '2026-05-31 23:59:59.999999+00');
SELECT is(drawn::text, '{50 until 2027-01-01 00:00:00+00, 10 until infinity}', 'at E the lot expiring at E is not usable')
  FROM loyalty.lots_spend(:S, 60, '2026-06-01 00:00:00+00');
SELECT is(remaining::text, '{100 until 2026-06-01 00:00:00+00, 10 until infinity}', 'spend does not touch lots that are not usable')
  FROM loyalty.lots_spend(:S, 60, '2026-06-01 00:00:00+00');
SELECT is(remaining::text, '{}', 'spending everything available leaves {}')
  FROM loyalty.lots_spend(:S, 170, '2026-04-01 00:00:00+00');
SELECT is(drawn::text, (:S)::text, 'spending everything draws every lot')
  FROM loyalty.lots_spend(:S, 170, '2026-04-01 00:00:00+00');
SELECT throws_ok($$SELECT loyalty.lots_spend('{20 until infinity, 50 until 2027-01-01 00:00:00+00, 100 until 2026-06-01 00:00:00+00}', 171, '2026-04-01 00:00:00+00')$$,
	'LY001', 'insufficient points', 'spending one point more than available');
SELECT throws_ok($$SELECT loyalty.lots_spend('{20 until infinity, 50 until 2027-01-01 00:00:00+00, 100 until 2026-06-01 00:00:00+00}', 71, '2026-06-01 00:00:00+00')$$,
	'LY001', 'insufficient points', 'expired lots do not count as available');
SELECT throws_ok($$SELECT loyalty.lots_spend('{}', 0, '2026-04-01 00:00:00+00')$$, '22023', 'points must be positive', 'spend 0');

-- a failed spend leaves the stored value alone
CREATE TEMP TABLE t (v loyalty.lots);
INSERT INTO t VALUES (:S);
SELECT throws_ok($$UPDATE t SET v = (loyalty.lots_spend(v, 1000, '2026-04-01 00:00:00+00')).remaining$$,
	'LY001', 'insufficient points', 'UPDATE with an impossible spend fails');
SELECT is(v::text, (:S)::text, 'and the stored value is unchanged') FROM t;

-- allow_debt
SELECT is(remaining::text, '{debt 30}', 'allow_debt: the shortfall becomes debt')
  FROM loyalty.lots_spend(:S, 200, '2026-04-01 00:00:00+00', allow_debt => true);
SELECT is(drawn::text, '{100 until 2026-06-01 00:00:00+00, 50 until 2027-01-01 00:00:00+00, 20 until infinity, debt 30}',
		  'allow_debt: drawn holds every lot and the debt')
  FROM loyalty.lots_spend(:S, 200, '2026-04-01 00:00:00+00', allow_debt => true);
SELECT is(loyalty.lots_points(drawn) + loyalty.lots_debt(drawn), 200::bigint, 'allow_debt: drawn accounts for all 200 points')
  FROM loyalty.lots_spend(:S, 200, '2026-04-01 00:00:00+00', allow_debt => true);
SELECT is(remaining::text, '{20 until 2027-01-01 00:00:00+00, 20 until infinity}', 'allow_debt with enough points makes no debt')
  FROM loyalty.lots_spend(:S, 130, '2026-04-01 00:00:00+00', allow_debt => true);

-- existing debt and pending lots
SELECT is(remaining::text, '{15 until infinity}', 'existing debt is paid from usable lots before spending')
  FROM loyalty.lots_spend('{30 until infinity, debt 10}', 5, '2026-04-01 00:00:00+00');
SELECT throws_ok($$SELECT loyalty.lots_spend('{30 until infinity, debt 10}', 21, '2026-04-01 00:00:00+00')$$,
	'LY001', 'insufficient points', 'debt reduces what can be spent');
SELECT is(drawn::text, '{30 until 2026-09-01 00:00:00+00, 5 until 2027-01-01 00:00:00+00}',
		  'a pending lot released by as_of is spendable, in expiry order')
  FROM loyalty.lots_spend('{pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00, 10 until 2027-01-01 00:00:00+00}',
						  35, '2026-04-01 00:00:00+00');
SELECT throws_ok($$SELECT loyalty.lots_spend('{pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00, 10 until 2027-01-01 00:00:00+00}', 11, '2026-02-28 23:59:59.999999+00')$$,
	'LY001', 'insufficient points', 'a pending lot is not spendable before its release');

------------------------------------------------------------------------------
-- lots_expire / lots_settle
------------------------------------------------------------------------------
SELECT is(expired::text, '{100 until 2026-06-01 00:00:00+00}', 'expire at E returns exactly the lot expiring at E')
  FROM loyalty.lots_expire(:L, '2026-06-01 00:00:00+00');
SELECT is(remaining::text, '{50 until 2027-01-01 00:00:00+00, 20 until infinity, pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00}',
		  'expire at E keeps everything else')
  FROM loyalty.lots_expire(:L, '2026-06-01 00:00:00+00');
SELECT is(expired::text, '{}', 'nothing has expired at E - 1us')
  FROM loyalty.lots_expire(:L, '2026-05-31 23:59:59.999999+00');
SELECT is(expired::text, '{100 until 2026-06-01 00:00:00+00}', 'at E + 1us the same lot has expired')
  FROM loyalty.lots_expire(:L, '2026-06-01 00:00:00.000001+00');
SELECT is(expired::text, '{100 until 2026-06-01 00:00:00+00, pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00}',
		  'a pending lot past its expiry is expired too')
  FROM loyalty.lots_expire(:L, '2026-09-01 00:00:00+00');
SELECT is(remaining::text, '{}', 'at infinity even never-expiring lots are gone')
  FROM loyalty.lots_expire(:L, 'infinity');
SELECT is(loyalty.lots_total(remaining) + loyalty.lots_total(expired), loyalty.lots_total(:L), 'expire conserves points')
  FROM loyalty.lots_expire(:L, '2026-09-01 00:00:00+00');
SELECT is(released::text, '{pending 30 from 2026-03-01 00:00:00+00 until 2026-09-01 00:00:00+00}', 'settle at the release instant releases')
  FROM loyalty.lots_settle(:L, '2026-03-01 00:00:00+00');
SELECT is(remaining::text, '{100 until 2026-06-01 00:00:00+00, 30 until 2026-09-01 00:00:00+00, 50 until 2027-01-01 00:00:00+00, 20 until infinity}',
		  'released points become a lot with their expiry')
  FROM loyalty.lots_settle(:L, '2026-03-01 00:00:00+00');
SELECT is(released::text, '{}', 'nothing is released 1us before the release')
  FROM loyalty.lots_settle(:L, '2026-02-28 23:59:59.999999+00');
SELECT is(remaining::text, '{2 until infinity}', 'released points pay off debt')
  FROM loyalty.lots_settle('{pending 5 from 2026-03-01 00:00:00+00 until infinity, debt 3}', '2026-03-01 00:00:00+00');

------------------------------------------------------------------------------
-- available / pending / expiring as of an instant
------------------------------------------------------------------------------
SELECT is(loyalty.lots_available(:L, '2026-05-31 23:59:59.999999+00'), 200::bigint, 'available at E - 1us includes the lot expiring at E');
SELECT is(loyalty.lots_available(:L, '2026-06-01 00:00:00+00'), 100::bigint, 'available at E excludes it');
SELECT is(loyalty.lots_available(:L, '2026-06-01 00:00:00.000001+00'), 100::bigint, 'available at E + 1us excludes it');
SELECT is(loyalty.lots_available(:L, '2026-02-28 23:59:59.999999+00'), 170::bigint, 'pending points are not available before release');
SELECT is(loyalty.lots_available(:L, '2026-03-01 00:00:00+00'), 200::bigint, 'pending points are available from the release instant');
SELECT is(loyalty.lots_available(:L, '2026-09-01 00:00:00+00'), 70::bigint, 'released points expire like any lot');
SELECT is(loyalty.lots_available('{30 until infinity, debt 10}', '2026-04-01 00:00:00+00'), 20::bigint, 'debt is subtracted');
SELECT is(loyalty.lots_available('{debt 5}', '2026-04-01 00:00:00+00'), -5::bigint, 'available is negative with only debt');
SELECT is(loyalty.lots_pending(:L, '2026-02-28 23:59:59.999999+00'), 30::bigint, 'pending before release');
SELECT is(loyalty.lots_pending(:L, '2026-03-01 00:00:00+00'), 0::bigint, 'not pending from the release instant');
SELECT is(loyalty.lots_expiring(:L, '2026-04-01 00:00:00+00', '2026-06-01 00:00:00+00'), 100::bigint, 'expiring counts expiry = to');
SELECT is(loyalty.lots_expiring(:L, '2026-04-01 00:00:00+00', '2026-05-31 23:59:59.999999+00'), 0::bigint, 'expiring excludes expiry after to');
SELECT is(loyalty.lots_expiring(:L, '2026-06-01 00:00:00+00', '2027-01-01 00:00:00+00'), 80::bigint,
		  'expiring excludes expiry = from, includes released pending points');
SELECT is(loyalty.lots_expiring(:L, '2026-02-01 00:00:00+00', '2026-12-31 00:00:00+00'), 100::bigint,
		  'expiring excludes pending points not yet released at from');

------------------------------------------------------------------------------
-- merge / subtract / apply / replay
------------------------------------------------------------------------------
SELECT is(loyalty.lots_merge(:S, '{5 until infinity, pending 1 from 2026-03-01 00:00:00+00 until infinity}')::text,
		  '{100 until 2026-06-01 00:00:00+00, 50 until 2027-01-01 00:00:00+00, 25 until infinity, pending 1 from 2026-03-01 00:00:00+00 until infinity}',
		  'merge adds lots and pending lots');
SELECT is(loyalty.lots_merge('{debt 10}', '{25 until infinity}')::text, '{15 until infinity}', 'merge pays debt');
SELECT is(loyalty.lots_subtract(:S, '{30 until 2027-01-01 00:00:00+00}')::text,
		  '{100 until 2026-06-01 00:00:00+00, 20 until 2027-01-01 00:00:00+00, 20 until infinity}', 'subtract removes exactly the given lots');
SELECT is(loyalty.lots_subtract(:S, :S)::text, '{}', 'subtracting a value from itself leaves {}');
SELECT is(loyalty.lots_merge('{10 until infinity}', '{debt 3}')::text, '{10 until infinity, debt 3}',
		  'merge adds the other value''s debt after its lots');
SELECT is(loyalty.lots_subtract('{10 until infinity}', '{4 until infinity, debt 2}')::text, '{6 until infinity, debt 2}',
		  'subtract removes the lots and adds the debt (a spend with a shortfall)');
SELECT is(loyalty.lots_apply('{5 until infinity}', NULL, 'credit')::text, '{5 until infinity}', 'apply: NULL delta returns the state');
SELECT throws_ok($$SELECT loyalty.lots_subtract('{50 until 2027-01-01 00:00:00+00}', '{60 until 2027-01-01 00:00:00+00}')$$,
	'LY006', 'balance does not hold the lots being removed', 'subtract more than the lot holds');
SELECT throws_ok($$SELECT loyalty.lots_subtract('{50 until 2027-01-01 00:00:00+00}', '{1 until 2028-01-01 00:00:00+00}')$$,
	'LY006', 'balance does not hold the lots being removed', 'subtract a lot that is not there');
SELECT throws_ok($$SELECT loyalty.lots_subtract('{}', '{pending 1 from 2026-03-01 00:00:00+00 until infinity}')$$,
	'LY006', 'balance does not hold the pending lots being removed', 'subtract a pending lot that is not there');
SELECT is(loyalty.lots_apply(NULL, '{5 until infinity}', 'credit')::text, '{5 until infinity}', 'apply: NULL state is empty');
SELECT is(loyalty.lots_apply('{5 until infinity}', '{2 until infinity}', 'debit')::text, '{3 until infinity}', 'apply: debit');
SELECT is(loyalty.lots_apply('{pending 5 from 2026-03-01 00:00:00+00 until infinity, debt 2}',
							 '{pending 5 from 2026-03-01 00:00:00+00 until infinity}', 'release')::text,
		  '{3 until infinity}', 'apply: release turns the pending lot into a lot (paying debt)');
SELECT throws_ok($$SELECT loyalty.lots_apply('{}', '{}', 'bogus')$$, '22023', 'unknown replay operation "bogus"', 'apply: unknown op');
SELECT throws_ok($$SELECT loyalty.lots_apply('{}', '{}', NULL)$$, '22004', 'replay operation must not be null', 'apply: NULL op');
SELECT is(loyalty.replay(d, op ORDER BY n)::text,
		  '{60 until 2027-01-01 00:00:00+00, 30 until infinity}', 'replay aggregate folds credits, releases and debits in order')
  FROM (VALUES (1, '{100 until 2027-01-01 00:00:00+00}'::loyalty.lots, 'credit'),
			   (2, '{pending 30 from 2026-03-01 00:00:00+00 until infinity}', 'credit'),
			   (3, '{pending 30 from 2026-03-01 00:00:00+00 until infinity}', 'release'),
			   (4, '{40 until 2027-01-01 00:00:00+00}', 'debit')) v(n, d, op);

SELECT * FROM finish();
ROLLBACK;
