/*
 * Earning rule conditions beyond equality: loyalty.earning_rules.conditions,
 * a jsonb object whose keys name purchase columns and whose values say what
 * the column must be (docs/concepts.md, Conditions):
 *
 *   {"currency": {"not": "SGD"}, "amount": {">=": 100}}
 *
 *   value                    the column equals it
 *   [v1, v2, ...]            equals one of them
 *   null                     is null
 *   {"not": v}               differs from v (a null column matches nothing but null)
 *   {"not": null}            is not null
 *   {"in": [...]}            equals one of them
 *   {"not in": [...]}        equals none of them
 *   {"<": v} {"<=": v} {">": v} {">=": v}
 *   {"between": [lo, hi]}    lo <= column <= hi
 *
 * Several operators in one object, and several keys, must all hold.  A key
 * is "amount" (the purchase amount, numeric, whatever the column's type),
 * "channel", "category" or "store" when the table maps that role (the
 * column track_purchases was given for it), or else the name of a column
 * of every table the rule's program tracks.
 *
 * Values are JSON scalars read with the input function of the column's
 * type (a domain's base type), as rule labels are (labels.c): "07" and 7
 * are the integer 7, "true" the boolean.  Dates and times are read with
 * DateStyle ISO, YMD and, for timestamptz, in the program's time zone, so
 * that what a rule means does not depend on the session that first reads
 * it.  Comparisons use the type's own btree comparison and equality (built
 * in for every type allowed: no code of another role's runs).
 *
 * The conditions of a program are compiled once per table and
 * configuration (labels.c caches them with the rule labels) and evaluated
 * in C once per purchase, into one bit per rule; for a program without
 * conditions nothing is evaluated.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "app_tables.h"
#include "conditions.h"
#include "labels.h"
#include "loyalty_errors.h"

PG_FUNCTION_INFO_V1(loyalty_rule_columns_problem);

#define GRAMMAR_HINT "A condition is a value, a list of values, null, or an object of operators: " \
	"not, in, not in, <, <=, >, >=, between."

/* how a condition's column reads and compares values */
typedef struct CondType
{
	Oid			typid;			/* a domain's base type */
	int32		typmod;
	Oid			collation;
	Oid			input;
	Oid			ioparam;
	FmgrInfo	eq;
	FmgrInfo	cmp;
} CondType;

/* lists longer than this are sorted and searched */
#define LINEAR_IN 8

typedef struct CompiledCond
{
	AttrNumber	attnum;			/* 0: the purchase amount */
	CondOp		op;
	int			nvalues;
	Datum	   *values;			/* sorted when more than LINEAR_IN */
	CondType   *type;
} CompiledCond;

struct RuleConditions
{
	int			nrules;
	int		   *ncond;			/* per rule index; 0: no conditions */
	CompiledCond **cond;
};

/* ---------------------------------------------------------------- grammar */

static void
grammar_error(int32 rule_id, const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_RULE_CONDITION),
			 key ? errmsg("earning rule %d has an invalid condition on \"%s\"", rule_id, key) :
			 errmsg("earning rule %d has invalid conditions", rule_id),
			 errdetail_internal("%s", detail),
			 errhint(GRAMMAR_HINT)));
}

/* a JSON scalar as the text the column's input function reads; NULL for null */
static char *
scalar_text(int32 rule_id, const char *key, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvNull:
			return NULL;
		default:
			grammar_error(rule_id, key, "A value must be a string, a number or a boolean, not a list or an object.");
	}
	return NULL;
}

static bool
is_container(JsonbValue *v, bool array)
{
	return v->type == jbvBinary &&
		(array ? JsonContainerIsArray(v->val.binary.data) : JsonContainerIsObject(v->val.binary.data));
}

/* the values of a JSON array of scalars, none null */
static int
value_list(int32 rule_id, const char *key, const char *op, JsonbValue *v, char ***out)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			n = 0;

	if (!is_container(v, true))
		grammar_error(rule_id, key, psprintf("\"%s\" takes a list of values, as [\"a\", \"b\"].", op));
	*out = palloc(sizeof(char *) * Max(JsonContainerSize(v->val.binary.data), 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		char	   *s;

		if (tok != WJB_ELEM)
			continue;
		if (elem.type == jbvBinary)
			grammar_error(rule_id, key, "A list holds values, not lists or objects.");
		if ((s = scalar_text(rule_id, key, &elem)) == NULL)
			grammar_error(rule_id, key, "A list of values must not hold null: write null, or {\"not\": null}, for the column itself.");
		(*out)[n++] = s;
	}
	if (n == 0)
		grammar_error(rule_id, key, psprintf("\"%s\" takes at least one value.", op));
	return n;
}

