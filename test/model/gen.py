"""Seeded random scenarios: one program, 2-5 members, 20-60 operations.

Times are offsets from the operation's now() ('rel', microseconds), or absolute
instants ('abs', microseconds) when chosen at a DST transition of the program's zone
or exactly at an instant that matters to the model (a release, an expiry, a deadline).
The generator runs the model to make its choices (amounts near the balance, rows that
exist); the model is run again with the real now() of every operation when the
scenario is executed.
"""

import random
import time
from datetime import datetime, timedelta
from decimal import Decimal

from model import (DAY, US, INF, Interval, Model, Program, OpError, Ambiguous, add_months_local,
                   local_to_us, to_local, utc_offset_us)

ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata',
         'America/Sao_Paulo', 'Pacific/Chatham', 'Europe/London']
MEMBERS = ['ann', 'bob', 'cid', 'dan', 'eve']
H = 3600 * US

AFTER_INTERVALS = [Interval(12, 0, 0), Interval(3, 0, 0), Interval(1, 15, 0), Interval(0, 30, 0),
                   Interval(0, 45, 0), Interval(0, 7, 12 * H), Interval(0, 90, 0), Interval(1, 0, 0),
                   Interval(2, 3, 4 * H), Interval(0, 0, 36 * H), Interval(6, 0, 0), Interval(0, 1, 0)]
INACTIVITY_INTERVALS = [Interval(0, 10, 0), Interval(0, 30, 0), Interval(2, 0, 0), Interval(3, 0, 0),
                        Interval(1, 10, 0), Interval(0, 45, 6 * H), Interval(0, 3, 0), Interval(6, 0, 0)]
PENDING_INTERVALS = [Interval(0, 14, 0), Interval(0, 1, 0), Interval(0, 7, 0), Interval(1, 0, 0),
                     Interval(0, 2, 12 * H), Interval(0, 30, 0), Interval(0, 0, 36 * H)]
PPU = ['1', '1', '2', '0.5', '1.5', '0.1', '10', '0.333', '1.25']


def transitions(tz, start, end):
    """instants in [start, end] at which the zone's UTC offset changes:
    [(instant, offset_before, offset_after)]"""
    out = []
    step = DAY
    t = start
    o = utc_offset_us(t, tz)
    while t < end:
        t2 = t + step
        o2 = utc_offset_us(t2, tz)
        if o2 != o:
            lo, hi = t, t2          # offset(lo) == o, offset(hi) == o2
            while hi - lo > US:
                mid = (lo + hi) // 2
                if utc_offset_us(mid, tz) == o:
                    lo = mid
                else:
                    hi = mid
            # transitions are on whole seconds
            hi = hi - hi % US if utc_offset_us(hi - hi % US, tz) == o2 else hi
            out.append((hi, o, o2))
        t, o = t2, o2
    return out


def invert_chain(local, chain, tz):
    """an instant a such that adding the intervals of `chain` one after the other with
    tz_add passes (about) through the wall-clock time `local` at the end"""
    for iv in reversed(chain):
        local = local - timedelta(microseconds=iv.micros) - timedelta(days=iv.days)
        local = add_months_local(local, -iv.months)
    return local_to_us(local, tz)


