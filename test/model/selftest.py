#!/usr/bin/python3
"""The model against every worked example of docs/concepts.md, docs/api.md and README.md
that it covers.  Run: /usr/bin/python3 test/model/selftest.py"""

import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (Interval, Model, Program, State, OpError, tz_add, period_end, parse_ts,
                   fmt_ts, parse_lots, US, DAY, INF)

T = parse_ts
fails = 0


def check(name, got, want):
    global fails
    if got != want:
        fails += 1
        print('FAIL %s: got %r, want %r' % (name, got, want))
    else:
        print('ok   %s' % name)


def ts(s):
    """'2026-03-28 12:00+01' style -> instant"""
    from datetime import datetime
    d = datetime.fromisoformat(s.replace(' ', 'T') + (':00' if len(s.split('+')[-1]) == 2 and '+' in s else ''))
    from model import dt_to_us
    return dt_to_us(d)


D = lambda n: Interval(days=n)
H = lambda n: Interval(micros=n * 3600 * US)
M = lambda n: Interval(months=n)

# --- concepts.md, Time zones and DST / api.md tz_add
check('tz_add 1 day across DST', fmt_ts(tz_add(ts('2026-03-28 12:00+01'), D(1), 'Europe/Berlin')), '2026-03-29 10:00:00+00')
check('tz_add 24 hours across DST', fmt_ts(tz_add(ts('2026-03-28 12:00+01'), H(24), 'Europe/Berlin')), '2026-03-29 11:00:00+00')
check('tz_add jan31 + 1 month', fmt_ts(tz_add(ts('2026-01-31 10:00+01'), M(1), 'Europe/Berlin')), '2026-02-28 09:00:00+00')
check('tz_add 1 mon -29 days', fmt_ts(tz_add(ts('2026-02-15 12:00+00'), Interval(1, -29, 0), 'UTC')), '2026-02-14 12:00:00+00')
check('14-day window 20 March Berlin', fmt_ts(tz_add(ts('2026-03-20 12:00+01'), D(14), 'Europe/Berlin')), '2026-04-03 10:00:00+00')
# skipped 02:30 on 29 March 2026 -> 01:30 UTC; repeated 02:30 on 25 October 2026 -> 01:30 UTC
check('skipped 02:30', fmt_ts(tz_add(ts('2026-03-28 02:30+01'), D(1), 'Europe/Berlin')), '2026-03-29 01:30:00+00')
check('repeated 02:30', fmt_ts(tz_add(ts('2026-10-24 02:30+02'), D(1), 'Europe/Berlin')), '2026-10-25 01:30:00+00')
check('infinity unchanged', tz_add(INF, D(1), 'UTC'), INF)
check('interval_sign', [Interval(12, 0, 0).sign(), D(14).sign(), Interval().sign(), Interval(1, -29, 0).sign(), H(-1).sign()],
      [1, 1, 0, -1, -1])

# --- period_end examples
check('period_end month Berlin', fmt_ts(period_end(T('2026-11-23 18:00:00+00'), 'month', 0, 'Europe/Berlin')), '2026-11-30 23:00:00+00')
check('period_end quarter+1 Berlin', fmt_ts(period_end(T('2026-11-23 18:00:00+00'), 'quarter', 1, 'Europe/Berlin')), '2027-03-31 22:00:00+00')
check('period_end year NY', fmt_ts(period_end(T('2026-11-23 18:00:00+00'), 'year', 0, 'America/New_York')), '2027-01-01 05:00:00+00')

# --- points_for (api.md)
shop = Program('shop', tz='Europe/Berlin', points_per_unit='1', rounding='floor', expiry_policy='after',
               expiry_interval=M(12), pending_interval=D(14))