typedef struct CondList
{
	int			n;
	int			max;
	RuleCond   *conds;
} CondList;

static void
add_cond(CondList *l, const char *key, CondOp op, int nvalues, char **values)
{
	RuleCond   *c;

	if (l->n == l->max)
	{
		l->max = Max(8, l->max * 2);
		l->conds = l->conds ? repalloc(l->conds, sizeof(RuleCond) * l->max)
			: palloc(sizeof(RuleCond) * l->max);
	}
	c = &l->conds[l->n++];
	c->key = pstrdup(key);
	c->op = op;
	c->nvalues = nvalues;
	c->values = values;
}

static char **
one_value(char *s)
{
	char	  **v = palloc(sizeof(char *));

	v[0] = s;
	return v;
}

/* {"op": operand, ...}: every operator must hold */
static void
parse_operators(int32 rule_id, const char *key, JsonbValue *obj, CondList *l)
{
	JsonbIterator *it = JsonbIteratorInit(obj->val.binary.data);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			nops = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *op;
		char	  **values;
		int			n;

		if (tok != WJB_KEY)
			continue;
		op = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		nops++;
		if (strcmp(op, "not") == 0)
		{
			char	   *s;

			if (is_container(&v, true))
				grammar_error(rule_id, key, "\"not\" takes one value; for a list write \"not in\".");
			s = scalar_text(rule_id, key, &v);
			if (s == NULL)
				add_cond(l, key, COND_NOT_NULL, 0, NULL);
			else
				add_cond(l, key, COND_NOT_IN, 1, one_value(s));
		}
		else if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0)
		{
			n = value_list(rule_id, key, op, &v, &values);
			add_cond(l, key, op[0] == 'i' ? COND_IN : COND_NOT_IN, n, values);
		}
		else if (strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 ||
				 strcmp(op, ">") == 0 || strcmp(op, ">=") == 0)
		{
			char	   *s;

			if (v.type == jbvBinary || (s = scalar_text(rule_id, key, &v)) == NULL)
				grammar_error(rule_id, key, psprintf("\"%s\" takes one value, not null, a list or an object.", op));
			add_cond(l, key,
					 op[0] == '<' ? (op[1] ? COND_LE : COND_LT) : (op[1] ? COND_GE : COND_GT),
					 1, one_value(s));
		}
		else if (strcmp(op, "between") == 0)
		{
			n = value_list(rule_id, key, op, &v, &values);
			if (n != 2)
				grammar_error(rule_id, key, "\"between\" takes two values, [low, high], both included.");
			add_cond(l, key, COND_GE, 1, one_value(values[0]));
			add_cond(l, key, COND_LE, 1, one_value(values[1]));
		}
		else
			grammar_error(rule_id, key, psprintf("\"%s\" is not an operator.", op));
	}
	if (nops == 0)
		grammar_error(rule_id, key, "An object of operators must hold at least one.");
}

/*
 * The conditions of a rule as a list, each with its values as text; an
 * error (LY022) that says what is wrong when they are not in the grammar.
 */
int
loyalty_conditions_parse(Jsonb *jb, int32 rule_id, RuleCond **conds)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	CondList	l = {0};

	if (!JB_ROOT_IS_OBJECT(jb))
		grammar_error(rule_id, NULL, "Conditions are a JSON object whose keys name columns, as {\"currency\": {\"not\": \"SGD\"}}.");
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (*key == '\0')
			grammar_error(rule_id, key, "A condition names a column: the key must not be empty.");
		if (is_container(&v, false))
			parse_operators(rule_id, key, &v, &l);
		else if (is_container(&v, true))
		{
			char	  **values;
			int			n = value_list(rule_id, key, "a list", &v, &values);

			add_cond(&l, key, COND_IN, n, values);
		}
		else
		{
			char	   *s = scalar_text(rule_id, key, &v);

			if (s == NULL)
				add_cond(&l, key, COND_NULL, 0, NULL);
			else
				add_cond(&l, key, COND_IN, 1, one_value(s));
		}
	}
	if (l.n == 0)
		grammar_error(rule_id, NULL, "Conditions name at least one column; a rule without conditions has conditions NULL.");
	*conds = l.conds;
	return l.n;
}

/* ------------------------------------------------- columns and their types */

/*
 * The column a condition's key names in a table (0: the purchase amount),
 * or why it names none: the key is a role the table maps, or a column of
 * a type conditions compare.
 */
