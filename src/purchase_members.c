/*
 * The members of a purchase statement: customers grouped and ordered by a
 * hash of their key, locked in key order (and enrolled when the program
 * does), and whether their lots can take the statement's awards as they
 * are or must be rebuilt from the ledger after them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "purchase.h"

/*
 * Customers are grouped, and looked up, in the order of a hash of their key
 * and then the key: most comparisons are then one integer comparison
 * instead of a string comparison (a bulk load sorts a million purchases).
 */
uint32
loyalty_member_hash(const char *key)
{
	return hash_bytes((const unsigned char *) key, (int) strlen(key));
}

int
loyalty_member_order(uint32 hash_a, const char *a, uint32 hash_b, const char *b)
{
	if (hash_a != hash_b)
		return hash_a < hash_b ? -1 : 1;
	return strcmp(a, b);
}

int
loyalty_purchase_cmp(const void *a, const void *b)
{
	const Purchase *x = a,
			   *y = b;
	int			c = loyalty_member_order(x->key_hash, x->member_key, y->key_hash, y->member_key);

	if (c != 0)
		return c;
	if (x->facts.at != y->facts.at)
		return x->facts.at < y->facts.at ? -1 : 1;
	return strcmp(x->reference, y->reference);
}

static int
member_key_cmp(const void *probe, const void *m)
{
	const MemberState *p = probe,
			   *q = m;

	return loyalty_member_order(p->key_hash, p->key, q->key_hash, q->key);
}

/* text[] of the members' keys (only the ones not found yet); NULL if none */
static ArrayType *
member_keys(MemberState *members, int nmembers, bool only_missing)
{
	Datum	   *keys = palloc(sizeof(Datum) * nmembers);
	int			n = 0;

	for (int i = 0; i < nmembers; i++)
		if (!only_missing || !members[i].found)
			keys[n++] = CStringGetTextDatum(members[i].key);
	if (n == 0)
		return NULL;
	return construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT);
}

