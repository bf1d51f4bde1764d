------------------------------------------------------------------------------
-- Tiers.  A member's tier is the highest rung of the program's ladder that
-- the activity in the qualification window meets.  Upgrades happen at once
-- (the purchase trigger checks in C); downgrades only when the tier's
-- validity (plus grace) ends, by run_maintenance() or as seen by tier().
------------------------------------------------------------------------------

CREATE FUNCTION loyalty._tier_qualified(program_id integer, activity loyalty.activity,
										as_of timestamptz)
	RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_tier_qualified' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION loyalty._tier_window(program_id integer, as_of timestamptz,
									 OUT window_from date, OUT window_to date)
	AS 'MODULE_PATHNAME', 'loyalty_tier_window_dates' LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty._tier_rank(program_id integer, tier text) RETURNS integer
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	RETURN coalesce((SELECT t.rank FROM loyalty.tiers t
					  WHERE t.program_id = _tier_rank.program_id AND t.name = tier), -1);

-- A member's tier fields after moving to to_tier at "at" (nothing written).
CREATE FUNCTION loyalty._tier_state(p loyalty.programs, m loyalty.members, to_tier text,
									at timestamptz, manual_until timestamptz)
	RETURNS loyalty.members
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	t loyalty.tiers;
BEGIN
	SELECT * INTO t FROM loyalty.tiers WHERE program_id = p.id AND name = to_tier;
	m.tier := to_tier;
	m.tier_since := at;
	m.tier_manual_until := manual_until;
	IF manual_until IS NOT NULL THEN
		m.tier_valid_until := nullif(manual_until, 'infinity');
		m.tier_review_at := m.tier_valid_until;
	ELSIF to_tier IS NULL OR t.never_downgrade
		  OR (t.min_spend IS NULL AND t.min_orders IS NULL AND t.min_points IS NULL) THEN
		-- nothing to lose: no tier, a tier kept for ever, or the base tier
		m.tier_valid_until := NULL;
		m.tier_review_at := NULL;
	ELSE
		m.tier_valid_until := CASE p.tier_validity
			WHEN 'months' THEN loyalty.tz_add(at, make_interval(months => p.tier_validity_months),
											  p.time_zone)
			ELSE loyalty.period_end(at, p.tier_validity_period, p.tier_validity_extra_periods,
									p.time_zone)
		END;
		m.tier_review_at := loyalty.tz_add(m.tier_valid_until, p.tier_grace, p.time_zone);
	END IF;
	RETURN m;
END
$$;

