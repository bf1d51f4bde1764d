/*
 * Operations on a member's lots (see lots.h for the model).
 *
 * Every operation works on a LotsBuf copy and raises an error before the
 * caller can store anything, so a failed spend leaves the stored balance as
 * it was.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "lots.h"
#include "loyalty_errors.h"
#include "loyalty_util.h"

static void
check_positive(int64 points, const char *what)
{
	if (points <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errdetail("Got %lld.", (long long) points)));
}

void
lots_check_timestamp(TimestampTz ts, const char *what, bool allow_infinity)
{
	if (ts == DT_NOEND && allow_infinity)
		return;
	if (TIMESTAMP_NOT_FINITE(ts) || !IS_VALID_TIMESTAMP(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be a finite timestamp%s", what,
						allow_infinity ? " or infinity" : "")));
}

void
lotsbuf_init(LotsBuf *buf)
{
	memset(buf, 0, sizeof(LotsBuf));
}

static void
reserve_lots(LotsBuf *buf, int extra)
{
	int			need = buf->nlots + extra;

	if (need > LOTS_MAX_LOTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a balance cannot hold more than %d lots", LOTS_MAX_LOTS),
				 errhint("Use an expiry policy that groups points into fewer expiry instants.")));
	if (need <= buf->maxlots)
		return;
	buf->maxlots = Max(need, Max(8, buf->maxlots * 2));
	if (buf->lots)
		buf->lots = repalloc(buf->lots, sizeof(Lot) * buf->maxlots);
	else
		buf->lots = palloc(sizeof(Lot) * buf->maxlots);
}

static void
reserve_pending(LotsBuf *buf, int extra)
{
	int			need = buf->npending + extra;

	if (need > LOTS_MAX_LOTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a balance cannot hold more than %d pending lots", LOTS_MAX_LOTS)));
	if (need <= buf->maxpending)
		return;
	buf->maxpending = Max(need, Max(4, buf->maxpending * 2));
	if (buf->pending)
		buf->pending = repalloc(buf->pending, sizeof(PendingLot) * buf->maxpending);
	else
		buf->pending = palloc(sizeof(PendingLot) * buf->maxpending);
}

void
lotsbuf_from_lots(LotsBuf *buf, const Lots *b)
{
	lotsbuf_init(buf);
	/* exact size: a full value (LOTS_MAX_LOTS) must still load */
	reserve_lots(buf, Max(b->nlots, 1));
	reserve_pending(buf, Max(b->npending, 1));
	memcpy(buf->lots, LOTS_ARRAY(b), sizeof(Lot) * b->nlots);
	memcpy(buf->pending, LOTS_PENDING(b), sizeof(PendingLot) * b->npending);
	buf->nlots = b->nlots;
	buf->npending = b->npending;
	buf->debt = b->debt;
	buf->sum = 0;
	for (int i = 0; i < b->nlots; i++)
		buf->sum = loyalty_add_points(buf->sum, buf->lots[i].points);
	for (int i = 0; i < b->npending; i++)
		buf->sum = loyalty_add_points(buf->sum, buf->pending[i].points);
}

Lots *
lotsbuf_to_lots(const LotsBuf *buf)
{
	Size		size = LOTS_SIZE(buf->nlots, buf->npending);
	Lots	   *b = palloc0(size);

	SET_VARSIZE(b, size);
	b->nlots = buf->nlots;
	b->npending = buf->npending;
	b->debt = buf->debt;
	if (buf->nlots > 0)
		memcpy(LOTS_ARRAY(b), buf->lots, sizeof(Lot) * buf->nlots);
	if (buf->npending > 0)
		memcpy(LOTS_PENDING(b), buf->pending, sizeof(PendingLot) * buf->npending);
	return b;
}

