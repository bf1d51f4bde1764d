------------------------------------------------------------------------------
-- Reporting: views for BI tools and KPI functions.  The roles
-- loyalty_reader, loyalty_app and loyalty_admin are made in grants.sql.  Views are evaluated
-- as of now().  Keep this section last: it revokes EXECUTE from PUBLIC on
-- every function above and grants by role, so a new API function needs a
-- line in the grant lists below (test/pgtap/roles.sql checks that none is missed).
------------------------------------------------------------------------------

-- The customers table is named only through set_kpi_customers(), which
-- checks it against the calling role (src/app_tables.c); the windows are
-- plain columns.
CREATE FUNCTION loyalty._kpi_customers_save(program_id integer, customers_table regclass,
											key_column name)
	RETURNS void
	AS 'MODULE_PATHNAME', 'loyalty_kpi_customers_save' LANGUAGE C VOLATILE;

CREATE FUNCTION loyalty.set_kpi_customers(customers_table regclass, key_column name,
										  program text DEFAULT NULL)
	RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN loyalty._kpi_customers_save((loyalty._program(program)).id, customers_table, key_column);
COMMENT ON FUNCTION loyalty.set_kpi_customers(regclass, name, text) IS
	'name the application''s customers table and its key column for program_kpis() (NULL, NULL: none)';

-- Why the program's customers table cannot be read now (NULL: it can, or none is set).
CREATE FUNCTION loyalty._kpi_customers_problem(program_id integer) RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_kpi_customers_problem' LANGUAGE C STABLE;

-- The key of every row of the program's customers table, as text, read as
-- the table's owner.  ROWS: a whole table, so that the join with members
-- hashes instead of probing the index per customer (7 times slower at 500k).
CREATE FUNCTION loyalty._customer_keys(program_id integer) RETURNS TABLE (key text)
	AS 'MODULE_PATHNAME', 'loyalty_customer_keys' LANGUAGE C STABLE ROWS 1000000;

