#!/usr/bin/env python3
"""Run the SQL examples of Markdown documents and compare their output.

Usage: docs.py [--update] DOCUMENT...   (the PG* environment names a
superuser session on a cluster test/docs/run made; see that file)

The convention, for README.md and docs/*.md:

- A fenced block whose info string starts with ``sql`` is an example: it is
  run, in the order of the document, in one psql session per document.
- An example whose closing fence is followed, on the very next line, by a
  fence without an info string (a plain ```) has its output there: what
  psql prints for the example must be that block (lines compared without
  their trailing blanks; blank lines at the start and end do not count).
- An example without such a block must run without an error; what it
  prints is not compared.
- ```sql norun marks a block that is shown but not run (a signature, a
  fragment, a command for another server); GitHub highlights it as SQL and
  does not show the word.
- Every document gets a database of its own, created for it; CREATE
  EXTENSION loyalty is run first unless one of its examples runs it.
  Roles a document creates are dropped after it.
- psql runs as "psql -X -q" (no command tags), aligned output, pager off,
  TimeZone UTC; the server's clock is fixed by test/docs/run, so now() is
  the same instant in every example.

Prints "docs: FILE N examples ok" per document, the differences, and last
"docs: PASS (N examples in M documents)" or "docs: FAIL (...)".  With
--update, output blocks that differ are rewritten with what psql printed
(read the diff before committing it).
"""
import difflib
import os
import re
import subprocess
import sys

FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})(.*)$')
MARK = '@@loyalty-docs-example {}@@'
ERROR = re.compile(r'^(ERROR|FATAL|PANIC):|^psql:.*: (error|ERROR|FATAL)')


class Block:
    def __init__(self, start, end, info, body):
        self.start = start      # line number of the opening fence, from 1
        self.end = end          # line number of the closing fence
        self.info = info.split()
        self.body = body        # the lines between the fences


def blocks(lines):
    found = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        closing = re.compile(r'^\s*' + re.escape(fence[0]) + '{' + str(len(fence)) + r',}\s*$')
        start = i
        i += 1
        body = []
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        found.append(Block(start + 1, i + 1, info, body))
        i += 1
    return found


def examples(lines):
    """[(sql block, output block or None)] of a document's runnable examples"""
    bs = blocks(lines)
    out = []
    for k, b in enumerate(bs):
        if b.info[:1] != ['sql'] or 'norun' in b.info[1:]:
            continue
        nxt = bs[k + 1] if k + 1 < len(bs) else None
        if nxt is not None and nxt.start == b.end + 1 and not nxt.info:
            out.append((b, nxt))
        else:
            out.append((b, None))
    return out


def trimmed(lines):
    lines = [l.rstrip() for l in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def ends_statement(body):
    """the block leaves psql's query buffer empty: it ends in ; or a \\ command"""
    for line in reversed(body):
        s = re.sub(r'--.*$', '', line).strip()
        if s:
            return s.endswith(';') or s.startswith('\\')
    return True


def psql(args, db, text=None):
    env = dict(os.environ, PGTZ='UTC', PGDATABASE=db)
    return subprocess.run(['psql', '-X', '-q', '-P', 'pager=off'] + args, input=text, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


def admin(sql, db='postgres'):
    r = psql(['-v', 'ON_ERROR_STOP=1', '-A', '-t', '-c', sql], db)
    if r.returncode != 0:
        raise SystemExit('docs: FAIL (%s: %s)' % (sql, r.stdout.strip()))
    return r.stdout.split()


def run_document(path, update):
    """(examples run, outputs compared, list of failure texts)"""
    text = open(path).read()
    lines = text.split('\n')
    exs = examples(lines)
    if not exs:
        return 0, 0, []
    failures = []
    for b, _ in exs:
        if not ends_statement(b.body):
            failures.append('%s:%d: the example does not end its statement with ;' % (path, b.start))
    if failures:
        return len(exs), 0, failures
    db = 'docs_' + re.sub(r'[^a-z0-9]+', '_', os.path.basename(path).lower())
    roles = set(admin('SELECT rolname FROM pg_roles'))
    admin('DROP DATABASE IF EXISTS %s' % db)
    admin('CREATE DATABASE %s' % db)
    if not any(re.search(r'create\s+extension\s+(if\s+not\s+exists\s+)?loyalty\b',
                         '\n'.join(b.body), re.I) for b, _ in exs):
        admin('CREATE EXTENSION loyalty', db)
    script = []
    for n, (b, _) in enumerate(exs):
        script.append('\\echo ' + MARK.format(n))
        script.extend(b.body)
    script.append('\\echo ' + MARK.format('end'))
    r = psql([], db, '\n'.join(script) + '\n')
    printed = {}
    current = None
    for line in r.stdout.split('\n'):
        m = re.fullmatch(MARK.format(r'(\d+|end)'), line)
        if m:
            current = m.group(1)
            printed[current] = []
        elif current is not None:
            printed[current].append(line)
    if 'end' not in printed:
        failures.append('%s: psql stopped before the last example (exit %d):\n%s'
                        % (path, r.returncode, r.stdout[-3000:]))
    compared = 0
    rewrites = []
    for n, (b, out) in enumerate(exs):
        got = trimmed(printed.get(str(n), []))
        if out is None:
            bad = [l for l in got if ERROR.search(l)]
            if bad:
                failures.append('%s:%d: the example failed:\n%s' % (path, b.start, '\n'.join(got)))
            continue
        compared += 1
        want = trimmed(out.body)
        if got != want:
            diff = difflib.unified_diff(want, got, '%s:%d (the document)' % (path, out.start),
                                        '%s:%d (psql)' % (path, out.start), lineterm='')
            failures.append('\n'.join(diff))
            rewrites.append((out, got))
    admin('DROP DATABASE IF EXISTS %s' % db)
    for role in sorted(set(admin('SELECT rolname FROM pg_roles')) - roles):
        admin('DROP ROLE %s' % role)
    if update and rewrites:
        for out, got in sorted(rewrites, key=lambda x: -x[0].start):
            lines[out.start:out.end - 1] = got
        open(path, 'w').write('\n'.join(lines))
    return len(exs), compared, failures


def main(argv):
    update = '--update' in argv
    paths = [a for a in argv if a != '--update']
    total = docs = compared_total = 0
    failed_docs = []
    for path in paths:
        n, compared, failures = run_document(path, update)
        if n == 0:
            continue
        total += n
        compared_total += compared
        docs += 1
        for f in failures:
            print(f)
        if failures:
            failed_docs.append(path)
            print('docs: %s %d examples, %d failed%s' % (path, n, len(failures),
                                                         ' (output blocks rewritten)' if update else ''))
        else:
            print('docs: %s %d examples ok (%d outputs compared)' % (path, n, compared))
    if failed_docs:
        print('docs: FAIL (%s; %d examples in %d documents)' % (', '.join(failed_docs), total, docs))
        return 1
    print('docs: PASS (%d examples in %d documents, %d outputs compared)' % (total, docs, compared_total))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
