/*
 * Rule conditions on purchase columns: a rule's channel, category or store
 * against the tracked table's column of that role, compared by value in
 * the column's own type.  Comparing printed forms missed equal values
 * written otherwise: a rule 'true' on a boolean column (printed 't'), '07'
 * on an integer, an upper-case uuid, 'web' on a char(5).
 *
 * A rule's text is parsed once per tracked table with the input function
 * of the column's type (a domain's base type: a domain's CHECK could run
 * code of the table owner's) and kept with the table's configuration
 * (purchase_read.c); each purchase then costs one call of the type's
 * equality per condition.  Every type a label column may have
 * (app_tables.c) has built-in input and equality functions.
 *
 * A value that is not one of the type's is refused when the rule is
 * written (the trigger earning_rule_check), when the table is tracked
 * (_tracked_table_save) and, should the column have changed type since,
 * when the configuration is loaded for a purchase.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "app_tables.h"
#include "conditions.h"
#include "labels.h"
#include "loyalty_errors.h"

PG_FUNCTION_INFO_V1(loyalty_earning_rule_check);

const char *const loyalty_label_names[NUM_LABELS] = {"channel", "category", "store"};

/* how a column reads and compares values; eq is set up only with a context */
static void
label_type(Form_pg_attribute att, const char *relname, LabelType *t, MemoryContext cxt)
{
	TypeCacheEntry *tce;
	Oid			eqfn = InvalidOid;

	t->typmod = att->atttypmod;
	t->typid = getBaseTypeAndTypmod(att->atttypid, &t->typmod);
	t->collation = att->attcollation;
	getTypeInputInfo(t->typid, &t->input, &t->ioparam);
	tce = lookup_type_cache(t->typid, TYPECACHE_EQ_OPR);
	if (OidIsValid(tce->eq_opr))
		eqfn = get_opcode(tce->eq_opr);
	/* built in for every type allowed: no code of another role's runs here */
	if (!OidIsValid(eqfn) || eqfn >= FirstNormalObjectId || t->input >= FirstNormalObjectId)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table \"%s\" has type %s, which earning rules cannot compare",
						NameStr(att->attname), relname, format_type_be(att->atttypid))));
	if (cxt)
		fmgr_info_cxt(eqfn, &t->eq, cxt);
}

/*
 * A rule's text read by a type's input function: true and *result, or
 * false and the input's error message (for an error that says which rule
 * and what to write).  Only the input function runs in the PG_TRY.
 */
bool
loyalty_read_rule_value(Oid input, Oid ioparam, int32 typmod, const char *value, Datum *result,
						char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		*result = OidInputFunctionCall(input, (char *) value, ioparam, typmod);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		*message = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* The rule's text as a value of the column's type, or an error that says what to write. */
static Datum
parse_label(const LabelType *t, const char *value, int32 rule_id, Label k,
			const char *column, const char *relname)
{
	Datum		result;
	char	   *message;

	if (!loyalty_read_rule_value(t->input, t->ioparam, t->typmod, value, &result, &message))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_RULE_VALUE),
				 errmsg("earning rule %d has %s \"%s\", which is not a value of type %s",
						rule_id, loyalty_label_names[k], value, format_type_be(t->typid)),
				 errdetail("The rule's %s is compared by value with column \"%s\" of table \"%s\": %s.",
						   loyalty_label_names[k], column, relname, message),
				 t->typid == BOOLOID ?
				 errhint("Write true or false, or set the rule's %s to NULL.", loyalty_label_names[k]) :
				 errhint("Write a value of type %s, or set the rule's %s to NULL.",
						 format_type_be(t->typid), loyalty_label_names[k])));
	return result;
}

static void record_columns(RuleLabels *rl, TupleDesc desc, const int *label_attnums,
						   MemoryContext cxt);

/*
 * The program's rules parsed in the types of the table's label columns
 * (attnums; 0: not tracked), in cxt.
 */
