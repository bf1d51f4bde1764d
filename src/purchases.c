/*
 * Automatic accrual from an application's own purchases table.
 *
 * loyalty.track_purchases() attaches two triggers that call into this file:
 *   - purchase_insert: AFTER INSERT FOR EACH STATEMENT with a transition
 *     table, so an INSERT ... SELECT or COPY of a million rows is one set:
 *     one query locks (and enrolls) the members, ledger rows go in batches
 *     of arrays, one UPDATE writes the new balances.
 *   - purchase_change: AFTER UPDATE OR DELETE FOR EACH ROW: an amount
 *     change awards or reverses the difference; a status moving to a
 *     reversed value, or a DELETE, reverses the award.
 * The trigger's first argument is the loyalty.tracked_tables id.
 *
 * Exactly once: the initial award of a purchase is unique on
 * (track_id, reference) and inserted with ON CONFLICT DO NOTHING, so a
 * replayed row (a restore of the purchases table) awards nothing.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "activity.h"
#include "lots.h"
#include "loyalty_errors.h"
#include "loyalty_util.h"
#include "program.h"
#include "rules.h"
#include "tiers.h"

PG_FUNCTION_INFO_V1(loyalty_purchase_insert);
PG_FUNCTION_INFO_V1(loyalty_purchase_change);

#define BONUS_SUFFIX "#first-purchase-bonus"
#define INSERT_BATCH 10000

/* column positions in the tracked table, resolved per statement */
typedef struct TrackCols
{
	int32		track_id;
	int32		program_id;
	int			member;
	int			amount;
	int			at;				/* 0 = purchase time is now() */
	int			status;
	int			channel;
	int			category;
	int			store;
	int			nref;
	int			ref[INDEX_MAX_KEYS];
	int			nreversed;
	char	  **reversed;
	Oid			lots_type;
	Oid			activity_type;
} TrackCols;

typedef struct Purchase
{
	char	   *member_key;
	uint32		key_hash;		/* of member_key: sorts and finds members fast */
	char	   *reference;
	PurchaseFacts facts;
	bool		reversed;
	bool		duplicate;		/* its reference came earlier in the statement */
	int			member;			/* index into members */
} Purchase;

typedef struct MemberState
{
	char	   *key;
	uint32		key_hash;
	int64		id;
	LotsBuf		lots;
	bool		found;
	bool		dirty;
	bool		had_purchase;	/* first_purchase_at was set */
	TimestampTz first_purchase_at;
	TimestampTz last_activity_at;
	/* the three above as locked: what a refused (replayed) award must not move */
	bool		locked_had_purchase;
	TimestampTz locked_first_purchase_at;
	TimestampTz locked_last_activity_at;
	char	   *tier;
	Activity   *activity;
	char	   *locked_tier;	/* the tier before this statement */
	TimestampTz settled_at;		/* members.settled_at; DT_NOBEGIN when NULL */
	bool		replay;			/* its lots must be rebuilt from the ledger */
	/* corrections: the instants of the entries written for it */
	TimestampTz earliest_write;
	TimestampTz latest_write;
	bool		wrote_activity;
	bool		replayed;		/* some of its purchases were awarded before */
	bool		any_went_in;	/* with replayed: some of its rows went in */
	/* upgrades this statement qualified for, written once the awards are in */
	int			nups;
	int			maxups;
	const char **up_tier;
	TimestampTz *up_at;
	/* purchase points this statement awarded so far, for caps seen later */
	int			nawards;
	int			maxawards;
	TimestampTz *award_at;
	int64	   *award_points;
	/* caps: what this statement awarded so far, per (rule, period start) */
	int			ncaps;
	int			maxcaps;
	struct CapUse
	{
		int32		rule_id;
		TimestampTz start;		/* the cap's period: [start, end) */
		TimestampTz end;
		int64		used;
	}		   *caps;
} MemberState;

/*
 * The ledger rows of a statement, passed as parallel arrays ($3 .. $9) and
 * unnested in the select list (ProjectSet): unnest() in FROM would be a
 * function scan, which first copies every row into a tuplestore.
 */
#define UNNEST_ROWS "unnest($3), unnest($4), unnest($5), unnest($6), unnest($7), unnest($8), unnest($9)"

/*
 * Award rows (kind earn or pending, with a track_id) conflict only on
 * ledger_purchase_award: name it, so that no other unique index is probed.
 */
#define AWARD_CONFLICT "ON CONFLICT (track_id, reference)" \
	" WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending') DO NOTHING"

/* ledger rows waiting for the batch insert */
typedef struct PendingRows
{
	int			n;
	int			max;
	Datum	   *member_id;
	Datum	   *kind;
	Datum	   *points;
	Datum	   *lots;
	Datum	   *reference;
	Datum	   *reason;
	bool	   *reason_null;
	Datum	   *effective;
	int		   *member;			/* index into members */
	Numeric    *amount;			/* a purchase's award: its amount; NULL for a bonus */
} PendingRows;

static SPIPlanPtr plan_track = NULL;
static SPIPlanPtr plan_enroll = NULL;
static SPIPlanPtr plan_lock = NULL;
static SPIPlanPtr plan_lock_one = NULL;
static SPIPlanPtr plan_cap_used = NULL;
static SPIPlanPtr plan_insert = NULL;
static SPIPlanPtr plan_insert_fast = NULL;
static SPIPlanPtr plan_one_member = NULL;
static SPIPlanPtr plan_settle = NULL;
static SPIPlanPtr plan_awarded = NULL;
static SPIPlanPtr plan_update = NULL;
static SPIPlanPtr plan_award_of = NULL;
static SPIPlanPtr plan_insert_one = NULL;
static SPIPlanPtr plan_update_one = NULL;
static SPIPlanPtr plan_upgrade = NULL;
static SPIPlanPtr plan_latest = NULL;
static SPIPlanPtr plan_rebuild = NULL;
static uint64 plans_generation = 0;

/* Plans name loyalty.lots by OID: drop them when configuration changed. */
static void
check_plans(void)
{
	SPIPlanPtr *plans[] = {&plan_track, &plan_enroll, &plan_lock, &plan_lock_one, &plan_cap_used, &plan_insert,
	&plan_insert_fast, &plan_update, &plan_award_of, &plan_insert_one, &plan_update_one,
	&plan_one_member, &plan_settle, &plan_awarded, &plan_upgrade, &plan_latest, &plan_rebuild};

	if (plans_generation == loyalty_config_generation)
		return;
	for (int i = 0; i < (int) lengthof(plans); i++)
	{
		if (*plans[i])
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
	plans_generation = loyalty_config_generation;
}

static int
attnum_of(Relation rel, const char *col, const char *what, bool required)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (col == NULL)
	{
		if (required)
			elog(ERROR, "tracked table has no %s column configured", what);
		return 0;
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), col) == 0)
			return i + 1;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" (the %s column tracked by loyalty) no longer exists in table \"%s\"",
					col, what, RelationGetRelationName(rel)),
			 errhint("Call loyalty.track_purchases() again with the new column name.")));
	return 0;
}

static char *
spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A tracked table's configuration as stored, cached per backend. */
typedef struct TrackConf
{
	int32		track_id;
	Oid			relid;
	int32		program_id;
	char	   *cols[7];		/* member, amount, time, status, channel, category, store */
	int			nref;
	char	   *ref[INDEX_MAX_KEYS];
	int			nreversed;
	char	  **reversed;
	Oid			lots_type;
	Oid			activity_type;
	struct TrackConf *next;
} TrackConf;

static MemoryContext track_context = NULL;
static TrackConf *track_cache = NULL;
static uint64 track_generation = 0;

static TrackConf *
fetch_track(int32 track_id, Relation rel)
{
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		args[1];
	bool		isnull;
	Datum		d;
	TrackConf  *t;
	MemoryContext old;

	if (track_context == NULL)
		track_context = AllocSetContextCreate(TopMemoryContext, "loyalty tracked tables",
											  ALLOCSET_SMALL_SIZES);
	if (track_generation != loyalty_config_generation)
	{
		MemoryContextReset(track_context);
		track_cache = NULL;
		track_generation = loyalty_config_generation;
	}
	for (t = track_cache; t; t = t->next)
		if (t->track_id == track_id)
			return t;

	if (plan_track == NULL)
	{
		Oid			argtypes[1] = {INT4OID};

		plan_track = SPI_prepare_cursor("SELECT program_id, member_column::text, amount_column::text,"
								 " time_column::text, status_column::text, channel_column::text,"
								 " category_column::text, store_column::text,"
								 " reference_columns::text[], reversed_statuses,"
								 " 'loyalty.lots'::regtype::oid, table_name::oid,"
								 " 'loyalty.activity'::regtype::oid"
								 " FROM loyalty.tracked_tables WHERE id = $1 AND active",
								 1, argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (plan_track == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan_track);
	}
	args[0] = Int32GetDatum(track_id);
	if (SPI_execute_plan(plan_track, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.tracked_tables");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has a loyalty trigger but is not tracked",
						RelationGetRelationName(rel)),
				 errhint("Call loyalty.track_purchases() for the table again, or drop the trigger.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	/* reading may have processed an invalidation that reset the cache */
	if (track_generation != loyalty_config_generation)
		return fetch_track(track_id, rel);
	old = MemoryContextSwitchTo(track_context);
	t = palloc0(sizeof(TrackConf));
	t->track_id = track_id;
	t->program_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	for (int i = 0; i < 7; i++)
		t->cols[i] = spi_text(tup, desc, i + 2);
	d = SPI_getbinval(tup, desc, 9, &isnull);
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		if (n < 1 || n > INDEX_MAX_KEYS)
			elog(ERROR, "tracked table has %d reference columns", n);
		t->nref = n;
		for (int i = 0; i < n; i++)
			t->ref[i] = TextDatumGetCString(elems[i]);
	}
	d = SPI_getbinval(tup, desc, 10, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		t->reversed = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				t->reversed[t->nreversed++] = TextDatumGetCString(elems[i]);
	}
	t->lots_type = DatumGetObjectId(SPI_getbinval(tup, desc, 11, &isnull));
	t->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 12, &isnull));
	t->activity_type = DatumGetObjectId(SPI_getbinval(tup, desc, 13, &isnull));
	t->next = track_cache;
	track_cache = t;
	MemoryContextSwitchTo(old);
	return t;
}

