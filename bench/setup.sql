-- Two identical purchase tables: one plain, one tracked by loyalty.
\ir program.sql
CREATE TABLE purchases_plain (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12,2) NOT NULL,
    channel text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE purchases (LIKE purchases_plain INCLUDING ALL);
CREATE SEQUENCE purchases_id_seq OWNED BY purchases.id;
ALTER TABLE purchases ALTER id SET DEFAULT nextval('purchases_id_seq');
SELECT loyalty.track_purchases('purchases', 'customer', 'amount', 'created_at',
                               channel_column => 'channel');
-- members exist already, as in a running program
SELECT count(*) FROM (SELECT loyalty.enroll('c' || i) FROM generate_series(1, 10000) i) s;
\ir bare_tables.sql
INSERT INTO members_bare (program_id, member_key, enrolled_at)
SELECT program_id, member_key, enrolled_at FROM loyalty.members;
INSERT INTO members_keyed (program_id, member_key, enrolled_at)
SELECT program_id, member_key, enrolled_at FROM loyalty.members;
