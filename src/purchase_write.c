/*
 * Writing what a purchase statement awarded: its ledger rows in batches of
 * arrays (skipping purchases awarded before), the members' new balances in
 * one UPDATE, or for one customer both in one statement; and single
 * entries and balances for corrections.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "loyalty_util.h"
#include "purchase.h"

void
loyalty_rows_add(PendingRows *rows, int member, const char *member_key, const char *kind,
				 int64 points,
				 Lots *lots, const char *reference, const char *reason, TimestampTz at,
				 Numeric amount)
{
	if (rows->n == rows->max)
	{
		rows->max = Max(64, rows->max * 2);
#define GROW(f, T) rows->f = rows->f ? repalloc(rows->f, sizeof(T) * rows->max) : palloc(sizeof(T) * rows->max)
		GROW(member_key, Datum);
		GROW(kind, Datum);
		GROW(points, Datum);
		GROW(lots, Datum);
		GROW(reference, Datum);
		GROW(reason, Datum);
		GROW(reason_null, bool);
		GROW(effective, Datum);
		GROW(member, int);
		GROW(amount, Numeric);
#undef GROW
	}
	rows->member[rows->n] = member;
	rows->amount[rows->n] = amount;
	rows->member_key[rows->n] = CStringGetTextDatum(member_key);
	rows->kind[rows->n] = CStringGetTextDatum(kind);
	rows->points[rows->n] = Int64GetDatum(points);
	rows->lots[rows->n] = PointerGetDatum(lots);
	rows->reference[rows->n] = CStringGetTextDatum(reference);
	rows->reason_null[rows->n] = (reason == NULL);
	rows->reason[rows->n] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	rows->effective[rows->n] = TimestampTzGetDatum(at);
	rows->n++;
}

int
loyalty_cstring_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* a row that went in: (reference, member key) */
typedef struct RowKey
{
	char	   *reference;
	char	   *member_key;
} RowKey;

static int
row_key_cmp(const void *a, const void *b)
{
	const RowKey *x = a,
			   *y = b;
	int			c = strcmp(x->reference, y->reference);

	return c != 0 ? c : strcmp(x->member_key, y->member_key);
}

/*
 * The arguments of an insert of rows [from, from + n): $1 .. $10.  $10 is
 * each row's place among its member's rows of the insert (1, 2, ...), and
 * with seqs, its seq: the member's greatest seq, read once per member of
 * the insert after the members were locked and settled, + its place.  (The
 * greatest seq read by every row of the insert cost a sixth of a bulk load.)
 */