/* row triggers fire on a partition; the tracked table is its root */
static Oid
tracked_relid(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);

	if (rel->rd_rel->relispartition)
	{
		List	   *ancestors = get_partition_ancestors(relid);

		if (ancestors != NIL)
			relid = llast_oid(ancestors);
	}
	return relid;
}

/* The configuration with column positions resolved (SPI must be connected). */
static void
load_track(int32 track_id, Relation rel, TrackCols *tc)
{
	TrackConf  *t = fetch_track(track_id, rel);

	/* the id must name this very table (or the partitioned table it belongs to) */
	if (t->relid != tracked_relid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has a loyalty trigger but is not tracked",
						RelationGetRelationName(rel)),
				 errhint("Call loyalty.track_purchases() for the table again, or drop the trigger.")));
	memset(tc, 0, sizeof(TrackCols));
	tc->track_id = track_id;
	tc->program_id = t->program_id;
	tc->member = attnum_of(rel, t->cols[0], "member", true);
	tc->amount = attnum_of(rel, t->cols[1], "amount", true);
	tc->at = attnum_of(rel, t->cols[2], "time", false);
	tc->status = attnum_of(rel, t->cols[3], "status", false);
	tc->channel = attnum_of(rel, t->cols[4], "channel", false);
	tc->category = attnum_of(rel, t->cols[5], "category", false);
	tc->store = attnum_of(rel, t->cols[6], "store", false);
	tc->nref = t->nref;
	for (int i = 0; i < t->nref; i++)
		tc->ref[i] = attnum_of(rel, t->ref[i], "reference", true);
	tc->nreversed = t->nreversed;
	tc->reversed = t->reversed;
	tc->lots_type = t->lots_type;
	tc->activity_type = t->activity_type;
}

/*
 * Are the reference columns exactly the key of an immediate, non-partial
 * unique index (or the partitioned table's) whose columns are NOT NULL?
 * Then two rows of one INSERT cannot share a reference, and the sort that
 * finds repeats is skipped.  (Only a saving: were two rows to share one,
 * ledger_purchase_award would still let one award in.)
 */
static bool
references_unique(Relation rel, TrackCols *tc)
{
	List	   *indexes;
	ListCell   *lc;
	Bitmapset  *refs = NULL;
	bool		unique = false;

	for (int i = 0; i < tc->nref; i++)
	{
		if (!TupleDescAttr(RelationGetDescr(rel), tc->ref[i] - 1)->attnotnull)
			return false;
		refs = bms_add_member(refs, tc->ref[i]);
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index idx;

		if (!HeapTupleIsValid(tup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(tup);
		if (idx->indisunique && idx->indimmediate && idx->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL))
		{
			/* unique on exactly the reference columns */
			Bitmapset  *keys = NULL;

			for (int k = 0; k < idx->indnkeyatts; k++)
				keys = bms_add_member(keys, idx->indkey.values[k]);
			unique = bms_equal(keys, refs);
			bms_free(keys);
		}
		ReleaseSysCache(tup);
		if (unique)
			break;
	}
	list_free(indexes);
	bms_free(refs);
	return unique;
}

static void update_one(MemberState *m, TrackCols *tc);
static void uncount_row(ProgramConf *prog, MemberState *m, PendingRows *rows, int i);
static void times_from_inserted(MemberState *members, int nmembers, PendingRows *rows,
								const bool *went_in);
static void settle_due(MemberState *m, TimestampTz at);
static void plan_members(ProgramConf *prog, Purchase *purchases, int npurchases,
						 MemberState *members, int nmembers, bool check_latest);
static void rebuild_member(MemberState *m);
static int	cstring_ptr_cmp(const void *a, const void *b);

/*
 * Customers are grouped, and looked up, in the order of a hash of their key
 * and then the key: most comparisons are then one integer comparison
 * instead of a string comparison (a bulk load sorts a million purchases).
 */
static uint32
member_hash(const char *key)
{
	return hash_bytes((const unsigned char *) key, (int) strlen(key));
}

static int
member_order(uint32 hash_a, const char *a, uint32 hash_b, const char *b)
{
	if (hash_a != hash_b)
		return hash_a < hash_b ? -1 : 1;
	return strcmp(a, b);
}

/* ---- reading purchase rows ---- */

static char *
value_text(TupleTableSlot *slot, int attnum, bool *isnull)
{
	Datum		d;
	Oid			typoutput;
	bool		varlena;
	Oid			typid;

	d = slot_getattr(slot, attnum, isnull);
	if (*isnull)
		return NULL;
	typid = TupleDescAttr(slot->tts_tupleDescriptor, attnum - 1)->atttypid;
	if (typid == TEXTOID || typid == VARCHAROID)
		return TextDatumGetCString(d);
	getTypeOutputInfo(typid, &typoutput, &varlena);
	return OidOutputFunctionCall(typoutput, d);
}

static Numeric
value_amount(TupleTableSlot *slot, int attnum, bool *isnull)
{
	Datum		d = slot_getattr(slot, attnum, isnull);
	Oid			typid;

	if (*isnull)
		return NULL;
	typid = TupleDescAttr(slot->tts_tupleDescriptor, attnum - 1)->atttypid;
	switch (typid)
	{
		case NUMERICOID:
			return DatumGetNumeric(d);
		case INT2OID:
			return int64_to_numeric(DatumGetInt16(d));
		case INT4OID:
			return int64_to_numeric(DatumGetInt32(d));
		case INT8OID:
			return int64_to_numeric(DatumGetInt64(d));
		case FLOAT4OID:
			return DatumGetNumeric(DirectFunctionCall1(float4_numeric, d));
		case FLOAT8OID:
			return DatumGetNumeric(DirectFunctionCall1(float8_numeric, d));
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("purchase amount column has type %s", format_type_be(typid)),
			 errhint("The amount must be numeric, an integer or a float type.")));
	return NULL;
}

static TimestampTz
value_time(TupleTableSlot *slot, int attnum, ProgramConf *prog)
{
	bool		isnull;
	Datum		d;
	Oid			typid;

	if (attnum == 0)
		return GetCurrentTransactionStartTimestamp();
	d = slot_getattr(slot, attnum, &isnull);
	if (isnull)
		return GetCurrentTransactionStartTimestamp();
	typid = TupleDescAttr(slot->tts_tupleDescriptor, attnum - 1)->atttypid;
	if (typid == TIMESTAMPTZOID)
		return DatumGetTimestampTz(d);
	if (typid == TIMESTAMPOID || typid == DATEOID)
	{
		/* wall-clock time in the program's zone */
		struct pg_tm tm;
		fsec_t		fsec = 0;
		int			tz;
		TimestampTz result;

		if (typid == DATEOID)
		{
			DateADT		date = DatumGetDateADT(d);

			if (DATE_NOT_FINITE(date))
				return date == DATEVAL_NOEND ? DT_NOEND : DT_NOBEGIN;
			j2date(date + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		}
		else
		{
			Timestamp	ts = DatumGetTimestamp(d);

			if (TIMESTAMP_NOT_FINITE(ts))
				return ts;
			if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("timestamp out of range")));
		}
		tz = DetermineTimeZoneOffset(&tm, prog->tz);
		if (tm2timestamp(&tm, fsec, &tz, &result) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("purchase time column has type %s", format_type_be(typid)),
			 errhint("Use timestamptz, timestamp (read in the program's time zone) or date.")));
	return 0;
}

/* as record_out decides: empty, or any of ,()"\ or whitespace */
static bool
needs_quotes(const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p == ',' || *p == '(' || *p == ')' || *p == '"' || *p == '\\' ||
			isspace((unsigned char) *p))
			return true;
	return false;
}

