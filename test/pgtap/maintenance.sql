\ir preamble.psql
CREATE EXTENSION loyalty;
SET TimeZone = 'UTC';
SELECT plan(16);

INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, pending_interval,
							  time_zone, is_default)
VALUES ('shop', 'Shop', 'after', '1 month', '14 days', 'Europe/Berlin', true);
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric, at timestamptz);
SELECT loyalty.track_purchases('orders', 'customer', 'total', 'at');
-- five members: 10 points each on 1 March 2025, pending until 15 March,
-- expiring 15 April; m5 buys again in April
INSERT INTO orders SELECT i, 'm' || i, 10, '2025-03-01 12:00+00' FROM generate_series(1, 5) i;
INSERT INTO orders VALUES (6, 'm5', 20, '2025-04-10 12:00+00');

CREATE TEMP TABLE before_maintenance AS
SELECT m.member_key, t.at, loyalty.balance(m.member_key, t.at) AS available,
	   (loyalty.balance_detail(m.member_key, t.at)).pending
  FROM loyalty.members m,
	   (VALUES ('2025-03-10'::timestamptz), ('2025-03-20'), ('2025-04-20'), ('2025-06-01')) AS t(at);

SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind IN ('release', 'expire')), 0::bigint,
		  'purchases alone write no release or expiry');
SELECT throws_ok($$SELECT * FROM loyalty.run_maintenance(now() + interval '1 day')$$, '22023',
				 'maintenance cannot run ahead of time', 'as_of in the future is refused');
SELECT throws_ok($$SELECT * FROM loyalty.run_maintenance(now(), 0)$$, '22023',
				 'batch_size must be positive', 'batch_size 0 is refused');

-- 20 March: the pending points are released (m5's April points are not due)
SELECT is((SELECT array_agg(row(task, members, entries, points)::text ORDER BY task)
			 FROM loyalty.run_maintenance('2025-03-20', batch_size => 2)),
		  ARRAY[row('expire', 5, 0, 0)::text, row('inactivity', 0, 0, 0)::text,
				row('release', NULL, 5, NULL)::text, row('tier', 0, 0, NULL)::text],
		  'on 20 March: 5 members, 5 release entries, in batches of 2');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'release' AND effective_at = '2025-03-15 12:00+00'),
		  5::bigint, 'each release is effective when the pending period ended');
SELECT is((SELECT sum(entries) FROM loyalty.run_maintenance('2025-03-20')), 0::numeric,
		  'a second run on the same instant does nothing');

-- 1 June: March points expired on 15 April; m5's April points on 24 May
SELECT is((SELECT row(members, entries, points)::text FROM loyalty.run_maintenance('2025-06-01')
			WHERE task = 'expire'), row(5, 6, 70)::text,
		  'on 1 June: 6 expiry entries over 5 members, 70 points');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'release'), 6::bigint,
		  'm5''s April points were released first, then expired');
SELECT is((SELECT effective_at FROM loyalty.ledger WHERE kind = 'expire'
			ORDER BY effective_at DESC LIMIT 1),
		  '2025-05-24 12:00+00'::timestamptz, 'expiry is effective at the lot''s own instant: 14 days + 1 month after 14:00 CEST');
SELECT is((SELECT count(*) FROM loyalty.members WHERE next_event_at IS NOT NULL),
		  0::bigint, 'no member has anything left to settle');
SELECT is((SELECT sum(entries) FROM loyalty.run_maintenance('2025-06-01')), 0::numeric,
		  'idempotent');

SELECT is((SELECT count(*) FROM before_maintenance b
			WHERE b.available <> loyalty.balance(b.member_key, b.at)
			   OR b.pending <> (loyalty.balance_detail(b.member_key, b.at)).pending),
		  0::bigint, 'every balance as of every instant is the same after maintenance');
SELECT is((SELECT count(*) FROM loyalty.verify()), 0::bigint, 'verify() finds nothing wrong');

-- Member rows are rewritten by every purchase and maintenance batch: no index
-- may cover a column they change, so that the updates stay HOT.
SELECT is_empty($$SELECT indexdef FROM pg_indexes
				   WHERE schemaname = 'loyalty' AND tablename = 'members'
					 AND indexdef ~ '(balance|next_event_at|activity|last_activity_at|first_purchase_at)'$$,
				'no index on members covers a column that purchases or maintenance change');
SELECT ok((SELECT reloptions FROM pg_class WHERE oid = 'loyalty.members'::regclass)
		  @> '{fillfactor=60}', 'members pages keep room for HOT updates');
-- ... and the maintenance batches did update in place (this transaction's
-- statistics: two runs above wrote new balances, all of them HOT)
SELECT ok(n_tup_upd > 0 AND n_tup_hot_upd = n_tup_upd,
		  format('every member update in this test was HOT (%s of %s)', n_tup_hot_upd, n_tup_upd))
  FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.members'::regclass;
SELECT * FROM finish();
ROLLBACK;
