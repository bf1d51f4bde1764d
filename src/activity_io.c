/*
 * Text and binary I/O for loyalty.activity.
 *
 * Text form, canonical on output (input also takes extra whitespace and
 * keywords in any case):
 *   {before: spend 10.5 orders 1 points 10,
 *    2026-01: spend 120.5 orders 3 points 240, 2026-02: spend 0 orders -1 points -20}
 * "before" is printed only when one of its values is not zero; spend is a
 * plain decimal without trailing zeros.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"

#include "activity.h"

PG_FUNCTION_INFO_V1(activity_in);
PG_FUNCTION_INFO_V1(activity_out);
PG_FUNCTION_INFO_V1(activity_recv);
PG_FUNCTION_INFO_V1(activity_send);

#define SPEND_UNIT	10000		/* 10 ^ ACTIVITY_SPEND_SCALE */

static void
syntax_error(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type loyalty.activity: \"%s\"", input),
			 errdetail("%s", detail),
			 errhint("Write activity as {before: spend 10.5 orders 1 points 10, "
					 "2026-01: spend 120.5 orders 3 points 240}.")));
}

static char *
skip_space(char *p)
{
	while (*p && isspace((unsigned char) *p))
		p++;
	return p;
}

/* a keyword, any case, not followed by a letter or digit */
static bool
take_word(char **p, const char *word)
{
	char	   *s = skip_space(*p);
	size_t		n = strlen(word);

	if (pg_strncasecmp(s, word, n) != 0 || isalnum((unsigned char) s[n]) || s[n] == '_')
		return false;
	*p = s + n;
	return true;
}

static bool
take_char(char **p, char c)
{
	char	   *s = skip_space(*p);

	if (*s != c)
		return false;
	*p = s + 1;
	return true;
}

static void
number_out_of_range(const char *input, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("%s value out of range in loyalty.activity input: \"%s\"", what, input),
			 strcmp(what, "spend") == 0 ?
			 errdetail("Spend must be between -922337203685477.5808 and 922337203685477.5807.") :
			 errdetail("Values of \"%s\" must fit in a bigint.", what)));
}

/*
 * [-]digits, or for spend [-]digits[.digits] in ten-thousandths, further
 * decimals rounded half away from zero.  Accumulated as a negative number
 * so that the most negative bigint is accepted.
 */
static int64
parse_number(char **p, const char *input, const char *what, bool decimal)
{
	char	   *s = skip_space(*p);
	bool		negative = false;
	int64		v = 0;

	if (*s == '-')
	{
		negative = true;
		s++;
	}
	if (!isdigit((unsigned char) *s))
		syntax_error(input, psprintf("Expected a number after \"%s\".", what));
	for (; isdigit((unsigned char) *s); s++)
		if (pg_mul_s64_overflow(v, 10, &v) || pg_sub_s64_overflow(v, *s - '0', &v))
			number_out_of_range(input, what);
	if (decimal)
	{
		int64		unit = SPEND_UNIT;

		if (pg_mul_s64_overflow(v, SPEND_UNIT, &v))
			number_out_of_range(input, what);
		if (*s == '.')
		{
			s++;
			if (!isdigit((unsigned char) *s))
				syntax_error(input, "Expected digits after the decimal point of spend.");
			for (int decimals = 0; isdigit((unsigned char) *s); s++, decimals++)
			{
				int64		down = 0;

				if (decimals < ACTIVITY_SPEND_SCALE)
				{
					unit /= 10;
					down = (*s - '0') * unit;
				}
				else if (decimals == ACTIVITY_SPEND_SCALE && *s >= '5')
					down = 1;	/* half away from zero; later digits do not matter */
				if (pg_sub_s64_overflow(v, down, &v))
					number_out_of_range(input, what);
			}
		}
	}
	if (isalnum((unsigned char) *s) || *s == '.' || *s == '_')
		syntax_error(input, decimal ? "Spend must be a plain decimal number." :
					 psprintf("Values of \"%s\" must be whole numbers.", what));
	if (!negative)
	{
		if (v == PG_INT64_MIN)
			number_out_of_range(input, what);
		v = -v;
	}
	*p = s;
	return v;
}

/* YYYY-MM, years 1 to 9999 */
static int32
parse_month(char **p, const char *input)
{
	char	   *s = skip_space(*p);
	int			year = 0,
				mon = 0;

	for (int i = 0; i < 7; i++)
		if (i == 4 ? s[i] != '-' : !isdigit((unsigned char) s[i]))
			syntax_error(input, "Expected a month as YYYY-MM, or \"before\".");
	if (isdigit((unsigned char) s[7]))
		syntax_error(input, "Expected a month as YYYY-MM, or \"before\".");
	for (int i = 0; i < 4; i++)
		year = year * 10 + (s[i] - '0');
	mon = (s[5] - '0') * 10 + (s[6] - '0');
	if (year < 1)
		syntax_error(input, "Years must be between 0001 and 9999.");
	if (mon < 1 || mon > MONTHS_PER_YEAR)
		syntax_error(input, "Months must be between 01 and 12.");
	*p = s + 7;
	return year * MONTHS_PER_YEAR + (mon - 1);
}

/* ": spend S orders N points N" */
static void
parse_values(char **p, const char *input, ActivityBucket *b)
{
	if (!take_char(p, ':'))
		syntax_error(input, "Expected \":\" after the month.");
	if (!take_word(p, "spend"))
		syntax_error(input, "Expected \"spend\" after the month.");
	b->spend = parse_number(p, input, "spend", true);
	if (!take_word(p, "orders"))
		syntax_error(input, "Expected \"orders\" after the spend.");
	b->orders = parse_number(p, input, "orders", false);
	if (!take_word(p, "points"))
		syntax_error(input, "Expected \"points\" after the orders.");
	b->points = parse_number(p, input, "points", false);
}