/* reference text: the value, or "(a,b)" for a composite key */
static char *
value_reference(TupleTableSlot *slot, TrackCols *tc)
{
	StringInfoData buf;

	if (tc->nref == 1)
	{
		bool		isnull;
		char	   *s = value_text(slot, tc->ref[0], &isnull);

		return isnull ? NULL : s;
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int i = 0; i < tc->nref; i++)
	{
		bool		isnull;
		char	   *s = value_text(slot, tc->ref[i], &isnull);

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (isnull)
			continue;
		if (*s == '\0' || needs_quotes(s))
		{
			appendStringInfoChar(&buf, '"');
			for (char *p = s; *p; p++)
			{
				if (*p == '"' || *p == '\\')
					appendStringInfoChar(&buf, *p);
				appendStringInfoChar(&buf, *p);
			}
			appendStringInfoChar(&buf, '"');
		}
		else
			appendStringInfoString(&buf, s);
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

static bool
read_purchase(TupleTableSlot *slot, TrackCols *tc, ProgramConf *prog, Purchase *p)
{
	bool		isnull;

	memset(p, 0, sizeof(Purchase));
	p->member_key = value_text(slot, tc->member, &isnull);
	if (p->member_key != NULL)
		p->key_hash = member_hash(p->member_key);
	if (isnull)
		return false;			/* a purchase without a customer earns nothing */
	p->facts.amount = value_amount(slot, tc->amount, &isnull);
	if (isnull)
		return false;
	p->reference = value_reference(slot, tc);
	if (p->reference == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("tracked purchase has a null reference"),
				 errhint("The reference columns identify a purchase; they must not be null.")));
	p->facts.at = value_time(slot, tc->at, prog);
	if (TIMESTAMP_NOT_FINITE(p->facts.at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("purchase \"%s\" has an infinite purchase time", p->reference)));
	if (tc->channel)
		p->facts.channel = value_text(slot, tc->channel, &isnull);
	if (tc->category)
		p->facts.category = value_text(slot, tc->category, &isnull);
	if (tc->store)
		p->facts.store = value_text(slot, tc->store, &isnull);
	if (tc->status)
	{
		char	   *status = value_text(slot, tc->status, &isnull);

		for (int i = 0; !isnull && i < tc->nreversed; i++)
			if (strcmp(status, tc->reversed[i]) == 0)
				p->reversed = true;
	}
	return true;
}

/* ---- members ---- */

static int
purchase_cmp(const void *a, const void *b)
{
	const Purchase *x = a,
			   *y = b;
	int			c = member_order(x->key_hash, x->member_key, y->key_hash, y->member_key);

	if (c != 0)
		return c;
	if (x->facts.at != y->facts.at)
		return x->facts.at < y->facts.at ? -1 : 1;
	return strcmp(x->reference, y->reference);
}

static int
member_key_cmp(const void *probe, const void *m)
{
	const MemberState *p = probe,
			   *q = m;

	return member_order(p->key_hash, p->key, q->key_hash, q->key);
}

static SPIPlanPtr
keep(const char *sql, int nargs, Oid *argtypes)
{
	/* generic plans: these run for every purchase statement; replanning cost more than the work */
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* text[] of the members' keys (only the ones not found yet); NULL if none */
static ArrayType *
member_keys(MemberState *members, int nmembers, bool only_missing)
{
	Datum	   *keys = palloc(sizeof(Datum) * nmembers);
	int			n = 0;

	for (int i = 0; i < nmembers; i++)
		if (!only_missing || !members[i].found)
			keys[n++] = CStringGetTextDatum(members[i].key);
	if (n == 0)
		return NULL;
	return construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT);
}

#define LOCK_COLUMNS "id, member_key, balance, first_purchase_at, last_activity_at, tier, activity," \
	" settled_at"

static void
lock_query(int32 program_id, MemberState *members, int nmembers, bool only_missing)
{
	Datum		args[2];
	SPIPlanPtr	plan;
	int			nwanted = 0,
				last = -1;

	for (int i = 0; i < nmembers; i++)
		if (!only_missing || !members[i].found)
		{
			nwanted++;
			last = i;
		}
	if (nwanted == 0)
		return;
	args[0] = Int32GetDatum(program_id);
	if (nwanted == 1)
	{
		/* one customer, the single-row purchase: no array, no sort */
		if (plan_lock_one == NULL)
		{
			Oid			t[2] = {INT4OID, TEXTOID};

			plan_lock_one = keep("SELECT " LOCK_COLUMNS " FROM loyalty.members"
								 " WHERE program_id = $1 AND member_key = $2 FOR UPDATE", 2, t);
		}
		plan = plan_lock_one;
		args[1] = CStringGetTextDatum(members[last].key);
	}
	else
	{
		if (plan_lock == NULL)
		{
			Oid			t[2] = {INT4OID, TEXTARRAYOID};

			plan_lock = keep("SELECT " LOCK_COLUMNS " FROM loyalty.members"
							 " WHERE program_id = $1 AND member_key = ANY ($2)"
							 " ORDER BY id FOR UPDATE", 2, t);
		}
		plan = plan_lock;
		args[1] = PointerGetDatum(member_keys(members, nmembers, only_missing));
	}
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock members");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *key = spi_text(tup, desc, 2);
		MemberState probe = {.key = key, .key_hash = member_hash(key)};
		MemberState *m = bsearch(&probe, members, nmembers, sizeof(MemberState), member_key_cmp);
		Datum		d;

		if (m == NULL)
			continue;
		m->found = true;
		m->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		lotsbuf_from_lots(&m->lots, DatumGetLotsP(SPI_getbinval(tup, desc, 3, &isnull)));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		m->had_purchase = !isnull;
		m->first_purchase_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		m->last_activity_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
		m->locked_had_purchase = m->had_purchase;
		m->locked_first_purchase_at = m->first_purchase_at;
		m->locked_last_activity_at = m->last_activity_at;
		m->tier = spi_text(tup, desc, 6);
		m->locked_tier = m->tier;
		m->activity = (Activity *) PG_DETOAST_DATUM_COPY(SPI_getbinval(tup, desc, 7, &isnull));
		d = SPI_getbinval(tup, desc, 8, &isnull);
		m->settled_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	}
}

/*
 * Lock the members in id order; with enroll, enroll the missing ones (then
 * lock those too).  Members sorted by key.
 */
