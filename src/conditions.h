/*
 * Earning rule conditions beyond equality (conditions.c): the grammar of
 * loyalty.earning_rules.conditions, and a program's conditions compiled
 * for one tracked table (columns resolved, values read in the columns'
 * types) and evaluated on its rows.
 */
#ifndef LOYALTY_CONDITIONS_H
#define LOYALTY_CONDITIONS_H

#include "postgres.h"

#include "access/attnum.h"
#include "executor/tuptable.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/relcache.h"

#include "program.h"

/* a program's conditions for one table; opaque outside conditions.c */
typedef struct RuleConditions RuleConditions;

extern int	loyalty_conditions_parse(Jsonb *conditions, int32 rule_id, RuleCond **conds);
extern RuleConditions *loyalty_conditions_compile(ProgramConf *prog, Relation rel,
												  const int *label_attnums, MemoryContext cxt);
extern int	loyalty_conditions_attnums(const RuleConditions *rc, AttrNumber **attnums);
extern void loyalty_conditions_eval(const RuleConditions *rc, TupleTableSlot *slot,
									Numeric amount, RuleBits *holds);
extern void loyalty_check_conditions(int32 rule_id, Jsonb *conditions, Oid relid,
									 const int *label_attnums, const char *time_zone,
									 Oid reader);

#endif