RuleLabels *
loyalty_rule_labels_build(ProgramConf *prog, Relation rel, const int *attnums, MemoryContext cxt)
{
	RuleLabels *rl = MemoryContextAllocZero(cxt, sizeof(RuleLabels));
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *relname = RelationGetRelationName(rel);

	rl->program_id = prog->id;
	rl->relid = RelationGetRelid(rel);
	rl->generation = loyalty_config_generation;
	rl->nrules = prog->nrules;
	rl->values = MemoryContextAllocZero(cxt, sizeof(Datum) * Max(prog->nrules * NUM_LABELS, 1));
	for (int k = 0; k < NUM_LABELS; k++)
	{
		Form_pg_attribute att;
		int16		typlen;
		bool		typbyval;

		if (attnums[k] == 0)
			continue;
		att = TupleDescAttr(desc, attnums[k] - 1);
		label_type(att, relname, &rl->type[k], cxt);
		get_typlenbyval(rl->type[k].typid, &typlen, &typbyval);
		for (int i = 0; i < prog->nrules; i++)
		{
			EarnRule   *r = &prog->rules[i];
			Datum		d;
			MemoryContext old;

			if (r->label[k] == NULL)
				continue;
			d = parse_label(&rl->type[k], r->label[k], r->id, k, NameStr(att->attname), relname);
			old = MemoryContextSwitchTo(cxt);
			rl->values[i * NUM_LABELS + k] = datumCopy(d, typbyval, typlen);
			MemoryContextSwitchTo(old);
		}
	}
	if (prog->has_conditions)
		rl->conds = loyalty_conditions_compile(prog, rel, attnums, cxt);
	record_columns(rl, desc, attnums, cxt);
	rl->columns_checked = loyalty_relcache_generation;
	return rl;
}

/* The columns rl was read for (labels and conditions), as they are now. */
static void
record_columns(RuleLabels *rl, TupleDesc desc, const int *label_attnums, MemoryContext cxt)
{
	AttrNumber *attnums;
	int			n = rl->conds ? loyalty_conditions_attnums(rl->conds, &attnums) : 0;

	rl->columns = MemoryContextAlloc(cxt, sizeof(RuleColumn) * (n + NUM_LABELS));
	for (int i = 0; i < n + NUM_LABELS; i++)
	{
		AttrNumber	attnum = i < n ? attnums[i] : label_attnums[i - n];
		Form_pg_attribute att;
		RuleColumn *c;

		if (attnum <= 0)
			continue;
		att = TupleDescAttr(desc, attnum - 1);
		c = &rl->columns[rl->ncolumns++];
		c->attnum = attnum;
		c->typid = att->atttypid;
		c->typmod = att->atttypmod;
		c->collation = att->attcollation;
	}
}

/*
 * Are the columns rl was read for still what they were?  An ALTER TABLE
 * that changes a column's type (or drops it and adds another of the same
 * name) changes no configuration: the values read in the old type must
 * not be compared with the new one's (a text label compared with an
 * integer column crashed the backend).  Such a change invalidates the
 * table's relcache entry, so the columns are compared only after an
 * invalidation since they last were (the caller checks columns_checked).
 */
bool
loyalty_rule_labels_fit(RuleLabels *rl, TupleDesc desc)
{
	for (int i = 0; i < rl->ncolumns; i++)
	{
		const RuleColumn *c = &rl->columns[i];
		Form_pg_attribute att;

		if (c->attnum > desc->natts)
			return false;
		att = TupleDescAttr(desc, c->attnum - 1);
		if (att->attisdropped || att->atttypid != c->typid || att->atttypmod != c->typmod ||
			att->attcollation != c->collation)
			return false;
	}
	rl->columns_checked = loyalty_relcache_generation;
	return true;
}

/*
 * Parse every active rule of the program (or only rule_id, unless 0) with
 * the columns of every active tracked table of it (or only relid, unless
 * InvalidOid); an error at the first value that is not of its column's
 * type, or condition that names no column the caller may read
 * (conditions.c).  Reads loyalty's tables as their owner, and of the
 * application's tables only the catalog.
 */
