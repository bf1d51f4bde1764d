"""Reference model of loyalty's documented semantics (docs/concepts.md, docs/api.md).

Written from the documentation only.  One program, its members, and the ledger-like
entries the operations write.  Every answer is computed by replaying the entries
from scratch in effective order; releases, lot expiries and inactivity expiries are
applied virtually during the replay (the docs: reads apply what fell due and is not
written yet), so they are never stored as entries here.

Instants are integers: microseconds since 1970-01-01 00:00:00 UTC.  INF is
'infinity'.  Intervals are (months, days, microseconds), PostgreSQL's three fields.
"""


from decimal import Decimal, ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, localcontext

from tztime import (  # noqa: F401  (re-exported for gen, harness, selftest)
    US, DAY, INF, NINF, EPOCH, NAIVE_EPOCH, dt_to_us, naive_to_us, us_to_naive_utc,
    us_to_dt, fmt_ts, parse_ts, Interval, offset_interval_sql, zone, utc_offset_us,
    to_local, local_to_us, add_months_local, tz_add, PERIOD_MONTHS, period_end)

# ---------------------------------------------------------------------------
# programs


class Program:
    def __init__(self, code, tz='UTC', points_per_unit='1', rounding='floor',
                 expiry_policy='never', expiry_interval=None, expiry_period=None,
                 expiry_extra_periods=0, pending_interval=None):
        self.code = code
        self.tz = tz
        self.points_per_unit = Decimal(points_per_unit)
        self.rounding = rounding
        self.expiry_policy = expiry_policy
        self.expiry_interval = expiry_interval
        self.expiry_period = expiry_period
        self.expiry_extra_periods = expiry_extra_periods
        self.pending_interval = pending_interval or Interval()

    def expiry_for(self, r):
        """loyalty.expiry_for(program, r): when points released at r expire.
        inactivity: lots have no expiry of their own (concepts.md, Inactivity)."""
        p = self.expiry_policy
        if p in ('never', 'inactivity'):
            return INF
        if p == 'after':
            return tz_add(r, self.expiry_interval, self.tz)
        if p == 'period_end':
            return period_end(r, self.expiry_period, self.expiry_extra_periods, self.tz)
        raise ValueError(p)

    def release_for(self, at):
        return tz_add(at, self.pending_interval, self.tz)

    def points_for(self, amount):
        """loyalty.points_for: amount * points_per_unit rounded floor, half_up (halves
        away from zero) or ceil."""
        if amount is None:
            return None
        with localcontext() as ctx:
            ctx.prec = 60
            v = Decimal(amount) * self.points_per_unit
            mode = {'floor': ROUND_FLOOR, 'ceil': ROUND_CEILING, 'half_up': ROUND_HALF_UP}[self.rounding]
            return int(v.quantize(Decimal(1), rounding=mode))

    def inactivity_deadline(self, a):
        return tz_add(a, self.expiry_interval, self.tz)

    def sql_insert(self):
        cols = ['code', 'name', 'points_per_unit', 'rounding', 'expiry_policy',
                'expiry_interval', 'expiry_period', 'expiry_extra_periods',
                'pending_interval', 'time_zone']
        vals = [self.code, 'model ' + self.code, str(self.points_per_unit), self.rounding,
                self.expiry_policy,
                self.expiry_interval.sql() if self.expiry_interval else None,
                self.expiry_period, self.expiry_extra_periods,
                self.pending_interval.sql(), self.tz]
        return cols, vals

    def describe(self):
        s = '%s tz=%s ppu=%s %s policy=%s' % (self.code, self.tz, self.points_per_unit,
                                               self.rounding, self.expiry_policy)
        if self.expiry_interval:
            s += ' interval=%s' % self.expiry_interval.sql()
        if self.expiry_period:
            s += ' period=%s+%d' % (self.expiry_period, self.expiry_extra_periods)
        s += ' pending=%s' % self.pending_interval.sql()
        return s


# ---------------------------------------------------------------------------
# lots state during a replay


