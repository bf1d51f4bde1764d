// examples/shop/shop.js: a small shop that earns and spends loyalty points.
//
// It connects as the application (a member of loyalty_app; PG* environment
// variables, see ./run) after a DBA ran setup.sql, and uses only loyalty's
// public functions and its own orders table:
//   - web orders as single INSERTs (each its own transaction), a nightly
//     batch of store orders with COPY (pg-copy-streams);
//   - a customer's balance, tier progress, statement and lots;
//   - a reward redeemed, and the same request retried: one effect;
//   - LISTEN loyalty_tier for tier changes, and the outbox for missed ones;
//   - errors turned into messages by SQLSTATE (errors.js).
// Every run makes new customers (uuids), so it can run again on the same
// database.  Program code 'shop' is passed to every call.

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { isTransient, userMessage } from './errors.js';

const PROGRAM = 'shop';
const DAY = 86400e3;
const run = process.env.SHOP_RUN ?? Date.now().toString(36);

// node-postgres parses the built-in types by OID; any other type arrives as
// text.  What loyalty returns becomes:
//   bigint (points)      -> string: up to 2^63, more than a JS number holds
//   numeric (amounts)    -> string: keeps the scale ('560.49', '15.20')
//   timestamptz          -> Date; 'infinity' -> Infinity, '-infinity' -> -Infinity
//   uuid                 -> string, lower case
//   loyalty.lots         -> string (its OID differs per database); for rows,
//                           SELECT * FROM loyalty.lots_entries(...)
// Points are converted where they are computed with: BigInt(row.points).
//
// A pool for the shop's calls (a call retried after a broken connection
// gets another one), and a connection of its own for LISTEN.
const db = new pg.Pool({ application_name: 'loyalty-shop', max: 4 });
db.on('error', (err) => console.log(`  idle connection lost: ${err.code ?? err.message}`));
const listener = new pg.Client({ application_name: 'loyalty-shop-listener' });

const customers = { ann: randomUUID(), ben: randomUUID(), cho: randomUUID() };
const nameOf = Object.fromEntries(Object.entries(customers).map(([n, k]) => [k, n]));
const ago = (days) => new Date(Date.now() - days * DAY);
const iso = (d) => (d instanceof Date ? d.toISOString() : String(d));

// An amount as loyalty returns it (a numeric string: '137.4' from the
// purchase activity, which keeps 4 decimals and prints no trailing zeros)
// shown with 2 decimals, without going through a floating-point number.
function money(s) {
  const [int, frac = ''] = String(s).split('.');
  return `${int}.${frac.padEnd(2, '0')}`;
}

// A call that may be retried as it is: on a transient error, run it again.
// Safe for loyalty's functions because each carries a reference.
async function withRetry(what, fn, tries = 3) {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= tries || !isTransient(err)) throw err;
      console.log(`  ${what}: ${err.code}, retrying (${i})`);
    }
  }
}

// Run fn; on a database error print what the user is told and the SQLSTATE.
async function attempt(what, fn) {
  try {
    return await fn();
  } catch (err) {
    if (!err.code) throw err;
    console.log(`  ${what}: refused, ${err.code} "${err.message}" -> "${userMessage(err)}"`);
    return undefined;
  }
}

// ---------------------------------------------------------------- orders

// One web order, its own transaction (autocommit).  The amount is a string,
// so that 240.50 stays 240.50; the time a Date.  ON CONFLICT DO NOTHING
// makes a retried order harmless: the row is there once, and loyalty's
// trigger awards only rows that were inserted.
async function webOrder(orderNo, name, amount, at) {
  const res = await withRetry(`order ${orderNo}`, () => db.query(
    `INSERT INTO shop.orders (order_no, customer, amount, channel, ordered_at)
     VALUES ($1, $2, $3, 'web', $4)
     ON CONFLICT (order_no) DO NOTHING`,
    [orderNo, customers[name], amount, at]));
  console.log(`  order ${orderNo} ${name} ${amount} EUR at ${iso(at)}: ` +
    (res.rowCount === 1 ? 'recorded' : 'already recorded, nothing awarded again'));
}

