/*
 * SQL-callable functions on loyalty.lots.
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

PG_FUNCTION_INFO_V1(lots_add);
PG_FUNCTION_INFO_V1(lots_add_pending);
PG_FUNCTION_INFO_V1(lots_spend);
PG_FUNCTION_INFO_V1(lots_expire);
PG_FUNCTION_INFO_V1(lots_settle);
PG_FUNCTION_INFO_V1(lots_expire_all);
PG_FUNCTION_INFO_V1(lots_expire_usable);
PG_FUNCTION_INFO_V1(lots_next_event);
PG_FUNCTION_INFO_V1(lots_settlement);
PG_FUNCTION_INFO_V1(lots_merge);
PG_FUNCTION_INFO_V1(lots_subtract);
PG_FUNCTION_INFO_V1(lots_apply);
PG_FUNCTION_INFO_V1(lots_apply_checked);
PG_FUNCTION_INFO_V1(lots_available);
PG_FUNCTION_INFO_V1(lots_pending);
PG_FUNCTION_INFO_V1(lots_expiring);
PG_FUNCTION_INFO_V1(lots_total);
PG_FUNCTION_INFO_V1(lots_debt);
PG_FUNCTION_INFO_V1(lots_points);
PG_FUNCTION_INFO_V1(lots_entries);
PG_FUNCTION_INFO_V1(lots_eq);
PG_FUNCTION_INFO_V1(lots_ne);

static void
load(LotsBuf *buf, Datum d)
{
	lotsbuf_from_lots(buf, DatumGetLotsP(d));
}

/* result of an operation that splits a balance: (balance, moved lots) */
static Datum
pair_result(FunctionCallInfo fcinfo, LotsBuf *kept, LotsBuf *moved)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = PointerGetDatum(lotsbuf_to_lots(kept));
	values[1] = PointerGetDatum(lotsbuf_to_lots(moved));
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

Datum
lots_add(PG_FUNCTION_ARGS)
{
	LotsBuf		buf;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_add_lot(&buf, PG_GETARG_INT64(1), PG_GETARG_TIMESTAMPTZ(2));
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&buf));
}

Datum
lots_add_pending(PG_FUNCTION_ARGS)
{
	LotsBuf		buf;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_add_pending(&buf, PG_GETARG_INT64(1), PG_GETARG_TIMESTAMPTZ(2),
						PG_GETARG_TIMESTAMPTZ(3));
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&buf));
}

Datum
lots_spend(PG_FUNCTION_ARGS)
{
	LotsBuf		buf,
				drawn;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&drawn);
	lotsbuf_spend(&buf, PG_GETARG_INT64(1), PG_GETARG_TIMESTAMPTZ(2),
				  PG_GETARG_BOOL(3), &drawn);
	return pair_result(fcinfo, &buf, &drawn);
}

Datum
lots_expire(PG_FUNCTION_ARGS)
{
	LotsBuf		buf,
				expired;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&expired);
	lotsbuf_expire(&buf, PG_GETARG_TIMESTAMPTZ(1), &expired);
	return pair_result(fcinfo, &buf, &expired);
}

Datum
lots_expire_all(PG_FUNCTION_ARGS)
{
	LotsBuf		buf,
				expired;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&expired);
	lotsbuf_expire_all(&buf, &expired);
	return pair_result(fcinfo, &buf, &expired);
}

/* Inactivity at "at": every lot still usable then goes; the rest stays. */
Datum
lots_expire_usable(PG_FUNCTION_ARGS)
{
	LotsBuf		buf,
				expired;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&expired);
	lotsbuf_expire_usable(&buf, PG_GETARG_TIMESTAMPTZ(1), &expired);
	return pair_result(fcinfo, &buf, &expired);
}

/*
 * The next instant at which settling would change the lots: a pending
 * release or a finite expiry; NULL when none.  Indexed on members, it is
 * how run_maintenance() finds the members with work due.
 */
Datum
lots_next_event(PG_FUNCTION_ARGS)
{
	Lots	   *b = PG_GETARG_LOTS_P(0);
	Lot		   *lots = LOTS_ARRAY(b);
	PendingLot *pending = LOTS_PENDING(b);
	TimestampTz next = DT_NOEND;

	if (b->nlots > 0)
		next = lots[0].expires;	/* sorted: the first expires first */
	for (int i = 0; i < b->npending; i++)
		next = Min(next, Min(pending[i].release, pending[i].expires));
	if (next == DT_NOEND)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}

Datum
lots_settle(PG_FUNCTION_ARGS)
{
	LotsBuf		buf,
				released;

	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&released);
	lotsbuf_settle(&buf, PG_GETARG_TIMESTAMPTZ(1), &released);
	return pair_result(fcinfo, &buf, &released);
}

