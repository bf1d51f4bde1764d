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

-- Every per-member table leads its primary key with (program_id,
-- member_key): a member's rows are found, locked and (on a sharded
-- database) placed by the application's own key; nothing per member has a
-- surrogate id (design/0.2-data-model.md).  A key is an identifier, not
-- words: it is compared byte by byte (COLLATE "C"), which is what its
-- indexes and the members' lock order need, and costs no locale's rules.
CREATE TABLE loyalty.members (
	program_id		integer NOT NULL REFERENCES loyalty.programs (id),
	member_key		text COLLATE "C" NOT NULL,
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
	PRIMARY KEY (program_id, member_key)
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
	-- conditions on any purchase column, as {"currency": {"not": "SGD"}}: the
	-- grammar is checked by the trigger earning_rule_check (src/conditions.c)
	conditions		jsonb CONSTRAINT conditions_are_an_object CHECK (jsonb_typeof(conditions) = 'object'),
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
	program_id		integer NOT NULL,
	member_key		text COLLATE "C" NOT NULL,
	-- orders a member's changes recorded at the same effective instant
	id				bigserial NOT NULL,
	from_tier		text,
	to_tier			text,
	reason			text NOT NULL
					CHECK (reason IN ('upgrade', 'renewal', 'downgrade', 'manual', 'manual_end')),
	detail			text,
	effective_at	timestamptz NOT NULL,
	valid_until		timestamptz,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (program_id, member_key, id)
);
CREATE INDEX tier_history_member ON loyalty.tier_history (program_id, member_key, effective_at, id);
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
	table_name		regclass,
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
		CHECK ((table_name IS NULL) = (dropped_at IS NOT NULL) AND (table_name IS NOT NULL OR NOT active)),
	-- a table may be tracked for several programs, once for each
	CONSTRAINT one_tracking_per_program UNIQUE (table_name, program_id)
);
COMMENT ON TABLE loyalty.tracked_tables IS
	'application tables whose rows earn points; written only by track_purchases()/untrack_purchases()';

CREATE DOMAIN loyalty.entry_kind AS text
	CHECK (VALUE IN ('earn', 'pending', 'release', 'redeem', 'expire', 'adjust', 'reverse',
					 'transfer', 'cancel', 'reinstate'));

CREATE TABLE loyalty.ledger (
	-- no foreign keys on purpose: the ledger is written only by loyalty's
	-- functions, which hold the member's row lock; a per-row RI check would
	-- cost more than the insert itself.  verify() reports orphans.
	program_id		integer NOT NULL,
	member_key		text COLLATE "C" NOT NULL,
	-- the member's entries in the order they were written: 1, 2, ...; an
	-- entry takes the member's greatest seq + 1 under the member's row lock
	seq				bigint NOT NULL,
	kind			loyalty.entry_kind NOT NULL,
	points			bigint NOT NULL,
	lots			loyalty.lots NOT NULL,
	reference		text,
	reason			text,
	effective_at	timestamptz NOT NULL,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	track_id		integer,
	-- Checks that relate columns (points match lots, release moves 0 points)
	-- live in verify(): a table CHECK is re-parsed for every statement,
	-- which costs more than the single-row purchase insert it guards.
	PRIMARY KEY (program_id, member_key, seq)
);
-- a member's entries on the time axis: replays, balances as of an instant,
-- and whether a write is dated before the member's latest entry
CREATE INDEX ledger_member_time ON loyalty.ledger (program_id, member_key, effective_at, seq);
-- requests through the API are idempotent on (program, member, operation,
-- reference): a reference is the member's own, so that a member's requests
-- are checked where the member's rows are
CREATE UNIQUE INDEX ledger_reference ON loyalty.ledger
	(program_id, member_key, (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END), reference)
	WHERE reference IS NOT NULL AND track_id IS NULL
	  AND kind IN ('earn', 'pending', 'redeem', 'adjust');
