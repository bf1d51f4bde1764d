/*
 * loyalty.purchase_change(): the row trigger that corrects a purchase's
 * award when the purchase is updated (amount, status, member, reference)
 * or deleted (see purchase.h).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "app_tables.h"
#include "loyalty_util.h"
#include "purchase.h"

PG_FUNCTION_INFO_V1(loyalty_purchase_change);

/*
 * The purchase's net award; the lots it created that the member still
 * holds by its account -- its first award and every increase, less what its
 * reversals took -- which a reversal takes first; and the latest instant of
 * the credits since it was last taken back in full.
 */
static int64
award_of(TrackCols *tc, MemberState *m, const char *reference, LotsBuf *own, bool *has_initial,
		 TimestampTz *credited_at)
{
	Datum		args[4];
	int64		net = 0;

	args[0] = CStringGetTextDatum(m->key);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = CStringGetTextDatum(reference);
	args[3] = Int32GetDatum(tc->program_id);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (loyalty_purchase_exec(STMT_AWARD_OF, NULL, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the purchase's award");
	lotsbuf_init(own);
	*has_initial = false;
	*credited_at = DT_NOBEGIN;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *kind = loyalty_spi_text(tup, desc, 1);
		int64		points = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		LotsBuf		lots;

		net = loyalty_add_points(net, points);
		lotsbuf_from_lots(&lots, DatumGetLotsP(SPI_getbinval(tup, desc, 3, &isnull)));
		if (points > 0)
		{
			lotsbuf_merge(own, &lots);
			*credited_at = Max(*credited_at, DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull)));
		}
		else if (points < 0)
		{
			lots.debt = 0;		/* what became debt was not taken from its lots */
			(void) lotsbuf_subtract_held(own, &lots);
		}
		/* taken back in full: its earlier credits hold nothing any more */
		if (net <= 0)
			*credited_at = DT_NOBEGIN;
		if (strcmp(kind, "earn") == 0 || strcmp(kind, "pending") == 0)
			*has_initial = true;
	}
	return net;
}

/*
 * The program that awarded the member's purchase (docs/concepts.md: a
 * purchase belongs to the program that awarded it); 0 when it has none.
 */
