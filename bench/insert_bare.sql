-- The bare writes of one tracked purchase (see setup.sql), in one statement:
-- the purchase, the member looked up and locked, one ledger entry numbered
-- after the member's greatest, the member's new balance.
\set c random(1, 10000)
WITH p AS (INSERT INTO purchases_bare (customer, amount, channel) VALUES ('c' || :c, 42.50, 'web')
           RETURNING id, created_at),
m AS (SELECT program_id, member_key FROM members_bare
       WHERE program_id = 1 AND member_key = 'c' || :c FOR UPDATE),
l AS (INSERT INTO ledger_bare (program_id, member_key, seq, track_id, kind, points, lots, reference,
                               effective_at)
      SELECT m.program_id, m.member_key, ledger_bare_next_seq(m.program_id, m.member_key), 1, 'earn', 42,
             loyalty.lots_add('{}', 42, '2026-12-31 23:00:00+00'), p.id::text, p.created_at
        FROM m, p)
UPDATE members_bare b
   SET balance = loyalty.lots_add(b.balance, 42, '2026-12-31 23:00:00+00'),
       first_purchase_at = coalesce(b.first_purchase_at, p.created_at), last_activity_at = p.created_at
  FROM m, p
 WHERE b.program_id = m.program_id AND b.member_key = m.member_key;
