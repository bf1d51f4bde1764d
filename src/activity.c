/*
 * loyalty.activity: monthly buckets and their arithmetic (text and binary
 * I/O are in activity_io.c, the SQL functions in activity_funcs.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "common/int.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "activity.h"
#include "loyalty_tz.h"
#include "loyalty_util.h"

static inline int128
i64abs(int64 v)
{
	return v < 0 ? -(int128) v : (int128) v;
}

/*
 * The absolute values of each field, over "before" and every bucket, add up
 * to at most the bigint maximum.  Then no sum of buckets (a window, a
 * lifetime total) can overflow, and the reports built on them answer for
 * every member: an absurd purchase is refused at the door, for its member
 * only, instead of failing every report later.
 */
static void
check_totals(const ActivityBucket *before, const ActivityBucket *buckets, int nbuckets)
{
	static const char *const fields[3] = {"spend", "orders", "points"};
	int128		total[3];

	total[0] = i64abs(before->spend);
	total[1] = i64abs(before->orders);
	total[2] = i64abs(before->points);
	for (int i = 0; i < nbuckets; i++)
	{
		total[0] += i64abs(buckets[i].spend);
		total[1] += i64abs(buckets[i].orders);
		total[2] += i64abs(buckets[i].points);
	}
	for (int f = 0; f < 3; f++)
		if (total[f] > PG_INT64_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("%s total out of range for loyalty.activity", fields[f]),
					 errdetail("A member's purchase %s, added up over all months, must fit in a bigint%s.",
							   fields[f], f == 0 ? " of ten-thousandths (922,337,203,685,477.5807)" : ""),
					 errhint("One purchase of this size is refused so that the reports stay right for every member.")));
}

Activity *
activity_build(const ActivityBucket *before, const ActivityBucket *buckets, int nbuckets)
{
	Size		size = ACTIVITY_SIZE(nbuckets);
	Activity   *a = palloc0(size);
	ActivityBucket *dst = ACTIVITY_BUCKETS(a);

	Assert(nbuckets >= 0 && nbuckets <= ACTIVITY_MAX_MONTHS);
	check_totals(before, buckets, nbuckets);
	SET_VARSIZE(a, size);
	a->nbuckets = nbuckets;
	/* field by field: padding stays zero, so equal values are equal bytes */
	a->before.spend = before->spend;
	a->before.orders = before->orders;
	a->before.points = before->points;
	for (int i = 0; i < nbuckets; i++)
	{
		dst[i].month = buckets[i].month;
		dst[i].spend = buckets[i].spend;
		dst[i].orders = buckets[i].orders;
		dst[i].points = buckets[i].points;
	}
	return a;
}

Activity *
activity_empty(void)
{
	ActivityBucket none = {0};

	return activity_build(&none, NULL, 0);
}

static int64
add_checked(int64 a, int64 b, const char *what)
{
	int64		r;

	if (pg_add_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s total out of range", what),
				 errdetail("%lld + %lld does not fit in a bigint.",
						   (long long) a, (long long) b)));
	return r;
}

static void
bucket_add(ActivityBucket *b, int64 spend, int64 orders, int64 points)
{
	b->spend = add_checked(b->spend, spend, "spend");
	b->orders = add_checked(b->orders, orders, "orders");
	b->points = add_checked(b->points, points, "points");
}

static void
check_month(int32 month)
{
	if (month < ACTIVITY_MIN_MONTH || month > ACTIVITY_MAX_MONTH)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("month out of range for loyalty.activity"),
				 errdetail("Months must be in the years 1 to 9999.")));
}

/*
 * A month not yet in the value gets a new bucket, unless the history is full
 * and the month is older than every kept bucket: then it was (or would at
 * once be) folded, and goes to "before".
 */
Activity *
activity_apply(const Activity *a, int32 month, int64 spend, int64 orders, int64 points)
{
	const ActivityBucket *old = ACTIVITY_BUCKETS(a);
	int			n = a->nbuckets;
	ActivityBucket before = a->before;
	ActivityBucket *buckets = palloc0(sizeof(ActivityBucket) * (n + 1));
	int			pos = 0;
	Activity   *result;

	check_month(month);
	while (pos < n && old[pos].month < month)
		pos++;
	memcpy(buckets, old, sizeof(ActivityBucket) * n);
	if (pos < n && old[pos].month == month)
		bucket_add(&buckets[pos], spend, orders, points);
	else if (pos == 0 && n == ACTIVITY_MAX_MONTHS)
		bucket_add(&before, spend, orders, points);
	else
	{
		memmove(&buckets[pos + 1], &buckets[pos], sizeof(ActivityBucket) * (n - pos));
		buckets[pos].month = month;
		buckets[pos].spend = spend;
		buckets[pos].orders = orders;
		buckets[pos].points = points;
		n++;
	}
	/* only one bucket is ever added, so at most one is folded */
	if (n > ACTIVITY_MAX_MONTHS)
	{
		bucket_add(&before, buckets[0].spend, buckets[0].orders, buckets[0].points);
		result = activity_build(&before, buckets + 1, n - 1);
	}
	else
		result = activity_build(&before, buckets, n);
	pfree(buckets);
	return result;
}

