-- 1M-row INSERT ... SELECT, timed in the same session: plain, tracked, then
-- plain again into a fresh copy of the plain table.  The plain time moves by
-- a third from run to run (WAL segment creation, the checkpointer), so the
-- ratio is taken against the mean of the two plain runs.  All three insert
-- the same rows, from one view.
\set rows 1000000
CREATE TEMP VIEW bulk_rows AS
SELECT 'c' || (i % 100000) AS customer, (i % 500) + 0.99 AS amount,
       CASE WHEN i % 3 = 0 THEN 'app' ELSE 'web' END AS channel,
       '2026-01-01'::timestamptz + i * interval '20 seconds' AS created_at
  FROM generate_series(1, :rows) i;
CREATE TABLE purchases_plain2 (LIKE purchases_plain INCLUDING ALL);
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO purchases_plain (customer, amount, channel, created_at) SELECT * FROM bulk_rows;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS plain_s \gset
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO purchases (customer, amount, channel, created_at) SELECT * FROM bulk_rows;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS tracked_s \gset
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO purchases_plain2 (customer, amount, channel, created_at) SELECT * FROM bulk_rows;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS plain2_s \gset
SELECT :rows AS rows, round(:plain_s::numeric, 2) AS plain_s, round(:plain2_s::numeric, 2) AS plain_again_s,
       round(:tracked_s::numeric, 2) AS tracked_s,
       round((:tracked_s / ((:plain_s + :plain2_s) / 2))::numeric, 2) AS ratio_tracked_over_plain;
SELECT count(*) AS ledger_rows, (SELECT count(*) FROM loyalty.verify()) AS verify_problems
  FROM loyalty.ledger;