/* first index whose expires >= ts */
static int
lot_search(const LotsBuf *buf, TimestampTz ts)
{
	int			lo = 0,
				hi = buf->nlots;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (buf->lots[mid].expires < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
pending_cmp(TimestampTz r1, TimestampTz e1, TimestampTz r2, TimestampTz e2)
{
	if (r1 != r2)
		return r1 < r2 ? -1 : 1;
	if (e1 != e2)
		return e1 < e2 ? -1 : 1;
	return 0;
}

static int
pending_search(const LotsBuf *buf, TimestampTz release, TimestampTz expires)
{
	int			lo = 0,
				hi = buf->npending;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		PendingLot *p = &buf->pending[mid];

		if (pending_cmp(p->release, p->expires, release, expires) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* first index whose lot is still usable at as_of (expires > as_of) */
static int
first_usable(const LotsBuf *buf, TimestampTz as_of)
{
	/* nothing expires after infinity; as_of + 1 would overflow */
	return as_of == DT_NOEND ? buf->nlots : lot_search(buf, as_of + 1);
}

/* insert or merge a lot, no debt handling */
static void
insert_lot(LotsBuf *buf, int64 points, TimestampTz expires)
{
	int			i = lot_search(buf, expires);

	buf->sum = loyalty_add_points(buf->sum, points);
	if (i < buf->nlots && buf->lots[i].expires == expires)
	{
		buf->lots[i].points = loyalty_add_points(buf->lots[i].points, points);
		return;
	}
	reserve_lots(buf, 1);
	memmove(&buf->lots[i + 1], &buf->lots[i], sizeof(Lot) * (buf->nlots - i));
	buf->lots[i].expires = expires;
	buf->lots[i].points = points;
	buf->nlots++;
}

static void
remove_lot(LotsBuf *buf, int i)
{
	memmove(&buf->lots[i], &buf->lots[i + 1], sizeof(Lot) * (buf->nlots - i - 1));
	buf->nlots--;
}

static void
remove_pending(LotsBuf *buf, int i)
{
	memmove(&buf->pending[i], &buf->pending[i + 1],
			sizeof(PendingLot) * (buf->npending - i - 1));
	buf->npending--;
}

void
lotsbuf_add_debt(LotsBuf *buf, int64 points)
{
	if (points < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("debt must not be negative")));
	buf->debt = loyalty_add_points(buf->debt, points);
}

/* New points pay off debt first; what is left becomes a lot. */
void
lotsbuf_add_lot(LotsBuf *buf, int64 points, TimestampTz expires)
{
	check_positive(points, "points");
	lots_check_timestamp(expires, "expiry", true);
	if (buf->debt > 0)
	{
		int64		paid = Min(buf->debt, points);

		buf->debt -= paid;
		points -= paid;
		/* the paid part leaves debt and lots alike, so sum is unchanged */
		if (points == 0)
			return;
	}
	insert_lot(buf, points, expires);
}

void
lotsbuf_add_pending(LotsBuf *buf, int64 points, TimestampTz release, TimestampTz expires)
{
	int			i;

	check_positive(points, "points");
	lots_check_timestamp(release, "release time", false);
	lots_check_timestamp(expires, "expiry", true);
	if (expires <= release)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pending points must expire after they are released")));
	buf->sum = loyalty_add_points(buf->sum, points);
	i = pending_search(buf, release, expires);
	if (i < buf->npending &&
		pending_cmp(buf->pending[i].release, buf->pending[i].expires, release, expires) == 0)
	{
		buf->pending[i].points = loyalty_add_points(buf->pending[i].points, points);
		return;
	}
	reserve_pending(buf, 1);
	memmove(&buf->pending[i + 1], &buf->pending[i],
			sizeof(PendingLot) * (buf->npending - i));
	buf->pending[i].release = release;
	buf->pending[i].expires = expires;
	buf->pending[i].points = points;
	buf->npending++;
}

/* Move pending lots released by as_of into the usable lots. */
void
lotsbuf_settle(LotsBuf *buf, TimestampTz as_of, LotsBuf *released)
{
	int			n = 0;

	/* pending is sorted by release, so released lots are a prefix */
	while (n < buf->npending && buf->pending[n].release <= as_of)
		n++;
	for (int i = 0; i < n; i++)
	{
		PendingLot	p = buf->pending[i];

		if (released)
			lotsbuf_add_pending(released, p.points, p.release, p.expires);
		buf->sum -= p.points;
		lotsbuf_add_lot(buf, p.points, p.expires);
	}
	if (n > 0)
	{
		memmove(&buf->pending[0], &buf->pending[n], sizeof(PendingLot) * (buf->npending - n));
		buf->npending -= n;
	}
}

/* Release the pending lot released first (it pays debt like any new lot). */
void
lotsbuf_release_first(LotsBuf *buf)
{
	PendingLot	p;

	if (buf->npending == 0)
		return;
	p = buf->pending[0];
	remove_pending(buf, 0);
	buf->sum -= p.points;
	lotsbuf_add_lot(buf, p.points, p.expires);
}

/* Remove everything expired at as_of (expires <= as_of). */
void
lotsbuf_expire(LotsBuf *buf, TimestampTz as_of, LotsBuf *expired)
{
	int			n = first_usable(buf, as_of);	/* lots [0, n) have expired */

	for (int i = 0; i < n; i++)
	{
		if (expired)
			insert_lot(expired, buf->lots[i].points, buf->lots[i].expires);
		buf->sum -= buf->lots[i].points;
	}
	if (n > 0)
	{
		memmove(&buf->lots[0], &buf->lots[n], sizeof(Lot) * (buf->nlots - n));
		buf->nlots -= n;
	}
	for (int i = buf->npending - 1; i >= 0; i--)
	{
		PendingLot	p = buf->pending[i];

		if (p.expires <= as_of)
		{
			if (expired)
				lotsbuf_add_pending(expired, p.points, p.release, p.expires);
			buf->sum -= p.points;
			remove_pending(buf, i);
		}
	}
}

/* Inactivity: every lot expires now, whatever its own expiry; pending stay. */
void
lotsbuf_expire_all(LotsBuf *buf, LotsBuf *expired)
{
	for (int i = 0; i < buf->nlots; i++)
	{
		if (expired)
			insert_lot(expired, buf->lots[i].points, buf->lots[i].expires);
		buf->sum -= buf->lots[i].points;
	}
	buf->nlots = 0;
}

/*
 * Spend FIFO by soonest expiry among lots usable at as_of.  Without
 * allow_debt, spending more than is available is an error; with it, the
 * shortfall becomes debt (a reversal of points already spent).
 */
void
lotsbuf_spend(LotsBuf *buf, int64 points, TimestampTz as_of, bool allow_debt,
			  LotsBuf *drawn)
{
	int			first;
	int64		usable = 0;
	int64		need = points;
	int			i;

	check_positive(points, "points");
	lotsbuf_settle(buf, as_of, NULL);
	first = first_usable(buf, as_of);

	/* debt owed is paid from usable lots before anything else */
	for (i = first; i < buf->nlots && buf->debt > 0; i++)
	{
		int64		paid = Min(buf->debt, buf->lots[i].points);

		buf->lots[i].points -= paid;
		buf->debt -= paid;
		buf->sum -= paid;
	}
	for (i = first; i < buf->nlots; i++)
		usable += buf->lots[i].points;

	if (usable < need && !allow_debt)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
				 errmsg("insufficient points"),
				 errdetail("%lld points are available, %lld requested.",
						   (long long) (usable - buf->debt), (long long) points),
				 errhint("Check loyalty.balance() before redeeming.")));

	for (i = first; i < buf->nlots && need > 0; i++)
	{
		int64		take = Min(need, buf->lots[i].points);

		if (take == 0)
			continue;
		buf->lots[i].points -= take;
		buf->sum -= take;
		need -= take;
		if (drawn)
			insert_lot(drawn, take, buf->lots[i].expires);
	}
	for (i = buf->nlots - 1; i >= first; i--)
		if (buf->lots[i].points == 0)
			remove_lot(buf, i);

	if (need > 0)
	{
		lotsbuf_add_debt(buf, need);
		if (drawn)
			lotsbuf_add_debt(drawn, need);
	}
}

/*
 * Take back points awarded in error (a refunded purchase): first from the
 * award's own lots (prefer), pending or not, then FIFO from other usable
 * lots; what cannot be taken becomes debt, never silently dropped.
 */
void
lotsbuf_reverse(LotsBuf *buf, int64 points, TimestampTz as_of,
				const LotsBuf *prefer, LotsBuf *drawn)
{
	int64		need = points;

	check_positive(points, "points");
	for (int j = 0; prefer && j < prefer->npending && need > 0; j++)
	{
		const PendingLot *o = &prefer->pending[j];
		int			i = pending_search(buf, o->release, o->expires);

		if (i < buf->npending &&
			pending_cmp(buf->pending[i].release, buf->pending[i].expires,
						o->release, o->expires) == 0)
		{
			int64		take = Min(need, Min(o->points, buf->pending[i].points));

			buf->pending[i].points -= take;
			buf->sum -= take;
			need -= take;
			if (drawn)
				lotsbuf_add_pending(drawn, take, o->release, o->expires);
			if (buf->pending[i].points == 0)
				remove_pending(buf, i);
		}
	}
	lotsbuf_settle(buf, as_of, NULL);
	for (int pass = 0; prefer && pass < 2 && need > 0; pass++)
	{
		int			n = pass == 0 ? prefer->nlots : prefer->npending;

		for (int j = 0; j < n && need > 0; j++)
		{
			TimestampTz expires = pass == 0 ? prefer->lots[j].expires : prefer->pending[j].expires;
			int64		want = pass == 0 ? prefer->lots[j].points : prefer->pending[j].points;
			int			i = lot_search(buf, expires);

			if (expires <= as_of || i >= buf->nlots || buf->lots[i].expires != expires)
				continue;
			want = Min(need, Min(want, buf->lots[i].points));
			buf->lots[i].points -= want;
			buf->sum -= want;
			need -= want;
			if (drawn)
				insert_lot(drawn, want, expires);
			if (buf->lots[i].points == 0)
				remove_lot(buf, i);
		}
	}
	if (need > 0)
		lotsbuf_spend(buf, need, as_of, true, drawn);
}

/* Give back lots (a cancelled redemption) or apply a ledger credit. */
void
lotsbuf_merge(LotsBuf *buf, const LotsBuf *other)
{
	for (int i = 0; i < other->nlots; i++)
		lotsbuf_add_lot(buf, other->lots[i].points, other->lots[i].expires);
	for (int i = 0; i < other->npending; i++)
		lotsbuf_add_pending(buf, other->pending[i].points,
							other->pending[i].release, other->pending[i].expires);
	lotsbuf_add_debt(buf, other->debt);
}

/* lotsbuf_merge() for a stored value, without copying it first */
void
lotsbuf_merge_lots(LotsBuf *buf, const Lots *other)
{
	const Lot  *lots = LOTS_ARRAY(other);
	const PendingLot *pend = LOTS_PENDING(other);

	for (int i = 0; i < other->nlots; i++)
		lotsbuf_add_lot(buf, lots[i].points, lots[i].expires);
	for (int i = 0; i < other->npending; i++)
		lotsbuf_add_pending(buf, pend[i].points, pend[i].release, pend[i].expires);
	lotsbuf_add_debt(buf, other->debt);
}

/* A value holding one lot (or one pending lot): what an award adds. */
Lots *
lots_single(int64 points, TimestampTz release, TimestampTz expires, bool pending)
{
	Size		size = LOTS_SIZE(pending ? 0 : 1, pending ? 1 : 0);
	Lots	   *b;

	check_positive(points, "points");
	lots_check_timestamp(expires, "expiry", true);
	if (pending)
	{
		lots_check_timestamp(release, "release time", false);
		if (expires <= release)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pending points must expire after they are released"),
					 errhint("The program's expiry comes before the end of its pending period.")));
	}
	b = palloc0(size);
	SET_VARSIZE(b, size);
	if (pending)
	{
		b->npending = 1;
		LOTS_PENDING(b)->release = release;
		LOTS_PENDING(b)->expires = expires;
		LOTS_PENDING(b)->points = points;
	}
	else
	{
		b->nlots = 1;
		LOTS_ARRAY(b)->expires = expires;
		LOTS_ARRAY(b)->points = points;
	}
	return b;
}