class State:
    """A member's points at an instant: ordinary lots {expires: points}, pending lots
    {(release, expires): points} not yet released, and debt (concepts.md, Lots)."""

    __slots__ = ('lots', 'pending', 'debt')

    def __init__(self):
        self.lots = {}
        self.pending = {}
        self.debt = 0

    def copy(self):
        s = State()
        s.lots = dict(self.lots)
        s.pending = dict(self.pending)
        s.debt = self.debt
        return s

    def usable_points(self):
        return sum(self.lots.values())

    # -- the rules of a replay (concepts.md: Debt, Balances as of any instant)

    def pay_debt(self):
        """A member never holds usable points and debt at the same instant: the debt
        is paid from the usable lots, soonest expiry first."""
        for e in sorted(self.lots):
            if self.debt == 0:
                break
            x = min(self.debt, self.lots[e])
            self.debt -= x
            self._take(self.lots, e, x)

    @staticmethod
    def _take(d, k, x):
        v = d[k] - x
        if v:
            d[k] = v
        else:
            del d[k]

    def expire_lots(self, t):
        """lots are not usable from their expiry"""
        for e in [e for e in self.lots if e <= t]:
            del self.lots[e]
        for k in [k for k in self.pending if k[1] <= t]:
            del self.pending[k]

    def release(self, t):
        """pending lots are usable from their release; a release pays debt"""
        ks = [k for k in self.pending if k[0] <= t]
        for k in ks:
            p = self.pending.pop(k)
            self.lots[k[1]] = self.lots.get(k[1], 0) + p
        if ks:
            self.pay_debt()
        return bool(ks)

    def credit(self, lots, pending):
        for e, p in lots.items():
            self.lots[e] = self.lots.get(e, 0) + p
        for k, p in pending.items():
            self.pending[k] = self.pending.get(k, 0) + p

    def debit(self, lots, pending, debt, t=None):
        """Remove exactly the recorded lots and add the recorded debt.  Should the state
        not hold them (a ledger that does not replay), take the missing points
        soonest-expiry-first from the usable lots and count the rest as debt
        (concepts.md: reads never fail).  Returns False in that case."""
        ok = True
        missing = 0
        for e, p in lots.items():
            h = self.lots.get(e, 0)
            x = min(h, p)
            if x:
                self._take(self.lots, e, x)
            p -= x
            # the same lot still pending but due at t (released at this very instant)
            for k in sorted(k for k in self.pending if k[1] == e and t is not None and k[0] <= t):
                if p == 0:
                    break
                y = min(p, self.pending[k])
                self._take(self.pending, k, y)
                p -= y
            missing += p
        for k, p in pending.items():
            h = self.pending.get(k, 0)
            x = min(h, p)
            if x:
                self._take(self.pending, k, x)
            p -= x
            if p and t is not None and k[0] <= t:
                # already released (at or before t)
                y = min(p, self.lots.get(k[1], 0))
                if y:
                    self._take(self.lots, k[1], y)
                    p -= y
            missing += p
        if missing:
            ok = False
            for e in sorted(self.lots):
                if missing == 0:
                    break
                x = min(missing, self.lots[e])
                missing -= x
                self._take(self.lots, e, x)
            self.debt += missing
        self.debt += debt
        return ok

    # -- evaluation at an instant (api.md: lots_available, lots_pending, lots_expiring)

    def available(self, t):
        return (sum(p for e, p in self.lots.items() if e > t)
                + sum(p for (r, e), p in self.pending.items() if r <= t < e) - self.debt)

    def pending_points(self, t):
        return sum(p for (r, e), p in self.pending.items() if r > t)

    def expiring(self, frm, to):
        return (sum(p for e, p in self.lots.items() if frm < e <= to)
                + sum(p for (r, e), p in self.pending.items() if r <= frm and frm < e <= to))

    def normalized(self, t):
        """the lots usable at t and the pending lots not released at t (no debt)"""
        lots = {}
        for e, p in self.lots.items():
            if e > t:
                lots[e] = lots.get(e, 0) + p
        pend = {}
        for (r, e), p in self.pending.items():
            if r <= t:
                if e > t:
                    lots[e] = lots.get(e, 0) + p
            else:
                pend[(r, e)] = pend.get((r, e), 0) + p
        return lots, pend

    def text(self):
        items = ['%d until %s' % (p, fmt_ts(e)) for e, p in sorted(self.lots.items())]
        items += ['pending %d from %s until %s' % (p, fmt_ts(r), fmt_ts(e))
                  for (r, e), p in sorted(self.pending.items())]
        if self.debt:
            items.append('debt %d' % self.debt)
        return '{' + ', '.join(items) + '}'


