-- The bare writes of one tracked purchase in the whole member-keyed model
-- of 0.2 (bare_tables.sql), in one statement: the purchase, the member
-- locked by its key, one ledger entry numbered after the member's last, its
-- lot row inserted or raised, the member's totals.
\set c random(1, 10000)
WITH p AS (INSERT INTO purchases_keyed (customer, amount, channel) VALUES ('c' || :c, 42.50, 'web')
           RETURNING id, created_at),
m AS (SELECT program_id, member_key, last_seq FROM members_keyed
       WHERE program_id = 1 AND member_key = 'c' || :c FOR UPDATE),
lot AS (INSERT INTO lots_keyed (program_id, member_key, expires_at, available_at, points)
        SELECT m.program_id, m.member_key, '2026-12-31 23:00:00+00', '-infinity', 42 FROM m
        ON CONFLICT (program_id, member_key, expires_at, available_at)
        DO UPDATE SET points = lots_keyed.points + excluded.points),
l AS (INSERT INTO ledger_keyed (program_id, member_key, seq, track_id, kind, points, lots, reference, effective_at)
      SELECT m.program_id, m.member_key, m.last_seq + 1, 1, 'earn', 42,
             loyalty.lots_add('{}', 42, '2026-12-31 23:00:00+00'), p.id::text, p.created_at
        FROM m, p)
UPDATE members_keyed b
   SET last_seq = m.last_seq + 1, available = b.available + 42,
       next_event_at = least(b.next_event_at, '2026-12-31 23:00:00+00'),
       first_purchase_at = coalesce(b.first_purchase_at, p.created_at), last_activity_at = p.created_at
  FROM m, p
 WHERE b.program_id = m.program_id AND b.member_key = m.member_key;
