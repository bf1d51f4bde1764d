/*
 * Text and binary I/O for loyalty.lots.
 *
 * Text form, items in any order on input, canonical order on output:
 *   {100 until 2027-01-31 23:00:00+00, 50 until infinity,
 *    pending 20 from 2026-12-01 00:00:00+00 until infinity, debt 5}
 * Timestamps are printed in UTC so that the text does not depend on the
 * session's TimeZone or DateStyle (pg_dump and restore round-trip it).
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "lots.h"
#include "loyalty_util.h"

PG_FUNCTION_INFO_V1(lots_in);
PG_FUNCTION_INFO_V1(lots_out);
PG_FUNCTION_INFO_V1(lots_recv);
PG_FUNCTION_INFO_V1(lots_send);

static void
syntax_error(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type loyalty.lots: \"%s\"", input),
			 errdetail("%s", detail),
			 errhint("Write lots as {100 until 2027-01-01 00:00:00+00, 5 until infinity, "
					 "pending 20 from 2026-12-01 00:00:00+00 until infinity, debt 3}.")));
}

static char *
skip_space(char *p)
{
	while (*p && isspace((unsigned char) *p))
		p++;
	return p;
}

/* a positive bigint; *p advances past it */
static int64
parse_points(char **p, const char *input)
{
	char	   *s = skip_space(*p);
	int64		v = 0;

	if (*s == '-')
		syntax_error(input, "Points must be positive.");
	if (!isdigit((unsigned char) *s))
		syntax_error(input, "Expected a number of points.");
	while (isdigit((unsigned char) *s))
	{
		if (pg_mul_s64_overflow(v, 10, &v) || pg_add_s64_overflow(v, *s - '0', &v))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("points value out of range in loyalty.lots input: \"%s\"", input),
					 errdetail("Points must fit in a bigint.")));
		s++;
	}
	if (*s && !isspace((unsigned char) *s))
		syntax_error(input, "Points must be a whole number.");
	*p = s;
	return v;
}

/* the keyword as a separate word, any case; NULL if absent */
static char *
find_word(char *s, const char *word)
{
	size_t		n = strlen(word);

	for (char *p = s; *p; p++)
		if ((p == s || isspace((unsigned char) p[-1])) &&
			pg_strncasecmp(p, word, n) == 0 && isspace((unsigned char) p[n]))
			return p;
	return NULL;
}

/* expect a keyword followed by a space */
static bool
take_word(char **p, const char *word)
{
	char	   *s = skip_space(*p);
	size_t		n = strlen(word);

	if (pg_strncasecmp(s, word, n) != 0 || !(s[n] == '\0' || isspace((unsigned char) s[n])))
		return false;
	*p = s + n;
	return true;
}

