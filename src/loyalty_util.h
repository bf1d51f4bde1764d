/*
 * Overflow-checked arithmetic: loyalty never lets a points total wrap.
 */
#ifndef LOYALTY_UTIL_H
#define LOYALTY_UTIL_H

#include "postgres.h"
#include "common/int.h"
#include "fmgr.h"

static inline int64
loyalty_add_points(int64 a, int64 b)
{
	int64		r;

	if (pg_add_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("points total out of range"),
				 errdetail("%lld + %lld does not fit in a bigint.",
						   (long long) a, (long long) b)));
	return r;
}

static inline int64
loyalty_sub_points(int64 a, int64 b)
{
	int64		r;

	if (pg_sub_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("points total out of range"),
				 errdetail("%lld - %lld does not fit in a bigint.",
						   (long long) a, (long long) b)));
	return r;
}

/*
 * Equality of two values of a canonical varlena type whose builders zero
 * any padding (loyalty.lots, loyalty.activity): equal values, equal bytes.
 */
static inline bool
loyalty_bytes_equal(Datum a, Datum b)
{
	struct varlena *x = PG_DETOAST_DATUM(a);
	struct varlena *y = PG_DETOAST_DATUM(b);

	return VARSIZE(x) == VARSIZE(y) && memcmp(x, y, VARSIZE(x)) == 0;
}

#endif