static void
insert_args(TrackCols *tc, PendingRows *rows, int from, int n, Datum *args, bool seqs)
{
	int			nmembers = 0;
	int		   *count;
	int64	   *base = NULL;
	Datum	   *place = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = from; i < from + n; i++)
		nmembers = Max(nmembers, rows->member[i] + 1);
	count = palloc0(sizeof(int) * Max(nmembers, 1));
	if (seqs)
	{
		/* the members of these rows, once each, in the order first seen */
		int		   *slot = palloc(sizeof(int) * Max(nmembers, 1));
		Datum	   *keys = palloc(sizeof(Datum) * Max(n, 1));
		int			nkeys = 0;
		Datum		qargs[2];

		for (int m = 0; m < nmembers; m++)
			slot[m] = -1;
		for (int i = from; i < from + n; i++)
			if (slot[rows->member[i]] < 0)
			{
				slot[rows->member[i]] = nkeys;
				keys[nkeys++] = rows->member_key[i];
			}
		qargs[0] = Int32GetDatum(tc->program_id);
		qargs[1] = PointerGetDatum(loyalty_array_of(keys, NULL, nkeys, TEXTOID));
		/* not read_only: a fresh snapshot, after the locks and the settling */
		if (loyalty_purchase_exec(STMT_LAST_SEQS, NULL, qargs, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != (uint64) nkeys)
			elog(ERROR, "could not read the members' last ledger entries");
		base = palloc0(sizeof(int64) * Max(nmembers, 1));
		for (int m = 0; m < nmembers; m++)
		{
			bool		isnull;

			if (slot[m] >= 0)
				base[m] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[slot[m]],
													  SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	for (int i = 0; i < n; i++)
	{
		int			m = rows->member[from + i];
		int64		seq = ++count[m];

		if (base)
			seq = loyalty_add_points(base[m], seq);
		place[i] = Int64GetDatum(seq);
	}
	args[0] = Int32GetDatum(tc->program_id);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = PointerGetDatum(loyalty_array_of(rows->member_key + from, NULL, n, TEXTOID));
	args[3] = PointerGetDatum(loyalty_array_of(rows->kind + from, NULL, n, TEXTOID));
	args[4] = PointerGetDatum(loyalty_array_of(rows->points + from, NULL, n, INT8OID));
	args[5] = PointerGetDatum(loyalty_array_of(rows->lots + from, NULL, n, tc->lots_type));
	args[6] = PointerGetDatum(loyalty_array_of(rows->reference + from, NULL, n, TEXTOID));
	args[7] = PointerGetDatum(loyalty_array_of(rows->reason + from, rows->reason_null + from, n, TEXTOID));
	args[8] = PointerGetDatum(loyalty_array_of(rows->effective + from, NULL, n, TIMESTAMPTZOID));
	args[9] = PointerGetDatum(loyalty_array_of(place, NULL, n, INT8OID));
}

/*
 * Insert rows [from, from + n); returns a bool per row: inserted, or skipped
 * because the purchase was awarded before (a replayed row).  Replays are
 * rare, so the batch first goes in without ON CONFLICT (no pre-check per
 * row) inside a subtransaction; a unique violation retries it with
 * ON CONFLICT DO NOTHING to find what is new.
 */
bool *
loyalty_rows_insert(TrackCols *tc, PendingRows *rows, int from, int n)
{
	Datum		args[10];
	bool	   *inserted = palloc0(sizeof(bool) * n);
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		duplicate = false;

	insert_args(tc, rows, from, n, args, true);
	/* small batches: a subtransaction costs more than ON CONFLICT's checks */
	if (n < 1000)
		goto with_on_conflict;
	/* prepared outside the subtransaction, which may roll back */
	(void) loyalty_purchase_plan(STMT_INSERT_ROWS, tc);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (loyalty_purchase_exec(STMT_INSERT_ROWS, tc, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write ledger entries");
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/*
		 * always end the subtransaction: an error escaping it would leave
		 * the session's transaction waiting for a ROLLBACK
		 */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		duplicate = true;
	}
	PG_END_TRY();
	if (!duplicate)
	{
		memset(inserted, true, sizeof(bool) * n);
		return inserted;
	}

with_on_conflict:
	if (loyalty_purchase_exec(STMT_INSERT_NEW_ROWS, tc, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write ledger entries");
	if (SPI_processed == (uint64) n)
	{
		memset(inserted, true, sizeof(bool) * n);
		return inserted;
	}
	{
		/* full-length comparison: references can be any length */
		int			nref = (int) SPI_processed;
		RowKey	   *refs = palloc(sizeof(RowKey) * Max(nref, 1));

		for (int i = 0; i < nref; i++)
		{
			refs[i].reference = loyalty_spi_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			refs[i].member_key = loyalty_spi_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
		qsort(refs, nref, sizeof(RowKey), row_key_cmp);
		for (int i = 0; i < n; i++)
		{
			RowKey		key = {TextDatumGetCString(rows->reference[from + i]),
			TextDatumGetCString(rows->member_key[from + i])};

			inserted[i] = bsearch(&key, refs, nref, sizeof(RowKey), row_key_cmp) != NULL;
		}
	}
	return inserted;
}

void
loyalty_members_update(TrackCols *tc, MemberState *members, int nmembers)
{
	Datum	   *keys = palloc(sizeof(Datum) * nmembers);
	Datum	   *lots = palloc(sizeof(Datum) * nmembers);
	Datum	   *first = palloc(sizeof(Datum) * nmembers);
	bool	   *first_null = palloc(sizeof(bool) * nmembers);
	Datum	   *last = palloc(sizeof(Datum) * nmembers);
	bool	   *last_null = palloc(sizeof(bool) * nmembers);
	Datum	   *act = palloc(sizeof(Datum) * nmembers);
	Datum		args[7];
	int			n = 0;

	for (int i = 0; i < nmembers; i++)
	{
		MemberState *m = &members[i];

		/* every row refused (purchases inserted again): the member is unchanged */
		if (!m->dirty || (m->replayed && !m->any_went_in))
			continue;
		keys[n] = CStringGetTextDatum(m->key);
		lots[n] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
		first_null[n] = !m->had_purchase;
		first[n] = TimestampTzGetDatum(m->first_purchase_at);
		last[n] = TimestampTzGetDatum(m->last_activity_at);
		last_null[n] = m->last_activity_at == DT_NOBEGIN;	/* no activity yet */
		act[n] = PointerGetDatum(m->activity);
		n++;
	}
	if (n == 0)
		return;
	args[0] = PointerGetDatum(loyalty_array_of(keys, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(loyalty_array_of(lots, NULL, n, tc->lots_type));
	args[2] = PointerGetDatum(loyalty_array_of(first, first_null, n, TIMESTAMPTZOID));
	args[3] = PointerGetDatum(loyalty_array_of(last, last_null, n, TIMESTAMPTZOID));
	args[4] = PointerGetDatum(loyalty_array_of(act, NULL, n, tc->activity_type));
	args[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	args[6] = Int32GetDatum(tc->program_id);
	if (loyalty_purchase_exec(STMT_UPDATE_MEMBERS, tc, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update member balances");
}

/* first_purchase_at and last_activity_at as arguments i and i + 1 */
static void
times_args(MemberState *m, Datum *args, char *nulls, int i)
{
	args[i] = TimestampTzGetDatum(m->first_purchase_at);
	if (!m->had_purchase)
		nulls[i] = 'n';
	args[i + 1] = TimestampTzGetDatum(m->last_activity_at);
	if (m->last_activity_at == DT_NOBEGIN)
		nulls[i + 1] = 'n';		/* no activity yet */
}

/*
 * One member's few ledger rows and new balance in a single statement.  The
 * UPDATE applies only if every row went in and no entry of the member is
 * later than the earliest row (the member's newest entry is looked up in
 * the same statement, after the lock); otherwise the balance is rebuilt
 * from what went in (a replayed purchase) or from the ledger (a purchase
 * dated before the member's newest entry).
 */
void
loyalty_write_one_member(TrackCols *tc, ProgramConf *prog, MemberState *m, PendingRows *rows,
						 bool *went_in_out)
{
	Datum		args[18];
	char		nulls[18];
	Lots	   *before = lotsbuf_to_lots(&m->lots);
	bool		isnull;
	Datum		refs;
	Datum		prior;
	TimestampTz prior_at;
	TimestampTz earliest = DT_NOEND;

	for (int i = 0; i < rows->n; i++)
		lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows->lots[i]));
	memset(nulls, ' ', sizeof(nulls));
	insert_args(tc, rows, 0, rows->n, args, false);
	args[10] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
	times_args(m, args, nulls, 11);
	args[13] = CStringGetTextDatum(m->key);
	args[14] = Int64GetDatum(rows->n);
	args[15] = PointerGetDatum(m->activity);
	args[16] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	for (int i = 0; i < rows->n; i++)
		earliest = Min(earliest, DatumGetTimestampTz(rows->effective[i]));
	args[17] = TimestampTzGetDatum(earliest);
	if (loyalty_purchase_exec(STMT_WRITE_MEMBER, tc, args, nulls, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not write ledger entries");
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) == 1)
	{
		for (int i = 0; i < rows->n; i++)
			went_in_out[i] = true;
		return;
	}
	prior = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	prior_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(prior);

	/*
	 * Some purchases were awarded before: apply only the rows that went in,
	 * and take the replayed ones out of the activity again.
	 */
	refs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	lotsbuf_from_lots(&m->lots, before);
	{
		Datum	   *elems = NULL;
		bool	   *enulls;
		int			n = 0;
		bool	   *went_in = palloc0(sizeof(bool) * rows->n);

		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(refs), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &enulls, &n);

		for (int i = 0; i < rows->n; i++)
		{
			for (int j = 0; j < n && !went_in[i]; j++)
				went_in[i] = strcmp(TextDatumGetCString(rows->reference[i]),
									TextDatumGetCString(elems[j])) == 0;
			if (went_in[i])
			{
				lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows->lots[i]));
				/* dated before the member's newest entry: a replay */
				if (DatumGetTimestampTz(rows->effective[i]) < prior_at)
					m->replay = true;
			}
			else
				loyalty_uncount_row(prog, m, rows, i);
		}
		memcpy(went_in_out, went_in, sizeof(bool) * rows->n);
		/* one customer: rows->member[i] is 0, m is that member */
		loyalty_times_from_inserted(m, 1, rows, went_in);
		loyalty_update_member(m, tc);
		if (m->replay)
			loyalty_rebuild_member(m);
	}
}

void
loyalty_insert_entry(TrackCols *tc, MemberState *m, const char *kind, int64 points, Lots *lots,
					 const char *reference, const char *reason, TimestampTz at)
{
	Datum		args[9];
	char		nulls[9] = "         ";

	args[0] = Int32GetDatum(m->program_id);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = CStringGetTextDatum(m->key);
	args[3] = CStringGetTextDatum(kind);
	args[4] = Int64GetDatum(points);
	args[5] = PointerGetDatum(lots);
	args[6] = CStringGetTextDatum(reference);
	if (reason)
		args[7] = CStringGetTextDatum(reason);
	else
		nulls[7] = 'n';
	args[8] = TimestampTzGetDatum(at);
	if (loyalty_purchase_exec(STMT_INSERT_ENTRY, tc, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write ledger entry");
}

void
loyalty_update_member(MemberState *m, TrackCols *tc)
{
	Datum		args[6];
	char		nulls[6] = "      ";

	args[4] = PointerGetDatum(m->activity);
	args[5] = Int32GetDatum(m->program_id);
	args[0] = CStringGetTextDatum(m->key);
	args[1] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
	times_args(m, args, nulls, 2);
	if (loyalty_purchase_exec(STMT_UPDATE_MEMBER, tc, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update member balance");
}
