/*
 * Programs as the C code sees them: a program's row with its active
 * earning rules and its tier ladder, loaded from loyalty.programs,
 * loyalty.earning_rules and loyalty.tiers into a per-backend cache.
 *
 * The cache lives in its own context under CacheMemoryContext.  A statement
 * trigger on the configuration tables (loyalty.config_changed) sends a
 * relcache invalidation for the table; every backend's callback then drops
 * the whole cache, so a rule change is seen by the next purchase after the
 * changing transaction commits (and at once by that transaction itself).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "activity.h"
#include "conditions.h"
#include "loyalty_errors.h"
#include "loyalty_tz.h"
#include "program.h"

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

/*
 * bumped on every relcache invalidation of any relation: what was read for
 * a tracked table's columns need be checked again only after one
 */
uint64		loyalty_relcache_generation = 0;

static void
config_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	loyalty_relcache_generation++;
	if (relid == InvalidOid || relid == config_relids[0] ||
		relid == config_relids[1] || relid == config_relids[2] ||
		relid == config_relids[3])
		loyalty_invalidate_config();
}

void
loyalty_program_init(void)
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

static int64
threshold(HeapTuple tup, TupleDesc desc, int col, bool spend)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return -1;
	return spend ? activity_spend_from_numeric(DatumGetNumeric(d)) : DatumGetInt64(d);
}

/* the program's tier ladder, by rank (SPI connected) */
static void
load_tiers(ProgramConf *conf, MemoryContext cxt)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(conf->id)};
	MemoryContext old;

	if (SPI_execute_with_args("SELECT name, rank, min_spend, min_orders, min_points, combine"
							  " FROM loyalty.tiers WHERE program_id = $1 ORDER BY rank",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.tiers");
	old = MemoryContextSwitchTo(cxt);
	conf->ntiers = (int) SPI_processed;
	conf->tiers = palloc0(sizeof(TierConf) * Max(conf->ntiers, 1));
	for (int i = 0; i < conf->ntiers; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		TierConf   *t = &conf->tiers[i];
		bool		isnull;

		t->name = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		t->rank = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		t->min_spend = threshold(tup, desc, 3, true);
		t->min_orders = threshold(tup, desc, 4, false);
		t->min_points = threshold(tup, desc, 5, false);
		t->combine_all = strcmp(TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull)), "all") == 0;
	}
	MemoryContextSwitchTo(old);
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
				(errcode(ERRCODE_LOYALTY_PROGRAM_NOT_FOUND),
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
	load_tiers(conf, config_context);

	if (SPI_execute_with_args(
							  "SELECT id, kind, priority, exclusive, tier, channel, category, store,"
							  " valid_from, valid_until, days_of_week, hour_from, hour_until,"
							  " min_amount, multiplier, points, cap_period,"
							  " expiry_policy, expiry_interval, expiry_period, expiry_extra_periods,"
							  " conditions"
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
		r->index = i;
		for (int k = 0; k < NUM_LABELS; k++)
			r->label[k] = get_text(tup, desc, 6 + k);
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
		d = get_datum(tup, desc, 22, &isnull);
		if (!isnull)
		{
			r->nconds = loyalty_conditions_parse(DatumGetJsonbP(d), r->id, &r->conds);
			conf->has_conditions = true;
		}
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
