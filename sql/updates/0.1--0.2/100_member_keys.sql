-- Members keyed by the application's key (design/0.2-data-model.md, step
-- 2): every per-member table is rebuilt keyed by (program_id, member_key),
-- the ledger ordered per member by seq instead of a global id, and the rows
-- that named a ledger entry by id name it by (program_id, member_key, seq).
--
-- The tables are rebuilt rather than altered, so that an upgraded database
-- has the columns, row types and storage of a fresh install: the old ones
-- are renamed, their data copied into new tables keyed as in
-- sql/src/tables.sql (seq = the member's entries in id order), every count
-- and sum compared, and the old tables dropped with what depends on them
-- (the views and the functions that take or return their rows).  Every
-- function and view is then created again from sql/src at the end of this
-- script (the Makefile appends them).  A view or function of
-- your own on top of loyalty's views stops this script with "cannot drop
-- view ... because other objects depend on it": drop it, update, create it
-- again.

-- what guards.sql creates again
DROP EVENT TRIGGER loyalty_partition_guard;
DROP EVENT TRIGGER loyalty_alter_guard;
DROP EVENT TRIGGER loyalty_drop_guard;

-- every view, in dependency order (no CASCADE: a view of the DBA's on one of
-- them stops the update with PostgreSQL's own error, naming it)
DROP VIEW loyalty.expiring_soon;
DROP VIEW loyalty.leaderboard;
DROP VIEW loyalty.program_kpis;
DROP VIEW loyalty.points_liability_by_month;
DROP VIEW loyalty.points_liability;
DROP VIEW loyalty.tier_distribution;
DROP VIEW loyalty.member_summary;
DROP VIEW loyalty._members_now;
DROP VIEW loyalty.ledger_entries;
DROP MATERIALIZED VIEW loyalty.breakage_by_cohort;
DROP MATERIALIZED VIEW loyalty.retention;

-- functions whose arguments or result change (the others are replaced)
DROP FUNCTION loyalty._settle_lots(integer, bigint, loyalty.lots, timestamptz);
DROP FUNCTION loyalty._expire_inactive(integer, bigint, loyalty.lots, timestamptz);
DROP FUNCTION loyalty._replayed(loyalty.programs, text, text, bigint, bigint);
DROP FUNCTION loyalty._append(loyalty.programs, bigint, text, bigint, loyalty.lots, text, text, timestamptz);
DROP FUNCTION loyalty._tier_upgrade(bigint, text, timestamptz);
DROP FUNCTION loyalty._lots_now(bigint);
DROP FUNCTION loyalty._maintain_lots(timestamptz, integer, bigint, bigint);
DROP FUNCTION loyalty.verify();
DROP FUNCTION loyalty.statement(anyelement, timestamptz, timestamptz, text);
DROP FUNCTION loyalty.statement(text, timestamptz, timestamptz, text);

-- the old tables, out of the way: renamed, without their constraints and indexes
-- (index names are the schema's), their sequence of tier_history renamed
ALTER TABLE loyalty.members RENAME TO _members_01;
ALTER TABLE loyalty.ledger RENAME TO _ledger_01;
ALTER TABLE loyalty.tier_history RENAME TO _tier_history_01;
ALTER SEQUENCE loyalty.tier_history_id_seq RENAME TO _tier_history_id_seq_01;
ALTER TABLE loyalty.reward_redemptions RENAME TO _reward_redemptions_01;
ALTER TABLE loyalty.causes RENAME TO _causes_01;
ALTER TABLE loyalty.events RENAME TO _events_01;
DO $$
DECLARE
	c record;
BEGIN
	FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
			  WHERE contype IN ('p', 'u', 'f', 'c')
				AND conrelid IN ('loyalty._members_01'::regclass, 'loyalty._ledger_01'::regclass,
								 'loyalty._tier_history_01'::regclass,
								 'loyalty._reward_redemptions_01'::regclass,
								 'loyalty._causes_01'::regclass, 'loyalty._events_01'::regclass)
			  ORDER BY contype = 'f' DESC LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I CASCADE', c.tbl, c.conname);
	END LOOP;
	FOR c IN SELECT indexrelid::regclass AS idx FROM pg_index
			  WHERE indrelid IN ('loyalty._members_01'::regclass, 'loyalty._ledger_01'::regclass,
								 'loyalty._tier_history_01'::regclass,
								 'loyalty._reward_redemptions_01'::regclass,
								 'loyalty._causes_01'::regclass, 'loyalty._events_01'::regclass) LOOP
		EXECUTE format('DROP INDEX %s', c.idx);
	END LOOP;
END
$$;

-- the new tables, as sql/src/tables.sql creates them
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
CREATE INDEX members_tier_review ON loyalty.members (tier_review_at)
	WHERE tier_review_at IS NOT NULL;
COMMENT ON TABLE loyalty.members IS
	'members keyed by the application''s customer key (as text); balance = lots after every ledger entry';

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
COMMENT ON TABLE loyalty.ledger IS
	'append-only: every movement of points; lots holds exactly which lots it added or removed';

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
COMMENT ON TABLE loyalty.reward_redemptions IS
	'one row per redeem_reward(); cancelled_at is set by cancel_redemption()';

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
COMMENT ON TABLE loyalty.events IS 'behavioural events recorded by record_event(), once per reference';

-- the data: members, then each member's entries numbered in id order (the
-- map gives every old entry its new name)
INSERT INTO loyalty.members (program_id, member_key, balance, enrolled_at, last_activity_at,
							 settled_at, first_purchase_at, tier, activity, tier_since,
							 tier_valid_until, tier_manual_until, tier_review_at)
SELECT program_id, member_key, balance, enrolled_at, last_activity_at, settled_at,
	   first_purchase_at, tier, activity, tier_since, tier_valid_until, tier_manual_until,
	   tier_review_at
  FROM loyalty._members_01
 ORDER BY program_id, member_key;

CREATE TABLE loyalty._ledger_map_01 AS
SELECT l.id, m.program_id, m.member_key,
	   row_number() OVER (PARTITION BY l.member_id ORDER BY l.id) AS seq
  FROM loyalty._ledger_01 l
  JOIN loyalty._members_01 m ON m.id = l.member_id;
CREATE UNIQUE INDEX ON loyalty._ledger_map_01 (id);

INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, reason,
							effective_at, recorded_at, track_id)
SELECT l.program_id, x.member_key, x.seq, l.kind, l.points, l.lots, l.reference, l.reason,
	   l.effective_at, l.recorded_at, l.track_id
  FROM loyalty._ledger_01 l
  JOIN loyalty._ledger_map_01 x ON x.id = l.id
 ORDER BY x.program_id, x.member_key, x.seq;

INSERT INTO loyalty.tier_history (program_id, member_key, id, from_tier, to_tier, reason, detail,
								  effective_at, valid_until, recorded_at)
SELECT h.program_id, m.member_key, h.id, h.from_tier, h.to_tier, h.reason, h.detail,
	   h.effective_at, h.valid_until, h.recorded_at
  FROM loyalty._tier_history_01 h
  JOIN loyalty._members_01 m ON m.id = h.member_id;
SELECT pg_catalog.setval('loyalty.tier_history_id_seq', s.last_value, s.is_called)
  FROM loyalty._tier_history_id_seq_01 s;

INSERT INTO loyalty.reward_redemptions (program_id, member_key, seq, reward_id, reference,
										redeemed_at, cancelled_at)
SELECT x.program_id, x.member_key, x.seq, r.reward_id, r.reference, r.redeemed_at, r.cancelled_at
  FROM loyalty._reward_redemptions_01 r
  JOIN loyalty._ledger_map_01 x ON x.id = r.ledger_id;

INSERT INTO loyalty.causes (program_id, member_key, name, active, created_at)
SELECT m.program_id, m.member_key, c.name, c.active, c.created_at
  FROM loyalty._causes_01 c
  JOIN loyalty._members_01 m ON m.id = c.member_id;

INSERT INTO loyalty.events (program_id, member_key, seq, action, reference, referred_key,
							occurred_at, points, recorded_at)
SELECT x.program_id, x.member_key, x.seq, e.action, e.reference, r.member_key, e.occurred_at,
	   e.points, e.recorded_at
  FROM loyalty._events_01 e
  JOIN loyalty._ledger_map_01 x ON x.id = e.ledger_id
  LEFT JOIN loyalty._members_01 r ON r.id = e.referred_id;

-- nothing may be lost: every row and every point is in the new tables
DO $$
DECLARE
	check_row record;
BEGIN
	FOR check_row IN
		SELECT 'members' AS what, (SELECT count(*) FROM loyalty._members_01)::numeric AS old,
			   (SELECT count(*) FROM loyalty.members)::numeric AS new
		UNION ALL
		SELECT 'ledger entries', (SELECT count(*) FROM loyalty._ledger_01),
			   (SELECT count(*) FROM loyalty.ledger)
		UNION ALL
		SELECT 'ledger points', (SELECT coalesce(sum(points), 0) FROM loyalty._ledger_01),
			   (SELECT coalesce(sum(points), 0) FROM loyalty.ledger)
		UNION ALL
		SELECT 'tier history rows', (SELECT count(*) FROM loyalty._tier_history_01),
			   (SELECT count(*) FROM loyalty.tier_history)
		UNION ALL
		SELECT 'reward redemptions', (SELECT count(*) FROM loyalty._reward_redemptions_01),
			   (SELECT count(*) FROM loyalty.reward_redemptions)
		UNION ALL
		SELECT 'causes', (SELECT count(*) FROM loyalty._causes_01), (SELECT count(*) FROM loyalty.causes)
		UNION ALL
		SELECT 'events', (SELECT count(*) FROM loyalty._events_01), (SELECT count(*) FROM loyalty.events)
	LOOP
		IF check_row.old <> check_row.new THEN
			RAISE EXCEPTION 'loyalty 0.2 upgrade: % differ after the copy (% before, % after)',
							check_row.what, check_row.old, check_row.new
				USING ERRCODE = 'XX000',
					  HINT = 'Ledger entries or history rows whose member does not exist are not copied: SELECT * FROM loyalty.verify() on 0.1 lists them. Nothing was changed.';
		END IF;
	END LOOP;
END
$$;

-- the indexes, once the data is in (as sql/src/tables.sql creates them)
CREATE INDEX ledger_member_time ON loyalty.ledger (program_id, member_key, effective_at, seq);
CREATE UNIQUE INDEX ledger_reference ON loyalty.ledger
	(program_id, member_key, (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END), reference)
	WHERE reference IS NOT NULL AND track_id IS NULL
	  AND kind IN ('earn', 'pending', 'redeem', 'adjust');
CREATE UNIQUE INDEX ledger_purchase_award ON loyalty.ledger (member_key, track_id, reference)
	WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending');
CREATE UNIQUE INDEX ledger_cancel_reference ON loyalty.ledger (program_id, member_key, reference)
	WHERE kind = 'cancel' AND reference IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfer_reference ON loyalty.ledger
	(program_id, member_key, reference, (points < 0))
	WHERE kind = 'transfer' AND reference IS NOT NULL;
CREATE INDEX ledger_effective_brin ON loyalty.ledger USING brin (effective_at);
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON loyalty.ledger
	FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON loyalty.ledger
	FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_append_only();
CREATE UNIQUE INDEX reward_redemptions_reference ON loyalty.reward_redemptions
	(program_id, member_key, reference) WHERE reference IS NOT NULL;
CREATE INDEX reward_redemptions_member ON loyalty.reward_redemptions
	(program_id, member_key, reward_id, redeemed_at);
CREATE INDEX events_member ON loyalty.events (program_id, member_key, action, occurred_at);
CREATE UNIQUE INDEX events_referred ON loyalty.events (program_id, action, referred_key)
	WHERE referred_key IS NOT NULL;

-- The old tables go, with the functions that take or return their rows
-- (created again at the end of this script).  Nothing of the DBA's may go
-- with them: a view, function or constraint of one's own on these tables
-- stops the update here, naming it.
DO $$
DECLARE
	theirs text;
BEGIN
	-- (a view depends through its rule: name the view)
	SELECT string_agg(DISTINCT CASE WHEN d.classid = 'pg_rewrite'::regclass
									THEN pg_catalog.pg_describe_object('pg_class'::regclass,
										 (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid), 0)
									ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END, ', ')
	  INTO theirs
	  FROM pg_catalog.pg_depend d
	 WHERE d.deptype = 'n'
	   AND d.refobjid IN (SELECT c.oid FROM pg_catalog.pg_class c
						   WHERE c.relnamespace = 'loyalty'::regnamespace
							 AND c.relname IN ('_members_01', '_ledger_01', '_tier_history_01',
											   '_reward_redemptions_01', '_causes_01', '_events_01')
						  UNION ALL
						  SELECT c.reltype FROM pg_catalog.pg_class c
						   WHERE c.relnamespace = 'loyalty'::regnamespace
							 AND c.relname IN ('_members_01', '_ledger_01', '_tier_history_01',
											   '_reward_redemptions_01', '_causes_01', '_events_01'))
	   -- the extension's own objects (a view's rule: the view's)
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
					    WHERE e.deptype = 'e' AND e.refclassid = 'pg_extension'::regclass
						  AND ((e.classid = d.classid AND e.objid = d.objid)
							   OR (d.classid = 'pg_rewrite'::regclass AND e.classid = 'pg_class'::regclass
								   AND e.objid = (SELECT r.ev_class FROM pg_catalog.pg_rewrite r
												   WHERE r.oid = d.objid))))
	   -- and the old tables' own parts: themselves, their sequences, column
	   -- defaults, constraints and triggers
	   AND NOT coalesce((SELECT c.relnamespace = 'loyalty'::regnamespace AND c.relname LIKE '\_%\_01%'
						   FROM pg_catalog.pg_class c
						  WHERE c.oid = CASE d.classid
										WHEN 'pg_class'::regclass THEN d.objid
										WHEN 'pg_attrdef'::regclass
										THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid)
										WHEN 'pg_constraint'::regclass
										THEN (SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid)
										WHEN 'pg_trigger'::regclass
										THEN (SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid = d.objid)
										END), false);
	IF theirs IS NOT NULL THEN
		RAISE EXCEPTION 'loyalty 0.2 upgrade: objects of your own use loyalty''s members, ledger or history tables: %', theirs
			USING ERRCODE = '2BP01',
				  DETAIL = 'The upgrade rebuilds those tables keyed by member; dropping them would drop your objects too.',
				  HINT = 'Drop them, run ALTER EXTENSION loyalty UPDATE, and create them again on the new tables (docs/installation.md). Nothing was changed.';
	END IF;