static void
lock_query(int32 program_id, MemberState *members, int nmembers, bool only_missing)
{
	Datum		args[2];
	PurchaseStmt stmt;
	int			nwanted = 0,
				last = -1;

	for (int i = 0; i < nmembers; i++)
		if (!only_missing || !members[i].found)
		{
			nwanted++;
			last = i;
		}
	if (nwanted == 0)
		return;
	args[0] = Int32GetDatum(program_id);
	if (nwanted == 1)
	{
		/* one customer, the single-row purchase: no array, no sort */
		stmt = STMT_LOCK_MEMBER;
		args[1] = CStringGetTextDatum(members[last].key);
	}
	else
	{
		stmt = STMT_LOCK_MEMBERS;
		args[1] = PointerGetDatum(member_keys(members, nmembers, only_missing));
	}
	if (loyalty_purchase_exec(stmt, NULL, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock members");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *key = loyalty_spi_text(tup, desc, 2);
		MemberState probe = {.key = key, .key_hash = loyalty_member_hash(key)};
		MemberState *m = bsearch(&probe, members, nmembers, sizeof(MemberState), member_key_cmp);
		Datum		d;

		if (m == NULL)
			continue;
		m->found = true;
		m->program_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		lotsbuf_from_lots(&m->lots, DatumGetLotsP(SPI_getbinval(tup, desc, 3, &isnull)));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		m->had_purchase = !isnull;
		m->first_purchase_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		m->last_activity_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
		m->locked_had_purchase = m->had_purchase;
		m->locked_first_purchase_at = m->first_purchase_at;
		m->locked_last_activity_at = m->last_activity_at;
		m->tier = loyalty_spi_text(tup, desc, 6);
		m->locked_tier = m->tier;
		m->activity = (Activity *) PG_DETOAST_DATUM_COPY(SPI_getbinval(tup, desc, 7, &isnull));
		d = SPI_getbinval(tup, desc, 8, &isnull);
		m->settled_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	}
}

/*
 * Lock the members in key order; with enroll, enroll the missing ones (then
 * lock those too), each at its enroll_at or now, whichever is earlier.
 * Members sorted by key.
 */
void
loyalty_lock_members(TrackCols *tc, bool enroll, MemberState *members, int nmembers)
{
	ArrayType  *missing;

	lock_query(tc->program_id, members, nmembers, false);
	if (!enroll || (missing = member_keys(members, nmembers, true)) == NULL)
		return;
	{
		Datum		args[3];
		Datum	   *at = palloc(sizeof(Datum) * nmembers);
		int			n = 0;

		for (int i = 0; i < nmembers; i++)
			if (!members[i].found)
				at[n++] = TimestampTzGetDatum(members[i].enroll_at);
		args[0] = Int32GetDatum(tc->program_id);
		args[1] = PointerGetDatum(missing);
		args[2] = PointerGetDatum(construct_array(at, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												  true, TYPALIGN_DOUBLE));
		if (loyalty_purchase_exec(STMT_ENROLL, NULL, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not enroll members");
	}
	lock_query(tc->program_id, members, nmembers, true);
}

bool
loyalty_lock_member(TrackCols *tc, const char *key, bool enroll, TimestampTz at, MemberState *m)
{
	memset(m, 0, sizeof(MemberState));
	m->key = (char *) key;
	m->key_hash = loyalty_member_hash(key);
	m->enroll_at = at;
	loyalty_lock_members(tc, enroll, m, 1);
	return m->found;
}

/* The instant of each member's latest ledger entry (DT_NOBEGIN: none). */
void
loyalty_latest_entries(MemberState *members, int nmembers, TimestampTz *latest)
{
	Datum	   *keys = palloc(sizeof(Datum) * Max(nmembers, 1));
	int			n = 0;
	int32		program_id = 0;
	Datum		args[2];

	for (int i = 0; i < nmembers; i++)
	{
		latest[i] = DT_NOBEGIN;
		if (members[i].found)
		{
			keys[n++] = CStringGetTextDatum(members[i].key);
			program_id = members[i].program_id;
		}
	}
	if (n == 0)
		return;
	args[0] = Int32GetDatum(program_id);
	args[1] = PointerGetDatum(loyalty_array_of(keys, NULL, n, TEXTOID));
	/* not read_only: a fresh snapshot sees what committed while we waited for the members */
	if (loyalty_purchase_exec(STMT_LATEST_ENTRIES, NULL, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the members' latest entries");
	/* in the order of keys given: the found members, in array order */
	for (int i = 0, r = 0; i < nmembers && (uint64) r < SPI_processed; i++)
	{
		bool		isnull;
		Datum		at;

		if (!members[i].found)
			continue;
		at = SPI_getbinval(SPI_tuptable->vals[r++], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			latest[i] = DatumGetTimestampTz(at);
	}
}

/*
 * Run a statement that updates the member (with its key and an instant) and
 * returns its new lots first; "what" completes the error message.
 */
static void
update_lots(MemberState *m, PurchaseStmt stmt, TimestampTz at, const char *what)
{
	Datum		args[3];
	bool		isnull;

	args[0] = Int32GetDatum(m->program_id);
	args[1] = CStringGetTextDatum(m->key);
	args[2] = TimestampTzGetDatum(at);
	if (loyalty_purchase_exec(stmt, NULL, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not %s member \"%s\"", what, m->key);
	lotsbuf_from_lots(&m->lots, DatumGetLotsP(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1,
															&isnull)));
}

/*
 * Write the release and expiry entries due at "at" (loyalty._settle), as the
 * SQL functions do before they spend, so that the ledger replays exactly.
 */
void
loyalty_settle_due(MemberState *m, TimestampTz at)
{
	bool		isnull;

	update_lots(m, STMT_SETTLE, at, "settle");
	m->settled_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													  2, &isnull));
}

/*
 * Rebuild a member's lots from the ledger (loyalty._rebuild): everything
 * due by now written, the result stored.  For writes that do not apply to
 * the stored lots in effective order.
 */
void
loyalty_rebuild_member(MemberState *m)
{
	update_lots(m, STMT_REBUILD, GetCurrentTransactionStartTimestamp(), "rebuild the lots of");
	m->settled_at = GetCurrentTransactionStartTimestamp();
	m->dirty = true;
}

/*
 * Decide, per member, whether the statement's awards can be applied to the
 * stored lots, or the lots must be rebuilt from the ledger after them
 * (docs/concepts.md, Balances as of any instant): a purchase dated before
 * the member's latest entry, debt (who pays it depends on the order of the
 * time axis), and under inactivity an activity after the last settlement,
 * a purchase before a deadline that has passed, a deadline between two
 * purchases of the statement, or one due by now after them.  Otherwise an
 * inactivity deadline that passed before the member's first purchase of the
 * statement is written first, so that the purchase never revives the points
 * that expired at it.
 */
void
loyalty_plan_members(ProgramConf *prog, Purchase *purchases, int npurchases, MemberState *members,
					 int nmembers, bool check_latest)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz *latest = palloc(sizeof(TimestampTz) * Max(nmembers, 1));
	bool		inactivity = prog->expiry.policy == EXPIRY_INACTIVITY;

	/* (the single-customer statement checks it as it writes: loyalty_write_one_member) */
	if (check_latest)
		loyalty_latest_entries(members, nmembers, latest);
	else
		for (int i = 0; i < nmembers; i++)
			latest[i] = DT_NOBEGIN;
	for (int i = 0; i < npurchases; i++)
	{
		MemberState *m = &members[purchases[i].member];
		TimestampTz first = purchases[i].facts.at,
					last = first,
					deadline;
		int			j;

		if (i > 0 && purchases[i - 1].member == purchases[i].member)
			continue;			/* sorted by member, then time: the first is the earliest */
		for (j = i + 1; j < npurchases && purchases[j].member == purchases[i].member; j++)
		{
			if (inactivity &&
				loyalty_inactivity_deadline(prog, purchases[j - 1].facts.at) <= purchases[j].facts.at)
				m->replay = true;
			last = purchases[j].facts.at;
		}
		if (!m->found)
			continue;
		if (first < latest[purchases[i].member] || m->lots.debt > 0)
			m->replay = true;
		if (!inactivity)
			continue;
		deadline = loyalty_inactivity_deadline(prog, m->last_activity_at);
		if (m->last_activity_at > m->settled_at || (deadline <= now && first < deadline) ||
			loyalty_inactivity_deadline(prog, Max(m->last_activity_at, last)) <= now)
			m->replay = true;
		if (!m->replay && deadline <= first && deadline <= now && deadline > m->settled_at)
			loyalty_settle_due(m, Min(first, now));	/* never ahead of time */
	}
}