/*
 * The first lot (*pending false) or pending lot (*pending true) of other that
 * buf does not hold, as its index in other; -1 when buf holds them all.
 * Lots are unique by expiry and pending lots by (release, expiry), so each is
 * checked on its own.
 */
static int
first_missing(const LotsBuf *buf, const LotsBuf *other, bool *pending)
{
	*pending = false;
	for (int j = 0; j < other->nlots; j++)
	{
		const Lot  *o = &other->lots[j];
		int			i = lot_search(buf, o->expires);

		if (i >= buf->nlots || buf->lots[i].expires != o->expires ||
			buf->lots[i].points < o->points)
			return j;
	}
	*pending = true;
	for (int j = 0; j < other->npending; j++)
	{
		const PendingLot *o = &other->pending[j];
		int			i = pending_search(buf, o->release, o->expires);

		if (i >= buf->npending ||
			pending_cmp(buf->pending[i].release, buf->pending[i].expires,
						o->release, o->expires) != 0 ||
			buf->pending[i].points < o->points)
			return j;
	}
	return -1;
}

/* whether lotsbuf_subtract(buf, other) would succeed */
bool
lotsbuf_holds(const LotsBuf *buf, const LotsBuf *other)
{
	bool		pending;

	return first_missing(buf, other, &pending) < 0;
}

