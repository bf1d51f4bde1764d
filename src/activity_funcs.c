/*
 * The SQL functions on loyalty.activity (the type's arithmetic is in
 * activity.c, its I/O in activity_io.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "activity.h"
#include "loyalty_tz.h"
#include "loyalty_util.h"

PG_FUNCTION_INFO_V1(activity_add);
PG_FUNCTION_INFO_V1(activity_add_at);
PG_FUNCTION_INFO_V1(activity_sum);
PG_FUNCTION_INFO_V1(activity_total);
PG_FUNCTION_INFO_V1(activity_buckets);
PG_FUNCTION_INFO_V1(activity_month);
PG_FUNCTION_INFO_V1(activity_eq);
PG_FUNCTION_INFO_V1(activity_ne);

/* the month containing a finite date (any year) */
static int32
date_month(DateADT d)
{
	int			year,
				mon,
				mday;

	j2date(d + POSTGRES_EPOCH_JDATE, &year, &mon, &mday);
	return year * MONTHS_PER_YEAR + (mon - 1);
}

static Activity *
add_common(FunctionCallInfo fcinfo, int32 month, int first)
{
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	int64		spend = activity_spend_from_numeric(PG_GETARG_NUMERIC(first));

	return activity_apply(a, month, spend, PG_GETARG_INT64(first + 1), PG_GETARG_INT64(first + 2));
}

Datum
activity_add(PG_FUNCTION_ARGS)
{
	DateADT		month = PG_GETARG_DATEADT(1);

	if (DATE_NOT_FINITE(month))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("month must be a finite date")));
	PG_RETURN_ACTIVITY_P(add_common(fcinfo, date_month(month), 2));
}

Datum
activity_add_at(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	pg_tz	   *tz = loyalty_lookup_tz(text_to_cstring(PG_GETARG_TEXT_PP(2)));

	PG_RETURN_ACTIVITY_P(add_common(fcinfo, activity_month_of(at, tz), 3));
}

/* (spend numeric, orders bigint, points bigint) */
static Datum
totals_result(FunctionCallInfo fcinfo, int64 spend, int64 orders, int64 points)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = NumericGetDatum(activity_spend_to_numeric(spend));
	values[1] = Int64GetDatum(orders);
	values[2] = Int64GetDatum(points);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/* -infinity and infinity are open ends; -infinity also takes in "before" */
static int32
window_end(DateADT d)
{
	if (DATE_IS_NOBEGIN(d))
		return PG_INT32_MIN;
	if (DATE_IS_NOEND(d))
		return PG_INT32_MAX;
	return date_month(d);
}

Datum
activity_sum(PG_FUNCTION_ARGS)
{
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	DateADT		from = PG_GETARG_DATEADT(1);
	DateADT		to = PG_GETARG_DATEADT(2);
	int32		from_month = window_end(from);
	int32		to_month = window_end(to);
	int64		spend,
				orders,
				points;

	if (from_month > to_month)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_month must not be after to_month"),
				 errdetail("The window runs from the month of %s to the month of %s.",
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(from))),
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(to))))));
	activity_window_sum(a, from_month, to_month, DATE_IS_NOBEGIN(from), &spend, &orders, &points);
	return totals_result(fcinfo, spend, orders, points);
}

Datum
activity_total(PG_FUNCTION_ARGS)
{
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	int64		spend,
				orders,
				points;

	activity_window_sum(a, PG_INT32_MIN, PG_INT32_MAX, true, &spend, &orders, &points);
	return totals_result(fcinfo, spend, orders, points);
}

/* One row per kept bucket, oldest first; "before" is not listed. */
Datum
activity_buckets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	ActivityBucket *b = ACTIVITY_BUCKETS(a);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < a->nbuckets; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = DateADTGetDatum(activity_month_date(b[i].month));
		values[1] = NumericGetDatum(activity_spend_to_numeric(b[i].spend));
		values[2] = Int64GetDatum(b[i].orders);
		values[3] = Int64GetDatum(b[i].points);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
activity_month(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(0);
	pg_tz	   *tz = loyalty_lookup_tz(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	PG_RETURN_DATEADT(activity_month_date(activity_month_of(at, tz)));
}

/* values are canonical and activity_build zeroes the padding */
Datum
activity_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(loyalty_bytes_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

Datum
activity_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!loyalty_bytes_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}
