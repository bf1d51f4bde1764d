/*
 * Tier qualification (tiers.c): which rung of a program's tier ladder a
 * member's activity reaches, over the program's window.
 */
#ifndef LOYALTY_TIERS_H
#define LOYALTY_TIERS_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "activity.h"
#include "program.h"

extern void loyalty_tier_window(ProgramConf *prog, TimestampTz as_of, int32 *from_month,
								int32 *to_month, bool *include_before);
extern const TierConf *loyalty_qualified_tier(ProgramConf *prog, const Activity *a,
											  TimestampTz as_of);
extern const TierConf *loyalty_tier_named(ProgramConf *prog, const char *name);

#endif
