-- The lots type: a member's points as lots sorted by expiry.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- Text form: items in any order, printed canonical (sorted, merged, UTC).
SELECT '{50 until infinity, 100 until 2027-01-31 23:00:00+00, 25 until 2027-01-31 23:00:00+00}'::loyalty.lots;
SELECT '{pending 20 from 2026-12-01 00:00:00+00 until infinity, debt 5}'::loyalty.lots;
SELECT '{}'::loyalty.lots;

-- Input in another zone is stored as the same instant.
SELECT '{10 until 2027-06-01 00:00:00 Europe/Berlin}'::loyalty.lots;

-- Bad input is a clear error.
SELECT '100 until infinity'::loyalty.lots;
SELECT '{100 until}'::loyalty.lots;
SELECT '{0 until infinity}'::loyalty.lots;
SELECT '{-5 until infinity}'::loyalty.lots;
SELECT '{9223372036854775808 until infinity}'::loyalty.lots;
SELECT '{9223372036854775807 until infinity, 1 until 2030-01-01 00:00:00+00}'::loyalty.lots;
SELECT '{5 until -infinity}'::loyalty.lots;
SELECT '{pending 5 from 2027-01-01 00:00:00+00 until 2026-01-01 00:00:00+00}'::loyalty.lots;

-- Spending is FIFO by soonest expiry among lots usable at the instant.
SELECT * FROM loyalty.lots_spend(
  '{100 until 2027-03-01 00:00:00+00, 100 until 2027-01-01 00:00:00+00, 100 until infinity}',
  150, '2026-12-01 00:00:00+00');

-- Lots past their expiry are not usable, even before an expiry job ran.
SELECT * FROM loyalty.lots_spend(
  '{100 until 2027-01-01 00:00:00+00, 100 until infinity}', 150, '2027-01-01 00:00:00+00');

-- Availability around the exact expiry instant.
SELECT t AS as_of, loyalty.lots_available('{100 until 2027-01-01 00:00:00+00}', t)
  FROM (VALUES (timestamptz '2026-12-31 23:59:59.999999+00'),
               ('2027-01-01 00:00:00+00'),
               ('2027-01-01 00:00:00.000001+00')) v(t);

-- Pending points count once released.
SELECT loyalty.lots_available(l, '2026-12-14 23:59:59+00') AS before_release,
       loyalty.lots_pending(l, '2026-12-14 23:59:59+00') AS pending_before,
       loyalty.lots_available(l, '2026-12-15 00:00:00+00') AS at_release
  FROM (SELECT '{pending 40 from 2026-12-15 00:00:00+00 until infinity}'::loyalty.lots) s(l);

-- Expire returns exactly what expired.
SELECT * FROM loyalty.lots_expire(
  '{10 until 2026-01-01 00:00:00+00, 20 until 2026-06-01 00:00:00+00, 30 until infinity}',
  '2026-06-01 00:00:00+00');

-- Debt (a reversal of points already spent) is paid off by new points first.
SELECT loyalty.lots_add('{debt 30}', 100, 'infinity');

-- Lots as rows.
SELECT * FROM loyalty.lots_entries(
  '{100 until 2027-01-01 00:00:00+00, pending 20 from 2026-12-01 00:00:00+00 until infinity}');