Datum
lots_merge(PG_FUNCTION_ARGS)
{
	LotsBuf		a,
				b;

	load(&a, PG_GETARG_DATUM(0));
	load(&b, PG_GETARG_DATUM(1));
	lotsbuf_merge(&a, &b);
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&a));
}

Datum
lots_subtract(PG_FUNCTION_ARGS)
{
	LotsBuf		a,
				b;

	load(&a, PG_GETARG_DATUM(0));
	load(&b, PG_GETARG_DATUM(1));
	lotsbuf_subtract(&a, &b);
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&a));
}

/*
 * Apply one ledger entry to state: op is 'credit' (lots added), 'debit' (lots
 * removed) or 'release' (pending lots become usable).  With checked, a debit
 * or release of lots that state does not hold returns false and leaves state
 * as it was; otherwise that is error LY006.
 */
static bool
apply_entry(LotsBuf *state, LotsBuf *delta, const char *op, bool checked)
{
	if (strcmp(op, "credit") == 0)
		lotsbuf_merge(state, delta);
	else if (strcmp(op, "debit") == 0)
	{
		if (checked && !lotsbuf_holds(state, delta))
			return false;
		lotsbuf_subtract(state, delta);
	}
	else if (strcmp(op, "release") == 0)
	{
		/* the released pending lots leave pending and arrive as lots */
		LotsBuf		pend = *delta;

		pend.nlots = 0;
		pend.debt = 0;
		if (checked && !lotsbuf_holds(state, &pend))
			return false;
		lotsbuf_subtract(state, &pend);
		for (int i = 0; i < delta->npending; i++)
			lotsbuf_add_lot(state, delta->pending[i].points, delta->pending[i].expires);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown replay operation \"%s\"", op),
				 errhint("Use credit, debit or release.")));
	return true;
}

/*
 * Replay one ledger entry: the transition function of loyalty.replay().
 * A NULL state is an empty balance.
 */
Datum
lots_apply(PG_FUNCTION_ARGS)
{
	LotsBuf		state,
				delta;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("replay operation must not be null")));
	if (PG_ARGISNULL(0))
		lotsbuf_init(&state);
	else
		load(&state, PG_GETARG_DATUM(0));
	if (PG_ARGISNULL(1))
		PG_RETURN_LOTS_P(lotsbuf_to_lots(&state));
	load(&delta, PG_GETARG_DATUM(1));
	apply_entry(&state, &delta, text_to_cstring(PG_GETARG_TEXT_PP(2)), false);
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&state));
}

/*
 * The transition function of loyalty._replay_checked(), for verify(): as
 * lots_apply, but NULL (which then stays NULL: the function is strict) where
 * the entry removes lots the replayed state does not hold, instead of an
 * error that would end verify() at the first such member.
 */
Datum
lots_apply_checked(PG_FUNCTION_ARGS)
{
	LotsBuf		state,
				delta;

	load(&state, PG_GETARG_DATUM(0));
	load(&delta, PG_GETARG_DATUM(1));
	if (!apply_entry(&state, &delta, text_to_cstring(PG_GETARG_TEXT_PP(2)), true))
		PG_RETURN_NULL();
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&state));
}

Datum
lots_available(PG_FUNCTION_ARGS)
{
	LotsBuf		buf;

	load(&buf, PG_GETARG_DATUM(0));
	PG_RETURN_INT64(lotsbuf_available(&buf, PG_GETARG_TIMESTAMPTZ(1)));
}

Datum
lots_pending(PG_FUNCTION_ARGS)
{
	LotsBuf		buf;

	load(&buf, PG_GETARG_DATUM(0));
	PG_RETURN_INT64(lotsbuf_pending(&buf, PG_GETARG_TIMESTAMPTZ(1)));
}

Datum
lots_expiring(PG_FUNCTION_ARGS)
{
	LotsBuf		buf;

	load(&buf, PG_GETARG_DATUM(0));
	PG_RETURN_INT64(lotsbuf_expiring(&buf, PG_GETARG_TIMESTAMPTZ(1), PG_GETARG_TIMESTAMPTZ(2)));
}

/* sum of all lots; cannot overflow: validated values keep it in a bigint */
static int64
lots_sum(const Lots *b)
{
	Lot		   *lots = LOTS_ARRAY(b);
	PendingLot *pend = LOTS_PENDING(b);
	int64		sum = 0;

	for (int i = 0; i < b->nlots; i++)
		sum += lots[i].points;
	for (int i = 0; i < b->npending; i++)
		sum += pend[i].points;
	return sum;
}