def parse_lots(text):
    """loyalty.lots text output -> State (items may repeat: summed)"""
    s = State()
    text = text.strip()
    assert text[0] == '{' and text[-1] == '}', text
    body = text[1:-1].strip()
    if not body:
        return s
    for item in body.split(','):
        w = item.split()
        if w[0] == 'debt':
            s.debt += int(w[1])
        elif w[0] == 'pending':
            # pending N from TS until TS
            rest = item.strip()[len('pending'):].strip()
            n, rest = rest.split(' from ', 1)
            r, e = rest.split(' until ', 1)
            k = (parse_ts(r), parse_ts(e))
            s.pending[k] = s.pending.get(k, 0) + int(n)
        else:
            n, e = item.strip().split(' until ', 1)
            k = parse_ts(e)
            s.lots[k] = s.lots.get(k, 0) + int(n)
    return s


# ---------------------------------------------------------------------------
# ledger-like entries


ACTIVITY_KINDS = ('earn', 'pending', 'redeem', 'adjust', 'transfer')


def entry_instants(e):
    """the instants an entry makes matter: its own, and its lots' releases and expiries"""
    out = {e.eff}
    out.update(x for x in e.lots if x < INF)
    for r, x in e.pending:
        out.add(r)
        if x < INF:
            out.add(x)
    return out


class Entry:
    __slots__ = ('id', 'member', 'kind', 'eff', 'rec', 'lots', 'pending', 'debt', 'credit', 'purchase', 'note')

    def __init__(self, id, member, kind, eff, rec, credit, lots=None, pending=None, debt=0,
                 purchase=None, note=''):
        self.id = id
        self.member = member
        self.kind = kind
        self.eff = eff
        self.rec = rec
        self.credit = credit
        self.lots = lots or {}
        self.pending = pending or {}
        self.debt = debt
        self.purchase = purchase
        self.note = note

    @property
    def activity(self):
        return self.kind in ACTIVITY_KINDS

    def points(self):
        n = sum(self.lots.values()) + sum(self.pending.values())
        return n - self.debt if self.credit else -(n + self.debt)

    def __repr__(self):
        s = State()
        s.lots, s.pending, s.debt = self.lots, self.pending, self.debt
        return '#%d %s %s %+d %s eff=%s rec=%s %s' % (self.id, self.member, self.kind, self.points(),
                                                   s.text(), fmt_ts(self.eff), fmt_ts(self.rec), self.note)


class Timeline:
    """A member's replay: the state after every instant at which something happens."""

    def __init__(self, instants, states, nonreplay, debt_paid_by_release_at, mids):
        self.instants = instants
        self.states = states
        self.mids = mids
        self.nonreplay = nonreplay
        self.debt_paid_by_release_at = debt_paid_by_release_at

    def at(self, t):
        import bisect
        i = bisect.bisect_right(self.instants, t) - 1
        if i < 0:
            return State()
        return self.states[i]

    def for_write(self, t):
        """the state a new entry effective at t sees: after the entries already effective
        at t, before the releases at t"""
        import bisect
        i = bisect.bisect_right(self.instants, t) - 1
        if i < 0:
            return State()
        return self.mids[i] if self.instants[i] == t else self.states[i]


class OpError(Exception):
    def __init__(self, sqlstate, msg=''):
        super().__init__('%s %s' % (sqlstate, msg))
        self.sqlstate = sqlstate
        self.msg = msg


class Ambiguous(Exception):
    """the scenario reached a case the docs do not settle"""


# ---------------------------------------------------------------------------
# the model


