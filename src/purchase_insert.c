/*
 * loyalty.purchase_insert(): the statement trigger that awards the rows an
 * INSERT or COPY added to a tracked purchases table (see purchase.h).
 */
#include "postgres.h"

#include "catalog/pg_class.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "loyalty_util.h"
#include "purchase.h"

PG_FUNCTION_INFO_V1(loyalty_purchase_insert);

#define INSERT_BATCH 10000

/* by reference, then by place in the statement's processing order */
static int
reference_then_place_cmp(const void *a, const void *b)
{
	const Purchase *x = *(Purchase *const *) a,
			   *y = *(Purchase *const *) b;
	int			c = strcmp(x->reference, y->reference);

	if (c != 0)
		return c;
	if ((c = strcmp(x->member_key, y->member_key)) != 0)
		return c;
	return (x > y) - (x < y);
}

/*
 * A reference may repeat when reference_columns are not unique; as with
 * ON CONFLICT DO NOTHING, only its first row of a customer in processing
 * order counts (a reference is the customer's own, as in the ledger's
 * ledger_purchase_award).  Sorted by (reference, customer, place), every
 * row after the first of a run of equal references and customers is a
 * repeat: n log n, where comparing each row with every
 * earlier one took n^2 / 2 comparisons (5 * 10^11 for a 1M-row COPY).
 */
static void
mark_duplicates(Purchase *purchases, int npurchases)
{
	Purchase  **byref = MemoryContextAllocHuge(CurrentMemoryContext,
											   sizeof(Purchase *) * npurchases);

	for (int i = 0; i < npurchases; i++)
		byref[i] = &purchases[i];
	qsort(byref, npurchases, sizeof(Purchase *), reference_then_place_cmp);
	for (int i = 1; i < npurchases; i++)
		if (strcmp(byref[i - 1]->reference, byref[i]->reference) == 0 &&
			strcmp(byref[i - 1]->member_key, byref[i]->member_key) == 0)
			byref[i]->facts.duplicate = true;
	pfree(byref);
}

/*
 * Exactly once per live purchase: a row whose award was refused because its
 * reference was awarded before is a replay of a live purchase (nothing to
 * do) -- unless what the reference was awarded has been taken back in full,
 * as when the purchase was deleted: then the row is the purchase back, and
 * it earns again as a correction does (an adjust, REASON_REINSERTED).
 * Refused rows are rare outside restores, so the check costs nothing in the
 * common case.
 */
