-- Every member's state through the public API, as of fixed instants around
-- the moment the database was populated (upgrade_t0): balances, lots,
-- balance detail, tier and tier progress, the statement (without the
-- version-specific entry ids), and the member's summary, tier history,
-- tier events, redemptions and events.  Run before and after the upgrade;
-- the two outputs must be identical.  The last queries read tier_history,
-- reward_redemptions and events by member_id in 0.1 and by member_key
-- after, the names both versions give the same member.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
SELECT t0 FROM upgrade_t0 \gset
SELECT s.program_code || ' ' || s.member_key || ' balance '
       || loyalty.balance(s.member_key, :'t0'::timestamptz - interval '200 days', s.program_code) || ' '
       || loyalty.balance(s.member_key, :'t0', s.program_code) || ' '
       || loyalty.balance(s.member_key, :'t0'::timestamptz + interval '200 days', s.program_code)
       || ' lots ' || loyalty.member_lots(s.member_key, :'t0', s.program_code)::text
       || ' detail ' || (SELECT d::text FROM loyalty.balance_detail(s.member_key, :'t0', s.program_code) d)
       || ' tier ' || coalesce(loyalty.tier(s.member_key, :'t0', s.program_code), '-')
       || ' progress ' || coalesce((SELECT p::text FROM loyalty.tier_progress(s.member_key, :'t0', s.program_code) p), '-')
       || ' summary ' || row(s.enrolled_at, s.debt, s.tier, s.tier_since, s.tier_valid_until, s.lifetime_spend,
                             s.lifetime_orders, s.lifetime_purchase_points, s.first_purchase_at,
                             s.last_activity_at)::text
  FROM loyalty.member_summary s
 ORDER BY s.program_code, s.member_key;
SELECT s.program_code || ' ' || s.member_key || ' statement '
       || row(st.effective_at, st.kind, st.points, st.running_total, st.reference, st.reason,
              st.expires_at, st.recorded_at)::text
  FROM loyalty.member_summary s,
	   LATERAL loyalty.statement(s.member_key, program => s.program_code) WITH ORDINALITY st
 ORDER BY s.program_code, s.member_key, st.ordinality;	-- in the statement's own order
SELECT 'tier_event ' || row(e.program_code, e.member_key, e.from_tier, e.to_tier, e.reason, e.effective_at,
                            e.created_at, e.handled_at)::text
  FROM loyalty.tier_events e
 ORDER BY e.program_code, e.member_key, e.effective_at, e.to_tier;
-- 0.1 names members by id in these tables, 0.2 by key
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
				WHERE attrelid = 'loyalty.tier_history'::regclass AND attname = 'member_id'
				  AND NOT attisdropped) AS by_id \gset
\if :by_id
SELECT 'tier_change ' || row(h.*)::text FROM (
	SELECT p.code, m.member_key, h.from_tier, h.to_tier, h.reason, h.detail, h.effective_at, h.valid_until
	  FROM loyalty.tier_history h JOIN loyalty.members m ON m.id = h.member_id
	  JOIN loyalty.programs p ON p.id = h.program_id) h
 ORDER BY 1;
SELECT 'redemption ' || row(r.*)::text FROM (
	SELECT m.member_key, w.code, x.reference, x.redeemed_at, x.cancelled_at
	  FROM loyalty.reward_redemptions x JOIN loyalty.members m ON m.id = x.member_id
	  JOIN loyalty.rewards w ON w.id = x.reward_id) r
 ORDER BY 1;
SELECT 'event ' || row(e.*)::text FROM (
	SELECT m.member_key, x.action, x.reference, x.occurred_at, x.points
	  FROM loyalty.events x JOIN loyalty.members m ON m.id = x.member_id) e
 ORDER BY 1;
\else
SELECT 'tier_change ' || row(h.*)::text FROM (
	SELECT p.code, h.member_key, h.from_tier, h.to_tier, h.reason, h.detail, h.effective_at, h.valid_until
	  FROM loyalty.tier_history h JOIN loyalty.programs p ON p.id = h.program_id) h
 ORDER BY 1;
SELECT 'redemption ' || row(r.*)::text FROM (
	SELECT x.member_key, w.code, x.reference, x.redeemed_at, x.cancelled_at
	  FROM loyalty.reward_redemptions x JOIN loyalty.rewards w ON w.id = x.reward_id) r
 ORDER BY 1;
SELECT 'event ' || row(e.*)::text FROM (
	SELECT x.member_key, x.action, x.reference, x.occurred_at, x.points
	  FROM loyalty.events x) e
 ORDER BY 1;
\endif
SELECT 'verify ' || count(*) FROM loyalty.verify();
