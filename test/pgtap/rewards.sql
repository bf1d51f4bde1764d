\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(48);

\ir lib/error_text.psql

INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, is_default)
VALUES ('shop', 'Shop', 'after', '1 year', true);
INSERT INTO loyalty.programs (code, name) VALUES ('other', 'Other');
DO $$ BEGIN
	PERFORM loyalty.enroll(k) FROM unnest('{ann,bob,cat,dan,eve}'::text[]) k;
	PERFORM loyalty.enroll('ann', 'other');
	PERFORM loyalty.enroll(42::bigint);
END $$;
UPDATE loyalty.members SET tier = 'gold' WHERE member_key = 'ann';
UPDATE loyalty.members SET tier = 'silver' WHERE member_key = 'eve';
-- ann: 100 points expiring in 30 days, then 500 expiring in 355 days (a day
-- later when a 29 February lies ahead: the expected expiries below are the
-- earning instants plus the program's year, not now() plus days)
SELECT loyalty.earn('ann', 100, 'a1', now() - interval '335 days') IS NOT NULL;
SELECT loyalty.earn('ann', 500, 'a2', now() - interval '10 days') IS NOT NULL;
SELECT loyalty.earn(k, 200, 'e-' || k, now() - interval '1 day') IS NOT NULL
  FROM unnest('{bob,cat,dan,eve,42}'::text[]) k;
SELECT loyalty.earn('ann', 100, 'o1', now(), 'other') IS NOT NULL;

INSERT INTO loyalty.rewards (program_id, code, name, cost, stock, limit_per_member, limit_period,
							 tiers, valid_from, valid_until, active)
SELECT p.id, r.* FROM loyalty.programs p,
	(VALUES ('mug', 'Mug', 100::bigint, 2::bigint, 1, 'month', NULL::text[], NULL::timestamptz, NULL::timestamptz, true),
			('vip', 'VIP lounge', 50, NULL, NULL, NULL, '{gold,platinum}', NULL, NULL, true),
			('old', 'Last year''s offer', 10, NULL, NULL, NULL, NULL, NULL, now() - interval '1 day', true),
			('soon', 'Next week''s offer', 10, NULL, NULL, NULL, NULL, now() + interval '1 day', NULL, true),
			('off', 'Withdrawn', 10, NULL, NULL, NULL, NULL, NULL, NULL, false),
			('car', 'A car', 100000, NULL, NULL, NULL, NULL, NULL, NULL, true),
			('pen', 'Pen', 10, NULL, 2, 'ever', NULL, NULL, NULL, true)) r
 WHERE p.code = 'shop';
INSERT INTO loyalty.rewards (program_id, code, name, cost)
SELECT id, 'bag', 'Bag', 10 FROM loyalty.programs WHERE code = 'other';

------------------------------------------------------------------------------
-- the catalog's checks
------------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO loyalty.rewards (program_id, code, name, cost) SELECT id, 'free', 'Free', 0 FROM loyalty.programs WHERE code = 'shop'$$,
	'23514', NULL, 'a reward costs at least one point');
SELECT throws_ok($$INSERT INTO loyalty.rewards (program_id, code, name, cost, limit_per_member) SELECT id, 'x', 'X', 5, 1 FROM loyalty.programs WHERE code = 'shop'$$,
	'23514', NULL, 'a limit needs its period');
SELECT throws_ok($$INSERT INTO loyalty.rewards (program_id, code, name, cost, stock) SELECT id, 'x', 'X', 5, -1 FROM loyalty.programs WHERE code = 'shop'$$,
	'23514', NULL, 'stock is not negative');
SELECT throws_ok($$INSERT INTO loyalty.rewards (program_id, code, name, cost) SELECT id, 'mug', 'Mug 2', 5 FROM loyalty.programs WHERE code = 'shop'$$,
	'23505', NULL, 'a code is unique within its program');

------------------------------------------------------------------------------
-- refusals: each its own SQLSTATE, and none writes anything
------------------------------------------------------------------------------
CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM loyalty.ledger) AS entries,
	   (SELECT count(*) FROM loyalty.reward_redemptions) AS redemptions,
	   (SELECT sum(coalesce(stock, 0)) FROM loyalty.rewards) AS stock;

SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'nope', 'x1')$$, 'LY013',
	'reward "nope" does not exist in loyalty program "shop"', 'unknown reward');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'bag', 'x2')$$, 'LY013',
	'reward "bag" does not exist in loyalty program "shop"', 'a reward of another program is not offered');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', NULL, 'x3')$$, '22004',
	'reward code must not be null', 'null reward');
SELECT throws_ok($$SELECT loyalty.redeem_reward('zed', 'mug', 'x4')$$, 'LY002',
	'member "zed" is not enrolled in loyalty program "shop"', 'unknown member');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'mug', 'x5', 'nowhere')$$, 'LY003',
	'loyalty program "nowhere" does not exist', 'unknown program');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('ann', 'old', 'x6')$$),
	format('LY014: reward "old" is not available | It can be redeemed from -infinity until %s. | Offer only rewards that are active and valid now.',
		   now() - interval '1 day'),
	'a reward past its validity: LY014 with the validity in the detail');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'soon', 'x7')$$, 'LY014',
	'reward "soon" is not available', 'a reward before its validity');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('ann', 'off', 'x8')$$),
	'LY014: reward "off" is not available | The reward is inactive. | Offer only rewards that are active and valid now.',
	'an inactive reward');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('bob', 'vip', 'x9')$$),
	'LY011: reward "vip" is not available for tier "(none)" | The reward is for tiers gold, platinum. | Offer the member only rewards of their tier.',
	'not allowed for tier: a member without a tier');
SELECT throws_ok($$SELECT loyalty.redeem_reward('eve', 'vip', 'x10')$$, 'LY011',
	'reward "vip" is not available for tier "silver"', 'not allowed for tier: another tier');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('bob', 'car', 'x11')$$),
	'LY001: insufficient points | Reward "car" needs 100000 points; member "bob" has 200 available. | Only points usable now count: pending and expired points do not.',
	'insufficient points: LY001 naming the reward');
SELECT results_eq($$SELECT (SELECT count(*) FROM loyalty.ledger), (SELECT count(*) FROM loyalty.reward_redemptions),
						   (SELECT sum(coalesce(stock, 0)) FROM loyalty.rewards)$$,
	$$SELECT entries, redemptions, stock FROM before$$, 'the refused redemptions wrote nothing');

------------------------------------------------------------------------------
-- a redemption: FIFO by soonest expiry, stock, idempotency
------------------------------------------------------------------------------
CREATE TEMP TABLE r1 AS SELECT * FROM loyalty.redeem_reward('ann', 'vip', 'r1');
SELECT results_eq($$SELECT kind::text, points, lots::text, reference COLLATE "default" FROM r1$$,
	$$VALUES ('redeem', -50::bigint, loyalty.lots_add('{}', 50, now() - interval '335 days' + interval '1 year')::text, 'r1')$$,
	'redeem_reward writes a redeem entry that draws from the lot expiring soonest');
SELECT is(loyalty.balance('ann'), 550::bigint, 'ann has 550 points left');
SELECT results_eq($$SELECT r.code, x.member_key COLLATE "default", x.seq, x.redeemed_at, x.cancelled_at FROM loyalty.reward_redemptions x JOIN loyalty.rewards r ON r.id = x.reward_id$$,
	$$SELECT 'vip'::text, 'ann'::text, (SELECT seq FROM r1), now(), NULL::timestamptz$$,
	'the redemption is recorded with its ledger entry');
SELECT is((loyalty.redeem_reward('ann', 'vip', 'r1')).seq, (SELECT seq FROM r1), 'a repeat returns the first entry');
SELECT is((SELECT count(*) FROM loyalty.reward_redemptions), 1::bigint, 'and records no second redemption');
SELECT is(loyalty.balance('ann'), 550::bigint, 'and spends nothing');

-- 50 points left in the first lot, so 100 take 50 from it and 50 from the next
SELECT is((loyalty.redeem_reward('ann', 'mug', 'r2')).lots::text,
	loyalty.lots_add(loyalty.lots_add('{}', 50, now() - interval '335 days' + interval '1 year'), 50, now() - interval '10 days' + interval '1 year')::text,
	'a redemption spanning two lots records both');
