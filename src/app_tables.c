/*
 * app_tables.c: the application's tables that loyalty is told about, and
 * reading them safely (the reads themselves are in app_read.c).
 *
 * Configuration rows name relations and columns: loyalty.tracked_tables
 * (the purchases tables) and loyalty.kpi_settings (a customers table).  Who
 * names them (loyalty_admin) and who can change them afterwards (the
 * table's owner) are less trusted than the extension owner, and a relation
 * or a column type can hide code: a view calls functions, a type of the
 * owner's can have a cast to text written in PL/pgSQL.  Read as the
 * extension owner, that code would run with the extension owner's rights.
 * So:
 *
 *  - The rows are written only here, by SECURITY INVOKER functions that
 *    check the calling role (GetUserId() is the caller): an ordinary or
 *    partitioned table, not temporary, not loyalty's own, the caller's right
 *    to it (TRIGGER to track it, SELECT on the key to count it), and
 *    columns of the types loyalty reads.  Only then do they switch to the
 *    owner of the configuration table for the write itself.
 *  - The same checks run again wherever a row is used, because the table
 *    may have changed since; the event triggers in the SQL script catch
 *    most changes at the source.
 *  - The reads run as the table's owner in a security-restricted operation,
 *    as PostgreSQL's own REFRESH MATERIALIZED VIEW and ANALYZE do: what
 *    the owner put there runs with the owner's rights only.  Values become
 *    text through their type's output function (built-in C for every type
 *    allowed), never through a cast.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "app_tables.h"
#include "labels.h"

PG_FUNCTION_INFO_V1(loyalty_tracked_table_save);
PG_FUNCTION_INFO_V1(loyalty_tracked_table_deactivate);
PG_FUNCTION_INFO_V1(loyalty_tracked_table_problem);
PG_FUNCTION_INFO_V1(loyalty_kpi_customers_save);
PG_FUNCTION_INFO_V1(loyalty_kpi_customers_problem);


#define MAX_USES (7 + INDEX_MAX_KEYS)

static Problem *
problem(int sqlstate, char *message, char *detail, char *hint)
{
	Problem    *p = palloc(sizeof(Problem));

	p->sqlstate = sqlstate;
	p->message = message;
	p->detail = detail;
	p->hint = hint;
	return p;
}

void
loyalty_raise_problem(Problem *p)
{
	ereport(ERROR,
			(errcode(p->sqlstate),
			 errmsg_internal("%s", p->message),
			 p->detail ? errdetail_internal("%s", p->detail) : 0,
			 p->hint ? errhint("%s", p->hint) : 0));
}

static bool
type_allowed(Oid typid, ColumnKind kind)
{
	Oid			base = getBaseType(typid);

	switch (kind)
	{
		case COL_AMOUNT:
			/* the purchase trigger reads these exact types */
			return typid == NUMERICOID || typid == INT2OID || typid == INT4OID ||
				typid == INT8OID || typid == FLOAT4OID || typid == FLOAT8OID;
		case COL_TIME:
			return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID || typid == DATEOID;
		case COL_CONDITION:
			if (base == FLOAT4OID || base == FLOAT8OID || base == TIMEOID)
				return true;
			/* FALLTHROUGH */
		case COL_REFERENCE:
			if (base == NUMERICOID || base == DATEOID || base == TIMESTAMPOID ||
				base == TIMESTAMPTZOID)
				return true;
			/* FALLTHROUGH */
		case COL_LABEL:
			if (base == BOOLOID || type_is_enum(base))
				return true;
			/* FALLTHROUGH */
		case COL_KEY:
			return base == TEXTOID || base == VARCHAROID || base == BPCHAROID ||
				base == INT2OID || base == INT4OID || base == INT8OID || base == UUIDOID;
	}
	return false;
}

