-- 1M-row INSERT ... SELECT, plain then tracked, timed in the same session.
\set rows 1000000
SELECT clock_timestamp() AS t0 \gset
INSERT INTO purchases_plain (customer, amount, channel, created_at)
SELECT 'c' || (i % 100000), (i % 500) + 0.99, CASE WHEN i % 3 = 0 THEN 'app' ELSE 'web' END,
       '2026-01-01'::timestamptz + i * interval '20 seconds'
  FROM generate_series(1, :rows) i;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS plain_s \gset
SELECT clock_timestamp() AS t0 \gset
INSERT INTO purchases (customer, amount, channel, created_at)
SELECT 'c' || (i % 100000), (i % 500) + 0.99, CASE WHEN i % 3 = 0 THEN 'app' ELSE 'web' END,
       '2026-01-01'::timestamptz + i * interval '20 seconds'
  FROM generate_series(1, :rows) i;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS tracked_s \gset
SELECT :rows AS rows, round(:plain_s::numeric, 2) AS plain_s, round(:tracked_s::numeric, 2) AS tracked_s,
       round((:tracked_s / :plain_s)::numeric, 2) AS ratio_tracked_over_plain;
SELECT count(*) AS ledger_rows, (SELECT count(*) FROM loyalty.verify()) AS verify_problems
  FROM loyalty.ledger;