// The nightly batch: the tills' orders of the day, in one COPY and one
// transaction.  Run twice, the primary key refuses the second (23505) and
// the transaction leaves nothing behind.
async function nightlyBatch(rows) {
  const csv = rows.map((r) => [r.orderNo, customers[r.name], r.amount, 'store', iso(r.at)].join(',') + '\n');
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const copy = client.query(copyFrom(
      'COPY shop.orders (order_no, customer, amount, channel, ordered_at) FROM STDIN WITH (FORMAT csv)'));
    await pipeline(Readable.from(csv), copy);
    await client.query('COMMIT');
    return copy.rowCount;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

// ------------------------------------------------------------- customers

// Keys are passed as uuid ($1::uuid): loyalty stores a key as its text, and
// a uuid's text is lower case.  The cast also picks the anyelement version
// of a function; an uncast parameter is text.
async function showCustomer(name) {
  const key = customers[name];
  const { rows: [b] } = await db.query(
    'SELECT available, pending, expiring_30d, debt FROM loyalty.balance_detail($1::uuid, program => $2)',
    [key, PROGRAM]);
  console.log(`  ${name}: available ${b.available}, pending ${b.pending}, ` +
    `expiring within 30 days ${b.expiring_30d}, debt ${b.debt}`);

  const { rows: [t] } = await db.query(
    `SELECT tier, next_tier, spend, missing_spend, message
       FROM loyalty.tier_progress($1::uuid, program => $2)`, [key, PROGRAM]);
  console.log(`  ${name}: tier ${t.tier}, spend ${money(t.spend)} EUR in 12 months (numeric '${t.spend}')` +
    (t.next_tier ? `, ${money(t.missing_spend)} EUR more for ${t.next_tier}` : '') + ` ("${t.message}")`);

  // the statement over all time: '-infinity' and Infinity both work as
  // timestamptz parameters
  const { rows } = await db.query(
    `SELECT effective_at, kind, points, running_total, reference, expires_at
       FROM loyalty.statement($1::uuid, $2, $3, program => $4)`,
    [key, '-infinity', Infinity, PROGRAM]);
  console.log(`  ${name}: statement`);
  for (const r of rows) {
    console.log(`    ${iso(r.effective_at)} ${r.kind.padEnd(7)} ${r.points.padStart(5)} ` +
      `${r.running_total.padStart(5)}  ${r.reference ?? ''}` +
      (r.expires_at === Infinity ? '  (never expires)' : ''));
  }

  // lots: as text, and as rows with a real expiry each.  These are the
  // stored lots: a pending lot whose release instant has passed is usable
  // (balance counts it) until a write or run_maintenance records the release.
  const { rows: [l] } = await db.query(
    'SELECT loyalty.member_lots($1::uuid, program => $2)::text AS lots', [key, PROGRAM]);
  console.log(`  ${name}: lots ${l.lots}`);
  const { rows: lots } = await db.query(
    `SELECT e.state, e.release_at, e.expires_at, e.points
       FROM loyalty.lots_entries(loyalty.member_lots($1::uuid, program => $2)) AS e`, [key, PROGRAM]);
  const now = Date.now();
  for (const e of lots) {
    const until = e.expires_at === Infinity ? 'never expires (Infinity)' : `expires ${iso(e.expires_at)}`;
    const state = e.state === 'pending' && e.release_at <= now ? 'usable' : e.state;
    console.log(`    lot: ${state} ${e.points} points, ` +
      (e.release_at ? `release ${iso(e.release_at)}, ` : '') + until);
  }
}

// -------------------------------------------------------------- rewards

// Redeem a reward under a reference that identifies the request (here the
// customer's basket).  The same call again returns the first ledger entry.
async function redeemReward(name, reward, reference) {
  const { rows: [r] } = await withRetry(`redeem ${reference}`, () => db.query(
    `SELECT kind, points, effective_at, reference
       FROM loyalty.redeem_reward($1::uuid, $2, $3, program => $4)`,
    [customers[name], reward, reference, PROGRAM]));
  return r;
}

// ------------------------------------------------------------------ main

// Notifications arrive on the listening connection whenever the server
// sends them, after the writing transaction commits: a real shop would send
// the "you reached Silver" e-mail here.  This one keeps them for the end.
const notices = [];
listener.on('notification', (msg) => {
  const n = JSON.parse(msg.payload);
  if (n.program !== PROGRAM || !nameOf[n.member]) return;   // another program, or another run
  notices.push(n);
});

await listener.connect();
await listener.query('LISTEN loyalty_tier');
const { rows: [who] } = await db.query('SELECT current_user AS name, pg_has_role(current_user, $1, $2) AS app',
  ['loyalty_app', 'MEMBER']);
console.log(`== shop run ${run} as ${who.name} (loyalty_app: ${who.app})`);
for (const [name, key] of Object.entries(customers)) console.log(`customer ${name} ${key}`);

console.log('== web orders: one INSERT each');
const web = [
  [`W-${run}-1`, 'ann', '120.00', ago(40)],
  [`W-${run}-2`, 'ann', '240.50', ago(30)],
  [`W-${run}-3`, 'ann', '199.99', ago(20)],
  [`W-${run}-4`, 'ben', '35.00', ago(25)],
];
for (const order of web) await webOrder(...order);
console.log('== the shop retries order 3 (its response was lost)');
await webOrder(...web[2]);

console.log('== nightly batch: yesterday\'s store orders with COPY');
const yesterday = new Date(Math.floor(Date.now() / DAY) * DAY - DAY / 4);   // 18:00 UTC yesterday
const batch = [
  { orderNo: `S-${run}-1`, name: 'ann', amount: '15.20', at: yesterday },
  { orderNo: `S-${run}-2`, name: 'ben', amount: '89.90', at: yesterday },
  { orderNo: `S-${run}-3`, name: 'cho', amount: '42.00', at: yesterday },
  { orderNo: `S-${run}-4`, name: 'cho', amount: '7.35', at: new Date(yesterday.getTime() + 3600e3) },
  { orderNo: `S-${run}-5`, name: 'ben', amount: '12.50', at: yesterday },
];
console.log(`  nightly batch: ${await nightlyBatch(batch)} orders copied`);
console.log('== the batch job runs again by mistake');
await attempt('nightly batch again', () => nightlyBatch(batch));

console.log('== customers');
for (const name of Object.keys(customers)) await showCustomer(name);

console.log('== balances as of other instants (timestamptz parameters)');
for (const [label, at] of [['35 days ago', ago(35)], ['now', new Date()], ['in 2 years', ago(-730)]]) {
  const { rows: [r] } = await db.query('SELECT loyalty.balance($1::uuid, $2, $3) AS points',
    [customers.ann, at, PROGRAM]);
  console.log(`  ann ${label}: ${r.points}`);
}

console.log('== ann redeems a coffee; the request is retried with the same reference');
const balance = async (name) => (await db.query('SELECT loyalty.balance($1::uuid, program => $2) AS points',
  [customers[name], PROGRAM])).rows[0].points;
const before = BigInt(await balance('ann'));
const ref = `basket-${run}-ann`;
const first = await redeemReward('ann', 'coffee', ref);
console.log(`  redeem ${ref}: ${first.kind} ${first.points} at ${iso(first.effective_at)}`);
const again = await redeemReward('ann', 'coffee', ref);
const same = again.points === first.points && again.effective_at.getTime() === first.effective_at.getTime();
console.log(`  retry  ${ref}: ${again.kind} ${again.points} at ${iso(again.effective_at)}: ` +
  (same ? 'the first redemption, nothing spent again' : 'A SECOND REDEMPTION'));
const after = BigInt(await balance('ann'));
console.log(`  ann: available ${after} (${before - after} spent)`);

console.log('== refusals, as the customer sees them');
await attempt('ann, the sold-out mug', () => redeemReward('ann', 'mug', `basket-${run}-ann-2`));
await attempt('cho, a coffee with points still pending', () => redeemReward('cho', 'coffee', `basket-${run}-cho`));
await attempt('ben, a reward that does not exist', () => redeemReward('ben', 'tea', `basket-${run}-ben`));
await attempt('ann, the coffee\'s reference for another redemption', () => db.query(
  'SELECT * FROM loyalty.redeem($1::uuid, 10, $2, program => $3)', [customers.ann, ref, PROGRAM]));
await attempt('ann\'s key in upper case, as text', () => db.query(
  'SELECT loyalty.balance($1, program => $2)', [customers.ann.toUpperCase(), PROGRAM]));
const { rows: [upper] } = await db.query('SELECT loyalty.balance($1::uuid, program => $2) AS points',
  [customers.ann.toUpperCase(), PROGRAM]);
console.log(`  ann's key in upper case, as uuid: ${upper.points}`);
await attempt('a customer number that is not a uuid', () => db.query(
  'SELECT loyalty.balance($1::uuid, program => $2)', ['ann', PROGRAM]));
await attempt('reading the ledger directly', () => db.query('SELECT count(*) FROM loyalty.ledger'));

console.log('== tier changes: notifications, and the outbox');
// this run makes 1 change worth telling: ann reaches Silver (each new
// customer's base tier, Member, is in tier_history but sends nothing)
for (let waited = 0; notices.length < 1 && waited < 5000; waited += 100) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
console.log(`  ${notices.length} notifications for this run`);
for (const n of notices) {
  console.log(`  tier notice: ${nameOf[n.member]} ${n.from ?? '(none)'} -> ${n.to} (${n.reason}), event ${n.event_id}`);
}
// Mark what was notified as handled; whatever of this run's is left in the
// outbox was missed (the listener was down, say) and is handled now.
await db.query('UPDATE loyalty.tier_events SET handled_at = now() WHERE id = ANY ($1::bigint[])',
  [notices.map((n) => n.event_id)]);
const { rows: missed } = await db.query(
  `UPDATE loyalty.tier_events SET handled_at = now()
    WHERE handled_at IS NULL AND program_code = $1 AND member_key = ANY ($2::text[])
   RETURNING id, member_key, from_tier, to_tier, reason`,
  [PROGRAM, Object.values(customers)]);
console.log(`  outbox: ${missed.length} events of this run were missed`);
for (const e of missed.sort((a, b) => Number(a.id) - Number(b.id))) {
  console.log(`  outbox: ${nameOf[e.member_key]} ${e.from_tier ?? '(none)'} -> ${e.to_tier} (${e.reason}), handled`);
}

await listener.end();
await db.end();
console.log(`shop: done (run ${run})`);