static const char *
allowed_types_hint(ColumnKind kind)
{
	switch (kind)
	{
		case COL_AMOUNT:
			return "The amount must be numeric, an integer or a float type.";
		case COL_TIME:
			return "Use timestamptz, timestamp (read in the program's time zone) or date.";
		case COL_KEY:
			return "A key column must be text, varchar, char, smallint, integer, bigint or uuid (or a domain over one of them).";
		case COL_LABEL:
			return "The column must be text, varchar, char, an integer, uuid, boolean or an enum (or a domain over one of them).";
		case COL_CONDITION:
			return "A condition compares text, varchar, char, an integer, numeric, real, double precision, uuid, boolean, an enum, date, time, timestamp or timestamptz (or a domain over one of them).";
		case COL_REFERENCE:
			return "A reference column must be text, varchar, char, an integer, numeric, uuid, boolean, an enum, date, timestamp or timestamptz (or a domain over one of them).";
	}
	return NULL;
}

/* An ordinary or partitioned table of the application, readable by others. */
static Problem *
relation_problem(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class rel;
	Problem    *p = NULL;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		return problem(ERRCODE_UNDEFINED_TABLE,
					   psprintf("relation with OID %u does not exist", relid), NULL, NULL);
	rel = (Form_pg_class) GETSTRUCT(tup);
	name = quote_qualified_identifier(get_namespace_name(rel->relnamespace), NameStr(rel->relname));
	if (rel->relkind != RELKIND_RELATION && rel->relkind != RELKIND_PARTITIONED_TABLE)
		p = problem(ERRCODE_WRONG_OBJECT_TYPE, psprintf("\"%s\" is not a table", name),
					pstrdup("loyalty reads only ordinary and partitioned tables: a view or another relation could run code of its owner's with loyalty's rights."),
					NULL);
	else if (rel->relnamespace == get_namespace_oid("loyalty", false))
		p = problem(ERRCODE_WRONG_OBJECT_TYPE,
					psprintf("loyalty's own tables cannot be tracked or counted (\"%s\")", name),
					NULL, NULL);
	else if (rel->relpersistence == RELPERSISTENCE_TEMP)
		p = problem(ERRCODE_WRONG_OBJECT_TYPE, psprintf("\"%s\" is a temporary table", name),
					pstrdup("Other sessions, such as the one refreshing the reports, cannot read it."),
					NULL);
	ReleaseSysCache(tup);
	return p;
}

static char *
column_list(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&s, "%s%s", s.len ? ", " : "", quote_identifier(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return s.data;
}

/* The column exists and has a type loyalty reads for this use. */
Problem *
loyalty_column_problem(Oid relid, const ColumnUse *use, AttrNumber *attnum, Oid *typid)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, use->name);
	Form_pg_attribute att;
	char	   *relname = get_rel_name(relid);

	if (!HeapTupleIsValid(tup) || ((Form_pg_attribute) GETSTRUCT(tup))->attnum <= 0)
	{
		if (HeapTupleIsValid(tup))
			ReleaseSysCache(tup);
		return problem(ERRCODE_UNDEFINED_COLUMN,
					   psprintf("column \"%s\" of relation \"%s\" does not exist", use->name, relname),
					   psprintf("It was given as the %s column.", use->what),
					   psprintf("Columns of %s: %s.", relname, column_list(relid)));
	}
	att = (Form_pg_attribute) GETSTRUCT(tup);
	if (attnum)
		*attnum = att->attnum;
	if (typid)
		*typid = att->atttypid;
	if (!type_allowed(att->atttypid, use->kind))
	{
		Problem    *p = problem(ERRCODE_DATATYPE_MISMATCH,
								psprintf("%s column \"%s\" has type %s", use->what, use->name,
										 format_type_be(att->atttypid)),
								NULL, pstrdup(allowed_types_hint(use->kind)));

		ReleaseSysCache(tup);
		return p;
	}
	ReleaseSysCache(tup);
	return NULL;
}

static Problem *
table_problem(Oid relid, const ColumnUse *uses, int nuses)
{
	Problem    *p = relation_problem(relid);

	for (int i = 0; p == NULL && i < nuses; i++)
		if (uses[i].name)
			p = loyalty_column_problem(relid, &uses[i], NULL, NULL);
	return p;
}

