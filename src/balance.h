/*
 * loyalty.lots: a member's points as lots.
 *
 * A lot is (points, expires): points usable while now < expires.  A pending
 * lot also has a release instant: usable while release <= now < expires.
 * Debt is points owed (a reversal of points already spent); new points pay
 * it off before they become usable.
 *
 * On disk the lots follow the header, sorted and merged: lots by expires,
 * pending lots by (release, expires).  Sorted order is what makes FIFO
 * spending and "as of" questions a single pass with no ledger scan.
 */
#ifndef LOYALTY_BALANCE_H
#define LOYALTY_BALANCE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

typedef struct BalanceLot
{
	TimestampTz expires;		/* DT_NOEND for points that never expire */
	int64		points;			/* > 0 */
} BalanceLot;

typedef struct PendingLot
{
	TimestampTz release;
	TimestampTz expires;		/* > release */
	int64		points;			/* > 0 */
} PendingLot;

typedef struct Balance
{
	int32		vl_len_;
	int32		nlots;
	int32		npending;
	int32		flags;			/* reserved, always 0 */
	int64		debt;			/* >= 0 */
	/* BalanceLot lots[nlots]; PendingLot pending[npending]; */
} Balance;

#define BALANCE_LOTS(b)		((BalanceLot *) ((char *) (b) + sizeof(Balance)))
#define BALANCE_PENDING(b)	((PendingLot *) (BALANCE_LOTS(b) + (b)->nlots))
#define BALANCE_SIZE(nl, np) \
	(sizeof(Balance) + (Size) (nl) * sizeof(BalanceLot) + (Size) (np) * sizeof(PendingLot))
/* keeps BALANCE_SIZE far below MaxAllocSize */
#define BALANCE_MAX_LOTS	1000000

#define DatumGetBalanceP(X)		((Balance *) PG_DETOAST_DATUM(X))
#define PG_GETARG_BALANCE_P(n)	DatumGetBalanceP(PG_GETARG_DATUM(n))
#define PG_RETURN_BALANCE_P(x)	PG_RETURN_POINTER(x)

/* Mutable working copy used by every operation. */
typedef struct BalanceBuf
{
	int			nlots;
	int			maxlots;
	BalanceLot *lots;			/* kept sorted by expires, merged */
	int			npending;
	int			maxpending;
	PendingLot *pending;		/* kept sorted by (release, expires), merged */
	int64		sum;			/* points in lots + pending; never overflows */
	int64		debt;
} BalanceBuf;

extern void balbuf_init(BalanceBuf *buf);
extern void balbuf_from_balance(BalanceBuf *buf, const Balance *b);
extern Balance *balbuf_to_balance(const BalanceBuf *buf);

extern void balbuf_add_lot(BalanceBuf *buf, int64 points, TimestampTz expires);
extern void balbuf_add_pending(BalanceBuf *buf, int64 points,
							   TimestampTz release, TimestampTz expires);
extern void balbuf_add_debt(BalanceBuf *buf, int64 points);
extern void balbuf_settle(BalanceBuf *buf, TimestampTz as_of, BalanceBuf *released);
extern void balbuf_release_first(BalanceBuf *buf);
extern void balbuf_expire(BalanceBuf *buf, TimestampTz as_of, BalanceBuf *expired);
extern void balbuf_expire_all(BalanceBuf *buf, BalanceBuf *expired);
extern void balbuf_spend(BalanceBuf *buf, int64 points, TimestampTz as_of,
						 bool allow_debt, BalanceBuf *drawn);
extern void balbuf_reverse(BalanceBuf *buf, int64 points, TimestampTz as_of,
						   const BalanceBuf *prefer, BalanceBuf *drawn);
extern void balbuf_merge(BalanceBuf *buf, const BalanceBuf *other);
extern void balbuf_merge_balance(BalanceBuf *buf, const Balance *other);
extern Balance *balance_single(int64 points, TimestampTz release, TimestampTz expires, bool pending);
extern void balbuf_subtract(BalanceBuf *buf, const BalanceBuf *other);
extern int64 balbuf_subtract_held(BalanceBuf *buf, const BalanceBuf *other);
extern void balbuf_clamp_lots(BalanceBuf *buf, const BalanceBuf *limit);
extern int64 balbuf_split_held(BalanceBuf *buf, const BalanceBuf *other, BalanceBuf *unheld);
extern void balbuf_pay_debt(BalanceBuf *buf, TimestampTz as_of);
extern void balbuf_expire_usable(BalanceBuf *buf, TimestampTz at, BalanceBuf *expired);
extern bool balbuf_holds(const BalanceBuf *buf, const BalanceBuf *other);

extern int64 balbuf_available(const BalanceBuf *buf, TimestampTz as_of);
extern int64 balbuf_pending(const BalanceBuf *buf, TimestampTz as_of);
extern int64 balbuf_expiring(const BalanceBuf *buf, TimestampTz from, TimestampTz to);
extern int64 balbuf_total(const BalanceBuf *buf);

extern void balance_check_timestamp(TimestampTz ts, const char *what, bool allow_infinity);
extern void balance_validate(const Balance *b, Size size);

#endif