END
$$;
DROP TABLE loyalty._ledger_map_01;
-- out of the extension first: that takes them out of pg_extension.extconfig
-- too (a dropped member stays there)
ALTER EXTENSION loyalty DROP TABLE loyalty._events_01;
ALTER EXTENSION loyalty DROP TABLE loyalty._causes_01;
ALTER EXTENSION loyalty DROP TABLE loyalty._reward_redemptions_01;
ALTER EXTENSION loyalty DROP TABLE loyalty._ledger_01;
ALTER EXTENSION loyalty DROP TABLE loyalty._tier_history_01;
ALTER EXTENSION loyalty DROP TABLE loyalty._members_01;
ALTER EXTENSION loyalty DROP SEQUENCE loyalty.events_id_seq;
ALTER EXTENSION loyalty DROP SEQUENCE loyalty.reward_redemptions_id_seq;
ALTER EXTENSION loyalty DROP SEQUENCE loyalty.ledger_id_seq;
ALTER EXTENSION loyalty DROP SEQUENCE loyalty._tier_history_id_seq_01;
ALTER EXTENSION loyalty DROP SEQUENCE loyalty.members_id_seq;
DROP TABLE loyalty._events_01, loyalty._causes_01, loyalty._reward_redemptions_01,
	loyalty._ledger_01, loyalty._tier_history_01, loyalty._members_01 CASCADE;

SELECT pg_catalog.pg_extension_config_dump('loyalty.members', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.causes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');