static char *
month_text(int32 month)
{
	return psprintf("%04d-%02d", month / MONTHS_PER_YEAR, month % MONTHS_PER_YEAR + 1);
}

Datum
activity_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *p = input;
	ActivityBucket before = {0};
	ActivityBucket buckets[ACTIVITY_MAX_MONTHS];
	int			n = 0;

	if (!take_char(&p, '{'))
		syntax_error(input, "An activity value starts with \"{\".");
	if (!take_char(&p, '}'))
	{
		for (bool first = true;; first = false)
		{
			CHECK_FOR_INTERRUPTS();
			if (take_word(&p, "before"))
			{
				if (!first)
					syntax_error(input, "\"before\" must come first.");
				parse_values(&p, input, &before);
			}
			else
			{
				ActivityBucket b = {0};

				b.month = parse_month(&p, input);
				if (n > 0 && buckets[n - 1].month >= b.month)
					syntax_error(input, psprintf("Months must be strictly ascending: %s follows %s.",
												 month_text(b.month), month_text(buckets[n - 1].month)));
				if (n == ACTIVITY_MAX_MONTHS)
					syntax_error(input, psprintf("An activity value holds at most %d months.",
												 ACTIVITY_MAX_MONTHS));
				parse_values(&p, input, &b);
				buckets[n++] = b;
			}
			if (take_char(&p, ','))
				continue;
			if (take_char(&p, '}'))
				break;
			syntax_error(input, "Expected \",\" or \"}\" after a bucket.");
		}
	}
	if (*skip_space(p) != '\0')
		syntax_error(input, "Unexpected text after \"}\".");
	PG_RETURN_ACTIVITY_P(activity_build(&before, buckets, n));
}

static void
append_values(StringInfo str, const ActivityBucket *b)
{
	uint64		mag = b->spend < 0 ? -(uint64) b->spend : (uint64) b->spend;
	int			frac = (int) (mag % SPEND_UNIT);

	appendStringInfo(str, ": spend %s%llu", b->spend < 0 ? "-" : "",
					 (unsigned long long) (mag / SPEND_UNIT));
	if (frac != 0)
	{
		char		digits[8];
		int			len;

		snprintf(digits, sizeof(digits), "%04d", frac);
		for (len = 4; digits[len - 1] == '0'; len--)
			;
		appendStringInfo(str, ".%.*s", len, digits);
	}
	appendStringInfo(str, " orders %lld points %lld", (long long) b->orders, (long long) b->points);
}

Datum
activity_out(PG_FUNCTION_ARGS)
{
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	ActivityBucket *b = ACTIVITY_BUCKETS(a);
	StringInfoData str;
	bool		first = true;

	initStringInfo(&str);
	appendStringInfoChar(&str, '{');
	if (a->before.spend != 0 || a->before.orders != 0 || a->before.points != 0)
	{
		appendStringInfoString(&str, "before");
		append_values(&str, &a->before);
		first = false;
	}
	for (int i = 0; i < a->nbuckets; i++)
	{
		appendStringInfo(&str, "%s%s", first ? "" : ", ", month_text(b[i].month));
		append_values(&str, &b[i]);
		first = false;
	}
	appendStringInfoChar(&str, '}');
	PG_RETURN_CSTRING(str.data);
}

/*
 * Binary form: int32 nbuckets, "before" as int64 spend, orders, points, then
 * per bucket int32 month, int64 spend, int64 orders, int64 points.
 */
#define SEND_BEFORE_SIZE	24
#define SEND_BUCKET_SIZE	28

Datum
activity_recv(PG_FUNCTION_ARGS)
{
	StringInfo	msg = (StringInfo) PG_GETARG_POINTER(0);
	ActivityBucket before = {0};
	ActivityBucket buckets[ACTIVITY_MAX_MONTHS];
	int32		n;
	Activity   *a;

	if (msg->len - msg->cursor < 4 + SEND_BEFORE_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.activity value"),
				 errdetail("The value is truncated.")));
	n = (int32) pq_getmsgint(msg, 4);
	if (n < 0 || n > ACTIVITY_MAX_MONTHS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.activity value"),
				 errdetail("The bucket count is out of range.")));
	if (msg->len - msg->cursor != SEND_BEFORE_SIZE + n * SEND_BUCKET_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid loyalty.activity value"),
				 errdetail("The message length does not match the bucket count.")));
	before.spend = pq_getmsgint64(msg);
	before.orders = pq_getmsgint64(msg);
	before.points = pq_getmsgint64(msg);
	for (int i = 0; i < n; i++)
	{
		buckets[i].month = (int32) pq_getmsgint(msg, 4);
		buckets[i].spend = pq_getmsgint64(msg);
		buckets[i].orders = pq_getmsgint64(msg);
		buckets[i].points = pq_getmsgint64(msg);
	}
	a = activity_build(&before, buckets, n);
	activity_validate(a, VARSIZE(a));
	PG_RETURN_ACTIVITY_P(a);
}

Datum
activity_send(PG_FUNCTION_ARGS)
{
	Activity   *a = PG_GETARG_ACTIVITY_P(0);
	ActivityBucket *b = ACTIVITY_BUCKETS(a);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, a->nbuckets);
	pq_sendint64(&buf, a->before.spend);
	pq_sendint64(&buf, a->before.orders);
	pq_sendint64(&buf, a->before.points);
	for (int i = 0; i < a->nbuckets; i++)
	{
		pq_sendint32(&buf, b[i].month);
		pq_sendint64(&buf, b[i].spend);
		pq_sendint64(&buf, b[i].orders);
		pq_sendint64(&buf, b[i].points);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}
