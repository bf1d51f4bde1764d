\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(57);

-- A rolling 12-month ladder in Berlin: tiers are valid 12 months, then go
-- down one step at a time.
INSERT INTO loyalty.programs (code, name, currency, time_zone, tier_window, tier_window_months,
							  tier_validity, tier_validity_months, tier_downgrade, is_default)
VALUES ('club', 'Club', 'EUR', 'Europe/Berlin', 'rolling', 12, 'months', 12, 'one_step', true);
INSERT INTO loyalty.tiers (program_id, name, rank, min_spend, min_orders, min_points, combine,
						   never_downgrade)
SELECT id, t.* FROM loyalty.programs,
	(VALUES ('Bronze', 0, NULL::numeric, NULL::bigint, NULL::bigint, 'any', false),
			('Silver', 1, NULL, NULL, 500, 'any', false),
			('Gold', 2, NULL, 20, 1000, 'any', false),
			('Platinum', 3, 5000, 30, NULL, 'all', true)) AS t;
-- tier multipliers are earning rules
INSERT INTO loyalty.earning_rules (program_id, name, kind, tier, multiplier)
SELECT id, 'gold double', 'multiplier', 'Gold', 2 FROM loyalty.programs;

CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric, status text,
					 at timestamptz);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at', status_column => 'status');

------------------------------------------------------------------------------
-- upgrades happen at once, with history and events
------------------------------------------------------------------------------
INSERT INTO orders VALUES (1, 'ann', 100, 'paid', '2024-03-10 12:00+00');
SELECT is(loyalty.tier('ann', '2024-03-10 12:00+00'), 'Bronze', 'the first purchase gives the base tier');
SELECT is((SELECT tier_valid_until FROM loyalty.members WHERE member_key = 'ann'), NULL,
		  'the base tier has no end');
INSERT INTO orders VALUES (2, 'ann', 450, 'paid', '2024-04-02 12:00+00');
SELECT is(loyalty.tier('ann', '2024-04-02 12:00+00'), 'Silver', '550 points in the window: Silver at once');
SELECT is((SELECT tier_valid_until FROM loyalty.members WHERE member_key = 'ann'),
		  '2025-04-02 12:00+00'::timestamptz, 'Silver is valid 12 months from the upgrade');
SELECT is(loyalty.tier('ann', '2024-03-31'), 'Bronze', 'as of before the upgrade: Bronze (history)');
SELECT is(loyalty.tier('ann', '2024-03-01'), NULL, 'as of before any purchase: no tier');

SELECT is((SELECT message FROM loyalty.tier_progress('ann', '2024-04-02 12:00+00')),
		  '450 more points or 18 more orders to reach Gold', 'progress names every way to Gold');
SELECT is((SELECT row(tier, next_tier, points, orders, missing_points, missing_orders)::text
			 FROM loyalty.tier_progress('ann', '2024-04-02 12:00+00')),
		  row('Silver', 'Gold', 550, 2, 450, 18)::text, 'progress in numbers');
SELECT is((SELECT row(window_from, window_to, drops_at, drops_points)::text
			 FROM loyalty.tier_progress('ann', '2024-04-02 12:00+00')),
		  row('2023-05-01'::date, '2024-04-01'::date, '2024-04-30 22:00+00'::timestamptz, 0)::text,
		  'the rolling window is May 2023 to April 2024; May 2023 (empty) leaves at midnight Berlin on 1 May');

INSERT INTO orders VALUES (3, 'ann', 450, 'paid', '2024-05-05 12:00+00');
SELECT is(loyalty.tier('ann', '2024-05-05 12:00+00'), 'Gold', '1000 points: Gold at once');
SELECT is((SELECT points FROM loyalty.ledger WHERE reference = '3'), 450::bigint,
		  'the purchase that reaches Gold earns at the Silver rate');
INSERT INTO orders VALUES (4, 'ann', 10, 'paid', '2024-05-06 12:00+00');
SELECT is((SELECT points FROM loyalty.ledger WHERE reference = '4'), 20::bigint,
		  'the next purchase earns the Gold multiplier');