static void
lock_members(TrackCols *tc, bool enroll, MemberState *members, int nmembers)
{
	ArrayType  *missing;

	lock_query(tc->program_id, members, nmembers, false);
	if (!enroll || (missing = member_keys(members, nmembers, true)) == NULL)
		return;
	{
		Datum		args[2];

		args[0] = Int32GetDatum(tc->program_id);
		args[1] = PointerGetDatum(missing);
		if (plan_enroll == NULL)
		{
			Oid			t[2] = {INT4OID, TEXTARRAYOID};

			plan_enroll = keep("INSERT INTO loyalty.members (program_id, member_key)"
							   " SELECT $1, unnest($2)"
							   " ON CONFLICT (program_id, member_key) DO NOTHING", 2, t);
		}
		if (SPI_execute_plan(plan_enroll, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not enroll members");
	}
	lock_query(tc->program_id, members, nmembers, true);
}

/* ---- caps ---- */

/* Points from purchases already in the ledger for a member in [start, end). */
static int64
cap_used_in_ledger(int64 member_id, TimestampTz start, TimestampTz end)
{
	Datum		args[3];
	bool		isnull;
	int64		used;

	if (plan_cap_used == NULL)
	{
		Oid			t[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};

		plan_cap_used = keep("SELECT coalesce(sum(points), 0)::bigint FROM loyalty.ledger"
							 " WHERE member_id = $1 AND effective_at >= $2 AND effective_at < $3"
							 " AND track_id IS NOT NULL AND points > 0"
							 " AND (reason IS NULL OR reason = 'purchase amount changed')",
							 3, t);
	}
	args[0] = Int64GetDatum(member_id);
	args[1] = TimestampTzGetDatum(start);
	args[2] = TimestampTzGetDatum(end);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (SPI_execute_plan(plan_cap_used, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read purchase points for caps");
	used = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return used;
}

/* Clamp points to what every matching cap still allows; record the use. */
static int64
apply_caps(ProgramConf *prog, MemberState *m, const PurchaseFacts *f, int64 points)
{
	if (!prog->has_caps || points <= 0)
		return points;
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];
		TimestampTz start,
					end;
		struct CapUse *use = NULL;
		int64		room;

		/* a cap's conditions scope it; its days, hours and min_amount do not */
		if (r->kind != RULE_CAP || !loyalty_rule_scope_matches(r, f))
			continue;
		start = loyalty_period_start(prog->tz, r->cap_period, f->at);
		end = loyalty_period_add(prog->tz, r->cap_period, 1, start);
		for (int j = 0; j < m->ncaps; j++)
			if (m->caps[j].rule_id == r->id && m->caps[j].start == start)
				use = &m->caps[j];
		if (use == NULL)
		{
			if (m->ncaps == m->maxcaps)
			{
				m->maxcaps = Max(4, m->maxcaps * 2);
				m->caps = m->caps ? repalloc(m->caps, sizeof(struct CapUse) * m->maxcaps)
					: palloc(sizeof(struct CapUse) * m->maxcaps);
			}
			use = &m->caps[m->ncaps++];
			use->rule_id = r->id;
			use->start = start;
			use->end = end;
			use->used = cap_used_in_ledger(m->id, start, end);
			/* and what this statement awarded before the cap first matched */
			for (int k = 0; k < m->nawards; k++)
				if (m->award_at[k] >= start && m->award_at[k] < end)
					use->used = loyalty_add_points(use->used, m->award_points[k]);
		}
		room = Max(r->points - use->used, 0);
		points = Min(points, room);
	}
	if (points > 0)
	{
		if (m->nawards == m->maxawards)
		{
			m->maxawards = Max(8, m->maxawards * 2);
			m->award_at = m->award_at ? repalloc(m->award_at, sizeof(TimestampTz) * m->maxawards)
				: palloc(sizeof(TimestampTz) * m->maxawards);
			m->award_points = m->award_points ? repalloc(m->award_points, sizeof(int64) * m->maxawards)
				: palloc(sizeof(int64) * m->maxawards);
		}
		m->award_at[m->nawards] = f->at;
		m->award_points[m->nawards++] = points;
	}
	/* every cap period that holds this purchase counts what was finally awarded */
	for (int j = 0; j < m->ncaps; j++)
		if (f->at >= m->caps[j].start && f->at < m->caps[j].end)
			m->caps[j].used = loyalty_add_points(m->caps[j].used, points);
	return points;
}

/* ---- ledger rows ---- */

static void
rows_add(PendingRows *rows, int member, int64 member_id, const char *kind, int64 points,
		 Lots *lots, const char *reference, const char *reason, TimestampTz at,
		 Numeric amount)
{
	if (rows->n == rows->max)
	{
		rows->max = Max(64, rows->max * 2);
#define GROW(f, T) rows->f = rows->f ? repalloc(rows->f, sizeof(T) * rows->max) : palloc(sizeof(T) * rows->max)
		GROW(member_id, Datum);
		GROW(kind, Datum);
		GROW(points, Datum);
		GROW(lots, Datum);
		GROW(reference, Datum);
		GROW(reason, Datum);
		GROW(reason_null, bool);
		GROW(effective, Datum);
		GROW(member, int);
		GROW(amount, Numeric);
#undef GROW
	}
	rows->member[rows->n] = member;
	rows->amount[rows->n] = amount;
	rows->member_id[rows->n] = Int64GetDatum(member_id);
	rows->kind[rows->n] = CStringGetTextDatum(kind);
	rows->points[rows->n] = Int64GetDatum(points);
	rows->lots[rows->n] = PointerGetDatum(lots);
	rows->reference[rows->n] = CStringGetTextDatum(reference);
	rows->reason_null[rows->n] = (reason == NULL);
	rows->reason[rows->n] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	rows->effective[rows->n] = TimestampTzGetDatum(at);
	rows->n++;
}

static ArrayType *
array_of(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval, typalign);
}

static int
cstring_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
insert_args(TrackCols *tc, PendingRows *rows, int from, int n, Datum *args)
{
	args[0] = Int32GetDatum(tc->program_id);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = PointerGetDatum(array_of(rows->member_id + from, NULL, n, INT8OID));
	args[3] = PointerGetDatum(array_of(rows->kind + from, NULL, n, TEXTOID));
	args[4] = PointerGetDatum(array_of(rows->points + from, NULL, n, INT8OID));
	args[5] = PointerGetDatum(array_of(rows->lots + from, NULL, n, tc->lots_type));
	args[6] = PointerGetDatum(array_of(rows->reference + from, NULL, n, TEXTOID));
	args[7] = PointerGetDatum(array_of(rows->reason + from, rows->reason_null + from, n, TEXTOID));
	args[8] = PointerGetDatum(array_of(rows->effective + from, NULL, n, TIMESTAMPTZOID));
}

static SPIPlanPtr
insert_plan(TrackCols *tc, bool on_conflict)
{
	Oid			t[9] = {INT4OID, INT4OID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
	get_array_type(tc->lots_type), TEXTARRAYOID, TEXTARRAYOID,
	get_array_type(TIMESTAMPTZOID)};
	const char *sql = "INSERT INTO loyalty.ledger (program_id, track_id, member_id, kind,"
		" points, lots, reference, reason, effective_at)"
		" SELECT $1, $2, " UNNEST_ROWS;

	if (on_conflict)
		return keep(psprintf("%s %s RETURNING reference", sql, AWARD_CONFLICT), 9, t);
	return keep(sql, 9, t);
}

/*
 * Insert rows [from, from + n); returns a bool per row: inserted, or skipped
 * because the purchase was awarded before (a replayed row).  Replays are
 * rare, so the batch first goes in without ON CONFLICT (no pre-check per
 * row) inside a subtransaction; a unique violation retries it with
 * ON CONFLICT DO NOTHING to find what is new.
 */
static bool *
rows_insert(TrackCols *tc, PendingRows *rows, int from, int n)
{
	Datum		args[9];
	bool	   *inserted = palloc0(sizeof(bool) * n);
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		duplicate = false;

	insert_args(tc, rows, from, n, args);
	/* small batches: a subtransaction costs more than ON CONFLICT's checks */
	if (n < 1000)
		goto with_on_conflict;
	if (plan_insert_fast == NULL)
		plan_insert_fast = insert_plan(tc, false);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (SPI_execute_plan(plan_insert_fast, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write ledger entries");
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* always end the subtransaction: an error escaping it would leave
		 * the session's transaction waiting for a ROLLBACK */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		duplicate = true;
	}
	PG_END_TRY();
	if (!duplicate)
	{
		memset(inserted, true, sizeof(bool) * n);
		return inserted;
	}

with_on_conflict:
	if (plan_insert == NULL)
		plan_insert = insert_plan(tc, true);
	if (SPI_execute_plan(plan_insert, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write ledger entries");
	if (SPI_processed == (uint64) n)
	{
		memset(inserted, true, sizeof(bool) * n);
		return inserted;
	}
	{
		/* full-length comparison: references can be any length */
		int			nref = (int) SPI_processed;
		char	  **refs = palloc(sizeof(char *) * Max(nref, 1));

		for (int i = 0; i < nref; i++)
			refs[i] = spi_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		qsort(refs, nref, sizeof(char *), cstring_ptr_cmp);
		for (int i = 0; i < n; i++)
		{
			char	   *ref = TextDatumGetCString(rows->reference[from + i]);

			inserted[i] = bsearch(&ref, refs, nref, sizeof(char *), cstring_ptr_cmp) != NULL;
		}
	}
	return inserted;
}

static void
members_update(TrackCols *tc, MemberState *members, int nmembers)
{
	Datum	   *ids = palloc(sizeof(Datum) * nmembers);
	Datum	   *lots = palloc(sizeof(Datum) * nmembers);
	Datum	   *first = palloc(sizeof(Datum) * nmembers);
	bool	   *first_null = palloc(sizeof(bool) * nmembers);
	Datum	   *last = palloc(sizeof(Datum) * nmembers);
	bool	   *last_null = palloc(sizeof(bool) * nmembers);
	Datum	   *act = palloc(sizeof(Datum) * nmembers);
	Datum		args[6];
	int			n = 0;

	for (int i = 0; i < nmembers; i++)
	{
		MemberState *m = &members[i];

		/* every row refused (purchases inserted again): the member is unchanged */
		if (!m->dirty || (m->replayed && !m->any_went_in))
			continue;
		ids[n] = Int64GetDatum(m->id);
		lots[n] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
		first_null[n] = !m->had_purchase;
		first[n] = TimestampTzGetDatum(m->first_purchase_at);
		last[n] = TimestampTzGetDatum(m->last_activity_at);
		last_null[n] = m->last_activity_at == DT_NOBEGIN;	/* no activity yet */
		act[n] = PointerGetDatum(m->activity);
		n++;
	}
	if (n == 0)
		return;
	if (plan_update == NULL)
	{
		Oid			t[6] = {INT8ARRAYOID, get_array_type(tc->lots_type),
			get_array_type(TIMESTAMPTZOID), get_array_type(TIMESTAMPTZOID),
		get_array_type(tc->activity_type), TIMESTAMPTZOID};

		/* settled_at: plan_members() saw to it that everything due by now is written */
		plan_update = keep("UPDATE loyalty.members m SET balance = u.b,"
						   " first_purchase_at = u.f, last_activity_at = u.a, activity = u.act,"
						   " settled_at = $6"
						   " FROM unnest($1, $2, $3, $4, $5) AS u(id, b, f, a, act) WHERE m.id = u.id",
						   6, t);
	}
	args[0] = PointerGetDatum(array_of(ids, NULL, n, INT8OID));
	args[1] = PointerGetDatum(array_of(lots, NULL, n, tc->lots_type));
	args[2] = PointerGetDatum(array_of(first, first_null, n, TIMESTAMPTZOID));
	args[3] = PointerGetDatum(array_of(last, last_null, n, TIMESTAMPTZOID));
	args[4] = PointerGetDatum(array_of(act, NULL, n, tc->activity_type));
	args[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (SPI_execute_plan(plan_update, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update member balances");
}

/*
 * One member's few ledger rows and new balance in a single statement.  The
 * UPDATE applies only if every row went in and no entry of the member is
 * later than the earliest row (the member's newest entry is looked up in
 * the same statement, after the lock); otherwise the balance is rebuilt
 * from what went in (a replayed purchase) or from the ledger (a purchase
 * dated before the member's newest entry).
 */
static void
write_one_member(TrackCols *tc, ProgramConf *prog, MemberState *m, PendingRows *rows)
{
	Datum		args[17];
	char		nulls[17];
	Lots	   *before = lotsbuf_to_lots(&m->lots);
	bool		isnull;
	Datum		refs;
	Datum		prior;
	TimestampTz prior_at;
	TimestampTz earliest = DT_NOEND;

	for (int i = 0; i < rows->n; i++)
		lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows->lots[i]));
	memset(nulls, ' ', sizeof(nulls));
	insert_args(tc, rows, 0, rows->n, args);
	args[9] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
	args[10] = TimestampTzGetDatum(m->first_purchase_at);
	if (!m->had_purchase)
		nulls[10] = 'n';
	args[11] = TimestampTzGetDatum(m->last_activity_at);
	if (m->last_activity_at == DT_NOBEGIN)
		nulls[11] = 'n';		/* no activity yet */
	args[12] = Int64GetDatum(m->id);
	args[13] = Int64GetDatum(rows->n);
	args[14] = PointerGetDatum(m->activity);
	args[15] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	for (int i = 0; i < rows->n; i++)
		earliest = Min(earliest, DatumGetTimestampTz(rows->effective[i]));
	args[16] = TimestampTzGetDatum(earliest);
	if (plan_one_member == NULL)
	{
		Oid			t[17] = {INT4OID, INT4OID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
			get_array_type(tc->lots_type), TEXTARRAYOID, TEXTARRAYOID,
			get_array_type(TIMESTAMPTZOID), tc->lots_type, TIMESTAMPTZOID, TIMESTAMPTZOID,
		INT8OID, INT8OID, tc->activity_type, TIMESTAMPTZOID, TIMESTAMPTZOID};

		plan_one_member = keep(
							   "WITH prior AS (SELECT max(effective_at) AS at FROM loyalty.ledger"
							   " WHERE member_id = $13),"
							   " ins AS ("
							   " INSERT INTO loyalty.ledger (program_id, track_id, member_id, kind,"
							   " points, lots, reference, reason, effective_at)"
							   " SELECT $1, $2, " UNNEST_ROWS " "
							   AWARD_CONFLICT " RETURNING reference),"
							   " upd AS (UPDATE loyalty.members SET balance = $10,"
							   " first_purchase_at = $11, last_activity_at = $12, activity = $15,"
							   " settled_at = $16"
							   " WHERE id = $13 AND (SELECT count(*) FROM ins) = $14"
							   " AND coalesce((SELECT at FROM prior), '-infinity') <= $17 RETURNING 1)"
							   " SELECT (SELECT count(*) FROM upd), (SELECT array_agg(reference) FROM ins),"
							   " (SELECT at FROM prior)",
							   17, t);
	}
	if (SPI_execute_plan(plan_one_member, args, nulls, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not write ledger entries");
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) == 1)
		return;
	prior = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	prior_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(prior);

	/*
	 * Some purchases were awarded before: apply only the rows that went in,
	 * and take the replayed ones out of the activity again.
	 */
	refs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	lotsbuf_from_lots(&m->lots, before);
	{
		Datum	   *elems = NULL;
		bool	   *enulls;
		int			n = 0;
		bool	   *went_in = palloc0(sizeof(bool) * rows->n);

		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(refs), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &enulls, &n);

		for (int i = 0; i < rows->n; i++)
		{
			for (int j = 0; j < n && !went_in[i]; j++)
				went_in[i] = strcmp(TextDatumGetCString(rows->reference[i]),
									TextDatumGetCString(elems[j])) == 0;
			if (went_in[i])
			{
				lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows->lots[i]));
				/* dated before the member's newest entry: a replay */
				if (DatumGetTimestampTz(rows->effective[i]) < prior_at)
					m->replay = true;
			}
			else
				uncount_row(prog, m, rows, i);
		}
		/* one customer: rows->member[i] is 0, m is that member */
		times_from_inserted(m, 1, rows, went_in);
		update_one(m, tc);
		if (m->replay)
			rebuild_member(m);
	}
}

/* the lots one award adds: pending while the pending period runs */
static Lots *
award_lots(ProgramConf *prog, const ExpirySpec *expiry, TimestampTz at, int64 points,
		   const char **kind)
{
	TimestampTz release = loyalty_release(prog, at);
	/* points count as earned when released: expiry runs from then */
	TimestampTz expires = loyalty_expiry(prog, expiry, release);
	bool		pending = release > at || release > GetCurrentTransactionStartTimestamp();

	*kind = pending ? "pending" : "earn";
	return lots_single(points, release, expires, pending);
}

/* ---- activity and tier upgrades ---- */

static void
write_upgrade(MemberState *m, const char *tier, TimestampTz at)
{
	Datum		args[3];

	if (plan_upgrade == NULL)
	{
		Oid			t[3] = {INT8OID, TEXTOID, TIMESTAMPTZOID};

		plan_upgrade = keep("SELECT loyalty._tier_upgrade($1, $2, $3)", 3, t);
	}
	args[0] = Int64GetDatum(m->id);
	args[1] = CStringGetTextDatum(tier);
	args[2] = TimestampTzGetDatum(at);
	if (SPI_execute_plan(plan_upgrade, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the tier upgrade of member %lld", (long long) m->id);
}

/*
 * Write the upgrades found by count_activity: history, event, NOTIFY; each
 * step of a statement that climbs several is a change of its own.  When
 * some purchases were replays (their activity taken back again), the steps
 * are not trusted: one upgrade to what the activity now qualifies for.
 */
static void
write_upgrades(ProgramConf *prog, MemberState *m)
{
	if (m->nups == 0)
		return;
	if (m->replayed && !m->any_went_in)
	{
		/* every award was refused: nothing happened, no upgrade either */
		m->tier = m->locked_tier;
		m->nups = 0;
		return;
	}
	if (m->replayed)
	{
		TimestampTz at = m->up_at[m->nups - 1];
		const TierConf *q = loyalty_qualified_tier(prog, m->activity, at);
		const TierConf *was = loyalty_tier_named(prog, m->locked_tier);

		m->tier = m->locked_tier;
		if (q != NULL && (was == NULL || q->rank > was->rank))
		{
			write_upgrade(m, q->name, at);
			m->tier = q->name;
		}
	}
	else
		for (int i = 0; i < m->nups; i++)
			write_upgrade(m, m->up_tier[i], m->up_at[i]);
	m->nups = 0;
}

/*
 * Count a purchase (or take it back, with sign -1) in the member's activity,
 * in the month of its purchase time; points may be counted alone (sign 0).
 * A higher tier the activity now qualifies for is taken at once (later
 * purchases of the statement earn at it); write_upgrades() records it.
 */
static void
count_activity(ProgramConf *prog, MemberState *m, Numeric amount, int sign, int64 points,
			   TimestampTz at)
{
	int64		spend = 0;
	const TierConf *q,
			   *cur;

	if (sign != 0)
	{
		spend = activity_spend_from_numeric(amount);
		if (sign < 0)
			spend = loyalty_sub_points(0, spend);
	}
	if (sign == 0 && points == 0)
		return;
	{
		/* a bulk load counts ~10 purchases per member: keep one copy alive */
		Activity   *prev = m->activity;

		m->activity = activity_apply(prev, activity_month_of(at, prog->tz), spend, sign, points);
		pfree(prev);
	}
	m->dirty = true;
	if (prog->ntiers == 0 || sign < 0)
		return;
	q = loyalty_qualified_tier(prog, m->activity, at);
	cur = loyalty_tier_named(prog, m->tier);
	if (q != NULL && (cur == NULL || q->rank > cur->rank))
	{
		if (m->nups == m->maxups)
		{
			m->maxups = Max(4, m->maxups * 2);
			m->up_tier = m->up_tier ? repalloc(m->up_tier, sizeof(char *) * m->maxups) :
				palloc(sizeof(char *) * m->maxups);
			m->up_at = m->up_at ? repalloc(m->up_at, sizeof(TimestampTz) * m->maxups) :
				palloc(sizeof(TimestampTz) * m->maxups);
		}
		m->up_tier[m->nups] = q->name;
		m->up_at[m->nups] = at;
		m->nups++;
		m->tier = q->name;
	}
}

/*
 * When some of a customer's award rows were refused (replayed purchases),
 * the first purchase and last activity times come from the rows that went
 * in only: a purchase inserted again must not move them (a restored
 * purchases table would otherwise change member rows).  went_in[i] says
 * whether rows[i] went in; every row of the statement is passed.
 */
static void
times_from_inserted(MemberState *members, int nmembers, PendingRows *rows, const bool *went_in)
{
	for (int i = 0; i < nmembers; i++)
	{
		MemberState *m = &members[i];

		if (!m->replayed)
			continue;
		m->had_purchase = m->locked_had_purchase;
		m->first_purchase_at = m->locked_first_purchase_at;
		m->last_activity_at = m->locked_last_activity_at;
	}
	for (int i = 0; i < rows->n; i++)
	{
		MemberState *m = &members[rows->member[i]];
		TimestampTz at = DatumGetTimestampTz(rows->effective[i]);

		if (!m->replayed || !went_in[i])
			continue;
		m->any_went_in = true;
		if (!m->had_purchase || at < m->first_purchase_at)
			m->first_purchase_at = at;
		m->had_purchase = true;
		m->last_activity_at = Max(m->last_activity_at, at);
	}
}

/* a replayed award row: its purchase was counted before, take it back */
static void
uncount_row(ProgramConf *prog, MemberState *m, PendingRows *rows, int i)
{
	Numeric		amount = rows->amount[i];

	count_activity(prog, m, amount, amount ? -1 : 0,
				   loyalty_sub_points(0, DatumGetInt64(rows->points[i])),
				   DatumGetTimestampTz(rows->effective[i]));
	m->replayed = true;
}

static int32
track_id_arg(TriggerData *trigdata)
{
	Trigger    *tg = trigdata->tg_trigger;

	if (tg->tgnargs < 1)
		elog(ERROR, "loyalty purchase trigger needs the tracked table id as argument");
	return pg_strtoint32(tg->tgargs[0]);
}

Datum
loyalty_purchase_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TrackCols	tc;
	ProgramConf *prog;
	TupleTableSlot *slot;
	Purchase   *purchases;
	int			npurchases = 0,
				maxpurchases = 256;
	MemberState *members;
	int			nmembers = 0;
	PendingRows rows = {0};
	bool	   *went_in;
	MemoryContext work,
				old;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.purchase_insert() must run as an AFTER INSERT statement trigger with a NEW TABLE"),
				 errhint("Attach it with loyalty.track_purchases().")));

	work = AllocSetContextCreate(CurrentMemoryContext, "loyalty purchases", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_plans();
	load_track(track_id_arg(trigdata), trigdata->tg_relation, &tc);
	prog = loyalty_program_conf(tc.program_id);

	/* 1. read the new rows */
	purchases = palloc(sizeof(Purchase) * maxpurchases);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (npurchases == maxpurchases)
		{
			maxpurchases *= 2;
			purchases = repalloc_huge(purchases, sizeof(Purchase) * maxpurchases);
		}
		if (read_purchase(slot, &tc, prog, &purchases[npurchases]) &&
			!purchases[npurchases].reversed)
			npurchases++;
	}
	ExecDropSingleTupleTableSlot(slot);
	if (npurchases == 0)
		goto done;

	/* 2. one member state per customer, locked in id order */
	qsort(purchases, npurchases, sizeof(Purchase), purchase_cmp);
	for (int i = 0; i < npurchases; i++)
	{
		if (i == 0 || strcmp(purchases[i - 1].member_key, purchases[i].member_key) != 0)
			nmembers++;
		purchases[i].member = nmembers - 1;
	}
	/* a bulk load has ~10 purchases per customer: one state per customer */
	members = palloc0(sizeof(MemberState) * nmembers);
	for (int i = 0; i < npurchases; i++)
	{
		members[purchases[i].member].key = purchases[i].member_key;
		members[purchases[i].member].key_hash = purchases[i].key_hash;
	}
	lock_members(&tc, prog->auto_enroll, members, nmembers);
	/* one customer with few purchases: write_one_member() */
	plan_members(prog, purchases, npurchases, members, nmembers, nmembers > 1 || npurchases > 8);

	/*
	 * A reference may repeat when reference_columns are not unique; as with
	 * ON CONFLICT DO NOTHING, only its first row (in processing order) counts.
	 * When they are a unique key, the insert itself ruled repeats out.
	 */
	if (npurchases > 1 && !references_unique(trigdata->tg_relation, &tc))
	{
		char	  **refs = palloc(sizeof(char *) * npurchases);

		for (int i = 0; i < npurchases; i++)
			refs[i] = purchases[i].reference;
		qsort(refs, npurchases, sizeof(char *), cstring_ptr_cmp);
		for (int i = 1; i < npurchases; i++)
			if (strcmp(refs[i - 1], refs[i]) == 0)
			{
				/* duplicates exist: mark all but the first occurrence */
				for (int a = 0; a < npurchases; a++)
					for (int b = 0; b < a && !purchases[a].duplicate; b++)
						if (!purchases[b].duplicate &&
							strcmp(purchases[a].reference, purchases[b].reference) == 0)
							purchases[a].duplicate = true;
				break;
			}
	}

	/* 3. points per purchase, in time order per member */
	for (int i = 0; i < npurchases; i++)
	{
		Purchase   *p = &purchases[i];
		MemberState *m = &members[p->member];
		int64		points,
					bonus = 0;
		const char *kind;

		if (!m->found || p->duplicate)
			continue;			/* not a member and the program does not enroll */
		p->facts.tier = m->tier;
		points = loyalty_rules_points(prog, &p->facts);
		/* only a purchase that earns counts as the first purchase */
		if (!m->had_purchase && points > 0)
			bonus = loyalty_first_purchase_bonus(prog, &p->facts);
		points = apply_caps(prog, m, &p->facts, points);
		if (points > 0)
		{
			Lots	   *lots = award_lots(prog, loyalty_rules_expiry(prog, &p->facts, false),
										  p->facts.at, points, &kind);

			rows_add(&rows, p->member, m->id, kind, points, lots, p->reference, NULL,
					 p->facts.at, p->facts.amount);
		}
		if (bonus > 0)
		{
			Lots	   *lots = award_lots(prog, loyalty_rules_expiry(prog, &p->facts, true),
										  p->facts.at, bonus, &kind);

			rows_add(&rows, p->member, m->id, kind, bonus, lots,
					 psprintf("%s%s", p->reference, BONUS_SUFFIX),
					 "first-purchase bonus", p->facts.at, NULL);
		}
		/* only a purchase that earns counts for tiers: its award row makes a replay visible */
		if (points > 0)
			count_activity(prog, m, p->facts.amount, 1, loyalty_add_points(points, bonus),
						   p->facts.at);
		if (points > 0 || bonus > 0)
		{
			if (!m->had_purchase || p->facts.at < m->first_purchase_at)
				m->first_purchase_at = p->facts.at;
			m->had_purchase = true;
			m->last_activity_at = Max(m->last_activity_at, p->facts.at);
		}
	}

	/* the common case, one customer's purchase: one statement writes both */
	if (nmembers == 1 && rows.n > 0 && rows.n <= 16 && !members[0].replay)
	{
		write_one_member(&tc, prog, &members[0], &rows);
		write_upgrades(prog, &members[0]);
		goto done;
	}

	/* 4. write the ledger in batches; only what went in changes balances */
	went_in = palloc(sizeof(bool) * Max(rows.n, 1));
	for (int from = 0; from < rows.n; from += INSERT_BATCH)
	{
		int			n = Min(INSERT_BATCH, rows.n - from);
		bool	   *inserted = rows_insert(&tc, &rows, from, n);

		for (int i = 0; i < n; i++)
		{
			MemberState *m = &members[rows.member[from + i]];

			went_in[from + i] = inserted[i];
			if (!inserted[i])
			{
				uncount_row(prog, m, &rows, from + i);
				continue;
			}
			lotsbuf_merge_lots(&m->lots, DatumGetLotsP(rows.lots[from + i]));
			m->dirty = true;
		}
	}
	times_from_inserted(members, nmembers, &rows, went_in);
	/* a member none of whose rows went in (replayed purchases) is unchanged */
	for (int i = 0; i < nmembers; i++)
		if (members[i].found && members[i].replay &&
			(!members[i].replayed || members[i].any_went_in))
			rebuild_member(&members[i]);

	/* 5. new balances, then the tier upgrades they reached */
	members_update(&tc, members, nmembers);
	for (int i = 0; i < nmembers; i++)
		write_upgrades(prog, &members[i]);

done:
	SPI_finish();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	return PointerGetDatum(NULL);
}

/* ---- corrections: UPDATE and DELETE of a purchase ---- */

static bool
lock_member(TrackCols *tc, const char *key, bool enroll, MemberState *m)
{
	memset(m, 0, sizeof(MemberState));
	m->key = (char *) key;
	m->key_hash = member_hash(key);
	lock_members(tc, enroll, m, 1);
	return m->found;
}

/*
 * The purchase's net award; the lots it created that the member still
 * holds by its account -- its first award and every increase, less what its
 * reversals took -- which a reversal takes first; and the latest instant of
 * the credits since it was last taken back in full.
 */
static int64
award_of(TrackCols *tc, MemberState *m, const char *reference, LotsBuf *own, bool *has_initial,
		 TimestampTz *credited_at)
{
	Datum		args[3];
	int64		net = 0;

	if (plan_award_of == NULL)
	{
		Oid			t[3] = {INT8OID, INT4OID, TEXTOID};

		plan_award_of = keep("SELECT kind, points, lots, effective_at FROM loyalty.ledger"
							 " WHERE member_id = $1 AND track_id = $2 AND reference = $3"
							 " ORDER BY id", 3, t);
	}
	args[0] = Int64GetDatum(m->id);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = CStringGetTextDatum(reference);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (SPI_execute_plan(plan_award_of, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the purchase's award");
	lotsbuf_init(own);
	*has_initial = false;
	*credited_at = DT_NOBEGIN;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *kind = spi_text(tup, desc, 1);
		int64		points = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		LotsBuf		lots;

		net = loyalty_add_points(net, points);
		lotsbuf_from_lots(&lots, DatumGetLotsP(SPI_getbinval(tup, desc, 3, &isnull)));
		if (points > 0)
		{
			lotsbuf_merge(own, &lots);
			*credited_at = Max(*credited_at, DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull)));
		}
		else if (points < 0)
		{
			lots.debt = 0;		/* what became debt was not taken from its lots */
			(void) lotsbuf_subtract_held(own, &lots);
		}
		/* taken back in full: its earlier credits hold nothing any more */
		if (net <= 0)
			*credited_at = DT_NOBEGIN;
		if (strcmp(kind, "earn") == 0 || strcmp(kind, "pending") == 0)
			*has_initial = true;
	}
	return net;
}

