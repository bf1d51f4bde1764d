------------------------------------------------------------------------------
-- Internal helpers (not part of the API)
------------------------------------------------------------------------------

CREATE FUNCTION loyalty._program(code text) RETURNS loyalty.programs
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
BEGIN
	IF code IS NULL THEN
		SELECT * INTO p FROM loyalty.programs WHERE is_default;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'no default loyalty program'
				USING ERRCODE = 'LY003',
					  HINT = 'Pass program => ''code'' or mark one program with is_default = true.';
		END IF;
	ELSE
		SELECT * INTO p FROM loyalty.programs WHERE programs.code = _program.code;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'loyalty program "%" does not exist', code
				USING ERRCODE = 'LY003',
					  HINT = 'See SELECT code FROM loyalty.programs.';
		END IF;
	END IF;
	RETURN p;
END
$$;

CREATE FUNCTION loyalty._member(program loyalty.programs, member_key text, for_update boolean)
	RETURNS loyalty.members
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members;
BEGIN
	IF member_key IS NULL THEN
		RAISE EXCEPTION 'member key must not be null' USING ERRCODE = '22004';
	END IF;
	IF for_update THEN
		SELECT * INTO m FROM loyalty.members
		 WHERE program_id = program.id AND members.member_key = _member.member_key
		   FOR UPDATE;
	ELSE
		SELECT * INTO m FROM loyalty.members
		 WHERE program_id = program.id AND members.member_key = _member.member_key;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'member "%" is not enrolled in loyalty program "%"', member_key, program.code
			USING ERRCODE = 'LY002',
				  HINT = 'Enroll the member first with loyalty.enroll().';
	END IF;
	RETURN m;
END
$$;

-- When points earned at "at" expire under the program's policy.
CREATE FUNCTION loyalty.expiry_for(program loyalty.programs, at timestamptz)
	RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE program.expiry_policy
		WHEN 'never' THEN 'infinity'::timestamptz
		-- inactivity: lots never expire on their own; _settle() expires them all
		WHEN 'inactivity' THEN 'infinity'::timestamptz
		WHEN 'after' THEN loyalty.tz_add(at, program.expiry_interval, program.time_zone)
		WHEN 'period_end' THEN loyalty.period_end(at, program.expiry_period,
												  program.expiry_extra_periods, program.time_zone)
	END;

