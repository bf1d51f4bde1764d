-- The liability reports against sums computed on their own from each
-- member's ledger, with debt and pending points present (issue #20:
-- points_liability subtracted debt twice, and points_liability_by_month did
-- not add up to it).  The liability is what members may still use: their
-- available and pending points, less the debt those same points will pay
-- when they are released; a debt larger than a member's points is owed to
-- the program and takes nothing from what the others hold.
\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(14);

-- shop: points pending for 2 months, then valid for 12; club: pending for
-- 7 days, never expire.  Instants are relative to now(), fixed in this
-- transaction; no lot expires before now() + 8 months.
INSERT INTO loyalty.programs (code, name, currency, point_value, expiry_policy, expiry_interval,
							  pending_interval, time_zone, is_default)
VALUES ('shop', 'Shop', 'EUR', 0.01, 'after', '12 months', '2 months', 'UTC', true),
	   ('club', 'Club', 'USD', 0.05, 'never', NULL, '7 days', 'UTC', false);
SELECT loyalty.enroll(k) FROM unnest('{ann,bob,cat,dan,eve}'::text[]) k \g /dev/null
SELECT loyalty.enroll('zoe', 'club') \g /dev/null

-- debt: an order's points, released and redeemed, then the order refunded
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, at timestamptz, status text);
CREATE TABLE club_orders (LIKE orders INCLUDING ALL);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at', status_column => 'status') \g /dev/null
SELECT loyalty.track_purchases('club_orders', 'customer', 'total', 'at', status_column => 'status',
							   program => 'club') \g /dev/null
INSERT INTO orders SELECT i, c, t, now() - interval '100 days', 'paid'
  FROM (VALUES (1, 'bob', 300), (2, 'cat', 100), (3, 'dan', 200), (4, 'eve', 50)) v(i, c, t);
INSERT INTO club_orders VALUES (1, 'zoe', 70, now() - interval '30 days', 'paid');
SELECT loyalty.redeem(c, t, 'spent-' || c) FROM (VALUES ('bob', 300), ('cat', 100), ('dan', 200), ('eve', 50)) v(c, t) \g /dev/null
SELECT loyalty.redeem('zoe', 70, 'spent-zoe', 'club') \g /dev/null
UPDATE orders SET status = 'refunded';
UPDATE club_orders SET status = 'refunded';

-- ann: 500 available, 40 pending, no debt                 -> 540
-- bob: owes 300, nothing else                              -> 0 (not -300)
-- cat: owes 100, 250 pending                               -> 150
-- dan: owes 200, 80 pending                                -> 0 (still owes 120)
-- eve: owes 50, 30 pending (released first) and 60 pending -> 0 + 40
-- zoe (club): owes 70, 100 pending, never expiring         -> 30
SELECT loyalty.earn('ann', 500, 'a1', now() - interval '6 months') \g /dev/null
SELECT loyalty.earn('ann', 40, 'a2', now() - interval '10 days') \g /dev/null
SELECT loyalty.earn('cat', 250, 'c2', now() - interval '5 days') \g /dev/null
SELECT loyalty.earn('dan', 80, 'd2', now() - interval '3 days') \g /dev/null
SELECT loyalty.earn('eve', 30, 'e2', now() - interval '40 days') \g /dev/null
SELECT loyalty.earn('eve', 60, 'e3', now() - interval '5 days') \g /dev/null
SELECT loyalty.earn('zoe', 100, 'z2', now() - interval '1 day', 'club') \g /dev/null

SELECT results_eq(
	$$SELECT member_key COLLATE "default", available, pending, debt FROM loyalty.member_summary ORDER BY member_key$$,
	$$VALUES ('ann', 500::bigint, 40::bigint, 0::bigint), ('bob', -300, 0, 300), ('cat', -100, 250, 100),
			 ('dan', -200, 80, 200), ('eve', -50, 90, 50), ('zoe', -70, 100, 70)$$,
	'the members: debt, pending points, and available points net of debt');

-- Independent sums, member by member, from the ledger: no lot has expired,
-- so a member's entries add up to the points held less the debt
SELECT is_empty($$SELECT 1 FROM loyalty.ledger WHERE kind = 'expire'$$, 'no points have expired');
CREATE TEMP TABLE net AS
SELECT p.code AS program_code, m.member_key, sum(l.points) AS points
  FROM loyalty.members m JOIN loyalty.programs p ON p.id = m.program_id
  JOIN loyalty.ledger l ON l.program_id = m.program_id AND l.member_key = m.member_key
 GROUP BY 1, 2;
-- ... and from each member's lots replayed by the API three months on, when
-- every pending lot is released (and has paid what it pays of the debt)
-- and none has expired yet: what is left in lots is what the member may use
CREATE TEMP TABLE later AS
SELECT p.code AS program_code, m.member_key, e.*
  FROM loyalty.members m JOIN loyalty.programs p ON p.id = m.program_id
 CROSS JOIN LATERAL loyalty.lots_entries(loyalty.member_lots(m.member_key, now() + interval '3 months', p.code)) e;
