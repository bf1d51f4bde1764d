/*
 * Earning rules: loaded from loyalty.programs and loyalty.earning_rules into
 * a per-backend cache, evaluated in C for every purchase.
 *
 * The cache lives in its own context under CacheMemoryContext.  A statement
 * trigger on the configuration tables (loyalty.config_changed) sends a
 * relcache invalidation for the table; every backend's callback then drops
 * the whole cache, so a rule change is seen by the next purchase after the
 * changing transaction commits (and at once by that transaction itself).
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

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "loyalty_tz.h"
#include "rules.h"

PG_FUNCTION_INFO_V1(loyalty_config_changed);

typedef struct ProgramEntry
{
	int32		program_id;		/* hash key */
	ProgramConf *conf;
} ProgramEntry;

static MemoryContext config_context = NULL;
static HTAB *program_cache = NULL;
static Oid	config_relids[4];	/* programs, earning_rules, tracked_tables, tiers */

/* bumped on every invalidation; users of cached plans compare it */
uint64		loyalty_config_generation = 0;

static void
config_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || relid == config_relids[0] ||
		relid == config_relids[1] || relid == config_relids[2] ||
		relid == config_relids[3])
		loyalty_invalidate_config();
}

void
loyalty_rules_init(void)
{
	CacheRegisterRelcacheCallback(config_relcache_callback, (Datum) 0);
}

void
loyalty_invalidate_config(void)
{
	if (config_context)
		MemoryContextReset(config_context);
	program_cache = NULL;
	loyalty_config_generation++;
}

/* Tell every backend (and this one) that loyalty configuration changed. */
Datum
loyalty_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.config_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

static Period
parse_period(const char *s)
{
	if (strcmp(s, "day") == 0)
		return PERIOD_DAY;
	if (strcmp(s, "week") == 0)
		return PERIOD_WEEK;
	if (strcmp(s, "month") == 0)
		return PERIOD_MONTH;
	if (strcmp(s, "quarter") == 0)
		return PERIOD_QUARTER;
	if (strcmp(s, "year") == 0)
		return PERIOD_YEAR;
	elog(ERROR, "unknown period \"%s\"", s);
	return PERIOD_DAY;			/* keep compiler quiet */
}

static char *
get_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static Datum
get_datum(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	return SPI_getbinval(tup, desc, col, isnull);
}

static void
load_relids(void)
{
	Oid			nsp = get_namespace_oid("loyalty", false);

	config_relids[0] = get_relname_relid("programs", nsp);
	config_relids[1] = get_relname_relid("earning_rules", nsp);
	config_relids[2] = get_relname_relid("tracked_tables", nsp);
	config_relids[3] = get_relname_relid("tiers", nsp);
}

/* an expiry policy from columns col..col+3: policy, interval, period, extra periods */
static void
load_expiry(HeapTuple tup, TupleDesc desc, int col, ExpirySpec *e)
{
	char	   *s = get_text(tup, desc, col);
	bool		isnull;
	Datum		d;

	e->policy = strcmp(s, "never") == 0 ? EXPIRY_NEVER :
		strcmp(s, "after") == 0 ? EXPIRY_AFTER :
		strcmp(s, "inactivity") == 0 ? EXPIRY_INACTIVITY : EXPIRY_PERIOD_END;
	if (e->policy == EXPIRY_AFTER || e->policy == EXPIRY_INACTIVITY)
		e->interval = *DatumGetIntervalP(get_datum(tup, desc, col + 1, &isnull));
	if (e->policy == EXPIRY_PERIOD_END)
		e->period = parse_period(get_text(tup, desc, col + 2));
	d = get_datum(tup, desc, col + 3, &isnull);
	e->extra_periods = isnull ? 0 : DatumGetInt32(d);
}