-- Points for a purchase amount under the program's rate and rounding.
CREATE FUNCTION loyalty.points_for(amount numeric, program text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	raw numeric;
BEGIN
	IF amount IS NULL THEN
		RETURN NULL;
	END IF;
	raw := amount * p.points_per_unit;
	raw := CASE p.rounding
		WHEN 'floor' THEN floor(raw)
		WHEN 'ceil' THEN ceil(raw)
		ELSE CASE WHEN raw >= 0 THEN floor(raw + 0.5) ELSE -floor(-raw + 0.5) END
	END;
	IF raw > 9223372036854775807 OR raw < -9223372036854775807 THEN
		RAISE EXCEPTION 'points for amount % out of range', amount USING ERRCODE = '22003';
	END IF;
	RETURN raw::bigint;
END
$$;

CREATE FUNCTION loyalty._check_points(points bigint) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF points IS NULL OR points <= 0 THEN
		RAISE EXCEPTION 'points must be positive'
			USING ERRCODE = '22023',
				  DETAIL = format('Got %s.', coalesce(points::text, 'NULL')),
				  HINT = 'Use loyalty.adjust() with a negative delta to remove points.';
	END IF;
END
$$;

-- When an inactive member's points all expire: NULL unless the program's
-- policy is 'inactivity' and the member has been active.
CREATE FUNCTION loyalty.inactivity_deadline(program loyalty.programs, last_activity timestamptz)
	RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE WHEN program.expiry_policy = 'inactivity' AND last_activity IS NOT NULL
				THEN loyalty.tz_add(last_activity, program.expiry_interval, program.time_zone) END;

-- The seq of the member's next ledger entry: the greatest one + 1, from
-- the ledger's primary key.  The caller holds the member's row lock, which
-- every writer of the member's entries takes first and keeps until it
-- commits.  Volatile, so that it reads with a snapshot of its own, taken
-- after the caller locked the member: a statement's snapshot may be older
-- than the lock (a batch that locks and writes in one statement) and miss
-- the entries of a writer that committed in between.  Call it once per
-- member and statement, and number the statement's entries from it.
CREATE FUNCTION loyalty._next_seq(program_id integer, member_key text) RETURNS bigint
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN (SELECT coalesce(max(l.seq), 0) + 1 FROM loyalty.ledger l
			 WHERE l.program_id = _next_seq.program_id AND l.member_key = _next_seq.member_key);

-- Write the release and expiry entries of lots due by "at"; return what is left.
CREATE FUNCTION loyalty._settle_lots(program_id integer, member_key text, lots loyalty.lots,
									 at timestamptz)
	RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	s record := loyalty.lots_settlement(lots, at);
	first_seq bigint;
BEGIN
	IF cardinality(s.kinds) > 0 THEN
		first_seq := loyalty._next_seq(program_id, member_key);
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
		SELECT _settle_lots.program_id, _settle_lots.member_key, first_seq + u.n - 1, u.k, u.p, u.l, u.e
		  FROM unnest(s.kinds, s.points, s.entry_lots, s.effective) WITH ORDINALITY AS u(k, p, l, e, n);
	END IF;
	RETURN s.remaining;
END
$$;

-- Whether a write effective at "at" must replay the member's ledger
-- instead of applying to the stored lots (docs/concepts.md, Balances as of
-- any instant): it is dated before the member's latest entry; or, under
-- inactivity, the member has an activity after its last settlement (the
-- deadlines between are known only to the ledger), or "at" lies before a
-- deadline that has passed (the entry is late: that deadline stands, and
-- takes its points too).
CREATE FUNCTION loyalty._needs_replay(p loyalty.programs, m loyalty.members, at timestamptz)
	RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN at < coalesce((SELECT max(l.effective_at) FROM loyalty.ledger l
						   WHERE l.program_id = m.program_id AND l.member_key = m.member_key),
						 '-infinity')
		OR (p.expiry_policy = 'inactivity'
			AND (m.last_activity_at > coalesce(m.settled_at, '-infinity')
				 OR (loyalty.inactivity_deadline(p, m.last_activity_at) <= now()
					 AND at < loyalty.inactivity_deadline(p, m.last_activity_at))));

-- A member's ledger replayed on the time axis (src/timeline.c) in one of
-- its modes, over the entries effective up to "upto".
CREATE FUNCTION loyalty._replay(m loyalty.members, mode text, as_of timestamptz,
								upto timestamptz DEFAULT 'infinity')
	RETURNS loyalty._timeline_result
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN (SELECT loyalty._timeline(m.program_id, mode, as_of, m.settled_at, l.kind, l.points,
									 l.lots, l.reason, l.effective_at, l.seq
									 ORDER BY l.effective_at,
											  (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
											  l.seq)
			  FROM loyalty.ledger l
			 WHERE l.program_id = m.program_id AND l.member_key = m.member_key
			   AND l.effective_at <= upto);

-- The member's lots replayed from the ledger: everything, with what fell
-- due by "at" written to the ledger first (releases, expiries, inactivity
-- expiries, each effective at its own instant).  What the stored lots are
-- after a write that needs a replay.
CREATE FUNCTION loyalty._rebuild(m loyalty.members, at timestamptz) RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	t loyalty._timeline_result := loyalty._replay(m, 'settle', at);
	first_seq bigint;
BEGIN
	IF cardinality(t.kinds) > 0 THEN
		-- in time order, so that seqs follow it
		first_seq := loyalty._next_seq(m.program_id, m.member_key);
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reason,
									effective_at)
		SELECT m.program_id, m.member_key, first_seq + u.n - 1, u.k, u.p, u.l, u.r, u.e
		  FROM unnest(t.kinds, t.points, t.entry_lots, t.reasons, t.effective)
			   WITH ORDINALITY AS u(k, p, l, r, e, n);
	END IF;
	RETURN coalesce(t.lots, '{}');
END
$$;

-- The member's lots as of an instant, replayed from the ledger: releases
-- and inactivity deadlines not written yet apply as well.
CREATE FUNCTION loyalty._lots_at(m loyalty.members, as_of timestamptz) RETURNS loyalty.lots
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN coalesce((loyalty._replay(m, 'read', as_of, as_of)).lots, '{}');

-- What a debit effective at as_of may take: the lots as of as_of, each
-- usable lot limited to what the entries effective after as_of (written by
-- transactions that started later and committed first) leave of it.
CREATE FUNCTION loyalty._spendable(m loyalty.members, as_of timestamptz) RETURNS loyalty.lots
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN coalesce((loyalty._replay(m, 'spend', as_of)).lots, '{}');

-- The lots after the inactivity deadline d took everything usable just
-- before it, nothing written: pending lots released before d count as lots.
CREATE FUNCTION loyalty._inactive_after(lots loyalty.lots, d timestamptz) RETURNS loyalty.lots
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN (loyalty.lots_expire_usable((loyalty.lots_settle(lots, d - interval '1 microsecond')).remaining,
									   d)).remaining;

-- The same, written: the releases due before d and the inactivity expiry.
CREATE FUNCTION loyalty._expire_inactive(program_id integer, member_key text, lots loyalty.lots,
										 d timestamptz)
	RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	x record := loyalty.lots_expire_usable(
					loyalty._settle_lots(program_id, member_key, lots, d - interval '1 microsecond'), d);
BEGIN
	IF loyalty.lots_points(x.expired) > 0 THEN
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reason,
									effective_at)
		VALUES (program_id, member_key, loyalty._next_seq(program_id, member_key), 'expire',
				-loyalty.lots_points(x.expired), x.expired, 'inactivity', d);
	END IF;
	RETURN x.remaining;
