/*
 * Calendar arithmetic in a program's time zone.
 *
 * PostgreSQL 15 adds intervals in the session's TimeZone only; a program's
 * expiry ("1 month after earning", "end of the month") must not change with
 * the TimeZone of whoever happens to call.  loyalty.tz_add() follows the
 * rules of timestamptz + interval with an explicit zone: months and days
 * move the local wall-clock date (DST-safe), the time part is elapsed time.
 */
#include "postgres.h"

#include "fmgr.h"
#include "common/int.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "loyalty_tz.h"

PG_FUNCTION_INFO_V1(loyalty_tz_add);
PG_FUNCTION_INFO_V1(loyalty_valid_time_zone);
PG_FUNCTION_INFO_V1(loyalty_interval_sign);

pg_tz *
loyalty_lookup_tz(const char *name)
{
	pg_tz	   *tz = pg_tzset(name);

	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", name),
				 errhint("Use a name from pg_timezone_names, such as Europe/Berlin or UTC.")));
	return tz;
}

static void
out_of_range(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

TimestampTz
loyalty_tz_add_internal(TimestampTz ts, const Interval *span, pg_tz *zone)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;

	if (span->month != 0 || span->day != 0)
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int			tz;

		if (timestamp2tm(ts, &tz, &tm, &fsec, NULL, zone) != 0)
			out_of_range();
		if (span->month != 0)
		{
			int			months = tm.tm_year * MONTHS_PER_YEAR + (tm.tm_mon - 1);

			if (pg_add_s32_overflow(months, span->month, &months))
				out_of_range();
			tm.tm_year = months / MONTHS_PER_YEAR;
			tm.tm_mon = months % MONTHS_PER_YEAR + 1;
			if (tm.tm_mon <= 0)
			{
				tm.tm_mon += MONTHS_PER_YEAR;
				tm.tm_year--;
			}
			/* Jan 31 + 1 month = Feb 28 (29): clamp as PostgreSQL does */
			if (tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1])
				tm.tm_mday = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
		}
		if (span->day != 0)
		{
			int			julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);

			if (pg_add_s32_overflow(julian, span->day, &julian))
				out_of_range();
			j2date(julian, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
		}
		/* a wall-clock time that DST skips or repeats resolves as PostgreSQL does */
		tz = DetermineTimeZoneOffset(&tm, zone);
		if (tm2timestamp(&tm, fsec, &tz, &ts) != 0)
			out_of_range();
	}
	if (pg_add_s64_overflow(ts, span->time, &ts) || !IS_VALID_TIMESTAMP(ts))
		out_of_range();
	return ts;
}

Datum
loyalty_tz_add(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	Interval   *span = PG_GETARG_INTERVAL_P(1);
	char	   *zone = text_to_cstring(PG_GETARG_TEXT_PP(2));

	PG_RETURN_TIMESTAMPTZ(loyalty_tz_add_internal(ts, span, loyalty_lookup_tz(zone)));
}

Datum
loyalty_valid_time_zone(PG_FUNCTION_ARGS)
{
	char	   *zone = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(pg_tzset(zone) != NULL);
}

/*
 * 1 if every field of the interval is >= 0 and one is > 0, 0 if all are 0,
 * -1 otherwise.  interval > '0' alone counts a month as 30 days, so it
 * would accept '1 mon -29 days', which runs backwards in February.
 */
Datum
loyalty_interval_sign(PG_FUNCTION_ARGS)
{
	Interval   *span = PG_GETARG_INTERVAL_P(0);

	if (span->month < 0 || span->day < 0 || span->time < 0)
		PG_RETURN_INT32(-1);
	PG_RETURN_INT32(span->month > 0 || span->day > 0 || span->time > 0 ? 1 : 0);
}
