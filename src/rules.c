/*
 * Earning rules: what a purchase earns under its program's rules, evaluated
 * in C for every purchase from the program's cached configuration
 * (program.c), and when the points it earns are released and expire.
 *
 * Evaluation order, documented in docs/concepts.md:
 *   1. a matching "minimum" rule whose min_amount exceeds the amount: 0 points
 *   2. amount * points_per_unit * product of matching multipliers (in
 *      priority order; an exclusive one stops the search)
 *   3. rounded with the program's rounding mode
 *   4. plus matching fixed bonuses (an exclusive one stops the search)
 *   5. caps are applied by the caller, which knows what was earned already
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "labels.h"
#include "loyalty_tz.h"
#include "rules.h"

/* local broken-down time, computed once per purchase when a rule needs it */
typedef struct LocalTime
{
	bool		done;
	int			dow;			/* ISO: 1 = Monday .. 7 = Sunday */
	int			hour;
} LocalTime;

static void
local_time(ProgramConf *prog, TimestampTz at, LocalTime *lt)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	if (lt->done)
		return;
	if (timestamp2tm(at, &tz, &tm, &fsec, NULL, prog->tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	lt->dow = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));
	if (lt->dow == 0)
		lt->dow = 7;
	lt->hour = tm.tm_hour;
	lt->done = true;
}

static bool
text_matches(const char *want, const char *have)
{
	return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

static int
numeric_cmp_values(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

/* by value, with the equality of the column's type (labels.c) */
static bool
label_matches(const EarnRule *r, const PurchaseFacts *f, Label k)
{
	const RuleLabels *rl = f->rule_labels;
	LabelType  *t;

	if (r->label[k] == NULL)
		return true;
	if (f->label_null[k] || rl == NULL)
		return false;
	Assert(r->index < rl->nrules);
	t = (LabelType *) &rl->type[k];
	return DatumGetBool(FunctionCall2Coll(&t->eq, t->collation, f->label[k],
										  rl->values[r->index * NUM_LABELS + k]));
}

/* evaluated when the purchase was read (conditions.c) */
static inline bool
conditions_hold(const EarnRule *r, const PurchaseFacts *f)
{
	if (r->nconds == 0)
		return true;
	if (f->rule_labels->nrules <= 64)
		return (f->cond.bits >> r->index) & 1;
	return (f->cond.words[r->index / 64] >> (r->index % 64)) & 1;
}

/* tier, channel, category, store, conditions and validity: all a cap rule is scoped by */
bool
loyalty_rule_scope_matches(const EarnRule *r, const PurchaseFacts *f)
{
	return text_matches(r->tier, f->tier) && f->at >= r->valid_from && f->at < r->valid_until &&
		label_matches(r, f, LABEL_CHANNEL) && label_matches(r, f, LABEL_CATEGORY) &&
		label_matches(r, f, LABEL_STORE) && conditions_hold(r, f);
}

static bool
rule_matches(ProgramConf *prog, EarnRule *r, const PurchaseFacts *f, LocalTime *lt,
			 bool check_amount)
{
	if (!loyalty_rule_scope_matches(r, f))
		return false;
	if (r->dow_mask != 0 || r->hour_from >= 0)
	{
		local_time(prog, f->at, lt);
		if (r->dow_mask != 0 && (r->dow_mask & (1 << lt->dow)) == 0)
			return false;
		if (r->hour_from >= 0)
		{
			bool		in;

			if (r->hour_from < r->hour_until)
				in = lt->hour >= r->hour_from && lt->hour < r->hour_until;
			else				/* wraps midnight, e.g. 21 to 2 */
				in = lt->hour >= r->hour_from || lt->hour < r->hour_until;
			if (!in)
				return false;
		}
	}
	if (check_amount && r->min_amount != NULL &&
		numeric_cmp_values(f->amount, r->min_amount) < 0)
		return false;
	return true;
}

static int64
round_points(ProgramConf *prog, Numeric value)
{
	Datum		d = NumericGetDatum(value);

	switch (prog->rounding)
	{
		case ROUND_FLOOR:
			d = DirectFunctionCall1(numeric_floor, d);
			break;
		case ROUND_CEIL:
			d = DirectFunctionCall1(numeric_ceil, d);
			break;
		case ROUND_HALF_UP:
			d = DirectFunctionCall2(numeric_round, d, Int32GetDatum(0));
			break;
	}
	/* numeric_int8 raises 22003 when the points do not fit in a bigint */
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, d));
}

static int64
rules_points(ProgramConf *prog, const PurchaseFacts *f)
{
	static Numeric zero = NULL;
	LocalTime	lt = {0};
	Numeric		value;
	int64		points;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	if (numeric_cmp_values(f->amount, zero) <= 0)
		return 0;
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];

		if (r->kind == RULE_MINIMUM && rule_matches(prog, r, f, &lt, false) &&
			r->min_amount != NULL && numeric_cmp_values(f->amount, r->min_amount) < 0)
			return 0;
	}
	value = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(f->amount),
												NumericGetDatum(prog->points_per_unit)));
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];

		if (r->kind != RULE_MULTIPLIER || !rule_matches(prog, r, f, &lt, true))
			continue;
		value = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(value),
													NumericGetDatum(r->multiplier)));
		if (r->exclusive)
			break;
	}
	points = round_points(prog, value);
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];

		if (r->kind != RULE_BONUS || !rule_matches(prog, r, f, &lt, true))
			continue;
		if (pg_add_s64_overflow(points, r->points, &points))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("points for purchase out of range")));
		if (r->exclusive)
			break;
	}
	return Max(points, 0);
}