-- (customer, purchase time on the program's wall clock) of a tracked
-- table's purchases in [from_local, to_local), reversed statuses left out,
-- read as the table's owner.
CREATE FUNCTION loyalty._purchase_times(track_id integer, from_local timestamp,
										to_local timestamp, time_zone text)
	RETURNS TABLE (customer text, local_time timestamp)
	AS 'MODULE_PATHNAME', 'loyalty_purchase_times' LANGUAGE C STABLE ROWS 1000000;

-- Each member's lots as of now(), with an inactivity expiry that is due but
-- not yet written applied (as member_lots() does).  The base of the views.
-- A member's lots as of now() replayed from the ledger, as the owner: the
-- views call it for members whose stored lots do not tell (an activity
-- after their last settlement), and their readers may not read the ledger.
-- It answers nothing member_summary does not show them.
CREATE FUNCTION loyalty._lots_now(program_id integer, member_key text) RETURNS loyalty.lots
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN (SELECT loyalty._lots_at(m, now()) FROM loyalty.members m
			 WHERE m.program_id = _lots_now.program_id AND m.member_key = _lots_now.member_key);

CREATE VIEW loyalty._members_now AS
SELECT m.program_id, p.code AS program_code, p.currency, p.point_value, p.time_zone,
	   m.member_key, m.enrolled_at, m.first_purchase_at, m.last_activity_at, m.tier,
	   m.tier_since, m.tier_valid_until, m.activity,
	   -- (a subquery here would be costed for every member and set off JIT;
	   -- deadline IS NOT NULL first: NULL AND f() still calls f())
	   CASE WHEN d.deadline IS NULL THEN
				 -- debt is paid by pending lots as they are released
				 CASE WHEN loyalty.lots_debt(m.balance) > 0
					  THEN (loyalty.lots_settle(m.balance, now())).remaining ELSE m.balance END
			-- an activity after the last settlement: only the ledger tells
			WHEN m.last_activity_at > coalesce(m.settled_at, '-infinity')
			THEN loyalty._lots_now(m.program_id, m.member_key)
			WHEN d.deadline <= now() AND d.deadline > coalesce(m.settled_at, '-infinity')
			THEN loyalty._inactive_after(m.balance, d.deadline)
			ELSE m.balance END AS lots
  FROM loyalty.members m
  JOIN loyalty.programs p ON p.id = m.program_id
-- inactivity_deadline() spelled out: a function with SET search_path is not
-- inlined, and calling it per member costs more than the rest of the row
 CROSS JOIN LATERAL (SELECT CASE WHEN p.expiry_policy = 'inactivity' AND m.last_activity_at IS NOT NULL
							THEN loyalty.tz_add(m.last_activity_at, p.expiry_interval, p.time_zone) END)
	   AS d(deadline);

CREATE VIEW loyalty.member_summary AS
SELECT n.program_code, n.member_key, n.enrolled_at,
	   loyalty.lots_available(n.lots, now()) AS available,
	   loyalty.lots_pending(n.lots, now()) AS pending,
	   loyalty.lots_expiring(n.lots, now(), now() + interval '30 days') AS expiring_30d,
	   loyalty.lots_debt(n.lots) AS debt,
	   n.tier, n.tier_since, n.tier_valid_until,
	   -- three calls: a function in FROM fills a tuplestore per member, and a
	   -- subquery with OFFSET keeps the scan from using parallel workers
	   (loyalty.activity_total(n.activity)).spend AS lifetime_spend,
	   (loyalty.activity_total(n.activity)).orders AS lifetime_orders,
	   (loyalty.activity_total(n.activity)).points AS lifetime_purchase_points,
	   n.first_purchase_at, n.last_activity_at
  FROM loyalty._members_now n;
COMMENT ON VIEW loyalty.member_summary IS
	'one row per member as of now(): points available, pending, expiring in 30 days, tier, lifetime purchases';

CREATE VIEW loyalty.ledger_entries AS
SELECT p.code AS program_code, l.member_key, l.seq, l.kind::text AS kind, l.points,
	   l.effective_at, l.recorded_at, l.reference, l.reason,
	   -- the latest expiry among the lots moved; NULL for points that never expire
	   nullif((SELECT max(e.expires_at) FROM loyalty.lots_entries(l.lots) e), 'infinity') AS expires_at,
	   coalesce(t.table_name::text, t.dropped_name) AS purchase_table
  FROM loyalty.ledger l
  JOIN loyalty.programs p ON p.id = l.program_id
  LEFT JOIN loyalty.tracked_tables t ON t.id = l.track_id;
COMMENT ON VIEW loyalty.ledger_entries IS
	'the ledger with program code and expiry instead of ids and lots; (program_code, member_key, seq) names an entry';

CREATE VIEW loyalty.tier_distribution AS
WITH counts AS (
	SELECT m.program_id, m.tier, count(*) AS members
	  FROM loyalty.members m GROUP BY m.program_id, m.tier
), tier_rows AS (
	-- every tier of the ladder, and tiers held that are not (or no longer) on it
	SELECT t.program_id, t.name AS tier, t.rank FROM loyalty.tiers t
	UNION ALL
	SELECT c.program_id, c.tier, NULL FROM counts c
	 WHERE NOT EXISTS (SELECT 1 FROM loyalty.tiers t
						WHERE t.program_id = c.program_id AND t.name = c.tier)
)
SELECT p.code AS program_code, r.tier, r.rank, coalesce(c.members, 0) AS members,
	   round(coalesce(c.members, 0)::numeric
			 / nullif(sum(coalesce(c.members, 0)) OVER (PARTITION BY p.id), 0), 4) AS share
  FROM tier_rows r
  JOIN loyalty.programs p ON p.id = r.program_id
  LEFT JOIN counts c ON c.program_id = r.program_id AND c.tier IS NOT DISTINCT FROM r.tier;
COMMENT ON VIEW loyalty.tier_distribution IS
	'members per tier and program (tier NULL: members without a tier), with each tier''s share';

-- Points the program owes: what its members may still use, valued at
-- point_value in the program's currency.  A member's available points are
-- net of debt (a member never holds usable points and debt at once: one in
-- debt has none), and the debt is paid by the member's own pending points
-- as they are released; so each member counts available + pending, never
-- less than 0.  Debt beyond a member's points is owed to the program
-- (debt_points): it does not reduce what the other members hold.  Sums over
-- members are numeric: each member's points fit in a bigint, a program's
-- total need not.
CREATE VIEW loyalty.points_liability AS
SELECT p.code AS program_code, p.currency, p.point_value,
	   count(n.member_key) AS members,
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
CREATE VIEW loyalty.points_liability_by_month AS
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

-- Breakage by cohort (materialized: see refresh_reports): points credited
-- by earn and pending entries in a month (program time zone), and how many
-- of them expired (expire entries, written by run_maintenance or by the
-- member's next activity).  Lots carry
-- their expiry, not their origin: a member's points expired at an instant
-- are shared among the member's cohorts that created lots expiring then, in
-- proportion to what each created (exact unless one expiry instant, such as
-- a period end or inactivity, covers several months of a member's points).
-- Only members with expiries have their lots unpacked.
CREATE MATERIALIZED VIEW loyalty.breakage_by_cohort AS
WITH earned AS (
	SELECT l.program_id, loyalty.activity_month(l.effective_at, p.time_zone) AS cohort_month,
		   sum(l.points) AS points
	  FROM loyalty.ledger l
	  JOIN loyalty.programs p ON p.id = l.program_id
	 WHERE l.kind IN ('earn', 'pending')
	 GROUP BY 1, 2
), expired AS MATERIALIZED (
	-- an inactivity expiry given back (reinstate) did not expire
	SELECT l.program_id, l.member_key, e.expires_at,
		   sum(CASE WHEN l.kind = 'reinstate' THEN -e.points ELSE e.points END) AS points
	  FROM loyalty.ledger l
	 CROSS JOIN LATERAL loyalty.lots_entries(l.lots) e
	 WHERE l.kind IN ('expire', 'reinstate') AND e.state <> 'debt'
	 GROUP BY 1, 2, 3
), credited AS (
	SELECT l.program_id, l.member_key, loyalty.activity_month(l.effective_at, p.time_zone) AS cohort_month,
		   e.expires_at, sum(e.points) AS points
	  FROM loyalty.ledger l
	  JOIN loyalty.programs p ON p.id = l.program_id
	 CROSS JOIN LATERAL loyalty.lots_entries(l.lots) e
	 WHERE l.kind IN ('earn', 'pending') AND e.state <> 'debt'
	   AND (l.program_id, l.member_key) IN (SELECT x.program_id, x.member_key FROM expired x)
	 GROUP BY 1, 2, 3, 4
), shared AS (
	SELECT c.program_id, c.cohort_month,
		   sum(x.points * c.points / w.total) AS points
	  FROM credited c
	  JOIN (SELECT c2.program_id, c2.member_key, c2.expires_at, sum(c2.points) AS total
			  FROM credited c2 GROUP BY 1, 2, 3) w
		ON w.program_id = c.program_id AND w.member_key = c.member_key
	   AND w.expires_at = c.expires_at
	  JOIN expired x ON x.program_id = c.program_id AND x.member_key = c.member_key
	   AND x.expires_at = c.expires_at
	 GROUP BY 1, 2
)
SELECT p.code AS program_code, e.cohort_month, e.points AS earned_points,
	   round(coalesce(s.points, 0)) AS expired_points,
	   round(coalesce(s.points, 0) / nullif(e.points, 0), 4) AS breakage_rate,
	   now() AS refreshed_at
  FROM earned e
  JOIN loyalty.programs p ON p.id = e.program_id
  LEFT JOIN shared s ON s.program_id = e.program_id AND s.cohort_month = e.cohort_month;
CREATE UNIQUE INDEX breakage_by_cohort_key ON loyalty.breakage_by_cohort (program_code, cohort_month);
COMMENT ON MATERIALIZED VIEW loyalty.breakage_by_cohort IS
	'per program and earning month: points earned, points of them expired, and the ratio; as of refresh_reports()';

CREATE VIEW loyalty.expiring_soon AS
SELECT * FROM loyalty.expiring_points(interval '30 days', now());
COMMENT ON VIEW loyalty.expiring_soon IS
	'members with points expiring in the next 30 days (expiring_points() as of now())';

-- Members ranked by the points their purchases earned in the months
-- from_month..to_month (program time zone; -infinity/infinity: open ends).
-- Ties at the cut are broken by member key.
CREATE FUNCTION loyalty.leaderboard(from_month date, to_month date, top integer DEFAULT 100,
									program text DEFAULT NULL)
	RETURNS TABLE (program_code text, rank bigint, member_key text, points bigint,
				   spend numeric, orders bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	IF from_month IS NULL OR to_month IS NULL OR from_month > to_month THEN
		RAISE EXCEPTION 'leaderboard period is empty or null' USING ERRCODE = '22023',
			HINT = 'Pass from_month <= to_month.';
	END IF;
	IF top IS NULL OR top < 1 THEN
		RAISE EXCEPTION 'top must be positive' USING ERRCODE = '22023';
	END IF;
	IF program IS NOT NULL THEN
		PERFORM loyalty._program(program);	-- LY003 for an unknown code
	END IF;
	RETURN QUERY
		SELECT p.code, rank() OVER (PARTITION BY p.code ORDER BY b.points DESC), b.member_key,
			   b.points, b.spend, b.orders
		  FROM loyalty.programs p
		 CROSS JOIN LATERAL (
			SELECT m.member_key, s.points, s.spend, s.orders
			  FROM loyalty.members m
			 CROSS JOIN LATERAL loyalty.activity_sum(m.activity, from_month, to_month) s
			 WHERE m.program_id = p.id AND s.points > 0
			 ORDER BY s.points DESC, m.member_key
			 LIMIT top) b
		 WHERE leaderboard.program IS NULL OR p.code = leaderboard.program
		 ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION loyalty.leaderboard(date, date, integer, text) IS
	'the top members by points earned from purchases in a range of months';

CREATE VIEW loyalty.leaderboard AS
SELECT b.program_code, w.period, w.from_month AS period_start, b.rank, b.member_key, b.points,
	   b.spend, b.orders
  FROM loyalty.programs p
 CROSS JOIN LATERAL (VALUES
		('month', loyalty.activity_month(now(), p.time_zone)),
		('year', date_trunc('year', loyalty.activity_month(now(), p.time_zone))::date),
		('lifetime', '-infinity'::date)) AS w(period, from_month)
 CROSS JOIN LATERAL loyalty.leaderboard(w.from_month, 'infinity', 100, p.code) b;
COMMENT ON VIEW loyalty.leaderboard IS
	'top 100 members per program by purchase points this month, this year and ever (program time zone)';

-- Program KPIs as of now().  Windows default to loyalty.kpi_settings, else
-- 90 days and 12 months.  The enrolment rate needs the application's
-- customers table (kpi_settings.customers_table); without it the customer
-- columns are NULL and note says so.
CREATE FUNCTION loyalty.program_kpis(days integer DEFAULT NULL, months integer DEFAULT NULL,
									 program text DEFAULT NULL)
	RETURNS TABLE (program_code text, members bigint, customers bigint, enrolled_customers bigint,
				   enrolment_rate numeric, active_days integer, active_members bigint,
				   activation_rate numeric, window_months integer, buying_members bigint,
				   orders bigint, spend numeric, purchase_frequency numeric,
				   average_basket numeric, lifetime_spend numeric, lifetime_buyers bigint,
				   customer_lifetime_value numeric, note text)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	k loyalty.kpi_settings;
	this_month date;
	s record;
	problem text;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM loyalty._program(program);	-- LY003 for an unknown code
	END IF;
	IF days < 1 OR months NOT BETWEEN 1 AND 120 THEN
		RAISE EXCEPTION 'days must be positive and months between 1 and 120'
			USING ERRCODE = '22023';
	END IF;
	FOR p IN SELECT * FROM loyalty.programs x
			  WHERE program_kpis.program IS NULL OR x.code = program_kpis.program ORDER BY x.code LOOP
		SELECT * INTO k FROM loyalty.kpi_settings x WHERE x.program_id = p.id;
		program_code := p.code;
		active_days := coalesce(days, k.active_days, 90);
		window_months := coalesce(months, k.window_months, 12);
		this_month := loyalty.activity_month(now(), p.time_zone);
		SELECT count(*) AS members,
			   count(*) FILTER (WHERE m.last_activity_at > now() - make_interval(days => active_days))
				   AS active,
			   count(*) FILTER (WHERE w.orders > 0) AS buyers,
			   coalesce(sum(w.orders), 0) AS orders, coalesce(sum(w.spend), 0) AS spend,
			   coalesce(sum(t.spend), 0) AS lifetime_spend,
			   count(*) FILTER (WHERE t.orders > 0) AS lifetime_buyers
		  INTO s
		  FROM loyalty.members m
		 CROSS JOIN LATERAL loyalty.activity_sum(m.activity,
							(this_month - make_interval(months => window_months - 1))::date,
							this_month) w
		 CROSS JOIN LATERAL loyalty.activity_total(m.activity) t
		 WHERE m.program_id = p.id;
		members := s.members;
		active_members := s.active;
		activation_rate := round(s.active::numeric / nullif(s.members, 0), 4);
		buying_members := s.buyers;
		orders := s.orders::bigint;
		spend := s.spend;
		purchase_frequency := round(s.orders::numeric / nullif(s.buyers, 0), 4);
		average_basket := round(s.spend / nullif(s.orders, 0), 2);
		lifetime_spend := s.lifetime_spend;
		lifetime_buyers := s.lifetime_buyers;
		customer_lifetime_value := round(s.lifetime_spend / nullif(s.lifetime_buyers, 0), 2);
		customers := NULL; enrolled_customers := NULL; enrolment_rate := NULL;
		problem := loyalty._kpi_customers_problem(p.id);
		IF k.customers_table IS NULL THEN
			note := 'enrolment rate needs a customers table: loyalty.set_kpi_customers()';
		ELSIF problem IS NOT NULL THEN
			-- the table changed since it was set: this program's figure only is missing
			note := format('customers table %s cannot be read: %s', k.customers_table, problem);
		ELSE
			SELECT count(*), count(m.member_key) INTO customers, enrolled_customers
			  FROM loyalty._customer_keys(p.id) c
			  LEFT JOIN loyalty.members m ON m.program_id = p.id AND m.member_key = c.key;
			enrolment_rate := round(enrolled_customers::numeric / nullif(customers, 0), 4);
			note := NULL;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.program_kpis(integer, integer, text) IS
	'per program as of now(): enrolment and activation rates, purchase frequency, average basket, lifetime value';

CREATE VIEW loyalty.program_kpis AS SELECT * FROM loyalty.program_kpis();
COMMENT ON VIEW loyalty.program_kpis IS
	'program_kpis() with the windows of loyalty.kpi_settings (default 90 days, 12 months)';

-- Retention from the tracked purchase tables: of the customers who bought in
-- a period, how many bought again in the next one, for members (customer
-- keys with a member row in the program) and non-members.  The last
-- "periods" periods whose next period has ended, in the program time zone;
-- reversed purchases (status in reversed_statuses) do not count.
CREATE FUNCTION loyalty.retention(period text DEFAULT 'month', periods integer DEFAULT 12,
								  program text DEFAULT NULL)
	RETURNS TABLE (program_code text, period_start date, customer_group text, customers bigint,
				   retained bigint, retention_rate numeric)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	t loyalty.tracked_tables;
	step interval;
	hi timestamp;		-- start of the current period, program wall clock
	lo timestamp;
	problem text;
	ids integer[];
BEGIN
	IF period IS NULL OR period NOT IN ('week', 'month', 'quarter', 'year') THEN
		RAISE EXCEPTION 'unknown period "%"', period
			USING ERRCODE = '22023', HINT = 'Use week, month, quarter or year.';
	END IF;
	IF periods IS NULL OR periods NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'periods must be between 1 and 1000' USING ERRCODE = '22023';
	END IF;
	IF program IS NOT NULL THEN
		PERFORM loyalty._program(program);	-- LY003 for an unknown code
	END IF;
	step := CASE period WHEN 'week' THEN interval '1 week' WHEN 'month' THEN interval '1 month'
						WHEN 'quarter' THEN interval '3 months' ELSE interval '1 year' END;
	FOR p IN SELECT * FROM loyalty.programs x
			  WHERE retention.program IS NULL OR x.code = retention.program ORDER BY x.code LOOP
		hi := date_trunc(period, now() AT TIME ZONE p.time_zone);
		lo := hi - step * (periods + 1);
		ids := '{}';
		FOR t IN SELECT * FROM loyalty.tracked_tables x
				  WHERE x.program_id = p.id AND x.active AND x.time_column IS NOT NULL
				  ORDER BY x.id LOOP
			-- a table changed since it was tracked is left out, not an error for everyone
			problem := loyalty._tracked_table_problem(t.id);
			IF problem IS NOT NULL THEN
				RAISE WARNING 'retention leaves out tracked table %: %', t.table_name, problem;
				CONTINUE;
			END IF;
			ids := ids || t.id;
		END LOOP;
		IF cardinality(ids) = 0 THEN
			CONTINUE;
		END IF;
		-- the purchases are read as each table's owner (src/app_tables.c)
		RETURN QUERY
			WITH bought AS MATERIALIZED (
				SELECT DISTINCT x.customer, date_trunc(period, x.local_time) AS ps
				  FROM unnest(ids) AS i(id)
				 CROSS JOIN LATERAL loyalty._purchase_times(i.id, lo, hi, p.time_zone) x
			)
			SELECT p.code, a.ps::date, CASE WHEN m.member_key IS NULL THEN 'non_member' ELSE 'member' END,
				   count(*), count(b.customer), round(count(b.customer)::numeric / count(*), 4)
			  FROM bought a
			  LEFT JOIN bought b ON b.customer = a.customer AND b.ps = a.ps + step
			  LEFT JOIN loyalty.members m ON m.program_id = p.id AND m.member_key = a.customer
			 WHERE a.ps < hi - step
			 GROUP BY 2, 3 ORDER BY 2, 3;
	END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.retention(text, integer, text) IS
	'of the customers who bought in a period, the share who bought again in the next; members versus non-members';

-- It reads a year of purchases: materialized, and refreshed by refresh_reports().
CREATE MATERIALIZED VIEW loyalty.retention AS
SELECT r.*, now() AS refreshed_at FROM loyalty.retention('month', 12) r;
CREATE UNIQUE INDEX retention_key ON loyalty.retention (program_code, period_start, customer_group);
COMMENT ON MATERIALIZED VIEW loyalty.retention IS
	'monthly retention of members and non-members over the last 12 months whose next month has ended; as of refresh_reports()';

-- Breakage and retention read the whole ledger or a year of purchases: they
-- are materialized views, refreshed here (concurrently: readers are not
-- blocked), e.g. nightly after run_maintenance().
CREATE FUNCTION loyalty.refresh_reports() RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	-- progress: view maintenance_progress
	PERFORM loyalty._progress('reports', 0, 2, 'views');
	REFRESH MATERIALIZED VIEW CONCURRENTLY loyalty.breakage_by_cohort;
	PERFORM loyalty._progress('reports', 1, 2, 'views');
	REFRESH MATERIALIZED VIEW CONCURRENTLY loyalty.retention;
	PERFORM loyalty._progress(NULL, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION loyalty.refresh_reports() IS
	'recompute the materialized reports (breakage_by_cohort, retention); schedule it like run_maintenance()';

