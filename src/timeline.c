/*
 * timeline.c: a member's points replayed from the ledger in effective order.
 *
 * The aggregate loyalty._timeline(...) takes a member's ledger entries in
 * the order of the time axis -- effective_at, an inactivity expiry before
 * the other entries of its instant, then id -- and replays them the way
 * docs/concepts.md ("Balances as of any instant") defines the member's
 * points: credits add their lots (paying debt first), debits remove the
 * lots they record, releases move pending lots, debt is paid from usable
 * lots whenever both exist.  Between entries it applies what falls due:
 * releases, lot expiries and inactivity deadlines.  One walk, three uses:
 *
 *   read    the lots as of an instant, for balances at past instants and
 *           for members whose stored lots do not tell (an activity dated
 *           after their last settlement).  Due releases and inactivity
 *           deadlines after members.settled_at apply virtually; a ledger
 *           that does not replay still gets an answer.
 *   settle  for writers: everything the ledger holds, with what fell due
 *           by as_of applied and returned as the entries to write
 *           (releases, expiries, inactivity expiries, in time order, each
 *           effective at its own instant).  The result is what the stored
 *           lots must be.  Used after a write dated before the member's
 *           latest entry, where applying it to the stored lots would not
 *           give the replay.
 *   verify  the recorded entries alone, strictly: the first entry that
 *           removes lots the replay does not hold (unless an inactivity
 *           expiry written after it took them), an inactivity deadline
 *           at or before settled_at at which points were left, or an
 *           inactivity expiry that no deadline justifies and that is not
 *           given back, is the problem reported.
 *
 * Inactivity deadlines (docs/concepts.md, "Inactivity"): each activity sets
 * a deadline; a later activity before it cancels it, whenever it was
 * recorded.  At a deadline everything usable just before it expires.  An
 * expiry written for a deadline that an activity recorded later cancelled
 * is given back by a 'reinstate' entry at the same instant.  Both kinds
 * carry reason 'inactivity' and apply before the other entries of their
 * instant.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "lots.h"
#include "loyalty_errors.h"
#include "loyalty_util.h"
#include "program.h"
#include "rules.h"

PG_FUNCTION_INFO_V1(loyalty_timeline_step);
PG_FUNCTION_INFO_V1(loyalty_timeline_final);

typedef enum TimelineMode
{
	MODE_READ,
	MODE_SETTLE,
	MODE_VERIFY
} TimelineMode;

typedef enum EntryOp
{
	OP_CREDIT,
	OP_DEBIT,
	OP_RELEASE
} EntryOp;

typedef struct TimelineEntry
{
	TimestampTz effective;
	EntryOp		op;
	bool		activity;		/* earn, pending, redeem, adjust, transfer */
	bool		inactivity;		/* expire or reinstate with reason 'inactivity' */
	bool		taker;			/* may take lots an earlier-written debit drew: an
								 * inactivity expiry or a reversal */
	int64		id;				/* ledger id: the order entries were written in */
	Lots	   *lots;
} TimelineEntry;

/* the aggregate's state: the entries, collected in the order given */
typedef struct TimelineInput
{
	int32		program_id;
	TimelineMode mode;
	bool		spend;			/* mode "spend": read, then limited by later entries */
	TimestampTz as_of;
	TimestampTz settled_at;
	int			n;
	int			max;
	TimelineEntry *entries;
} TimelineInput;

/* entries a settling walk found due, to be written */
typedef struct DueEntries
{
	int			n;
	int			max;
	const char **kind;
	int64	   *points;
	Lots	  **lots;
	TimestampTz *effective;
	bool	   *inactivity;		/* reason 'inactivity' */
} DueEntries;

typedef struct Walk
{
	TimelineMode mode;
	ProgramConf *prog;			/* NULL: no inactivity deadlines */
	TimestampTz as_of;
	TimestampTz settled_at;
	LotsBuf		state;
	/* the inactivity deadline of the latest activity; DT_NOEND: none */
	TimestampTz deadline;
	TimestampTz last_activity;	/* DT_NOBEGIN: none */
	TimestampTz position;		/* instant of the last entry applied */
	int64		latest_taker;	/* highest id of an inactivity expiry or reversal applied */
	DueEntries	due;
	char	   *problem;		/* the first one */
} Walk;

