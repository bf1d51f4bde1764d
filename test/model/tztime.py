"""Instants, intervals and calendar arithmetic in a time zone, for the model.

Written from docs/concepts.md ("Time zones and DST", "Expiry policies") only, not
from src/tz.c.  Instants are integers: microseconds since 1970-01-01 00:00:00 UTC.
INF is 'infinity'.  Intervals are (months, days, microseconds), PostgreSQL's three
fields.
"""

import calendar
from datetime import datetime, timedelta, timezone
from decimal import Decimal, ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, localcontext
from functools import lru_cache
from zoneinfo import ZoneInfo

US = 1_000_000
DAY = 86400 * US
INF = 2 ** 62          # timestamptz 'infinity'
NINF = -(2 ** 62)      # '-infinity'
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NAIVE_EPOCH = datetime(1970, 1, 1)

# ---------------------------------------------------------------------------
# instants and intervals


def dt_to_us(dt):
    """aware datetime -> instant"""
    d = dt - EPOCH
    return (d.days * 86400 + d.seconds) * US + d.microseconds


def naive_to_us(naive):
    """naive datetime read as UTC -> instant"""
    d = naive - NAIVE_EPOCH
    return (d.days * 86400 + d.seconds) * US + d.microseconds


def us_to_naive_utc(us):
    return NAIVE_EPOCH + timedelta(microseconds=us)


def us_to_dt(us):
    return EPOCH + timedelta(microseconds=us)


def fmt_ts(us):
    """instant -> timestamptz literal in UTC, as loyalty.lots prints it"""
    if us >= INF:
        return 'infinity'
    if us <= NINF:
        return '-infinity'
    n = us_to_naive_utc(us)
    s = n.strftime('%Y-%m-%d %H:%M:%S')
    if n.microsecond:
        s += ('.%06d' % n.microsecond).rstrip('0')
    return s + '+00'


def parse_ts(s):
    """'2027-01-31 23:00:00+00' / '...12.5+00' / 'infinity' -> instant"""
    s = s.strip()
    if s == 'infinity':
        return INF
    if s == '-infinity':
        return NINF
    assert s.endswith('+00'), s
    s = s[:-3]
    if '.' in s:
        main, frac = s.split('.')
        us = int((frac + '000000')[:6])
    else:
        main, us = s, 0
    n = datetime.strptime(main, '%Y-%m-%d %H:%M:%S')
    return naive_to_us(n) + us


class Interval:
    """A PostgreSQL interval: months, days and a time part in microseconds."""

    __slots__ = ('months', 'days', 'micros')

    def __init__(self, months=0, days=0, micros=0):
        self.months, self.days, self.micros = months, days, micros

    def is_zero(self):
        return self.months == 0 and self.days == 0 and self.micros == 0

    def sign(self):
        """loyalty.interval_sign (concepts.md, Expiry policies)"""
        f = (self.months, self.days, self.micros)
        if any(x < 0 for x in f):
            return -1
        if all(x == 0 for x in f):
            return 0
        return 1

    def sql(self):
        """PostgreSQL input text for this interval"""
        parts = []
        if self.months:
            parts.append('%d mons' % self.months)
        if self.days:
            parts.append('%d days' % self.days)
        if self.micros or not parts:
            m = self.micros
            sign = '-' if m < 0 else ''
            m = abs(m)
            h, rest = divmod(m, 3600 * US)
            mi, rest = divmod(rest, 60 * US)
            se, us = divmod(rest, US)
            t = '%s%02d:%02d:%02d' % (sign, h, mi, se)
            if us:
                t += '.%06d' % us
            parts.append(t)
        return ' '.join(parts)

    def __repr__(self):
        return "Interval(%r)" % self.sql()

    def __eq__(self, o):
        return isinstance(o, Interval) and (self.months, self.days, self.micros) == (o.months, o.days, o.micros)

    def __hash__(self):
        return hash((self.months, self.days, self.micros))