/* The problem as one line of text, in the caller's memory (SPI connected). */
static char *
problem_result(Problem *p)
{
	char	   *text;
	char	   *result;

	if (p == NULL)
		return NULL;
	text = p->detail ? psprintf("%s (%s)", p->message, p->detail) : p->message;
	result = SPI_palloc(strlen(text) + 1);
	strcpy(result, text);
	return result;
}

static Datum
text_or_null(FunctionCallInfo fcinfo, char *text)
{
	if (text == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(text));
}

static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Become the owner of a relation for a while, in a security-restricted
 * operation, with a search_path that names only the system catalog.  The
 * GUC nest level undoes any setting made meanwhile.
 */
void
loyalty_become_owner(Oid relid, AsOwner *saved)
{
	GetUserIdAndSecContext(&saved->save_userid, &saved->save_sec_context);
	SetUserIdAndSecContext(relation_owner(relid),
						   saved->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
loyalty_end_owner(AsOwner *saved)
{
	AtEOXact_GUC(false, saved->save_nestlevel);
	SetUserIdAndSecContext(saved->save_userid, saved->save_sec_context);
}

static Oid
loyalty_table(const char *name)
{
	return get_relname_relid(name, get_namespace_oid("loyalty", false));
}

static char *
arg_name(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(n)));
}

void
loyalty_require_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* the elements of a name[] or text[] as C strings, NULLs left out */
static int
string_array(ArrayType *a, char ***out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				k = 0;
	Oid			elemtype = ARR_ELEMTYPE(a);
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	*out = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			(*out)[k++] = elemtype == NAMEOID ? pstrdup(NameStr(*DatumGetName(elems[i])))
				: TextDatumGetCString(elems[i]);
	return k;
}

/*
 * The columns of a tracked table, in the order of the row's columns:
 * member, amount, time, status, channel, category, store, references.
 */
static int
tracked_uses(ColumnUse *uses, char **cols, char **refs, int nrefs)
{
	static const char *const whats[7] = {"member", "amount", "purchase time", "status",
	"channel", "category", "store"};
	static const ColumnKind kinds[7] = {COL_KEY, COL_AMOUNT, COL_TIME, COL_LABEL,
	COL_LABEL, COL_LABEL, COL_LABEL};
	int			n = 0;

	for (int i = 0; i < 7; i++)
	{
		uses[n].name = cols[i];
		uses[n].what = whats[i];
		uses[n++].kind = kinds[i];
	}
	for (int i = 0; i < nrefs; i++)
	{
		uses[n].name = refs[i];
		uses[n].what = "reference";
		uses[n++].kind = COL_REFERENCE;
	}
	return n;
}

/* The primary key's columns, as name[]; 42P10 when there is none. */
static ArrayType *
primary_key_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	HeapTuple	tup;
	Form_pg_index idx;
	Datum	   *names;
	ArrayType  *result;

	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("table \"%s\" has no primary key to identify purchases",
						RelationGetRelationName(rel)),
				 errhint("Pass reference_columns => '{order_id}'.")));
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", pk);
	idx = (Form_pg_index) GETSTRUCT(tup);
	names = palloc(sizeof(Datum) * Max(idx->indnkeyatts, 1));
	for (int i = 0; i < idx->indnkeyatts; i++)
	{
		Name		n = palloc0(NAMEDATALEN);

		namestrcpy(n, get_attname(relid, idx->indkey.values[i], false));
		names[i] = NameGetDatum(n);
	}
	result = construct_array(names, idx->indnkeyatts, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR);
	ReleaseSysCache(tup);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * loyalty._tracked_table_save(tbl, program_id, member_column, amount_column,
 * time_column, reference_columns, status_column, reversed_statuses,
 * channel_column, category_column, store_column): check, then write the
 * tracked_tables row (insert or update by table) and return its id.
 */