static void
award_reinserted(TrackCols *tc, ProgramConf *prog, Purchase *purchases, int npurchases,
				 PendingRows *rows, const bool *went_in)
{
	Datum	   *refs = NULL;
	Datum	   *keys = NULL;
	int			nrefs = 0;
	Datum		args[4];
	char	  **back;
	char	  **back_key;
	int			nback;
	Purchase  **byref;

	for (int i = 0; i < rows->n; i++)
	{
		if (went_in[i] || rows->amount[i] == NULL)
			continue;			/* written, or a first-purchase bonus */
		if (refs == NULL)
		{
			refs = palloc(sizeof(Datum) * rows->n);
			keys = palloc(sizeof(Datum) * rows->n);
		}
		keys[nrefs] = rows->member_key[i];
		refs[nrefs++] = rows->reference[i];
	}
	if (nrefs == 0)
		return;
	args[0] = Int32GetDatum(tc->track_id);
	args[1] = PointerGetDatum(loyalty_array_of(refs, NULL, nrefs, TEXTOID));
	args[2] = Int32GetDatum(tc->program_id);
	args[3] = PointerGetDatum(loyalty_array_of(keys, NULL, nrefs, TEXTOID));
	if (loyalty_purchase_exec(STMT_TAKEN_BACK, tc, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the awards of purchases inserted again");
	nback = (int) SPI_processed;
	if (nback == 0)
		return;
	back = palloc(sizeof(char *) * nback);
	back_key = palloc(sizeof(char *) * nback);
	for (int i = 0; i < nback; i++)
	{
		back[i] = loyalty_spi_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		back_key[i] = loyalty_spi_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}

	byref = palloc(sizeof(Purchase *) * npurchases);
	for (int i = 0; i < npurchases; i++)
		byref[i] = &purchases[i];
	qsort(byref, npurchases, sizeof(Purchase *), reference_then_place_cmp);
	for (int i = 0; i < nback; i++)
	{
		int			lo = 0,
					hi = npurchases;

		/* the first row of the reference in processing order: the one that counts */
		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			int			c = strcmp(byref[mid]->reference, back[i]);

			if (c == 0)
				c = strcmp(byref[mid]->member_key, back_key[i]);
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < npurchases && strcmp(byref[lo]->reference, back[i]) == 0 &&
			strcmp(byref[lo]->member_key, back_key[i]) == 0 && !byref[lo]->facts.duplicate)
			loyalty_settle_purchase(tc, prog, byref[lo], true, NULL, REASON_REINSERTED, NULL);
	}
}

Datum
loyalty_purchase_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TrackCols	tc;
	ProgramConf *prog;
	TupleTableSlot *slot;
	Purchase   *purchases;
	int			npurchases = 0,
				maxpurchases = 256;
	MemberState *members;
	int			nmembers = 0;
	PendingRows rows = {0};
	bool	   *went_in;

	/*
	 * Also as the AFTER UPDATE statement trigger of a partitioned table: an
	 * UPDATE that moves a row to another partition fires no UPDATE row
	 * trigger and no INSERT statement trigger, only the old partition's
	 * DELETE row trigger.  Every new row of the UPDATE passes through here;
	 * those whose award exists (all but moved rows whose reference changed)
	 * write nothing, as a replayed insert writes nothing.
	 */
	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) &&
		   trigdata->tg_relation->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.purchase_insert() must run as an AFTER INSERT statement trigger with a NEW TABLE"),
				 errhint("Attach it with loyalty.track_purchases().")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_purchase_plans_check();
	loyalty_load_track(loyalty_track_id_arg(trigdata), trigdata->tg_relation, &tc);
	prog = loyalty_program_conf(tc.program_id);
	loyalty_track_labels(&tc, trigdata->tg_relation, prog);

	/* 1. read the new rows */
	purchases = palloc(sizeof(Purchase) * maxpurchases);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (npurchases == maxpurchases)
		{
			maxpurchases *= 2;
			purchases = repalloc_huge(purchases, sizeof(Purchase) * maxpurchases);
		}
		if (loyalty_read_purchase(slot, &tc, prog, &purchases[npurchases]) &&
			!purchases[npurchases].facts.reversed)
			npurchases++;
	}
	ExecDropSingleTupleTableSlot(slot);
	if (npurchases == 0)
		goto done;

	/* 2. one member state per customer, locked in key order */
	qsort(purchases, npurchases, sizeof(Purchase), loyalty_purchase_cmp);
	for (int i = 0; i < npurchases; i++)
	{
		if (i == 0 || strcmp(purchases[i - 1].member_key, purchases[i].member_key) != 0)
			nmembers++;
		purchases[i].member = nmembers - 1;
	}
	/* a bulk load has ~10 purchases per customer: one state per customer */
	members = palloc0(sizeof(MemberState) * nmembers);
	for (int i = 0; i < npurchases; i++)
	{
		MemberState *m = &members[purchases[i].member];

		m->key = purchases[i].member_key;
		m->key_hash = purchases[i].key_hash;
		/* sorted by time within the member: its first purchase */
		if (i == 0 || purchases[i - 1].member != purchases[i].member)
			m->enroll_at = purchases[i].facts.at;
	}
	loyalty_lock_members(&tc, prog->auto_enroll, members, nmembers);
	/* one customer with few purchases: loyalty_write_one_member() */
	loyalty_plan_members(prog, purchases, npurchases, members, nmembers, nmembers > 1 || npurchases > 8);

	/* when reference_columns are a unique key, the insert ruled repeats out */
	if (npurchases > 1 && !loyalty_references_unique(trigdata->tg_relation, &tc))
		mark_duplicates(purchases, npurchases);

	/* 3. points per purchase, in time order per member */
	for (int i = 0; i < npurchases; i++)
	{
		Purchase   *p = &purchases[i];
		MemberState *m = &members[p->member];
		PurchaseEarning e;
		int64		points;
		const char *kind;

		if (!m->found || p->facts.duplicate)
			continue;			/* not a member and the program does not enroll */
		p->facts.tier = m->tier;
		loyalty_purchase_earning(prog, &p->facts, !m->had_purchase, &e);
		points = loyalty_apply_caps(prog, m, &p->facts, e.points);
		if (points > 0)
		{
			Lots	   *lots = loyalty_award_lots(prog, e.expiry, p->facts.at, points, &kind);

			loyalty_rows_add(&rows, p->member, m->key, kind, points, lots, p->reference, NULL,
							 p->facts.at, p->facts.amount);
		}
		if (e.bonus > 0)
		{
			Lots	   *lots = loyalty_award_lots(prog, e.bonus_expiry, p->facts.at, e.bonus, &kind);

			loyalty_rows_add(&rows, p->member, m->key, kind, e.bonus, lots,
							 psprintf("%s%s", p->reference, BONUS_SUFFIX),
							 "first-purchase bonus", p->facts.at, NULL);
		}
		/* only a purchase that earns counts for tiers: its award row makes a replay visible */
		if (points > 0)
			loyalty_count_activity(prog, m, p->facts.amount, 1, loyalty_add_points(points, e.bonus),
								   p->facts.at);
		if (points > 0 || e.bonus > 0)
		{
			if (!m->had_purchase || p->facts.at < m->first_purchase_at)
				m->first_purchase_at = p->facts.at;
			m->had_purchase = true;
			m->last_activity_at = Max(m->last_activity_at, p->facts.at);
		}
	}

	/* the common case, one customer's purchase: one statement writes both */
	went_in = palloc(sizeof(bool) * Max(rows.n, 1));
	if (nmembers == 1 && rows.n > 0 && rows.n <= 16 && !members[0].replay)
	{
		loyalty_write_one_member(&tc, prog, &members[0], &rows, went_in);
		loyalty_write_upgrades(prog, &members[0]);
		award_reinserted(&tc, prog, purchases, npurchases, &rows, went_in);
		goto done;
	}

	/* 4. write the ledger in batches; only what went in changes balances */
	for (int from = 0; from < rows.n; from += INSERT_BATCH)
	{
		int			n = Min(INSERT_BATCH, rows.n - from);
		bool	   *inserted = loyalty_rows_insert(&tc, &rows, from, n);

		for (int i = 0; i < n; i++)
		{
			MemberState *m = &members[rows.member[from + i]];

			went_in[from + i] = inserted[i];
			if (!inserted[i])
			{
				loyalty_uncount_row(prog, m, &rows, from + i);
				continue;
			}
			lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows.lots[from + i]));
			m->dirty = true;
		}
	}
	loyalty_times_from_inserted(members, nmembers, &rows, went_in);
	/* a member none of whose rows went in (replayed purchases) is unchanged */
	for (int i = 0; i < nmembers; i++)
		if (members[i].found && members[i].replay &&
			(!members[i].replayed || members[i].any_went_in))
			loyalty_rebuild_member(&members[i]);

	/* 5. new balances, then the tier upgrades they reached */
	loyalty_members_update(&tc, members, nmembers);
	for (int i = 0; i < nmembers; i++)
		loyalty_write_upgrades(prog, &members[i]);
	award_reinserted(&tc, prog, purchases, npurchases, &rows, went_in);

done:
	SPI_finish();
	return PointerGetDatum(NULL);
}