static void
check_rule_labels(int32 program_id, Oid relid, int32 rule_id)
{
	Oid			argtypes[3] = {INT4OID, OIDOID, INT4OID};
	Datum		args[3] = {Int32GetDatum(program_id), ObjectIdGetDatum(relid), Int32GetDatum(rule_id)};
	AsOwner		saved;
	int			rc;
	Oid			reader = GetUserId();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read_only: the row just written must be seen */
	loyalty_become_owner(get_relname_relid("earning_rules", get_namespace_oid("loyalty", false)),
						 &saved);
	rc = SPI_execute_with_args("SELECT r.id, t.table_name::oid, r.channel, r.category, r.store,"
							   " t.channel_column::text, t.category_column::text, t.store_column::text,"
							   " r.conditions, p.time_zone"
							   " FROM loyalty.earning_rules r JOIN loyalty.tracked_tables t"
							   " ON t.program_id = r.program_id AND t.active AND t.table_name IS NOT NULL"
							   " JOIN loyalty.programs p ON p.id = r.program_id"
							   " WHERE r.program_id = $1 AND r.active"
							   " AND (num_nonnulls(r.channel, r.category, r.store) > 0 OR r.conditions IS NOT NULL)"
							   " AND ($2 = 0 OR t.table_name::oid = $2) AND ($3 = 0 OR r.id = $3)"
							   " ORDER BY r.id, t.id",
							   3, argtypes, args, NULL, false, 0);
	loyalty_end_owner(&saved);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read loyalty.earning_rules");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		Oid			table = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		conditions = SPI_getbinval(tup, desc, 9, &isnull);

		if (!isnull)
		{
			int			label_attnums[NUM_LABELS] = {0};

			for (int k = 0; k < NUM_LABELS; k++)
			{
				char	   *column = SPI_getvalue(tup, desc, 6 + k);

				if (column != NULL)
					label_attnums[k] = get_attnum(table, column);
			}
			loyalty_check_conditions(id, DatumGetJsonbP(conditions), table, label_attnums,
									 SPI_getvalue(tup, desc, 10), reader);
		}
		for (int k = 0; k < NUM_LABELS; k++)
		{
			char	   *value = SPI_getvalue(tup, desc, 3 + k);
			char	   *column = SPI_getvalue(tup, desc, 6 + k);
			HeapTuple	atttup;
			LabelType	t;

			if (value == NULL || column == NULL)
				continue;
			atttup = SearchSysCacheAttName(table, column);
			/* a missing column is reported where the table is read */
			if (!HeapTupleIsValid(atttup))
				continue;
			label_type((Form_pg_attribute) GETSTRUCT(atttup), get_rel_name(table), &t, NULL);
			(void) parse_label(&t, value, id, k, column, get_rel_name(table));
			ReleaseSysCache(atttup);
		}
	}
	SPI_finish();
}

/* when a table is tracked: the rules of its program against its columns */
void
loyalty_check_rule_labels(int32 program_id, Oid relid)
{
	check_rule_labels(program_id, relid, 0);
}

/*
 * loyalty.earning_rule_check(): AFTER INSERT OR UPDATE row trigger on
 * loyalty.earning_rules; the rule against the tables its program tracks.
 */
Datum
loyalty_earning_rule_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			idcol,
				programcol,
				conditionscol;
	Datum		conditions;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.earning_rule_check() must run as an AFTER INSERT OR UPDATE row trigger")));
	tup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	idcol = SPI_fnumber(desc, "id");
	programcol = SPI_fnumber(desc, "program_id");
	conditionscol = SPI_fnumber(desc, "conditions");
	if (idcol <= 0 || programcol <= 0 || conditionscol <= 0)
		elog(ERROR, "loyalty.earning_rule_check() fired on a table without id, program_id and conditions");
	/* the grammar, for every rule: an inactive one may be made active */
	conditions = heap_getattr(tup, conditionscol, desc, &isnull);
	if (!isnull)
	{
		RuleCond   *conds;

		(void) loyalty_conditions_parse(DatumGetJsonbP(conditions),
										DatumGetInt32(heap_getattr(tup, idcol, desc, &isnull)), &conds);
	}
	check_rule_labels(DatumGetInt32(heap_getattr(tup, programcol, desc, &isnull)), InvalidOid,
					  DatumGetInt32(heap_getattr(tup, idcol, desc, &isnull)));
	return PointerGetDatum(NULL);
}