static int32
award_program(TrackCols *tc, const char *member_key, const char *reference)
{
	Datum		args[3];
	bool		isnull;

	args[0] = CStringGetTextDatum(member_key);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = CStringGetTextDatum(reference);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (loyalty_purchase_exec(STMT_AWARD_PROGRAM, NULL, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the purchase's award");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Another tracking of the table, for another program, awarded the member's
 * purchase: it was in the table before this tracking began, and belongs to
 * that one, which corrects it; this one leaves it alone (docs/concepts.md).
 */
static bool
awarded_by_other(TrackCols *tc, const char *member_key, const char *reference)
{
	Datum		args[3];

	args[0] = CStringGetTextDatum(member_key);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = CStringGetTextDatum(reference);
	if (loyalty_purchase_exec(STMT_AWARDED_BY_OTHER, NULL, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the purchase's award");
	return SPI_processed > 0;
}

/*
 * The purchase was awarded to the member it is moved from by the UPDATE at
 * hand (moved_from NULL: none): the new member's award then says
 * "purchase moved".
 */
static bool
awarded_elsewhere(TrackCols *tc, const char *moved_from, const char *reference)
{
	return moved_from != NULL && award_program(tc, moved_from, reference) != 0;
}

/*
 * The purchase in a row, as the program that awarded it reads it: a
 * purchase awarded before its table was tracked for another program is
 * corrected in the program that awarded it (docs/concepts.md), so that it
 * is never paid in two.  One that has no award belongs to the table's
 * program now.  tc and prog are set to that program's.  desc is the row's
 * layout: rel's, or one with the same attribute numbers (a moved row).
 */
static bool
read_row(Relation rel, TupleDesc desc, HeapTuple tuple, const TrackCols *track, TrackCols *tc,
		 ProgramConf **prog, Purchase *p, int32 fallback_program, bool *foreign)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	bool		has;
	int32		awarded_in = 0;

	*tc = *track;
	*prog = loyalty_program_conf(tc->program_id);
	loyalty_track_labels(tc, rel, *prog);
	ExecStoreHeapTuple(tuple, slot, false);
	has = loyalty_read_purchase(slot, tc, *prog, p);
	/* a purchase moved to this member belongs where its old version did */
	if (has && ((awarded_in = award_program(tc, p->member_key, p->reference)) != 0 ||
				(awarded_in = fallback_program) != 0) &&
		awarded_in != tc->program_id)
	{
		/* read again: in the program's time zone, against its rules */
		tc->program_id = awarded_in;
		*prog = loyalty_program_conf(awarded_in);
		loyalty_track_labels(tc, rel, *prog);
		has = loyalty_read_purchase(slot, tc, *prog, p);
	}
	*foreign = has && awarded_in == 0 && awarded_by_other(tc, p->member_key, p->reference);
	ExecDropSingleTupleTableSlot(slot);
	return has;
}

/*
 * Bring one purchase's award (under one reference) to target points.  With
 * caps (the purchase's facts), an increase is capped like an award.
 */
static int64
settle_reference(TrackCols *tc, ProgramConf *prog, MemberState *m, const char *reference,
				 TimestampTz at, const ExpirySpec *expiry, int64 target, const char *reason,
				 const PurchaseFacts *caps, int64 *net_before, const char *moved_from)
{
	LotsBuf		own;
	bool		has_initial;
	TimestampTz credited_at;
	int64		net = award_of(tc, m, reference, &own, &has_initial, &credited_at);
	int64		diff;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (net_before)
		*net_before = net;

	if (caps && target > net)
		target = net + loyalty_apply_caps(prog, m, caps, target - net);
	diff = loyalty_sub_points(target, net);

	if (diff > 0)
	{
		const char *kind;
		Lots	   *lots = loyalty_award_lots(prog, expiry, at, diff, &kind);
		LotsBuf		delta;

		/*
		 * The member's first award of the purchase is its initial entry
		 * (earn or pending), so that ledger_purchase_award refuses the
		 * purchase inserted again for the member -- also when it was moved
		 * here from another member.
		 */
		if (has_initial)
			loyalty_insert_entry(tc, m, "adjust", diff, lots, reference,
								 strcmp(reason, REASON_REINSERTED) == 0 ? REASON_REINSERTED :
								 "purchase amount changed", at);
		else
			loyalty_insert_entry(tc, m, kind, diff, lots, reference,
								 awarded_elsewhere(tc, moved_from, reference) ? "purchase moved" : NULL,
								 at);
		lotsbuf_from_lots(&delta, lots);
		lotsbuf_merge(&m->lots, &delta);
		m->dirty = true;
		m->latest_write = Max(m->latest_write, at);
		m->earliest_write = Min(m->earliest_write, at);
		/* an award or increase is activity at the purchase time */
		m->wrote_activity = true;
		m->last_activity_at = Max(m->last_activity_at, at);
	}
	else if (diff < 0)
	{
		LotsBuf		drawn;
		TimestampTz at_rev = now;

		/*
		 * A purchase dated in the future is taken back where it was awarded,
		 * from its own pending lots: it never counted at any instant.
		 */
		if (credited_at > now && lotsbuf_pending(&own, now) >= -diff)
			at_rev = credited_at;
		lotsbuf_init(&drawn);
		lotsbuf_reverse(&m->lots, -diff, now, &own, &drawn);
		loyalty_insert_entry(tc, m, "reverse", diff, lotsbuf_to_lots(&drawn), reference, reason, at_rev);
		m->dirty = true;
		m->latest_write = Max(m->latest_write, at_rev);
		m->earliest_write = Min(m->earliest_write, at_rev);
	}
	return diff;
}

/*
 * Bring a purchase's award to what it should be now (award) or to nothing,
 * and its activity with it: "undo" is the version of the purchase counted
 * so far (NULL when none was), taken out of the activity of its month;
 * "moved_from" the member an UPDATE moves it from (NULL: none).
 */
void
loyalty_settle_purchase(TrackCols *tc, ProgramConf *prog, Purchase *p, bool award, Purchase *undo,
						const char *reason, const char *moved_from)
{
	MemberState m;
	PurchaseEarning e = {.expiry = &prog->expiry, .bonus_expiry = &prog->expiry};
	int64		target;
	int64		moved;
	int64		was,
				now;
	TimestampTz latest;

	/* a non-member has no tier: this decides whether to enroll */
	if (award && !p->facts.reversed)
		loyalty_purchase_earning(prog, &p->facts, false, &e);
	if (!loyalty_lock_member(tc, p->member_key, e.points > 0 && prog->auto_enroll, p->facts.at,
							 &m))
		return;
	loyalty_settle_due(&m, GetCurrentTransactionStartTimestamp());
	loyalty_latest_entries(&m, 1, &latest);
	m.earliest_write = DT_NOEND;
	m.latest_write = DT_NOBEGIN;
	if (award && !p->facts.reversed)
	{
		p->facts.tier = m.tier;
		loyalty_purchase_earning(prog, &p->facts, !m.had_purchase, &e);
	}
	target = e.points;
	/*
	 * Corrections are capped like awards; only an increase can hit a cap.
	 * (With nothing to award, the net award only falls: its expiry, the
	 * program's, is not used.)
	 */
	moved = settle_reference(tc, prog, &m, p->reference, p->facts.at, e.expiry, target, reason,
							 &p->facts, &was, moved_from);
	now = was + moved;
	if (target == 0)
	{
		/* a purchase that no longer counts takes its first-purchase bonus along */
		moved = loyalty_add_points(moved,
								   settle_reference(tc, prog, &m,
													psprintf("%s%s", p->reference, BONUS_SUFFIX),
													p->facts.at, &prog->expiry, 0, reason, NULL, NULL,
													moved_from));
	}
	else if (!m.had_purchase)
	{
		if (e.bonus > 0)
			moved = loyalty_add_points(moved,
									   settle_reference(tc, prog, &m,
														psprintf("%s%s", p->reference, BONUS_SUFFIX),
														p->facts.at, e.bonus_expiry, e.bonus,
														"first-purchase bonus", NULL, NULL,
														moved_from));
		m.had_purchase = true;
		m.first_purchase_at = p->facts.at;
		m.dirty = true;
	}
	/*
	 * A purchase counts for tiers while it earns points (as the insert
	 * trigger counts it); a reversed qualification counts at once, a lower
	 * tier waits for its review.
	 */
	if (undo != NULL && was > 0)
		loyalty_count_activity(prog, &m, undo->facts.amount, -1, 0, undo->facts.at);
	if (award && !p->facts.reversed && now > 0)
		loyalty_count_activity(prog, &m, p->facts.amount, 1, moved, p->facts.at);
	else
		loyalty_count_activity(prog, &m, NULL, 0, moved, p->facts.at);
	if (m.dirty)
	{
		loyalty_update_member(&m, tc);
		/*
		 * An entry dated before the member's latest one, or under inactivity
		 * an activity (it may be late for a deadline, or set one due now):
		 * the lots come from the ledger (docs/concepts.md, Balances as of
		 * any instant).
		 */
		if (m.earliest_write < latest ||
			(prog->expiry.policy == EXPIRY_INACTIVITY && m.wrote_activity))
			loyalty_rebuild_member(&m);
	}
	loyalty_write_upgrades(prog, &m);
}

/*
 * An UPDATE's correction: the old version's award moves to the new one
 * (another member, another reference), or is brought to what the new
 * version earns; each version in the program that awarded it (read_row).
 */
static void
correct_purchase(bool has_old, TrackCols *oldtc, ProgramConf *oldprog, Purchase *oldp,
				 bool has_new, TrackCols *newtc, ProgramConf *newprog, Purchase *newp)
{
	bool		same = has_old && has_new &&
		strcmp(oldp->member_key, newp->member_key) == 0 &&
		strcmp(oldp->reference, newp->reference) == 0;

	if (has_old && has_new && strcmp(oldp->member_key, newp->member_key) != 0 &&
		oldtc->program_id == newtc->program_id)
	{
		/*
		 * A move touches two members: lock both first, in key order, as
		 * transfer() does, so that a concurrent transfer between them
		 * cannot deadlock with it.  (Members of two programs are never
		 * locked together elsewhere.)
		 */
		MemberState both[2];
		bool		old_first = loyalty_member_order(oldp->key_hash, oldp->member_key,
													 newp->key_hash, newp->member_key) < 0;

		memset(both, 0, sizeof(both));
		both[0].key = old_first ? oldp->member_key : newp->member_key;
		both[0].key_hash = old_first ? oldp->key_hash : newp->key_hash;
		both[1].key = old_first ? newp->member_key : oldp->member_key;
		both[1].key_hash = old_first ? newp->key_hash : oldp->key_hash;
		loyalty_lock_members(oldtc, false, both, 2);
	}
	if (has_old && !same)
		loyalty_settle_purchase(oldtc, oldprog, oldp, false, oldp, "purchase moved", NULL);
	if (has_new)
		loyalty_settle_purchase(newtc, newprog, newp, true, same ? oldp : NULL,
								newp->facts.reversed ? "purchase refunded" : "purchase amount changed",
								has_old && strcmp(oldp->member_key, newp->member_key) != 0 ?
								oldp->member_key : NULL);
}

/*
 * A row deleted from a partition that is in another partition of the
 * tracked table now, under the same reference, was moved by an UPDATE of
 * its partition key (app_read.c, loyalty_moved_row): read it as the new
 * version of the purchase.
 */
static bool
moved_purchase(Relation rel, HeapTuple old, const TrackCols *track, TrackCols *tc,
			   ProgramConf **prog, Purchase *p, int32 old_program, bool *foreign)
{
	List	   *ancestors;
	HeapTuple	row;
	TupleDesc	desc;

	if (!rel->rd_rel->relispartition)
		return false;
	ancestors = get_partition_ancestors(RelationGetRelid(rel));
	if (ancestors == NIL)
		return false;
	row = loyalty_moved_row(llast_oid(ancestors), rel, old, track->ref, track->nref, &desc);
	if (row == NULL)
		return false;
	return read_row(rel, desc, row, track, tc, prog, p, old_program, foreign);
}

Datum
loyalty_purchase_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TrackCols	track,
				oldtc,
				newtc;
	ProgramConf *oldprog,
			   *newprog = NULL;
	Purchase	oldp,
				newp;
	bool		has_old,
				has_new = false,
				old_foreign = false,
				new_foreign = false;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.purchase_change() must run as an AFTER UPDATE OR DELETE row trigger"),
				 errhint("Attach it with loyalty.track_purchases().")));
	rel = trigdata->tg_relation;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_purchase_plans_check();
	loyalty_load_track(loyalty_track_id_arg(trigdata), rel, &track);

	has_old = read_row(rel, RelationGetDescr(rel), trigdata->tg_trigtuple, &track, &oldtc, &oldprog,
					   &oldp, 0, &old_foreign);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && !old_foreign)
		has_new = read_row(rel, RelationGetDescr(rel), trigdata->tg_newtuple, &track, &newtc, &newprog,
						   &newp, has_old ? oldtc.program_id : 0, &new_foreign);

	/*
	 * A purchase that another tracking of the table awarded, and this one
	 * did not, is that one's: this one leaves it alone (a new version of it
	 * is no purchase of this one's).
	 */
	if (new_foreign)
		has_new = false;
	if (old_foreign)
		;
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		bool		moved = has_old && moved_purchase(rel, trigdata->tg_trigtuple, &track, &newtc,
													  &newprog, &newp, oldtc.program_id, &new_foreign);

		if (moved && !new_foreign)
			correct_purchase(has_old, &oldtc, oldprog, &oldp, true, &newtc, newprog, &newp);
		else if (has_old)
			loyalty_settle_purchase(&oldtc, oldprog, &oldp, false, &oldp, "purchase deleted", NULL);
	}
	else
		correct_purchase(has_old, &oldtc, oldprog, &oldp, has_new, &newtc, newprog, &newp);
	SPI_finish();
	return PointerGetDatum(NULL);
}