SELECT is((SELECT array_agg(row(from_tier, to_tier, reason)::text ORDER BY effective_at)
			 FROM loyalty.tier_history h JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'ann'),
		  ARRAY[row(NULL, 'Bronze', 'upgrade')::text, row('Bronze', 'Silver', 'upgrade')::text,
				row('Silver', 'Gold', 'upgrade')::text],
		  'tier_history has every change with its reason');
SELECT is((SELECT array_agg(row(from_tier, to_tier)::text ORDER BY id) FROM loyalty.tier_events WHERE member_key = 'ann'),
		  ARRAY[row('Bronze', 'Silver')::text, row('Silver', 'Gold')::text],
		  'one event per new tier, for the application; none for the base tier a new member starts in');
SELECT is((SELECT count(*) FROM loyalty.tier_events WHERE handled_at IS NULL), 2::bigint,
		  'events wait to be handled');
SELECT is((SELECT message FROM loyalty.tier_progress('ann', '2024-05-06 12:00+00')),
		  '26 more orders and 3990.00 EUR more in purchases to reach Platinum',
		  'ALL thresholds: progress joins what is missing with "and"');

------------------------------------------------------------------------------
-- refunds reduce qualification at once; the tier waits for its review
------------------------------------------------------------------------------
UPDATE orders SET status = 'refunded' WHERE id = 3;
SELECT is((SELECT points FROM loyalty.tier_progress('ann', '2024-05-07')), 570::bigint,
		  'a refund takes its points out of the window');
SELECT is((SELECT orders FROM loyalty.tier_progress('ann', '2024-05-07')), 3::bigint,
		  '... and its order');
SELECT is((SELECT spend FROM loyalty.tier_progress('ann', '2024-05-07')), 560::numeric,
		  '... and its spend');
SELECT is(loyalty.tier('ann', '2024-05-07'), 'Gold', 'the tier stays until its validity ends');
INSERT INTO orders VALUES (5, 'ann', 0.4, 'paid', '2024-05-07 12:00+00');
SELECT is((SELECT orders FROM loyalty.tier_progress('ann', '2024-05-07')), 3::bigint,
		  'a purchase that earns no points (0.40 at Gold''s double rate is 0.8, floored to 0) does not count');
UPDATE orders SET total = 20 WHERE id = 4;
SELECT is((SELECT row(points, spend)::text FROM loyalty.tier_progress('ann', '2024-05-07')),
		  row(590, 570)::text, 'an amount change moves spend and points by the difference');

------------------------------------------------------------------------------
-- downgrades at the end of the validity, one step at a time
------------------------------------------------------------------------------
-- Gold valid until 2025-05-05 12:00 UTC; by then only 2024-06.. counts
SELECT is(loyalty.tier('ann', '2025-05-05 11:59+00'), 'Gold', 'Gold until the last minute');
SELECT is(loyalty.tier('ann', '2025-05-05 12:00+00'), 'Silver',
		  'one step down at the end of the validity, with no job run');
SELECT is(loyalty.tier('ann', '2026-05-05 12:00+00'), 'Bronze', 'and another step a year later');
SELECT is((SELECT count(*) FROM loyalty.tier_history h JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'ann' AND reason = 'downgrade'), 0::bigint,
		  'nothing was written to answer');
SELECT is((SELECT row(members, entries)::text FROM loyalty.run_maintenance('2025-06-01') WHERE task = 'tier'),
		  row(1, 1)::text, 'run_maintenance writes the due downgrade');
SELECT is((SELECT row(from_tier, to_tier, effective_at)::text FROM loyalty.tier_history h
			 JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'ann' AND reason = 'downgrade'),
		  row('Gold', 'Silver', '2025-05-05 12:00+00'::timestamptz)::text,
		  'effective when the validity ended, not when maintenance ran');