check('points_for', [shop.points_for(a) for a in ('129.90', '0.99', '-3.5')], [129, 0, -4])
hu = Program('hu', rounding='half_up')
check('points_for half_up', [hu.points_for(a) for a in ('2.5', '-2.5', '2.49')], [3, -3, 2])
ce = Program('ce', rounding='ceil', points_per_unit='0.5')
check('points_for ceil', [ce.points_for(a) for a in ('3', '-3')], [2, -1])
check('expiry_for shop', fmt_ts(shop.expiry_for(T('2026-11-23 18:00:00+00'))), '2027-11-23 18:00:00+00')

# --- monthly program (concepts.md): earned 25 Oct, released 8 Nov, expire end of November
mp = Program('monthly', tz='Europe/Berlin', expiry_policy='period_end', expiry_period='month', pending_interval=D(14))
m = Model(mp)
m.op({'op': 'enroll', 'm': 'bob'}, T('2026-11-23 18:00:00+00'))
m.op({'op': 'earn', 'm': 'bob', 'pts': 10, 'ref': 'order-77', 'at': ('abs', T('2026-10-25 12:00:00+00'))}, T('2026-11-23 18:00:00+00'))
e = m.entries[-1]
check('monthly earn lots', (e.kind, State.text(type('S', (), {'lots': e.lots, 'pending': e.pending, 'debt': 0})())),
      ('pending', '{pending 10 from 2026-11-08 12:00:00+00 until 2026-11-30 23:00:00+00}'))

# --- README / api.md: alice in 'shop'
NOW = T('2026-11-23 18:16:55.672719+00')
m = Model(shop)
m.op({'op': 'enroll', 'm': 'alice'}, NOW)
m.op({'op': 'earn', 'm': 'alice', 'pts': 100, 'ref': 'order-1001', 'at': ('abs', T('2026-01-10 11:00:00+00'))}, NOW)
e = m.entries[-1]
check('earn 100 lots', (e.kind, e.pending), ('pending', {(T('2026-01-24 11:00:00+00'), T('2027-01-24 11:00:00+00')): 100}))
check('in return window', m.expected('alice', T('2026-01-20 00:00:00+00'))[0], 0)
check('balance now', m.expected('alice', NOW)[0], 100)
m.op({'op': 'earn', 'm': 'alice', 'pts': 40, 'ref': 'order-1002', 'at': ('abs', T('2026-03-20 11:00:00+00'))}, NOW)
e = m.entries[-1]
check('earn 40 lots', e.pending, {(T('2026-04-03 10:00:00+00'), T('2027-04-03 10:00:00+00')): 40})
check('repeat returns first', m.op({'op': 'earn', 'm': 'alice', 'pts': 40, 'ref': 'order-1002',
                                    'at': ('abs', T('2026-03-20 11:00:00+00'))}, NOW), 'repeat')
try:
    m.op({'op': 'earn', 'm': 'alice', 'pts': 45, 'ref': 'order-1002'}, NOW)
    check('conflict LY004', None, 'LY004')
except OpError as x:
    check('conflict LY004', x.sqlstate, 'LY004')
bal = lambda t: m.expected('alice', T(t))[0]
check('balance examples', [bal('2026-01-24 10:59:59.999999+00'), bal('2026-01-24 11:00:00+00'),
                           bal('2027-01-24 10:59:59.999999+00'), bal('2027-01-24 11:00:00+00')], [0, 100, 140, 40])
d = m.expected('alice', T('2027-01-01 00:00:00+00'))
check('balance_detail 2027-01-01', d[:4], (140, 0, 100, 0))
check('member_lots 2026-02-01', m.state_at('alice', T('2026-02-01 00:00:00+00')).text(), '{100 until 2027-01-24 11:00:00+00}')
m.op({'op': 'redeem', 'm': 'alice', 'pts': 30, 'ref': 'reward-7'}, NOW)
check('redeem draws FIFO', m.entries[-1].lots, {T('2027-01-24 11:00:00+00'): 30})
try:
    m.op({'op': 'redeem', 'm': 'alice', 'pts': 500, 'ref': 'reward-8'}, NOW)
    check('redeem 500 LY001', None, 'LY001')
except OpError as x:
    check('redeem 500 LY001 (110 available)', (x.sqlstate, m.state_at('alice', NOW).usable_points()), ('LY001', 110))
