-- loyalty 0.1: programs, members, an append-only ledger and the lots type.
\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

------------------------------------------------------------------------------
-- The lots type: a member's points as expiring lots (src/balance*.c)
------------------------------------------------------------------------------

CREATE TYPE loyalty.lots;

-- STABLE like timestamptz_in: input without a zone is read in the session's TimeZone
CREATE FUNCTION loyalty.lots_in(cstring) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_in' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_out(loyalty.lots) RETURNS cstring
	AS 'MODULE_PATHNAME', 'lots_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_recv(internal) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_send(loyalty.lots) RETURNS bytea
	AS 'MODULE_PATHNAME', 'lots_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.lots (
	INPUT = loyalty.lots_in,
	OUTPUT = loyalty.lots_out,
	RECEIVE = loyalty.lots_recv,
	SEND = loyalty.lots_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE loyalty.lots IS
	'points as lots sorted by expiry, pending lots with their release instant, and debt';

CREATE FUNCTION loyalty.lots_eq(loyalty.lots, loyalty.lots) RETURNS boolean
	AS 'MODULE_PATHNAME', 'lots_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_ne(loyalty.lots, loyalty.lots) RETURNS boolean
	AS 'MODULE_PATHNAME', 'lots_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR loyalty.= (
	LEFTARG = loyalty.lots, RIGHTARG = loyalty.lots, PROCEDURE = loyalty.lots_eq,
	COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>)
);
CREATE OPERATOR loyalty.<> (
	LEFTARG = loyalty.lots, RIGHTARG = loyalty.lots, PROCEDURE = loyalty.lots_ne,
	COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=)
);

CREATE FUNCTION loyalty.lots_add(lots loyalty.lots, points bigint, expires_at timestamptz)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_add(loyalty.lots, bigint, timestamptz) IS
	'add a lot usable until expires_at (infinity: never expires); pays off debt first';

CREATE FUNCTION loyalty.lots_add_pending(lots loyalty.lots, points bigint,
										 release_at timestamptz, expires_at timestamptz)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_add_pending' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_spend(lots loyalty.lots, points bigint, as_of timestamptz,
								   allow_debt boolean DEFAULT false,
								   OUT remaining loyalty.lots, OUT drawn loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_spend' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_spend(loyalty.lots, bigint, timestamptz, boolean) IS
	'spend FIFO by soonest expiry among lots usable at as_of; drawn holds what was taken';

