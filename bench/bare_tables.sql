-- The bare writes: what a tracked purchase must write at least, written by
-- plain SQL into copies of loyalty's tables, without any of loyalty's logic
-- (rules, caps, tiers, activity, replay checks).  Two models side by side:
--
-- * bare: today's model (members_bare, ledger_bare: copies of loyalty's
--   tables with the same indexes): the member looked up by its key and
--   locked, one ledger entry with its lots, the member's lots (one value in
--   its row) rewritten with the new lot.
-- * keyed: the member-keyed model proposed for 0.2: every table keyed by
--   (program, member key); the ledger ordered per member by a sequence
--   number taken under the member's lock; the member's lots as rows of
--   their own (lots_keyed), so that a purchase inserts or raises one lot row
--   instead of rewriting all of them; the member row keeps the totals.
--
-- Needs purchases_plain.  The caller copies the members in.
CREATE TABLE purchases_bare (LIKE purchases_plain INCLUDING ALL);
CREATE SEQUENCE purchases_bare_id_seq OWNED BY purchases_bare.id;
ALTER TABLE purchases_bare ALTER id SET DEFAULT nextval('purchases_bare_id_seq');
CREATE TABLE ledger_bare (LIKE loyalty.ledger INCLUDING ALL);
CREATE SEQUENCE ledger_bare_id_seq OWNED BY ledger_bare.id;
ALTER TABLE ledger_bare ALTER id SET DEFAULT nextval('ledger_bare_id_seq');
CREATE TABLE members_bare (LIKE loyalty.members INCLUDING ALL) WITH (fillfactor = 60);
CREATE SEQUENCE members_bare_id_seq OWNED BY members_bare.id;
ALTER TABLE members_bare ALTER id SET DEFAULT nextval('members_bare_id_seq');

CREATE TABLE purchases_keyed (LIKE purchases_plain INCLUDING ALL);
CREATE SEQUENCE purchases_keyed_id_seq OWNED BY purchases_keyed.id;
ALTER TABLE purchases_keyed ALTER id SET DEFAULT nextval('purchases_keyed_id_seq');
CREATE TABLE members_keyed (
    program_id        integer NOT NULL,
    member_key        text NOT NULL,
    available         bigint NOT NULL DEFAULT 0,
    pending           bigint NOT NULL DEFAULT 0,
    debt              bigint NOT NULL DEFAULT 0,
    last_seq          bigint NOT NULL DEFAULT 0,
    next_event_at     timestamptz,
    enrolled_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at  timestamptz,
    settled_at        timestamptz,
    first_purchase_at timestamptz,
    tier              text,
    activity          loyalty.activity NOT NULL DEFAULT '{}',
    tier_since        timestamptz,
    tier_valid_until  timestamptz,
    tier_manual_until timestamptz,
    tier_review_at    timestamptz,
    PRIMARY KEY (program_id, member_key)
) WITH (fillfactor = 60);
CREATE TABLE lots_keyed (
    program_id   integer NOT NULL,
    member_key   text NOT NULL,
    expires_at   timestamptz NOT NULL,
    available_at timestamptz NOT NULL,
    points       bigint NOT NULL,
    PRIMARY KEY (program_id, member_key, expires_at, available_at)
) WITH (fillfactor = 70);
CREATE TABLE ledger_keyed (
    program_id   integer NOT NULL,
    member_key   text NOT NULL,
    seq          bigint NOT NULL,
    kind         loyalty.entry_kind NOT NULL,
    points       bigint NOT NULL,
    lots         loyalty.lots NOT NULL,
    reference    text,
    reason       text,
    effective_at timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    track_id     integer,
    PRIMARY KEY (program_id, member_key, seq)
);
-- the same uniqueness as loyalty.ledger's, per member
CREATE UNIQUE INDEX ledger_keyed_reference ON ledger_keyed
    (program_id, member_key, (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END), reference)
    WHERE reference IS NOT NULL AND track_id IS NULL AND kind IN ('earn', 'pending', 'redeem', 'adjust');
CREATE UNIQUE INDEX ledger_keyed_purchase_award ON ledger_keyed (program_id, member_key, track_id, reference)
    WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending');
CREATE UNIQUE INDEX ledger_keyed_cancel_reference ON ledger_keyed (program_id, member_key, reference)
    WHERE kind = 'cancel' AND reference IS NOT NULL;
CREATE UNIQUE INDEX ledger_keyed_transfer_reference ON ledger_keyed (program_id, member_key, reference, (points < 0))
    WHERE kind = 'transfer' AND reference IS NOT NULL;
CREATE INDEX ledger_keyed_effective_brin ON ledger_keyed USING brin (effective_at);
