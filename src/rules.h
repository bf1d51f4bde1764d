/*
 * Earning rules (rules.c): what a purchase earns under its program's rules,
 * and when the points a program awards are released and expire.
 */
#ifndef LOYALTY_RULES_H
#define LOYALTY_RULES_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "pgtime.h"
#include "utils/numeric.h"

#include "program.h"

/*
 * What a purchase looks like to the rules.  (The purchase triggers sort
 * arrays of purchases that hold it: its size is what a bulk insert moves,
 * so the flags fill what would be padding.)
 */
typedef struct PurchaseFacts
{
	Numeric		amount;
	TimestampTz at;
	const char *tier;
	/* channel, category, store in the column's type; null when not tracked */
	Datum		label[NUM_LABELS];
	const struct RuleLabels *rule_labels;	/* the rules' values in those types */
	RuleBits	cond;			/* whose conditions hold (conditions.c) */
	bool		label_null[NUM_LABELS];
	bool		reversed;		/* its status is a reversed one: it earns nothing */
	bool		duplicate;		/* its reference came earlier in the statement */
} PurchaseFacts;

/* What a purchase earns under the rules, before caps. */
typedef struct PurchaseEarning
{
	int64		points;
	const ExpirySpec *expiry;	/* of the points */
	int64		bonus;			/* first-purchase bonus; 0 unless asked for */
	const ExpirySpec *bonus_expiry;
} PurchaseEarning;

extern void loyalty_purchase_earning(ProgramConf *prog, const PurchaseFacts *facts,
									 bool first_purchase, PurchaseEarning *earning);
extern bool loyalty_rule_scope_matches(const EarnRule *r, const PurchaseFacts *f);
extern TimestampTz loyalty_expiry(ProgramConf *prog, const ExpirySpec *spec,
								  TimestampTz earned_at);
extern TimestampTz loyalty_inactivity_deadline(ProgramConf *prog, TimestampTz last_activity);
extern TimestampTz loyalty_release(ProgramConf *prog, TimestampTz earned_at);
extern TimestampTz loyalty_period_start(pg_tz *tz, Period period, TimestampTz ts);
extern TimestampTz loyalty_period_add(pg_tz *tz, Period period, int n, TimestampTz start);

#endif