static Problem *
key_column(Oid relid, const char *key, const int *label_attnums, AttrNumber *attnum, bool *role)
{
	ColumnUse	use = {key, "condition", COL_CONDITION};

	*role = true;
	if (strcmp(key, "amount") == 0)
	{
		*attnum = 0;
		return NULL;
	}
	for (int k = 0; k < NUM_LABELS; k++)
		if (label_attnums[k] != 0 && strcmp(key, loyalty_label_names[k]) == 0)
		{
			*attnum = label_attnums[k];
			return NULL;
		}
	*role = false;
	return loyalty_column_problem(relid, &use, attnum, NULL);
}

static void
cond_type(Oid relid, AttrNumber attnum, CondType *t, MemoryContext cxt)
{
	TypeCacheEntry *tce;

	if (attnum == 0)
	{
		t->typid = NUMERICOID;
		t->typmod = -1;
		t->collation = InvalidOid;
	}
	else
	{
		Oid			typid;

		get_atttypetypmodcoll(relid, attnum, &typid, &t->typmod, &t->collation);
		t->typid = getBaseTypeAndTypmod(typid, &t->typmod);
	}
	getTypeInputInfo(t->typid, &t->input, &t->ioparam);
	tce = lookup_type_cache(t->typid, TYPECACHE_EQ_OPR | TYPECACHE_CMP_PROC);
	/* built in for every type a condition column may have (app_tables.c) */
	if (!OidIsValid(tce->eq_opr) || !OidIsValid(tce->cmp_proc) ||
		get_opcode(tce->eq_opr) >= FirstNormalObjectId || tce->cmp_proc >= FirstNormalObjectId ||
		t->input >= FirstNormalObjectId)
		elog(ERROR, "type %s has no built-in comparison", format_type_be(t->typid));
	fmgr_info_cxt(get_opcode(tce->eq_opr), &t->eq, cxt);
	fmgr_info_cxt(tce->cmp_proc, &t->cmp, cxt);
}

static bool
is_datetime(Oid typid)
{
	return typid == DATEOID || typid == TIMEOID || typid == TIMESTAMPOID || typid == TIMESTAMPTZOID;
}

/* A condition's value in the column's type, or an error (LY008) that says what to write. */
static Datum
read_value(const CondType *t, const char *value, const char *time_zone, int32 rule_id,
		   const char *key, Oid relid)
{
	int			nest = -1;
	Datum		result;
	char	   *message;
	bool		ok;

	if (is_datetime(t->typid))
	{
		/* what the rule means must not depend on the session reading it */
		nest = NewGUCNestLevel();
		(void) set_config_option("DateStyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("TimeZone", time_zone, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	ok = loyalty_read_rule_value(t->input, t->ioparam, t->typmod, value, &result, &message);
	if (nest >= 0)
		AtEOXact_GUC(false, nest);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_RULE_VALUE),
				 errmsg("earning rule %d compares \"%s\" with \"%s\", which is not a value of type %s",
						rule_id, key, value, format_type_be(t->typid)),
				 errdetail("The condition is read in the type of %s of table \"%s\": %s.",
						   strcmp(key, "amount") == 0 ? "the purchase amount, numeric," :
						   psprintf("column \"%s\"", key), get_rel_name(relid), message),
				 t->typid == BOOLOID ? errhint("Write true or false.") :
				 is_datetime(t->typid) ?
				 errhint("Write a value of type %s, dates as YYYY-MM-DD; a timestamptz without an offset is read in the program's time zone.",
						 format_type_be(t->typid)) :
				 errhint("Write a value of type %s.", format_type_be(t->typid))));
	return result;
}

static int
datum_cmp(const void *a, const void *b, void *arg)
{
	const CondType *t = arg;

	return DatumGetInt32(FunctionCall2Coll((FmgrInfo *) &t->cmp, t->collation,
										   *(const Datum *) a, *(const Datum *) b));
}

/*
 * One rule's conditions for a table (relid, whose label columns are
 * label_attnums), in cxt; an error at the first that does not fit it.
 * With a valid reader, that role must be allowed to read each column
 * named by name: the points a purchase earns tell what its columns hold.
 */
