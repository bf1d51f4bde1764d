/*
 * Rule conditions on purchase columns (labels.c): a rule's channel,
 * category or store is parsed once with the input function of the
 * tracked column's type and compared by value, with that type's equality.
 */
#ifndef LOYALTY_LABELS_H
#define LOYALTY_LABELS_H

#include "postgres.h"

#include "access/attnum.h"
#include "catalog/pg_attribute.h"
#include "fmgr.h"
#include "utils/relcache.h"

#include "program.h"

/* how a tracked table's label column reads and compares values */
typedef struct LabelType
{
	Oid			typid;			/* the column's type, a domain's base type */
	int32		typmod;
	Oid			collation;
	Oid			input;
	Oid			ioparam;
	FmgrInfo	eq;
} LabelType;

/* a column the rules were read for, as it was then */
typedef struct RuleColumn
{
	AttrNumber	attnum;
	Oid			typid;
	int32		typmod;
	Oid			collation;
} RuleColumn;

/* a program's rules as one tracked table's columns see them */
typedef struct RuleLabels
{
	int32		program_id;
	Oid			relid;			/* the table, or the partition, the rows come from */
	uint64		generation;		/* loyalty_config_generation they were parsed in */
	int			nrules;
	LabelType	type[NUM_LABELS];	/* of the columns tracked */
	Datum	   *values;			/* [rule index * NUM_LABELS + label] */
	struct RuleConditions *conds;	/* conditions.c; NULL when no rule has any */
	int			ncolumns;		/* the columns read: an ALTER TABLE may change them */
	RuleColumn *columns;
	uint64		columns_checked;	/* loyalty_relcache_generation when last found so */
	struct RuleLabels *next;
} RuleLabels;

extern const char *const loyalty_label_names[NUM_LABELS];
extern RuleLabels *loyalty_rule_labels_build(ProgramConf *prog, Relation rel, const int *attnums,
											 MemoryContext cxt);
extern bool loyalty_rule_labels_fit(RuleLabels *rl, TupleDesc desc);
extern void loyalty_check_rule_labels(int32 program_id, Oid relid);
extern bool loyalty_read_rule_value(Oid input, Oid ioparam, int32 typmod, const char *value,
									Datum *result, char **message);

#endif
