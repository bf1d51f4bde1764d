-- bench/insert_keyed.sql for the hot member: every lot expires 12 months
-- after its purchase, so every purchase inserts a lot row of its own.
WITH p AS (INSERT INTO purchases_keyed (customer, amount) VALUES ('house', 42.50)
           RETURNING id, created_at, created_at + interval '12 months' AS expires_at),
m AS (SELECT program_id, member_key, last_seq FROM members_keyed
       WHERE program_id = 1 AND member_key = 'house' FOR UPDATE),
lot AS (INSERT INTO lots_keyed (program_id, member_key, expires_at, available_at, points)
        SELECT m.program_id, m.member_key, p.expires_at, '-infinity', 42 FROM m, p
        ON CONFLICT (program_id, member_key, expires_at, available_at)
        DO UPDATE SET points = lots_keyed.points + excluded.points),
l AS (INSERT INTO ledger_keyed (program_id, member_key, seq, track_id, kind, points, lots, reference, effective_at)
      SELECT m.program_id, m.member_key, m.last_seq + 1, 1, 'earn', 42,
             loyalty.lots_add('{}', 42, p.expires_at), p.id::text, p.created_at
        FROM m, p)
UPDATE members_keyed b
   SET last_seq = m.last_seq + 1, available = b.available + 42,
       next_event_at = least(b.next_event_at, p.expires_at),
       first_purchase_at = coalesce(b.first_purchase_at, p.created_at), last_activity_at = p.created_at
  FROM m, p
 WHERE b.program_id = m.program_id AND b.member_key = m.member_key;