CREATE FUNCTION loyalty.lots_expire(lots loyalty.lots, as_of timestamptz,
									OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_settle(lots loyalty.lots, as_of timestamptz,
									OUT remaining loyalty.lots, OUT released loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_settle' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_expire_all(lots loyalty.lots,
										OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire_all' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_expire_all(loyalty.lots) IS
	'expire every available lot whatever its expiry (inactivity); pending lots stay';
CREATE FUNCTION loyalty.lots_expire_usable(lots loyalty.lots, at timestamptz,
										   OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire_usable' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_expire_usable(loyalty.lots, timestamptz) IS
	'an inactivity deadline at "at": every lot still usable then expires; pending lots and lots expiring by then stay';
CREATE FUNCTION loyalty.lots_next_event(loyalty.lots) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'lots_next_event' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_next_event(loyalty.lots) IS
	'the next release or finite expiry in the lots; NULL when nothing will change';
CREATE FUNCTION loyalty.lots_settlement(lots loyalty.lots, as_of timestamptz,
										OUT remaining loyalty.lots, OUT kinds text[],
										OUT points bigint[], OUT entry_lots loyalty.lots[],
										OUT effective timestamptz[])
	AS 'MODULE_PATHNAME', 'lots_settlement' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_settlement(loyalty.lots, timestamptz) IS
	'the lots left after settling at as_of, and the release and expire entries that settling writes';

CREATE FUNCTION loyalty.lots_merge(loyalty.lots, loyalty.lots) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_merge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_subtract(loyalty.lots, loyalty.lots) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_subtract' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_apply(state loyalty.lots, delta loyalty.lots, op text)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_apply' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_available(lots loyalty.lots, as_of timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_available' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_pending(lots loyalty.lots, as_of timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_pending' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_expiring(lots loyalty.lots, from_ts timestamptz, to_ts timestamptz)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_expiring' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_total(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_points(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_points' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_points(loyalty.lots) IS 'points in lots and pending lots, before debt';
CREATE FUNCTION loyalty.lots_debt(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_debt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_entries(lots loyalty.lots,
									 OUT state text, OUT release_at timestamptz,
									 OUT expires_at timestamptz, OUT points bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'lots_entries' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 4;

-- Rebuild lots from ledger entries: replay(lots, op ORDER BY effective_at, id)
CREATE AGGREGATE loyalty.replay(loyalty.lots, text) (
	SFUNC = loyalty.lots_apply,
	STYPE = loyalty.lots,
	INITCOND = '{}',
	PARALLEL = SAFE
);
-- The same for verify(): NULL instead of an error when an entry removes lots
-- that the replayed state does not hold
CREATE FUNCTION loyalty._lots_apply_checked(state loyalty.lots, delta loyalty.lots, op text)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_apply_checked' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE loyalty._replay_checked(loyalty.lots, text) (
	SFUNC = loyalty._lots_apply_checked,
	STYPE = loyalty.lots,
	INITCOND = '{}',
	PARALLEL = SAFE
);

-- A member's ledger on the time axis (src/timeline.c): the lots it gives as
-- of an instant ('read'), or everything with what fell due by as_of written
-- out ('settle', for writers), or the recorded entries checked strictly
-- ('verify').  Feed it in the order of the time axis: ORDER BY
-- effective_at, (kind IN ('expire', 'reinstate') AND reason IS NOT DISTINCT
-- FROM 'inactivity') DESC, id -- an inactivity expiry, and its withdrawal,
-- before the other entries of its instant.
CREATE TYPE loyalty._timeline_result AS (
	lots			loyalty.lots,
	problem			text,
	kinds			text[],
	points			bigint[],
	entry_lots		loyalty.lots[],
	effective		timestamptz[],
	reasons			text[],
	last_activity	timestamptz
);
CREATE FUNCTION loyalty._timeline_step(internal, program_id integer, mode text, as_of timestamptz,
									   settled_at timestamptz, kind text, points bigint,
									   lots loyalty.lots, reason text, effective_at timestamptz,
									   id bigint)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'loyalty_timeline_step' LANGUAGE C;
CREATE FUNCTION loyalty._timeline_final(internal) RETURNS loyalty._timeline_result
	AS 'MODULE_PATHNAME', 'loyalty_timeline_final' LANGUAGE C;
CREATE AGGREGATE loyalty._timeline(program_id integer, mode text, as_of timestamptz,
								   settled_at timestamptz, kind text, points bigint,
								   lots loyalty.lots, reason text, effective_at timestamptz,
								   id bigint) (
	SFUNC = loyalty._timeline_step,
	STYPE = internal,
	FINALFUNC = loyalty._timeline_final
);

------------------------------------------------------------------------------
-- The activity type: purchase activity in calendar-month buckets
-- (src/activity*.c)
------------------------------------------------------------------------------

CREATE TYPE loyalty.activity;

CREATE FUNCTION loyalty.activity_in(cstring) RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_out(loyalty.activity) RETURNS cstring
	AS 'MODULE_PATHNAME', 'activity_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_recv(internal) RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_send(loyalty.activity) RETURNS bytea
	AS 'MODULE_PATHNAME', 'activity_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.activity (
	INPUT = loyalty.activity_in,
	OUTPUT = loyalty.activity_out,
	RECEIVE = loyalty.activity_recv,
	SEND = loyalty.activity_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE loyalty.activity IS
	'spend, orders and points per calendar month (the latest 120 months), older months folded into "before"';

CREATE FUNCTION loyalty.activity_eq(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_activity_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_ne(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_activity_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR loyalty.= (
	LEFTARG = loyalty.activity, RIGHTARG = loyalty.activity, PROCEDURE = loyalty.activity_eq,
	COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>)
);
CREATE OPERATOR loyalty.<> (
	LEFTARG = loyalty.activity, RIGHTARG = loyalty.activity, PROCEDURE = loyalty.activity_ne,
	COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=)
);

CREATE FUNCTION loyalty.activity_add(a loyalty.activity, month date, spend numeric,
									 orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'loyalty_activity_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_add(loyalty.activity, date, numeric, bigint, bigint) IS
	'add to the bucket of the calendar month containing month; spend rounded to 4 decimals';

-- STABLE like tz_add: the zone is looked up in the time zone database
CREATE FUNCTION loyalty.activity_add(a loyalty.activity, at timestamptz, time_zone text,
									 spend numeric, orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'loyalty_activity_add_at' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_add(loyalty.activity, timestamptz, text, numeric, bigint, bigint) IS
	'add to the bucket of the calendar month of at in time_zone; spend rounded to 4 decimals';

CREATE FUNCTION loyalty.activity_sum(a loyalty.activity, from_month date, to_month date,
									 OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'loyalty_activity_sum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_sum(loyalty.activity, date, date) IS
	'totals of the months from the month of from_month to the month of to_month; infinities are open ends, and from_month = -infinity includes "before"';

CREATE FUNCTION loyalty.activity_total(a loyalty.activity,
									   OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'loyalty_activity_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_total(loyalty.activity) IS
	'lifetime totals: "before" plus every bucket';

CREATE FUNCTION loyalty.activity_buckets(a loyalty.activity)
	RETURNS TABLE (month date, spend numeric, orders bigint, points bigint)
	AS 'MODULE_PATHNAME', 'loyalty_activity_buckets' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 12;
COMMENT ON FUNCTION loyalty.activity_buckets(loyalty.activity) IS
	'one row per kept month, oldest first, month as its first day; the "before" bucket is not listed (see activity_sum from -infinity)';

CREATE FUNCTION loyalty.activity_month(at timestamptz, time_zone text) RETURNS date
	AS 'MODULE_PATHNAME', 'loyalty_activity_month' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_month(timestamptz, text) IS
	'first day of the calendar month of at in time_zone';

------------------------------------------------------------------------------
-- Time zones (src/tz.c)
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.tz_add(ts timestamptz, span interval, time_zone text)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'loyalty_tz_add' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.tz_add(timestamptz, interval, text) IS
	'ts + span with months and days counted on the wall clock of time_zone (DST-safe)';

CREATE FUNCTION loyalty.interval_sign(interval) RETURNS integer
	AS 'MODULE_PATHNAME', 'loyalty_interval_sign' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.interval_sign(interval) IS
	'1 if no field is negative and one is positive, 0 if all are zero, -1 if any field is negative';

CREATE FUNCTION loyalty.valid_time_zone(text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_valid_time_zone' LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- End of the period containing ts, plus extra whole periods, in time_zone.
CREATE FUNCTION loyalty.period_end(ts timestamptz, period text, extra integer, time_zone text)
	RETURNS timestamptz
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF period NOT IN ('day', 'week', 'month', 'quarter', 'year') THEN
		RAISE EXCEPTION 'unknown period "%"', period
			USING ERRCODE = '22023', HINT = 'Use day, week, month, quarter or year.';
	END IF;
	IF extra < 0 THEN
		RAISE EXCEPTION 'extra periods must not be negative' USING ERRCODE = '22023';
	END IF;
	RETURN loyalty.tz_add(
		date_trunc(period, ts, time_zone),
		CASE period
			WHEN 'day' THEN make_interval(days => extra + 1)
			WHEN 'week' THEN make_interval(weeks => extra + 1)
			WHEN 'month' THEN make_interval(months => extra + 1)
			WHEN 'quarter' THEN make_interval(months => 3 * (extra + 1))
			WHEN 'year' THEN make_interval(years => extra + 1)
		END,
		time_zone);
END
$$;

------------------------------------------------------------------------------
-- Configuration and data
------------------------------------------------------------------------------

CREATE TABLE loyalty.programs (
	id				serial PRIMARY KEY,
	code			text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
	name			text NOT NULL,
	currency		text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
	points_per_unit numeric NOT NULL DEFAULT 1 CHECK (points_per_unit >= 0),
	rounding		text NOT NULL DEFAULT 'floor'
					CHECK (rounding IN ('floor', 'half_up', 'ceil')),
	point_value		numeric NOT NULL DEFAULT 0.01 CHECK (point_value >= 0),
	expiry_policy	text NOT NULL DEFAULT 'never'
					CHECK (expiry_policy IN ('never', 'after', 'period_end', 'inactivity')),
	-- every field positive or zero: '1 mon -29 days' would run backwards in February
	expiry_interval interval CHECK (loyalty.interval_sign(expiry_interval) = 1),
	expiry_period	text CHECK (expiry_period IN ('month', 'quarter', 'year')),
	expiry_extra_periods integer NOT NULL DEFAULT 0 CHECK (expiry_extra_periods BETWEEN 0 AND 1000),
	pending_interval interval NOT NULL DEFAULT interval '0'
					CHECK (loyalty.interval_sign(pending_interval) >= 0),
	time_zone		text NOT NULL DEFAULT 'UTC' CHECK (loyalty.valid_time_zone(time_zone)),
	is_default		boolean NOT NULL DEFAULT false,
	auto_enroll		boolean NOT NULL DEFAULT true,
	-- tiers (see loyalty.tiers): qualification window, validity, downgrade
	tier_window		text NOT NULL DEFAULT 'rolling'
					CHECK (tier_window IN ('rolling', 'calendar_year', 'lifetime')),
	tier_window_months integer NOT NULL DEFAULT 12 CHECK (tier_window_months BETWEEN 1 AND 120),
	tier_validity	text NOT NULL DEFAULT 'months' CHECK (tier_validity IN ('months', 'period_end')),
	tier_validity_months integer NOT NULL DEFAULT 12
					CHECK (tier_validity_months BETWEEN 1 AND 1200),
	tier_validity_period text NOT NULL DEFAULT 'year'
					CHECK (tier_validity_period IN ('month', 'quarter', 'year')),
	tier_validity_extra_periods integer NOT NULL DEFAULT 0
					CHECK (tier_validity_extra_periods BETWEEN 0 AND 100),
	tier_downgrade	text NOT NULL DEFAULT 'one_step'
					CHECK (tier_downgrade IN ('one_step', 'qualified')),
	tier_grace		interval NOT NULL DEFAULT interval '0'
					CHECK (loyalty.interval_sign(tier_grace) >= 0),
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- 'after': each lot expires expiry_interval after it was earned;
	-- 'inactivity': all points expire expiry_interval after the last activity
	CONSTRAINT expiry_after_needs_interval
		CHECK ((expiry_policy IN ('after', 'inactivity')) = (expiry_interval IS NOT NULL)),
	CONSTRAINT expiry_period_end_needs_period
		CHECK ((expiry_policy = 'period_end') = (expiry_period IS NOT NULL))
);
CREATE UNIQUE INDEX programs_one_default ON loyalty.programs (is_default) WHERE is_default;
COMMENT ON TABLE loyalty.programs IS 'loyalty programs, one row each; configure by INSERT/UPDATE';

CREATE TABLE loyalty.members (
	id				bigserial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	member_key		text NOT NULL,
	balance			loyalty.lots NOT NULL DEFAULT '{}',
	enrolled_at		timestamptz NOT NULL DEFAULT now(),
	last_activity_at timestamptz,	-- the latest activity instant (docs/concepts.md, Inactivity)
	-- every inactivity expiry due at or before it is written; NULL: none checked
	settled_at		timestamptz,
	first_purchase_at timestamptz,
	tier			text,
	activity		loyalty.activity NOT NULL DEFAULT '{}',
	tier_since		timestamptz,
	tier_valid_until timestamptz,	-- NULL: no end (base tier, never_downgrade)
	tier_manual_until timestamptz,	-- set by set_tier(); NULL: qualified
	tier_review_at	timestamptz,	-- when run_maintenance() reviews the tier
	-- when run_maintenance() has work for the member; deliberately not
	-- indexed (see below)
	next_event_at	timestamptz GENERATED ALWAYS AS (loyalty.lots_next_event(balance)) STORED,
	UNIQUE (program_id, member_key)
) WITH (fillfactor = 60);
-- Every purchase, redemption and maintenance batch rewrites a member row.
-- No index covers a column they change (balance, next_event_at, activity,
-- last_activity_at, first_purchase_at), and pages are filled to 60% only,
-- so that the new row version fits beside the old one: a HOT update, with
-- no index entries to write.  run_maintenance() finds due members by
-- walking the primary key and filtering on next_event_at instead (one pass
-- over the table per run; docs/performance.md has the figures).
CREATE INDEX members_tier_review ON loyalty.members (tier_review_at)
	WHERE tier_review_at IS NOT NULL;
COMMENT ON TABLE loyalty.members IS
	'members keyed by the application''s customer key (as text); balance = lots after every ledger entry';

CREATE TABLE loyalty.earning_rules (
	id				serial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	name			text NOT NULL,
	kind			text NOT NULL
					CHECK (kind IN ('multiplier', 'bonus', 'minimum', 'cap', 'first_purchase')),
	priority		integer NOT NULL DEFAULT 100,
	exclusive		boolean NOT NULL DEFAULT false,
	active			boolean NOT NULL DEFAULT true,
	-- conditions: a rule applies when every condition given matches
	tier			text,
	channel			text,
	category		text,
	store			text,
	valid_from		timestamptz,
	valid_until		timestamptz,
	days_of_week	integer[] CHECK (days_of_week <@ '{1,2,3,4,5,6,7}'
									 AND cardinality(days_of_week) > 0),
	hour_from		integer CHECK (hour_from BETWEEN 0 AND 23),
	hour_until		integer CHECK (hour_until BETWEEN 0 AND 24),
	min_amount		numeric CHECK (min_amount >= 0),
	-- effects
	multiplier		numeric CHECK (multiplier >= 0),
	points			bigint CHECK (points >= 0),
	cap_period		text CHECK (cap_period IN ('day', 'week', 'month', 'quarter', 'year')),
	-- the rule's own expiry for the points it matches (NULL: the program's);
	-- inactivity is per member, so only a program can have it
	expiry_policy	text CHECK (expiry_policy IN ('never', 'after', 'period_end')),
	expiry_interval interval CHECK (loyalty.interval_sign(expiry_interval) = 1),
	expiry_period	text CHECK (expiry_period IN ('month', 'quarter', 'year')),
	expiry_extra_periods integer CHECK (expiry_extra_periods BETWEEN 0 AND 1000),
	CONSTRAINT rule_expiry_only_for_awards
		CHECK (expiry_policy IS NULL OR kind IN ('multiplier', 'bonus', 'first_purchase')),
	CONSTRAINT rule_expiry_after_needs_interval
		CHECK ((expiry_policy IS NOT DISTINCT FROM 'after') = (expiry_interval IS NOT NULL)),
	CONSTRAINT rule_expiry_period_end_needs_period
		CHECK ((expiry_policy IS NOT DISTINCT FROM 'period_end') = (expiry_period IS NOT NULL)),
	CONSTRAINT hours_come_in_pairs CHECK ((hour_from IS NULL) = (hour_until IS NULL)),
	CONSTRAINT hours_not_empty CHECK (hour_from IS NULL OR hour_from <> hour_until),
	CONSTRAINT validity_not_empty CHECK (valid_from < valid_until),
	CONSTRAINT multiplier_needs_factor CHECK (kind <> 'multiplier' OR multiplier IS NOT NULL),
	CONSTRAINT points_rules_need_points
		CHECK (kind NOT IN ('bonus', 'first_purchase', 'cap') OR points IS NOT NULL),
	CONSTRAINT cap_needs_period CHECK ((kind = 'cap') = (cap_period IS NOT NULL)),
	CONSTRAINT minimum_needs_amount CHECK (kind <> 'minimum' OR min_amount IS NOT NULL)
);
CREATE INDEX earning_rules_program ON loyalty.earning_rules (program_id);
COMMENT ON TABLE loyalty.earning_rules IS
	'earning rules evaluated in C for every tracked purchase; see docs/concepts.md for the order';

CREATE TABLE loyalty.tiers (
	id				serial PRIMARY KEY,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	name			text NOT NULL CHECK (name <> ''),
	rank			integer NOT NULL CHECK (rank >= 0),
	min_spend		numeric CHECK (min_spend >= 0),
	min_orders		bigint CHECK (min_orders >= 0),
	min_points		bigint CHECK (min_points >= 0),
	combine			text NOT NULL DEFAULT 'any' CHECK (combine IN ('any', 'all')),
	never_downgrade boolean NOT NULL DEFAULT false,
	UNIQUE (program_id, name),
	UNIQUE (program_id, rank),
	CONSTRAINT higher_tiers_need_a_threshold
		CHECK (rank = 0 OR min_spend IS NOT NULL OR min_orders IS NOT NULL OR min_points IS NOT NULL)
);
COMMENT ON TABLE loyalty.tiers IS
	'tier ladder per program: the highest rank whose thresholds the window''s activity meets';

CREATE TABLE loyalty.tier_history (
	id				bigserial PRIMARY KEY,
	program_id		integer NOT NULL,
	member_id		bigint NOT NULL,
	from_tier		text,
	to_tier			text,
	reason			text NOT NULL
					CHECK (reason IN ('upgrade', 'renewal', 'downgrade', 'manual', 'manual_end')),
	detail			text,
	effective_at	timestamptz NOT NULL,
	valid_until		timestamptz,
	recorded_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tier_history_member ON loyalty.tier_history (member_id, effective_at, id);
COMMENT ON TABLE loyalty.tier_history IS 'every tier change of every member, with its reason';

-- An outbox for applications: one row per tier change, and a NOTIFY on
-- channel loyalty_tier with the event id.  Mark rows handled by setting
-- handled_at.
CREATE TABLE loyalty.tier_events (
	id				bigserial PRIMARY KEY,
	program_code	text NOT NULL,
	member_key		text NOT NULL,
	from_tier		text,
	to_tier			text,
	reason			text NOT NULL,
	effective_at	timestamptz NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	handled_at		timestamptz
);
CREATE INDEX tier_events_unhandled ON loyalty.tier_events (id) WHERE handled_at IS NULL;

CREATE TABLE loyalty.tracked_tables (
	id				serial PRIMARY KEY,
	-- NULL once the table is dropped (the row stays: awards keep their link)
	table_name		regclass UNIQUE,
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	member_column	name NOT NULL,
	amount_column	name NOT NULL,
	time_column		name,
	reference_columns name[] NOT NULL CHECK (cardinality(reference_columns) BETWEEN 1 AND 32),
	status_column	name,
	reversed_statuses text[] NOT NULL DEFAULT '{refunded,cancelled}',
	channel_column	name,
	category_column name,
	store_column	name,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- set by the event trigger loyalty_drop_guard when the table is dropped
	dropped_name	text,
	dropped_at		timestamptz,
	CONSTRAINT dropped_tables_are_inactive
		CHECK ((table_name IS NULL) = (dropped_at IS NOT NULL) AND (table_name IS NOT NULL OR NOT active))
);
COMMENT ON TABLE loyalty.tracked_tables IS
	'application tables whose rows earn points; written only by track_purchases()/untrack_purchases()';

CREATE DOMAIN loyalty.entry_kind AS text
	CHECK (VALUE IN ('earn', 'pending', 'release', 'redeem', 'expire', 'adjust', 'reverse',
					 'transfer', 'cancel', 'reinstate'));

CREATE TABLE loyalty.ledger (
	id				bigserial PRIMARY KEY,
	-- no foreign keys on purpose: the ledger is written only by loyalty's
	-- functions, which hold the member's row lock; a per-row RI check would
	-- cost more than the insert itself.  verify() reports orphans.
	program_id		integer NOT NULL,
	member_id		bigint NOT NULL,
	kind			loyalty.entry_kind NOT NULL,
	points			bigint NOT NULL,
	lots			loyalty.lots NOT NULL,
	reference		text,
	reason			text,
	effective_at	timestamptz NOT NULL,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	track_id		integer
	-- Checks that relate columns (points match lots, release moves 0 points)
	-- live in verify(): a table CHECK is re-parsed for every statement,
	-- which costs more than the single-row purchase insert it guards.
);
CREATE INDEX ledger_member_time ON loyalty.ledger (member_id, effective_at, id);
-- requests through the API are idempotent on (program, operation, reference)
CREATE UNIQUE INDEX ledger_reference ON loyalty.ledger
	(program_id, (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END), reference)
	WHERE reference IS NOT NULL AND track_id IS NULL
	  AND kind IN ('earn', 'pending', 'redeem', 'adjust');
-- a tracked purchase is awarded once: its initial entry is unique
CREATE UNIQUE INDEX ledger_purchase_award ON loyalty.ledger (track_id, reference)
	WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending');
COMMENT ON TABLE loyalty.ledger IS
	'append-only: every movement of points; lots holds exactly which lots it added or removed';

CREATE FUNCTION loyalty.ledger_append_only() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'loyalty.ledger is append-only'
		USING ERRCODE = 'LY005',
			  DETAIL = format('%s is not allowed on the ledger.', TG_OP),
			  HINT = 'Correct a balance with loyalty.adjust(), which records a new entry.';
END
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON loyalty.ledger
	FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON loyalty.ledger
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_append_only();

SELECT pg_catalog.pg_extension_config_dump('loyalty.programs', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.programs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tiers', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tiers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_events', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tracked_tables_id_seq', '');

-- Configuration changes reach every backend's rule cache (src/rules.c).
CREATE FUNCTION loyalty.config_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_config_changed' LANGUAGE C;
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.programs
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.earning_rules
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.tracked_tables
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.tiers
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_id_seq', '');

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

-- Write the release and expiry entries of lots due by "at"; return what is left.
CREATE FUNCTION loyalty._settle_lots(program_id integer, member_id bigint, lots loyalty.lots,
									 at timestamptz)
	RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	s record := loyalty.lots_settlement(lots, at);
BEGIN
	IF cardinality(s.kinds) > 0 THEN
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, effective_at)
		SELECT _settle_lots.program_id, _settle_lots.member_id, u.*
		  FROM unnest(s.kinds, s.points, s.entry_lots, s.effective) AS u;
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
	RETURN at < coalesce((SELECT max(l.effective_at) FROM loyalty.ledger l WHERE l.member_id = m.id),
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
									 l.lots, l.reason, l.effective_at, l.id
									 ORDER BY l.effective_at,
											  (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
											  l.id)
			  FROM loyalty.ledger l
			 WHERE l.member_id = m.id AND l.effective_at <= upto);

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
BEGIN
	IF cardinality(t.kinds) > 0 THEN
		-- in time order, so that ids follow it
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, reason, effective_at)
		SELECT m.program_id, m.id, u.k, u.p, u.l, u.r, u.e
		  FROM unnest(t.kinds, t.points, t.entry_lots, t.reasons, t.effective)
			   WITH ORDINALITY AS u(k, p, l, r, e, n)
		 ORDER BY u.n;
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
CREATE FUNCTION loyalty._expire_inactive(program_id integer, member_id bigint, lots loyalty.lots,
										 d timestamptz)
	RETURNS loyalty.lots
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	x record := loyalty.lots_expire_usable(
					loyalty._settle_lots(program_id, member_id, lots, d - interval '1 microsecond'), d);
BEGIN
	IF loyalty.lots_points(x.expired) > 0 THEN
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, reason, effective_at)
		VALUES (program_id, member_id, 'expire', -loyalty.lots_points(x.expired), x.expired,
				'inactivity', d);
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
		RETURN loyalty._settle_lots(m.program_id, m.id, m.balance, at);
	END IF;
	RETURN loyalty._settle_lots(m.program_id, m.id,
								loyalty._expire_inactive(m.program_id, m.id, m.balance, deadline), at);
END
$$;

-- An earlier entry under the same reference: the same request (return it) or a conflict.
CREATE FUNCTION loyalty._replayed(program loyalty.programs, op text, reference text,
								  member_id bigint, points bigint)
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
	 WHERE ledger.program_id = program.id
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	   AND ledger.reference = _replayed.reference
	   AND ledger.track_id IS NULL
	   AND kind IN ('earn', 'pending', 'redeem', 'adjust');
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF l.member_id <> _replayed.member_id OR l.points <> _replayed.points THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Ledger entry %s holds %s points for member id %s.',
								  l.id, l.points, l.member_id),
				  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
	END IF;
	RETURN l;
END
$$;

-- Append one API entry.  Two members' concurrent requests with one reference
-- both pass _replayed(); the unique index stops the second, reported as LY004.
CREATE FUNCTION loyalty._append(program loyalty.programs, member_id bigint, kind text,
								points bigint, lots loyalty.lots, reference text, reason text,
								effective_at timestamptz)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, reference, reason,
								effective_at)
	VALUES (program.id, _append.member_id, _append.kind, _append.points, _append.lots,
			_append.reference, _append.reason, _append.effective_at)
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
	l := loyalty._replayed(p, 'earn', reference, m.id, points);
	IF l.id IS NOT NULL THEN
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
		l := loyalty._append(p, m.id, CASE WHEN is_pending THEN 'pending' ELSE 'earn' END,
							 points, credit, reference, NULL, at);
		m.balance := loyalty._rebuild(m, now());
		m.last_activity_at := greatest(m.last_activity_at, at);
	ELSE
		-- what expired before this activity (inactivity) stays expired
		m.balance := loyalty._settle(m, least(at, now()));
		l := loyalty._append(p, m.id, CASE WHEN is_pending THEN 'pending' ELSE 'earn' END,
							 points, credit, reference, NULL, at);
		m.balance := loyalty.lots_merge(m.balance, credit);
		m.last_activity_at := greatest(m.last_activity_at, at);
		-- written up to here; the new activity's deadline is new, due or not
		m.settled_at := least(at, now());
		m.balance := loyalty._settle(m, now());
	END IF;
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = m.last_activity_at, settled_at = now()
	 WHERE id = m.id;
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
	l := loyalty._replayed(p, 'redeem', reference, m.id, -points);
	IF l.id IS NOT NULL THEN
		RETURN l;
	END IF;
	m := loyalty._settled(p, m);
	s := loyalty.lots_spend(m.balance, points, now());	-- LY001 when short
	l := loyalty._append(p, m.id, 'redeem', -points, s.drawn, reference, NULL, now());
	m.balance := loyalty._after_write(p, m, s.remaining);
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = m.id;
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
	l := loyalty._replayed(p, 'adjust', reference, m.id, delta);
	IF l.id IS NOT NULL THEN
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
	l := loyalty._append(p, m.id, 'adjust', delta, moved, reference, reason, now());
	m.balance := loyalty._after_write(p, m, m.balance);
	UPDATE loyalty.members
	   SET balance = m.balance, last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = m.id;
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
	   OR EXISTS (SELECT 1 FROM loyalty.ledger WHERE member_id = m.id AND effective_at > as_of) THEN
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
	RETURNS TABLE (id bigint, effective_at timestamptz, kind text, points bigint,
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
	SELECT coalesce(sum(l.points), 0) INTO opening
	  FROM loyalty.ledger l WHERE l.member_id = m.id AND l.effective_at < from_ts;
	RETURN QUERY
		SELECT l.id, l.effective_at, l.kind::text, l.points,
			   (opening + sum(l.points) OVER (ORDER BY l.effective_at,
														 (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
														 l.id))::bigint,
			   l.reference, l.reason,
			   (SELECT max(e.expires_at) FROM loyalty.lots_entries(l.lots) e),
			   l.recorded_at
		  FROM loyalty.ledger l
		 WHERE l.member_id = m.id AND l.effective_at >= from_ts AND l.effective_at < to_ts
		 ORDER BY l.effective_at, (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC, l.id;
END
$$;

CREATE FUNCTION loyalty.statement(member anyelement, from_ts timestamptz DEFAULT '-infinity',
								  to_ts timestamptz DEFAULT 'infinity', program text DEFAULT NULL)
	RETURNS TABLE (id bigint, effective_at timestamptz, kind text, points bigint,
				   running_total bigint, reference text, reason text,
				   expires_at timestamptz, recorded_at timestamptz)
	LANGUAGE sql STABLE
	AS $$ SELECT * FROM loyalty.statement(member::text, from_ts, to_ts, program) $$;
COMMENT ON FUNCTION loyalty.statement(anyelement, timestamptz, timestamptz, text) IS
	'ledger entries effective in [from_ts, to_ts) with a running total';

-- Members whose stored lots disagree with their ledger, and ledger entries
-- that point nowhere.  Empty means healthy.
CREATE FUNCTION loyalty.verify()
	RETURNS TABLE (member_id bigint, program_code text, member_key text,
				   ledger_sum bigint, balance_total bigint, problem text)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
	WITH sums AS (
		SELECT l.member_id, sum(l.points) AS s FROM loyalty.ledger l GROUP BY l.member_id
	)
	-- per member: the total; the ledger replayed strictly on the time axis
	-- (src/timeline.c, mode verify): every entry holds at its own instant,
	-- inactivity deadlines up to settled_at are written, and the result is
	-- the stored lots; last_activity_at.  One problem per member, the first
	-- of these.
	SELECT m.id, p.code, m.member_key, coalesce(sums.s, 0)::bigint,
		   loyalty.lots_total(m.balance),
		   CASE WHEN coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
				THEN 'balance total differs from the sum of the ledger'
				WHEN (r.t).problem IS NOT NULL THEN (r.t).problem
				WHEN coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
				THEN 'stored lots differ from the ledger replayed in effective order'
				ELSE 'last_activity_at differs from the ledger' END
	  FROM loyalty.members m
	  JOIN loyalty.programs p ON p.id = m.program_id
	  LEFT JOIN sums ON sums.member_id = m.id
	  LEFT JOIN (SELECT mm.id AS member_id,
						loyalty._timeline(mm.program_id, 'verify', 'infinity', mm.settled_at,
										  l.kind, l.points, l.lots, l.reason, l.effective_at, l.id
										  ORDER BY l.effective_at,
												   (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
												   l.id) AS t
				   FROM loyalty.ledger l
				   JOIN loyalty.members mm ON mm.id = l.member_id
				  GROUP BY mm.id) r ON r.member_id = m.id
	 WHERE coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
		OR (r.t).problem IS NOT NULL
		OR coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
		OR (r.t).last_activity IS DISTINCT FROM m.last_activity_at
	UNION ALL
	SELECT sums.member_id, NULL, NULL, sums.s::bigint, NULL,
		   'ledger entries for a member that does not exist'
	  FROM sums
	 WHERE NOT EXISTS (SELECT 1 FROM loyalty.members m WHERE m.id = sums.member_id)
	UNION ALL
	SELECT l.member_id, p.code, m.member_key, NULL, NULL,
		   format('ledger entry %s names program %s, the member belongs to %s',
				  l.id, l.program_id, m.program_id)
	  FROM loyalty.ledger l
	  JOIN loyalty.members m ON m.id = l.member_id
	  JOIN loyalty.programs p ON p.id = m.program_id
	 WHERE l.program_id <> m.program_id
	UNION ALL
	-- a credit adds its lots (and any debt it carries); a debit removes its
	-- lots and leaves its debt part owed; a release moves no points
	SELECT l.member_id, NULL, NULL, NULL, NULL,
		   format('ledger entry %s moves %s points but its lots say %s',
				  l.id, l.points, l.lots)
	  FROM loyalty.ledger l
	 WHERE l.points <> CASE
			WHEN l.kind = 'release' THEN 0
			WHEN l.points < 0 THEN -(loyalty.lots_points(l.lots) + loyalty.lots_debt(l.lots))
			ELSE loyalty.lots_total(l.lots) END
	ORDER BY 1
$$;
COMMENT ON FUNCTION loyalty.verify() IS
	'rows for every member whose ledger does not replay on the time axis or gives other lots than stored, and for ledger entries that point nowhere';

------------------------------------------------------------------------------
-- Automatic accrual from the application's purchases table (src/purchases.c)
------------------------------------------------------------------------------

-- Triggers run as the extension owner so that the application's role needs
-- no rights on loyalty's tables; the C code checks that the tracked-table id
-- it is given belongs to the table it fires on.
CREATE FUNCTION loyalty.purchase_insert() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_purchase_insert' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION loyalty.purchase_change() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_purchase_change' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

-- Checks a purchases table and its columns against the calling role (its
-- TRIGGER privilege on the table), then writes the tracked_tables row as
-- the row's owner: the only way that row is written (src/app_tables.c).
CREATE FUNCTION loyalty._tracked_table_save(tbl regclass, program_id integer, member_column name,
											amount_column name, time_column name,
											reference_columns name[], status_column name,
											reversed_statuses text[], channel_column name,
											category_column name, store_column name)
	RETURNS integer
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_save' LANGUAGE C VOLATILE;

CREATE FUNCTION loyalty._tracked_table_deactivate(tbl regclass) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_deactivate' LANGUAGE C VOLATILE;

-- Why a tracked table cannot be read as configured now (NULL: it can).
CREATE FUNCTION loyalty._tracked_table_problem(track_id integer) RETURNS text
	AS 'MODULE_PATHNAME', 'loyalty_tracked_table_problem' LANGUAGE C STABLE;

CREATE FUNCTION loyalty._drop_triggers(tbl regclass) RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t name;
BEGIN
	FOR t IN SELECT tgname FROM pg_trigger
			  WHERE tgrelid = tbl AND tgname IN ('loyalty_purchase_insert', 'loyalty_purchase_change')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
	END LOOP;
END
$$;

CREATE FUNCTION loyalty.track_purchases(
	tbl regclass,
	member_column name,
	amount_column name,
	time_column name DEFAULT NULL,
	reference_columns name[] DEFAULT NULL,
	status_column name DEFAULT NULL,
	reversed_statuses text[] DEFAULT '{refunded,cancelled}',
	channel_column name DEFAULT NULL,
	category_column name DEFAULT NULL,
	store_column name DEFAULT NULL,
	program text DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	track_id integer;
BEGIN
	IF tbl IS NULL OR member_column IS NULL OR amount_column IS NULL THEN
		RAISE EXCEPTION 'table, member column and amount column are required' USING ERRCODE = '22004';
	END IF;
	-- reference_columns NULL: the primary key's
	track_id := loyalty._tracked_table_save(tbl, p.id, member_column, amount_column, time_column,
											reference_columns, status_column,
											coalesce(reversed_statuses, '{}'), channel_column,
											category_column, store_column);
	PERFORM loyalty._drop_triggers(tbl);
	EXECUTE format('CREATE TRIGGER loyalty_purchase_insert AFTER INSERT ON %s'
				   ' REFERENCING NEW TABLE AS loyalty_new_purchases'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.purchase_insert(%L)',
				   tbl, track_id);
	EXECUTE format('CREATE TRIGGER loyalty_purchase_change AFTER UPDATE OR DELETE ON %s'
				   ' FOR EACH ROW EXECUTE FUNCTION loyalty.purchase_change(%L)',
				   tbl, track_id);
	RETURN track_id;
END
$$;
COMMENT ON FUNCTION loyalty.track_purchases(regclass, name, name, name, name[], name, text[], name, name, name, text) IS
	'award points for the rows of an application table; returns the tracking id';

CREATE FUNCTION loyalty.untrack_purchases(tbl regclass) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	PERFORM loyalty._drop_triggers(tbl);
	-- the row stays (inactive): awards keep their link, and tracking again
	-- reuses the id so that no purchase is awarded twice
	RETURN loyalty._tracked_table_deactivate(tbl);
END
$$;
COMMENT ON FUNCTION loyalty.untrack_purchases(regclass) IS
	'stop awarding points for a table; earlier awards stay in the ledger';

------------------------------------------------------------------------------
-- Maintenance: releases, expiries and tier changes that fell due.  Balances
-- are right as of any instant without it; it writes the entries that make
-- the ledger and the stored lots say so, in batches, skipping locked members.
------------------------------------------------------------------------------

-- One batch of members with ids in (after_id, upto] whose lots have a
-- release or expiry due by as_of, settled with set-based statements.
-- Returns (members, entries, expired points, the batch's last member id).
CREATE FUNCTION loyalty._maintain_lots(as_of timestamptz, batch_size integer, after_id bigint,
									   upto bigint,
									   OUT members bigint, OUT releases bigint,
									   OUT expiries bigint, OUT expired_points bigint,
									   OUT last_id bigint)
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
	-- batches in member id order, found by walking the primary key (there is
	-- no index on next_event_at, so that the updates below stay HOT): the
	-- member rows and the ledger's (member_id, ...) index are then written
	-- page after page, and all batches together read the table once.
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
		SELECT m.id, m.program_id, loyalty.lots_settlement(m.balance, as_of) AS s
		  FROM loyalty.members m
		 WHERE m.next_event_at <= as_of AND m.id > after_id AND m.id <= upto
		 ORDER BY m.id
		 LIMIT batch_size
		   FOR UPDATE OF m SKIP LOCKED
	), ins AS (
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, effective_at)
		SELECT st.program_id, st.id, unnest((st.s).kinds), unnest((st.s).points),
			   unnest((st.s).entry_lots), unnest((st.s).effective)
		  FROM settled st
		RETURNING kind, points
	), upd AS (
		UPDATE loyalty.members m SET balance = (st.s).remaining
		  FROM settled st WHERE m.id = st.id
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM upd), count(*) FILTER (WHERE i.kind = 'release'),
		   count(*) FILTER (WHERE i.kind = 'expire'),
		   coalesce(-sum(i.points) FILTER (WHERE i.kind = 'expire'), 0)::bigint,
		   (SELECT max(id) FROM settled)
	  FROM ins i
$$;

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
BEGIN
	members := 0;
	expired_points := 0;
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
			 WHERE id = m.id;
			IF loyalty.lots_points(m.balance) <> before THEN
				members := members + 1;
				expired_points := expired_points + before - loyalty.lots_points(m.balance);
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- Lot settlement spread over background workers (src/maintenance.c): each
-- worker takes the next batch_size member ids, settles them with
-- _maintain_lots and commits, until none are left.
CREATE FUNCTION loyalty._maintain_parallel(as_of timestamptz, batch_size integer, workers integer,
										   OUT members bigint, OUT releases bigint,
										   OUT expiries bigint, OUT expired_points bigint)
	AS 'MODULE_PATHNAME', 'maintain_parallel' LANGUAGE C VOLATILE;

CREATE FUNCTION loyalty.run_maintenance(as_of timestamptz DEFAULT now(),
										batch_size integer DEFAULT 10000,
										workers integer DEFAULT 0)
	RETURNS TABLE (task text, members bigint, entries bigint, points bigint)
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	b record;
	last_id bigint := 0;
	n_members bigint := 0;
	n_releases bigint := 0;
	n_expiries bigint := 0;
	n_points bigint := 0;
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
	IF workers > 0 THEN
		b := loyalty._maintain_parallel(as_of, batch_size, workers);
		n_members := b.members;
		n_releases := b.releases;
		n_expiries := b.expiries;
		n_points := b.expired_points;
	ELSE
		LOOP
			b := loyalty._maintain_lots(as_of, batch_size, last_id, 9223372036854775807);
			n_members := n_members + b.members;
			n_releases := n_releases + b.releases;
			n_expiries := n_expiries + b.expiries;
			n_points := n_points + b.expired_points;
			EXIT WHEN b.members < batch_size;
			last_id := b.last_id;
		END LOOP;
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
END
$$;
COMMENT ON FUNCTION loyalty.run_maintenance(timestamptz, integer, integer) IS
	'write the releases, expiries and tier changes due by as_of; idempotent; skips locked members; workers > 0 settles lots in background workers that commit batch by batch';

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
								 WHERE l.member_id = m.id AND l.effective_at <= as_of
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
-- event row and a NOTIFY on channel loyalty_tier.
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
	 WHERE id = old.id;
	INSERT INTO loyalty.tier_history (program_id, member_id, from_tier, to_tier, reason, detail,
									  effective_at, valid_until)
	VALUES (old.program_id, old.id, old.tier, new.tier, reason, detail, new.tier_since,
			new.tier_valid_until);
	IF old.tier IS DISTINCT FROM new.tier THEN
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
CREATE FUNCTION loyalty._tier_upgrade(member_id bigint, to_tier text, at timestamptz)
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members;
	p loyalty.programs;
BEGIN
	SELECT * INTO m FROM loyalty.members WHERE id = member_id;
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
BEGIN
	members := 0;
	changes := 0;
	LOOP
		FOR m IN SELECT * FROM loyalty.members mm WHERE mm.tier_review_at <= as_of
				  ORDER BY mm.tier_review_at LIMIT batch_size FOR UPDATE SKIP LOCKED LOOP
			changes := changes + loyalty._tier_review(m, as_of);
			members := members + 1;
		END LOOP;
		EXIT WHEN NOT FOUND OR members % batch_size <> 0;
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
				 WHERE h.member_id = m.id AND h.effective_at <= as_of
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

------------------------------------------------------------------------------
-- Rewards
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.redeem_reward(member text, reward text, reference text DEFAULT NULL,
									  program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	r loyalty.rewards;
	rr loyalty.reward_redemptions;
	w record;
	used bigint;
	l loyalty.ledger;
BEGIN
	IF reward IS NULL THEN
		RAISE EXCEPTION 'reward code must not be null' USING ERRCODE = '22004';
	END IF;
	m := loyalty._member(p, member, true);
	-- the member's lock orders repeats; the reward's lock orders its stock
	SELECT * INTO r FROM loyalty.rewards
	 WHERE rewards.program_id = p.id AND rewards.code = redeem_reward.reward
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'reward "%" does not exist in loyalty program "%"', reward, p.code
			USING ERRCODE = 'LY013',
				  HINT = 'See SELECT code FROM loyalty.rewards.';
	END IF;

	IF reference IS NOT NULL THEN
		SELECT * INTO rr FROM loyalty.reward_redemptions x
		 WHERE x.program_id = p.id AND x.reference = redeem_reward.reference;
		IF FOUND THEN
			IF rr.member_id <> m.id OR rr.reward_id <> r.id THEN
				RAISE EXCEPTION 'reference "%" was already used for a different redeem in program "%"',
								reference, p.code
					USING ERRCODE = 'LY004',
						  DETAIL = format('Redemption %s is reward id %s for member id %s.',
										  rr.id, rr.reward_id, rr.member_id),
						  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
			END IF;
			SELECT * INTO l FROM loyalty.ledger WHERE id = rr.ledger_id;
			RETURN l;
		END IF;
		PERFORM loyalty._reference_unused(p, 'redeem', reference);
	END IF;

	IF NOT r.active OR now() < r.valid_from OR now() >= r.valid_until THEN
		RAISE EXCEPTION 'reward "%" is not available', r.code
			USING ERRCODE = 'LY014',
				  DETAIL = CASE WHEN NOT r.active THEN 'The reward is inactive.'
							ELSE format('It can be redeemed from %s until %s.',
										coalesce(r.valid_from::text, '-infinity'),
										coalesce(r.valid_until::text, 'infinity')) END,
				  HINT = 'Offer only rewards that are active and valid now.';
	END IF;
	IF r.tiers IS NOT NULL AND (m.tier IS NULL OR NOT m.tier = ANY (r.tiers)) THEN
		RAISE EXCEPTION 'reward "%" is not available for tier "%"', r.code, coalesce(m.tier, '(none)')
			USING ERRCODE = 'LY011',
				  DETAIL = format('The reward is for tiers %s.', array_to_string(r.tiers, ', ')),
				  HINT = 'Offer the member only rewards of their tier.';
	END IF;
	IF r.limit_per_member IS NOT NULL THEN
		w := loyalty._period(now(), r.limit_period, p.time_zone);
		SELECT count(*) INTO used FROM loyalty.reward_redemptions x
		 WHERE x.member_id = m.id AND x.reward_id = r.id AND x.cancelled_at IS NULL
		   AND x.redeemed_at >= w.starts AND x.redeemed_at < w.ends;
		IF used >= r.limit_per_member THEN
			RAISE EXCEPTION 'member "%" reached the limit of reward "%"', m.member_key, r.code
				USING ERRCODE = 'LY012',
					  DETAIL = format('%s of %s allowed %s already redeemed%s.', used,
									  r.limit_per_member, loyalty._per(r.limit_period),
									  CASE WHEN r.limit_period = 'ever' THEN ''
										   ELSE format(' (period %s to %s)', w.starts, w.ends) END),
					  HINT = 'A cancelled redemption no longer counts.';
		END IF;
	END IF;
	IF r.stock = 0 THEN
		RAISE EXCEPTION 'reward "%" is out of stock', r.code
			USING ERRCODE = 'LY010',
				  HINT = 'Restock with UPDATE loyalty.rewards SET stock = ...; cancellations return stock.';
	END IF;
	PERFORM loyalty._need_points(m, r.cost, format('Reward "%s"', r.code));

	l := loyalty.redeem(member, r.cost, reference, p.code);
	UPDATE loyalty.rewards SET stock = stock - 1 WHERE id = r.id AND stock IS NOT NULL;
	INSERT INTO loyalty.reward_redemptions (program_id, reward_id, member_id, reference, ledger_id,
											redeemed_at)
	VALUES (p.id, r.id, m.id, reference, l.id, l.effective_at);
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.redeem_reward(member anyelement, reward text, reference text DEFAULT NULL,
									  program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.redeem_reward(member::text, reward, reference, program) $$;
COMMENT ON FUNCTION loyalty.redeem_reward(anyelement, text, text, text) IS
	'redeem a catalog reward: checks validity, tier, limit, stock and points; idempotent on reference';

-- Give back a redemption's points with their original expiry.  Lots that
-- expired meanwhile come back and expire at once, in an expire entry dated
-- with the cancellation (dating it at the old expiry would not replay: the
-- lot was spent then).
CREATE FUNCTION loyalty.cancel_redemption(reference text, program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	d loyalty.ledger;
	c loyalty.ledger;
	m loyalty.members;
	s record;
	e record;
	rr loyalty.reward_redemptions;
BEGIN
	IF reference IS NULL THEN
		RAISE EXCEPTION 'reference must not be null' USING ERRCODE = '22004';
	END IF;
	SELECT * INTO d FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.kind = 'redeem' AND l.reference = cancel_redemption.reference
	   AND l.track_id IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no redemption with reference "%" in loyalty program "%"', reference, p.code
			USING ERRCODE = 'LY015',
				  HINT = 'Only redeem() and redeem_reward() calls made with a reference can be cancelled.';
	END IF;
	SELECT * INTO m FROM loyalty.members WHERE id = d.member_id FOR UPDATE;
	SELECT * INTO c FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.kind = 'cancel' AND l.reference = cancel_redemption.reference;
	IF FOUND THEN
		RETURN c;
	END IF;

	m := loyalty._settled(p, m);
	m.balance := loyalty.lots_merge(m.balance, d.lots);
	c := loyalty._append(p, m.id, 'cancel', -d.points, d.lots, reference, 'redemption cancelled', now());
	s := loyalty.lots_expire(m.balance, now());
	FOR e IN SELECT * FROM loyalty.lots_entries(s.expired) WHERE lots_entries.state = 'lot' LOOP
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, reference, reason,
									effective_at)
		VALUES (p.id, m.id, 'expire', -e.points, loyalty.lots_add('{}', e.points, e.expires_at),
				reference, 'expired before the redemption was cancelled', now());
	END LOOP;
	-- a cancellation is not activity (docs/concepts.md, Inactivity)
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, m, s.remaining), settled_at = now()
	 WHERE id = m.id;

	UPDATE loyalty.reward_redemptions x SET cancelled_at = now()
	 WHERE x.ledger_id = d.id
	RETURNING * INTO rr;
	IF FOUND THEN
		UPDATE loyalty.rewards SET stock = stock + 1 WHERE id = rr.reward_id AND stock IS NOT NULL;
	END IF;
	RETURN c;
END
$$;
COMMENT ON FUNCTION loyalty.cancel_redemption(text, text) IS
	'give back the points of a redeem or redeem_reward with their original expiry; idempotent';

------------------------------------------------------------------------------
-- Transfers and donations
------------------------------------------------------------------------------

-- Move points between two members of a program: the sender's lots drawn
-- FIFO go to the receiver with their expiry.  Both members are locked in id
-- order, so transfers that cross cannot deadlock.
CREATE FUNCTION loyalty._transfer(p loyalty.programs, from_member text, to_member text,
								  points bigint, reference text, donation boolean)
	RETURNS SETOF loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	a loyalty.members;
	b loyalty.members;
	debit loyalty.ledger;
	credit loyalty.ledger;
	s record;
	what text := CASE WHEN donation THEN 'donation' ELSE 'transfer' END;
BEGIN
	PERFORM loyalty._check_points(points);
	a := loyalty._member(p, from_member, false);
	b := loyalty._member(p, to_member, false);
	IF a.id = b.id THEN
		RAISE EXCEPTION 'cannot transfer points from a member to the same member'
			USING ERRCODE = '22023', DETAIL = format('Both sides are member "%s".', a.member_key);
	END IF;
	PERFORM 1 FROM loyalty.members WHERE id IN (a.id, b.id) ORDER BY id FOR UPDATE;
	SELECT * INTO a FROM loyalty.members WHERE id = a.id;
	SELECT * INTO b FROM loyalty.members WHERE id = b.id;
	IF donation AND NOT EXISTS (SELECT 1 FROM loyalty.causes c WHERE c.member_id = b.id AND c.active) THEN
		RAISE EXCEPTION 'member "%" is not an active cause account', b.member_key
			USING ERRCODE = 'LY016',
				  HINT = 'Register it with loyalty.register_cause(), or use loyalty.transfer().';
	END IF;

	IF reference IS NOT NULL THEN
		SELECT * INTO debit FROM loyalty.ledger l
		 WHERE l.program_id = p.id AND l.kind = 'transfer' AND l.reference = _transfer.reference
		   AND l.points < 0;
		IF FOUND THEN
			SELECT * INTO credit FROM loyalty.ledger l
			 WHERE l.program_id = p.id AND l.kind = 'transfer' AND l.reference = _transfer.reference
			   AND l.points > 0;
			IF debit.member_id <> a.id OR credit.member_id <> b.id OR debit.points <> -points THEN
				RAISE EXCEPTION 'reference "%" was already used for a different transfer in program "%"',
								reference, p.code
					USING ERRCODE = 'LY004',
						  DETAIL = format('Ledger entries %s and %s move %s points from member id %s to member id %s.',
										  debit.id, credit.id, credit.points, debit.member_id,
										  credit.member_id),
						  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
			END IF;
			RETURN NEXT debit;
			RETURN NEXT credit;
			RETURN;
		END IF;
	END IF;

	a := loyalty._settled(p, a);
	PERFORM loyalty._need_points(a, points, initcap(what));
	-- the receiver's releases and expiries are written before the credit, as
	-- they are applied before it (a release pays debt before the credit would)
	b := loyalty._settled(p, b);
	s := loyalty.lots_spend(a.balance, points, now());
	debit := loyalty._append(p, a.id, 'transfer', -points, s.drawn, reference,
							 format('%s to %s', what, b.member_key), now());
	credit := loyalty._append(p, b.id, 'transfer', points, s.drawn, reference,
							  format('%s from %s', what, a.member_key), now());
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, a, s.remaining),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = a.id;
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, b, loyalty.lots_merge(b.balance, s.drawn)),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = b.id;
	RETURN NEXT debit;
	RETURN NEXT credit;
END
$$;

CREATE FUNCTION loyalty.transfer(from_member text, to_member text, points bigint,
								 reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	AS $$ SELECT * FROM loyalty._transfer(loyalty._program(program), from_member, to_member,
										  points, reference, false) $$;

CREATE FUNCTION loyalty.transfer(from_member anyelement, to_member anyelement, points bigint,
								 reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT * FROM loyalty.transfer(from_member::text, to_member::text, points, reference, program) $$;
COMMENT ON FUNCTION loyalty.transfer(anyelement, anyelement, bigint, text, text) IS
	'move points between two members; the receiver gets the sender''s lots with their expiry';

CREATE FUNCTION loyalty.register_cause(member text, name text, program text DEFAULT NULL)
	RETURNS loyalty.causes
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members := loyalty.enroll(member, program);
	c loyalty.causes;
BEGIN
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'a cause needs a name' USING ERRCODE = '22023';
	END IF;
	INSERT INTO loyalty.causes AS x (member_id, name) VALUES (m.id, register_cause.name)
	ON CONFLICT (member_id) DO UPDATE SET name = excluded.name, active = true
	RETURNING * INTO c;
	RETURN c;
END
$$;
COMMENT ON FUNCTION loyalty.register_cause(text, text, text) IS
	'enroll a member key as a cause account that may receive donations';

CREATE FUNCTION loyalty.donate(member text, cause text, points bigint,
							   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	AS $$ SELECT * FROM loyalty._transfer(loyalty._program(program), member, cause, points,
										  reference, true) $$;

CREATE FUNCTION loyalty.donate(member anyelement, cause text, points bigint,
							   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT * FROM loyalty.donate(member::text, cause, points, reference, program) $$;
COMMENT ON FUNCTION loyalty.donate(anyelement, text, bigint, text, text) IS
	'transfer points to a cause account';

------------------------------------------------------------------------------
-- Behavioural events
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.record_event(member text, action text, reference text,
									 at timestamptz DEFAULT now(), program text DEFAULT NULL,
									 referred text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	ref loyalty.members;
	ev loyalty.events;
	rule loyalty.event_rules;
	w record;
	n bigint;
	l loyalty.ledger;
BEGIN
	IF action IS NULL THEN
		RAISE EXCEPTION 'action must not be null' USING ERRCODE = '22004';
	END IF;
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'an event needs a reference'
			USING ERRCODE = '22023', HINT = 'Pass a key that identifies the event, e.g. ''review-4711''.';
	END IF;
	IF at IS NULL OR NOT isfinite(at) THEN
		RAISE EXCEPTION 'event time must be a finite timestamp' USING ERRCODE = '22008';
	END IF;
	m := loyalty._member(p, member, true);

	SELECT * INTO ev FROM loyalty.events x
	 WHERE x.program_id = p.id AND x.reference = record_event.reference;
	IF FOUND THEN
		IF ev.member_id <> m.id OR ev.action <> record_event.action THEN
			RAISE EXCEPTION 'reference "%" was already used for a different event in program "%"',
							reference, p.code
				USING ERRCODE = 'LY004',
					  DETAIL = format('Event %s is action "%s" of member id %s.', ev.id, ev.action,
									  ev.member_id),
					  HINT = 'Use a new reference for a new event; repeat an event with the same arguments.';
		END IF;
		SELECT * INTO l FROM loyalty.ledger WHERE id = ev.ledger_id;
		RETURN l;
	END IF;
	PERFORM loyalty._reference_unused(p, 'earn', reference);

	SELECT * INTO rule FROM loyalty.event_rules x
	 WHERE x.program_id = p.id AND x.action = record_event.action AND x.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'action "%" earns nothing in loyalty program "%"', action, p.code
			USING ERRCODE = 'LY017',
				  DETAIL = format('Actions with an active rule: %s.',
								  coalesce((SELECT string_agg(x.action, ', ' ORDER BY x.action)
											  FROM loyalty.event_rules x
											 WHERE x.program_id = p.id AND x.active), 'none')),
				  HINT = 'Add a row to loyalty.event_rules.';
	END IF;

	IF rule.is_referral THEN
		IF referred IS NULL THEN
			RAISE EXCEPTION 'action "%" needs the referred member', action
				USING ERRCODE = 'LY019', HINT = 'Pass referred => the new member''s key.';
		END IF;
		ref := loyalty._member(p, referred, false);
		IF ref.id = m.id THEN
			RAISE EXCEPTION 'member "%" cannot refer themselves', m.member_key USING ERRCODE = 'LY019';
		END IF;
		IF ref.first_purchase_at IS NULL OR ref.first_purchase_at > at THEN
			RAISE EXCEPTION 'referred member "%" has not bought yet', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = 'A referral earns points once the new member''s first tracked purchase is recorded, at or before the event time.',
					  HINT = 'Record the referral after the referred member''s first purchase.';
		END IF;
		SELECT * INTO ev FROM loyalty.events x
		 WHERE x.program_id = p.id AND x.action = record_event.action AND x.referred_id = ref.id;
		IF FOUND THEN
			RAISE EXCEPTION 'member "%" was already referred', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = format('Event %s (reference "%s") credited member id %s.',
									  ev.id, ev.reference, ev.member_id);
		END IF;
	ELSIF referred IS NOT NULL THEN
		RAISE EXCEPTION 'action "%" does not take a referred member', action USING ERRCODE = '22023';
	END IF;

	IF rule.cap_count IS NOT NULL THEN
		w := loyalty._period(at, rule.cap_period, p.time_zone);
		SELECT count(*) INTO n FROM loyalty.events x
		 WHERE x.member_id = m.id AND x.action = rule.action
		   AND x.occurred_at >= w.starts AND x.occurred_at < w.ends;
		IF n >= rule.cap_count THEN
			RAISE EXCEPTION 'member "%" reached the cap for action "%"', m.member_key, action
				USING ERRCODE = 'LY018',
					  DETAIL = format('%s of %s events allowed %s already recorded%s.', n,
									  rule.cap_count, loyalty._per(rule.cap_period),
									  CASE WHEN rule.cap_period = 'ever' THEN ''
										   ELSE format(' (period %s to %s)', w.starts, w.ends) END);
		END IF;
	END IF;

	l := loyalty.earn(member, rule.points, reference, at, p.code);
	INSERT INTO loyalty.events (program_id, member_id, action, reference, referred_id, occurred_at,
								points, ledger_id)
	VALUES (p.id, m.id, rule.action, reference, ref.id, at, rule.points, l.id);
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.record_event(member anyelement, action text, reference text,
									 at timestamptz DEFAULT now(), program text DEFAULT NULL,
									 referred text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.record_event(member::text, action, reference, at, program, referred) $$;
COMMENT ON FUNCTION loyalty.record_event(anyelement, text, text, timestamptz, text, text) IS
	'award the points of a behavioural action (event_rules), once per reference, within caps';

------------------------------------------------------------------------------
-- Reporting and roles (issue #6): views for BI tools, KPI functions, and the
-- roles loyalty_reader, loyalty_app and loyalty_admin.  Views are evaluated
-- as of now().  Keep this section last: it revokes EXECUTE from PUBLIC on
-- every function above and grants by role, so a new API function needs a
-- line in the grant lists below (test/roles.sql checks that none is missed).
------------------------------------------------------------------------------

-- BI tools filter the ledger by date; a BRIN index costs next to nothing on
-- insert because entries arrive roughly in effective order.
CREATE INDEX ledger_effective_brin ON loyalty.ledger USING brin (effective_at);

-- Settings for program_kpis(): the application's customers table (for the
-- enrolment rate) and the default windows.
CREATE TABLE loyalty.kpi_settings (
	program_id		integer PRIMARY KEY REFERENCES loyalty.programs (id),
	customers_table regclass,
	customer_key_column name,
	active_days		integer NOT NULL DEFAULT 90 CHECK (active_days BETWEEN 1 AND 3660),
	window_months	integer NOT NULL DEFAULT 12 CHECK (window_months BETWEEN 1 AND 120),
	CONSTRAINT customers_need_key
		CHECK ((customers_table IS NULL) = (customer_key_column IS NULL))
);
COMMENT ON TABLE loyalty.kpi_settings IS
	'per program: the application''s customers table and key column (set_kpi_customers()), and the KPI windows';
SELECT pg_catalog.pg_extension_config_dump('loyalty.kpi_settings', '');

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
CREATE FUNCTION loyalty._lots_now(member_id bigint) RETURNS loyalty.lots
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	RETURN (SELECT loyalty._lots_at(m, now()) FROM loyalty.members m WHERE m.id = member_id);

CREATE VIEW loyalty._members_now AS
SELECT m.id, m.program_id, p.code AS program_code, p.currency, p.point_value, p.time_zone,
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
			THEN loyalty._lots_now(m.id)
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
SELECT l.id, p.code AS program_code, m.member_key, l.kind::text AS kind, l.points,
	   l.effective_at, l.recorded_at, l.reference, l.reason,
	   -- the latest expiry among the lots moved; NULL for points that never expire
	   nullif((SELECT max(e.expires_at) FROM loyalty.lots_entries(l.lots) e), 'infinity') AS expires_at,
	   coalesce(t.table_name::text, t.dropped_name) AS purchase_table
  FROM loyalty.ledger l
  JOIN loyalty.members m ON m.id = l.member_id
  JOIN loyalty.programs p ON p.id = l.program_id
  LEFT JOIN loyalty.tracked_tables t ON t.id = l.track_id;
COMMENT ON VIEW loyalty.ledger_entries IS
	'the ledger with program code, member key and expiry instead of ids and lots';

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

-- Points the program owes: available and pending points, less debt, valued
-- at point_value in the program's currency.  Sums over members are numeric:
-- each member's points fit in a bigint, a program's total need not.
CREATE VIEW loyalty.points_liability AS
SELECT p.code AS program_code, p.currency, p.point_value,
	   count(n.id) AS members,
	   coalesce(sum(loyalty.lots_available(n.lots, now())), 0) AS available_points,
	   coalesce(sum(loyalty.lots_pending(n.lots, now())), 0) AS pending_points,
	   coalesce(sum(loyalty.lots_debt(n.lots)), 0) AS debt_points,
	   coalesce(sum(loyalty.lots_available(n.lots, now())::numeric + loyalty.lots_pending(n.lots, now())
					- loyalty.lots_debt(n.lots)), 0) AS liability_points,
	   coalesce(sum(loyalty.lots_available(n.lots, now())::numeric + loyalty.lots_pending(n.lots, now())
					- loyalty.lots_debt(n.lots)), 0) * p.point_value AS liability_value
  FROM loyalty.programs p
  LEFT JOIN loyalty._members_now n ON n.program_id = p.id
 GROUP BY p.id;
COMMENT ON VIEW loyalty.points_liability IS
	'per program as of now(): points available, pending and owed as debt, and their value in the program currency';

-- The same by the calendar month (program time zone) in which the points
-- expire; expiry_month NULL for points that never expire.  Debt has no
-- expiry and is left out.
CREATE VIEW loyalty.points_liability_by_month AS
SELECT n.program_code, n.currency,
	   CASE WHEN isfinite(e.expires_at) THEN loyalty.activity_month(e.expires_at, n.time_zone) END
		   AS expiry_month,
	   coalesce(sum(e.points) FILTER (WHERE e.state = 'lot' OR e.release_at <= now()), 0)
		   AS available_points,
	   coalesce(sum(e.points) FILTER (WHERE e.state = 'pending' AND e.release_at > now()), 0)
		   AS pending_points,
	   sum(e.points) AS points,
	   sum(e.points) * min(n.point_value) AS value
  FROM loyalty._members_now n
 CROSS JOIN LATERAL loyalty.lots_entries(n.lots) e
 WHERE e.state <> 'debt' AND e.expires_at > now()
 GROUP BY 1, 2, 3;
COMMENT ON VIEW loyalty.points_liability_by_month IS
	'outstanding points (available and pending) by program and month of expiry, in points and currency';

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
	SELECT l.member_id, e.expires_at,
		   sum(CASE WHEN l.kind = 'reinstate' THEN -e.points ELSE e.points END) AS points
	  FROM loyalty.ledger l
	 CROSS JOIN LATERAL loyalty.lots_entries(l.lots) e
	 WHERE l.kind IN ('expire', 'reinstate') AND e.state <> 'debt'
	 GROUP BY 1, 2
), credited AS (
	SELECT l.program_id, l.member_id, loyalty.activity_month(l.effective_at, p.time_zone) AS cohort_month,
		   e.expires_at, sum(e.points) AS points
	  FROM loyalty.ledger l
	  JOIN loyalty.programs p ON p.id = l.program_id
	 CROSS JOIN LATERAL loyalty.lots_entries(l.lots) e
	 WHERE l.kind IN ('earn', 'pending') AND e.state <> 'debt'
	   AND l.member_id IN (SELECT x.member_id FROM expired x)
	 GROUP BY 1, 2, 3, 4
), shared AS (
	SELECT c.program_id, c.cohort_month,
		   sum(x.points * c.points / w.total) AS points
	  FROM credited c
	  JOIN (SELECT c2.member_id, c2.expires_at, sum(c2.points) AS total
			  FROM credited c2 GROUP BY 1, 2) w
		ON w.member_id = c.member_id AND w.expires_at = c.expires_at
	  JOIN expired x ON x.member_id = c.member_id AND x.expires_at = c.expires_at
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
		orders := s.orders;
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
			SELECT count(*), count(m.id) INTO customers, enrolled_customers
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
			SELECT p.code, a.ps::date, CASE WHEN m.id IS NULL THEN 'non_member' ELSE 'member' END,
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
	REFRESH MATERIALIZED VIEW CONCURRENTLY loyalty.breakage_by_cohort;
	REFRESH MATERIALIZED VIEW CONCURRENTLY loyalty.retention;
END
$$;
COMMENT ON FUNCTION loyalty.refresh_reports() IS
	'recompute the materialized reports (breakage_by_cohort, retention); schedule it like run_maintenance()';

------------------------------------------------------------------------------
-- Guards on the application's tables that loyalty is told about.  Event
-- triggers catch at the source what would otherwise break the purchase
-- triggers and the reports later: a tracked table or a customers table
-- dropped, a column of theirs dropped or changed to a type loyalty does not
-- read.  A renamed column is followed.  (The reports check again when they
-- read: event triggers can be disabled.)
------------------------------------------------------------------------------

-- A configured column name after a rename of attnum of relid: the new name
-- when the configured one no longer exists (a RENAME COLUMN renames one
-- column, so it was this one).
CREATE FUNCTION loyalty._renamed(relid oid, col name, attnum smallint) RETURNS name
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE WHEN col IS NULL OR EXISTS (SELECT 1 FROM pg_attribute a
											 WHERE a.attrelid = relid AND a.attname = col
											   AND a.attnum > 0 AND NOT a.attisdropped)
				THEN col
				ELSE (SELECT a.attname FROM pg_attribute a
					   WHERE a.attrelid = relid AND a.attnum = _renamed.attnum) END;

CREATE FUNCTION loyalty._alter_guard() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	c record;
	t record;
	problem text;
BEGIN
	FOR c IN SELECT DISTINCT d.objid, d.objsubid, d.object_type
			   FROM pg_event_trigger_ddl_commands() d
			  WHERE d.classid = 'pg_class'::regclass
				AND d.objid IN (SELECT x.table_name FROM loyalty.tracked_tables x
								UNION ALL SELECT x.customers_table FROM loyalty.kpi_settings x) LOOP
		IF c.object_type = 'table column' THEN
			UPDATE loyalty.tracked_tables x
			   SET member_column = loyalty._renamed(c.objid, x.member_column, c.objsubid::smallint),
				   amount_column = loyalty._renamed(c.objid, x.amount_column, c.objsubid::smallint),
				   time_column = loyalty._renamed(c.objid, x.time_column, c.objsubid::smallint),
				   status_column = loyalty._renamed(c.objid, x.status_column, c.objsubid::smallint),
				   channel_column = loyalty._renamed(c.objid, x.channel_column, c.objsubid::smallint),
				   category_column = loyalty._renamed(c.objid, x.category_column, c.objsubid::smallint),
				   store_column = loyalty._renamed(c.objid, x.store_column, c.objsubid::smallint),
				   reference_columns = ARRAY(SELECT loyalty._renamed(c.objid, r.col, c.objsubid::smallint)
											   FROM unnest(x.reference_columns) WITH ORDINALITY AS r(col, n)
											  ORDER BY r.n)
			 WHERE x.table_name = c.objid;
			UPDATE loyalty.kpi_settings x
			   SET customer_key_column = loyalty._renamed(c.objid, x.customer_key_column, c.objsubid::smallint)
			 WHERE x.customers_table = c.objid;
		END IF;
		FOR t IN SELECT x.id, x.table_name FROM loyalty.tracked_tables x
				  WHERE x.table_name = c.objid AND x.active LOOP
			problem := loyalty._tracked_table_problem(t.id);
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'table % is tracked by loyalty: %', t.table_name, problem
					USING ERRCODE = 'LY020',
						  DETAIL = 'Its purchase triggers and the reports read it as it was tracked.',
						  HINT = format('Track it again without that column (loyalty.track_purchases), or untrack it first (loyalty.untrack_purchases(%L)). Columns changed together are checked together: one ALTER TABLE can change several.',
										t.table_name::text);
			END IF;
		END LOOP;
		FOR t IN SELECT x.program_id, x.customers_table FROM loyalty.kpi_settings x
				  WHERE x.customers_table = c.objid LOOP
			problem := loyalty._kpi_customers_problem(t.program_id);
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'table % is the customers table of loyalty''s KPIs: %', t.customers_table, problem
					USING ERRCODE = 'LY020',
						  HINT = 'Name another table or none first: SELECT loyalty.set_kpi_customers(NULL, NULL, program => ...).';
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- A dropped table leaves no OID behind: a tracked table's row stays (its
-- awards link to it) with its last name, inactive; a customers table is
-- unset.
CREATE FUNCTION loyalty._drop_guard() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
BEGIN
	-- any relation: a table may have become a view since it was named
	UPDATE loyalty.tracked_tables x
	   SET table_name = NULL, active = false, dropped_name = d.object_identity, dropped_at = now()
	  FROM pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND x.table_name = d.objid;
	UPDATE loyalty.kpi_settings x SET customers_table = NULL, customer_key_column = NULL
	  FROM pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND x.customers_table = d.objid;
END
$$;

CREATE EVENT TRIGGER loyalty_alter_guard ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION loyalty._alter_guard();
CREATE EVENT TRIGGER loyalty_drop_guard ON sql_drop
	EXECUTE FUNCTION loyalty._drop_guard();

-- Roles.  Roles belong to the cluster, not the database: they are created
-- here only when missing and survive DROP EXTENSION; the grants below live
-- with the extension's objects and are made again by every CREATE EXTENSION.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['loyalty_reader', 'loyalty_app', 'loyalty_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

GRANT USAGE ON SCHEMA loyalty TO loyalty_reader, loyalty_app, loyalty_admin;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA loyalty FROM PUBLIC;

-- Reports.  Functions called by a view are checked against the caller, so
-- the readers of the views need the read-only functions they use.
GRANT SELECT ON loyalty.member_summary, loyalty.ledger_entries, loyalty.tier_distribution,
	loyalty.points_liability, loyalty.points_liability_by_month, loyalty.breakage_by_cohort,
	loyalty.expiring_soon, loyalty.leaderboard, loyalty.program_kpis, loyalty.retention
	TO loyalty_reader, loyalty_admin;

-- Configuration: loyalty_admin.  track_purchases() runs as the caller, who
-- must also be allowed to create triggers on the application's table.
-- Rows that name relations are written only through the functions that
-- check them: tracked_tables by track_purchases()/untrack_purchases(),
-- kpi_settings.customers_table and customer_key_column by
-- set_kpi_customers().
GRANT SELECT, INSERT, UPDATE ON loyalty.programs TO loyalty_admin;
GRANT SELECT ON loyalty.tracked_tables TO loyalty_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.earning_rules, loyalty.tiers, loyalty.rewards,
	loyalty.event_rules TO loyalty_admin;
GRANT SELECT, DELETE, INSERT (program_id, active_days, window_months),
	UPDATE (active_days, window_months) ON loyalty.kpi_settings TO loyalty_admin;
GRANT SELECT ON loyalty.members, loyalty.ledger, loyalty.tier_history, loyalty.tier_events,
	loyalty.reward_redemptions, loyalty.causes, loyalty.events TO loyalty_admin;
GRANT USAGE ON SEQUENCE loyalty.programs_id_seq,
	loyalty.earning_rules_id_seq, loyalty.tiers_id_seq, loyalty.rewards_id_seq,
	loyalty.event_rules_id_seq TO loyalty_admin;

-- The application reads the catalog it shows to members and handles the
-- tier outbox.
GRANT SELECT ON loyalty.programs, loyalty.rewards, loyalty.tiers, loyalty.event_rules
	TO loyalty_app;
GRANT SELECT, UPDATE (handled_at) ON loyalty.tier_events TO loyalty_app;

DO $$
DECLARE
	g record;
	f regprocedure;
BEGIN
	FOR g IN SELECT * FROM (VALUES
		-- pure functions on the types and on time: harmless, used by the
		-- views and by the invoker-rights wrappers
		('lots_eq,lots_ne,lots_add,lots_add_pending,lots_spend,lots_expire,lots_settle,'
		 'lots_expire_all,lots_next_event,lots_settlement,lots_merge,lots_subtract,lots_apply,lots_available,'
		 'lots_pending,lots_expiring,lots_total,lots_points,lots_debt,lots_entries,replay,'
		 'activity_eq,activity_ne,activity_add,activity_sum,activity_total,activity_buckets,'
		 'activity_month,tz_add,interval_sign,valid_time_zone,period_end,expiry_for,lots_expire_usable,'
		 'inactivity_deadline', 'loyalty_reader,loyalty_app,loyalty_admin'),
		-- what the views call (_lots_now answers what member_summary shows
		-- these roles anyway)
		('expiring_points,leaderboard,program_kpis,retention,_lots_now,_inactive_after',
		 'loyalty_reader,loyalty_admin'),
		-- member functions
		('enroll,earn,redeem,adjust,balance,balance_detail,member_lots,expiring,statement,tier,'
		 'tier_progress,set_tier,redeem_reward,cancel_redemption,transfer,donate,register_cause,'
		 'record_event,points_for,expiring_points,_program', 'loyalty_app'),
		-- configuration and operation
		('track_purchases,untrack_purchases,_program,_drop_triggers,purchase_insert,'
		 'purchase_change,run_maintenance,refresh_reports,verify,points_for,_tracked_table_save,'
		 '_tracked_table_deactivate,set_kpi_customers,_kpi_customers_save', 'loyalty_admin'))
		AS x(funcs, roles)
	LOOP
		FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
				  WHERE p.pronamespace = 'loyalty'::regnamespace
					AND p.proname = ANY (string_to_array(g.funcs, ','))
		LOOP
			EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, g.roles);
		END LOOP;
	END LOOP;
END
$$;
