/*
 * Overflow-checked arithmetic: loyalty never lets a points total wrap.
 */
#ifndef LOYALTY_UTIL_H
#define LOYALTY_UTIL_H

#include "postgres.h"
#include "common/int.h"

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

#endif
