-- The template of bench/dupes: a program and a purchases table tracked by
-- its order number, a reference column that is not unique (no unique index:
-- order lines may share one), so every load marks repeated references.
\ir program.sql
CREATE TABLE purchases_lines (
    id bigserial PRIMARY KEY,
    order_no text NOT NULL,
    customer text NOT NULL,
    amount numeric(12,2) NOT NULL,
    channel text,
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT loyalty.track_purchases('purchases_lines', 'customer', 'amount', 'created_at',
                               reference_columns => '{order_no}', channel_column => 'channel');
-- members exist already, as in a running program
SELECT count(*) FROM (SELECT loyalty.enroll('c' || i) FROM generate_series(0, 99999) i) s;
