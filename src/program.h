/*
 * Programs as the C code sees them, cached per backend (program.c): a
 * program's row, its active earning rules and its tier ladder.
 */
#ifndef LOYALTY_PROGRAM_H
#define LOYALTY_PROGRAM_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "pgtime.h"
#include "utils/numeric.h"

typedef enum RuleKind
{
	RULE_MULTIPLIER,
	RULE_BONUS,
	RULE_MINIMUM,
	RULE_CAP,
	RULE_FIRST_PURCHASE
} RuleKind;

typedef enum Rounding
{
	ROUND_FLOOR,
	ROUND_HALF_UP,
	ROUND_CEIL
} Rounding;

typedef enum ExpiryPolicy
{
	EXPIRY_NEVER,
	EXPIRY_AFTER,
	EXPIRY_PERIOD_END,
	EXPIRY_INACTIVITY
} ExpiryPolicy;

/* calendar periods, for expiry and caps */
typedef enum Period
{
	PERIOD_DAY,
	PERIOD_WEEK,
	PERIOD_MONTH,
	PERIOD_QUARTER,
	PERIOD_YEAR
} Period;

/* when points expire: a program's policy, or an earning rule's own */
typedef struct ExpirySpec
{
	ExpiryPolicy policy;
	Interval	interval;		/* EXPIRY_AFTER, EXPIRY_INACTIVITY */
	Period		period;			/* EXPIRY_PERIOD_END */
	int32		extra_periods;
} ExpirySpec;

/* the purchase columns a rule's conditions compare (track_purchases) */
typedef enum Label
{
	LABEL_CHANNEL,
	LABEL_CATEGORY,
	LABEL_STORE,
	NUM_LABELS
} Label;

/*
 * An earning rule's condition on a purchase column, as its conditions
 * (jsonb) say it (conditions.c); read in the column's type per table.
 */
typedef enum CondOp
{
	COND_IN,					/* equal to one of the values */
	COND_NOT_IN,				/* equal to none of them */
	COND_LT,
	COND_LE,
	COND_GT,
	COND_GE,
	COND_NULL,
	COND_NOT_NULL
} CondOp;

typedef struct RuleCond
{
	char	   *key;			/* amount, channel, category, store, or a column */
	CondOp		op;
	int			nvalues;
	char	  **values;			/* as text; none for COND_NULL, COND_NOT_NULL */
} RuleCond;

/* which rules' conditions hold for a purchase, by rule index */
typedef union RuleBits
{
	uint64		bits;			/* programs of up to 64 rules */
	uint64	   *words;			/* larger ones */
} RuleBits;

typedef struct EarnRule
{
	int32		id;
	int			index;			/* in ProgramConf.rules */
	RuleKind	kind;
	int32		priority;
	bool		exclusive;
	char	   *tier;			/* conditions; NULL = any */
	char	   *label[NUM_LABELS];	/* as written: parsed per tracked table (labels.c) */
	int			nconds;			/* conditions, all of which must hold */
	RuleCond   *conds;
	TimestampTz valid_from;		/* DT_NOBEGIN when open */
	TimestampTz valid_until;	/* DT_NOEND when open; exclusive */
	int			dow_mask;		/* bit d set for ISO day d (1 = Monday); 0 = any */
	int			hour_from;		/* local [hour_from, hour_until); -1 = any */
	int			hour_until;
	Numeric		min_amount;		/* NULL = any amount */
	Numeric		multiplier;		/* RULE_MULTIPLIER */
	int64		points;			/* RULE_BONUS, RULE_FIRST_PURCHASE: points; RULE_CAP: cap */
	Period		cap_period;
	bool		has_expiry;		/* the points it matches expire by its own policy */
	ExpirySpec	expiry;
} EarnRule;

typedef enum TierWindow
{
	TIER_WINDOW_ROLLING,
	TIER_WINDOW_CALENDAR_YEAR,
	TIER_WINDOW_LIFETIME
} TierWindow;

/* a rung of the tier ladder; thresholds < 0 are not set */
typedef struct TierConf
{
	char	   *name;
	int32		rank;
	int64		min_spend;		/* ten-thousandths, as loyalty.activity */
	int64		min_orders;
	int64		min_points;
	bool		combine_all;
} TierConf;

typedef struct ProgramConf
{
	int32		id;
	char	   *code;
	Numeric		points_per_unit;
	Rounding	rounding;
	ExpirySpec	expiry;
	Interval	pending_interval;
	char	   *time_zone;
	pg_tz	   *tz;
	bool		auto_enroll;
	int			nrules;
	EarnRule   *rules;			/* sorted by (priority, id) */
	bool		has_caps;
	bool		has_conditions; /* some rule has conditions */
	TierWindow	tier_window;
	int32		tier_window_months;
	int			ntiers;
	TierConf   *tiers;			/* sorted by rank */
} ProgramConf;

extern ProgramConf *loyalty_program_conf(int32 program_id);
extern void loyalty_invalidate_config(void);
extern uint64 loyalty_config_generation;
extern uint64 loyalty_relcache_generation;
extern void loyalty_program_init(void);

#endif
