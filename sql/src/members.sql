------------------------------------------------------------------------------
-- Member functions.  Each takes the member key first and the program last.
-- The key may be bigint, uuid, text or any type: it is stored as its text
-- form.  The anyelement wrappers convert the key as the caller; the text
-- versions do the work as the extension owner with a pinned search_path.
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.enroll(member text, program text DEFAULT NULL,
								   at timestamptz DEFAULT now())
	RETURNS loyalty.members
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
BEGIN
	IF member IS NULL THEN
		RAISE EXCEPTION 'member key must not be null' USING ERRCODE = '22004';
	END IF;
	INSERT INTO loyalty.members (program_id, member_key, enrolled_at)
	VALUES (p.id, member, coalesce(at, now()))
	ON CONFLICT (program_id, member_key) DO NOTHING
	RETURNING * INTO m;
	IF NOT FOUND THEN
		SELECT * INTO m FROM loyalty.members WHERE program_id = p.id AND member_key = member;
	END IF;
	RETURN m;
END
$$;

CREATE FUNCTION loyalty.enroll(member anyelement, program text DEFAULT NULL,
							   at timestamptz DEFAULT now())
	RETURNS loyalty.members
	LANGUAGE sql
	AS $$ SELECT loyalty.enroll(member::text, program, at) $$;
COMMENT ON FUNCTION loyalty.enroll(anyelement, text, timestamptz) IS
	'enroll a member (idempotent); returns the member row';

