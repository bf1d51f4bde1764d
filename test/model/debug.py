#!/usr/bin/python3
"""Run one seed and show, at its first mismatch, the model's entries and the server's
ledger side by side.  debug.py SEED [--member M] [--upto K] [--single]
(creates and drops a database model_dbg_<pid>)"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util  # noqa: E402

from gen import Gen  # noqa: E402
from harness import Runner  # noqa: E402
from model import fmt_ts  # noqa: E402

spec = importlib.util.spec_from_file_location('runmod', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'run'))
ap = argparse.ArgumentParser()
ap.add_argument('seed', type=int)
ap.add_argument('--member')
ap.add_argument('--upto', type=int)
ap.add_argument('--ops', type=int)
ap.add_argument('--single', action='store_true')
ap.add_argument('--ignore-tagged', action='store_true')
a = ap.parse_args()

from importlib.machinery import SourceFileLoader  # noqa: E402
runmod = SourceFileLoader('runmod', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'run')).load_module()

db = 'model_dbg_%d' % os.getpid()
runmod.create_db(db)
try:
    r = Runner(db, verbose=True, ignore_tagged=a.ignore_tagged)
    scen = Gen(a.seed, n_ops=a.ops).scenario()
    res = r.run(scen, mode='single' if a.single else 'multi', upto=a.upto)
    for m in res.mismatches[:15]:
        print('MISMATCH', m.line())
        if m.get('model_lots'):
            print('   model lots ', m['model_lots'])
            print('   server lots', m['server_lots'])
    mem = a.member or (res.mismatches[0].get('member') if res.mismatches else None)
    model = res.model
    print('program', model.p.describe())
    for m in ([mem] if mem else model.enrolled):
        print('--- model entries of', m)
        for e in sorted(model.member_entries(m), key=lambda e: (e.eff, e.id)):
            print('  ', e)
        _, live = model.deadlines(m)
        print('   deadlines in force:', [fmt_ts(d) for d in sorted(live)])
        if not a.single:
            r.cur.execute("SELECT l.seq, l.kind, l.points, l.lots::text, l.effective_at::text, l.recorded_at::text, "
                          "l.reference, l.reason FROM loyalty.ledger l "
                          "WHERE l.program_id = %s AND l.member_key = %s ORDER BY l.effective_at, l.seq", (res.pid, m))
            print('--- server ledger of', m)
            for row in r.cur.fetchall():
                print('   #%s %s %s %s eff=%s rec=%s ref=%s %s' % row)
            r.cur.execute("SELECT balance::text, last_activity_at::text FROM loyalty.members WHERE program_id = %s "
                          "AND member_key = %s", (res.pid, m))
            print('   stored:', r.cur.fetchone())
            r.conn.rollback()
    print('nows:', fmt_ts(res.nows[0]), '..', fmt_ts(res.nows[-1]))
finally:
    r.close()
    runmod.drop_db(db)
