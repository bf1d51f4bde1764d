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
#ifndef LOYALTY_LOTS_H
#define LOYALTY_LOTS_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

typedef struct Lot
{
	TimestampTz expires;		/* DT_NOEND for points that never expire */
	int64		points;			/* > 0 */
} Lot;

typedef struct PendingLot
{
	TimestampTz release;
	TimestampTz expires;		/* > release */
	int64		points;			/* > 0 */
} PendingLot;

typedef struct Lots
{
	int32		vl_len_;
	int32		nlots;
	int32		npending;
	int32		flags;			/* reserved, always 0 */
	int64		debt;			/* >= 0 */
	/* Lot lots[nlots]; PendingLot pending[npending]; */
} Lots;

#define LOTS_ARRAY(b)			((Lot *) ((char *) (b) + sizeof(Lots)))
#define LOTS_PENDING(b)		((PendingLot *) (LOTS_ARRAY(b) + (b)->nlots))
#define LOTS_SIZE(nl, np) \
	(sizeof(Lots) + (Size) (nl) * sizeof(Lot) + (Size) (np) * sizeof(PendingLot))
/* keeps LOTS_SIZE far below MaxAllocSize */
#define LOTS_MAX_LOTS	1000000

#define DatumGetLotsP(X)			((Lots *) PG_DETOAST_DATUM(X))
#define PG_GETARG_LOTS_P(n)		DatumGetLotsP(PG_GETARG_DATUM(n))
#define PG_RETURN_LOTS_P(x)		PG_RETURN_POINTER(x)

/* Mutable working copy used by every operation. */
typedef struct LotsBuf
{
	int			nlots;
	int			maxlots;
	Lot		   *lots;			/* kept sorted by expires, merged */
	int			npending;
	int			maxpending;
	PendingLot *pending;		/* kept sorted by (release, expires), merged */
	int64		sum;			/* points in lots + pending; never overflows */
	int64		debt;
} LotsBuf;

extern void lotsbuf_init(LotsBuf *buf);
extern void lotsbuf_from_lots(LotsBuf *buf, const Lots *b);
extern Lots *lotsbuf_to_lots(const LotsBuf *buf);

extern void lotsbuf_add_lot(LotsBuf *buf, int64 points, TimestampTz expires);
extern void lotsbuf_add_pending(LotsBuf *buf, int64 points,
								TimestampTz release, TimestampTz expires);
extern void lotsbuf_add_debt(LotsBuf *buf, int64 points);
extern void lotsbuf_settle(LotsBuf *buf, TimestampTz as_of, LotsBuf *released);
extern void lotsbuf_release_first(LotsBuf *buf);
extern void lotsbuf_expire(LotsBuf *buf, TimestampTz as_of, LotsBuf *expired);
extern void lotsbuf_expire_all(LotsBuf *buf, LotsBuf *expired);
extern void lotsbuf_spend(LotsBuf *buf, int64 points, TimestampTz as_of,
						  bool allow_debt, LotsBuf *drawn);
extern void lotsbuf_reverse(LotsBuf *buf, int64 points, TimestampTz as_of,
							const LotsBuf *prefer, LotsBuf *drawn);
extern void lotsbuf_merge(LotsBuf *buf, const LotsBuf *other);
extern void lotsbuf_merge_lots(LotsBuf *buf, const Lots *other);
extern Lots *lots_single(int64 points, TimestampTz release, TimestampTz expires, bool pending);
extern void lotsbuf_subtract(LotsBuf *buf, const LotsBuf *other);
extern int64 lotsbuf_subtract_held(LotsBuf *buf, const LotsBuf *other);
extern void lotsbuf_clamp_lots(LotsBuf *buf, const LotsBuf *limit);
extern int64 lotsbuf_split_held(LotsBuf *buf, const LotsBuf *other, LotsBuf *unheld);
extern void lotsbuf_pay_debt(LotsBuf *buf, TimestampTz as_of);
extern void lotsbuf_expire_usable(LotsBuf *buf, TimestampTz at, LotsBuf *expired);
extern bool lotsbuf_holds(const LotsBuf *buf, const LotsBuf *other);

extern int64 lotsbuf_available(const LotsBuf *buf, TimestampTz as_of);
extern int64 lotsbuf_pending(const LotsBuf *buf, TimestampTz as_of);
extern int64 lotsbuf_expiring(const LotsBuf *buf, TimestampTz from, TimestampTz to);
extern int64 lotsbuf_total(const LotsBuf *buf);

extern void lots_check_timestamp(TimestampTz ts, const char *what, bool allow_infinity);
extern void lots_validate(const Lots *b, Size size);

#endif
