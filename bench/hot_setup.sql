-- The hot member: one customer key that every purchase goes to (a B2B
-- account, a store's house account, a cause receiving donations), in a
-- program whose points expire 12 months after each purchase, so that every
-- purchase adds a lot with an expiry instant of its own.  Run in a database
-- of its own (bench/run hot).
CREATE EXTENSION IF NOT EXISTS loyalty;
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, time_zone, is_default)
VALUES ('hot', 'Hot member', 'after', '12 months', 'UTC', true);
CREATE TABLE purchases_plain (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12,2) NOT NULL,
    channel text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE purchases_hot (LIKE purchases_plain INCLUDING ALL);
CREATE SEQUENCE purchases_hot_id_seq OWNED BY purchases_hot.id;
ALTER TABLE purchases_hot ALTER id SET DEFAULT nextval('purchases_hot_id_seq');
SELECT loyalty.track_purchases('purchases_hot', 'customer', 'amount', 'created_at');
SELECT loyalty.enroll('house');
\ir bare_tables.sql
INSERT INTO members_bare (program_id, member_key, enrolled_at)
SELECT program_id, member_key, enrolled_at FROM loyalty.members;
INSERT INTO members_keyed (program_id, member_key, enrolled_at)
SELECT program_id, member_key, enrolled_at FROM loyalty.members;
