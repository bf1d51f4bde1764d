------------------------------------------------------------------------------
-- Maintenance: releases, expiries and tier changes that fell due.  Balances
-- are right as of any instant without it; it writes the entries that make
-- the ledger and the stored lots say so, in batches, skipping locked members.
------------------------------------------------------------------------------

-- One batch of members with (program_id, member_key) in
-- ((after_program, after_key), (upto_program, upto_key)] whose lots have a
-- release or expiry due by as_of, settled with set-based statements.
-- Returns (members, entries, expired points, the batch's last member).
CREATE FUNCTION loyalty._maintain_lots(as_of timestamptz, batch_size integer,
									   after_program integer, after_key text,
									   upto_program integer, upto_key text,
									   OUT members bigint, OUT releases bigint,
									   OUT expiries bigint, OUT expired_points bigint,
									   OUT last_program integer, OUT last_key text)
	LANGUAGE sql
	SET search_path = pg_catalog, loyalty, pg_temp
	-- a batch is small next to the members table: reach its rows through the
	-- primary key, never by hashing or sorting the whole table; keep the
	-- batch in memory
	SET enable_hashjoin = off
	SET enable_mergejoin = off
	SET enable_seqscan = off
	SET enable_bitmapscan = off
	SET work_mem = '64MB'
	-- its cost estimate is high enough for JIT, which then compiles the
	-- plan again for every batch
	SET jit = off
AS $$
	-- batches in key order, found by walking the primary key (there is no
	-- index on next_event_at, so that the updates below stay HOT): the
	-- member rows and the ledger's indexes, which lead with the same key,
	-- are then written page after page, and all batches together read the
	-- table once.
	-- lots_settlement is called in the select list and its arrays unnested
	-- there (ProjectSet): as a LATERAL function scan, each call would fill
	-- and free a tuplestore of its own, which cost about a seventh of the time.
	-- It must stay in the select list for correctness too: when a member was
	-- updated and committed after this statement's snapshot, FOR UPDATE locks
	-- the new row version and EvalPlanQual recomputes the select list from
	-- it, but a LATERAL function scan would hand back its result for the old
	-- version, and the UPDATE below would undo the other transaction's change
	-- (a lost purchase award: docs/reliability.md, bugs found).
	WITH settled AS MATERIALIZED (
		SELECT m.program_id, m.member_key, loyalty.lots_settlement(m.balance, as_of) AS s
		  FROM loyalty.members m
		 WHERE m.next_event_at <= as_of
		   AND (m.program_id, m.member_key) > (after_program, after_key)
		   AND (m.program_id, m.member_key) <= (upto_program, upto_key)
		 ORDER BY m.program_id, m.member_key
		 LIMIT batch_size
		   FOR UPDATE OF m SKIP LOCKED
	), seqs AS MATERIALIZED (
		-- each member's next seq, read once the member is locked above (a
		-- volatile function reads with a snapshot of its own: this
		-- statement's may miss entries committed before the lock)
		SELECT st.program_id, st.member_key, st.s,
			   loyalty._next_seq(st.program_id, st.member_key) AS next_seq
		  FROM settled st
	), ins AS (
		-- generate_series runs beside the unnests
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
		SELECT sq.program_id, sq.member_key,
			   sq.next_seq + generate_series(0, cardinality((sq.s).kinds) - 1),
			   unnest((sq.s).kinds), unnest((sq.s).points),
			   unnest((sq.s).entry_lots), unnest((sq.s).effective)
		  FROM seqs sq
		RETURNING kind, points
	), upd AS (
		UPDATE loyalty.members m SET balance = (st.s).remaining
		  FROM settled st WHERE m.program_id = st.program_id AND m.member_key = st.member_key
		RETURNING 1
	), last AS (
		SELECT st.program_id, st.member_key FROM settled st
		 ORDER BY st.program_id DESC, st.member_key DESC LIMIT 1
	)
	SELECT (SELECT count(*) FROM upd), count(*) FILTER (WHERE i.kind = 'release'),
		   count(*) FILTER (WHERE i.kind = 'expire'),
		   coalesce(-sum(i.points) FILTER (WHERE i.kind = 'expire'), 0)::bigint,
		   (SELECT program_id FROM last), (SELECT member_key FROM last)
	  FROM ins i
$$;

-- Progress of run_maintenance and refresh_reports, written into this
-- session's pg_stat_activity query text (src/maintenance.c) and read back by
-- the view maintenance_progress; phase NULL ends the report and shows the
-- calling statement again.
CREATE FUNCTION loyalty._progress(phase text, done bigint, total bigint, unit text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'loyalty_progress' LANGUAGE C VOLATILE;

-- Members of inactivity programs whose deadline passed with points left
-- and is not written, and members with an activity after their last
-- settlement (deadlines between their activities are found by a replay).
CREATE FUNCTION loyalty._maintain_inactive(as_of timestamptz, batch_size integer,
										   OUT members bigint, OUT expired_points bigint)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	m loyalty.members;
	before bigint;
	programs bigint := (SELECT count(*) FROM loyalty.programs WHERE expiry_policy = 'inactivity');
	done bigint := 0::bigint;
BEGIN
	members := 0;
	expired_points := 0;
	PERFORM loyalty._progress('inactivity', done, programs, 'programs');
	FOR p IN SELECT * FROM loyalty.programs WHERE expiry_policy = 'inactivity' LOOP
		-- no index: a partial one would cost every purchase a non-HOT
		-- update; inactivity programs pay a scan of their members per run
		FOR m IN SELECT * FROM loyalty.members mm
				  WHERE mm.program_id = p.id
					AND ((loyalty.lots_points(mm.balance) > 0
						  AND loyalty.inactivity_deadline(p, mm.last_activity_at) <= as_of
						  AND loyalty.inactivity_deadline(p, mm.last_activity_at)
							  > coalesce(mm.settled_at, '-infinity'))
						 OR (mm.last_activity_at > coalesce(mm.settled_at, '-infinity')
							 AND coalesce(mm.settled_at, '-infinity') < as_of))
				  ORDER BY mm.last_activity_at
				  LIMIT batch_size
				    FOR UPDATE SKIP LOCKED
		LOOP
			before := loyalty.lots_points(m.balance);
			m.balance := loyalty._settle(m, as_of);
			UPDATE loyalty.members
			   SET balance = m.balance, settled_at = greatest(settled_at, as_of)
			 WHERE program_id = m.program_id AND member_key = m.member_key;
			IF loyalty.lots_points(m.balance) <> before THEN
				members := members + 1;
				expired_points := expired_points + before - loyalty.lots_points(m.balance);
			END IF;
		END LOOP;
		done := done + 1;
		PERFORM loyalty._progress('inactivity', done, programs, 'programs');
	END LOOP;
END
$$;

-- Lot settlement spread over background workers (src/maintenance.c): each
-- worker takes the next range of batch_size members (the ranges' bounds
-- read from the primary key first), settles them with _maintain_lots and
-- commits, until none are left.
CREATE FUNCTION loyalty._maintain_parallel(as_of timestamptz, batch_size integer, workers integer,
										   OUT members bigint, OUT releases bigint,
										   OUT expiries bigint, OUT expired_points bigint)
	AS 'MODULE_PATHNAME', 'loyalty_maintain_parallel' LANGUAGE C VOLATILE;

CREATE FUNCTION loyalty.run_maintenance(as_of timestamptz DEFAULT now(),
										batch_size integer DEFAULT 10000,
										workers integer DEFAULT 0)
	RETURNS TABLE (task text, members bigint, entries bigint, points bigint)
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	b record;
	last_program integer := 0;
	last_key text := '';
	due bigint;
	n_members bigint := 0::bigint;
	n_releases bigint := 0::bigint;
	n_expiries bigint := 0::bigint;
	n_points bigint := 0::bigint;
BEGIN
	IF as_of IS NULL OR as_of > now() THEN
		RAISE EXCEPTION 'maintenance cannot run ahead of time'
			USING ERRCODE = '22023',
				  DETAIL = format('as_of is %s, now() is %s.', coalesce(as_of::text, 'NULL'), now()),
				  HINT = 'Pass an instant no later than now(); balances as of a future instant need no maintenance.';
	END IF;
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be positive' USING ERRCODE = '22023';
	END IF;
	IF workers IS NULL OR workers < 0 THEN
		RAISE EXCEPTION 'workers must be 0 or more'
			USING ERRCODE = '22023',
				  HINT = '0 settles lots in this transaction; 1 or more starts that many background workers.';
	END IF;
	-- each step reports its progress (view maintenance_progress)
	IF workers > 0 THEN
		-- (ranges settled, reported by the workers and this session)
		b := loyalty._maintain_parallel(as_of, batch_size, workers);
		n_members := b.members;
		n_releases := b.releases;
		n_expiries := b.expiries;
		n_points := b.expired_points;
	ELSE
		-- the members due, for the progress report: a sequential scan,
		-- cheaper than the walk of the primary key below, which it spares
		-- when none is due
		due := (SELECT count(*) FROM loyalty.members m WHERE m.next_event_at <= as_of);
		PERFORM loyalty._progress('releases and expiries', n_members, due, 'members');
		IF due > 0 THEN
			LOOP
				-- from (0, '') to (2147483647, ''): every program id lies between
				b := loyalty._maintain_lots(as_of, batch_size, last_program, last_key, 2147483647, '');
				n_members := n_members + b.members;
				n_releases := n_releases + b.releases;
				n_expiries := n_expiries + b.expiries;
				n_points := n_points + b.expired_points;
				PERFORM loyalty._progress('releases and expiries', n_members, due, 'members');
				EXIT WHEN b.members < batch_size;
				last_program := b.last_program;
				last_key := b.last_key;
			END LOOP;
		END IF;
	END IF;
	task := 'release'; members := NULL; entries := n_releases; points := NULL;
	RETURN NEXT;
	task := 'expire'; members := n_members; entries := n_expiries; points := n_points;
	RETURN NEXT;
	b := loyalty._maintain_inactive(as_of, 2147483647);
	task := 'inactivity'; members := b.members; entries := b.members; points := b.expired_points;
	RETURN NEXT;
	b := loyalty._maintain_tiers(as_of, batch_size);
	task := 'tier'; members := b.members; entries := b.changes; points := NULL;
	RETURN NEXT;
	PERFORM loyalty._progress(NULL, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION loyalty.run_maintenance(timestamptz, integer, integer) IS
	'write the releases, expiries and tier changes due by as_of; idempotent; skips locked members; workers > 0 settles lots in background workers that commit batch by batch';

-- What each run of run_maintenance (its caller and its workers) and of
-- refresh_reports in this database is doing, read back from the query text
-- they report to pg_stat_activity (loyalty._progress, src/maintenance.c).
-- Like pg_stat_activity, it shows another role's sessions only to members
-- of pg_read_all_stats (the workers run as the extension's owner).
CREATE VIEW loyalty.maintenance_progress AS
SELECT a.pid,
	   coalesce(r[1]::integer, a.pid) AS caller_pid,
	   CASE WHEN r[1] IS NULL THEN 'caller' ELSE 'worker' END AS backend,
	   r[2] AS phase,
	   r[3]::bigint AS done,
	   r[4]::bigint AS total,
	   r[5] AS unit,
	   round(100.0 * r[3]::bigint / nullif(r[4]::bigint, 0), 1) AS percent,
	   -- a caller's query started with the call; a worker's with its batch
	   CASE WHEN r[1] IS NULL THEN a.query_start ELSE a.backend_start END AS started_at,
	   a.state_change AS updated_at,
	   a.wait_event_type,
	   a.wait_event
  FROM pg_stat_activity a
 CROSS JOIN LATERAL regexp_match(a.query,
		'^loyalty maintenance(?: worker for pid ([0-9]+))?: ([a-z ]+), ([0-9]+) of ([0-9]+) ([a-z]+)$') AS m(r)
 WHERE a.datname = current_database()
   AND a.state = 'active'
   AND r IS NOT NULL
   -- only loyalty's workers say they are one
   AND (r[1] IS NOT NULL) = (a.backend_type IS NOT DISTINCT FROM 'loyalty maintenance')
 ORDER BY 2, 3, 1;
COMMENT ON VIEW loyalty.maintenance_progress IS
	'each running run_maintenance (caller and workers) and refresh_reports: phase, done of total, since when';

-- "Your points expire soon": every member with points expiring in (as_of, as_of + within].
CREATE FUNCTION loyalty.expiring_points(within interval DEFAULT interval '30 days',
										as_of timestamptz DEFAULT now(), program text DEFAULT NULL)
	RETURNS TABLE (program_code text, member_key text, expires_at timestamptz, points bigint,
				   available bigint, reason text)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	IF within IS NULL OR within < interval '0' OR as_of IS NULL THEN
		RAISE EXCEPTION 'within must be a non-negative interval and as_of not null'
			USING ERRCODE = '22023';
	END IF;
	IF program IS NOT NULL THEN
		PERFORM loyalty._program(program);	-- LY003 for an unknown code
	END IF;
	-- each member's lots and latest activity as of as_of: the stored ones
	-- from now on (what lies later is pending, and does not count), unless
	-- only the ledger tells the member's deadlines; for a past as_of the
	-- ledger replayed, member by member
	RETURN QUERY
		WITH n AS (
			SELECT p.code, p.expiry_policy, p.expiry_interval, p.time_zone, m.member_key,
				   s.lots, s.last_activity, s.next_event
			  FROM loyalty.members m
			  JOIN loyalty.programs p ON p.id = m.program_id
			 CROSS JOIN LATERAL (
				SELECT CASE WHEN p.expiry_policy = 'inactivity'
								 AND loyalty.inactivity_deadline(p, m.last_activity_at) <= as_of
								 AND loyalty.inactivity_deadline(p, m.last_activity_at)
									 > coalesce(m.settled_at, '-infinity')
							THEN loyalty._inactive_after(m.balance,
														 loyalty.inactivity_deadline(p, m.last_activity_at))
							ELSE m.balance END,
					   m.last_activity_at, m.next_event_at
				 WHERE as_of >= now()
				   AND NOT (p.expiry_policy = 'inactivity'
							AND m.last_activity_at > coalesce(m.settled_at, '-infinity'))
				UNION ALL
				SELECT r.lots, (SELECT max(l.effective_at) FROM loyalty.ledger l
								 WHERE l.program_id = m.program_id AND l.member_key = m.member_key AND l.effective_at <= as_of
								   AND l.kind IN ('earn', 'pending', 'redeem', 'adjust', 'transfer')),
					   loyalty.lots_next_event(r.lots)
				  FROM (SELECT loyalty._lots_at(m, as_of) AS lots) r
				 WHERE NOT (as_of >= now()
							AND NOT (p.expiry_policy = 'inactivity'
									 AND m.last_activity_at > coalesce(m.settled_at, '-infinity')))
			 ) AS s(lots, last_activity, next_event)
			 WHERE expiring_points.program IS NULL OR p.code = expiring_points.program
		)
		SELECT n.code, n.member_key, e.expires_at, sum(e.points)::bigint,
			   min(loyalty.lots_available(n.lots, as_of)), 'expiry'
		  FROM n
		 CROSS JOIN LATERAL loyalty.lots_entries(n.lots) e
		 WHERE n.next_event <= as_of + within
		   AND e.state <> 'debt' AND (e.release_at IS NULL OR e.release_at <= as_of)
		   AND e.expires_at > as_of AND e.expires_at <= as_of + within
		 GROUP BY n.code, n.member_key, e.expires_at
		UNION ALL
		SELECT n.code, n.member_key, d.deadline, loyalty.lots_available(n.lots, as_of),
			   loyalty.lots_available(n.lots, as_of), 'inactivity'
		  FROM n
		 CROSS JOIN LATERAL (SELECT loyalty.tz_add(n.last_activity, n.expiry_interval, n.time_zone))
			   AS d(deadline)
		 WHERE n.expiry_policy = 'inactivity'
		   AND d.deadline > as_of AND d.deadline <= as_of + within
		   AND loyalty.lots_available(n.lots, as_of) > 0
		 ORDER BY 3, 1, 2;
END
$$;
COMMENT ON FUNCTION loyalty.expiring_points(interval, timestamptz, text) IS
	'members with points expiring within the interval, for "your points expire soon" messages';