-- a tracked purchase is awarded once per customer: its initial entry is
-- unique.  Not led by program_id: a purchase belongs to the program that
-- awarded it, which a table tracked again for another program must find
-- (docs/concepts.md).
CREATE UNIQUE INDEX ledger_purchase_award ON loyalty.ledger (member_key, track_id, reference)
	WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending');
-- a redemption is cancelled once; a reference names one transfer sent and
-- one received per member
CREATE UNIQUE INDEX ledger_cancel_reference ON loyalty.ledger (program_id, member_key, reference)
	WHERE kind = 'cancel' AND reference IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfer_reference ON loyalty.ledger
	(program_id, member_key, reference, (points < 0))
	WHERE kind = 'transfer' AND reference IS NOT NULL;
-- BI tools filter the ledger by date; a BRIN index costs next to nothing on
-- insert because entries arrive roughly in effective order.
CREATE INDEX ledger_effective_brin ON loyalty.ledger USING brin (effective_at);
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

-- Configuration changes reach every backend's configuration cache (src/program.c).
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
-- A rule's channel, category and store must be values of the columns of the
-- tables its program tracks: they are compared by value (src/labels.c).  Its
-- conditions must be in their grammar, name columns of those tables that the
-- writer may read, and hold values of their types (src/conditions.c).
CREATE FUNCTION loyalty.earning_rule_check() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_earning_rule_check' LANGUAGE C;
CREATE TRIGGER earning_rule_check AFTER INSERT OR UPDATE ON loyalty.earning_rules
	FOR EACH ROW EXECUTE FUNCTION loyalty.earning_rule_check();

------------------------------------------------------------------------------
-- Rewards, cause accounts and behavioural events
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

-- a redemption is named by its redeem entry: (program_id, member_key, seq)
CREATE TABLE loyalty.reward_redemptions (
	program_id		integer NOT NULL,
	member_key		text COLLATE "C" NOT NULL,
	seq				bigint NOT NULL,
	reward_id		integer NOT NULL REFERENCES loyalty.rewards (id),
	reference		text,
	redeemed_at		timestamptz NOT NULL,
	cancelled_at	timestamptz,
	PRIMARY KEY (program_id, member_key, seq),
	FOREIGN KEY (program_id, member_key) REFERENCES loyalty.members
);
CREATE UNIQUE INDEX reward_redemptions_reference ON loyalty.reward_redemptions
	(program_id, member_key, reference) WHERE reference IS NOT NULL;
CREATE INDEX reward_redemptions_member ON loyalty.reward_redemptions
	(program_id, member_key, reward_id, redeemed_at);
COMMENT ON TABLE loyalty.reward_redemptions IS
	'one row per redeem_reward(); cancelled_at is set by cancel_redemption()';

-- A cause account (charity, B2B partner) is a member of the program that
-- donate() may send points to.
CREATE TABLE loyalty.causes (
	program_id		integer NOT NULL,
	member_key		text COLLATE "C" NOT NULL,
	name			text NOT NULL,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (program_id, member_key),
	FOREIGN KEY (program_id, member_key) REFERENCES loyalty.members
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

-- an event is named by its earn entry: (program_id, member_key, seq)
CREATE TABLE loyalty.events (
	program_id		integer NOT NULL,
	member_key		text COLLATE "C" NOT NULL,
	seq				bigint NOT NULL,
	action			text NOT NULL,
	reference		text NOT NULL,
	referred_key	text COLLATE "C",
	occurred_at		timestamptz NOT NULL,
	points			bigint NOT NULL,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (program_id, member_key, seq),
	UNIQUE (program_id, member_key, reference),
	FOREIGN KEY (program_id, member_key) REFERENCES loyalty.members,
	FOREIGN KEY (program_id, referred_key) REFERENCES loyalty.members
);
CREATE INDEX events_member ON loyalty.events (program_id, member_key, action, occurred_at);
-- a member is referred once per referral action
CREATE UNIQUE INDEX events_referred ON loyalty.events (program_id, action, referred_key)
	WHERE referred_key IS NOT NULL;
COMMENT ON TABLE loyalty.events IS 'behavioural events recorded by record_event(), once per reference';

SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.causes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');

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