static EntryOp
entry_op(const char *kind, int64 points)
{
	if (strcmp(kind, "release") == 0)
		return OP_RELEASE;
	return points < 0 ? OP_DEBIT : OP_CREDIT;
}

static bool
is_activity(const char *kind)
{
	return strcmp(kind, "earn") == 0 || strcmp(kind, "pending") == 0 ||
		strcmp(kind, "redeem") == 0 || strcmp(kind, "adjust") == 0 ||
		strcmp(kind, "transfer") == 0;
}

/*
 * loyalty._timeline(program_id, mode, as_of, settled_at, kind, points, lots,
 * reason, effective_at, id): the transition function.  The first four
 * arguments are the same on every row.
 */
Datum
loyalty_timeline_step(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	MemoryContext old;
	TimelineInput *in;
	TimelineEntry *e;
	char	   *kind;
	char	   *mode;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "loyalty._timeline called in a non-aggregate context");
	/* program, mode and as_of; settled_at may be NULL (nothing written) */
	for (int i = 1; i <= 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("loyalty._timeline: program, mode and as_of must not be null")));
	old = MemoryContextSwitchTo(aggcxt);
	if (PG_ARGISNULL(0))
	{
		in = palloc0(sizeof(TimelineInput));
		in->program_id = PG_GETARG_INT32(1);
		mode = text_to_cstring(PG_GETARG_TEXT_PP(2));
		if (strcmp(mode, "read") == 0)
			in->mode = MODE_READ;
		else if (strcmp(mode, "settle") == 0)
			in->mode = MODE_SETTLE;
		else if (strcmp(mode, "verify") == 0)
			in->mode = MODE_VERIFY;
		else if (strcmp(mode, "spend") == 0)
		{
			in->mode = MODE_READ;
			in->spend = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown timeline mode \"%s\"", mode),
					 errhint("Use read, spend, settle or verify.")));
		in->as_of = PG_GETARG_TIMESTAMPTZ(3);
		in->settled_at = PG_ARGISNULL(4) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(4);
	}
	else
		in = (TimelineInput *) PG_GETARG_POINTER(0);
	/* a member without entries: the aggregate still sees one NULL row from a LEFT JOIN */
	if (PG_ARGISNULL(5) || PG_ARGISNULL(6) || PG_ARGISNULL(7) || PG_ARGISNULL(9) || PG_ARGISNULL(10))
	{
		MemoryContextSwitchTo(old);
		PG_RETURN_POINTER(in);
	}
	if (in->n == in->max)
	{
		in->max = Max(16, in->max * 2);
		in->entries = in->entries ? repalloc(in->entries, sizeof(TimelineEntry) * in->max)
			: palloc(sizeof(TimelineEntry) * in->max);
	}
	e = &in->entries[in->n];
	kind = text_to_cstring(PG_GETARG_TEXT_PP(5));
	e->op = entry_op(kind, PG_GETARG_INT64(6));
	e->activity = is_activity(kind);
	e->lots = (Lots *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(7));
	e->inactivity = (strcmp(kind, "expire") == 0 || strcmp(kind, "reinstate") == 0) &&
		!PG_ARGISNULL(8) && strcmp(text_to_cstring(PG_GETARG_TEXT_PP(8)), "inactivity") == 0;
	e->effective = PG_GETARG_TIMESTAMPTZ(9);
	e->id = PG_GETARG_INT64(10);
	e->taker = (e->inactivity && e->op == OP_DEBIT) || strcmp(kind, "reverse") == 0;
	if (in->n > 0)
	{
		TimelineEntry *prev = &in->entries[in->n - 1];

		/* the walk relies on the order of the time axis */
		if (prev->effective > e->effective ||
			(prev->effective == e->effective &&
			 ((!prev->inactivity && e->inactivity) ||
			  (prev->inactivity == e->inactivity && prev->id >= e->id))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loyalty._timeline needs the entries in time order"),
					 errhint("ORDER BY effective_at, (kind IN ('expire', 'reinstate') AND reason IS NOT DISTINCT FROM 'inactivity') DESC, id")));
	}
	in->n++;
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(in);
}