END
$$;

-- Write the release and expiry entries due at "at" (inactivity included)
-- and return the member's new lots.  Fast path: the stored lots and the one
-- deadline of last_activity_at, unless it is written already; the ledger is
-- replayed when the member has an activity after its last settlement.
CREATE FUNCTION loyalty._settle(m loyalty.members, at timestamptz) RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	deadline timestamptz;
BEGIN
	SELECT * INTO p FROM loyalty.programs WHERE id = m.program_id;
	IF p.expiry_policy = 'inactivity' AND m.last_activity_at > coalesce(m.settled_at, '-infinity') THEN
		RETURN loyalty._rebuild(m, at);
	END IF;
	deadline := loyalty.inactivity_deadline(p, m.last_activity_at);
	IF deadline IS NULL OR deadline > at OR deadline <= coalesce(m.settled_at, '-infinity') THEN
		RETURN loyalty._settle_lots(m.program_id, m.member_key, m.balance, at);
	END IF;
	RETURN loyalty._settle_lots(m.program_id, m.member_key,
								loyalty._expire_inactive(m.program_id, m.member_key, m.balance,
														 deadline), at);
END
$$;

-- An earlier entry under the same reference: the same request (return it) or a conflict.
CREATE FUNCTION loyalty._replayed(program loyalty.programs, op text, reference text,
								  member_key text, points bigint)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	IF reference IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO l FROM loyalty.ledger
	 WHERE ledger.program_id = program.id AND ledger.member_key = _replayed.member_key
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	   AND ledger.reference = _replayed.reference
	   AND ledger.track_id IS NULL
	   AND kind IN ('earn', 'pending', 'redeem', 'adjust');
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF l.points <> _replayed.points THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Entry %s of member "%s" holds %s points.', l.seq, l.member_key,
								  l.points),
				  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
	END IF;
	RETURN l;
END
$$;

