/*
 * SQLSTATEs raised by loyalty.  Class "LY" is implementation-defined space;
 * the same codes are raised from SQL with ERRCODE = 'LY00n' and listed in
 * docs/api.md.
 */
#ifndef LOYALTY_ERRORS_H
#define LOYALTY_ERRORS_H

#include "utils/elog.h"

#define ERRCODE_LOYALTY_INSUFFICIENT_POINTS		MAKE_SQLSTATE('L','Y','0','0','1')
#define ERRCODE_LOYALTY_MEMBER_NOT_FOUND		MAKE_SQLSTATE('L','Y','0','0','2')
#define ERRCODE_LOYALTY_PROGRAM_NOT_FOUND		MAKE_SQLSTATE('L','Y','0','0','3')
#define ERRCODE_LOYALTY_REFERENCE_CONFLICT		MAKE_SQLSTATE('L','Y','0','0','4')
#define ERRCODE_LOYALTY_LEDGER_APPEND_ONLY		MAKE_SQLSTATE('L','Y','0','0','5')
#define ERRCODE_LOYALTY_INCONSISTENT_LOTS		MAKE_SQLSTATE('L','Y','0','0','6')
#define ERRCODE_LOYALTY_UNKNOWN_TIER			MAKE_SQLSTATE('L','Y','0','0','7')
/* an earning rule's channel, category or store is no value of its column's type */
#define ERRCODE_LOYALTY_RULE_VALUE				MAKE_SQLSTATE('L','Y','0','0','8')
/* an earning rule's conditions are not in their grammar (conditions.c) */
#define ERRCODE_LOYALTY_RULE_CONDITION			MAKE_SQLSTATE('L','Y','0','2','2')

/* rewards, transfers and behavioural events (raised from SQL only) */
#define ERRCODE_LOYALTY_REWARD_OUT_OF_STOCK		MAKE_SQLSTATE('L','Y','0','1','0')
#define ERRCODE_LOYALTY_REWARD_NOT_FOR_TIER		MAKE_SQLSTATE('L','Y','0','1','1')
#define ERRCODE_LOYALTY_REWARD_LIMIT_REACHED	MAKE_SQLSTATE('L','Y','0','1','2')
#define ERRCODE_LOYALTY_REWARD_NOT_FOUND		MAKE_SQLSTATE('L','Y','0','1','3')
#define ERRCODE_LOYALTY_REWARD_NOT_AVAILABLE	MAKE_SQLSTATE('L','Y','0','1','4')
#define ERRCODE_LOYALTY_REDEMPTION_NOT_FOUND	MAKE_SQLSTATE('L','Y','0','1','5')
#define ERRCODE_LOYALTY_NOT_A_CAUSE				MAKE_SQLSTATE('L','Y','0','1','6')
#define ERRCODE_LOYALTY_NO_EVENT_RULE			MAKE_SQLSTATE('L','Y','0','1','7')
#define ERRCODE_LOYALTY_EVENT_CAP_REACHED		MAKE_SQLSTATE('L','Y','0','1','8')
#define ERRCODE_LOYALTY_REFERRAL_NOT_ELIGIBLE	MAKE_SQLSTATE('L','Y','0','1','9')

/* a change to an application table that loyalty reads (raised by the event trigger) */
#define ERRCODE_LOYALTY_TABLE_IN_USE			MAKE_SQLSTATE('L','Y','0','2','0')

#endif