Datum
loyalty_tracked_table_save(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *cols[7];
	char	  **refs;
	int			nrefs;
	ColumnUse	uses[MAX_USES];
	int			nuses;
	Problem    *p;
	AsOwner		saved;
	Oid			argtypes[11] = {REGCLASSOID, INT4OID, NAMEOID, NAMEOID, NAMEOID, NAMEARRAYOID,
	NAMEOID, TEXTARRAYOID, NAMEOID, NAMEOID, NAMEOID};
	Datum		values[11];
	char		nulls[11];
	bool		isnull;
	int32		id;
	ArrayType  *refs_array;

	loyalty_require_arg(fcinfo, 0, "table");
	loyalty_require_arg(fcinfo, 1, "program");
	loyalty_require_arg(fcinfo, 2, "member column");
	loyalty_require_arg(fcinfo, 3, "amount column");
	relid = PG_GETARG_OID(0);
	cols[0] = arg_name(fcinfo, 2);
	cols[1] = arg_name(fcinfo, 3);
	cols[2] = arg_name(fcinfo, 4);
	cols[3] = arg_name(fcinfo, 6);
	cols[4] = arg_name(fcinfo, 8);
	cols[5] = arg_name(fcinfo, 9);
	cols[6] = arg_name(fcinfo, 10);

	if ((p = relation_problem(relid)) != NULL)
		loyalty_raise_problem(p);
	refs_array = PG_ARGISNULL(5) ? primary_key_columns(relid) : PG_GETARG_ARRAYTYPE_P(5);
	if (array_contains_nulls(refs_array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reference columns must not contain NULL")));
	nrefs = string_array(refs_array, &refs);
	if (nrefs < 1 || nrefs > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a tracked table needs 1 to %d reference columns, not %d", INDEX_MAX_KEYS, nrefs)));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to track table \"%s\"", get_rel_name(relid)),
				 errdetail("Tracking attaches triggers to the table: it takes the table's ownership or the TRIGGER privilege on it."),
				 errhint("The table's owner can run GRANT TRIGGER ON %s TO %s.",
						 get_rel_name(relid), GetUserNameFromId(GetUserId(), false))));
	nuses = tracked_uses(uses, cols, refs, nrefs);
	if ((p = table_problem(relid, uses, nuses)) != NULL)
		loyalty_raise_problem(p);

	for (int i = 0; i < 11; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[5] = PointerGetDatum(refs_array);
	nulls[5] = ' ';
	if (PG_ARGISNULL(7))
	{
		values[7] = PointerGetDatum(construct_empty_array(TEXTOID));
		nulls[7] = ' ';
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_become_owner(loyalty_table("tracked_tables"), &saved);

	/*
	 * The program's tracking of the table, replaced; else the untracked
	 * tracking of the table created last, taken over (a table moved to
	 * another program: its purchases awarded before are still corrected, in
	 * the program that awarded them); else a new tracking.
	 */
	if (SPI_execute_with_args("UPDATE loyalty.tracked_tables AS tt"
							  " SET program_id = $2, member_column = $3, amount_column = $4,"
							  " time_column = $5, reference_columns = $6, status_column = $7,"
							  " reversed_statuses = $8, channel_column = $9, category_column = $10,"
							  " store_column = $11, active = true"
							  " WHERE tt.id = (SELECT max(x.id) FROM loyalty.tracked_tables x"
							  "                 WHERE x.table_name = $1 AND NOT x.active)"
							  " AND NOT EXISTS (SELECT 1 FROM loyalty.tracked_tables y"
							  "                  WHERE y.table_name = $1 AND y.program_id = $2)"
							  " RETURNING tt.id",
							  11, argtypes, values, nulls, false, 1) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not write loyalty.tracked_tables");
	if (SPI_processed == 0 &&
		(SPI_execute_with_args("INSERT INTO loyalty.tracked_tables AS tt"
							   " (table_name, program_id, member_column, amount_column, time_column,"
							   " reference_columns, status_column, reversed_statuses, channel_column,"
							   " category_column, store_column, active)"
							   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, true)"
							   " ON CONFLICT (table_name, program_id) DO UPDATE"
							   " SET member_column = excluded.member_column,"
							   " amount_column = excluded.amount_column, time_column = excluded.time_column,"
							   " reference_columns = excluded.reference_columns,"
							   " status_column = excluded.status_column,"
							   " reversed_statuses = excluded.reversed_statuses,"
							   " channel_column = excluded.channel_column,"
							   " category_column = excluded.category_column,"
							   " store_column = excluded.store_column, active = true"
							   " RETURNING tt.id",
							   11, argtypes, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
		 SPI_processed != 1))
		elog(ERROR, "could not write loyalty.tracked_tables");
	loyalty_end_owner(&saved);
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* the program's rules must name values of the columns they compare */
	loyalty_check_rule_labels(PG_GETARG_INT32(1), relid);
	SPI_finish();
	PG_RETURN_INT32(id);
}

/*
 * loyalty._tracked_table_deactivate(tbl, program_id): mark the table's
 * tracking for the program inactive (program_id NULL: every tracking of
 * it); true if one was active.  Needs the same right as tracking it.
 */
Datum
loyalty_tracked_table_deactivate(PG_FUNCTION_ARGS)
{
	Oid			relid;
	AsOwner		saved;
	Oid			argtypes[2] = {REGCLASSOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		found;

	loyalty_require_arg(fcinfo, 0, "table");
	relid = PG_GETARG_OID(0);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to untrack table \"%s\"", get_rel_name(relid)),
				 errdetail("It takes the table's ownership or the TRIGGER privilege on it.")));
	values[0] = ObjectIdGetDatum(relid);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_become_owner(loyalty_table("tracked_tables"), &saved);
	if (SPI_execute_with_args("UPDATE loyalty.tracked_tables SET active = false"
							  " WHERE table_name = $1 AND ($2 IS NULL OR program_id = $2) AND active",
							  2, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not write loyalty.tracked_tables");
	loyalty_end_owner(&saved);
	found = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(found);
}

void
loyalty_read_tracked(int32 track_id, TrackedRow *t)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(track_id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	memset(t, 0, sizeof(TrackedRow));
	if (SPI_execute_with_args("SELECT table_name::oid, active, member_column::text, amount_column::text,"
							  " time_column::text, status_column::text, channel_column::text,"
							  " category_column::text, store_column::text, reference_columns,"
							  " reversed_statuses, program_id"
							  " FROM loyalty.tracked_tables WHERE id = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.tracked_tables");
	if (SPI_processed != 1)
		return;
	t->found = true;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	t->dropped = isnull;
	t->relid = isnull ? InvalidOid : DatumGetObjectId(d);
	t->active = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	for (int i = 0; i < 7; i++)
		t->cols[i] = SPI_getvalue(tup, desc, i + 3);
	t->nrefs = string_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 10, &isnull)), &t->refs);
	t->nreversed = string_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 11, &isnull)), &t->reversed);
	t->program_id = DatumGetInt32(SPI_getbinval(tup, desc, 12, &isnull));
}