class Gen:
    def __init__(self, seed, n_ops=None, gen_now=None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_ops = n_ops
        # the start of the current UTC day: a seed gives the same scenario all day
        self.gen_now = gen_now if gen_now is not None else int(time.time()) // 86400 * DAY

    # -- program

    def program(self):
        r = self.rng
        tz = r.choice(ZONES)
        policy = r.choice(['never', 'after', 'period_end', 'inactivity'])
        kw = dict(tz=tz, points_per_unit=r.choice(PPU), rounding=r.choice(['floor', 'half_up', 'ceil']),
                  expiry_policy=policy)
        if policy == 'after':
            kw['expiry_interval'] = r.choice(AFTER_INTERVALS)
        elif policy == 'inactivity':
            kw['expiry_interval'] = r.choice(INACTIVITY_INTERVALS)
        elif policy == 'period_end':
            kw['expiry_period'] = r.choice(['month', 'quarter', 'year'])
            kw['expiry_extra_periods'] = r.randint(0, 2)
        kw['pending_interval'] = Interval() if r.random() < 0.5 else r.choice(PENDING_INTERVALS)
        return kw

    # -- times

    def dst_instant(self, prog, now):
        """an instant around a DST transition of the program's zone, or one from which
        the pending interval, the expiry interval or the inactivity interval lands in
        the skipped or repeated hour, or a release at a period boundary"""
        r = self.rng
        tr = self.trans
        kind = r.random()
        if prog.expiry_policy == 'period_end' and kind < 0.3:
            # a release at (or a microsecond around) the start of a local month
            base = to_local(now + r.randint(-300, 150) * DAY, prog.tz)
            start = datetime(base.year, base.month, 1)
            at = invert_chain(start, [prog.pending_interval], prog.tz)
            return at + r.choice([0, 0, -1, 1])
        if not tr:
            return None
        t, o1, o2 = r.choice(tr)
        if kind < 0.55:
            return t + r.choice([-H, -1, 0, 1, H // 2, H, -DAY, DAY])
        # a wall-clock time inside the skipped or repeated window
        lo_local = datetime(1970, 1, 1) + timedelta(microseconds=t + min(o1, o2))
        width = abs(o2 - o1)
        L = lo_local + timedelta(microseconds=r.randint(0, width - 1))
        chains = [[prog.pending_interval]]
        if prog.expiry_policy == 'after':
            chains.append([prog.pending_interval, prog.expiry_interval])
        if prog.expiry_policy == 'inactivity':
            chains.append([prog.expiry_interval])
        chain = [iv for iv in r.choice(chains) if not iv.is_zero()]
        if not chain:
            return local_to_us(L, prog.tz)
        return invert_chain(L, chain, prog.tz)

    def time_spec(self, model, now, members, allow_future=True):
        r = self.rng
        x = r.random()
        if x < 0.15:
            return None
        if x < 0.47:
            return ('rel', -(r.randint(0, 400) * DAY + r.randint(0, 86399) * US + r.randint(0, 999999)))
        if x < 0.65 and allow_future:
            if r.random() < 0.1:
                return ('rel', r.choice([1, US, 60 * US]))
            return ('rel', r.randint(0, 200) * DAY + r.randint(1, 86399) * US + r.randint(0, 999999))
        if x < 0.82:
            v = self.dst_instant(model.p, now)
            if v is not None and (allow_future or v <= now):
                return ('abs', v)
        # exactly at (or a microsecond around) an instant that matters to the model,
        # resolved by the model when the operation runs
        ms = [m for m in members if model.is_enrolled(m) and model.member_entries(m)]
        if ms:
            return ('evt', r.choice(ms), r.randint(0, 50), r.choice([0, 0, -1, 1]))
        return ('rel', -(r.randint(0, 100) * DAY + r.randint(0, 86399) * US))

    # -- amounts

    def amount(self):
        r = self.rng
        x = r.random()
        if x < 0.1:
            return str(Decimal(r.randint(1, 40)) / 2)         # halves: ties for half_up
        if x < 0.15:
            return str(Decimal(r.randint(1, 999)) / 1000)
        return str(Decimal(r.randint(100, 40000)) / 100)

    def spend_points(self, model, m, now):
        r = self.rng
        have = model.state_at(m, now).usable_points() if model.is_enrolled(m) else 0
        if have <= 0 or r.random() < 0.15:
            return have + r.randint(1, 60)
        if r.random() < 0.15:
            return have
        return r.randint(1, have)

    # -- scenario

    def scenario(self):
        r = self.rng
        pkw = self.program()
        prog = Program('gen', **pkw)
        members = MEMBERS[:r.randint(2, 5)]
        n = self.n_ops or r.randint(20, 60)
        self.trans = transitions(prog.tz, self.gen_now - 450 * DAY, self.gen_now + 450 * DAY)
        model = Model(prog)
        ops = []
        next_order = [100]
        refs = {'earn': 0, 'redeem': 0, 'adjust': 0, 'transfer': 0}
        tries = 0
        while len(ops) < n and tries < n * 20:
            tries += 1
            now = self.gen_now + len(ops) * 3000
            op = self.pick(model, members, now, next_order, refs)
            if op is None:
                continue
            trial = Model(prog)
            ok = True
            try:
                for i, o in enumerate(ops + [op]):
                    try:
                        trial.op(o, self.gen_now + i * 3000)
                    except OpError:
                        pass
            except Ambiguous:
                ok = False
            if ok:
                ops.append(op)
                model = trial
        return {'seed': self.seed, 'program': pkw, 'members': members, 'ops': ops}

    def pick(self, model, members, now, next_order, refs):
        r = self.rng
        enrolled = [m for m in members if model.is_enrolled(m)]
        unenrolled = [m for m in members if not model.is_enrolled(m)]
        if len(enrolled) < 2 and unenrolled and r.random() < 0.7:
            return {'op': 'enroll', 'm': r.choice(unenrolled)}
        w = [('enroll', 3 if unenrolled else 0.3), ('earn', 22), ('redeem', 12), ('adjust', 10),
             ('transfer', 8 if len(enrolled) >= 2 else 0), ('insert', 15),
             ('update', 14 if model.orders else 0), ('delete', 4 if model.orders else 0),
             ('maint', 5), ('reinsert', 2 if (set(model.deleted) - set(model.orders)) else 0)]
        kinds, weights = zip(*w)
        k = r.choices(kinds, weights)[0]
        anym = lambda: r.choice(members)
        pickm = lambda: r.choice(enrolled) if enrolled and r.random() < 0.95 else anym()

        def ref(kind, key_fn):
            x = r.random()
            used = model.refs[kind]
            if used and x < 0.12:
                # a used reference (the member's own, keyed (member, reference))
                slot = r.choice(sorted(used))
                return slot[1], used[slot]
            if x < 0.4:
                refs[kind] += 1
                return '%s%d' % (kind[0], refs[kind]), None
            return None, None

        if k == 'enroll':
            return {'op': 'enroll', 'm': anym()}
        if k == 'earn':
            rf, prev = ref('earn', None)
            if prev is not None:
                y = r.random()
                if y < 0.6:
                    m, pts = prev
                elif y < 0.8:
                    m, pts = prev[0], prev[1] + r.randint(1, 5)
                else:
                    m, pts = pickm(), prev[1]
            else:
                m, pts = pickm(), r.randint(1, 500)
            return {'op': 'earn', 'm': m, 'pts': pts, 'ref': rf, 'at': self.time_spec(model, now, members)}
        if k == 'redeem':
            rf, prev = ref('redeem', None)
            if prev is not None and r.random() < 0.7:
                m, pts = prev
            else:
                m = pickm()
                pts = self.spend_points(model, m, now)
            return {'op': 'redeem', 'm': m, 'pts': pts, 'ref': rf}
        if k == 'adjust':
            rf, prev = ref('adjust', None)
            if prev is not None and r.random() < 0.7:
                m, d = prev
            else:
                m = pickm()
                d = r.randint(1, 300) if r.random() < 0.55 else -self.spend_points(model, m, now)
            return {'op': 'adjust', 'm': m, 'delta': d, 'ref': rf}
        if k == 'transfer':
            rf, prev = ref('transfer', None)
            if prev is not None and r.random() < 0.7:
                a, b, pts = prev
            else:
                a, b = r.sample(enrolled, 2)
                pts = self.spend_points(model, a, now)
            return {'op': 'transfer', 'a': a, 'b': b, 'pts': pts, 'ref': rf}
        if k == 'insert':
            rows = []
            for _ in range(1 if r.random() < 0.6 else r.randint(2, 4)):
                c = r.choice(enrolled) if enrolled and r.random() < 0.75 else anym()
                row = {'id': next_order[0], 'c': c, 'amount': self.amount(),
                       'at': None if r.random() < 0.15 else self.time_spec(model, now, members),
                       'status': 'paid'}
                next_order[0] += 1
                if model.is_enrolled(c):
                    y = r.random()
                    if y < 0.05:
                        row['status'] = 'refunded'
                    elif y < 0.1:
                        row['status'] = None
                    elif y < 0.14:
                        row['amount'] = r.choice(['0', '-5.00'])
                rows.append(row)
            return {'op': 'insert', 'rows': rows}
        if k == 'reinsert':
            # a deleted order inserted again: as it was, or, one time in three, at
            # another time (its award was taken back: it earns again)
            cands = sorted(i for i, row in model.deleted.items()
                           if i not in model.orders and row['at'] is not None and model.is_enrolled(row['c']))
            if not cands:
                return None
            pid = r.choice(cands)
            row = model.deleted[pid]
            at = ('orig', pid) if r.random() < 0.67 else self.time_spec(model, now, members)
            return {'op': 'insert', 'rows': [{'id': pid, 'c': row['c'], 'amount': row['amount'] if r.random() < 0.5 else self.amount(),
                                              'at': at, 'status': 'paid'}]}
        if k == 'update':
            pid = r.choice(sorted(model.orders))
            row = model.orders[pid]
            null_time = row['at'] is None
            opts = ['down', 'refund', 'touch']
            if not null_time:
                opts += ['up', 'up', 'move', 'move', 'paid']
            y = r.choice(opts)
            if y == 'down':
                a = Decimal(row['amount']) if row['amount'] is not None else Decimal(0)
                na = (a * Decimal(r.choice(['0.5', '0.9', '0.1', '0']))).quantize(Decimal('0.01'))
                return {'op': 'update', 'id': pid, 'set': {'amount': str(na)}}
            if y == 'up':
                a = Decimal(row['amount']) if row['amount'] is not None else Decimal(0)
                return {'op': 'update', 'id': pid, 'set': {'amount': str(max(a, Decimal(0)) + Decimal(r.randint(1, 20000)) / 100)}}
            if y == 'refund':
                return {'op': 'update', 'id': pid, 'set': {'status': 'refunded'}}
            if y == 'paid':
                return {'op': 'update', 'id': pid, 'set': {'status': 'paid'}}
            if y == 'touch':
                return {'op': 'update', 'id': pid, 'set': {'status': row['status']}}
            others = [m for m in enrolled if m != row['c']]
            if not others or row['c'] is None:
                return None
            return {'op': 'update', 'id': pid, 'set': {'c': r.choice(others)}}
        if k == 'delete':
            return {'op': 'delete', 'id': r.choice(sorted(model.orders))}
        if k == 'maint':
            y = r.random()
            if y < 0.4:
                return {'op': 'maint', 'as_of': None}
            if y < 0.7:
                return {'op': 'maint', 'as_of': ('rel', -(r.randint(0, 200) * DAY + r.randint(0, 86399) * US))}
            ms = [m for m in enrolled if model.member_entries(m)]
            if not ms:
                return {'op': 'maint', 'as_of': None}
            return {'op': 'maint', 'as_of': ('evt', r.choice(ms), r.randint(0, 50), r.choice([0, -1, 1]))}
        return None