static CompiledCond *
compile_rule(int32 rule_id, const RuleCond *conds, int nconds, Oid relid, const int *label_attnums,
			 const char *time_zone, Oid reader, MemoryContext cxt)
{
	CompiledCond *cc = MemoryContextAllocZero(cxt, sizeof(CompiledCond) * nconds);

	for (int i = 0; i < nconds; i++)
	{
		const RuleCond *c = &conds[i];
		CompiledCond *out = &cc[i];
		bool		role;
		Problem    *p = key_column(relid, c->key, label_attnums, &out->attnum, &role);
		int16		typlen;
		bool		typbyval;

		if (p != NULL)
			ereport(ERROR,
					(errcode(p->sqlstate),
					 p->sqlstate == ERRCODE_UNDEFINED_COLUMN ?
					 errmsg("earning rule %d has a condition on column \"%s\", which table \"%s\" does not have",
							rule_id, c->key, get_rel_name(relid)) :
					 errmsg("earning rule %d has a condition on column \"%s\" of table \"%s\", whose type %s conditions cannot compare",
							rule_id, c->key, get_rel_name(relid),
							format_type_be(get_atttype(relid, get_attnum(relid, c->key)))),
					 errdetail("A condition names amount, channel, category, store, or a column of every table the rule's program tracks."),
					 p->hint ? errhint("%s", p->hint) : 0));
		if (!role && OidIsValid(reader) &&
			pg_class_aclcheck(relid, reader, ACL_SELECT) != ACLCHECK_OK &&
			pg_attribute_aclcheck(relid, out->attnum, reader, ACL_SELECT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to read column \"%s\" of table \"%s\"",
							c->key, get_rel_name(relid)),
					 errdetail("Earning rule %d has a condition on it: the points a purchase earns would tell what the column holds.",
							   rule_id),
					 errhint("The table's owner can run GRANT SELECT (%s) ON %s TO %s.",
							 quote_identifier(c->key), get_rel_name(relid),
							 GetUserNameFromId(reader, false))));
		out->op = c->op;
		out->type = MemoryContextAllocZero(cxt, sizeof(CondType));
		cond_type(relid, out->attnum, out->type, cxt);
		get_typlenbyval(out->type->typid, &typlen, &typbyval);
		out->nvalues = c->nvalues;
		out->values = MemoryContextAlloc(cxt, sizeof(Datum) * Max(c->nvalues, 1));
		for (int j = 0; j < c->nvalues; j++)
		{
			Datum		d = read_value(out->type, c->values[j], time_zone, rule_id, c->key, relid);
			MemoryContext old = MemoryContextSwitchTo(cxt);

			out->values[j] = datumCopy(d, typbyval, typlen);
			MemoryContextSwitchTo(old);
		}
		if (out->nvalues > LINEAR_IN)
			qsort_arg(out->values, out->nvalues, sizeof(Datum), datum_cmp, out->type);
	}
	return cc;
}

/*
 * The program's conditions for the table the rows come from (rel: the
 * tracked table or the partition a trigger fires on, whose attribute
 * numbers the rows have), in cxt.
 */
RuleConditions *
loyalty_conditions_compile(ProgramConf *prog, Relation rel, const int *label_attnums,
						   MemoryContext cxt)
{
	RuleConditions *rc = MemoryContextAllocZero(cxt, sizeof(RuleConditions));

	rc->nrules = prog->nrules;
	rc->ncond = MemoryContextAllocZero(cxt, sizeof(int) * Max(prog->nrules, 1));
	rc->cond = MemoryContextAllocZero(cxt, sizeof(CompiledCond *) * Max(prog->nrules, 1));
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];

		if (r->nconds == 0)
			continue;
		rc->cond[i] = compile_rule(r->id, r->conds, r->nconds, RelationGetRelid(rel), label_attnums,
								   prog->time_zone, InvalidOid, cxt);
		rc->ncond[i] = r->nconds;
	}
	return rc;
}

/* the columns the conditions read (0, the amount, left out), as a palloc'd list */
int
loyalty_conditions_attnums(const RuleConditions *rc, AttrNumber **attnums)
{
	int			n = 0,
				max = 0;

	for (int i = 0; i < rc->nrules; i++)
		max += rc->ncond[i];
	*attnums = palloc(sizeof(AttrNumber) * Max(max, 1));
	for (int i = 0; i < rc->nrules; i++)
		for (int j = 0; j < rc->ncond[i]; j++)
			if (rc->cond[i][j].attnum > 0)
				(*attnums)[n++] = rc->cond[i][j].attnum;
	return n;
}

/* ------------------------------------------------------------- evaluation */

static inline int32
compare(const CompiledCond *c, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(&c->type->cmp, c->type->collation, a, b));
}

