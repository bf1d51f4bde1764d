/*
 * What a purchase statement awards a member beyond the rules' answer: the
 * caps that clamp it (against the ledger and the statement's own awards),
 * the lots it adds, and the activity it counts with the tier upgrades that
 * activity reaches.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "loyalty_util.h"
#include "purchase.h"
#include "tiers.h"

/* Points from purchases already in the ledger for a member in [start, end). */
static int64
cap_used_in_ledger(MemberState *m, TimestampTz start, TimestampTz end)
{
	Datum		args[4];
	bool		isnull;
	int64		used;

	args[0] = Int32GetDatum(m->program_id);
	args[1] = CStringGetTextDatum(m->key);
	args[2] = TimestampTzGetDatum(start);
	args[3] = TimestampTzGetDatum(end);
	/* not read_only: a fresh snapshot sees what committed while we waited for the member */
	if (loyalty_purchase_exec(STMT_CAP_USED, NULL, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read purchase points for caps");
	used = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return used;
}

/* Clamp points to what every matching cap still allows; record the use. */
int64
loyalty_apply_caps(ProgramConf *prog, MemberState *m, const PurchaseFacts *f, int64 points)
{
	if (!prog->has_caps || points <= 0)
		return points;
	for (int i = 0; i < prog->nrules; i++)
	{
		EarnRule   *r = &prog->rules[i];
		TimestampTz start,
					end;
		struct CapUse *use = NULL;
		int64		room;

		/* a cap's conditions scope it; its days, hours and min_amount do not */
		if (r->kind != RULE_CAP || !loyalty_rule_scope_matches(r, f))
			continue;
		start = loyalty_period_start(prog->tz, r->cap_period, f->at);
		end = loyalty_period_add(prog->tz, r->cap_period, 1, start);
		for (int j = 0; j < m->ncaps; j++)
			if (m->caps[j].rule_id == r->id && m->caps[j].start == start)
				use = &m->caps[j];
		if (use == NULL)
		{
			if (m->ncaps == m->maxcaps)
			{
				m->maxcaps = Max(4, m->maxcaps * 2);
				m->caps = m->caps ? repalloc(m->caps, sizeof(struct CapUse) * m->maxcaps)
					: palloc(sizeof(struct CapUse) * m->maxcaps);
			}
			use = &m->caps[m->ncaps++];
			use->rule_id = r->id;
			use->start = start;
			use->end = end;
			use->used = cap_used_in_ledger(m, start, end);
			/* and what this statement awarded before the cap first matched */
			for (int k = 0; k < m->nawards; k++)
				if (m->award_at[k] >= start && m->award_at[k] < end)
					use->used = loyalty_add_points(use->used, m->award_points[k]);
		}
		room = Max(r->points - use->used, 0);
		points = Min(points, room);
	}
	if (points > 0)
	{
		if (m->nawards == m->maxawards)
		{
			m->maxawards = Max(8, m->maxawards * 2);
			m->award_at = m->award_at ? repalloc(m->award_at, sizeof(TimestampTz) * m->maxawards)
				: palloc(sizeof(TimestampTz) * m->maxawards);
			m->award_points = m->award_points ? repalloc(m->award_points, sizeof(int64) * m->maxawards)
				: palloc(sizeof(int64) * m->maxawards);
		}
		m->award_at[m->nawards] = f->at;
		m->award_points[m->nawards++] = points;
	}
	/* every cap period that holds this purchase counts what was finally awarded */
	for (int j = 0; j < m->ncaps; j++)
		if (f->at >= m->caps[j].start && f->at < m->caps[j].end)
			m->caps[j].used = loyalty_add_points(m->caps[j].used, points);
	return points;
}

/* the lots one award adds: pending while the pending period runs */
Lots *
loyalty_award_lots(ProgramConf *prog, const ExpirySpec *expiry, TimestampTz at, int64 points,
				   const char **kind)
{
	TimestampTz release = loyalty_release(prog, at);
	/* points count as earned when released: expiry runs from then */
	TimestampTz expires = loyalty_expiry(prog, expiry, release);
	bool		pending = release > at || release > GetCurrentTransactionStartTimestamp();

	*kind = pending ? "pending" : "earn";
	return lots_single(points, release, expires, pending);
}

static void
write_upgrade(MemberState *m, const char *tier, TimestampTz at)
{
	Datum		args[4];

	args[0] = Int32GetDatum(m->program_id);
	args[1] = CStringGetTextDatum(m->key);
	args[2] = CStringGetTextDatum(tier);
	args[3] = TimestampTzGetDatum(at);
	if (loyalty_purchase_exec(STMT_TIER_UPGRADE, NULL, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the tier upgrade of member \"%s\"", m->key);
}

/*
 * Write the upgrades found by loyalty_count_activity: history, event, NOTIFY; each
 * step of a statement that climbs several is a change of its own.  When
 * some purchases were replays (their activity taken back again), the steps
 * are not trusted: one upgrade to what the activity now qualifies for.
 */
void
loyalty_write_upgrades(ProgramConf *prog, MemberState *m)
{
	if (m->nups == 0)
		return;
	if (m->replayed && !m->any_went_in)
	{
		/* every award was refused: nothing happened, no upgrade either */
		m->tier = m->locked_tier;
		m->nups = 0;
		return;
	}
	if (m->replayed)
	{
		TimestampTz at = m->up_at[m->nups - 1];
		const TierConf *q = loyalty_qualified_tier(prog, m->activity, at);
		const TierConf *was = loyalty_tier_named(prog, m->locked_tier);

		m->tier = m->locked_tier;
		if (q != NULL && (was == NULL || q->rank > was->rank))
		{
			write_upgrade(m, q->name, at);
			m->tier = q->name;
		}
	}
	else
		for (int i = 0; i < m->nups; i++)
			write_upgrade(m, m->up_tier[i], m->up_at[i]);
	m->nups = 0;
}

/*
 * Count a purchase (or take it back, with sign -1) in the member's activity,
 * in the month of its purchase time; points may be counted alone (sign 0).
 * A higher tier the activity now qualifies for is taken at once (later
 * purchases of the statement earn at it); loyalty_write_upgrades() records it.
 */
void
loyalty_count_activity(ProgramConf *prog, MemberState *m, Numeric amount, int sign, int64 points,
					   TimestampTz at)
{
	int64		spend = 0;
	const TierConf *q,
			   *cur;

	if (sign != 0)
	{
		spend = activity_spend_from_numeric(amount);
		if (sign < 0)
			spend = loyalty_sub_points(0, spend);
	}
	if (sign == 0 && points == 0)
		return;
	{
		/* a bulk load counts ~10 purchases per member: keep one copy alive */
		Activity   *prev = m->activity;

		m->activity = activity_apply(prev, activity_month_of(at, prog->tz), spend, sign, points);
		pfree(prev);
	}
	m->dirty = true;
	if (prog->ntiers == 0 || sign < 0)
		return;
	q = loyalty_qualified_tier(prog, m->activity, at);
	cur = loyalty_tier_named(prog, m->tier);
	if (q != NULL && (cur == NULL || q->rank > cur->rank))
	{
		if (m->nups == m->maxups)
		{
			m->maxups = Max(4, m->maxups * 2);
			m->up_tier = m->up_tier ? repalloc(m->up_tier, sizeof(char *) * m->maxups) :
				palloc(sizeof(char *) * m->maxups);
			m->up_at = m->up_at ? repalloc(m->up_at, sizeof(TimestampTz) * m->maxups) :
				palloc(sizeof(TimestampTz) * m->maxups);
		}
		m->up_tier[m->nups] = q->name;
		m->up_at[m->nups] = at;
		m->nups++;
		m->tier = q->name;
	}
}

/*
 * When some of a customer's award rows were refused (replayed purchases),
 * the first purchase and last activity times come from the rows that went
 * in only: a purchase inserted again must not move them (a restored
 * purchases table would otherwise change member rows).  went_in[i] says
 * whether rows[i] went in; every row of the statement is passed.
 */
void
loyalty_times_from_inserted(MemberState *members, int nmembers, PendingRows *rows, const bool *went_in)
{
	for (int i = 0; i < nmembers; i++)
	{
		MemberState *m = &members[i];

		if (!m->replayed)
			continue;
		m->had_purchase = m->locked_had_purchase;
		m->first_purchase_at = m->locked_first_purchase_at;
		m->last_activity_at = m->locked_last_activity_at;
	}
	for (int i = 0; i < rows->n; i++)
	{
		MemberState *m = &members[rows->member[i]];
		TimestampTz at = DatumGetTimestampTz(rows->effective[i]);

		if (!m->replayed || !went_in[i])
			continue;
		m->any_went_in = true;
		if (!m->had_purchase || at < m->first_purchase_at)
			m->first_purchase_at = at;
		m->had_purchase = true;
		m->last_activity_at = Max(m->last_activity_at, at);
	}
}

/* a replayed award row: its purchase was counted before, take it back */
void
loyalty_uncount_row(ProgramConf *prog, MemberState *m, PendingRows *rows, int i)
{
	Numeric		amount = rows->amount[i];

	loyalty_count_activity(prog, m, amount, amount ? -1 : 0,
						   loyalty_sub_points(0, DatumGetInt64(rows->points[i])),
						   DatumGetTimestampTz(rows->effective[i]));
	m->replayed = true;
}