NOW2 = T('2026-11-23 18:17:03.721528+00')
m.op({'op': 'adjust', 'm': 'alice', 'delta': 10, 'ref': 'case-17'}, NOW2)
check('adjust +10 lot', m.entries[-1].lots, {T('2027-11-23 18:17:03.721528+00'): 10})
m.op({'op': 'adjust', 'm': 'alice', 'delta': -15, 'ref': 'case-18'}, NOW2 + 3000)
check('adjust -15 draws FIFO', m.entries[-1].lots, {T('2027-01-24 11:00:00+00'): 15})
check('alice lots after examples', m.state_at('alice', NOW2 + 3000).text(),
      '{55 until 2027-01-24 11:00:00+00, 40 until 2027-04-03 10:00:00+00, 10 until 2027-11-23 18:17:03.721528+00}')
m.op({'op': 'enroll', 'm': 'bob'}, NOW2 + 4000)
m.op({'op': 'transfer', 'a': 'alice', 'b': 'bob', 'pts': 20, 'ref': 'gift-1'}, NOW2 + 5000)
check('transfer legs', (m.entries[-2].member, m.entries[-2].points(), m.entries[-2].lots, m.entries[-1].member, m.entries[-1].lots),
      ('alice', -20, {T('2027-01-24 11:00:00+00'): 20}, 'bob', {T('2027-01-24 11:00:00+00'): 20}))

# --- The exact instant
s = parse_lots('{100 until 2027-01-01 00:00:00+00}')
check('exact instant', [s.available(T('2026-12-31 23:59:59.999999+00')), s.available(T('2027-01-01 00:00:00+00'))], [100, 0])

# --- lots functions example (api.md)
s = parse_lots('{100 until 2027-01-01 00:00:00+00, pending 20 from 2026-12-01 00:00:00+00 until infinity, debt 5}')
check('lots functions', (s.available(T('2026-12-01 00:00:00+00')), s.pending_points(T('2026-11-30 00:00:00+00')),
                         s.expiring(T('2026-12-01 00:00:00+00'), T('2027-01-01 00:00:00+00'))), (115, 20, 100))

# --- lots_spend FIFO (concepts.md)
s = parse_lots('{100 until 2027-03-01 00:00:00+00, 100 until 2027-01-01 00:00:00+00, 100 until infinity, '
               'pending 50 from 2026-12-10 00:00:00+00 until 2026-12-31 00:00:00+00}')
check('lots_spend drawn', Model.draw_fifo(s, 150), {T('2027-01-01 00:00:00+00'): 100, T('2027-03-01 00:00:00+00'): 50})

# --- Debt: lots_add('{debt 30}', 100, 'infinity') = {70 until infinity}
s = parse_lots('{debt 30}')
s.credit({INF: 100}, {})
s.pay_debt()
check('debt paid by credit', s.text(), '{70 until infinity}')

# --- Refunds and corrections example (points per unit 1, floor, never; rules replaced by
# an earn of 100 standing for the welcome bonus)
nev = Program('shop2', tz='Europe/Berlin')
m = Model(nev)
N = T('2026-11-23 10:00:00+00')
m.op({'op': 'insert', 'rows': [
    {'id': 1001, 'c': '7', 'amount': '42.90', 'at': ('abs', T('2026-11-18 10:00:00+00')), 'status': 'paid'},
    {'id': 1002, 'c': '7', 'amount': '60.00', 'at': ('abs', T('2026-11-18 11:00:00+00')), 'status': 'paid'}]}, N)
