\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(43);

\ir lib/error_text.psql

INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, is_default)
VALUES ('shop', 'Shop', 'after', '1 year', true);
DO $$ BEGIN
	PERFORM loyalty.enroll(k) FROM unnest('{ann,bob,old,mix,deb}'::text[]) k;
END $$;
-- ann: 50 points expiring in 30 days, 100 expiring in 355 days (a day later
-- when a 29 February lies ahead: the expected expiries below are the earning
-- instants plus the program's year, not now() plus days)
SELECT loyalty.earn('ann', 50, 'a1', now() - interval '335 days') IS NOT NULL;
SELECT loyalty.earn('ann', 100, 'a2', now() - interval '10 days') IS NOT NULL;
CREATE TEMP TABLE lots_before AS SELECT balance FROM loyalty.members WHERE member_key = 'ann';

------------------------------------------------------------------------------
-- errors
------------------------------------------------------------------------------
SELECT is(pg_temp.err($$SELECT loyalty.cancel_redemption('nope')$$),
	'LY015: no redemption with reference "nope" in loyalty program "shop" |  | Only redeem() and redeem_reward() calls made with a reference can be cancelled.',
	'an unknown reference: LY015');
SELECT throws_ok($$SELECT loyalty.cancel_redemption(NULL)$$, '22004', 'reference must not be null', 'null reference');
SELECT throws_ok($$SELECT loyalty.cancel_redemption('nope', 'nowhere')$$, 'LY003',
	'loyalty program "nowhere" does not exist', 'unknown program');
SELECT ok((loyalty.adjust('bob', 10, 'goodwill', 'adj-1')).seq IS NOT NULL, 'an adjustment with a reference');
SELECT throws_ok($$SELECT loyalty.cancel_redemption('adj-1')$$, 'LY015',
	'no redemption with reference "adj-1" in loyalty program "shop"', 'only redemptions can be cancelled');
SELECT ok((loyalty.earn('bob', 10, 'e-1')).seq IS NOT NULL, 'an earning with a reference');
SELECT throws_ok($$SELECT loyalty.cancel_redemption('e-1')$$, 'LY015',
	'no redemption with reference "e-1" in loyalty program "shop"', 'an earning is not a redemption');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'cancel'), 0::bigint, 'refused cancellations wrote nothing');

------------------------------------------------------------------------------
-- a plain redeem comes back with its original expiry
------------------------------------------------------------------------------
CREATE TEMP TABLE d AS SELECT * FROM loyalty.redeem('ann', 120, 'x1');
SELECT is((SELECT lots::text FROM d),
	loyalty.lots_add(loyalty.lots_add('{}', 50, now() - interval '335 days' + interval '1 year'), 70, now() - interval '10 days' + interval '1 year')::text,
	'the redemption drew 50 from the soonest lot and 70 from the next');
CREATE TEMP TABLE c AS SELECT * FROM loyalty.cancel_redemption('x1');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", reason COLLATE "default", effective_at FROM c$$,
	$$SELECT 'cancel'::text, 120::bigint, lots::text, 'x1'::text, 'redemption cancelled'::text, now() FROM d$$,
	'the cancel entry gives back exactly the lots drawn');
SELECT ok((SELECT balance FROM loyalty.members WHERE member_key = 'ann') OPERATOR(loyalty.=) (SELECT balance FROM lots_before),
	'ann holds the same lots as before the redemption');
SELECT is(loyalty.balance('ann'), 150::bigint, 'and 150 points');
SELECT is((loyalty.cancel_redemption('x1')).seq, (SELECT seq FROM c), 'cancelling again returns the first cancel entry');
SELECT is(loyalty.balance('ann'), 150::bigint, 'and gives nothing more');
SELECT is((loyalty.redeem('ann', 120, 'x1')).seq, (SELECT seq FROM d), 'the redemption''s reference stays used: a repeat returns it');
SELECT is(loyalty.balance('ann'), 150::bigint, 'and spends nothing');

------------------------------------------------------------------------------
-- a reward redemption: stock and limit come back too
------------------------------------------------------------------------------
INSERT INTO loyalty.rewards (program_id, code, name, cost, stock, limit_per_member, limit_period)
SELECT id, 'mug', 'Mug', 30, 1, 1, 'month' FROM loyalty.programs;
SELECT ok((loyalty.redeem_reward('ann', 'mug', 'm1')).seq IS NOT NULL, 'the last mug');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'mug', 'm2')$$, 'LY012', NULL, 'limit reached');
CREATE TEMP TABLE cm AS SELECT * FROM loyalty.cancel_redemption('m1');
SELECT is((SELECT points FROM cm), 30::bigint, 'the cancellation gives back the reward''s cost');
SELECT is((SELECT stock FROM loyalty.rewards WHERE code = 'mug'), 1::bigint, 'and its stock');
SELECT is((SELECT cancelled_at FROM loyalty.reward_redemptions WHERE reference = 'm1'), now(), 'the redemption is marked cancelled');
SELECT ok((loyalty.redeem_reward('ann', 'mug', 'm2')).seq IS NOT NULL, 'a cancelled redemption no longer counts towards the limit');
SELECT is((loyalty.cancel_redemption('m1')).seq, (SELECT seq FROM cm), 'a second cancel changes nothing');
SELECT is((SELECT stock FROM loyalty.rewards WHERE code = 'mug'), 0::bigint, 'and returns no stock twice');