static int64
first_purchase_bonus(ProgramConf *prog, const PurchaseFacts *f)
{
	LocalTime	lt = {0};
	int64		bonus = 0;

	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];

		if (r->kind != RULE_FIRST_PURCHASE || !rule_matches(prog, r, f, &lt, true))
			continue;
		if (pg_add_s64_overflow(bonus, r->points, &bonus))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("first-purchase bonus out of range")));
		if (r->exclusive)
			break;
	}
	return bonus;
}

TimestampTz
loyalty_period_start(pg_tz *zone, Period period, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	TimestampTz result;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (timestamp2tm(ts, &tz, &tm, &fsec, NULL, zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	switch (period)
	{
		case PERIOD_DAY:
			break;
		case PERIOD_WEEK:
			{
				int			j = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);

				j -= (j2day(j) + 6) % 7;	/* back to Monday */
				j2date(j, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
				break;
			}
		case PERIOD_MONTH:
			tm.tm_mday = 1;
			break;
		case PERIOD_QUARTER:
			tm.tm_mon = ((tm.tm_mon - 1) / 3) * 3 + 1;
			tm.tm_mday = 1;
			break;
		case PERIOD_YEAR:
			tm.tm_mon = 1;
			tm.tm_mday = 1;
			break;
	}
	tz = DetermineTimeZoneOffset(&tm, zone);
	if (tm2timestamp(&tm, 0, &tz, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

TimestampTz
loyalty_period_add(pg_tz *zone, Period period, int n, TimestampTz start)
{
	Interval	span = {0};

	switch (period)
	{
		case PERIOD_DAY:
			span.day = n;
			break;
		case PERIOD_WEEK:
			span.day = 7 * n;
			break;
		case PERIOD_MONTH:
			span.month = n;
			break;
		case PERIOD_QUARTER:
			span.month = 3 * n;
			break;
		case PERIOD_YEAR:
			span.month = 12 * n;
			break;
	}
	return loyalty_tz_add_internal(start, &span, zone);
}

TimestampTz
loyalty_expiry(ProgramConf *prog, const ExpirySpec *e, TimestampTz earned_at)
{
	switch (e->policy)
	{
		case EXPIRY_NEVER:
		case EXPIRY_INACTIVITY:	/* all at once, by _settle() */
			return DT_NOEND;
		case EXPIRY_AFTER:
			return loyalty_tz_add_internal(earned_at, &e->interval, prog->tz);
		case EXPIRY_PERIOD_END:
			return loyalty_period_add(prog->tz, e->period, e->extra_periods + 1,
									  loyalty_period_start(prog->tz, e->period, earned_at));
	}
	return DT_NOEND;
}

/*
 * The expiry of a purchase's points: that of the first matching multiplier
 * or bonus rule (in rule order) with its own, else the program's; for the
 * first-purchase bonus, the first matching first_purchase rule's.
 */
static const ExpirySpec *
rules_expiry(ProgramConf *prog, const PurchaseFacts *f, bool first_purchase)
{
	LocalTime	lt = {0};

	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];
		bool		kind_ok = first_purchase ? r->kind == RULE_FIRST_PURCHASE :
			(r->kind == RULE_MULTIPLIER || r->kind == RULE_BONUS);

		if (r->has_expiry && kind_ok && rule_matches(prog, r, f, &lt, true))
			return &r->expiry;
	}
	return &prog->expiry;
}

/*
 * What a purchase earns: its points and their expiry, and with
 * first_purchase (the member has no purchase yet) the first-purchase bonus
 * and its expiry; only a purchase that earns counts as the first purchase.
 */
void
loyalty_purchase_earning(ProgramConf *prog, const PurchaseFacts *f, bool first_purchase,
						 PurchaseEarning *e)
{
	e->points = rules_points(prog, f);
	e->expiry = rules_expiry(prog, f, false);
	e->bonus = 0;
	e->bonus_expiry = &prog->expiry;
	if (first_purchase && e->points > 0)
		e->bonus = first_purchase_bonus(prog, f);
	if (e->bonus > 0)
		e->bonus_expiry = rules_expiry(prog, f, true);
}

/* when an inactive member's points expire; DT_NOEND if never */
TimestampTz
loyalty_inactivity_deadline(ProgramConf *prog, TimestampTz last_activity)
{
	if (prog->expiry.policy != EXPIRY_INACTIVITY || TIMESTAMP_NOT_FINITE(last_activity))
		return DT_NOEND;
	return loyalty_tz_add_internal(last_activity, &prog->expiry.interval, prog->tz);
}

TimestampTz
loyalty_release(ProgramConf *prog, TimestampTz earned_at)
{
	return loyalty_tz_add_internal(earned_at, &prog->pending_interval, prog->tz);
}