Datum
lots_total(PG_FUNCTION_ARGS)
{
	Lots	   *b = PG_GETARG_LOTS_P(0);

	PG_RETURN_INT64(lots_sum(b) - b->debt);
}

Datum
lots_debt(PG_FUNCTION_ARGS)
{
	Lots	   *b = PG_GETARG_LOTS_P(0);

	PG_RETURN_INT64(b->debt);
}

/* points held in lots and pending lots, before debt */
Datum
lots_points(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(lots_sum(PG_GETARG_LOTS_P(0)));
}

typedef struct SettlementCache
{
	TupleDesc	tupdesc;		/* blessed result row type */
	int16		typlen;			/* of loyalty.lots */
	bool		typbyval;
	char		typalign;
} SettlementCache;

/*
 * Everything settling at as_of writes, in one call: the remaining lots and
 * the ledger entries as parallel arrays (kind, points, lots, effective_at):
 * a 'release' per pending lot released, then an 'expire' per lot expired,
 * each effective at its own instant -- what loyalty._settle_lots() writes.
 * Built for set-based maintenance: unnest() the arrays into the ledger.
 */
Datum
lots_settlement(PG_FUNCTION_ARGS)
{
	Oid			lots_type = get_fn_expr_argtype(fcinfo->flinfo, 0);
	TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(1);
	LotsBuf		buf,
				released,
				expired;
	int			n,
				k = 0;
	Datum	   *kinds,
			   *points,
			   *lots,
			   *at;
	SettlementCache *cache = (SettlementCache *) fcinfo->flinfo->fn_extra;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	/* run_maintenance calls this once per due member: look types up once */
	if (cache == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		TupleDesc	tupdesc;

		if (!OidIsValid(lots_type))
			elog(ERROR, "could not determine the type of the lots argument");
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("function returning record called in context that cannot accept type record")));
		cache = palloc(sizeof(SettlementCache));
		cache->tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		get_typlenbyvalalign(lots_type, &cache->typlen, &cache->typbyval, &cache->typalign);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = cache;
	}
	load(&buf, PG_GETARG_DATUM(0));
	lotsbuf_init(&released);
	lotsbuf_init(&expired);
	lotsbuf_settle(&buf, as_of, &released);
	lotsbuf_expire(&buf, as_of, &expired);

	n = released.npending + expired.nlots;
	kinds = palloc(sizeof(Datum) * Max(n, 1));
	points = palloc(sizeof(Datum) * Max(n, 1));
	lots = palloc(sizeof(Datum) * Max(n, 1));
	at = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < released.npending; i++, k++)
	{
		PendingLot *p = &released.pending[i];

		kinds[k] = CStringGetTextDatum("release");
		points[k] = Int64GetDatum(0);
		lots[k] = PointerGetDatum(lots_single(p->points, p->release, p->expires, true));
		at[k] = TimestampTzGetDatum(p->release);
	}
	for (int i = 0; i < expired.nlots; i++, k++)
	{
		Lot		   *l = &expired.lots[i];

		kinds[k] = CStringGetTextDatum("expire");
		points[k] = Int64GetDatum(-l->points);
		lots[k] = PointerGetDatum(lots_single(l->points, 0, l->expires, false));
		at[k] = TimestampTzGetDatum(l->expires);
	}
	values[0] = PointerGetDatum(lotsbuf_to_lots(&buf));
	values[1] = PointerGetDatum(construct_array(kinds, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(points, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(lots, n, lots_type, cache->typlen,
												cache->typbyval, cache->typalign));
	values[4] = PointerGetDatum(construct_array(at, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(cache->tupdesc, values, nulls)));
}

/* One row per lot: (state, points, release_at, expires_at). */
Datum
lots_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Lots	   *b = PG_GETARG_LOTS_P(0);
	Lot		   *lots = LOTS_ARRAY(b);
	PendingLot *pend = LOTS_PENDING(b);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < b->nlots; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, true, false, false};

		values[0] = CStringGetTextDatum("lot");
		values[1] = (Datum) 0;
		values[2] = TimestampTzGetDatum(lots[i].expires);
		values[3] = Int64GetDatum(lots[i].points);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < b->npending; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum("pending");
		values[1] = TimestampTzGetDatum(pend[i].release);
		values[2] = TimestampTzGetDatum(pend[i].expires);
		values[3] = Int64GetDatum(pend[i].points);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (b->debt > 0)
	{
		Datum		values[4];
		bool		nulls[4] = {false, true, true, false};

		values[0] = CStringGetTextDatum("debt");
		values[1] = values[2] = (Datum) 0;
		values[3] = Int64GetDatum(-b->debt);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* values are stored canonical (sorted, merged) */
Datum
lots_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(loyalty_bytes_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

Datum
lots_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!loyalty_bytes_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}
