-- run_maintenance over :members members with lots, :due_pct percent of them
-- with a release and an expiry due, settled in the caller's transaction
-- (:workers = 0) or by that many background workers.  Run by bench/run
-- (section maintenance); needs psql variables members, due_pct and workers.
\set ON_ERROR_STOP 1
DROP DATABASE IF EXISTS loyalty_maint;
CREATE DATABASE loyalty_maint;
\c loyalty_maint
SET client_min_messages = warning;
CREATE EXTENSION loyalty;
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval,
                              time_zone, is_default)
VALUES ('maint', 'Maintenance bench', 'after', '12 months', '14 days', 'Europe/Berlin', true);
-- Every member: 100 points expiring and 20 pending points.  For due members
-- the lot expired on 1 June 2025 and the pending points were released on
-- 15 June 2025; the others' are due in 2040.  The ledger holds the matching
-- earn and pending entries, so verify() stays clean: each member's first and
-- second (seq 1 and 2; the members are new).
-- Members go in in i order, not in key order ('m10' sorts before 'm2'): as
-- in a live table, the batches' key order is not the order of the heap.
CREATE TEMP TABLE seed AS
SELECT i, (i % 100) < :due_pct AS due FROM generate_series(1, :members) i;
INSERT INTO loyalty.members (program_id, member_key, balance, last_activity_at)
SELECT 1, 'm' || s.i,
       loyalty.lots_add_pending(loyalty.lots_add('{}', 100, e.expires), 20, e.release, e.release + interval '12 months'),
       e.release - interval '14 days'
  FROM seed s
 CROSS JOIN LATERAL (SELECT CASE WHEN s.due THEN '2025-06-01 00:00+02'::timestamptz
                                 ELSE '2040-06-01 00:00+02' END AS expires,
                            CASE WHEN s.due THEN '2025-06-15 00:00+02'::timestamptz
                                 ELSE '2040-06-15 00:00+02' END AS release) e;
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT 1, m.member_key, 1, 'earn', 100, loyalty.lots_add('{}', 100, e.expires_at),
       e.expires_at - interval '12 months'
  FROM loyalty.members m, loyalty.lots_entries(m.balance) e WHERE e.state = 'lot';
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, effective_at)
SELECT 1, m.member_key, 2, 'pending', 20, loyalty.lots_add_pending('{}', 20, e.release_at, e.expires_at),
       e.release_at - interval '14 days'
  FROM loyalty.members m, loyalty.lots_entries(m.balance) e WHERE e.state = 'pending';
VACUUM ANALYZE;
CHECKPOINT;
SELECT count(*) AS members, count(*) FILTER (WHERE next_event_at <= '2025-07-01') AS due
  FROM loyalty.members;
\timing on
SELECT * FROM loyalty.run_maintenance('2025-07-01', workers => :workers);
\timing off
SELECT count(*) AS verify_problems FROM loyalty.verify();
\timing on
SELECT * FROM loyalty.run_maintenance('2025-07-01', workers => :workers);
\timing off