static void
due_add(DueEntries *d, const char *kind, int64 points, Lots *lots, TimestampTz at,
		bool inactivity)
{
	if (d->n == d->max)
	{
		d->max = Max(8, d->max * 2);
#define GROW(f, T) d->f = d->f ? repalloc(d->f, sizeof(T) * d->max) : palloc(sizeof(T) * d->max)
		GROW(kind, const char *);
		GROW(points, int64);
		GROW(lots, Lots *);
		GROW(effective, TimestampTz);
		GROW(inactivity, bool);
#undef GROW
	}
	d->kind[d->n] = kind;
	d->points[d->n] = points;
	d->lots[d->n] = lots;
	d->effective[d->n] = at;
	d->inactivity[d->n] = inactivity;
	d->n++;
}

static void
note_problem(Walk *w, char *problem)
{
	if (w->problem == NULL)
		w->problem = problem;
}

/* ---- inactivity deadlines ---- */

/*
 * An activity cancels the open deadline (after it: one at or before its
 * instant has passed already) and sets its own.
 */
static void
note_activity(Walk *w, const TimelineEntry *e)
{
	w->last_activity = Max(w->last_activity, e->effective);
	if (w->prog != NULL)
		w->deadline = loyalty_inactivity_deadline(w->prog, e->effective);
}

/* points usable just before d: lots usable at d, pending lots released before d */
static bool
available_before(const LotsBuf *st, TimestampTz d)
{
	if (st->nlots > 0 && st->lots[st->nlots - 1].expires > d)
		return true;
	for (int i = 0; i < st->npending && st->pending[i].release < d; i++)
		if (st->pending[i].expires > d)
			return true;
	return false;
}

/*
 * The deadline d passes: everything usable just before it expires (what the
 * recorded inactivity expiries of d left).  Pending lots released before d
 * were released by the walk already (read and settle); verify only checks,
 * and only where every expiry is supposed to be written.
 */
static void
pass_deadline(Walk *w, TimestampTz d)
{
	w->deadline = DT_NOEND;
	if (w->mode == MODE_VERIFY)
	{
		if (d <= w->settled_at && available_before(&w->state, d))
			note_problem(w, psprintf("points available at the inactivity deadline %s were not expired",
									 timestamptz_to_str(d)));
		return;
	}
	if (w->mode == MODE_READ && d <= w->settled_at)
		return;					/* written: the recorded entries did it */
	{
		LotsBuf		expired;

		lotsbuf_init(&expired);
		lotsbuf_expire_usable(&w->state, d, &expired);
		if (w->mode == MODE_SETTLE && expired.nlots > 0)
			due_add(&w->due, "expire", -lotsbuf_total(&expired), lotsbuf_to_lots(&expired), d, true);
	}
}

/*
 * Recorded inactivity expiries at d for which no deadline falls at d (net
 * of what was given back already): an activity recorded after them
 * cancelled the deadline.  What they expired comes back at d.  The walk
 * never took it, so only the entry is due.
 */
static void
withdraw_expiry(Walk *w, TimestampTz d, const LotsBuf *net)
{
	if (lotsbuf_total(net) <= 0)
		return;
	if (w->mode == MODE_VERIFY)
	{
		note_problem(w, psprintf("an inactivity expiry at %s that no deadline justifies is not given back",
								 timestamptz_to_str(d)));
		return;
	}
	if (w->mode == MODE_SETTLE)
		due_add(&w->due, "reinstate", lotsbuf_total(net), lotsbuf_to_lots(net), d, true);
}

/* ---- releases and expiries that fall due ---- */

static void
pass_release(Walk *w, TimestampTz at)
{
	PendingLot	p = w->state.pending[0];

	lotsbuf_release_first(&w->state);
	if (w->mode == MODE_SETTLE)
		due_add(&w->due, "release", 0, lots_single(p.points, p.release, p.expires, true),
				at, false);
}

/* the soonest lot's expiry (settling only): one entry per lot */
static void
pass_expiry(Walk *w, TimestampTz at)
{
	Lot			l = w->state.lots[0];

	lotsbuf_expire(&w->state, l.expires, NULL);
	due_add(&w->due, "expire", -l.points, lots_single(l.points, 0, l.expires, false),
			at, false);
}

