-- Earning, redeeming, adjusting, statements and balances as of any instant.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\set SHOW_CONTEXT never
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_interval, is_default)
VALUES ('shop', 'Shop Points', 'after', '20 years', true);
SELECT count(*) FROM (SELECT loyalty.enroll('alice')) s;

-- Earn at explicit instants (e.g. imported purchases); returns the ledger entry.
SELECT kind, points, lots, effective_at FROM loyalty.earn('alice', 100, 'order-1', '2000-01-01 10:00:00+00');
SELECT kind, points, lots, effective_at FROM loyalty.earn('alice', 300, 'order-2', '2020-01-01 10:00:00+00');

-- The same reference again credits nothing and returns the first entry.
SELECT kind, points, reference FROM loyalty.earn('alice', 300, 'order-2', '2020-01-01 10:00:00+00');
-- ...but a different amount under the same reference is a conflict.
SELECT loyalty.earn('alice', 999, 'order-2', '2020-01-01 10:00:00+00');

-- Balance as of instants around the first lot's expiry (the instant order-2 is earned).
SELECT loyalty.balance('alice', '2020-01-01 09:59:59.999999+00') AS before_expiry,
       loyalty.balance('alice', '2020-01-01 10:00:00+00') AS at_expiry;

-- Redeem: FIFO, idempotent on reference.
SELECT kind, points, lots FROM loyalty.redeem('alice', 120, 'reward-1');
SELECT kind, points, lots FROM loyalty.redeem('alice', 120, 'reward-1');
SELECT loyalty.balance('alice', '2030-01-01 00:00:00+00');

-- Not enough points: LY001 and nothing written.
SELECT count(*) AS entries_before FROM loyalty.ledger;
SELECT loyalty.redeem('alice', 1000, 'reward-2');
SELECT count(*) AS entries_after FROM loyalty.ledger;

-- Bad arguments.
SELECT loyalty.earn('alice', -10);
SELECT loyalty.earn('alice', 0);
SELECT loyalty.redeem('alice', NULL);

-- The statement: every movement with a running total.
SELECT kind, points, running_total, reference, reason, expires_at
  FROM loyalty.statement('alice');

-- Adjustments need a reason.
SELECT kind, points, reason FROM loyalty.adjust('alice', 20, 'goodwill: late delivery');
SELECT loyalty.adjust('alice', -5, '');
SELECT kind, points, lots FROM loyalty.adjust('alice', -5, 'correction');
SELECT loyalty.balance('alice');

-- The ledger is append-only.
UPDATE loyalty.ledger SET points = 0;
DELETE FROM loyalty.ledger;
TRUNCATE loyalty.ledger;

-- verify() lists members whose balance disagrees with the ledger.
SELECT * FROM loyalty.verify();
UPDATE loyalty.members SET balance = loyalty.lots_add(balance, 1, 'infinity') WHERE member_key = 'alice';
SELECT member_key, ledger_sum, balance_total, problem FROM loyalty.verify();
