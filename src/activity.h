/*
 * loyalty.activity: a member's purchase activity in calendar-month buckets.
 *
 * Tier qualification asks "spend, orders and points over the last N months";
 * monthly buckets answer that without scanning purchases.  The most recent
 * ACTIVITY_MAX_MONTHS buckets are kept, sorted by month; older ones are
 * folded into the "before" bucket, which still counts for lifetime totals.
 *
 * A bucket once created is kept even when its values return to zero, so a
 * value never shrinks: once the history is full, every month older than the
 * oldest kept bucket belongs to "before" (a refund for a folded month lands
 * there, never in a new bucket).
 */
#ifndef LOYALTY_ACTIVITY_H
#define LOYALTY_ACTIVITY_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/date.h"
#include "utils/numeric.h"

typedef struct ActivityBucket
{
	int32		month;			/* year * 12 + (month - 1); 0 in "before" */
	int64		spend;			/* ten-thousandths of the currency unit */
	int64		orders;
	int64		points;
} ActivityBucket;

typedef struct Activity
{
	int32		vl_len_;
	int32		nbuckets;
	ActivityBucket before;		/* totals folded from older buckets */
	/* ActivityBucket buckets[nbuckets], strictly ascending by month */
} Activity;

#define ACTIVITY_MAX_MONTHS		120
/* months of years 1 to 9999 */
#define ACTIVITY_MIN_MONTH		(1 * 12)
#define ACTIVITY_MAX_MONTH		(9999 * 12 + 11)
/* spend is stored with 4 decimals */
#define ACTIVITY_SPEND_SCALE	4

#define ACTIVITY_BUCKETS(a)		((ActivityBucket *) ((char *) (a) + sizeof(Activity)))
#define ACTIVITY_SIZE(n)		(sizeof(Activity) + (Size) (n) * sizeof(ActivityBucket))

#define DatumGetActivityP(X)		((Activity *) PG_DETOAST_DATUM(X))
#define PG_GETARG_ACTIVITY_P(n)		DatumGetActivityP(PG_GETARG_DATUM(n))
#define PG_RETURN_ACTIVITY_P(x)		PG_RETURN_POINTER(x)

extern Activity *activity_empty(void);
extern Activity *activity_build(const ActivityBucket *before,
								const ActivityBucket *buckets, int nbuckets);
extern Activity *activity_apply(const Activity *a, int32 month, int64 spend,
								int64 orders, int64 points);
extern void activity_window_sum(const Activity *a, int32 from_month, int32 to_month,
								bool include_before, int64 *spend, int64 *orders,
								int64 *points);
extern int32 activity_month_of(TimestampTz at, pg_tz *tz);
extern DateADT activity_month_date(int32 month);
extern int64 activity_spend_from_numeric(Numeric amount);
extern Numeric activity_spend_to_numeric(int64 spend);
extern void activity_validate(const Activity *a, Size size);

#endif