/*
 * Apply everything due before x (before_entry: the next entry is at x), or
 * up to and including x (at the end).  A deadline at x goes before the
 * entries at x, except the recorded inactivity expiries of that instant,
 * which are the deadline's own: it takes what they left.
 */
static void
advance(Walk *w, TimestampTz x, bool inclusive, bool next_is_inactivity)
{
	for (;;)
	{
		TimestampTz deadline = DT_NOEND,
					release = DT_NOEND,
					expiry = DT_NOEND;
		bool		deadline_ok,
					release_ok,
					expiry_ok;

		deadline = w->deadline;
		/*
		 * A lot that arrived already expired (a cancelled redemption gives
		 * back lots whose expiry has passed) is due at its arrival, after
		 * the entries of that instant (which usually expire it themselves).
		 */
		if (w->mode != MODE_VERIFY && w->state.npending > 0)
			release = Max(w->state.pending[0].release, w->position);
		if (w->mode == MODE_SETTLE && w->state.nlots > 0 && w->state.lots[0].expires != DT_NOEND)
			expiry = Max(w->state.lots[0].expires, w->position);

		deadline_ok = deadline != DT_NOEND &&
			(deadline < x || (deadline == x && (inclusive || !next_is_inactivity)));
		release_ok = release != DT_NOEND && (release < x || (inclusive && release == x));
		expiry_ok = expiry != DT_NOEND && (expiry < x || (inclusive && expiry == x));

		/* the earliest first; at one instant: deadline, release, expiry */
		if (deadline_ok && (!release_ok || deadline <= release) && (!expiry_ok || deadline <= expiry))
			pass_deadline(w, deadline);
		else if (release_ok && (!expiry_ok || release <= expiry))
			pass_release(w, release);
		else if (expiry_ok)
			pass_expiry(w, expiry);
		else
			return;
	}
}

static void
apply_entry(Walk *w, const TimelineEntry *e)
{
	LotsBuf		delta;

	lotsbuf_from_lots(&delta, e->lots);
	switch (e->op)
	{
		case OP_CREDIT:
			lotsbuf_merge(&w->state, &delta);
			break;
		case OP_RELEASE:
			{
				LotsBuf		pend = delta;

				pend.nlots = 0;
				pend.debt = 0;
				if (!lotsbuf_holds(&w->state, &pend))
					note_problem(w, psprintf("the ledger replayed in effective order releases lots the member did not hold at %s",
											 timestamptz_to_str(e->effective)));
				/* a lot it did not hold is not released: nothing to add for it */
				if (lotsbuf_subtract_held(&w->state, &pend) == 0)
					for (int i = 0; i < delta.npending; i++)
						lotsbuf_add_lot(&w->state, delta.pending[i].points, delta.pending[i].expires);
			}
			break;
		case OP_DEBIT:
			{
				int64		missing;

				/*
				 * Lots a debit recorded but the replay does not hold are
				 * right only where an entry written after the debit, yet
				 * effective before it, took them, and only one that may:
				 * an inactivity expiry (a late activity brought a deadline
				 * forward, concepts.md "Late entries") or a reversal (a
				 * refund in a transaction that started before the debit's).
				 * Spends written later never take them (_spendable).
				 */
				if (!lotsbuf_holds(&w->state, &delta) && e->id > w->latest_taker)
					note_problem(w, psprintf("the ledger replayed in effective order removes lots the member did not hold at %s",
											 timestamptz_to_str(e->effective)));
				missing = lotsbuf_subtract_held(&w->state, &delta);
				/* what it did not hold: soonest expiry first, the rest owed */
				if (missing > 0)
					lotsbuf_spend(&w->state, missing, e->effective, true, NULL);
				lotsbuf_pay_debt(&w->state, e->effective);
				if (e->taker)
					w->latest_taker = Max(w->latest_taker, e->id);
			}
			break;
	}
}

/*
 * The recorded inactivity entries of one instant d (they come first at it)
 * apply together, as their net: what the expiries took less what the
 * reinstatements gave back.  When a deadline falls at d, the net comes off
 * the lots, and the deadline then takes what it left; when none does (a
 * later-recorded activity cancelled it), the net is given back.
 *
 * A net that takes lots the walk does not hold at d is what a late entry
 * leaves behind when it moves points out of the deadline's reach (a late
 * activity before the deadline's own sets an earlier deadline that expires
 * them first): settling gives those lots back at d in a reinstate entry, a
 * read ignores them the same way, and verify reports a ledger where that
 * entry is missing.  Returns the index after the group.
 */
