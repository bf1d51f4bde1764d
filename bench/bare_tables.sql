-- The bare writes: what a tracked purchase must write at least, written by
-- plain SQL into copies of loyalty's tables, without any of loyalty's logic
-- (rules, caps, tiers, activity, replay checks).  Two models side by side:
--
-- * bare: the model of the extension as built (members_bare, ledger_bare:
--   copies of loyalty's tables with the same indexes, so they follow it):
--   the member looked up by its key and locked, its next seq read from the
--   ledger's primary key (its greatest + 1, as loyalty._next_seq does), one
--   ledger entry with its lots, the member's lots (one value in its row)
--   rewritten with the new lot.
-- * keyed: the whole member-keyed model designed for 0.2: every table keyed
--   by (program, member key); the ledger numbered per member from a counter
--   on the member row (last_seq), taken under the member's lock; the
--   member's lots as rows of their own (lots_keyed), so that a purchase
--   inserts or raises one lot row instead of rewriting all of them; the
--   member row keeps the totals.
--
-- Needs purchases_plain.  The caller copies the members in.
CREATE TABLE purchases_bare (LIKE purchases_plain INCLUDING ALL);
CREATE SEQUENCE purchases_bare_id_seq OWNED BY purchases_bare.id;
ALTER TABLE purchases_bare ALTER id SET DEFAULT nextval('purchases_bare_id_seq');
CREATE TABLE ledger_bare (LIKE loyalty.ledger INCLUDING ALL);
CREATE TABLE members_bare (LIKE loyalty.members INCLUDING ALL) WITH (fillfactor = 60);
-- The member's next seq (its greatest + 1), read after the statement locked
-- the member: a volatile function's query takes a snapshot of its own, while
-- the statement's may miss an entry committed during the wait for the lock
-- (a subquery in the statement writes duplicate seqs under two clients on
-- one key).  PL/pgSQL keeps the query's plan for the session, like the
-- trigger's SPI statements; a SQL function with a SET clause (so as not to
-- be inlined), as loyalty._next_seq is, plans it on every call, which about
-- halved the bare single-row throughput.
CREATE FUNCTION ledger_bare_next_seq(program_id integer, member_key text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT coalesce(max(l.seq), 0) + 1 FROM ledger_bare l
             WHERE l.program_id = ledger_bare_next_seq.program_id
               AND l.member_key = ledger_bare_next_seq.member_key);
END $$;

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
