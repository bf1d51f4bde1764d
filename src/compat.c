/*
 * C symbols kept for the frozen 0.1 install script.
 *
 * sql/loyalty--0.1.sql is released and never changes, and it names these
 * symbols.  Their functions now carry the names of the one scheme (a
 * type's prefix for its support functions, loyalty_ for the rest) and
 * later versions' scripts name those; each old name here is only an alias
 * that calls the new function with the same arguments.
 */
#include "postgres.h"

#include "fmgr.h"

/* activity_funcs.c */
extern Datum activity_add(PG_FUNCTION_ARGS);
extern Datum activity_add_at(PG_FUNCTION_ARGS);
extern Datum activity_buckets(PG_FUNCTION_ARGS);
extern Datum activity_eq(PG_FUNCTION_ARGS);
extern Datum activity_month(PG_FUNCTION_ARGS);
extern Datum activity_ne(PG_FUNCTION_ARGS);
extern Datum activity_sum(PG_FUNCTION_ARGS);
extern Datum activity_total(PG_FUNCTION_ARGS);

/* maintenance.c */
extern Datum loyalty_maintain_parallel(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(loyalty_activity_add);
PG_FUNCTION_INFO_V1(loyalty_activity_add_at);
PG_FUNCTION_INFO_V1(loyalty_activity_buckets);
PG_FUNCTION_INFO_V1(loyalty_activity_eq);
PG_FUNCTION_INFO_V1(loyalty_activity_month);
PG_FUNCTION_INFO_V1(loyalty_activity_ne);
PG_FUNCTION_INFO_V1(loyalty_activity_sum);
PG_FUNCTION_INFO_V1(loyalty_activity_total);
PG_FUNCTION_INFO_V1(maintain_parallel);

Datum
loyalty_activity_add(PG_FUNCTION_ARGS)
{
	return activity_add(fcinfo);
}

Datum
loyalty_activity_add_at(PG_FUNCTION_ARGS)
{
	return activity_add_at(fcinfo);
}

Datum
loyalty_activity_buckets(PG_FUNCTION_ARGS)
{
	return activity_buckets(fcinfo);
}

Datum
loyalty_activity_eq(PG_FUNCTION_ARGS)
{
	return activity_eq(fcinfo);
}

Datum
loyalty_activity_month(PG_FUNCTION_ARGS)
{
	return activity_month(fcinfo);
}

Datum
loyalty_activity_ne(PG_FUNCTION_ARGS)
{
	return activity_ne(fcinfo);
}

Datum
loyalty_activity_sum(PG_FUNCTION_ARGS)
{
	return activity_sum(fcinfo);
}

Datum
loyalty_activity_total(PG_FUNCTION_ARGS)
{
	return activity_total(fcinfo);
}

Datum
maintain_parallel(PG_FUNCTION_ARGS)
{
	return loyalty_maintain_parallel(fcinfo);
}