def offset_interval_sql(us):
    """a signed offset in microseconds as an interval literal made of days and a time
    part; with TimeZone = 'UTC' a day is 24 hours, so now() + this is exact."""
    sign = -1 if us < 0 else 1
    a = abs(us)
    days, rest = divmod(a, DAY)
    h, rest = divmod(rest, 3600 * US)
    mi, rest = divmod(rest, 60 * US)
    se, u = divmod(rest, US)
    s = '-' if sign < 0 else ''
    t = '%s%d days %s%02d:%02d:%02d' % (s, days, s, h, mi, se)
    if u:
        t += '.%06d' % u
    return t


# ---------------------------------------------------------------------------
# time zones (concepts.md "Time zones and DST")


@lru_cache(maxsize=None)
def zone(name):
    return ZoneInfo(name)


def utc_offset_us(us, tz):
    """offset of the zone's wall clock from UTC at an instant"""
    d = us_to_dt(us).astimezone(zone(tz))
    o = d.utcoffset()
    return (o.days * 86400 + o.seconds) * US + o.microseconds


def to_local(us, tz):
    """instant -> naive wall-clock datetime in tz"""
    return us_to_naive_utc(us + utc_offset_us(us, tz))


def local_to_us(naive, tz):
    """Wall-clock time in tz -> instant, resolved as concepts.md says PostgreSQL does:
    a time the DST change skips takes the offset before the change; a time it repeats
    takes the offset after the change."""
    z = zone(tz)
    o0 = naive.replace(tzinfo=z, fold=0).utcoffset()   # zoneinfo: offset before the transition
    o1 = naive.replace(tzinfo=z, fold=1).utcoffset()   # zoneinfo: offset after the transition
    if o0 == o1:
        off = o0
    elif o0 < o1:           # clocks jump forward: the time is skipped -> offset before
        off = o0
    else:                   # clocks go back: the time is repeated -> offset after
        off = o1
    off_us = (off.days * 86400 + off.seconds) * US + off.microseconds
    # check that the result really is that wall-clock time, or (skipped) the shifted one
    return naive_to_us(naive) - off_us


def add_months_local(naive, months):
    """months on the wall clock; a day that does not exist becomes the month's last day"""
    if months == 0:
        return naive
    y, m = divmod(naive.month - 1 + months, 12)
    y += naive.year
    m += 1
    d = min(naive.day, calendar.monthrange(y, m)[1])
    return naive.replace(year=y, month=m, day=d)


def tz_add(ts, span, tz):
    """loyalty.tz_add: months, then days on the local wall clock of tz, the wall-clock
    time kept and converted back, then the time part added as elapsed time.  Infinite
    timestamps are returned unchanged."""
    if ts >= INF or ts <= NINF:
        return ts
    if span.months == 0 and span.days == 0:
        # nothing moves the date: no round trip through the wall clock (otherwise an
        # instant in the first pass of a repeated hour would move to the second; the
        # docs: "r = at without a pending interval", and 24 hours is elapsed time)
        return ts + span.micros
    local = to_local(ts, tz)
    local = add_months_local(local, span.months)
    local = local + timedelta(days=span.days)
    return local_to_us(local, tz) + span.micros


PERIOD_MONTHS = {'month': 1, 'quarter': 3, 'year': 12}


def period_end(ts, period, extra, tz):
    """loyalty.period_end: tz_add(date_trunc(period, ts, tz), (extra + 1) periods, tz)"""
    if ts >= INF or ts <= NINF:
        return ts
    local = to_local(ts, tz)
    if period == 'month':
        start = datetime(local.year, local.month, 1)
    elif period == 'quarter':
        start = datetime(local.year, (local.month - 1) // 3 * 3 + 1, 1)
    elif period == 'year':
        start = datetime(local.year, 1, 1)
    else:
        raise ValueError(period)
    start_us = local_to_us(start, tz)
    return tz_add(start_us, Interval(months=(extra + 1) * PERIOD_MONTHS[period]), tz)