-- ... and the lots as of now, for the columns before the liability
CREATE TEMP TABLE held AS
SELECT p.code AS program_code, m.member_key, e.*
  FROM loyalty.members m JOIN loyalty.programs p ON p.id = m.program_id
 CROSS JOIN LATERAL loyalty.lots_entries(loyalty.member_lots(m.member_key, now(), p.code)) e;
SELECT is((SELECT count(*) FROM later WHERE state = 'pending' AND release_at > now() + interval '3 months'),
	0::bigint, 'three months on, every pending lot is released');

SELECT results_eq(
	$$SELECT program_code, members, available_points, pending_points, debt_points, liability_points, liability_value
		FROM loyalty.points_liability ORDER BY program_code$$,
	$$VALUES ('club', 1::bigint, 0::numeric, 100::numeric, 70::numeric, 30::numeric, 1.50::numeric),
			 ('shop', 5, 500, 460, 650, 730, 7.30)$$,
	'points_liability: available, pending, debt, and the liability members may still use');
SELECT results_eq(
	$$SELECT program_code, liability_points FROM loyalty.points_liability ORDER BY 1$$,
	$$SELECT program_code, sum(greatest(points, 0)) FROM net GROUP BY 1 ORDER BY 1$$,
	'liability_points: each member''s ledger total, a debt beyond the member''s points counted as 0');
SELECT results_eq(
	$$SELECT program_code, liability_points FROM loyalty.points_liability ORDER BY 1$$,
	$$SELECT program_code, sum(points) FILTER (WHERE state <> 'debt') FROM later GROUP BY 1 ORDER BY 1$$,
	'liability_points: what is left in the members'' lots once their pending points have paid their debt');
SELECT results_eq(
	$$SELECT program_code, available_points, pending_points, debt_points FROM loyalty.points_liability ORDER BY 1$$,
	$$SELECT program_code,
			 coalesce(sum(points) FILTER (WHERE state = 'lot' OR (state = 'pending' AND release_at <= now())), 0),
			 coalesce(sum(points) FILTER (WHERE state = 'pending' AND release_at > now()), 0),
			 coalesce(-sum(points) FILTER (WHERE state = 'debt'), 0)
		FROM held GROUP BY 1 ORDER BY 1$$,
	'available, pending and debt points: the members'' lots as of now added up');
SELECT is((SELECT liability_value FROM loyalty.points_liability WHERE program_code = 'shop'),
	(SELECT sum(greatest(points, 0)) * 0.01 FROM net WHERE program_code = 'shop'),
	'liability_value: the liability at the point value');

-- by month of expiry
SELECT results_eq(
	$$SELECT program_code, expiry_month, points FROM loyalty.points_liability_by_month
	   ORDER BY program_code, expiry_month$$,
	$$SELECT program_code,
			 CASE WHEN isfinite(expires_at) THEN date_trunc('month', expires_at AT TIME ZONE 'UTC')::date END,
			 sum(points)
		FROM later WHERE state <> 'debt'
	   GROUP BY 1, 2 ORDER BY 1, 2$$,
	'points_liability_by_month: per month of expiry, what is left in the lots once pending points have paid the debt');
SELECT results_eq(
	$$SELECT l.program_code, l.liability_points, l.available_points FROM loyalty.points_liability l
	   ORDER BY 1$$,
	$$SELECT program_code, sum(points), sum(available_points) FROM loyalty.points_liability_by_month
	   GROUP BY 1 ORDER BY 1$$,
	'points_liability_by_month adds up to points_liability, available points included');
SELECT is((SELECT sum(pending_points) FROM loyalty.points_liability_by_month WHERE program_code = 'shop'),
	(SELECT liability_points - available_points FROM loyalty.points_liability WHERE program_code = 'shop'),
	'its pending points are the pending points less the debt they pay');
-- eve's debt of 50 takes her first pending lot (30) and 20 of the second
-- (60): the month her second lot expires holds 40 of hers, cat's 250 less
-- his debt of 100, and ann's 40 if she earned them in the same month
SELECT is((SELECT points FROM loyalty.points_liability_by_month
			WHERE expiry_month = (SELECT date_trunc('month', now() - interval '5 days' + interval '14 months')::date)),
	(SELECT (60 - 20) + (250 - 100) + CASE WHEN date_trunc('month', now() - interval '10 days')
												= date_trunc('month', now() - interval '5 days') THEN 40 ELSE 0 END)::numeric,
	'the debt is paid by the pending lots in the order of their release');
SELECT is((SELECT points FROM loyalty.points_liability_by_month WHERE program_code = 'club'),
	30::numeric, 'points that never expire, less the debt they pay: expiry_month NULL');
SELECT is_empty($$SELECT 1 FROM loyalty.points_liability_by_month WHERE points <= 0$$,
	'no month of points that all go to paying debt');

SELECT * FROM finish();
ROLLBACK;