SELECT is((SELECT stock FROM loyalty.rewards WHERE code = 'mug'), 1::bigint, 'stock went from 2 to 1');
SELECT is((loyalty.redeem_reward('ann', 'mug', 'r2')).points, -100::bigint, 'repeating the stocked redemption');
SELECT is((SELECT stock FROM loyalty.rewards WHERE code = 'mug'), 1::bigint, 'does not take stock again');

------------------------------------------------------------------------------
-- limits per member and period
------------------------------------------------------------------------------
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('ann', 'mug', 'r3')$$),
	format('LY012: member "ann" reached the limit of reward "mug" | 1 of 1 allowed per month already redeemed (period %s to %s). | A cancelled redemption no longer counts.',
		   date_trunc('month', now()), date_trunc('month', now()) + interval '1 month'),
	'limit reached: LY012 with the period in the detail');
SELECT ok((loyalty.redeem_reward('bob', 'mug', 'r4')).seq IS NOT NULL, 'the limit is per member: bob gets the last mug');
SELECT is((SELECT stock FROM loyalty.rewards WHERE code = 'mug'), 0::bigint, 'no mugs left');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('cat', 'mug', 'r5')$$),
	'LY010: reward "mug" is out of stock |  | Restock with UPDATE loyalty.rewards SET stock = ...; cancellations return stock.',
	'out of stock: LY010');
SELECT is(loyalty.balance('cat'), 200::bigint, 'cat was charged nothing');
UPDATE loyalty.rewards SET stock = 5 WHERE code = 'mug';
SELECT ok((loyalty.redeem_reward('cat', 'mug', 'r5')).seq IS NOT NULL, 'after a restock cat gets one');

SELECT ok((loyalty.redeem_reward('dan', 'pen', 'p1')).seq IS NOT NULL, 'first pen');
SELECT ok((loyalty.redeem_reward('dan', 'pen', 'p2')).seq IS NOT NULL, 'second pen');
SELECT throws_ok($$SELECT loyalty.redeem_reward('dan', 'pen', 'p3')$$, 'LY012',
	'member "dan" reached the limit of reward "pen"', 'a limit for ever: no third pen');
SELECT is(pg_temp.err($$SELECT loyalty.redeem_reward('dan', 'pen', 'p3')$$),
	'LY012: member "dan" reached the limit of reward "pen" | 2 of 2 allowed in total already redeemed. | A cancelled redemption no longer counts.',
	'the lifetime limit''s detail has no period');
SELECT is(loyalty.balance('dan'), 180::bigint, 'dan paid for two pens only');

------------------------------------------------------------------------------
-- references
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.redeem_reward('bob', 'vip', 'r1')$$, 'LY011', NULL,
	'a reference of another member is not a conflict: bob''s request meets the reward''s own checks');
SELECT throws_ok($$SELECT loyalty.redeem_reward('ann', 'pen', 'r1')$$, 'LY004',
	'reference "r1" was already used for a different redeem in program "shop"', 'a reference of another reward');
SELECT ok((loyalty.redeem('eve', 10, 'plain-1')).seq IS NOT NULL, 'a plain redeem with a reference');
SELECT throws_ok($$SELECT loyalty.redeem_reward('eve', 'pen', 'plain-1')$$, 'LY004',
	'reference "plain-1" was already used for a different redeem in program "shop"',
	'redeem_reward does not pass off a plain redemption as its own');
SELECT throws_ok($$SELECT loyalty.redeem('ann', 99, 'r2')$$, 'LY004',
	'reference "r2" was already used for a different redeem in program "shop"',
	'and a plain redeem cannot reuse a reward''s reference with other points');
SELECT ok((loyalty.redeem_reward('ann', 'bag', 'r1', 'other')).seq IS NOT NULL, 'references are per program');
SELECT is(loyalty.balance('ann', program => 'other'), 90::bigint, 'the other program charged its own reward');
SELECT ok((loyalty.redeem_reward(42::bigint, 'pen', 'k1')).seq IS NOT NULL, 'any key type through the anyelement version');
SELECT throws_ok($$SELECT loyalty.redeem_reward(NULL::text, 'pen', 'k2')$$, '22004',
	'member key must not be null', 'null member');
SELECT is(loyalty.balance(42::bigint), 190::bigint, 'member 42 paid for a pen');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() finds every balance in line with the ledger');

SELECT * FROM finish();
ROLLBACK;