-- Append one API entry.  The member's lock orders its requests, so a
-- unique violation here is a reference the member used for another
-- operation's entry of the same kind (a transfer received, say), reported as
-- LY004.
CREATE FUNCTION loyalty._append(program loyalty.programs, member_key text, kind text,
								points bigint, lots loyalty.lots, reference text, reason text,
								effective_at timestamptz)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, reason,
								effective_at)
	VALUES (program.id, _append.member_key, loyalty._next_seq(program.id, _append.member_key),
			_append.kind, _append.points, _append.lots, _append.reference, _append.reason,
			_append.effective_at)
	RETURNING * INTO l;
	RETURN l;
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
					reference, CASE kind WHEN 'pending' THEN 'earn' ELSE kind END, program.code
		USING ERRCODE = 'LY004',
			  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
END
$$;

-- The member (locked) with everything due by now() written, and as
-- balance the lots usable now: for a write effective now.  When the stored
-- lots are not the lots as of now (an entry later than now, or inactivity
-- deadlines known only to the ledger) they come from a replay, limited to
-- what the entries later than now leave (_spendable); settled_at is then
-- now(), and _after_write() replays again after the write.
CREATE FUNCTION loyalty._settled(p loyalty.programs, m loyalty.members) RETURNS loyalty.members
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	IF loyalty._needs_replay(p, m, now()) THEN
		PERFORM loyalty._rebuild(m, now());
		m.settled_at := now();
		m.balance := loyalty._spendable(m, now());
	ELSE
		m.balance := loyalty._settle(m, now());
	END IF;
	RETURN m;
END
$$;

-- The stored lots after a write effective now, prepared by _settled():
-- "applied" (the write applied to the lots as of now), unless the member
-- has entries later than now or deadlines known only to the ledger: then
-- the ledger replayed.
CREATE FUNCTION loyalty._after_write(p loyalty.programs, m loyalty.members, applied loyalty.lots)
	RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	IF loyalty._needs_replay(p, m, now()) THEN
		RETURN loyalty._rebuild(m, now());
	END IF;
	RETURN applied;
END
$$;

------------------------------------------------------------------------------
-- Helpers of rewards, cancellations, transfers, donations and behavioural
-- events.  Everything there is SQL: the lots functions already spend FIFO
-- and record exactly which lots a debit drew, which is what a cancellation
-- gives back and what a transfer hands over.
------------------------------------------------------------------------------

-- [starts, ends) of the calendar period containing ts in time_zone; 'ever' is all time.
CREATE FUNCTION loyalty._period(ts timestamptz, period text, time_zone text,
								OUT starts timestamptz, OUT ends timestamptz)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN period = 'ever' THEN '-infinity'::timestamptz
				ELSE date_trunc(period, ts, time_zone) END,
		   CASE WHEN period = 'ever' THEN 'infinity'::timestamptz
				ELSE loyalty.period_end(ts, period, 0, time_zone) END
$$;

-- 'per month', or 'in total' for 'ever': for error details
CREATE FUNCTION loyalty._per(period text) RETURNS text
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE WHEN period = 'ever' THEN 'in total' ELSE 'per ' || period END;

-- LY004 when an API entry of this operation for the member already uses the
-- reference.
CREATE FUNCTION loyalty._reference_unused(program loyalty.programs, op text, member_key text,
										  reference text)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	SELECT * INTO l FROM loyalty.ledger
	 WHERE ledger.program_id = program.id AND ledger.member_key = _reference_unused.member_key
	   AND ledger.reference = _reference_unused.reference
	   AND ledger.track_id IS NULL
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Entry %s of member "%s" holds %s points.', l.seq, l.member_key,
								  l.points),
				  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
	END IF;
END
$$;

-- LY001 with a detail naming what was asked for.
CREATE FUNCTION loyalty._need_points(m loyalty.members, points bigint, what text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	available bigint := loyalty.lots_available(m.balance, now());
BEGIN
	IF available < points THEN
		RAISE EXCEPTION 'insufficient points'
			USING ERRCODE = 'LY001',
				  DETAIL = format('%s needs %s points; member "%s" has %s available.',
								  what, points, m.member_key, available),
				  HINT = 'Only points usable now count: pending and expired points do not.';
	END IF;
END
$$;

