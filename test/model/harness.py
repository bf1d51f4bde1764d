"""Runs scenarios against a real server and compares every answer with the model.

Each operation runs in its own transaction; the model is given that transaction's
now().  After every operation the harness compares, for every enrolled member, at
15-25 instants: loyalty.balance, loyalty.balance_detail (available, pending,
expiring_30d, debt, and the lots usable/pending at the instant), the stored
members.balance evaluated with lots_available/lots_pending/lots_debt at instants at or
after now() and the member's latest entry, members.last_activity_at, the set of
enrolled members, and loyalty.verify() (no rows for the program).  A run_maintenance
must not change any balance (compared inside its transaction, before and after).
"""

import random
import time

import psycopg2
import psycopg2.extensions

from model import (DAY, INF, NINF, US, Ambiguous, Interval, Model, OpError, Program, State, fmt_ts,
                   offset_interval_sql, parse_lots, parse_ts, period_end, tz_add)
from gen import transitions

FAR = 100 * 365 * DAY


def q(s):
    """SQL string literal"""
    if s is None:
        return 'NULL'
    return "'" + str(s).replace("'", "''") + "'"


class Mismatch(dict):
    def sig(self):
        return self['kind'].split('.')[0] if self['kind'].startswith('function') else self['kind']

    def line(self):
        t = self.get('t')
        ts = ' at %s' % fmt_ts(t) if t is not None else ''
        who = ' %s' % self['member'] if self.get('member') else ''
        return 'op %s %s%s%s: model %s, server %s%s' % (self.get('op'), self['kind'], who, ts,
                                                       self.get('expected'), self.get('actual'),
                                                       (' [%s]' % self['tag']) if self.get('tag') else '')


class Result:
    def __init__(self):
        self.ops = 0
        self.checks = 0
        self.mismatches = []
        self.ambiguous = None
        self.model = None
        self.nows = []
        self.failed_op = None
        self.skipped_stored = 0
        self.ignored = 0