void
activity_window_sum(const Activity *a, int32 from_month, int32 to_month, bool include_before,
					int64 *spend, int64 *orders, int64 *points)
{
	const ActivityBucket *b = ACTIVITY_BUCKETS(a);
	ActivityBucket sum = {0};

	if (include_before)
		sum = a->before;
	for (int i = 0; i < a->nbuckets; i++)
		if (b[i].month >= from_month && b[i].month <= to_month)
			bucket_add(&sum, b[i].spend, b[i].orders, b[i].points);
	*spend = sum.spend;
	*orders = sum.orders;
	*points = sum.points;
}

int32
activity_month_of(TimestampTz at, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;

	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp must be finite"),
				 errdetail("An infinite instant has no calendar month.")));
	if (timestamp2tm(at, &tzoff, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return tm.tm_year * MONTHS_PER_YEAR + (tm.tm_mon - 1);
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

/* ten-thousandths, rounded half away from zero (numeric's round) */
int64
activity_spend_from_numeric(Numeric amount)
{
	static Numeric spend_scale = NULL,
				spend_min = NULL,
				spend_max = NULL;
	Datum		scaled;

	if (numeric_is_nan(amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("spend must not be NaN")));
	if (numeric_is_inf(amount))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("spend out of range for loyalty.activity"),
				 errdetail("Spend must be finite.")));
	/* the constants once per backend: a bulk load converts every purchase */
	if (spend_scale == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		spend_min = int64_to_numeric(PG_INT64_MIN);
		spend_max = int64_to_numeric(PG_INT64_MAX);
		spend_scale = int64_to_numeric(10000);	/* 10^ACTIVITY_SPEND_SCALE */
		MemoryContextSwitchTo(old);
	}
	scaled = DirectFunctionCall2(numeric_mul, NumericGetDatum(amount), NumericGetDatum(spend_scale));
	scaled = DirectFunctionCall2(numeric_round, scaled, Int32GetDatum(0));
	if (numeric_compare(DatumGetNumeric(scaled), spend_min) < 0 ||
		numeric_compare(DatumGetNumeric(scaled), spend_max) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("spend out of range for loyalty.activity"),
				 errdetail("Spend must be between -922337203685477.5808 and 922337203685477.5807.")));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, scaled));
}

/* without trailing zeros, as the text form prints it */
Numeric
activity_spend_to_numeric(int64 spend)
{
	Datum		n = NumericGetDatum(int64_div_fast_to_numeric(spend, ACTIVITY_SPEND_SCALE));

	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, n));
}

static void
invalid(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid loyalty.activity value"),
			 errdetail("%s", detail)));
}

void
activity_validate(const Activity *a, Size size)
{
	const ActivityBucket *b;

	if (size < sizeof(Activity))
		invalid("The value is truncated.");
	if (a->nbuckets < 0 || a->nbuckets > ACTIVITY_MAX_MONTHS)
		invalid("The bucket count is out of range.");
	if (size != ACTIVITY_SIZE(a->nbuckets))
		invalid("The size does not match the bucket count.");
	b = ACTIVITY_BUCKETS(a);
	for (int i = 0; i < a->nbuckets; i++)
	{
		if (b[i].month < ACTIVITY_MIN_MONTH || b[i].month > ACTIVITY_MAX_MONTH)
			invalid("A month is out of range.");
		if (i > 0 && b[i - 1].month >= b[i].month)
			invalid("Months are not strictly ascending.");
	}
}

/* the first day of a month */
DateADT
activity_month_date(int32 month)
{
	int			year = month / MONTHS_PER_YEAR;
	int			mon = month % MONTHS_PER_YEAR;

	if (mon < 0)
	{
		mon += MONTHS_PER_YEAR;
		year--;
	}
	return date2j(year, mon + 1, 1) - POSTGRES_EPOCH_JDATE;
}