static TimestampTz
parse_ts(char *s, const char *input)
{
	s = skip_space(s);
	if (*s == '\0')
		syntax_error(input, "Expected a timestamp.");
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(s),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

static void
parse_item(LotsBuf *buf, char *item, const char *input)
{
	char	   *p = item;

	if (take_word(&p, "debt"))
	{
		int64		debt = parse_points(&p, input);

		if (*skip_space(p) != '\0')
			syntax_error(input, "Unexpected text after debt.");
		lotsbuf_add_debt(buf, debt);
	}
	else if (take_word(&p, "pending"))
	{
		int64		points = parse_points(&p, input);
		char	   *until;
		TimestampTz release,
					expires;

		if (!take_word(&p, "from"))
			syntax_error(input, "Expected \"from\" after pending points.");
		until = find_word(p, "until");
		if (until == NULL)
			syntax_error(input, "Expected \"until\" in a pending lot.");
		*until = '\0';
		release = parse_ts(p, input);
		expires = parse_ts(until + strlen("until"), input);
		if (points == 0)
			syntax_error(input, "A lot must hold at least one point.");
		lotsbuf_add_pending(buf, points, release, expires);
	}
	else
	{
		int64		points = parse_points(&p, input);

		if (!take_word(&p, "until"))
			syntax_error(input, "Expected \"until\" after the points of a lot.");
		if (points == 0)
			syntax_error(input, "A lot must hold at least one point.");
		lotsbuf_add_lot(buf, points, parse_ts(p, input));
	}
}

Datum
lots_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *copy = pstrdup(input);
	char	   *p = skip_space(copy);
	char	   *end;
	LotsBuf		buf;
	int64		debt = 0;

	lotsbuf_init(&buf);
	if (*p != '{')
		syntax_error(input, "A lots value starts with \"{\".");
	end = p + strlen(p);
	while (end > p && isspace((unsigned char) end[-1]))
		end--;
	if (end - p < 2 || end[-1] != '}')
		syntax_error(input, "A lots value ends with \"}\".");
	end[-1] = '\0';
	p++;

	if (*skip_space(p) != '\0')
	{
		for (;;)
		{
			char	   *comma = strchr(p, ',');

			CHECK_FOR_INTERRUPTS();
			if (comma)
				*comma = '\0';
			if (*skip_space(p) == '\0')
				syntax_error(input, "Empty item between commas.");
			parse_item(&buf, p, input);
			/* debt is applied last so that input order never matters */
			debt = loyalty_add_points(debt, buf.debt);
			buf.debt = 0;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	buf.debt = debt;
	PG_RETURN_LOTS_P(lotsbuf_to_lots(&buf));
}

static void
append_ts(StringInfo str, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	if (ts == DT_NOEND)
	{
		appendStringInfoString(str, "infinity");
		return;
	}
	/* no time zone argument: the broken-down time is UTC */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tm.tm_isdst = 0;			/* EncodeDateTime prints the zone only then */
	EncodeDateTime(&tm, fsec, true, 0, NULL, USE_ISO_DATES, buf);
	appendStringInfoString(str, buf);
}

Datum
lots_out(PG_FUNCTION_ARGS)
{
	Lots	   *b = PG_GETARG_LOTS_P(0);
	Lot		   *lots = LOTS_ARRAY(b);
	PendingLot *pend = LOTS_PENDING(b);
	StringInfoData str;
	bool		first = true;

	initStringInfo(&str);
	appendStringInfoChar(&str, '{');
	for (int i = 0; i < b->nlots; i++)
	{
		appendStringInfo(&str, "%s%lld until ", first ? "" : ", ", (long long) lots[i].points);
		append_ts(&str, lots[i].expires);
		first = false;
	}
	for (int i = 0; i < b->npending; i++)
	{
		appendStringInfo(&str, "%spending %lld from ", first ? "" : ", ", (long long) pend[i].points);
		append_ts(&str, pend[i].release);
		appendStringInfoString(&str, " until ");
		append_ts(&str, pend[i].expires);
		first = false;
	}
	if (b->debt > 0)
		appendStringInfo(&str, "%sdebt %lld", first ? "" : ", ", (long long) b->debt);
	appendStringInfoChar(&str, '}');
	PG_RETURN_CSTRING(str.data);
}

/*
 * Binary form: int32 nlots, int32 npending, int64 debt, then lots as
 * (int64 expires, int64 points) and pending lots as (int64 release,
 * int64 expires, int64 points).  Timestamps are microseconds since 2000.
 */
Datum
lots_recv(PG_FUNCTION_ARGS)
{
	StringInfo	msg = (StringInfo) PG_GETARG_POINTER(0);
	int32		nlots,
				npending;
	Size		size;
	Lots	   *b;
	Lot		   *lots;
	PendingLot *pend;

	if (msg->len - msg->cursor < 16)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.lots value"),
				 errdetail("The value is truncated.")));
	nlots = pq_getmsgint(msg, 4);
	npending = pq_getmsgint(msg, 4);
	if (nlots < 0 || npending < 0 || nlots > LOTS_MAX_LOTS || npending > LOTS_MAX_LOTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.lots value"),
				 errdetail("Lot counts are out of range.")));
	/* refuse before allocating if the message cannot hold that many lots */
	if ((Size) (msg->len - msg->cursor) != 8 + (Size) nlots * 16 + (Size) npending * 24)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.lots value"),
				 errdetail("The message length does not match the lot counts.")));
	size = LOTS_SIZE(nlots, npending);
	b = palloc0(size);
	SET_VARSIZE(b, size);
	b->nlots = nlots;
	b->npending = npending;
	b->debt = pq_getmsgint64(msg);
	lots = LOTS_ARRAY(b);
	pend = LOTS_PENDING(b);
	for (int i = 0; i < nlots; i++)
	{
		lots[i].expires = pq_getmsgint64(msg);
		lots[i].points = pq_getmsgint64(msg);
	}
	for (int i = 0; i < npending; i++)
	{
		pend[i].release = pq_getmsgint64(msg);
		pend[i].expires = pq_getmsgint64(msg);
		pend[i].points = pq_getmsgint64(msg);
	}
	lots_validate(b, size);
	PG_RETURN_LOTS_P(b);
}

Datum
lots_send(PG_FUNCTION_ARGS)
{
	Lots	   *b = PG_GETARG_LOTS_P(0);
	Lot		   *lots = LOTS_ARRAY(b);
	PendingLot *pend = LOTS_PENDING(b);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, b->nlots);
	pq_sendint32(&buf, b->npending);
	pq_sendint64(&buf, b->debt);
	for (int i = 0; i < b->nlots; i++)
	{
		pq_sendint64(&buf, lots[i].expires);
		pq_sendint64(&buf, lots[i].points);
	}
	for (int i = 0; i < b->npending; i++)
	{
		pq_sendint64(&buf, pend[i].release);
		pq_sendint64(&buf, pend[i].expires);
		pq_sendint64(&buf, pend[i].points);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}