static int
apply_inactivity_group(Walk *w, TimelineInput *in, int k)
{
	TimestampTz d = in->entries[k].effective;
	LotsBuf		net,
				reinstated,
				extra;

	lotsbuf_init(&net);
	lotsbuf_init(&reinstated);
	lotsbuf_init(&extra);
	advance(w, d, false, true);
	for (; k < in->n && in->entries[k].effective == d && in->entries[k].inactivity; k++)
	{
		if (in->entries[k].op == OP_DEBIT)
		{
			lotsbuf_merge_lots(&net, in->entries[k].lots);
			w->latest_taker = Max(w->latest_taker, in->entries[k].id);
		}
		else
			lotsbuf_merge_lots(&reinstated, in->entries[k].lots);
	}
	net.debt = 0;
	reinstated.debt = 0;
	/* net = expired - reinstated; a reinstatement of more than was expired is credited */
	(void) lotsbuf_split_held(&net, &reinstated, &extra);
	if (lotsbuf_total(&extra) > 0)
	{
		note_problem(w, psprintf("an inactivity reinstatement at %s gives back more than was expired there",
								 timestamptz_to_str(d)));
		lotsbuf_merge(&w->state, &extra);
		lotsbuf_pay_debt(&w->state, d);
	}
	w->position = d;
	if (w->deadline == d)
	{
		LotsBuf		unheld;

		lotsbuf_init(&unheld);
		(void) lotsbuf_split_held(&w->state, &net, &unheld);
		if (lotsbuf_total(&unheld) > 0)
		{
			if (w->mode == MODE_VERIFY)
				note_problem(w, psprintf("the ledger replayed in effective order removes lots the member did not hold at %s",
										 timestamptz_to_str(d)));
			else if (w->mode == MODE_SETTLE)
				due_add(&w->due, "reinstate", lotsbuf_total(&unheld), lotsbuf_to_lots(&unheld), d, true);
		}
		pass_deadline(w, d);
	}
	else
		withdraw_expiry(w, d, &net);
	return k;
}

/*
 * Mode spend: the lots usable at as_of, each limited to what the recorded
 * entries effective after as_of leave of it, so that a debit effective at
 * as_of never takes lots that a later entry already drew.  Later entries
 * are written by transactions that started after this one and committed
 * first: this debit comes before them on the time axis, and they must still
 * replay.  Only recorded entries count; releases that fall due between them
 * are applied (a later debit may draw a lot released after as_of), what
 * nothing wrote yet (expiries, inactivity deadlines) does not limit.
 */
static void
walk_spendable(Walk *w, TimelineInput *in, int k)
{
	LotsBuf		usable;

	lotsbuf_from_lots(&usable, lotsbuf_to_lots(&w->state));
	for (; k < in->n; k++)
	{
		TimelineEntry *e = &in->entries[k];

		while (w->state.npending > 0 && w->state.pending[0].release < e->effective)
			lotsbuf_release_first(&w->state);
		apply_entry(w, e);
		if (e->op == OP_DEBIT)
			lotsbuf_clamp_lots(&usable, &w->state);
	}
	w->state = usable;
	w->problem = NULL;
}

static void
walk_run(Walk *w, TimelineInput *in, bool spend)
{
	int			k = 0;

	/* entries up to as_of, with what falls due between them */
	while (k < in->n && in->entries[k].effective <= w->as_of)
	{
		TimelineEntry *e = &in->entries[k];

		if (e->inactivity)
		{
			k = apply_inactivity_group(w, in, k);
			continue;
		}
		advance(w, e->effective, false, false);
		apply_entry(w, e);
		w->position = e->effective;
		if (e->activity)
			note_activity(w, e);
		k++;
	}
	advance(w, w->as_of, true, false);
	if (w->mode == MODE_READ && !spend)
		return;
	if (spend)
	{
		walk_spendable(w, in, k);
		return;
	}
	/* later entries (dated in the future) without settling: nothing is due yet */
	for (; k < in->n; k++)
	{
		TimelineEntry *e = &in->entries[k];

		apply_entry(w, e);
		if (e->activity)
			w->last_activity = Max(w->last_activity, e->effective);
	}
}