/* Remove exactly the given lots; they must be there (LY006 otherwise). */
void
lotsbuf_subtract(LotsBuf *buf, const LotsBuf *other)
{
	bool		pending;
	int			missing = first_missing(buf, other, &pending);

	if (missing >= 0 && !pending)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INCONSISTENT_LOTS),
				 errmsg("balance does not hold the lots being removed"),
				 errdetail("%lld points expiring at %s are missing.",
						   (long long) other->lots[missing].points,
						   timestamptz_to_str(other->lots[missing].expires))));
	if (missing >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INCONSISTENT_LOTS),
				 errmsg("balance does not hold the pending lots being removed"),
				 errdetail("%lld points pending until %s are missing.",
						   (long long) other->pending[missing].points,
						   timestamptz_to_str(other->pending[missing].release))));
	for (int j = 0; j < other->nlots; j++)
	{
		int			i = lot_search(buf, other->lots[j].expires);

		buf->lots[i].points -= other->lots[j].points;
		buf->sum -= other->lots[j].points;
		if (buf->lots[i].points == 0)
			remove_lot(buf, i);
	}
	for (int j = 0; j < other->npending; j++)
	{
		const PendingLot *o = &other->pending[j];
		int			i = pending_search(buf, o->release, o->expires);

		buf->pending[i].points -= o->points;
		buf->sum -= o->points;
		if (buf->pending[i].points == 0)
			remove_pending(buf, i);
	}
	lotsbuf_add_debt(buf, other->debt);
}