------------------------------------------------------------------------------
-- lots that expired since the redemption come back and expire at once
------------------------------------------------------------------------------
-- history written as the API would have: earned 1 Jan 2025 (expiring 1 Jan
-- 2026), 100 redeemed on 1 June 2025, so nothing is left
INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference, effective_at)
SELECT m.program_id, m.member_key, row_number() OVER (PARTITION BY m.member_key ORDER BY v.n), v.kind, v.points, v.lots::loyalty.lots, v.ref, v.at::timestamptz
  FROM loyalty.members m,
	   (VALUES (1, 'old', 'earn', 100, '{100 until 2026-01-01 00:00:00+00}', 'o-e', '2025-01-01 00:00+00'),
			   (2, 'old', 'redeem', -100, '{100 until 2026-01-01 00:00:00+00}', 'o-r', '2025-06-01 00:00+00'),
			   (3, 'mix', 'earn', 60, '{60 until 2026-01-01 00:00:00+00}', 'x-e1', '2025-01-01 00:00+00'),
			   (4, 'mix', 'earn', 40, '{40 until 2040-01-01 00:00:00+00}', 'x-e2', '2025-01-01 00:00+00'),
			   (5, 'mix', 'redeem', -100, '{60 until 2026-01-01 00:00:00+00, 40 until 2040-01-01 00:00:00+00}', 'x-r', '2025-06-01 00:00+00')
	   ) v(n, member, kind, points, lots, ref, at)
 WHERE m.member_key = v.member
 ORDER BY v.n;	-- in the order the API would have written them
UPDATE loyalty.members SET last_activity_at = '2025-06-01 00:00+00', settled_at = '2025-06-01 00:00+00'
 WHERE member_key IN ('old', 'mix');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'the written history is consistent');
SELECT is(loyalty.balance('old', '2025-05-01 00:00+00'), 100::bigint, 'old had 100 points in May 2025');
SELECT ok((loyalty.cancel_redemption('o-r')).seq IS NOT NULL, 'cancelling a redemption whose lot has expired');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default", effective_at FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key WHERE m.member_key = 'old' AND l.effective_at = now() ORDER BY l.seq$$,
	$$VALUES ('cancel', 100::bigint, '{100 until 2026-01-01 00:00:00+00}', 'o-r', now()),
			 ('expire', -100::bigint, '{100 until 2026-01-01 00:00:00+00}', 'o-r', now())$$,
	'writes the cancel entry and an expire entry dated with the cancellation');
SELECT is(loyalty.balance('old'), 0::bigint, 'the expired points are not usable');
SELECT is(loyalty.balance('old', '2025-05-01 00:00+00'), 100::bigint, 'and the past still replays');

SELECT ok((loyalty.cancel_redemption('x-r')).seq IS NOT NULL, 'cancelling a redemption of an expired and a valid lot');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'mix'), '{40 until 2040-01-01 00:00:00+00}',
	'only the valid lot is back in the balance');
SELECT is((SELECT sum(points) FROM loyalty.ledger l JOIN loyalty.members m ON m.program_id = l.program_id AND m.member_key = l.member_key WHERE m.member_key = 'mix' AND l.kind = 'expire'),
	-60::numeric, 'the expired lot expired at once');

------------------------------------------------------------------------------
-- returned points pay debt first, as every credit does
------------------------------------------------------------------------------
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, status text DEFAULT 'paid');
SELECT loyalty.track_purchases('orders', 'customer', 'total', status_column => 'status') IS NOT NULL;
INSERT INTO orders VALUES (1, 'deb', 100);
SELECT loyalty.redeem('deb', 100, 'd-r') IS NOT NULL;
UPDATE orders SET status = 'refunded' WHERE id = 1;
SELECT is(loyalty.balance('deb'), -100::bigint, 'a refund after the redemption left debt');
SELECT ok((loyalty.cancel_redemption('d-r')).seq IS NOT NULL, 'cancelling the redemption');
SELECT is((SELECT balance::text FROM loyalty.members WHERE member_key = 'deb'), '{}', 'pays the debt');

------------------------------------------------------------------------------
-- a reference is the member's own: two members' redemptions under one
------------------------------------------------------------------------------
DO $$ BEGIN
	PERFORM loyalty.earn(k, 40, 'seed-' || k, now() - interval '1 day') FROM unnest('{mix,old}'::text[]) k;
END $$;
SELECT ok((loyalty.redeem('mix', 10, 'same')).seq IS NOT NULL AND (loyalty.redeem('old', 15, 'same')).seq IS NOT NULL,
	'two members redeem under the same reference');
CREATE TEMP TABLE before_same AS SELECT loyalty.balance('old') AS old, loyalty.balance('mix') AS mix;
SELECT is(pg_temp.err($$SELECT loyalty.cancel_redemption('same')$$),
	'LY021: reference "same" names redemptions of 2 members in loyalty program "shop" | A reference is unique per member, not per program. | Pass member => the key of the member whose redemption to cancel.',
	'without the member, an ambiguous reference: LY021');
SELECT is((loyalty.cancel_redemption('same', member => 'old')).points, 15::bigint, 'with the member: that member''s redemption');
SELECT is(ARRAY[loyalty.balance('old') - old, loyalty.balance('mix') - mix], '{15,0}'::bigint[],
	'old has its 15 back, mix not') FROM before_same;
SELECT is((loyalty.cancel_redemption('same', member => 'old')).points, 15::bigint, 'a repeat returns the same cancellation');
SELECT is(pg_temp.err($$SELECT loyalty.cancel_redemption('same', member => 'ann')$$),
	'LY015: no redemption with reference "same" in loyalty program "shop" | Member "ann" has none. | Only redeem() and redeem_reward() calls made with a reference can be cancelled.',
	'a member without that redemption: LY015');

SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
