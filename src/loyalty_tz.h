/*
 * Calendar arithmetic in a program's time zone (tz.c): a zone by name, and
 * an interval added to an instant in that zone, months and days on its
 * local calendar (DST-safe), whatever the session's TimeZone.
 */
#ifndef LOYALTY_TZ_H
#define LOYALTY_TZ_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "pgtime.h"

extern pg_tz *loyalty_lookup_tz(const char *name);
extern TimestampTz loyalty_tz_add_internal(TimestampTz ts, const Interval *span, pg_tz *zone);

#endif