/*
 * Debt and usable points never coexist: pay the debt from the lots usable
 * at as_of, soonest expiry first.  A replay calls this after a debit, where
 * a credit that arrived out of order may have left both.
 */
void
lotsbuf_pay_debt(LotsBuf *buf, TimestampTz as_of)
{
	int			first = first_usable(buf, as_of);

	for (int i = first; i < buf->nlots && buf->debt > 0; i++)
	{
		int64		paid = Min(buf->debt, buf->lots[i].points);

		buf->lots[i].points -= paid;
		buf->debt -= paid;
		buf->sum -= paid;
	}
	for (int i = buf->nlots - 1; i >= first; i--)
		if (buf->lots[i].points == 0)
			remove_lot(buf, i);
}

/*
 * Limit each usable lot of buf to the points of limit's usable lot with the
 * same expiry (none: 0).  Pending lots and debt stay.
 */
void
lotsbuf_clamp_lots(LotsBuf *buf, const LotsBuf *limit)
{
	for (int i = buf->nlots - 1; i >= 0; i--)
	{
		int			j = lot_search(limit, buf->lots[i].expires);
		int64		held = 0;

		if (j < limit->nlots && limit->lots[j].expires == buf->lots[i].expires)
			held = limit->lots[j].points;
		if (buf->lots[i].points > held)
		{
			buf->sum -= buf->lots[i].points - held;
			buf->lots[i].points = held;
			if (held == 0)
				remove_lot(buf, i);
		}
	}
}