static ProgramConf *
load_program(int32 program_id)
{
	ProgramConf *conf;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *s;
	MemoryContext old;

	args[0] = Int32GetDatum(program_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(
							  "SELECT id, code, points_per_unit, rounding, expiry_policy::text, expiry_interval,"
							  " expiry_period, expiry_extra_periods, pending_interval, time_zone, auto_enroll,"
							  " tier_window, tier_window_months"
							  " FROM loyalty.programs WHERE id = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.programs");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('L', 'Y', '0', '0', '3')),
				 errmsg("loyalty program %d does not exist", program_id)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	old = MemoryContextSwitchTo(config_context);
	conf = palloc0(sizeof(ProgramConf));
	conf->id = program_id;
	conf->code = get_text(tup, desc, 2);
	conf->points_per_unit = DatumGetNumericCopy(get_datum(tup, desc, 3, &isnull));
	s = get_text(tup, desc, 4);
	conf->rounding = strcmp(s, "floor") == 0 ? ROUND_FLOOR :
		strcmp(s, "ceil") == 0 ? ROUND_CEIL : ROUND_HALF_UP;
	load_expiry(tup, desc, 5, &conf->expiry);
	conf->pending_interval = *DatumGetIntervalP(get_datum(tup, desc, 9, &isnull));
	conf->time_zone = get_text(tup, desc, 10);
	conf->tz = loyalty_lookup_tz(conf->time_zone);
	conf->auto_enroll = DatumGetBool(get_datum(tup, desc, 11, &isnull));
	s = get_text(tup, desc, 12);
	conf->tier_window = strcmp(s, "rolling") == 0 ? TIER_WINDOW_ROLLING :
		strcmp(s, "calendar_year") == 0 ? TIER_WINDOW_CALENDAR_YEAR : TIER_WINDOW_LIFETIME;
	conf->tier_window_months = DatumGetInt32(get_datum(tup, desc, 13, &isnull));
	MemoryContextSwitchTo(old);
	loyalty_load_tiers(conf, config_context);

	if (SPI_execute_with_args(
							  "SELECT id, kind, priority, exclusive, tier, channel, category, store,"
							  " valid_from, valid_until, days_of_week, hour_from, hour_until,"
							  " min_amount, multiplier, points, cap_period,"
							  " expiry_policy, expiry_interval, expiry_period, expiry_extra_periods"
							  " FROM loyalty.earning_rules WHERE program_id = $1 AND active"
							  " ORDER BY priority, id",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.earning_rules");

	old = MemoryContextSwitchTo(config_context);
	conf->nrules = (int) SPI_processed;
	conf->rules = palloc0(sizeof(EarnRule) * Max(conf->nrules, 1));
	for (int i = 0; i < conf->nrules; i++)
	{
		EarnRule   *r = &conf->rules[i];
		Datum		d;

		tup = SPI_tuptable->vals[i];
		desc = SPI_tuptable->tupdesc;
		r->id = DatumGetInt32(get_datum(tup, desc, 1, &isnull));
		s = get_text(tup, desc, 2);
		r->kind = strcmp(s, "multiplier") == 0 ? RULE_MULTIPLIER :
			strcmp(s, "bonus") == 0 ? RULE_BONUS :
			strcmp(s, "minimum") == 0 ? RULE_MINIMUM :
			strcmp(s, "cap") == 0 ? RULE_CAP : RULE_FIRST_PURCHASE;
		r->priority = DatumGetInt32(get_datum(tup, desc, 3, &isnull));
		r->exclusive = DatumGetBool(get_datum(tup, desc, 4, &isnull));
		r->tier = get_text(tup, desc, 5);
		r->channel = get_text(tup, desc, 6);
		r->category = get_text(tup, desc, 7);
		r->store = get_text(tup, desc, 8);
		d = get_datum(tup, desc, 9, &isnull);
		r->valid_from = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
		d = get_datum(tup, desc, 10, &isnull);
		r->valid_until = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		d = get_datum(tup, desc, 11, &isnull);
		r->dow_mask = 0;
		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
			for (int j = 0; j < n; j++)
				if (!nulls[j])
					r->dow_mask |= 1 << DatumGetInt32(elems[j]);
		}
		d = get_datum(tup, desc, 12, &isnull);
		r->hour_from = isnull ? -1 : DatumGetInt32(d);
		d = get_datum(tup, desc, 13, &isnull);
		r->hour_until = isnull ? -1 : DatumGetInt32(d);
		d = get_datum(tup, desc, 14, &isnull);
		r->min_amount = isnull ? NULL : DatumGetNumericCopy(d);
		d = get_datum(tup, desc, 15, &isnull);
		r->multiplier = isnull ? NULL : DatumGetNumericCopy(d);
		d = get_datum(tup, desc, 16, &isnull);
		r->points = isnull ? 0 : DatumGetInt64(d);
		d = get_datum(tup, desc, 17, &isnull);
		r->cap_period = isnull ? PERIOD_DAY : parse_period(TextDatumGetCString(d));
		if (r->kind == RULE_CAP)
			conf->has_caps = true;
		get_datum(tup, desc, 18, &isnull);
		r->has_expiry = !isnull;
		if (r->has_expiry)
			load_expiry(tup, desc, 18, &r->expiry);
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return conf;
}

ProgramConf *
loyalty_program_conf(int32 program_id)
{
	ProgramEntry *entry;
	bool		found;

	if (config_context == NULL)
		config_context = AllocSetContextCreate(CacheMemoryContext, "loyalty config",
											   ALLOCSET_SMALL_SIZES);
	if (program_cache == NULL)
	{
		HASHCTL		ctl;

		load_relids();
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(ProgramEntry);
		ctl.hcxt = config_context;
		program_cache = hash_create("loyalty programs", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(program_cache, &program_id, HASH_FIND, &found);
	if (found)
		return entry->conf;
	{
		ProgramConf *conf = load_program(program_id);

		/* load_program may have run an invalidation; the table may be gone */
		if (program_cache == NULL)
			return loyalty_program_conf(program_id);
		entry = hash_search(program_cache, &program_id, HASH_ENTER, &found);
		entry->conf = conf;
	}
	return entry->conf;
}

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

/* tier, channel, category, store and validity: all a cap rule is scoped by */
bool
loyalty_rule_scope_matches(const EarnRule *r, const PurchaseFacts *f)
{
	return text_matches(r->tier, f->tier) && text_matches(r->channel, f->channel) &&
		text_matches(r->category, f->category) && text_matches(r->store, f->store) &&
		f->at >= r->valid_from && f->at < r->valid_until;
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

int64
loyalty_rules_points(ProgramConf *prog, const PurchaseFacts *f)
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

int64
loyalty_first_purchase_bonus(ProgramConf *prog, const PurchaseFacts *f)
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
const ExpirySpec *
loyalty_rules_expiry(ProgramConf *prog, const PurchaseFacts *f, bool first_purchase)
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