m.op({'op': 'earn', 'm': '7', 'pts': 100, 'at': ('abs', T('2026-11-18 10:00:00+00'))}, N + 1)
check('orders awarded', m.state_at('7', N + 1).text(), '{202 until infinity}')
m.op({'op': 'update', 'id': 1001, 'set': {'amount': '50.00'}}, N + 2)
check('1001 42->50 is +8', (m.entries[-1].kind, m.entries[-1].points(), m.entries[-1].eff), ('adjust', 8, T('2026-11-18 10:00:00+00')))
m.op({'op': 'redeem', 'm': '7', 'pts': 200, 'ref': 'reward-1'}, N + 3)
m.op({'op': 'update', 'id': 1002, 'set': {'status': 'refunded'}}, N + 4)
e = m.entries[-1]
check('refund 1002 reverse', (e.kind, e.points(), e.lots, e.debt), ('reverse', -60, {INF: 10}, 50))
check('balance -50', m.expected('7', N + 4)[0], -50)
m.op({'op': 'insert', 'rows': [{'id': 1005, 'c': '7', 'amount': '25', 'at': None, 'status': 'paid'}]}, N + 5)
check('later 25 points leave {debt 25}', m.state_at('7', N + 5).text(), '{debt 25}')

# --- Inactivity examples, expiry_interval 3 months (UTC)
ina = Program('ina', tz='UTC', expiry_policy='inactivity', expiry_interval=M(3))
t = T('2026-01-10 12:00:00+00')
m = Model(ina)
m.op({'op': 'enroll', 'm': 'a'}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 333, 'at': ('abs', t)}, t + 30 * DAY)
m.op({'op': 'earn', 'm': 'a', 'pts': 100, 'at': ('abs', t + 200 * DAY)}, t + 30 * DAY)
t3m = tz_add(t, M(3), 'UTC')
t200 = t + 200 * DAY
b = lambda x: m.expected('a', x)[0]
check('inactivity ex1', [b(t), b(t3m - 1), b(t3m), b(t200 - 1), m.expected('a', t200 - 1)[1], b(t200),
                         b(tz_add(t200, M(3), 'UTC') - 1), b(tz_add(t200, M(3), 'UTC'))],
      [333, 333, 0, 0, 0, 100, 100, 0])  # a future earn counts (also as pending) only from its at
m = Model(ina)
m.op({'op': 'enroll', 'm': 'a'}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 50}, t)
t2m = tz_add(t, M(2), 'UTC')
m.op({'op': 'redeem', 'm': 'a', 'pts': 10}, t2m)
t5m = tz_add(t2m, M(3), 'UTC')
check('inactivity ex2', [b(t3m), b(t5m - 1), b(t5m)], [40, 40, 0])
check('inactivity ex2 t5m is t+5 months', fmt_ts(t5m), fmt_ts(tz_add(t, M(5), 'UTC')))
m = Model(ina)
m.op({'op': 'enroll', 'm': 'a'}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 50}, t)
t1m = tz_add(t, M(1), 'UTC')
t4m = tz_add(t, M(4), 'UTC')
m.op({'op': 'earn', 'm': 'a', 'pts': 20, 'at': ('abs', t1m)}, t4m)
check('inactivity ex3', [b(t), b(t1m - 1), b(t1m), b(t3m - 1), b(t3m), b(t4m)], [50, 50, 70, 70, 70, 0])

# a late activity before the deadline's activity: its points expire at that deadline too
m = Model(ina)
m.op({'op': 'enroll', 'm': 'a'}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 50}, t)
tm1m = tz_add(t, M(-1), 'UTC')
m.op({'op': 'earn', 'm': 'a', 'pts': 20, 'at': ('abs', tm1m)}, t4m)
check('inactivity ex4', [b(tm1m - 1), b(tm1m), b(t - 1), b(t), b(t3m - 1), b(t3m)], [0, 20, 20, 70, 70, 0])

# order at the instant: points earned exactly at a deadline are not taken
m = Model(ina)
m.op({'op': 'enroll', 'm': 'a'}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 50}, t)
m.op({'op': 'earn', 'm': 'a', 'pts': 7, 'at': ('abs', t3m)}, t)
check('earned at the deadline stays', [b(t3m - 1), b(t3m), m.expected('a', t3m)[1]], [50, 7, 0])

print('%d failures' % fails)
sys.exit(1 if fails else 0)
