/*
 * Reading a tracked purchases table: its configuration (which columns hold
 * the member, the amount, the time, ...), cached per backend, and its rows
 * as purchases.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "conditions.h"
#include "purchase.h"

int32
loyalty_track_id_arg(TriggerData *trigdata)
{
	Trigger    *tg = trigdata->tg_trigger;

	if (tg->tgnargs < 1)
		elog(ERROR, "loyalty purchase trigger needs the tracked table id as argument");
	return pg_strtoint32(tg->tgargs[0]);
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
	RuleLabels *labels;			/* per program whose purchases it reads */
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

	args[0] = Int32GetDatum(track_id);
	if (loyalty_purchase_exec(STMT_TRACKED_TABLE, NULL, args, NULL, true, 1) != SPI_OK_SELECT)
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
		t->cols[i] = loyalty_spi_text(tup, desc, i + 2);
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
void
loyalty_load_track(int32 track_id, Relation rel, TrackCols *tc)
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
	for (int k = 0; k < NUM_LABELS; k++)
		tc->label[k] = attnum_of(rel, t->cols[4 + k], loyalty_label_names[k], false);
	tc->nref = t->nref;
	for (int i = 0; i < t->nref; i++)
		tc->ref[i] = attnum_of(rel, t->ref[i], "reference", true);
	tc->nreversed = t->nreversed;
	tc->reversed = t->reversed;
	tc->lots_type = t->lots_type;
	tc->activity_type = t->activity_type;
}

/*
 * The program's rules parsed in the types of the table's label columns,
 * and their conditions compiled for its columns, into tc->labels: cached
 * with the table's configuration per relation the rows come from (a
 * partition's attribute numbers may differ from its table's), and built
 * again after a configuration change or a change of those columns.
 */
void
loyalty_track_labels(TrackCols *tc, Relation rel, ProgramConf *prog)
{
	TrackConf  *t;

	/* a change was seen since the table was loaded: build for this call only */
	if (track_generation != loyalty_config_generation)
	{
		tc->labels = loyalty_rule_labels_build(prog, rel, tc->label, CurrentMemoryContext);
		return;
	}
	for (t = track_cache; t && t->track_id != tc->track_id; t = t->next)
		;
	if (t == NULL)
		elog(ERROR, "tracked table %d is not loaded", tc->track_id);
	for (RuleLabels *rl = t->labels; rl; rl = rl->next)
		if (rl->program_id == prog->id && rl->generation == loyalty_config_generation &&
			rl->nrules == prog->nrules && rl->relid == RelationGetRelid(rel) &&
			(rl->columns_checked == loyalty_relcache_generation ||
			 loyalty_rule_labels_fit(rl, RelationGetDescr(rel))))
		{
			tc->labels = rl;
			return;
		}
	{
		RuleLabels *rl = loyalty_rule_labels_build(prog, rel, tc->label, track_context);

		rl->next = t->labels;
		t->labels = rl;
		tc->labels = rl;
	}
}

/*
 * Are the reference columns exactly the key of an immediate, non-partial
 * unique index (or the partitioned table's) whose columns are NOT NULL?
 * Then two rows of one INSERT cannot share a reference, and the sort that
 * finds repeats is skipped.  (Only a saving: were two rows to share one,
 * ledger_purchase_award would still let one award in.)
 */
bool
loyalty_references_unique(Relation rel, TrackCols *tc)
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

bool
loyalty_read_purchase(TupleTableSlot *slot, TrackCols *tc, ProgramConf *prog, Purchase *p)
{
	bool		isnull;

	memset(p, 0, sizeof(Purchase));
	p->member_key = value_text(slot, tc->member, &isnull);
	if (p->member_key != NULL)
		p->key_hash = loyalty_member_hash(p->member_key);
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
	p->facts.rule_labels = tc->labels;
	for (int k = 0; k < NUM_LABELS; k++)
	{
		Form_pg_attribute att;
		Datum		d;

		p->facts.label_null[k] = true;
		if (tc->label[k] == 0)
			continue;
		d = slot_getattr(slot, tc->label[k], &p->facts.label_null[k]);
		if (p->facts.label_null[k])
			continue;
		/* the slot's next row may overwrite it */
		att = TupleDescAttr(slot->tts_tupleDescriptor, tc->label[k] - 1);
		p->facts.label[k] = att->attbyval ? d : datumCopy(d, false, att->attlen);
	}
	if (tc->labels != NULL && tc->labels->conds != NULL)
		loyalty_conditions_eval(tc->labels->conds, slot, p->facts.amount, &p->facts.cond);
	if (tc->status)
	{
		char	   *status = value_text(slot, tc->status, &isnull);

		for (int i = 0; !isnull && i < tc->nreversed; i++)
			if (strcmp(status, tc->reversed[i]) == 0)
				p->facts.reversed = true;
	}
	return true;
}
