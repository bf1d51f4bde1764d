------------------------------------------------------------------------------
-- Rewards, cancellations, transfers, donations and behavioural events
-- (issue #5).  Everything here is SQL: the lots functions above already
-- spend FIFO and record exactly which lots a debit drew, which is what a
-- cancellation gives back and what a transfer hands over.
------------------------------------------------------------------------------

CREATE TABLE loyalty.rewards (
	id				serial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	code			text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
	name			text NOT NULL,
	cost			bigint NOT NULL CHECK (cost > 0),
	-- NULL: unlimited; redemptions take one, cancellations give it back
	stock			bigint CHECK (stock >= 0),
	valid_from		timestamptz,
	valid_until		timestamptz,
	-- NULL: every member of the program; otherwise members.tier must be listed
	tiers			text[] CHECK (cardinality(tiers) > 0),
	limit_per_member integer CHECK (limit_per_member > 0),
	limit_period	text CHECK (limit_period IN ('day', 'week', 'month', 'quarter', 'year', 'ever')),
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (program_id, code),
	CONSTRAINT validity_not_empty CHECK (valid_from < valid_until),
	CONSTRAINT limit_needs_period CHECK ((limit_per_member IS NULL) = (limit_period IS NULL))
);
COMMENT ON TABLE loyalty.rewards IS
	'rewards catalog: cost in points, optional stock, validity, tiers, per-member limit per period';

CREATE TABLE loyalty.reward_redemptions (
	id				bigserial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	reward_id		integer NOT NULL REFERENCES loyalty.rewards (id),
	member_id		bigint NOT NULL REFERENCES loyalty.members (id),
	reference		text,
	ledger_id		bigint NOT NULL UNIQUE,
	redeemed_at		timestamptz NOT NULL,
	cancelled_at	timestamptz
);
CREATE UNIQUE INDEX reward_redemptions_reference ON loyalty.reward_redemptions (program_id, reference)
	WHERE reference IS NOT NULL;
CREATE INDEX reward_redemptions_member ON loyalty.reward_redemptions (member_id, reward_id, redeemed_at);
COMMENT ON TABLE loyalty.reward_redemptions IS
	'one row per redeem_reward(); cancelled_at is set by cancel_redemption()';

-- A cause account (charity, B2B partner) is a member of the program that
-- donate() may send points to.
CREATE TABLE loyalty.causes (
	member_id		bigint PRIMARY KEY REFERENCES loyalty.members (id),
	name			text NOT NULL,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.causes IS 'members that are cause accounts and may receive donations';

CREATE TABLE loyalty.event_rules (
	id				serial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	action			text NOT NULL CHECK (action ~ '^[A-Za-z0-9_.-]{1,64}$'),
	points			bigint NOT NULL CHECK (points > 0),
	cap_count		integer CHECK (cap_count > 0),
	cap_period		text CHECK (cap_period IN ('day', 'week', 'month', 'quarter', 'year', 'ever')),
	-- a referral: record_event names the referred member, who must have bought
	is_referral		boolean NOT NULL DEFAULT false,
	active			boolean NOT NULL DEFAULT true,
	UNIQUE (program_id, action),
	CONSTRAINT cap_needs_period CHECK ((cap_count IS NULL) = (cap_period IS NULL))
);
COMMENT ON TABLE loyalty.event_rules IS
	'points per behavioural action (signup, review, referral, ...) and per-member caps';

CREATE TABLE loyalty.events (
	id				bigserial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	member_id		bigint NOT NULL REFERENCES loyalty.members (id),
	action			text NOT NULL,
	reference		text NOT NULL,
	referred_id		bigint REFERENCES loyalty.members (id),
	occurred_at		timestamptz NOT NULL,
	points			bigint NOT NULL,
	ledger_id		bigint NOT NULL,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (program_id, reference)
);
CREATE INDEX events_member ON loyalty.events (member_id, action, occurred_at);
-- a member is referred once per referral action
CREATE UNIQUE INDEX events_referred ON loyalty.events (program_id, action, referred_id)
	WHERE referred_id IS NOT NULL;
COMMENT ON TABLE loyalty.events IS 'behavioural events recorded by record_event(), once per reference';

-- a redemption is cancelled once; a transfer has one leg of each sign
CREATE UNIQUE INDEX ledger_cancel_reference ON loyalty.ledger (program_id, reference)
	WHERE kind = 'cancel' AND reference IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfer_reference ON loyalty.ledger (program_id, reference, (points < 0))
	WHERE kind = 'transfer' AND reference IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_redemptions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.causes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events_id_seq', '');

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

-- LY004 when an API entry of this operation already uses the reference.
CREATE FUNCTION loyalty._reference_unused(program loyalty.programs, op text, reference text)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	SELECT * INTO l FROM loyalty.ledger
	 WHERE ledger.program_id = program.id AND ledger.reference = _reference_unused.reference
	   AND ledger.track_id IS NULL
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Ledger entry %s holds %s points for member id %s.',
								  l.id, l.points, l.member_id),
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