/*
 * Remove as much of other as buf holds, lot by lot; return the points of
 * other it did not hold.  For replays that must answer even when a ledger
 * does not replay (lotsbuf_subtract is the strict form).
 */
int64
lotsbuf_subtract_held(LotsBuf *buf, const LotsBuf *other)
{
	return lotsbuf_split_held(buf, other, NULL);
}

/*
 * lotsbuf_subtract_held that also collects, in unheld (when not NULL), the
 * lots and pending lots of other that buf did not hold.  other's debt is
 * added to buf, not to unheld.
 */
int64
lotsbuf_split_held(LotsBuf *buf, const LotsBuf *other, LotsBuf *unheld)
{
	int64		missing = 0;

	for (int j = 0; j < other->nlots; j++)
	{
		const Lot  *o = &other->lots[j];
		int			i = lot_search(buf, o->expires);
		int64		take = 0;

		if (i < buf->nlots && buf->lots[i].expires == o->expires)
		{
			take = Min(o->points, buf->lots[i].points);
			buf->lots[i].points -= take;
			buf->sum -= take;
			if (buf->lots[i].points == 0)
				remove_lot(buf, i);
		}
		missing = loyalty_add_points(missing, o->points - take);
		if (unheld != NULL && o->points > take)
			lotsbuf_add_lot(unheld, o->points - take, o->expires);
	}
	for (int j = 0; j < other->npending; j++)
	{
		const PendingLot *o = &other->pending[j];
		int			i = pending_search(buf, o->release, o->expires);
		int64		take = 0;

		if (i < buf->npending &&
			pending_cmp(buf->pending[i].release, buf->pending[i].expires,
						o->release, o->expires) == 0)
		{
			take = Min(o->points, buf->pending[i].points);
			buf->pending[i].points -= take;
			buf->sum -= take;
			if (buf->pending[i].points == 0)
				remove_pending(buf, i);
		}
		missing = loyalty_add_points(missing, o->points - take);
		if (unheld != NULL && o->points > take)
			lotsbuf_add_pending(unheld, o->points - take, o->release, o->expires);
	}
	lotsbuf_add_debt(buf, other->debt);
	return missing;
}

/*
 * Inactivity: take every lot usable at "at" (expires > at); lots expiring
 * at or before it and pending lots stay.  The caller has released the
 * pending lots due before "at".
 */
void
lotsbuf_expire_usable(LotsBuf *buf, TimestampTz at, LotsBuf *expired)
{
	int			first = first_usable(buf, at);

	for (int i = first; i < buf->nlots; i++)
	{
		if (expired)
			insert_lot(expired, buf->lots[i].points, buf->lots[i].expires);
		buf->sum -= buf->lots[i].points;
	}
	buf->nlots = first;
}

