-- bench/insert_bare.sql for the hot member: every lot expires 12 months
-- after its purchase, so the member's lots (one value in its row) grow by
-- one lot per purchase.
WITH p AS (INSERT INTO purchases_bare (customer, amount) VALUES ('house', 42.50)
           RETURNING id, created_at, created_at + interval '12 months' AS expires_at),
m AS (SELECT program_id, member_key FROM members_bare
       WHERE program_id = 1 AND member_key = 'house' FOR UPDATE),
l AS (INSERT INTO ledger_bare (program_id, member_key, seq, track_id, kind, points, lots, reference,
                               effective_at)
      SELECT m.program_id, m.member_key, ledger_bare_next_seq(m.program_id, m.member_key), 1, 'earn', 42,
             loyalty.lots_add('{}', 42, p.expires_at), p.id::text, p.created_at
        FROM m, p)
UPDATE members_bare b
   SET balance = loyalty.lots_add(b.balance, 42, p.expires_at),
       first_purchase_at = coalesce(b.first_purchase_at, p.created_at), last_activity_at = p.created_at
  FROM m, p
 WHERE b.program_id = m.program_id AND b.member_key = m.member_key;