SELECT is((SELECT row(members, entries)::text FROM loyalty.run_maintenance('2025-06-01') WHERE task = 'tier'),
		  row(0, 0)::text, 'idempotent');
SELECT is(loyalty.tier('ann', '2025-05-10'), 'Silver', 'tier() after maintenance agrees');
SELECT is(loyalty.tier('ann', '2025-05-04'), 'Gold', '... and so does history');
SELECT is((SELECT to_tier FROM loyalty.tier_events WHERE member_key = 'ann' ORDER BY id DESC LIMIT 1),
		  'Silver', 'the downgrade is an event too');

-- a member who keeps qualifying renews
INSERT INTO orders SELECT 100 + i, 'bob', 60, 'paid', '2024-01-01 12:00+00'::timestamptz + i * interval '15 days'
  FROM generate_series(1, 24) i;
SELECT is(loyalty.tier('bob', '2024-12-31'), 'Gold', '24 orders in a year: Gold by orders');
SELECT is((SELECT array_agg(row(to_tier, effective_at)::text ORDER BY h.id)
			 FROM loyalty.tier_history h JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'bob'),
		  ARRAY[row('Bronze', '2024-01-16 12:00+00'::timestamptz)::text,
				row('Silver', '2024-05-15 12:00+00'::timestamptz)::text,
				row('Gold', '2024-09-12 12:00+00'::timestamptz)::text],
		  'one INSERT of a year of orders climbs step by step, each upgrade at the purchase that reached it');
SELECT lives_ok($$SELECT * FROM loyalty.run_maintenance('2025-12-31')$$, 'maintenance runs');
SELECT is((SELECT string_agg(reason || ':' || to_tier, ',' ORDER BY h.id) FROM loyalty.tier_history h
			 JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'bob' AND h.effective_at > '2024-12-31'),
		  'downgrade:Silver', 'no orders after 2024: down from Gold to Silver at the review in 2025');

------------------------------------------------------------------------------
-- manual tiers, grace, never-downgrade, downgrade to the qualified tier
------------------------------------------------------------------------------
SELECT loyalty.enroll('cy');
SELECT throws_ok($$SELECT loyalty.set_tier('cy', 'Diamond', now() + interval '1 day')$$, 'LY007',
				 'tier "Diamond" does not exist in loyalty program "club"', 'unknown tier');
SELECT throws_ok($$SELECT loyalty.set_tier('cy', 'Gold', '2020-01-01')$$, '22023',
				 'a manual tier must last into the future', 'a manual tier ending in the past');
SELECT is((loyalty.set_tier('cy', 'Gold', now() + interval '30 days', 'VIP from the shop')).tier,
		  'Gold', 'set_tier assigns Gold');
SELECT is(loyalty.tier('cy', now() + interval '29 days'), 'Gold', 'manual Gold holds until its end');
SELECT is(loyalty.tier('cy', now() + interval '30 days'), 'Bronze',
		  'then the qualified tier: Bronze, the base tier, although cy never bought');
SELECT is((SELECT detail FROM loyalty.tier_history h JOIN loyalty.members m ON m.program_id = h.program_id AND m.member_key = h.member_key
			WHERE m.member_key = 'cy'), 'VIP from the shop', 'the reason is kept');

INSERT INTO loyalty.programs (code, name, time_zone, tier_window, tier_validity,
							  tier_validity_period, tier_downgrade, tier_grace)
VALUES ('year', 'Calendar', 'America/New_York', 'calendar_year', 'period_end', 'year',
		'qualified', '1 month');
INSERT INTO loyalty.tiers (program_id, name, rank, min_points, never_downgrade)
SELECT id, t.* FROM loyalty.programs,
	(VALUES ('Blue', 0, NULL::bigint, false), ('Silver', 1, 100, false), ('Gold', 2, 300, false),
			('Black', 3, 5000, true)) AS t
 WHERE code = 'year';