class Model:
    def __init__(self, program):
        self.p = program
        self.enrolled = []            # member keys in enrolment order
        self.entries = []
        self.next_id = 1
        self.refs = {'earn': {}, 'redeem': {}, 'adjust': {}, 'transfer': {}}
        self.ref_entries = {}
        self.received = {}   # (receiver, reference) -> the transfer
        # tracked purchases: the table as it is now, and per purchase reference the
        # awards per member (net points, own lots) and whether a first award exists
        self.orders = {}              # id -> dict(c, amount, at (instant or None), status, p_time)
        self.awards = {}              # id -> {member: {'net': n, 'own': [[r, e, created, taken]]}}
        self.first_award = set()      # ids whose first award exists
        self.deleted = {}             # id -> the row as it was when deleted
        # inactivity: up to when the written expiries reach (lower and upper estimate)
        self.settled_lo = {}
        self.settled_hi = {}
        self.written_lo = {}
        self.ambiguities = []
        self.nows = []
        self._tl_cache = {}

    # -- helpers

    def is_enrolled(self, m):
        return m in self.enrolled

    def _enroll(self, m):
        if m not in self.enrolled:
            self.enrolled.append(m)
            self.settled_lo.setdefault(m, NINF)
            self.settled_hi.setdefault(m, NINF)

    def _add(self, e):
        self.entries.append(e)
        self._tl_cache.clear()
        return e

    def _new_entry(self, *a, **k):
        e = Entry(self.next_id, *a, **k)
        self.next_id += 1
        return self._add(e)

    def _settle(self, m, now, certain=True):
        """the member's due inactivity expiries are written up to now"""
        self.settled_hi[m] = max(self.settled_hi.get(m, NINF), now)
        if certain:
            self.settled_lo[m] = max(self.settled_lo.get(m, NINF), now)
            # the member's own writes (members.settled_at must reach them; run_maintenance
            # may leave a member with nothing due untouched)
            self.written_lo[m] = max(self.written_lo.get(m, NINF), now)

    def member_entries(self, m):
        return [e for e in self.entries if e.member == m]

    def deadlines(self, m, entries=None):
        """concepts.md, Inactivity: each activity at a sets d = tz_add(a, expiry_interval);
        a later activity at a2 with a < a2 < d cancels it; only effective instants count,
        not when an entry was recorded (an activity learned after d cancels d too, and what
        expired there comes back in a reinstate entry).
        Returns {d: [activity instants]} for every deadline, cancelled or not, and the set
        of deadlines in force."""
        if self.p.expiry_policy != 'inactivity':
            return {}, set()
        ents = self.member_entries(m) if entries is None else entries
        acts = [e.eff for e in ents if e.activity]
        alld = {}
        live = set()
        for a in sorted(set(acts)):
            d = self.p.inactivity_deadline(a)
            alld.setdefault(d, []).append(a)
            if not any(a < a2 < d for a2 in acts):
                live.add(d)
        return alld, live

    def timeline(self, m, settled=None):
        """Replay the member's entries in effective order (concepts.md, Balances as of
        any instant).  At each instant: lot expiries and an inactivity expiry first,
        then the entries effective then in write order (each followed by debt payment),
        then the pending lots released then (paying debt).  Entries before releases:
        a purchase dated in the future and reversed is taken back where it was awarded,
        before its own lot, released at that instant, could pay debt ("so that it never
        counted at any instant").  With `settled`, only the deadlines
        at or before it apply (what the stored lots hold)."""
        key = (m, settled)
        if key in self._tl_cache:
            return self._tl_cache[key]
        ents = sorted(self.member_entries(m), key=lambda e: (e.eff, e.id))
        _, live = self.deadlines(m, ents)
        if settled is not None:
            live = {d for d in live if d <= settled}
        instants = set(live)
        by_t = {}
        for e in ents:
            instants.update(entry_instants(e))
            by_t.setdefault(e.eff, []).append(e)
        st = State()
        out_t, out_s, out_mid = [], [], []
        nonreplay = []
        paid_by_release = []
        for t in sorted(instants):
            st.expire_lots(t)
            if t in live:
                st.lots.clear()       # every point available just before t; pending and debt stay
            for e in by_t.get(t, ()):
                if e.credit:
                    st.credit(e.lots, e.pending)
                else:
                    if not st.debit(e.lots, e.pending, e.debt, t):
                        nonreplay.append(e)
                st.pay_debt()
            mid = st.copy()
            before = st.debt
            st.release(t)
            if st.debt < before:
                paid_by_release.append(t)
            out_t.append(t)
            out_s.append(st.copy())
            out_mid.append(mid)
        tl = Timeline(out_t, out_s, nonreplay, paid_by_release, out_mid)
        self._tl_cache[key] = tl
        return tl

    def state_at(self, m, t):
        return self.timeline(m).at(t)

    def latest_entry(self, m):
        es = self.member_entries(m)
        return max((e.eff for e in es), default=None)

    def last_activity(self, m):
        return max((e.eff for e in self.member_entries(m) if e.activity), default=None)

    @staticmethod
    def draw_fifo(state, points):
        """lots_spend: soonest expiry first from the usable lots"""
        drawn = {}
        left = points
        for e in sorted(state.lots):
            if left == 0:
                break
            x = min(left, state.lots[e])
            drawn[e] = x
            left -= x
        assert left == 0
        return drawn

    def resolve(self, spec, now, cap=None):
        """a time of an operation: None is now(); ('rel', d) is now() + d; ('abs', t) is t;
        ('evt', member, i, d) is the i-th (cyclically) of the instants that matter to the
        member (entries, releases, expiries, deadlines) plus d, or now() if there is none.
        With cap, at most cap."""
        if spec is None:
            v = now
        elif spec[0] == 'rel':
            v = now + spec[1]
        elif spec[0] in ('abs', 'fixed'):
            v = spec[1]
        elif spec[0] == 'orig':
            # the purchase time a deleted order had (an order inserted again as it was)
            row = self.deleted.get(spec[1])
            v = row['at'] if row is not None and row['at'] is not None else now
        else:
            _, m, i, d = spec
            lst = sorted(x for x in self.event_instants(m) if x < INF) if self.is_enrolled(m) else []
            if cap is not None:
                lst = [x for x in lst if x + d <= cap]
            v = lst[i % len(lst)] + d if lst else now
        if cap is not None:
            v = min(v, cap)
        return v

    # -- operations.  Each raises OpError when the docs say the call fails (and then
    # changes nothing), otherwise records what the call writes.

    def op(self, o, now):
        """run an operation; self.returned is then the ledger rows the call returns
        (the entries it wrote, or the first entries for a repeated reference)"""
        self.nows.append(now)
        f = getattr(self, 'op_' + o['op'])
        n = len(self.entries)
        self.returned = None
        r = f(o, now)
        if self.returned is None:
            self.returned = self.entries[n:]
        return r

    def op_enroll(self, o, now):
        self._enroll(o['m'])

    def _need(self, m):
        if not self.is_enrolled(m):
            raise OpError('LY002', 'member %s is not enrolled' % m)

    def _repeat(self, kind, ref, key):
        """idempotency on reference: True for a repeat, LY004 for a conflicting use"""
        if ref is None:
            return False
        # a reference is the member's own (the sender's for a transfer); a
        # transfer's receiver holds it too
        slot = (key[0], ref)
        if kind == 'transfer' and slot not in self.refs[kind] and (key[1], ref) in self.received:
            raise OpError('LY004', 'reference %s received by %s in %r' % (ref, key[1], self.received[(key[1], ref)]))
        if slot in self.refs[kind]:
            if self.refs[kind][slot] == key:
                self.returned = self.ref_entries[(kind, slot)]
                # "writes nothing"; whether it still writes due expiries is left open
                for m in key[:2] if kind == 'transfer' else key[:1]:
                    self._settle(m, self.nows[-1], certain=False)
                return True
            raise OpError('LY004', 'reference %s used for %r' % (ref, self.refs[kind][slot]))
        return False

    def op_earn(self, o, now):
        m, pts, ref = o['m'], o['pts'], o.get('ref')
        self._need(m)
        if self._repeat('earn', ref, (m, pts)):
            return 'repeat'
        n0 = len(self.entries)
        at = self.resolve(o.get('at'), now)
        self._credit_award(m, pts, at, now, kind_hint='earn', note='earn ref=%s' % ref)
        if ref is not None:
            self.refs['earn'][(m, ref)] = (m, pts)
            self.ref_entries[('earn', (m, ref))] = self.entries[n0:]
        self._settle(m, now)

    def _credit_award(self, m, pts, at, now, kind_hint='earn', purchase=None, note=''):
        """points earned at `at`: released at r = tz_add(at, pending_interval), expiring at
        expiry_for(r); pending when r is after at or after now()."""
        r = self.p.release_for(at)
        e = self.p.expiry_for(r)
        if r > at or r > now:
            kind = 'pending' if kind_hint == 'earn' else kind_hint
            ent = self._new_entry(m, kind, at, now, True, pending={(r, e): pts}, purchase=purchase, note=note)
        else:
            ent = self._new_entry(m, kind_hint, at, now, True, lots={e: pts}, purchase=purchase, note=note)
        return ent, r, e

    def _spend(self, m, pts, now, kind, note=''):
        st = self.timeline(m).for_write(now)
        have = st.usable_points()
        if have < pts:
            raise OpError('LY001', '%d points are usable, %d requested' % (have, pts))
        drawn = self.draw_fifo(st, pts)
        return self._new_entry(m, kind, now, now, False, lots=drawn, note=note)

    def op_redeem(self, o, now):
        m, pts, ref = o['m'], o['pts'], o.get('ref')
        self._need(m)
        if self._repeat('redeem', ref, (m, pts)):
            return 'repeat'
        n0 = len(self.entries)
        self._spend(m, pts, now, 'redeem', note='redeem ref=%s' % ref)
        if ref is not None:
            self.refs['redeem'][(m, ref)] = (m, pts)
            self.ref_entries[('redeem', (m, ref))] = self.entries[n0:]
        self._settle(m, now)

    def op_adjust(self, o, now):
        m, delta, ref = o['m'], o['delta'], o.get('ref')
        self._need(m)
        if self._repeat('adjust', ref, (m, delta)):
            return 'repeat'
        n0 = len(self.entries)
        if delta > 0:
            self._new_entry(m, 'adjust', now, now, True, lots={self.p.expiry_for(now): delta},
                            note='adjust ref=%s' % ref)
        else:
            self._spend(m, -delta, now, 'adjust', note='adjust ref=%s' % ref)
        if ref is not None:
            self.refs['adjust'][(m, ref)] = (m, delta)
            self.ref_entries[('adjust', (m, ref))] = self.entries[n0:]
        self._settle(m, now)

    def op_transfer(self, o, now):
        a, b, pts, ref = o['a'], o['b'], o['pts'], o.get('ref')
        self._need(a)
        self._need(b)
        if a == b:
            raise OpError('22023', 'same member')
        if self._repeat('transfer', ref, (a, b, pts)):
            return 'repeat'
        n0 = len(self.entries)
        e = self._spend(a, pts, now, 'transfer', note='transfer to %s ref=%s' % (b, ref))
        self._new_entry(b, 'transfer', now, now, True, lots=dict(e.lots), note='transfer from %s ref=%s' % (a, ref))
        if ref is not None:
            self.refs['transfer'][(a, ref)] = (a, b, pts)
            self.received[(b, ref)] = (a, b, pts)
            self.ref_entries[('transfer', (a, ref))] = self.entries[n0:]
        self._settle(a, now)
        self._settle(b, now)

    def op_maint(self, o, now):
        as_of = self.resolve(o.get('as_of'), now, cap=now)
        assert as_of <= now
        for m in self.enrolled:
            self.settled_lo[m] = max(self.settled_lo[m], as_of)
            self.settled_hi[m] = max(self.settled_hi[m], as_of)

    # -- tracked purchases (concepts.md, Automatic accrual, Refunds and corrections)

    REVERSED = ('refunded', 'cancelled')

    def row_points(self, row):
        """points of a row as it is: 0 for a NULL member, a NULL amount, an amount of 0 or
        less, or a reversed status"""
        if row is None or row['c'] is None or row['amount'] is None:
            return 0
        if row['status'] in self.REVERSED:
            return 0
        a = Decimal(row['amount'])
        if a <= 0:
            return 0
        return max(0, self.p.points_for(a))

    def _aw(self, pid, m):
        return self.awards.setdefault(pid, {}).setdefault(m, {'net': 0, 'own': []})

    def _award(self, pid, m, pts, p_time, now, first):
        kind = 'earn' if first else 'adjust'
        ent, r, e = self._credit_award(m, pts, p_time, now, kind_hint=kind, purchase=pid,
                                       note='purchase %s %s' % (pid, 'award' if first else 'increase'))
        aw = self._aw(pid, m)
        aw['net'] += pts
        aw['own'].append([r, e, pts, 0])

    def _reverse(self, pid, m, n, p_time, now, reason):
        """A reversal, effective at the start of the transaction or at the purchase time
        when that is later: first the purchase's own lots as far as the member still holds
        them, then soonest expiry first from the other usable lots, the rest as debt."""
        T = max(now, p_time)
        st = self.timeline(m).for_write(T).copy()
        aw = self._aw(pid, m)
        taken_lots, taken_pend = {}, {}
        left = n
        for own in sorted(aw['own'], key=lambda x: (x[1], x[0])):
            if left == 0:
                break
            r, e, created, taken = own
            claim = created - taken
            if claim <= 0:
                continue
            x = 0
            # still pending (not released, or released only at this very instant) ...
            held = st.pending.get((r, e), 0)
            y = min(claim, held, left)
            if y:
                State._take(st.pending, (r, e), y)
                taken_pend[(r, e)] = taken_pend.get((r, e), 0) + y
                x += y
            # ... or released into the lot of its expiry
            if r <= T and e > T:
                held = st.lots.get(e, 0)
                y = min(claim - x, held, left - x)
                if y > 0:
                    State._take(st.lots, e, y)
                    taken_lots[e] = taken_lots.get(e, 0) + y
                    x += y
            own[3] += x
            left -= x
        for e in sorted(st.lots):
            if left == 0:
                break
            x = min(left, st.lots[e])
            State._take(st.lots, e, x)
            taken_lots[e] = taken_lots.get(e, 0) + x
            left -= x
        self._new_entry(m, 'reverse', T, now, False, lots=taken_lots, pending=taken_pend, debt=left,
                        purchase=pid, note='purchase %s %s' % (pid, reason))
        aw['net'] -= n

    def _settle_row(self, pid, m, row, p_time, now, reason, row_time_null):
        """bring the purchase's net award for member m to what the row is worth now"""
        target = self.row_points(row) if row is not None and row['c'] == m else 0
        aw = self._aw(pid, m)
        net = aw['net']
        if target > net:
            if row_time_null:
                raise Ambiguous('an increase of a purchase whose time is NULL: effective at which '
                                'transaction start?')
            first = pid not in self.first_award
            self._award(pid, m, target - net, p_time, now, first)
            self.first_award.add(pid)
            return True
        if target < net:
            self._reverse(pid, m, net - target, p_time, now, reason)
            return True
        return False

    def op_insert(self, o, now):
        rows = o['rows']
        ids = [r['id'] for r in rows]
        if len(set(ids)) != len(ids) or any(i in self.orders for i in ids):
            raise OpError('23505', 'duplicate order id')
        prepared = []
        for row in rows:
            at = None if row.get('at') is None else self.resolve(row['at'], now)
            rr = {'c': row['c'], 'amount': row['amount'], 'status': row['status'],
                  'at': at, 'p_time': now if at is None else at}
            prepared.append((row['id'], rr))
        # the members concerned are enrolled if needed (auto_enroll is true)
        for pid, rr in prepared:
            if rr['c'] is not None and not self.is_enrolled(rr['c']):
                if self.row_points(rr) <= 0:
                    raise Ambiguous('a row that earns nothing for an unknown customer: enrolled or not?')
                self._enroll(rr['c'])
        # awards in the order members, purchase time, reference
        order = sorted(prepared, key=lambda x: (x[1]['c'] or '', x[1]['p_time'], str(x[0])))
        for pid, rr in order:
            self.orders[pid] = rr
            pts = self.row_points(rr)
            if pts > 0 and pid not in self.first_award:
                self._award(pid, rr['c'], pts, rr['p_time'], now, True)
                self.first_award.add(pid)
                # concepts.md (Inactivity): the member's next write, a tracked purchase
                # included, "writes every deadline that fell due by its now()"
                self._settle(rr['c'], now)
            elif rr['c'] is not None:
                self._settle(rr['c'], now, certain=False)
        # concepts.md (automatic accrual): a purchase whose award was taken back
        # in full is not live; inserted again it is the purchase back and earns
        # again, as a correction does
        for pid, rr in order:
            if (rr['c'] is not None and self.row_points(rr) > 0 and pid in self.first_award and
                    sum(a['net'] for a in self.awards.get(pid, {}).values()) == 0):
                touched = self._settle_row(pid, rr['c'], rr, rr['p_time'], now, 'inserted again',
                                           rr['at'] is None)
                self._settle(rr['c'], now, certain=touched)

    def op_update(self, o, now):
        pid = o['id']
        if pid not in self.orders:
            return 'no row'
        old = self.orders[pid]
        new = dict(old)
        for k, v in o['set'].items():
            new[k] = v
        mo, mn = old['c'], new['c']
        if mn is not None and not self.is_enrolled(mn):
            raise Ambiguous('a purchase moved to a customer who is not enrolled')
        self.orders[pid] = new
        null_time = old['at'] is None
        touched = False
        if mo != mn:
            if mo is not None:
                touched |= self._settle_row(pid, mo, None, old['p_time'], now, 'moved', null_time)
            if mn is not None:
                touched |= self._settle_row(pid, mn, new, new['p_time'], now, 'moved', null_time)
        elif mn is not None:
            reason = 'refunded' if new['status'] in self.REVERSED else 'amount changed'
            touched |= self._settle_row(pid, mn, new, new['p_time'], now, reason, null_time)
        for m in {mo, mn} - {None}:
            self._settle(m, now, certain=touched)

    def op_delete(self, o, now):
        pid = o['id']
        if pid not in self.orders:
            return 'no row'
        old = self.orders.pop(pid)
        self.deleted[pid] = old
        m = old['c']
        if m is not None:
            touched = self._settle_row(pid, m, None, old['p_time'], now, 'deleted', old['at'] is None)
            self._settle(m, now, certain=touched)

    # -- expectations

    def expected(self, m, t):
        """balance_detail(m, t): available, pending, expiring_30d, debt, and the state"""
        st = self.state_at(m, t)
        return (st.available(t), st.pending_points(t), st.expiring(t, t + 30 * DAY), st.debt, st)

    def stored_expectations(self, m, now, server_settled=None):
        """What the stored members.balance must give at instants t >= T0 =
        max(now, latest entry): the replay of every entry with the inactivity expiries
        written up to settled_at.  Returns (T0, [timeline...]) with one timeline per
        possible settled instant, and the instant before which to compare (None: no
        limit), or None when the stored lots cannot be compared
        (debt that a release after now would pay: releases after now are not written)."""
        le = self.latest_entry(m)
        t0 = now if le is None else max(now, le)
        tmax = None
        if self.p.expiry_policy == 'inactivity':
            # stored lots carry no deadlines: compare only before the next one after now
            _, live = self.deadlines(m)
            nxt = [d for d in live if d > now]
            if nxt:
                tmax = min(nxt)
                if t0 >= tmax:
                    return t0, None, tmax
        tls = []
        cands = {self.settled_lo.get(m, NINF), self.settled_hi.get(m, NINF)}
        if server_settled is not None and self.settled_lo.get(m, NINF) <= server_settled <= self.settled_hi.get(m, NINF):
            cands.add(server_settled)
        for s in sorted(cands):
            if self.p.expiry_policy == 'inactivity':
                tl = self.timeline(m, settled=s)
            else:
                tl = self.timeline(m)
            # a release not written yet (after the member's last write) that pays debt:
            # the stored value still holds both, its raw debt is not the debt then
            last_write = min(self.settled_lo.get(m, NINF), now)
            if any(x > last_write for x in tl.debt_paid_by_release_at):
                return t0, None, tmax
            st = tl.at(t0)
            if st.debt and st.pending:
                return t0, None, tmax
            tls.append(tl)
        return t0, tls, tmax

    def event_instants(self, m):
        """instants that matter for the member: entries, releases, expiries, deadlines"""
        out = set()
        for e in self.member_entries(m):
            out.update(entry_instants(e))
        alld, _ = self.deadlines(m)
        out.update(alld)
        return out
