#ifndef LOYALTY_TZ_H
#define LOYALTY_TZ_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "pgtime.h"

extern pg_tz *loyalty_lookup_tz(const char *name);
extern TimestampTz loyalty_tz_add_internal(TimestampTz ts, const Interval *span, pg_tz *zone);

#endif