CREATE TABLE sales (id bigint PRIMARY KEY, who text, amount numeric, at timestamptz);
SELECT loyalty.track_purchases('sales', 'who', 'amount', 'at', program => 'year');
INSERT INTO sales VALUES (1, 'dee', 350, '2024-12-31 23:30+00');
SELECT is(loyalty.tier('dee', '2025-01-01', 'year'), 'Gold',
		  '23:30 UTC on 31 December is still 2024 in New York: Gold for 2024');
SELECT is((SELECT tier_valid_until FROM loyalty.members WHERE member_key = 'dee'),
		  '2025-01-01 05:00+00'::timestamptz, 'valid until the end of the calendar year in New York');
SELECT is((SELECT row(points, window_from)::text FROM loyalty.tier_progress('dee', '2025-01-02', 'year')),
		  row(0, '2025-01-01'::date)::text, 'the calendar-year window starts again in January');
SELECT is((SELECT row(drops_at, drops_points)::text FROM loyalty.tier_progress('dee', '2024-12-31 23:30+00', 'year')),
		  row('2025-01-01 05:00+00'::timestamptz, 350)::text,
		  'in 2024 the whole year''s 350 points leave the window at New Year');
SELECT is(loyalty.tier('dee', '2025-01-31 12:00+00', 'year'), 'Gold', 'one month of grace after the validity');
SELECT is(loyalty.tier('dee', '2025-02-01 05:00+00', 'year'), 'Blue',
		  'after the grace: straight down to the qualified tier (Blue), not one step');

INSERT INTO sales VALUES (2, 'eve', 6000, '2024-06-01 12:00+00');
SELECT is(loyalty.tier('eve', '2024-06-01 12:00+00', 'year'), 'Black', 'Black at 5000 points');
SELECT is((SELECT tier_review_at FROM loyalty.members WHERE member_key = 'eve'), NULL,
		  'a never-downgrade tier has no review');
SELECT is(loyalty.tier('eve', '2030-01-01', 'year'), 'Black', 'and is kept for good');

INSERT INTO loyalty.programs (code, name, tier_window) VALUES ('life', 'Lifetime', 'lifetime');
INSERT INTO loyalty.tiers (program_id, name, rank, min_orders)
SELECT id, 'Regular', 1, 3 FROM loyalty.programs WHERE code = 'life';
CREATE TABLE visits (id bigint PRIMARY KEY, who text, amount numeric, at timestamptz);
SELECT loyalty.track_purchases('visits', 'who', 'amount', 'at', program => 'life');
INSERT INTO visits VALUES (1, 'fay', 1, '2015-01-01'), (2, 'fay', 1, '2020-01-01');
SELECT is(loyalty.tier('fay', '2025-01-01', 'life'), NULL, 'lifetime: two orders are not enough');
INSERT INTO visits VALUES (3, 'fay', 1, '2025-01-01');
SELECT is(loyalty.tier('fay', '2025-01-01', 'life'), 'Regular',
		  'lifetime: the third order ten years after the first qualifies');
SELECT is((SELECT array_agg(row(from_tier, to_tier)::text) FROM loyalty.tier_events WHERE member_key = 'fay'),
		  ARRAY[row(NULL, 'Regular')::text], 'a first tier with a threshold is an event');

-- a new customer whose first purchase qualifies for Silver goes straight
-- there: news
INSERT INTO orders VALUES (900, 'gus', 600, 'paid', '2024-05-06 12:00+00');
SELECT is((SELECT array_agg(row(from_tier, to_tier)::text ORDER BY id) FROM loyalty.tier_history WHERE member_key = 'gus'),
		  ARRAY[row(NULL, 'Silver')::text], 'gus: from no tier to Silver, in history');
SELECT is((SELECT array_agg(row(from_tier, to_tier, reason)::text ORDER BY id) FROM loyalty.tier_events WHERE member_key = 'gus'),
		  ARRAY[row(NULL, 'Silver', 'upgrade')::text], 'gus: and an event');

SELECT is((SELECT count(*) FROM loyalty.verify()), 0::bigint, 'verify() finds nothing wrong');

SELECT * FROM finish();
ROLLBACK;