-- What the review due at m.tier_review_at decides (nothing written).
CREATE FUNCTION loyalty._tier_next(p loyalty.programs, m loyalty.members,
								   OUT next loyalty.members, OUT reason text, OUT detail text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	at timestamptz := m.tier_review_at;
	q text := loyalty._tier_qualified(p.id, m.activity, at);
	q_rank integer := loyalty._tier_rank(p.id, q);
	cur_rank integer := loyalty._tier_rank(p.id, m.tier);
	target text;
BEGIN
	IF m.tier_manual_until IS NOT NULL THEN
		reason := 'manual_end';
		target := q;
		detail := format('manual tier ended; qualifies for %s', coalesce(q, 'no tier'));
	ELSIF q_rank >= cur_rank THEN
		reason := CASE WHEN q_rank > cur_rank THEN 'upgrade' ELSE 'renewal' END;
		target := q;
		detail := format('qualifies for %s at the end of the validity', coalesce(q, 'no tier'));
	ELSE
		reason := 'downgrade';
		IF p.tier_downgrade = 'qualified' THEN
			target := q;
		ELSE
			SELECT name INTO target FROM loyalty.tiers
			 WHERE program_id = p.id AND rank < cur_rank ORDER BY rank DESC LIMIT 1;
		END IF;
		detail := format('qualifies for %s; %s', coalesce(q, 'no tier'),
						 CASE p.tier_downgrade WHEN 'qualified' THEN 'down to the qualified tier'
						 ELSE 'down one step' END);
	END IF;
	next := loyalty._tier_state(p, m, target, at, NULL);
END
$$;

-- Write a tier change: the member row, tier_history, and for a new tier an
-- event row and a NOTIFY on channel loyalty_tier.  A member's first tier
-- when it is the base tier (no thresholds: every member has it) is history
-- only: it is no news to the member, and a load of new customers would send
-- one notification each.
CREATE FUNCTION loyalty._tier_apply(old loyalty.members, new loyalty.members, reason text,
									detail text)
	RETURNS loyalty.members
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	code text := (SELECT p.code FROM loyalty.programs p WHERE p.id = old.program_id);
	event_id bigint;
BEGIN
	UPDATE loyalty.members
	   SET tier = new.tier, tier_since = new.tier_since, tier_valid_until = new.tier_valid_until,
		   tier_manual_until = new.tier_manual_until, tier_review_at = new.tier_review_at
	 WHERE program_id = old.program_id AND member_key = old.member_key;
	INSERT INTO loyalty.tier_history (program_id, member_key, from_tier, to_tier, reason, detail,
									  effective_at, valid_until)
	VALUES (old.program_id, old.member_key, old.tier, new.tier, reason, detail, new.tier_since,
			new.tier_valid_until);
	IF old.tier IS DISTINCT FROM new.tier
	   AND NOT (old.tier IS NULL AND EXISTS (
				SELECT FROM loyalty.tiers t
				 WHERE t.program_id = old.program_id AND t.name = new.tier
				   AND t.min_spend IS NULL AND t.min_orders IS NULL AND t.min_points IS NULL)) THEN
		INSERT INTO loyalty.tier_events (program_code, member_key, from_tier, to_tier, reason,
										 effective_at)
		VALUES (code, old.member_key, old.tier, new.tier, reason, new.tier_since)
		RETURNING id INTO event_id;
		PERFORM pg_notify('loyalty_tier',
						  json_build_object('event_id', event_id, 'program', code,
											'member', old.member_key, 'from', old.tier,
											'to', new.tier, 'reason', reason)::text);
	END IF;
	RETURN new;
END
$$;

-- Called by the purchase trigger when a purchase qualifies for a higher tier.
CREATE FUNCTION loyalty._tier_upgrade(program_id integer, member_key text, to_tier text,
									  at timestamptz)
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members;
	p loyalty.programs;
BEGIN
	SELECT * INTO m FROM loyalty.members x
	 WHERE x.program_id = _tier_upgrade.program_id AND x.member_key = _tier_upgrade.member_key;
	SELECT * INTO p FROM loyalty.programs WHERE id = m.program_id;
	PERFORM loyalty._tier_apply(m, loyalty._tier_state(p, m, to_tier, at, NULL), 'upgrade',
								'qualified by purchase');
END
$$;

-- Apply every review of one member due by as_of; returns the changes written.
CREATE FUNCTION loyalty._tier_review(m loyalty.members, as_of timestamptz) RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs;
	n record;
	changes integer := 0;
BEGIN
	SELECT * INTO p FROM loyalty.programs WHERE id = m.program_id;
	WHILE m.tier_review_at <= as_of AND changes < 1000 LOOP
		n := loyalty._tier_next(p, m);
		m := loyalty._tier_apply(m, n.next, n.reason, n.detail);
		changes := changes + 1;
	END LOOP;
	RETURN changes;
END
$$;

CREATE FUNCTION loyalty._maintain_tiers(as_of timestamptz, batch_size integer,
										OUT members bigint, OUT changes bigint)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members;
	-- for the progress report (members_tier_review indexes the column)
	due bigint := (SELECT count(*) FROM loyalty.members mm WHERE mm.tier_review_at <= as_of);
BEGIN
	members := 0;
	changes := 0;
	PERFORM loyalty._progress('tiers', members, due, 'members');
	LOOP
		FOR m IN SELECT * FROM loyalty.members mm WHERE mm.tier_review_at <= as_of
				  ORDER BY mm.tier_review_at LIMIT batch_size FOR UPDATE SKIP LOCKED LOOP
			changes := changes + loyalty._tier_review(m, as_of);
			members := members + 1;
		END LOOP;
		EXIT WHEN NOT FOUND OR members % batch_size <> 0;
		-- (after the test of FOUND, which PERFORM sets)
		PERFORM loyalty._progress('tiers', members, due, 'members');
	END LOOP;
END
$$;

CREATE FUNCTION loyalty.tier(member text, as_of timestamptz DEFAULT now(),
							 program text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members := loyalty._member(p, member, false);
	n record;
	guard integer := 0;
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = '22004';
	END IF;
	IF m.tier_since IS NOT NULL AND as_of < m.tier_since THEN
		RETURN (SELECT h.to_tier FROM loyalty.tier_history h
				 WHERE h.program_id = m.program_id AND h.member_key = m.member_key
				   AND h.effective_at <= as_of
				 ORDER BY h.effective_at DESC, h.id DESC LIMIT 1);
	END IF;
	-- reviews due by as_of that nobody has written yet
	WHILE m.tier_review_at <= as_of AND guard < 1000 LOOP
		n := loyalty._tier_next(p, m);
		m := n.next;
		guard := guard + 1;
	END LOOP;
	RETURN m.tier;
END
$$;

CREATE FUNCTION loyalty.tier(member anyelement, as_of timestamptz DEFAULT now(),
							 program text DEFAULT NULL)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$ SELECT loyalty.tier(member::text, as_of, program) $$;
COMMENT ON FUNCTION loyalty.tier(anyelement, timestamptz, text) IS
	'the member''s tier as of an instant, with downgrades due by then applied';

CREATE FUNCTION loyalty.set_tier(member text, tier text, until timestamptz DEFAULT NULL,
								 reason text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS loyalty.members
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members := loyalty._member(p, member, true);
BEGIN
	IF tier IS NULL OR NOT EXISTS (SELECT 1 FROM loyalty.tiers t
									WHERE t.program_id = p.id AND t.name = set_tier.tier) THEN
		RAISE EXCEPTION 'tier "%" does not exist in loyalty program "%"', tier, p.code
			USING ERRCODE = 'LY007',
				  HINT = format('Tiers of %s: %s.', p.code,
								coalesce((SELECT string_agg(t.name, ', ' ORDER BY t.rank)
											FROM loyalty.tiers t WHERE t.program_id = p.id),
										 'none'));
	END IF;
	IF until IS NOT NULL AND until <= now() THEN
		RAISE EXCEPTION 'a manual tier must last into the future'
			USING ERRCODE = '22023',
				  DETAIL = format('until is %s, now() is %s.', until, now()),
				  HINT = 'Pass a later until, or NULL to keep the tier until set_tier is called again.';
	END IF;
	RETURN loyalty._tier_apply(m, loyalty._tier_state(p, m, tier, now(), coalesce(until, 'infinity')),
							   'manual', coalesce(reason, 'set by set_tier'));
END
$$;

CREATE FUNCTION loyalty.set_tier(member anyelement, tier text, until timestamptz DEFAULT NULL,
								 reason text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS loyalty.members
	LANGUAGE sql
	AS $$ SELECT loyalty.set_tier(member::text, tier, until, reason, program) $$;
COMMENT ON FUNCTION loyalty.set_tier(anyelement, text, timestamptz, text, text) IS
	'assign a tier by hand, until an instant (then the qualified tier) or for good (until NULL)';

CREATE FUNCTION loyalty.tier_progress(member text, as_of timestamptz DEFAULT now(),
									  program text DEFAULT NULL)
	RETURNS TABLE (tier text, tier_valid_until timestamptz, next_tier text,
				   spend numeric, orders bigint, points bigint,
				   missing_spend numeric, missing_orders bigint, missing_points bigint,
				   message text, window_from date, window_to date,
				   drops_at timestamptz, drops_spend numeric, drops_orders bigint,
				   drops_points bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members := loyalty._member(p, member, false);
	nt loyalty.tiers;
	this_month date;
	parts text[];
	s record;
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = '22004';
	END IF;
	tier := loyalty.tier(member, as_of, p.code);
	tier_valid_until := CASE WHEN tier IS NOT DISTINCT FROM m.tier THEN m.tier_valid_until END;
	SELECT w.window_from, w.window_to INTO window_from, window_to
	  FROM loyalty._tier_window(p.id, as_of) w;
	this_month := window_to;
	s := loyalty.activity_sum(m.activity, window_from, window_to);
	spend := s.spend; orders := s.orders; points := s.points;

	-- what leaves the window when the next month (or year) begins
	IF p.tier_window <> 'lifetime' THEN
		drops_at := (CASE p.tier_window WHEN 'rolling' THEN this_month + interval '1 month'
					 ELSE date_trunc('year', this_month) + interval '1 year' END)::timestamp
					AT TIME ZONE p.time_zone;
		s := loyalty.activity_sum(m.activity, window_from,
								  CASE p.tier_window WHEN 'rolling' THEN window_from
								  ELSE window_to END);
		drops_spend := s.spend; drops_orders := s.orders; drops_points := s.points;
	END IF;

	SELECT * INTO nt FROM loyalty.tiers t
	 WHERE t.program_id = p.id AND t.rank > loyalty._tier_rank(p.id, tier)
	 ORDER BY t.rank LIMIT 1;
	IF NOT FOUND THEN
		message := CASE WHEN tier IS NULL THEN 'the program has no tiers'
						ELSE format('%s is the highest tier', tier) END;
		RETURN NEXT;
		RETURN;
	END IF;
	next_tier := nt.name;
	-- NULL where the tier sets no threshold
	missing_spend := CASE WHEN nt.min_spend IS NOT NULL THEN greatest(nt.min_spend - spend, 0) END;
	missing_orders := CASE WHEN nt.min_orders IS NOT NULL THEN greatest(nt.min_orders - orders, 0) END;
	missing_points := CASE WHEN nt.min_points IS NOT NULL THEN greatest(nt.min_points - points, 0) END;
	IF missing_points > 0 THEN
		parts := parts || format('%s more points', missing_points);
	END IF;
	IF missing_orders > 0 THEN
		parts := parts || format('%s more %s', missing_orders,
								 CASE missing_orders WHEN 1 THEN 'order' ELSE 'orders' END);
	END IF;
	IF missing_spend > 0 THEN
		parts := parts || format('%s %s more in purchases', to_char(missing_spend, 'FM999999999999990.00'),
								 p.currency);
	END IF;
	IF (nt.combine = 'any' AND 0 IN (missing_spend, missing_orders, missing_points))
	   OR cardinality(parts) IS NULL THEN
		message := format('qualifies for %s', nt.name);
	ELSE
		message := format('%s to reach %s',
						  array_to_string(parts, CASE nt.combine WHEN 'all' THEN ' and ' ELSE ' or ' END),
						  nt.name);
	END IF;
	RETURN NEXT;
END
$$;

CREATE FUNCTION loyalty.tier_progress(member anyelement, as_of timestamptz DEFAULT now(),
									  program text DEFAULT NULL)
	RETURNS TABLE (tier text, tier_valid_until timestamptz, next_tier text,
				   spend numeric, orders bigint, points bigint,
				   missing_spend numeric, missing_orders bigint, missing_points bigint,
				   message text, window_from date, window_to date,
				   drops_at timestamptz, drops_spend numeric, drops_orders bigint,
				   drops_points bigint)
	LANGUAGE sql STABLE
	AS $$ SELECT * FROM loyalty.tier_progress(member::text, as_of, program) $$;
COMMENT ON FUNCTION loyalty.tier_progress(anyelement, timestamptz, text) IS
	'the next tier and exactly what is missing, and what leaves the window next';