CREATE FUNCTION loyalty.earn(member text, points bigint, reference text DEFAULT NULL,
								 at timestamptz DEFAULT now(), program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	l loyalty.ledger;
	expires timestamptz;
	release_at timestamptz;
	credit loyalty.lots;
	is_pending boolean;
BEGIN
	PERFORM loyalty._check_points(points);
	IF at IS NULL OR NOT isfinite(at) THEN
		RAISE EXCEPTION 'earning time must be a finite timestamp' USING ERRCODE = '22008';
	END IF;
	m := loyalty._member(p, member, true);
	l := loyalty._replayed(p, 'earn', reference, m.member_key, points);
	IF l.seq IS NOT NULL THEN
		RETURN l;
	END IF;

	release_at := loyalty.tz_add(at, p.pending_interval, p.time_zone);
	-- points count as earned when they are released: expiry runs from then
	expires := loyalty.expiry_for(p, release_at);
	-- pending while the pending period runs, or until a future earning time
	is_pending := release_at > at OR release_at > now();
	IF is_pending THEN
		credit := loyalty.lots_add_pending('{}', points, release_at, expires);
	ELSE
		credit := loyalty.lots_add('{}', points, expires);
	END IF;

	IF loyalty._needs_replay(p, m, at) THEN
		-- dated before the member's latest entry, or before an inactivity
		-- deadline that has passed: it takes its place on the time axis
		l := loyalty._append(p, m.member_key, CASE WHEN is_pending THEN 'pending' ELSE 'earn' END,
							 points, credit, reference, NULL, at);
		m.balance := loyalty._rebuild(m, now());
		m.last_activity_at := greatest(m.last_activity_at, at);
	ELSE
		-- what expired before this activity (inactivity) stays expired
		m.balance := loyalty._settle(m, least(at, now()));
		l := loyalty._append(p, m.member_key, CASE WHEN is_pending THEN 'pending' ELSE 'earn' END,
							 points, credit, reference, NULL, at);
		m.balance := loyalty.lots_merge(m.balance, credit);
		m.last_activity_at := greatest(m.last_activity_at, at);
		-- written up to here; the new activity's deadline is new, due or not
		m.settled_at := least(at, now());
		m.balance := loyalty._settle(m, now());
	END IF;
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = m.last_activity_at, settled_at = now()
	 WHERE program_id = m.program_id AND member_key = m.member_key;
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.earn(member anyelement, points bigint, reference text DEFAULT NULL,
							 at timestamptz DEFAULT now(), program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.earn(member::text, points, reference, at, program) $$;
COMMENT ON FUNCTION loyalty.earn(anyelement, bigint, text, timestamptz, text) IS
	'credit points earned at "at"; idempotent on reference; returns the ledger entry';

CREATE FUNCTION loyalty.redeem(member text, points bigint, reference text DEFAULT NULL,
								   program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	l loyalty.ledger;
	s record;
BEGIN
	PERFORM loyalty._check_points(points);
	m := loyalty._member(p, member, true);
	l := loyalty._replayed(p, 'redeem', reference, m.member_key, -points);
	IF l.seq IS NOT NULL THEN
		RETURN l;
	END IF;
	m := loyalty._settled(p, m);
	s := loyalty.lots_spend(m.balance, points, now());	-- LY001 when short
	l := loyalty._append(p, m.member_key, 'redeem', -points, s.drawn, reference, NULL, now());
	m.balance := loyalty._after_write(p, m, s.remaining);
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE program_id = m.program_id AND member_key = m.member_key;
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.redeem(member anyelement, points bigint, reference text DEFAULT NULL,
							   program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.redeem(member::text, points, reference, program) $$;
COMMENT ON FUNCTION loyalty.redeem(anyelement, bigint, text, text) IS
	'spend points FIFO by soonest expiry; idempotent on reference; LY001 when short';

CREATE FUNCTION loyalty.adjust(member text, delta bigint, reason text,
								   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	l loyalty.ledger;
	s record;
	moved loyalty.lots;
BEGIN
	IF delta IS NULL OR delta = 0 THEN
		RAISE EXCEPTION 'adjustment must not be zero' USING ERRCODE = '22023';
	END IF;
	IF delta = -9223372036854775808 THEN
		RAISE EXCEPTION 'adjustment out of range' USING ERRCODE = '22003';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'an adjustment needs a reason'
			USING ERRCODE = '22023', HINT = 'Say why, e.g. ''goodwill: late delivery''.';
	END IF;
	m := loyalty._member(p, member, true);
	l := loyalty._replayed(p, 'adjust', reference, m.member_key, delta);
	IF l.seq IS NOT NULL THEN
		RETURN l;
	END IF;
	m := loyalty._settled(p, m);
	IF delta > 0 THEN
		moved := loyalty.lots_add('{}', delta, loyalty.expiry_for(p, now()));
		m.balance := loyalty.lots_merge(m.balance, moved);
	ELSE
		s := loyalty.lots_spend(m.balance, -delta, now());
		moved := s.drawn;
		m.balance := s.remaining;
	END IF;
	l := loyalty._append(p, m.member_key, 'adjust', delta, moved, reference, reason, now());
	m.balance := loyalty._after_write(p, m, m.balance);
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE program_id = m.program_id AND member_key = m.member_key;
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.adjust(member anyelement, delta bigint, reason text,
							   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.adjust(member::text, delta, reason, reference, program) $$;
COMMENT ON FUNCTION loyalty.adjust(anyelement, bigint, text, text, text) IS
	'add (delta > 0) or remove (delta < 0, FIFO) points with a reason';

-- The member's lots as of an instant (docs/concepts.md, Balances as of any
-- instant): the stored lots when no entry lies after as_of and they tell the
-- member's inactivity deadlines (the one after last_activity_at applied if
-- it is due and not written), otherwise the ledger replayed up to as_of.
CREATE FUNCTION loyalty.member_lots(member text, as_of timestamptz DEFAULT now(),
								 program text DEFAULT NULL)
	RETURNS loyalty.lots
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members := loyalty._member(p, member, false);
	deadline timestamptz;
	r loyalty.lots;
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = '22004';
	END IF;
	IF (p.expiry_policy = 'inactivity' AND m.last_activity_at > coalesce(m.settled_at, '-infinity'))
	   OR EXISTS (SELECT 1 FROM loyalty.ledger l WHERE l.program_id = m.program_id
				  AND l.member_key = m.member_key AND l.effective_at > as_of) THEN
		RETURN loyalty._lots_at(m, as_of);
	END IF;
	r := m.balance;
	deadline := loyalty.inactivity_deadline(p, m.last_activity_at);
	IF deadline <= as_of AND deadline > coalesce(m.settled_at, '-infinity') THEN
		r := loyalty._inactive_after(r, deadline);
	END IF;
	-- debt is paid by pending lots as they are released
	IF loyalty.lots_debt(r) > 0 THEN
		r := (loyalty.lots_settle(r, as_of)).remaining;
	END IF;
	RETURN r;
END
$$;

CREATE FUNCTION loyalty.member_lots(member anyelement, as_of timestamptz DEFAULT now(),
									program text DEFAULT NULL)
	RETURNS loyalty.lots
	LANGUAGE sql STABLE
	AS $$ SELECT loyalty.member_lots(member::text, as_of, program) $$;
COMMENT ON FUNCTION loyalty.member_lots(anyelement, timestamptz, text) IS
	'the member''s lots as of an instant (replayed from the ledger for past instants)';

CREATE FUNCTION loyalty.balance(member text, as_of timestamptz DEFAULT now(),
								program text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN loyalty.lots_available(loyalty.member_lots(member, as_of, program), as_of);
COMMENT ON FUNCTION loyalty.balance(text, timestamptz, text) IS
	'points available to spend as of an instant (expired and pending points excluded)';

CREATE FUNCTION loyalty.balance(member anyelement, as_of timestamptz DEFAULT now(),
								program text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE sql STABLE
	AS $$ SELECT loyalty.balance(member::text, as_of, program) $$;

CREATE FUNCTION loyalty.balance_detail(member text, as_of timestamptz DEFAULT now(),
									   program text DEFAULT NULL,
									   OUT available bigint, OUT pending bigint,
									   OUT expiring_30d bigint, OUT debt bigint,
									   OUT lots loyalty.lots)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
	SELECT loyalty.lots_available(l, as_of), loyalty.lots_pending(l, as_of),
		   loyalty.lots_expiring(l, as_of, as_of + interval '30 days'),
		   loyalty.lots_debt(l), l
	  FROM loyalty.member_lots(member, as_of, program) AS l
$$;

CREATE FUNCTION loyalty.balance_detail(member anyelement, as_of timestamptz DEFAULT now(),
									   program text DEFAULT NULL,
									   OUT available bigint, OUT pending bigint,
									   OUT expiring_30d bigint, OUT debt bigint,
									   OUT lots loyalty.lots)
	LANGUAGE sql STABLE
	AS $$ SELECT * FROM loyalty.balance_detail(member::text, as_of, program) $$;

CREATE FUNCTION loyalty.expiring(member text, within interval DEFAULT interval '30 days',
									 as_of timestamptz DEFAULT now(), program text DEFAULT NULL)
	RETURNS TABLE (expires_at timestamptz, points bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.lots := loyalty.member_lots(member, as_of, program);
BEGIN
	IF within IS NULL OR within < interval '0' THEN
		RAISE EXCEPTION 'within must be a non-negative interval' USING ERRCODE = '22023';
	END IF;
	RETURN QUERY
		SELECT e.expires_at, sum(e.points)::bigint
		  FROM loyalty.lots_entries(l) e
		 WHERE e.state <> 'debt'
		   AND (e.release_at IS NULL OR e.release_at <= as_of)
		   AND e.expires_at > as_of AND e.expires_at <= as_of + within
		 GROUP BY e.expires_at
		 ORDER BY e.expires_at;
END
$$;

CREATE FUNCTION loyalty.expiring(member anyelement, within interval DEFAULT interval '30 days',
								 as_of timestamptz DEFAULT now(), program text DEFAULT NULL)
	RETURNS TABLE (expires_at timestamptz, points bigint)
	LANGUAGE sql STABLE
	AS $$ SELECT * FROM loyalty.expiring(member::text, within, as_of, program) $$;

CREATE FUNCTION loyalty.statement(member text, from_ts timestamptz DEFAULT '-infinity',
									  to_ts timestamptz DEFAULT 'infinity',
									  program text DEFAULT NULL)
	RETURNS TABLE (seq bigint, effective_at timestamptz, kind text, points bigint,
				   running_total bigint, reference text, reason text,
				   expires_at timestamptz, recorded_at timestamptz)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members := loyalty._member(p, member, false);
	opening bigint;
BEGIN
	IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
		RAISE EXCEPTION 'statement period is empty or null' USING ERRCODE = '22023',
			HINT = 'Pass from_ts <= to_ts.';
	END IF;
	SELECT coalesce(sum(l.points), 0)::bigint INTO opening
	  FROM loyalty.ledger l WHERE l.program_id = m.program_id AND l.member_key = m.member_key AND l.effective_at < from_ts;
	RETURN QUERY
		SELECT l.seq, l.effective_at, l.kind::text, l.points,
			   (opening + sum(l.points) OVER (ORDER BY l.effective_at,
														 (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
														 l.seq))::bigint,
			   l.reference, l.reason,
			   (SELECT max(e.expires_at) FROM loyalty.lots_entries(l.lots) e),
			   l.recorded_at
		  FROM loyalty.ledger l
		 WHERE l.program_id = m.program_id AND l.member_key = m.member_key AND l.effective_at >= from_ts AND l.effective_at < to_ts
		 ORDER BY l.effective_at, (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC, l.seq;
END
$$;

CREATE FUNCTION loyalty.statement(member anyelement, from_ts timestamptz DEFAULT '-infinity',
								  to_ts timestamptz DEFAULT 'infinity', program text DEFAULT NULL)
	RETURNS TABLE (seq bigint, effective_at timestamptz, kind text, points bigint,
				   running_total bigint, reference text, reason text,
				   expires_at timestamptz, recorded_at timestamptz)
	LANGUAGE sql STABLE
	AS $$ SELECT * FROM loyalty.statement(member::text, from_ts, to_ts, program) $$;
COMMENT ON FUNCTION loyalty.statement(anyelement, timestamptz, timestamptz, text) IS
	'ledger entries effective in [from_ts, to_ts) with a running total';

