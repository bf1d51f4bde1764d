-- 1M-row INSERT ... SELECT, timed in the same session: plain, tracked, then
-- plain again into a fresh copy of the plain table, then the bare writes
-- (bare_tables.sql) of the same purchases by plain SQL in one transaction,
-- in the extension's model and in the whole member-keyed one.  The plain
-- time moves by a third from run to run (WAL segment creation, the
-- checkpointer), so the ratio is taken against the mean of the two plain
-- runs.  All three insert the same rows, from one view.
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
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
CREATE TEMP TABLE new_purchases ON COMMIT DROP AS
WITH p AS (INSERT INTO purchases_bare (customer, amount, channel, created_at) SELECT * FROM bulk_rows
           RETURNING id, customer, floor(amount)::bigint + 1 AS points, created_at)
SELECT * FROM p;
INSERT INTO members_bare (program_id, member_key)
SELECT DISTINCT 1, customer FROM new_purchases ON CONFLICT (program_id, member_key) DO NOTHING;
-- the members' update first: it locks them, so that the greatest seq of
-- each, read by the next statement, is final
UPDATE members_bare b
   SET balance = loyalty.lots_add(b.balance, s.points, '2026-12-31 23:00:00+00'),
       first_purchase_at = coalesce(b.first_purchase_at, s.first_at), last_activity_at = s.last_at
  FROM (SELECT customer, sum(points)::bigint AS points, min(created_at) AS first_at, max(created_at) AS last_at
          FROM new_purchases GROUP BY customer) s
 WHERE b.program_id = 1 AND b.member_key = s.customer;
INSERT INTO ledger_bare (program_id, member_key, seq, track_id, kind, points, lots, reference, effective_at)
SELECT 1, p.customer, s.last_seq + row_number() OVER (PARTITION BY p.customer ORDER BY p.created_at, p.id),
       1, 'earn', p.points, loyalty.lots_add('{}', p.points, '2026-12-31 23:00:00+00'), p.id::text, p.created_at
  FROM new_purchases p
  JOIN (SELECT c.customer, (SELECT coalesce(max(l.seq), 0) FROM ledger_bare l
                             WHERE l.program_id = 1 AND l.member_key = c.customer) AS last_seq
          FROM (SELECT DISTINCT customer FROM new_purchases) c) s ON s.customer = p.customer
 ORDER BY p.customer, p.created_at, p.id;
COMMIT;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS bare_s \gset
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
CREATE TEMP TABLE new_keyed ON COMMIT DROP AS
WITH p AS (INSERT INTO purchases_keyed (customer, amount, channel, created_at) SELECT * FROM bulk_rows
           RETURNING id, customer, floor(amount)::bigint + 1 AS points, created_at)
SELECT * FROM p;
INSERT INTO members_keyed (program_id, member_key)
SELECT DISTINCT 1, customer FROM new_keyed ON CONFLICT (program_id, member_key) DO NOTHING;
INSERT INTO ledger_keyed (program_id, member_key, seq, track_id, kind, points, lots, reference, effective_at)
SELECT 1, p.customer, m.last_seq + row_number() OVER (PARTITION BY p.customer ORDER BY p.created_at, p.id),
       1, 'earn', p.points, loyalty.lots_add('{}', p.points, '2026-12-31 23:00:00+00'), p.id::text, p.created_at
  FROM new_keyed p JOIN members_keyed m ON m.program_id = 1 AND m.member_key = p.customer
 ORDER BY p.customer, p.created_at, p.id;
INSERT INTO lots_keyed (program_id, member_key, expires_at, available_at, points)
SELECT 1, customer, '2026-12-31 23:00:00+00', '-infinity', sum(points) FROM new_keyed GROUP BY customer
    ON CONFLICT (program_id, member_key, expires_at, available_at)
    DO UPDATE SET points = lots_keyed.points + excluded.points;
UPDATE members_keyed b
   SET available = b.available + s.points, last_seq = b.last_seq + s.n,
       next_event_at = least(b.next_event_at, '2026-12-31 23:00:00+00'),
       first_purchase_at = coalesce(b.first_purchase_at, s.first_at), last_activity_at = s.last_at
  FROM (SELECT customer, sum(points)::bigint AS points, count(*) AS n, min(created_at) AS first_at,
               max(created_at) AS last_at
          FROM new_keyed GROUP BY customer) s
 WHERE b.program_id = 1 AND b.member_key = s.customer;
COMMIT;
SELECT extract(epoch FROM clock_timestamp() - :'t0') AS keyed_s \gset
SELECT :rows AS rows, round(:plain_s::numeric, 2) AS plain_s, round(:plain2_s::numeric, 2) AS plain_again_s,
       round(:tracked_s::numeric, 2) AS tracked_s, round(:bare_s::numeric, 2) AS bare_writes_s,
       round(:keyed_s::numeric, 2) AS keyed_writes_s,
       round((:tracked_s / ((:plain_s + :plain2_s) / 2))::numeric, 2) AS ratio_tracked_over_plain,
       round((:bare_s / ((:plain_s + :plain2_s) / 2))::numeric, 2) AS ratio_bare_over_plain,
       round((:keyed_s / ((:plain_s + :plain2_s) / 2))::numeric, 2) AS ratio_keyed_over_plain;
SELECT count(*) AS ledger_rows, (SELECT count(*) FROM loyalty.verify()) AS verify_problems
  FROM loyalty.ledger;
