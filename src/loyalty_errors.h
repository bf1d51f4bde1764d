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

#endif
