/*
 * Reading the application's tables that the configuration names: a tracked
 * purchases table's purchase times and a customers table's keys, for the
 * KPIs.  Each read checks the table again (app_tables.c) and runs as the
 * table's owner in a security-restricted operation, as app_tables.c
 * explains; values become text through their type's output function.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "app_tables.h"

PG_FUNCTION_INFO_V1(loyalty_purchase_times);
PG_FUNCTION_INFO_V1(loyalty_customer_keys);

static char *
value_text(Datum value, Oid typid)
{
	Oid			typoutput;
	bool		varlena;

	getTypeOutputInfo(typid, &typoutput, &varlena);
	return OidOutputFunctionCall(typoutput, value);
}

/*
 * Run a SELECT as the owner of relid and hand each row to emit, a batch at
 * a time.  The query names the table and its columns only.
 */
typedef void (*RowEmitter) (HeapTuple tup, TupleDesc desc, void *arg);

static void
read_as_owner(Oid relid, const char *sql, int nargs, Oid *argtypes, Datum *values,
			  RowEmitter emit, void *arg)
{
	AsOwner		saved;
	Portal		portal;
	MemoryContext rows = AllocSetContextCreate(CurrentMemoryContext, "loyalty application rows",
											   ALLOCSET_DEFAULT_SIZES);

	loyalty_become_owner(relid, &saved);
	portal = SPI_cursor_open_with_args(NULL, sql, nargs, argtypes, values, NULL, true, 0);
	for (;;)
	{
		MemoryContext old;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(rows);
		for (uint64 i = 0; i < SPI_processed; i++)
			emit(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, arg);
		MemoryContextSwitchTo(old);
		MemoryContextReset(rows);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	loyalty_end_owner(&saved);
	MemoryContextDelete(rows);
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

typedef struct PurchaseTimes
{
	ReturnSetInfo *rsinfo;
	Oid			member_type;
	Oid			time_type;
	Oid			status_type;
	text	   *time_zone;
	char	  **reversed;
	int			nreversed;
} PurchaseTimes;

static void
emit_purchase(HeapTuple tup, TupleDesc desc, void *arg)
{
	PurchaseTimes *pt = arg;
	bool		isnull;
	Datum		member = SPI_getbinval(tup, desc, 1, &isnull);
	Datum		at;
	Datum		result[2];
	bool		nulls[2] = {false, false};

	if (isnull)
		return;
	at = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull)
		return;
	if (pt->status_type != InvalidOid)
	{
		Datum		status = SPI_getbinval(tup, desc, 3, &isnull);

		if (!isnull)
		{
			char	   *s = value_text(status, pt->status_type);

			for (int i = 0; i < pt->nreversed; i++)
				if (strcmp(s, pt->reversed[i]) == 0)
					return;
		}
	}
	result[0] = CStringGetTextDatum(value_text(member, pt->member_type));
	if (pt->time_type == TIMESTAMPTZOID)
		result[1] = DirectFunctionCall2(timestamptz_zone, PointerGetDatum(pt->time_zone), at);
	else if (pt->time_type == DATEOID)
		result[1] = DirectFunctionCall1(date_timestamp, at);
	else
		result[1] = at;
	tuplestore_putvalues(pt->rsinfo->setResult, pt->rsinfo->setDesc, result, nulls);
}

/*
 * loyalty._purchase_times(track_id, from_local, to_local, time_zone):
 * (customer, local_time) of the purchases of an active tracked table with a
 * time column, at program wall-clock times in [from_local, to_local), whose
 * status is not reversed; customer is the member column's text, local_time
 * the purchase time on the wall clock of time_zone.  Read as the table's
 * owner.  Errors when the table cannot be read as configured
 * (_tracked_table_problem says why beforehand).
 */
Datum
loyalty_purchase_times(PG_FUNCTION_ARGS)
{
	TrackedRow	t;
	Problem    *p;
	PurchaseTimes pt;
	AttrNumber	attnum;
	ColumnUse	use;
	Oid			argtypes[2];
	Datum		values[2];
	StringInfoData sql;

	for (int i = 0; i < 4; i++)
		loyalty_require_arg(fcinfo, i, i == 0 ? "tracked table id" : i == 3 ? "time zone" : "bound");
	InitMaterializedSRF(fcinfo, 0);
	memset(&pt, 0, sizeof(pt));
	pt.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pt.time_zone = PG_GETARG_TEXT_PP(3);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_read_tracked(PG_GETARG_INT32(0), &t);
	if ((p = loyalty_tracked_problem(&t)) != NULL)
		loyalty_raise_problem(p);
	if (!t.active || t.cols[2] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tracked table %d is not active or has no time column", PG_GETARG_INT32(0))));
	pt.reversed = t.reversed;
	pt.nreversed = t.nreversed;

	use = (ColumnUse) {t.cols[0], "member", COL_KEY};
	(void) loyalty_column_problem(t.relid, &use, &attnum, &pt.member_type);
	use = (ColumnUse) {t.cols[2], "purchase time", COL_TIME};
	(void) loyalty_column_problem(t.relid, &use, &attnum, &pt.time_type);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, %s", quote_identifier(t.cols[0]), quote_identifier(t.cols[2]));
	if (t.cols[3] && t.nreversed > 0)
	{
		use = (ColumnUse) {t.cols[3], "status", COL_LABEL};
		(void) loyalty_column_problem(t.relid, &use, &attnum, &pt.status_type);
		appendStringInfo(&sql, ", %s", quote_identifier(t.cols[3]));
	}
	appendStringInfo(&sql, " FROM %s WHERE %s OPERATOR(pg_catalog.>=) $1 AND %s OPERATOR(pg_catalog.<) $2",
					 qualified_name(t.relid), quote_identifier(t.cols[2]), quote_identifier(t.cols[2]));

	/* the bounds in the column's own type: exact, so that an index can be used */
	for (int i = 0; i < 2; i++)
	{
		Datum		local = PG_GETARG_DATUM(i + 1);

		argtypes[i] = pt.time_type;
		if (pt.time_type == TIMESTAMPTZOID)
			values[i] = DirectFunctionCall2(timestamp_zone, PointerGetDatum(pt.time_zone), local);
		else if (pt.time_type == DATEOID)
			values[i] = DirectFunctionCall1(timestamp_date, local);
		else
			values[i] = local;
	}
	read_as_owner(t.relid, sql.data, 2, argtypes, values, emit_purchase, &pt);
	SPI_finish();
	return (Datum) 0;
}

typedef struct CustomerKeys
{
	ReturnSetInfo *rsinfo;
	Oid			key_type;
} CustomerKeys;

static void
emit_key(HeapTuple tup, TupleDesc desc, void *arg)
{
	CustomerKeys *ck = arg;
	bool		isnull;
	Datum		key = SPI_getbinval(tup, desc, 1, &isnull);
	Datum		result[1];

	result[0] = isnull ? (Datum) 0 : CStringGetTextDatum(value_text(key, ck->key_type));
	tuplestore_putvalues(ck->rsinfo->setResult, ck->rsinfo->setDesc, result, &isnull);
}

/*
 * loyalty._customer_keys(program_id): the key column of every row of the
 * program's customers table (kpi_settings), as text (NULL keys included),
 * read as the table's owner.  No rows when none is set.
 */
Datum
loyalty_customer_keys(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *column;
	CustomerKeys ck;
	AttrNumber	attnum;
	Problem    *p;

	loyalty_require_arg(fcinfo, 0, "program");
	/* a set of text: the one-column descriptor comes from the executor */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ck.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (loyalty_read_customers(PG_GETARG_INT32(0), &relid, &column))
	{
		ColumnUse	use = {column, "customer key", COL_KEY};

		if ((p = loyalty_customers_problem(relid, column, &attnum)) != NULL)
			loyalty_raise_problem(p);
		(void) loyalty_column_problem(relid, &use, &attnum, &ck.key_type);
		read_as_owner(relid, psprintf("SELECT %s FROM %s", quote_identifier(column), qualified_name(relid)),
					  0, NULL, NULL, emit_key, &ck);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * The row that a DELETE on a partition of a tracked table may have been:
 * an UPDATE that changes a row's partition key moves the row, and
 * PostgreSQL runs the move as a DELETE from the old partition and an
 * INSERT into the new one, firing the old partition's DELETE row trigger
 * and no UPDATE or statement INSERT trigger.  When that trigger fires (at
 * the end of the statement) the moved row is in another partition of the
 * same root, under the same reference.  Returns that row, in the layout of
 * the partition's own tuple descriptor (one column per attribute of part,
 * NULL for dropped ones), or NULL when there is none or more than one.
 * Runs as the root table's owner, as every read of an application table.
 */
HeapTuple
loyalty_moved_row(Oid rootid, Relation part, HeapTuple old, const int *refs, int nrefs,
				  TupleDesc *desc)
{
	TupleDesc	pdesc = RelationGetDescr(part);
	StringInfoData sql;
	Oid		   *argtypes = palloc((nrefs + 1) * sizeof(Oid));
	Datum	   *values = palloc((nrefs + 1) * sizeof(Datum));
	AsOwner		saved;
	int			rc;

	if (!OidIsValid(rootid) || nrefs <= 0 || old == NULL)
		elog(ERROR, "loyalty_moved_row: invalid arguments");
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < pdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(pdesc, i);

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (att->attisdropped)
			appendStringInfoString(&sql, "NULL");
		else
			appendStringInfoString(&sql, quote_identifier(NameStr(att->attname)));
	}
	appendStringInfo(&sql, " FROM %s WHERE tableoid <> $1", qualified_name(rootid));
	argtypes[0] = OIDOID;
	values[0] = ObjectIdGetDatum(RelationGetRelid(part));
	for (int i = 0; i < nrefs; i++)
	{
		Form_pg_attribute att = TupleDescAttr(pdesc, refs[i] - 1);
		bool		isnull;

		values[i + 1] = heap_getattr(old, refs[i], pdesc, &isnull);
		if (isnull)
			return NULL;
		argtypes[i + 1] = att->atttypid;
		appendStringInfo(&sql, " AND %s = $%d", quote_identifier(NameStr(att->attname)), i + 2);
	}
	appendStringInfoString(&sql, " LIMIT 2");

	loyalty_become_owner(rootid, &saved);
	rc = SPI_execute_with_args(sql.data, nrefs + 1, argtypes, values, NULL, false, 2);
	loyalty_end_owner(&saved);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look for a moved purchase");
	if (SPI_processed != 1)
		return NULL;
	*desc = SPI_tuptable->tupdesc;
	return SPI_tuptable->vals[0];
}