int64
lotsbuf_available(const LotsBuf *buf, TimestampTz as_of)
{
	int64		sum = 0;

	/* sums of validated lots cannot overflow: buf->sum bounds them */
	for (int i = buf->nlots - 1; i >= 0 && buf->lots[i].expires > as_of; i--)
		sum += buf->lots[i].points;
	for (int i = 0; i < buf->npending && buf->pending[i].release <= as_of; i++)
		if (buf->pending[i].expires > as_of)
			sum += buf->pending[i].points;
	return sum - buf->debt;
}

int64
lotsbuf_pending(const LotsBuf *buf, TimestampTz as_of)
{
	int64		sum = 0;

	for (int i = buf->npending - 1; i >= 0 && buf->pending[i].release > as_of; i--)
		sum += buf->pending[i].points;
	return sum;
}

/* Points usable at "from" that stop being usable by "to": from < expires <= to. */
int64
lotsbuf_expiring(const LotsBuf *buf, TimestampTz from, TimestampTz to)
{
	int64		sum = 0;

	for (int i = 0; i < buf->nlots && buf->lots[i].expires <= to; i++)
		if (buf->lots[i].expires > from)
			sum += buf->lots[i].points;
	for (int i = 0; i < buf->npending && buf->pending[i].release <= from; i++)
		if (buf->pending[i].expires > from && buf->pending[i].expires <= to)
			sum += buf->pending[i].points;
	return sum;
}

int64
lotsbuf_total(const LotsBuf *buf)
{
	return buf->sum - buf->debt;
}

static void
invalid(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid loyalty.lots value"),
			 errdetail("%s", detail)));
}

/* Check a stored or received value before anything trusts its layout. */
void
lots_validate(const Lots *b, Size size)
{
	int64		sum = 0;
	const Lot  *lots;
	const PendingLot *pend;

	if (size < sizeof(Lots))
		invalid("The value is truncated.");
	if (b->nlots < 0 || b->npending < 0 ||
		b->nlots > LOTS_MAX_LOTS || b->npending > LOTS_MAX_LOTS)
		invalid("Lot counts are out of range.");
	if (size != LOTS_SIZE(b->nlots, b->npending))
		invalid("The size does not match the lot counts.");
	if (b->flags != 0)
		invalid("Unknown flags are set.");
	if (b->debt < 0)
		invalid("Debt is negative.");
	lots = LOTS_ARRAY(b);
	pend = LOTS_PENDING(b);
	for (int i = 0; i < b->nlots; i++)
	{
		if (lots[i].points <= 0)
			invalid("A lot has no points.");
		if (lots[i].expires != DT_NOEND &&
			(TIMESTAMP_NOT_FINITE(lots[i].expires) || !IS_VALID_TIMESTAMP(lots[i].expires)))
			invalid("A lot has an invalid expiry.");
		if (i > 0 && lots[i - 1].expires >= lots[i].expires)
			invalid("Lots are not sorted by expiry.");
		if (pg_add_s64_overflow(sum, lots[i].points, &sum))
			invalid("The points total does not fit in a bigint.");
	}
	for (int i = 0; i < b->npending; i++)
	{
		if (pend[i].points <= 0)
			invalid("A pending lot has no points.");
		if (TIMESTAMP_NOT_FINITE(pend[i].release) || !IS_VALID_TIMESTAMP(pend[i].release))
			invalid("A pending lot has an invalid release time.");
		if (pend[i].expires != DT_NOEND &&
			(TIMESTAMP_NOT_FINITE(pend[i].expires) || !IS_VALID_TIMESTAMP(pend[i].expires)))
			invalid("A pending lot has an invalid expiry.");
		if (pend[i].expires <= pend[i].release)
			invalid("A pending lot expires before it is released.");
		if (i > 0 && pending_cmp(pend[i - 1].release, pend[i - 1].expires,
								 pend[i].release, pend[i].expires) >= 0)
			invalid("Pending lots are not sorted.");
		if (pg_add_s64_overflow(sum, pend[i].points, &sum))
			invalid("The points total does not fit in a bigint.");
	}
}
