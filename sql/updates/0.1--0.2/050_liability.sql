-- points_liability subtracted debt twice (available points are already
-- net of it) and points_liability_by_month left it out: the liability is
-- now what members may still use, per member available + pending and never
-- below 0, and the months take each member's debt from the lots that pay
-- it (docs/analysts.md).  The views as in sql/src/reports.sql.

-- Points the program owes: what its members may still use, valued at
-- point_value in the program's currency.  A member's available points are
-- net of debt (a member never holds usable points and debt at once: one in
-- debt has none), and the debt is paid by the member's own pending points
-- as they are released; so each member counts available + pending, never
-- less than 0.  Debt beyond a member's points is owed to the program
-- (debt_points): it does not reduce what the other members hold.  Sums over
-- members are numeric: each member's points fit in a bigint, a program's
-- total need not.
CREATE OR REPLACE VIEW loyalty.points_liability AS
SELECT p.code AS program_code, p.currency, p.point_value,
	   count(n.id) AS members,
	   coalesce(sum(greatest(loyalty.lots_available(n.lots, now()), 0)), 0) AS available_points,
	   coalesce(sum(loyalty.lots_pending(n.lots, now())), 0) AS pending_points,
	   coalesce(sum(loyalty.lots_debt(n.lots)), 0) AS debt_points,
	   coalesce(sum(greatest(loyalty.lots_available(n.lots, now())::numeric
							 + loyalty.lots_pending(n.lots, now()), 0)), 0) AS liability_points,
	   coalesce(sum(greatest(loyalty.lots_available(n.lots, now())::numeric
							 + loyalty.lots_pending(n.lots, now()), 0)), 0) * p.point_value AS liability_value
  FROM loyalty.programs p
  LEFT JOIN loyalty._members_now n ON n.program_id = p.id
 GROUP BY p.id;
COMMENT ON VIEW loyalty.points_liability IS
	'per program as of now(): points available, pending and owed as debt, and the points members may still use (liability) with their value in the program currency';

-- The same by the calendar month (program time zone) in which the points
-- expire; expiry_month NULL for points that never expire.  A member's debt
-- is taken from the member's points in the order lots_entries() lists them,
-- the order in which they pay it: usable lots, then pending lots by release
-- (and expiry); a month whose points all pay debt is left out.  The running
-- sum is a subquery that only members in debt run; OFFSET 0 computes each
-- member's lots once, not once per use (a replay for some), and the points
-- are bigint per lot (a member's fit), numeric only in the sums.
CREATE OR REPLACE VIEW loyalty.points_liability_by_month AS
SELECT d.program_code, d.currency,
	   CASE WHEN isfinite(e.expires_at) THEN loyalty.activity_month(e.expires_at, d.time_zone) END
		   AS expiry_month,
	   coalesce(sum(h.points) FILTER (WHERE e.state = 'lot' OR e.release_at <= now()), 0)
		   AS available_points,
	   coalesce(sum(h.points) FILTER (WHERE e.state = 'pending' AND e.release_at > now()), 0)
		   AS pending_points,
	   sum(h.points) AS points,
	   sum(h.points) * min(d.point_value) AS value
  FROM loyalty._members_now n
 CROSS JOIN LATERAL (SELECT n.program_code, n.currency, n.time_zone, n.point_value, n.lots,
							loyalty.lots_debt(n.lots) AS debt OFFSET 0) d
 CROSS JOIN LATERAL loyalty.lots_entries(d.lots) WITH ORDINALITY AS e(state, release_at, expires_at, points, i)
 CROSS JOIN LATERAL (
	SELECT CASE WHEN d.debt = 0 THEN e.points
				ELSE greatest(least(e.points,
									(SELECT sum(f.points)
									   FROM loyalty.lots_entries(d.lots) WITH ORDINALITY
											AS f(state, release_at, expires_at, points, i)
									  WHERE f.i <= e.i AND f.state <> 'debt' AND f.expires_at > now())::bigint
									- d.debt), 0) END) AS h(points)
 WHERE e.state <> 'debt' AND e.expires_at > now()
 GROUP BY 1, 2, 3
HAVING sum(h.points) > 0;
COMMENT ON VIEW loyalty.points_liability_by_month IS
	'outstanding points (available and pending, less the debt they pay) by program and month of expiry, in points and currency';