class Runner:
    def __init__(self, dbname, verbose=False, k_instants=20, log=print, ignore_tagged=False):
        self.ignore_tagged = ignore_tagged
        self.conn = psycopg2.connect(dbname=dbname)
        self.conn.autocommit = False
        self.cur = self.conn.cursor()
        self.cur.execute("SET TimeZone = 'UTC'")
        self.cur.execute("SET lock_timeout = '60s'")
        self.conn.commit()
        self.verbose = verbose
        self.k_fixed = k_instants
        self.k = k_instants or 20
        self.log = log
        self.counter = 0
        self.cur.execute("SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'loyalty.members'::regclass "
                         "AND attname = 'settled_at' AND NOT attisdropped)")
        self.has_settled = self.cur.fetchone()[0]
        self.cur.execute("SELECT coalesce(member_key, '') || problem FROM loyalty.verify() WHERE program_code IS NULL")
        self.baseline_null = {r[0] for r in self.cur.fetchall()}
        self.conn.commit()

    def close(self):
        try:
            self.conn.rollback()
            self.conn.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ SQL

    def now(self):
        self.cur.execute('SELECT now()::text')
        return parse_ts(self.cur.fetchone()[0])

    @staticmethod
    def time_sql(spec, value, now, style):
        """an instant in SQL: a literal when executing; in a reproduction now()-relative
        ('rel' and 'evt' times) or absolute (DST-targeted 'abs' times)"""
        if style == 'exec':
            return "%s::timestamptz" % q(fmt_ts(value))
        if spec is not None and spec[0] == 'abs':
            return "timestamptz %s" % q(fmt_ts(value))
        if value == now:
            return 'now()'
        return "now() + interval %s" % q(offset_interval_sql(value - now))

    def op_sql(self, op, model, now, code, schema, style='exec', resolved=None):
        """SQL text of an operation.  `resolved` gives the instants the model used."""
        o = op['op']
        R = resolved or {}
        T = lambda key, spec: self.time_sql(spec, R[key], now, style)
        ret = "SELECT kind, points, lots::text, effective_at::text, recorded_at::text FROM " if style == 'exec' else None
        if o == 'enroll':
            return "SELECT loyalty.enroll(%s, %s)" % (q(op['m']), q(code))
        if o == 'earn':
            a = ["%s" % q(op['m']), "%d" % op['pts']]
            if op.get('ref') is not None:
                a.append("reference => %s" % q(op['ref']))
            if op.get('at') is not None:
                a.append("at => %s" % T('at', op['at']))
            a.append("program => %s" % q(code))
            return (ret or "SELECT ") + "loyalty.earn(%s)" % ', '.join(a)
        if o == 'redeem':
            a = [q(op['m']), '%d' % op['pts']]
            if op.get('ref') is not None:
                a.append("reference => %s" % q(op['ref']))
            a.append("program => %s" % q(code))
            return (ret or "SELECT ") + "loyalty.redeem(%s)" % ', '.join(a)
        if o == 'adjust':
            a = [q(op['m']), '%d' % op['delta'], q('model test')]
            if op.get('ref') is not None:
                a.append("reference => %s" % q(op['ref']))
            a.append("program => %s" % q(code))
            return (ret or "SELECT ") + "loyalty.adjust(%s)" % ', '.join(a)
        if o == 'transfer':
            a = [q(op['a']), q(op['b']), '%d' % op['pts']]
            if op.get('ref') is not None:
                a.append("reference => %s" % q(op['ref']))
            a.append("program => %s" % q(code))
            return (ret or "SELECT * FROM ") + "loyalty.transfer(%s)" % ', '.join(a)
        if o == 'insert':
            vals = []
            for i, row in enumerate(op['rows']):
                at = 'NULL' if row.get('at') is None else T(('row', i), row['at'])
                vals.append("(%d, %s, %s, %s, %s)" % (row['id'], q(row['c']),
                                                      'NULL' if row['amount'] is None else row['amount'],
                                                      at, q(row['status'])))
            return "INSERT INTO %s.orders (id, customer, amount, at, status) VALUES %s" % (schema, ', '.join(vals))
        if o == 'update':
            (col, v), = op['set'].items()
            col = {'c': 'customer'}.get(col, col)
            val = v if col == 'amount' and v is not None else q(v)
            return "UPDATE %s.orders SET %s = %s WHERE id = %d" % (schema, col, val, op['id'])
        if o == 'delete':
            return "DELETE FROM %s.orders WHERE id = %d" % (schema, op['id'])
        if o == 'maint':
            return "SELECT * FROM loyalty.run_maintenance(as_of => %s, workers => 0)" % T('as_of', op.get('as_of'))
        raise ValueError(o)

    @staticmethod
    def resolve_op(op, model, now):
        """the instants the model gives the operation's times (before it runs)"""
        R = {}
        if op['op'] == 'earn':
            R['at'] = model.resolve(op.get('at'), now)
        elif op['op'] == 'insert':
            for i, row in enumerate(op['rows']):
                if row.get('at') is not None:
                    R[('row', i)] = model.resolve(row['at'], now)
        elif op['op'] == 'maint':
            R['as_of'] = model.resolve(op.get('as_of'), now, cap=now)
        return R

    @staticmethod
    def fix_op(op, R):
        """the operation with its symbolic ('evt') times replaced by the model's instants,
        as 'fixed' times (now()-relative in a reproduction), so that the model sees
        exactly what the server got"""
        o = dict(op)
        if op['op'] == 'earn' and op.get('at') is not None and op['at'][0] == 'evt':
            o['at'] = ('fixed', R['at'])
        if op['op'] == 'insert':
            rows = []
            for i, row in enumerate(op['rows']):
                row = dict(row)
                if row.get('at') is not None and row['at'][0] in ('evt', 'orig'):
                    row['at'] = ('fixed', R[('row', i)])
                rows.append(row)
            o['rows'] = rows
        if op['op'] == 'maint':
            o['as_of'] = ('fixed', R['as_of'])
        return o

    # ------------------------------------------------------------------ a run

    def setup(self, scen, prog):
        cols, vals = prog.sql_insert()
        self.cur.execute("INSERT INTO loyalty.programs (%s) VALUES (%s) RETURNING id" % (
            ', '.join(cols), ', '.join(['%s'] * len(vals))), vals)
        pid = self.cur.fetchone()[0]
        schema = 'model_%s' % prog.code.replace('-', '_').replace('.', '_')
        if any(o['op'] in ('insert', 'update', 'delete') for o in scen['ops']):
            for s in self.setup_table_sql(schema, prog.code):
                self.cur.execute(s)
        return pid, schema

    @staticmethod
    def setup_table_sql(schema, code):
        return ["CREATE SCHEMA %s" % schema,
                "CREATE TABLE %s.orders (id bigint PRIMARY KEY, customer text, amount numeric, "
                "at timestamptz, status text)" % schema,
                "SELECT loyalty.track_purchases('%s.orders', member_column => 'customer', "
                "amount_column => 'amount', time_column => 'at', status_column => 'status', "
                "program => %s)" % (schema, q(code))]

    def run(self, scen, mode='multi', kinds=None, upto=None, seed_salt=0, stop_on_mismatch=True,
            functions=False):
        """Run a scenario.  mode 'multi': each operation in its own transaction; 'single':
        everything in one transaction that is rolled back at the end.  kinds: the check
        kinds to run (None: all)."""
        self.counter += 1
        code = 's%d_%d_%d' % (scen['seed'], self.counter, int(time.time() * 1000) % 100000)
        prog = Program(code, **scen['program'])
        model = Model(prog)
        res = Result()
        res.model = model
        res.code = code
        rng = random.Random(scen['seed'] * 7919 + seed_salt)
        # instants per member and operation: 25 with 2 members down to 15 with 5, so that
        # an operation costs about the same whatever the number of members
        self.k = self.k_fixed or max(15, min(25, 50 // max(1, len(scen['members'])) + 5))
        ops = scen['ops'] if upto is None else scen['ops'][:upto]
        single = mode == 'single'
        res.executed = []
        try:
            if single:
                now = self.now()
            pid, schema = self.setup(scen, prog)
            res.schema = schema
            if not single:
                self.conn.commit()
            res.pid = pid
            self.trans = transitions(prog.tz, self.now() - 450 * DAY, self.now() + 450 * DAY)
            if functions:
                self.check_functions(prog, pid, res, rng)
            for k, op in enumerate(ops):
                if not single:
                    now = self.now()
                res.nows.append(now)
                R = self.resolve_op(op, model, now)
                fop = self.fix_op(op, R)
                before = {m: model.event_instants(m) for m in model.enrolled}
                exp_err = None
                note = ''
                try:
                    r = model.op(fop, now)
                    note = r or ''
                except OpError as e:
                    exp_err = e.sqlstate
                    note = e.msg
                except Ambiguous as e:
                    res.ambiguous = (k, str(e))
                    if not single:
                        self.conn.rollback()
                    break
                res.executed.append((fop, R, now, exp_err, note))
                sql = self.op_sql(fop, model, now, code, schema, 'exec', R)
                if single:
                    self.cur.execute('SAVEPOINT op')
                maint_pre = None
                if op['op'] == 'maint' and (kinds is None or 'maintenance_changed' in kinds):
                    maint_pre = self.maint_probe(model, code, now, rng)
                act_err = None
                msg = ''
                rows = None
                try:
                    self.cur.execute(sql)
                    if self.cur.description:
                        rows = self.cur.fetchall()
                except psycopg2.Error as e:
                    act_err = e.pgcode or 'XX'
                    msg = (e.pgerror or str(e)).strip().splitlines()[0]
                    if single:
                        self.cur.execute('ROLLBACK TO SAVEPOINT op')
                    else:
                        self.conn.rollback()
                if act_err is None and maint_pre is not None:
                    self.maint_compare(maint_pre, code, res, k)
                if act_err is None:
                    if single:
                        self.cur.execute('RELEASE SAVEPOINT op')
                    else:
                        self.conn.commit()
                res.ops += 1
                res.checks += 1
                if self.verbose:
                    self.log('  op %d %s -> %s%s' % (k, self.op_sql(fop, model, now, code, schema, 'repro', R),
                                                     exp_err or 'ok', (' (%s)' % note) if note else ''))
                if exp_err != act_err:
                    res.mismatches.append(Mismatch(op=k, kind='error', expected=exp_err or 'success',
                                                   actual=(act_err + ' ' + msg) if act_err else 'success',
                                                   note=note))
                    res.failed_op = k
                    break
                if op['op'] in ('earn', 'redeem', 'adjust', 'transfer') and (kinds is None or 'entry' in kinds):
                    self.check_returned(model, rows, res, k)
                    if res.mismatches and stop_on_mismatch:
                        res.failed_op = k
                        break
                new = {m: model.event_instants(m) - before.get(m, set()) for m in model.enrolled}
                self.check_all(model, pid, code, now, new, res, k, rng, kinds)
                if not single:
                    self.conn.commit()
                if self.ignore_tagged:
                    res.ignored += sum(1 for x in res.mismatches if x.get('tag'))
                    res.mismatches = [x for x in res.mismatches if not x.get('tag')]
                if res.mismatches and stop_on_mismatch:
                    res.failed_op = k
                    break
        finally:
            self.conn.rollback()
        return res

    # ------------------------------------------------------------------ checks

    def instants(self, model, m, now, new, rng, k):
        ev = sorted(x for x in model.event_instants(m) if x < INF)
        chosen = {now, now + FAR}
        recent = set()
        for x in new:
            if x < INF:
                recent |= {x - 1, x, x + 1}
        pool = set()
        for x in ev + [now]:
            pool |= {x - 1, x, x + 1}
        lo = min(ev + [now]) - 10 * DAY
        hi = max(ev + [now]) + 10 * DAY
        for t, _, _ in self.trans:
            if lo <= t <= hi:
                pool |= {t - 1, t}
        recent = sorted(recent - chosen)
        rng.shuffle(recent)
        chosen |= set(recent[:k // 2])
        rest = sorted(pool - chosen)
        rng.shuffle(rest)
        chosen |= set(rest[:max(0, k - 2 - len(chosen))])
        while len(chosen) < k:
            chosen.add(rng.randint(lo, hi))
        return sorted(chosen)

    def query_reads(self, code, items):
        """balance and balance_detail for [(member, t)]; per item: tuple or exception text"""
        out = [None] * len(items)
        if not items:
            return out
        ms = [m for m, _ in items]
        ts = [fmt_ts(t) for _, t in items]
        sql = ("SELECT u.i, loyalty.balance(u.m, u.t, %s), d.available, d.pending, d.expiring_30d, d.debt, d.lots::text "
               "FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS u(m, t, i) "
               "CROSS JOIN LATERAL loyalty.balance_detail(u.m, u.t, %s) d ORDER BY u.i")
        self.cur.execute('SAVEPOINT rd')
        try:
            self.cur.execute(sql, (code, ms, ts, code))
            for row in self.cur.fetchall():
                out[row[0] - 1] = row[1:]
            self.cur.execute('RELEASE SAVEPOINT rd')
            return out
        except psycopg2.Error:
            self.cur.execute('ROLLBACK TO SAVEPOINT rd')
        for i, (m, t) in enumerate(items):
            self.cur.execute('SAVEPOINT rd')
            try:
                self.cur.execute("SELECT loyalty.balance(%s, %s::timestamptz, %s), d.available, d.pending, "
                                 "d.expiring_30d, d.debt, d.lots::text FROM loyalty.balance_detail(%s, %s::timestamptz, %s) d",
                                 (m, fmt_ts(t), code, m, fmt_ts(t), code))
                out[i] = self.cur.fetchone()
                self.cur.execute('RELEASE SAVEPOINT rd')
            except psycopg2.Error as e:
                out[i] = '%s %s' % (e.pgcode, (e.pgerror or '').strip().splitlines()[0] if e.pgerror else e)
                self.cur.execute('ROLLBACK TO SAVEPOINT rd')
        return out

    def check_all(self, model, pid, code, now, new, res, k, rng, kinds):
        want = (lambda kind: True) if kinds is None else (lambda kind: kind in kinds)
        mems = list(model.enrolled)
        # members: enrolment, stored lots, last activity
        self.cur.execute("SELECT member_key, balance::text, last_activity_at::text, %s FROM loyalty.members "
                         "WHERE program_id = %%s" % ('settled_at::text' if self.has_settled else 'NULL::text'), (pid,))
        srv = {r[0]: (r[1], r[2], r[3]) for r in self.cur.fetchall()}
        if self.has_settled and model.p.expiry_policy == 'inactivity' and want('settled_at'):
            # members.settled_at: now() of the member's latest write, or run_maintenance's as_of
            for m in mems:
                if m not in srv:
                    continue
                lo, hi = model.written_lo.get(m, NINF), model.settled_hi.get(m, NINF)
                got = parse_ts(srv[m][2]) if srv[m][2] else None
                res.checks += 1
                ok = (got is None and lo == NINF) or (got is not None and lo <= got <= hi)
                if not ok:
                    res.mismatches.append(Mismatch(op=k, kind='settled_at', member=m,
                                                   expected=fmt_ts(lo) if lo == hi else '%s .. %s' % (
                                                       fmt_ts(lo) if lo > NINF else 'NULL', fmt_ts(hi) if hi > NINF else 'NULL'),
                                                   actual=srv[m][2]))
        if want('enrolled'):
            res.checks += 1
            if set(srv) != set(mems):
                res.mismatches.append(Mismatch(op=k, kind='enrolled', expected=sorted(mems), actual=sorted(srv)))
        if want('last_activity'):
            for m in mems:
                if m not in srv:
                    continue
                res.checks += 1
                la = model.last_activity(m)
                got = parse_ts(srv[m][1]) if srv[m][1] else None
                if la != got:
                    res.mismatches.append(Mismatch(op=k, kind='last_activity', member=m,
                                                   expected=fmt_ts(la) if la is not None else None,
                                                   actual=fmt_ts(got) if got is not None else None))
        # reads as of instants
        read_kinds = ('balance', 'detail.available', 'detail.pending', 'detail.expiring_30d', 'detail.debt',
                      'lots', 'read_error')
        if any(want(x) for x in read_kinds):
            items = []
            for m in mems:
                if m in srv:
                    for t in self.instants(model, m, now, new.get(m, ()), rng, self.k):
                        items.append((m, t))
            got = self.query_reads(code, items)
            for (m, t), g in zip(items, got):
                av, pe, ex, de, st = model.expected(m, t)
                if isinstance(g, str) or g is None:
                    res.checks += 1
                    res.mismatches.append(Mismatch(op=k, kind='read_error', member=m, t=t,
                                                   expected=av, actual=g))
                    continue
                bal, sav, spe, sex, sde, slots = g
                for kind, e, a in (('balance', av, bal), ('detail.available', av, sav),
                                   ('detail.pending', pe, spe), ('detail.expiring_30d', ex, sex),
                                   ('detail.debt', de, sde)):
                    if want(kind):
                        res.checks += 1
                        if e != a:
                            res.mismatches.append(Mismatch(op=k, kind=kind, member=m, t=t, expected=e, actual=a,
                                                           model_lots=st.text(), server_lots=slots))
                if want('lots') and st.debt == 0 and sde == 0:
                    res.checks += 1
                    sl = parse_lots(slots)
                    if sl.normalized(t) != st.normalized(t):
                        res.mismatches.append(Mismatch(op=k, kind='lots', member=m, t=t,
                                                       expected=norm_text(st.normalized(t)),
                                                       actual=norm_text(sl.normalized(t)),
                                                       model_lots=st.text(), server_lots=slots))
        # the stored lots at instants at or after now() and the member's latest entry
        if any(want(x) for x in ('stored.available', 'stored.pending', 'stored.debt', 'stored.lots')):
            for m in mems:
                if m not in srv:
                    continue
                ss = parse_ts(srv[m][2]) if srv[m][2] else None
                t0, tls, tmax = model.stored_expectations(m, now, ss)
                if tls is None:
                    res.skipped_stored += 1
                    continue
                sl = parse_lots(srv[m][0])
                ev = sorted(x for x in model.event_instants(m) if t0 < x < INF)
                ts = {t0, t0 + 1, now + FAR}
                for x in rng.sample(ev, min(len(ev), 3)):
                    ts |= {x - 1, x}
                for t in sorted(ts):
                    if tmax is not None and t >= tmax:
                        continue
                    cands = [tl.at(t) for tl in tls]
                    got = (sl.available(t), sl.pending_points(t), sl.debt)
                    for i, kind in enumerate(('stored.available', 'stored.pending', 'stored.debt')):
                        if want(kind):
                            res.checks += 1
                            exp = [(c.available(t), c.pending_points(t), c.debt)[i] for c in cands]
                            if got[i] not in exp:
                                res.mismatches.append(Mismatch(op=k, kind=kind, member=m, t=t,
                                                               expected=exp[0] if len(set(exp)) == 1 else ' or '.join(map(str, exp)),
                                                               actual=got[i], model_lots=cands[0].text(),
                                                               server_lots=srv[m][0]))
                    if want('stored.lots') and sl.debt == 0 and all(c.debt == 0 for c in cands):
                        res.checks += 1
                        if not any(sl.normalized(t) == c.normalized(t) for c in cands):
                            res.mismatches.append(Mismatch(op=k, kind='stored.lots', member=m, t=t,
                                                           expected=norm_text(cands[0].normalized(t)),
                                                           actual=norm_text(sl.normalized(t)),
                                                           model_lots=cands[0].text(), server_lots=srv[m][0]))
        # tag the read mismatches that a release after now() paying debt explains
        for x in res.mismatches:
            if x.get('op') == k and x.get('member') in model.enrolled and x.get('t') is not None and 'tag' not in x:
                lw = min(model.settled_lo.get(x['member'], now), now)
                rel = [r for r in model.timeline(x['member']).debt_paid_by_release_at if lw < r <= x['t']]
                if rel:
                    x['tag'] = 'debt paid by a release after now()'
        if want('verify'):
            res.checks += 1
            self.cur.execute("SELECT coalesce(member_key, ''), problem, program_code FROM loyalty.verify() "
                             "WHERE program_code = %s OR program_code IS NULL", (code,))
            rows = [r for r in self.cur.fetchall() if r[2] is not None or (r[0] + r[1]) not in self.baseline_null]
            if rows:
                res.mismatches.append(Mismatch(op=k, kind='verify', expected='no rows',
                                               actual='; '.join('%s: %s' % (r[0], r[1]) for r in rows)))

    def check_returned(self, model, rows, res, k):
        """the ledger rows earn, redeem, adjust and transfer return: the entries written
        (kind, points, exactly the lots added or drawn, effective_at, recorded_at), or
        for a repeated reference the first ones"""
        exp = model.returned or []
        got = rows or []
        res.checks += 1
        if len(exp) != len(got):
            res.mismatches.append(Mismatch(op=k, kind='entry', expected='%d rows' % len(exp), actual='%d rows' % len(got)))
            return
        for e, g in zip(exp, got):
            kind, points, lots, eff, rec = g
            sl = parse_lots(lots)
            want = (e.kind, e.points(), e.lots, e.pending, e.debt, e.eff, e.rec)
            have = (kind, points, sl.lots, sl.pending, sl.debt, parse_ts(eff), parse_ts(rec))
            res.checks += 1
            if want != have:
                st = State()
                st.lots, st.pending, st.debt = e.lots, e.pending, e.debt
                res.mismatches.append(Mismatch(op=k, kind='entry', member=e.member,
                                               expected='%s %+d %s eff %s rec %s' % (e.kind, e.points(), st.text(), fmt_ts(e.eff), fmt_ts(e.rec)),
                                               actual='%s %+d %s eff %s rec %s' % (kind, points, lots, eff, rec)))

    def maint_probe(self, model, code, now, rng):
        items = []
        for m in model.enrolled:
            for t in self.instants(model, m, now, (), rng, 8):
                items.append((m, t))
        return items, self.query_reads(code, items)

    def maint_compare(self, pre, code, res, k):
        items, before = pre
        after = self.query_reads(code, items)
        def norm(x, t):
            # the balance numbers and the lots usable/pending at t; the raw value may
            # change (expiries written), what it evaluates to may not
            if isinstance(x, str) or x is None:
                return x
            st = parse_lots(x[5])
            return tuple(x[:5]) + ((norm_text(st.normalized(t)) if st.debt == 0 else 'debt'),)

        for (m, t), b, a in zip(items, before, after):
            res.checks += 1
            if norm(b, t) != norm(a, t):
                res.mismatches.append(Mismatch(op=k, kind='maintenance_changed', member=m, t=t,
                                               expected='unchanged %s' % (b,), actual='%s' % (a,)))

    def check_functions(self, prog, pid, res, rng):
        """tz_add, period_end, expiry_for and points_for against the model's own"""
        now = self.now()
        cases = []
        spans = [Interval(rng.randint(0, 14), rng.randint(0, 40), rng.randint(0, 50) * 3600 * US + rng.randint(0, 3) * 1800 * US)
                 for _ in range(10)] + [Interval(0, 1, 0), Interval(1, 0, 0), Interval(0, 0, 24 * 3600 * US),
                                        prog.pending_interval] + ([prog.expiry_interval] if prog.expiry_interval else [])
        pts = [now + rng.randint(-400, 400) * DAY + rng.randint(0, 86399) * US for _ in range(8)]
        for t, _, _ in self.trans:
            pts += [t - 1, t, t + 1, t - 3600 * US, t - DAY, t - DAY + 1800 * US]
        for t in rng.sample(pts, min(len(pts), 25)):
            cases.append(('tz_add', t, rng.choice(spans)))
        for t in rng.sample(pts, min(len(pts), 8)):
            cases.append(('period_end', t, rng.choice(['month', 'quarter', 'year']), rng.randint(0, 2)))
        for t in rng.sample(pts, min(len(pts), 6)):
            cases.append(('expiry_for', t))
        amounts = ['0.5', '1.5', '2.5', '-3.5', '129.90', '0.99', '10', '3.333', '7.77']
        for a in amounts:
            cases.append(('points_for', a))
        for c in cases:
            if c[0] == 'tz_add':
                sql = "SELECT loyalty.tz_add(%s::timestamptz, %s::interval, %s)::text" % (q(fmt_ts(c[1])), q(c[2].sql()), q(prog.tz))
                exp = fmt_ts(tz_add(c[1], c[2], prog.tz))
            elif c[0] == 'period_end':
                sql = "SELECT loyalty.period_end(%s::timestamptz, %s, %d, %s)::text" % (q(fmt_ts(c[1])), q(c[2]), c[3], q(prog.tz))
                exp = fmt_ts(period_end(c[1], c[2], c[3], prog.tz))
            elif c[0] == 'expiry_for':
                sql = "SELECT loyalty.expiry_for(p, %s::timestamptz)::text FROM loyalty.programs p WHERE code = %s" % (q(fmt_ts(c[1])), q(prog.code))
                exp = fmt_ts(prog.expiry_for(c[1]))
            else:
                sql = "SELECT loyalty.points_for(%s, %s)::text" % (c[1], q(prog.code))
                exp = str(prog.points_for(c[1]))
            self.cur.execute(sql)
            got = self.cur.fetchone()[0]
            if got is not None and c[0] != 'points_for':
                got = fmt_ts(parse_ts(got))
            res.checks += 1
            if got != exp:
                res.mismatches.append(Mismatch(op=-1, kind='function.' + c[0], expected=exp, actual=got, sql=sql))
        self.conn.commit()


def norm_text(n):
    lots, pend = n
    s = State()
    s.lots, s.pending = lots, pend
    return s.text()


# ---------------------------------------------------------------------- shrinking


def shrink_list(items, test, log=None):
    """delta debugging: remove chunks while the test still fails"""
    size = max(1, len(items) // 2)
    while size >= 1:
        i = 0
        progressed = False
        while i < len(items):
            cand = items[:i] + items[i + size:]
            if cand and test(cand):
                items = cand
                progressed = True
                if log:
                    log('    shrunk to %d' % len(items))
            else:
                i += size
        if not progressed:
            if size == 1:
                break
            size //= 2
    return items


def scenario_members(ops):
    out = set()
    for o in ops:
        for key in ('m', 'a', 'b'):
            if key in o:
                out.add(o[key])
        for row in o.get('rows', ()):
            out.add(row['c'])
        if o['op'] == 'update' and 'c' in o['set']:
            out.add(o['set']['c'])
    return out


def drop_member(ops, m):
    out = []
    for o in ops:
        if m in (o.get('m'), o.get('a'), o.get('b')):
            continue
        if o['op'] == 'update' and o['set'].get('c') == m:
            continue
        if o.get('at') and o['at'][0] == 'evt' and o['at'][1] == m:
            continue
        if o['op'] == 'maint' and o.get('as_of') and o['as_of'][0] == 'evt' and o['as_of'][1] == m:
            continue
        if o['op'] == 'insert':
            rows = [r for r in o['rows'] if r['c'] != m]
            if not rows:
                continue
            o = dict(o, rows=rows)
        out.append(o)
    return out


def shrink(runner, scen, first, log=print):
    """Shrink a failing scenario to a small one that fails with the same kind of
    mismatch; prefer the single-transaction mode (one now() for everything)."""
    target = {first.sig()} if first.sig() != 'error' else {'error'}
    kinds = None if 'error' in target else set(target) | {'read_error'}
    runs = [0]

    def fails(ops, mode):
        runs[0] += 1
        s = dict(scen, ops=ops)
        r = runner.run(s, mode=mode, kinds=kinds)
        if r.ambiguous:
            return False
        return any(x.sig() in target for x in r.mismatches)

    ops = list(scen['ops'][:first['op'] + 1]) if first.get('op', -1) >= 0 else list(scen['ops'])
    mode = 'single' if fails(ops, 'single') else 'multi'
    if mode == 'multi' and not fails(ops, 'multi'):
        return None
    log('  shrinking in %s-transaction mode from %d operations' % (mode, len(ops)))
    test = lambda cand: fails(cand, mode)
    ops = shrink_list(ops, test)
    for m in sorted(scenario_members(ops)):
        cand = drop_member(ops, m)
        if cand and len(cand) < len(ops) and test(cand):
            ops = cand
    # rows of multi-row inserts
    for i in range(len(ops)):
        o = ops[i]
        if o['op'] == 'insert' and len(o['rows']) > 1:
            for j in range(len(o['rows']) - 1, -1, -1):
                if len(ops[i]['rows']) <= 1:
                    break
                rows = ops[i]['rows'][:j] + ops[i]['rows'][j + 1:]
                cand = ops[:i] + [dict(ops[i], rows=rows)] + ops[i + 1:]
                if test(cand):
                    ops = cand
    # one more pass of single removals
    ops = shrink_list(ops, test)
    # times written now()-relative where the failure does not need them absolute
    for i in range(len(ops)):
        o = ops[i]
        if o['op'] == 'earn' and o.get('at') and o['at'][0] == 'abs':
            cand = ops[:i] + [dict(o, at=('rel', o['at'][1] - runner.now()))] + ops[i + 1:]
            runner.conn.rollback()
            if test(cand):
                ops = cand
    final = runner.run(dict(scen, ops=ops), mode=mode)
    ms = [x for x in final.mismatches if x.sig() in target] or final.mismatches
    log('  shrunk to %d operations in %d runs' % (len(ops), runs[0]))
    return {'scenario': dict(scen, ops=ops), 'mode': mode, 'result': final, 'mismatch': ms[0] if ms else None,
            'all': ms}


# ---------------------------------------------------------------------- reproduction


def repro_sql(runner, shrunk, original_len):
    scen = shrunk['scenario']
    res = shrunk['result']
    mode = shrunk['mode']
    mm = shrunk['mismatch']
    code = 'model_repro'
    schema = 'model_repro'
    single = mode == 'single'
    prog = Program(code, **scen['program'])
    model = Model(prog)
    L = []
    L.append('-- loyalty model test: reproduction of seed %d (shrunk from %d to %d operations)' % (
        scen['seed'], original_len, len(scen['ops'])))
    L.append('-- program: %s' % prog.describe())
    if single:
        L.append('-- All statements run in ONE transaction (BEGIN ... ROLLBACK), so now() is the same')
        L.append('-- in all of them and nothing is left behind.  Times are written now()-relative;')
        L.append("-- timestamptz literals are instants chosen at a DST transition of the program's zone.")
        L.append('-- psql -X -d <a database where CREATE EXTENSION loyalty works> -f this_file')
    else:
        L.append('-- This one needs several now()s: each statement runs in its own transaction (psql')
        L.append('-- autocommit), as in the test, with times relative to its own now().  Run it in a')
        L.append('-- scratch database: it leaves its program, members and schema behind.')
    L.append('')
    if single:
        L.append('BEGIN;')
    L.append('CREATE EXTENSION IF NOT EXISTS loyalty;')
    L.append("SET %sTimeZone = 'UTC';" % ('LOCAL ' if single else ''))
    cols, vals = prog.sql_insert()
    L.append('INSERT INTO loyalty.programs (%s)\n  VALUES (%s);' % (', '.join(cols), ', '.join(
        'NULL' if v is None else (str(v) if isinstance(v, int) else q(v)) for v in vals)))
    if any(o['op'] in ('insert', 'update', 'delete') for o in scen['ops']):
        for s in Runner.setup_table_sql(schema, code):
            L.append(s + ';')
    executed = res.executed
    last_now = res.nows[-1] if res.nows else None
    for k, (fop, R, now, exp_err, note) in enumerate(executed):
        stmt = runner.op_sql(fop, model, now, code, schema, 'repro', R)
        is_maint_fail = mm is not None and mm['kind'] == 'maintenance_changed' and mm.get('op') == k
        if is_maint_fail:
            L.append('-- balance before run_maintenance (model: unchanged by it)')
            L.append("SELECT loyalty.balance(%s, %s, %s) AS before_maintenance;" % (
                q(mm['member']), Runner.time_sql(None, mm['t'], now, 'repro'), q(code)))
        if exp_err:
            L.append('SAVEPOINT op%d;' % (k + 1))
            L.append('%s;  -- model: fails with %s (%s)' % (stmt, exp_err, note))
            L.append('ROLLBACK TO SAVEPOINT op%d;' % (k + 1))
        else:
            L.append('%s;%s' % (stmt, ('  -- model: %s' % note) if note else ''))
        if is_maint_fail:
            L.append("SELECT loyalty.balance(%s, %s, %s) AS after_maintenance;  -- model: same as before; server: %s -> %s" % (
                q(mm['member']), Runner.time_sql(None, mm['t'], now, 'repro'), q(code), mm['expected'], mm['actual']))
    L.append('')
    if mm is not None:
        L.append('-- The answer that differs (op %s, %s):' % (mm.get('op'), mm['kind']))
        t = mm.get('t')
        T = Runner.time_sql(None, t, last_now, 'repro') if t is not None else None
        if t is not None:
            L.append('-- the instant: %s (now() %s)' % (fmt_ts(t), offset_interval_sql(t - last_now)))
        kind = mm['kind']
        mem = mm.get('member')
        where = "member_key = %s AND program_id = (SELECT id FROM loyalty.programs WHERE code = %s)" % (q(mem), q(code))
        if kind == 'balance':
            L.append("SELECT loyalty.balance(%s, %s, %s);" % (q(mem), T, q(code)))
        elif kind.startswith('detail.') or kind in ('lots', 'read_error'):
            L.append("SELECT * FROM loyalty.balance_detail(%s, %s, %s);" % (q(mem), T, q(code)))
        elif kind.startswith('stored.'):
            L.append("SELECT loyalty.lots_available(balance, %s) AS available, loyalty.lots_pending(balance, %s) AS pending,\n"
                     "       loyalty.lots_debt(balance) AS debt, balance FROM loyalty.members WHERE %s;" % (T, T, where))
        elif kind == 'last_activity':
            L.append("SELECT last_activity_at FROM loyalty.members WHERE %s;" % where)
        elif kind == 'settled_at':
            L.append("SELECT settled_at FROM loyalty.members WHERE %s;" % where)
        elif kind == 'enrolled':
            L.append("SELECT member_key FROM loyalty.members WHERE program_id = (SELECT id FROM loyalty.programs WHERE code = %s);" % q(code))
        elif kind == 'verify':
            L.append("SELECT * FROM loyalty.verify() WHERE program_code = %s;" % q(code))
        elif kind == 'error':
            L.append('-- (the outcome of the last operation above)')
        elif kind == 'entry':
            L.append('-- (the ledger row returned by the last operation above)')
        L.append('-- model (docs): %s' % (mm.get('expected'),))
        L.append('-- server:       %s' % (mm.get('actual'),))
        if mm.get('model_lots'):
            L.append('-- model lots at that instant:  %s' % mm['model_lots'])
            L.append('-- server lots (%s): %s' % ('members.balance' if kind.startswith('stored') else 'balance_detail.lots',
                                                mm.get('server_lots')))
        others = [x for x in shrunk['all'][1:6]]
        for x in others:
            L.append('-- also: %s' % x.line())
    if single:
        L.append('ROLLBACK;')
    return '\n'.join(L) + '\n'
