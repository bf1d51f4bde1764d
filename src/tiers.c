/*
 * Tier qualification: which rung of the program's tier ladder (loaded with
 * the program into the per-backend cache, program.c) a member's activity
 * reaches over the program's window.  The purchase trigger upgrades from
 * here without leaving C; everything else about tiers (validity,
 * downgrades, history) is SQL, because it happens once per tier change, not
 * once per purchase.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "activity.h"
#include "tiers.h"

PG_FUNCTION_INFO_V1(loyalty_tier_qualified);
PG_FUNCTION_INFO_V1(loyalty_tier_window_dates);

/* The months of activity that count at as_of, in the program's zone. */
void
loyalty_tier_window(ProgramConf *prog, TimestampTz as_of, int32 *from_month, int32 *to_month,
					bool *include_before)
{
	int32		now_month = activity_month_of(as_of, prog->tz);

	*to_month = now_month;
	*include_before = false;
	switch (prog->tier_window)
	{
		case TIER_WINDOW_ROLLING:
			*from_month = now_month - prog->tier_window_months + 1;
			break;
		case TIER_WINDOW_CALENDAR_YEAR:
			*from_month = now_month - now_month % 12;
			break;
		case TIER_WINDOW_LIFETIME:
			*from_month = PG_INT32_MIN;
			*include_before = true;
			break;
	}
}

static bool
qualifies(const TierConf *t, int64 spend, int64 orders, int64 points)
{
	bool		any = false,
				all = true,
				set = false;

#define CHECK(min, have) \
	if ((min) >= 0) { bool ok = (have) >= (min); set = true; any |= ok; all &= ok; }
	CHECK(t->min_spend, spend);
	CHECK(t->min_orders, orders);
	CHECK(t->min_points, points);
#undef CHECK
	if (!set)
		return true;			/* the base tier: everyone */
	return t->combine_all ? all : any;
}

/* The highest tier the activity qualifies for at as_of; NULL if none. */
const TierConf *
loyalty_qualified_tier(ProgramConf *prog, const Activity *a, TimestampTz as_of)
{
	int32		from,
				to;
	bool		before;
	int64		spend,
				orders,
				points;

	if (prog->ntiers == 0)
		return NULL;
	loyalty_tier_window(prog, as_of, &from, &to, &before);
	activity_window_sum(a, from, to, before, &spend, &orders, &points);
	for (int i = prog->ntiers - 1; i >= 0; i--)
		if (qualifies(&prog->tiers[i], spend, orders, points))
			return &prog->tiers[i];
	return NULL;
}

const TierConf *
loyalty_tier_named(ProgramConf *prog, const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < prog->ntiers; i++)
		if (strcmp(prog->tiers[i].name, name) == 0)
			return &prog->tiers[i];
	return NULL;
}

/* loyalty._tier_qualified(program_id, activity, as_of) RETURNS text */
Datum
loyalty_tier_qualified(PG_FUNCTION_ARGS)
{
	ProgramConf *prog;
	const TierConf *t;
	TimestampTz as_of;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	as_of = PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tier qualification needs a finite instant")));
	prog = loyalty_program_conf(PG_GETARG_INT32(0));
	t = loyalty_qualified_tier(prog, PG_GETARG_ACTIVITY_P(1), as_of);
	if (t == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(t->name));
}

/*
 * loyalty._tier_window(program_id, as_of, OUT window_from date, OUT
 * window_to date): the months the qualification counts, as first days of
 * months; window_from is -infinity for a lifetime window.  The same
 * window the trigger qualifies on, for tier_progress().
 */
Datum
loyalty_tier_window_dates(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(1);
	ProgramConf *prog;
	TupleDesc	tupdesc;
	int32		from,
				to;
	bool		before;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tier qualification needs a finite instant")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	prog = loyalty_program_conf(PG_GETARG_INT32(0));
	loyalty_tier_window(prog, as_of, &from, &to, &before);
	if (before)
		values[0] = DateADTGetDatum(DATEVAL_NOBEGIN);
	else
		values[0] = DateADTGetDatum(activity_month_date(from));
	values[1] = DateADTGetDatum(activity_month_date(to));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