Problem *
loyalty_tracked_problem(TrackedRow *t)
{
	ColumnUse	uses[MAX_USES];
	int			nuses;

	if (!t->found)
		return problem(ERRCODE_UNDEFINED_OBJECT, pstrdup("no such tracked table"), NULL, NULL);
	if (t->dropped)
		return problem(ERRCODE_UNDEFINED_TABLE, pstrdup("the table was dropped"), NULL, NULL);
	nuses = tracked_uses(uses, t->cols, t->refs, t->nrefs);
	return table_problem(t->relid, uses, nuses);
}

/*
 * loyalty._tracked_table_problem(track_id): why the tracked table cannot be
 * read as configured now, or NULL when it can.
 */
Datum
loyalty_tracked_table_problem(PG_FUNCTION_ARGS)
{
	TrackedRow	t;
	char	   *text;

	loyalty_require_arg(fcinfo, 0, "tracked table id");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_read_tracked(PG_GETARG_INT32(0), &t);
	text = problem_result(loyalty_tracked_problem(&t));
	SPI_finish();
	return text_or_null(fcinfo, text);
}

/*
 * loyalty._kpi_customers_save(program_id, tbl, key_column): check, then set
 * (or with tbl NULL clear) the program's customers table in kpi_settings.
 */
Datum
loyalty_kpi_customers_save(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {INT4OID, REGCLASSOID, NAMEOID};
	Datum		values[3];
	char		nulls[3] = {' ', 'n', 'n'};
	AsOwner		saved;

	loyalty_require_arg(fcinfo, 0, "program");
	values[0] = PG_GETARG_DATUM(0);
	if (!PG_ARGISNULL(1))
	{
		Oid			relid = PG_GETARG_OID(1);
		ColumnUse	use = {NULL, "customer key", COL_KEY};
		AttrNumber	attnum;
		Problem    *p;

		loyalty_require_arg(fcinfo, 2, "key column");
		use.name = NameStr(*PG_GETARG_NAME(2));
		if ((p = relation_problem(relid)) != NULL || (p = loyalty_column_problem(relid, &use, &attnum, NULL)) != NULL)
			loyalty_raise_problem(p);
		/* the table's SELECT, or the column's (which the column check alone sees) */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
			pg_attribute_aclcheck(relid, attnum, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to read column \"%s\" of table \"%s\"",
							use.name, get_rel_name(relid)),
					 errdetail("The KPIs count the table's rows for every reader of the reports: naming it takes the right to read its key."),
					 errhint("The table's owner can run GRANT SELECT (%s) ON %s TO %s.",
							 quote_identifier(use.name), get_rel_name(relid),
							 GetUserNameFromId(GetUserId(), false))));
		values[1] = PG_GETARG_DATUM(1);
		values[2] = PG_GETARG_DATUM(2);
		nulls[1] = nulls[2] = ' ';
	}
	else if (!PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a key column needs a customers table")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_become_owner(loyalty_table("kpi_settings"), &saved);
	if (SPI_execute_with_args("INSERT INTO loyalty.kpi_settings AS k (program_id, customers_table, customer_key_column)"
							  " VALUES ($1, $2, $3)"
							  " ON CONFLICT (program_id) DO UPDATE"
							  " SET customers_table = excluded.customers_table,"
							  " customer_key_column = excluded.customer_key_column",
							  3, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write loyalty.kpi_settings");
	loyalty_end_owner(&saved);
	SPI_finish();
	PG_RETURN_VOID();
}

/* A program's customers table as stored (SPI connected): false if none. */
bool
loyalty_read_customers(int32 program_id, Oid *relid, char **column)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(program_id)};
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args("SELECT customers_table::oid, customer_key_column::text"
							  " FROM loyalty.kpi_settings WHERE program_id = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.kpi_settings");
	if (SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	*relid = DatumGetObjectId(d);
	*column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return true;
}

Problem *
loyalty_customers_problem(Oid relid, char *column, AttrNumber *attnum)
{
	ColumnUse	use = {column, "customer key", COL_KEY};
	Problem    *p = relation_problem(relid);

	return p ? p : loyalty_column_problem(relid, &use, attnum, NULL);
}

/*
 * loyalty._kpi_customers_problem(program_id): why the program's customers
 * table cannot be read now; NULL when it can or none is set.
 */
Datum
loyalty_kpi_customers_problem(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *column;
	char	   *text = NULL;

	loyalty_require_arg(fcinfo, 0, "program");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (loyalty_read_customers(PG_GETARG_INT32(0), &relid, &column))
		text = problem_result(loyalty_customers_problem(relid, column, NULL));
	SPI_finish();
	return text_or_null(fcinfo, text);
}