static void
insert_one(TrackCols *tc, MemberState *m, const char *kind, int64 points, Lots *lots,
		   const char *reference, const char *reason, TimestampTz at)
{
	Datum		args[9];
	char		nulls[9] = "         ";

	if (plan_insert_one == NULL)
	{
		Oid			t[9] = {INT4OID, INT4OID, INT8OID, TEXTOID, INT8OID, tc->lots_type,
		TEXTOID, TEXTOID, TIMESTAMPTZOID};

		plan_insert_one = keep("INSERT INTO loyalty.ledger (program_id, track_id, member_id, kind,"
							   " points, lots, reference, reason, effective_at)"
							   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", 9, t);
	}
	args[0] = Int32GetDatum(tc->program_id);
	args[1] = Int32GetDatum(tc->track_id);
	args[2] = Int64GetDatum(m->id);
	args[3] = CStringGetTextDatum(kind);
	args[4] = Int64GetDatum(points);
	args[5] = PointerGetDatum(lots);
	args[6] = CStringGetTextDatum(reference);
	if (reason)
		args[7] = CStringGetTextDatum(reason);
	else
		nulls[7] = 'n';
	args[8] = TimestampTzGetDatum(at);
	if (SPI_execute_plan(plan_insert_one, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write ledger entry");
}

static void
update_one(MemberState *m, TrackCols *tc)
{
	Datum		args[5];
	char		nulls[5] = "     ";

	if (plan_update_one == NULL)
	{
		Oid			t[5] = {INT8OID, tc->lots_type, TIMESTAMPTZOID, TIMESTAMPTZOID,
		tc->activity_type};

		plan_update_one = keep("UPDATE loyalty.members SET balance = $2, first_purchase_at = $3,"
							   " last_activity_at = $4, activity = $5 WHERE id = $1", 5, t);
	}
	args[4] = PointerGetDatum(m->activity);
	args[0] = Int64GetDatum(m->id);
	args[1] = PointerGetDatum(lotsbuf_to_lots(&m->lots));
	args[2] = TimestampTzGetDatum(m->first_purchase_at);
	if (!m->had_purchase)
		nulls[2] = 'n';
	args[3] = TimestampTzGetDatum(m->last_activity_at);
	if (m->last_activity_at == DT_NOBEGIN)
		nulls[3] = 'n';
	if (SPI_execute_plan(plan_update_one, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update member balance");
}

/* The purchase's initial award exists, for another member (it was moved). */
static bool
awarded_elsewhere(TrackCols *tc, const char *reference)
{
	Datum		args[2];

	if (plan_awarded == NULL)
	{
		Oid			t[2] = {INT4OID, TEXTOID};

		plan_awarded = keep("SELECT 1 FROM loyalty.ledger WHERE track_id = $1 AND reference = $2"
							" AND kind IN ('earn', 'pending')", 2, t);
	}
	args[0] = Int32GetDatum(tc->track_id);
	args[1] = CStringGetTextDatum(reference);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (SPI_execute_plan(plan_awarded, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the purchase's award");
	return SPI_processed > 0;
}

/*
 * Bring one purchase's award (under one reference) to target points.  With
 * caps (the purchase's facts), an increase is capped like an award.
 */
static int64
settle_reference(TrackCols *tc, ProgramConf *prog, MemberState *m, const char *reference,
				 TimestampTz at, const ExpirySpec *expiry, int64 target, const char *reason,
				 const PurchaseFacts *caps, int64 *net_before)
{
	LotsBuf		own;
	bool		has_initial;
	TimestampTz credited_at;
	int64		net = award_of(tc, m, reference, &own, &has_initial, &credited_at);
	int64		diff;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (net_before)
		*net_before = net;

	if (caps && target > net)
		target = net + apply_caps(prog, m, caps, target - net);
	diff = loyalty_sub_points(target, net);

	if (diff > 0)
	{
		const char *kind;
		Lots	   *lots = award_lots(prog, expiry, at, diff, &kind);
		LotsBuf		delta;

		if (has_initial)
			insert_one(tc, m, "adjust", diff, lots, reference, "purchase amount changed", at);
		else if (awarded_elsewhere(tc, reference))
			insert_one(tc, m, "adjust", diff, lots, reference, "purchase moved", at);
		else
			insert_one(tc, m, kind, diff, lots, reference, NULL, at);
		lotsbuf_from_lots(&delta, lots);
		lotsbuf_merge(&m->lots, &delta);
		m->dirty = true;
		m->latest_write = Max(m->latest_write, at);
		m->earliest_write = Min(m->earliest_write, at);
		/* an award or increase is activity at the purchase time */
		m->wrote_activity = true;
		m->last_activity_at = Max(m->last_activity_at, at);
	}
	else if (diff < 0)
	{
		LotsBuf		drawn;
		TimestampTz at_rev = now;

		/*
		 * A purchase dated in the future is taken back where it was awarded,
		 * from its own pending lots: it never counted at any instant.
		 */
		if (credited_at > now && lotsbuf_pending(&own, now) >= -diff)
			at_rev = credited_at;
		lotsbuf_init(&drawn);
		lotsbuf_reverse(&m->lots, -diff, now, &own, &drawn);
		insert_one(tc, m, "reverse", diff, lotsbuf_to_lots(&drawn), reference, reason, at_rev);
		m->dirty = true;
		m->latest_write = Max(m->latest_write, at_rev);
		m->earliest_write = Min(m->earliest_write, at_rev);
	}
	return diff;
}

/*
 * Write the release and expiry entries due at "at" (loyalty._settle), as the
 * SQL functions do before they spend, so that the ledger replays exactly.
 */
static void
settle_due(MemberState *m, TimestampTz at)
{
	Datum		args[2];
	bool		isnull;

	if (plan_settle == NULL)
	{
		Oid			t[2] = {INT8OID, TIMESTAMPTZOID};

		plan_settle = keep("UPDATE loyalty.members m SET balance = loyalty._settle(m, $2),"
						   " settled_at = greatest(m.settled_at, $2)"
						   " WHERE id = $1 RETURNING balance, settled_at", 2, t);
	}
	args[0] = Int64GetDatum(m->id);
	args[1] = TimestampTzGetDatum(at);
	if (SPI_execute_plan(plan_settle, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not settle member %lld", (long long) m->id);
	lotsbuf_from_lots(&m->lots, DatumGetLotsP(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1,
															&isnull)));
	m->settled_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													  2, &isnull));
}

/*
 * Rebuild a member's lots from the ledger (loyalty._rebuild): everything
 * due by now written, the result stored.  For writes that do not apply to
 * the stored lots in effective order.
 */
static void
rebuild_member(MemberState *m)
{
	Datum		args[2];
	bool		isnull;

	if (plan_rebuild == NULL)
	{
		Oid			t[2] = {INT8OID, TIMESTAMPTZOID};

		plan_rebuild = keep("UPDATE loyalty.members m SET balance = loyalty._rebuild(m, $2),"
							" settled_at = $2 WHERE id = $1 RETURNING balance", 2, t);
	}
	args[0] = Int64GetDatum(m->id);
	args[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (SPI_execute_plan(plan_rebuild, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not rebuild the lots of member %lld", (long long) m->id);
	lotsbuf_from_lots(&m->lots, DatumGetLotsP(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1,
															&isnull)));
	m->settled_at = GetCurrentTransactionStartTimestamp();
	m->dirty = true;
}

/* The instant of each member's latest ledger entry (DT_NOBEGIN: none). */
static void
latest_entries(MemberState *members, int nmembers, TimestampTz *latest)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(nmembers, 1));
	int			n = 0;
	Datum		args[1];

	for (int i = 0; i < nmembers; i++)
	{
		latest[i] = DT_NOBEGIN;
		if (members[i].found)
			ids[n++] = Int64GetDatum(members[i].id);
	}
	if (n == 0)
		return;
	if (plan_latest == NULL)
	{
		Oid			t[1] = {INT8ARRAYOID};

		/* per member the newest entry of the (member_id, effective_at) index */
		plan_latest = keep("SELECT u.id, (SELECT max(l.effective_at) FROM loyalty.ledger l"
						   " WHERE l.member_id = u.id)"
						   " FROM unnest($1) WITH ORDINALITY AS u(id, n) ORDER BY u.n", 1, t);
	}
	args[0] = PointerGetDatum(array_of(ids, NULL, n, INT8OID));
	/* not read_only: a fresh snapshot sees what committed while we waited for the members */
	if (SPI_execute_plan(plan_latest, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the members' latest entries");
	/* in the order of ids given: the found members, in array order */
	for (int i = 0, r = 0; i < nmembers && (uint64) r < SPI_processed; i++)
	{
		bool		isnull;
		Datum		at;

		if (!members[i].found)
			continue;
		at = SPI_getbinval(SPI_tuptable->vals[r++], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			latest[i] = DatumGetTimestampTz(at);
	}
}

/*
 * Decide, per member, whether the statement's awards can be applied to the
 * stored lots, or the lots must be rebuilt from the ledger after them
 * (docs/concepts.md, Balances as of any instant): a purchase dated before
 * the member's latest entry, debt (who pays it depends on the order of the
 * time axis), and under inactivity an activity after the last settlement,
 * a purchase before a deadline that has passed, a deadline between two
 * purchases of the statement, or one due by now after them.  Otherwise an
 * inactivity deadline that passed before the member's first purchase of the
 * statement is written first, so that the purchase never revives the points
 * that expired at it.
 */
static void
plan_members(ProgramConf *prog, Purchase *purchases, int npurchases, MemberState *members,
			 int nmembers, bool check_latest)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz *latest = palloc(sizeof(TimestampTz) * Max(nmembers, 1));
	bool		inactivity = prog->expiry.policy == EXPIRY_INACTIVITY;

	/* (the single-customer statement checks it as it writes: write_one_member) */
	if (check_latest)
		latest_entries(members, nmembers, latest);
	else
		for (int i = 0; i < nmembers; i++)
			latest[i] = DT_NOBEGIN;
	for (int i = 0; i < npurchases; i++)
	{
		MemberState *m = &members[purchases[i].member];
		TimestampTz first = purchases[i].facts.at,
					last = first,
					deadline;
		int			j;

		if (i > 0 && purchases[i - 1].member == purchases[i].member)
			continue;			/* sorted by member, then time: the first is the earliest */
		for (j = i + 1; j < npurchases && purchases[j].member == purchases[i].member; j++)
		{
			if (inactivity &&
				loyalty_inactivity_deadline(prog, purchases[j - 1].facts.at) <= purchases[j].facts.at)
				m->replay = true;
			last = purchases[j].facts.at;
		}
		if (!m->found)
			continue;
		if (first < latest[purchases[i].member] || m->lots.debt > 0)
			m->replay = true;
		if (!inactivity)
			continue;
		deadline = loyalty_inactivity_deadline(prog, m->last_activity_at);
		if (m->last_activity_at > m->settled_at || (deadline <= now && first < deadline) ||
			loyalty_inactivity_deadline(prog, Max(m->last_activity_at, last)) <= now)
			m->replay = true;
		if (!m->replay && deadline <= first && deadline <= now && deadline > m->settled_at)
			settle_due(m, Min(first, now));	/* never ahead of time */
	}
}

/*
 * Bring a purchase's award to what it should be now (award) or to nothing,
 * and its activity with it: "undo" is the version of the purchase counted
 * so far (NULL when none was), taken out of the activity of its month.
 */
static void
settle_purchase(TrackCols *tc, ProgramConf *prog, Purchase *p, bool award, Purchase *undo,
				const char *reason)
{
	MemberState m;
	int64		target = 0;
	int64		moved;
	int64		was,
				now;
	TimestampTz latest;

	/* a non-member has no tier: this decides whether to enroll */
	if (award && !p->reversed)
		target = loyalty_rules_points(prog, &p->facts);
	if (!lock_member(tc, p->member_key, target > 0 && prog->auto_enroll, &m))
		return;
	settle_due(&m, GetCurrentTransactionStartTimestamp());
	latest_entries(&m, 1, &latest);
	m.earliest_write = DT_NOEND;
	m.latest_write = DT_NOBEGIN;
	if (award && !p->reversed)
	{
		p->facts.tier = m.tier;
		target = loyalty_rules_points(prog, &p->facts);
	}
	/* corrections are capped like awards; only an increase can hit a cap */
	moved = settle_reference(tc, prog, &m, p->reference, p->facts.at,
							 loyalty_rules_expiry(prog, &p->facts, false), target, reason, &p->facts,
							 &was);
	now = was + moved;
	if (target == 0)
	{
		/* a purchase that no longer counts takes its first-purchase bonus along */
		moved = loyalty_add_points(moved,
								   settle_reference(tc, prog, &m,
													psprintf("%s%s", p->reference, BONUS_SUFFIX),
													p->facts.at, &prog->expiry, 0, reason, NULL, NULL));
	}
	else if (!m.had_purchase)
	{
		int64		bonus = loyalty_first_purchase_bonus(prog, &p->facts);

		if (bonus > 0)
			moved = loyalty_add_points(moved,
									   settle_reference(tc, prog, &m,
														psprintf("%s%s", p->reference, BONUS_SUFFIX),
														p->facts.at, loyalty_rules_expiry(prog, &p->facts, true),
														bonus, "first-purchase bonus", NULL, NULL));
		m.had_purchase = true;
		m.first_purchase_at = p->facts.at;
		m.dirty = true;
	}
	/*
	 * A purchase counts for tiers while it earns points (as the insert
	 * trigger counts it); a reversed qualification counts at once, a lower
	 * tier waits for its review.
	 */
	if (undo != NULL && was > 0)
		count_activity(prog, &m, undo->facts.amount, -1, 0, undo->facts.at);
	if (award && !p->reversed && now > 0)
		count_activity(prog, &m, p->facts.amount, 1, moved, p->facts.at);
	else
		count_activity(prog, &m, NULL, 0, moved, p->facts.at);
	if (m.dirty)
	{
		update_one(&m, tc);
		/*
		 * An entry dated before the member's latest one, or under inactivity
		 * an activity (it may be late for a deadline, or set one due now):
		 * the lots come from the ledger (docs/concepts.md, Balances as of
		 * any instant).
		 */
		if (m.earliest_write < latest ||
			(prog->expiry.policy == EXPIRY_INACTIVITY && m.wrote_activity))
			rebuild_member(&m);
	}
	write_upgrades(prog, &m);
}

Datum
loyalty_purchase_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TrackCols	tc;
	ProgramConf *prog;
	TupleTableSlot *slot;
	Purchase	oldp,
				newp;
	bool		has_old,
				has_new = false;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.purchase_change() must run as an AFTER UPDATE OR DELETE row trigger"),
				 errhint("Attach it with loyalty.track_purchases().")));
	rel = trigdata->tg_relation;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_plans();
	load_track(track_id_arg(trigdata), rel, &tc);
	prog = loyalty_program_conf(tc.program_id);

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(trigdata->tg_trigtuple, slot, false);
	has_old = read_purchase(slot, &tc, prog, &oldp);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		ExecStoreHeapTuple(trigdata->tg_newtuple, slot, false);
		has_new = read_purchase(slot, &tc, prog, &newp);
	}
	ExecDropSingleTupleTableSlot(slot);

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		if (has_old)
			settle_purchase(&tc, prog, &oldp, false, &oldp, "purchase deleted");
	}
	else
	{
		bool		same = has_old && has_new &&
			strcmp(oldp.member_key, newp.member_key) == 0 &&
			strcmp(oldp.reference, newp.reference) == 0;

		if (has_old && has_new && strcmp(oldp.member_key, newp.member_key) != 0)
		{
			/*
			 * A move touches two members: lock both first, in id order, as
			 * transfer() does, so that a concurrent transfer between them
			 * cannot deadlock with it.
			 */
			MemberState both[2];
			bool		old_first = member_order(oldp.key_hash, oldp.member_key,
												 newp.key_hash, newp.member_key) < 0;

			memset(both, 0, sizeof(both));
			both[0].key = old_first ? oldp.member_key : newp.member_key;
			both[0].key_hash = old_first ? oldp.key_hash : newp.key_hash;
			both[1].key = old_first ? newp.member_key : oldp.member_key;
			both[1].key_hash = old_first ? newp.key_hash : oldp.key_hash;
			lock_members(&tc, false, both, 2);
		}
		if (has_old && !same)
			settle_purchase(&tc, prog, &oldp, false, &oldp, "purchase moved");
		if (has_new)
			settle_purchase(&tc, prog, &newp, true, same ? &oldp : NULL,
							newp.reversed ? "purchase refunded" : "purchase amount changed");
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