static bool
value_in(const CompiledCond *c, Datum d)
{
	int			lo = 0,
				hi = c->nvalues;

	if (c->nvalues <= LINEAR_IN)
	{
		for (int i = 0; i < c->nvalues; i++)
			if (DatumGetBool(FunctionCall2Coll(&c->type->eq, c->type->collation, d, c->values[i])))
				return true;
		return false;
	}
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int32		r = compare(c, d, c->values[mid]);

		if (r == 0)
			return true;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* SQL's answer, with a null column matching nothing but null */
static bool
cond_holds(const CompiledCond *c, Datum d, bool isnull)
{
	if (c->op == COND_NULL)
		return isnull;
	if (c->op == COND_NOT_NULL)
		return !isnull;
	if (isnull)
		return false;
	switch (c->op)
	{
		case COND_IN:
			return value_in(c, d);
		case COND_NOT_IN:
			return !value_in(c, d);
		case COND_LT:
			return compare(c, d, c->values[0]) < 0;
		case COND_LE:
			return compare(c, d, c->values[0]) <= 0;
		case COND_GT:
			return compare(c, d, c->values[0]) > 0;
		case COND_GE:
			return compare(c, d, c->values[0]) >= 0;
		default:
			break;
	}
	return false;
}

/*
 * Which rules' conditions hold for a row, by rule index: bits of
 * holds->bits for programs of up to 64 rules (no allocation), of
 * holds->words for larger ones.
 */
void
loyalty_conditions_eval(const RuleConditions *rc, TupleTableSlot *slot, Numeric amount,
						RuleBits *holds)
{
	uint64	   *words;

	if (rc->nrules <= 64)
	{
		holds->bits = 0;
		words = &holds->bits;
	}
	else
		words = holds->words = palloc0(sizeof(uint64) * ((rc->nrules + 63) / 64));
	for (int i = 0; i < rc->nrules; i++)
	{
		bool		all = true;

		if (rc->ncond[i] == 0)
			continue;
		for (int j = 0; all && j < rc->ncond[i]; j++)
		{
			const CompiledCond *c = &rc->cond[i][j];
			Datum		d;
			bool		isnull = false;

			if (c->attnum == 0)
				d = NumericGetDatum(amount);
			else
				d = slot_getattr(slot, c->attnum, &isnull);
			all = cond_holds(c, d, isnull);
		}
		if (all)
			words[i / 64] |= UINT64CONST(1) << (i % 64);
	}
}

/* ----------------------------------------------------------------- checks */

/*
 * A rule's conditions against one tracked table (relid, label columns
 * label_attnums): each names a column the table has, of a type conditions
 * compare, that reader may read (unless it is a role), and each value is
 * one of its type's.
 */
void
loyalty_check_conditions(int32 rule_id, Jsonb *conditions, Oid relid, const int *label_attnums,
						 const char *time_zone, Oid reader)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "loyalty rule check",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RuleCond   *conds;
	int			n = loyalty_conditions_parse(conditions, rule_id, &conds);

	(void) compile_rule(rule_id, conds, n, relid, label_attnums, time_zone, reader, cxt);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * loyalty._rule_columns_problem(track_id): why the active rules of an
 * active tracked table's program cannot read the table as it is now (a
 * column a condition names is gone or of a type conditions do not
 * compare), or NULL.  For the alter guard: values are checked when the
 * rules are read again.
 */
Datum
loyalty_rule_columns_problem(PG_FUNCTION_ARGS)
{
	TrackedRow	t;
	int			label_attnums[NUM_LABELS] = {0};
	char	   *text = NULL;

	loyalty_require_arg(fcinfo, 0, "tracked table id");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_read_tracked(PG_GETARG_INT32(0), &t);
	if (t.found && t.active && !t.dropped)
	{
		Oid			argtypes[1] = {INT4OID};
		Datum		args[1] = {Int32GetDatum(t.program_id)};

		for (int k = 0; k < NUM_LABELS; k++)
			if (t.cols[4 + k] != NULL)
				label_attnums[k] = get_attnum(t.relid, t.cols[4 + k]);
		if (SPI_execute_with_args("SELECT id, conditions FROM loyalty.earning_rules"
								  " WHERE program_id = $1 AND active AND conditions IS NOT NULL ORDER BY id",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read loyalty.earning_rules");
		for (uint64 i = 0; text == NULL && i < SPI_processed; i++)
		{
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			Jsonb	   *jb = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			RuleCond   *conds;
			int			n = loyalty_conditions_parse(jb, id, &conds);

			for (int j = 0; text == NULL && j < n; j++)
			{
				AttrNumber	attnum;
				bool		role;
				Problem    *p = key_column(t.relid, conds[j].key, label_attnums, &attnum, &role);

				if (p != NULL)
				{
					char	   *s = psprintf("%s (earning rule %d has a condition on it: change the rule first)",
											 p->message, id);

					text = SPI_palloc(strlen(s) + 1);
					strcpy(text, s);
				}
			}
		}
	}
	SPI_finish();
	if (text == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(text));
}