typedef struct TimelineTypes
{
	TupleDesc	tupdesc;
	Oid			lots_type;
	int16		typlen;
	bool		typbyval;
	char		typalign;
} TimelineTypes;

static Datum
datum_array(Datum *values, int n, Oid type, int16 len, bool byval, char align)
{
	return PointerGetDatum(construct_array(values, n, type, len, byval, align));
}

/*
 * The final function: (lots, problem, kinds, points, entry_lots, effective,
 * reasons, last_activity) -- the lots the walk ends with, the first problem
 * found, the entries a settling walk says to write, and the latest activity.
 */
Datum
loyalty_timeline_final(PG_FUNCTION_ARGS)
{
	TimelineInput *in;
	Walk		w;
	TimelineTypes *types = (TimelineTypes *) fcinfo->flinfo->fn_extra;
	Datum		values[8];
	bool		nulls[8] = {false, false, false, false, false, false, false, false};
	Datum	   *kinds,
			   *points,
			   *lots,
			   *at,
			   *reasons;
	bool	   *reason_nulls;
	int			dims[1];
	int			lbs[1] = {1};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	in = (TimelineInput *) PG_GETARG_POINTER(0);
	if (types == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		TupleDesc	tupdesc;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		types = palloc(sizeof(TimelineTypes));
		types->tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		types->lots_type = TupleDescAttr(types->tupdesc, 0)->atttypid;
		get_typlenbyvalalign(types->lots_type, &types->typlen, &types->typbyval, &types->typalign);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = types;
	}

	memset(&w, 0, sizeof(w));
	w.mode = in->mode;
	w.as_of = in->mode == MODE_VERIFY ? DT_NOEND : in->as_of;
	w.settled_at = in->settled_at;
	w.last_activity = DT_NOBEGIN;
	w.position = DT_NOBEGIN;
	w.deadline = DT_NOEND;
	lotsbuf_init(&w.state);
	{
		ProgramConf *prog = loyalty_program_conf(in->program_id);

		if (prog->expiry.policy == EXPIRY_INACTIVITY)
			w.prog = prog;
	}
	if (TIMESTAMP_NOT_FINITE(w.as_of) && w.mode != MODE_VERIFY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite instant")));
	walk_run(&w, in, in->spend);

	kinds = palloc(sizeof(Datum) * Max(w.due.n, 1));
	points = palloc(sizeof(Datum) * Max(w.due.n, 1));
	lots = palloc(sizeof(Datum) * Max(w.due.n, 1));
	at = palloc(sizeof(Datum) * Max(w.due.n, 1));
	reasons = palloc(sizeof(Datum) * Max(w.due.n, 1));
	reason_nulls = palloc(sizeof(bool) * Max(w.due.n, 1));
	for (int i = 0; i < w.due.n; i++)
	{
		kinds[i] = CStringGetTextDatum(w.due.kind[i]);
		points[i] = Int64GetDatum(w.due.points[i]);
		lots[i] = PointerGetDatum(w.due.lots[i]);
		at[i] = TimestampTzGetDatum(w.due.effective[i]);
		reason_nulls[i] = !w.due.inactivity[i];
		reasons[i] = w.due.inactivity[i] ? CStringGetTextDatum("inactivity") : (Datum) 0;
	}
	values[0] = PointerGetDatum(lotsbuf_to_lots(&w.state));
	if (w.problem)
		values[1] = CStringGetTextDatum(w.problem);
	else
		nulls[1] = true;
	values[2] = datum_array(kinds, w.due.n, TEXTOID, -1, false, TYPALIGN_INT);
	values[3] = datum_array(points, w.due.n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[4] = datum_array(lots, w.due.n, types->lots_type, types->typlen, types->typbyval,
							types->typalign);
	values[5] = datum_array(at, w.due.n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	dims[0] = w.due.n;
	values[6] = PointerGetDatum(construct_md_array(reasons, reason_nulls, 1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	if (w.last_activity == DT_NOBEGIN)
		nulls[7] = true;
	else
		values[7] = TimestampTzGetDatum(w.last_activity);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(types->tupdesc, values, nulls)));
}
