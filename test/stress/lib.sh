# Shell helpers for test/stress/run, test/stress/crash and test/fuzz/run.
# Sourced from the repository root.

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG

# Build and install as scripts/test does (packages, make, make install), under
# the shared install lock; then install the same build into a private
# directory that the throwaway cluster loads (extension_destdir), so that an
# install by someone else during the long run cannot change the code under
# test.  The lock is not held during the run.  Sets STAGE.
stage_build() {
	flock /tmp/loyalty-install.lock scripts/setup
	STAGE=$(mktemp -d /tmp/loyalty-stage.XXXXXX)
	make -s PG_CONFIG=$PG_CONFIG install DESTDIR="$STAGE" >/dev/null
	chmod -R a+rX "$STAGE"
	export STAGE
}

# Inside pg_virtualenv: the cluster's log file and data directory.
cluster_paths() {
	PGLOG=$(dirname "$PG_CLUSTER_CONF_ROOT")/log/postgresql-15-regress.log
	PGDATA_DIR=$(psql -X -A -t -d postgres -c 'SHOW data_directory')
	export PGLOG PGDATA_DIR
}

# The loyalty.so in use must be the staged one.
check_stage_loaded() {
	so=$(psql -X -A -t -c "SELECT setting FROM pg_settings WHERE name = 'extension_destdir'")
	if [ "$so" != "$STAGE" ]; then
		echo "FAIL: the cluster does not load the staged build ($so)"
		return 1
	fi
}

# pgbench -f arguments from test/stress/workload
workload_args() {
	grep -v '^[[:space:]]*#' test/stress/workload |
		awk 'NF >= 2 { printf "-f test/stress/%s.pgbench@%s ", $1, $2 }'
}

# Crashes, assertion failures and deadlocks in the server log since line $1.
# Prints a summary; returns 1 on a crash.
check_log() {
	from=${1:-1}
	tail -n +"$from" "$PGLOG" > "$WORK/log.part"
	crashes=$(grep -c -E 'terminated by signal|TRAP:|PANIC:|was terminated by exception' "$WORK/log.part" || true)
	deadlocks=$(grep -c 'deadlock detected' "$WORK/log.part" || true)
	internal=$(grep -c -E 'ERROR:  XX000|internal error' "$WORK/log.part" || true)
	echo "server log: $crashes crash lines, $deadlocks deadlocks, $internal internal errors"
	if [ "$crashes" -gt 0 ]; then
		grep -E 'terminated by signal|TRAP:|PANIC:|was terminated by exception' "$WORK/log.part" | head -5
		return 1
	fi
}

# Run test/stress/invariants.psql against database $1; prints the report;
# returns 1 unless every invariant holds.  $2 = maintain: a final
# run_maintenance() first, then nothing may be left due (not for a restored
# copy, which must stay identical to its source).
check_invariants() {
	maintain=0
	[ "${2:-}" = maintain ] && maintain=1
	psql -X -q -d "$1" -v skip="${SKIP_INVARIANTS:-}" -v maintain=$maintain -f test/stress/invariants.psql \
		> "$WORK/invariants.out" 2>&1 || {
		cat "$WORK/invariants.out"
		echo "FAIL: invariants.psql did not run"
		return 1
	}
	cat "$WORK/invariants.out"
	grep -q 'invariant failures: 0$' "$WORK/invariants.out"
}

# Every table of loyalty and of the application schema shop, in a stable
# order, and the sequences' positions: identical output means identical data.
dump_tables() {
	psql -X -A -t -q -d "$1" <<'SQL'
SET TimeZone = 'UTC';
SELECT format('COPY (SELECT * FROM %s t ORDER BY t::text) TO STDOUT;', c.oid::regclass)
  FROM pg_class c
 WHERE c.relnamespace IN ('loyalty'::regnamespace, 'shop'::regnamespace) AND c.relkind = 'r'
 ORDER BY c.oid::regclass::text \gexec
SELECT format('SELECT %L, last_value, is_called FROM %s;', c.oid::regclass, c.oid::regclass)
  FROM pg_class c
 WHERE c.relnamespace IN ('loyalty'::regnamespace, 'shop'::regnamespace) AND c.relkind = 'S'
 ORDER BY c.oid::regclass::text \gexec
SQL
}

# pg_dump -Fc of $1, pg_restore into a new database $2: the same tables, rows
# and sequence positions, the invariants hold; then the purchases table is
# emptied and restored again with its triggers in place: no award is written
# twice (ledger rows and balances unchanged); and new activity still works.
check_dump_restore() {
	src=$1 dst=$2
	pg_dump -Fc -f "$WORK/dump" -d "$src"
	psql -X -q -d postgres -c "CREATE DATABASE $dst"
	pg_restore --exit-on-error -d "$dst" "$WORK/dump"
	dump_tables "$src" > "$WORK/src.tables"
	dump_tables "$dst" > "$WORK/dst.tables"
	ok=0
	if cmp -s "$WORK/src.tables" "$WORK/dst.tables"; then
		echo "tables identical after restore: $(wc -l < "$WORK/src.tables") rows and sequences compared"
	else
		echo "FAIL: tables differ after restore"
		diff "$WORK/src.tables" "$WORK/dst.tables" | head -10
		ok=1
	fi
	check_invariants "$dst" > /dev/null || ok=1
	grep 'invariant failures' "$WORK/invariants.out" | sed 's/^ */restored database: /'

	# the purchases table alone, restored into the live database: the
	# ledger's rows and every member's balance before and after
	before=$(psql -X -A -t -d "$dst" -c "SELECT (SELECT count(*) FROM loyalty.ledger), (SELECT md5(string_agg(program_id || ' ' || member_key || ' ' || balance::text, ',' ORDER BY program_id, member_key)) FROM loyalty.members)")
	psql -X -q -d "$dst" -c 'TRUNCATE shop.purchases'
	pg_restore --exit-on-error --data-only -n shop -t purchases -d "$dst" "$WORK/dump"
	after=$(psql -X -A -t -d "$dst" -c "SELECT (SELECT count(*) FROM loyalty.ledger), (SELECT md5(string_agg(program_id || ' ' || member_key || ' ' || balance::text, ',' ORDER BY program_id, member_key)) FROM loyalty.members)")
	rows=$(psql -X -A -t -d "$dst" -c 'SELECT count(*) FROM shop.purchases')
	if [ "$before" = "$after" ]; then
		echo "purchases restored again with triggers ($rows rows): ledger rows and balances unchanged"
	else
		echo "FAIL: restoring the purchases table changed the ledger or balances: $before -> $after"
		ok=1
	fi
	dump_tables "$dst" > "$WORK/dst2.tables"
	# rows only; the sequences that moved are printed (the ledger has none:
	# a refused award takes no number)
	grep -v '_seq|' "$WORK/src.tables" > "$WORK/src.rows"
	grep -v '_seq|' "$WORK/dst2.tables" > "$WORK/dst2.rows"
	if cmp -s "$WORK/src.rows" "$WORK/dst2.rows"; then
		moved=$(grep '_seq|' "$WORK/dst2.tables" | grep -v -x -F -f "$WORK/src.tables" |
			cut -d'|' -f1,2 | tr '|\n' ' ,' | sed 's/,$//')
		echo "all rows identical after the purchases table was restored again" \
			"(sequences moved: ${moved:-none})"
	else
		echo "FAIL: rows differ after the purchases table was restored again"
		diff "$WORK/src.rows" "$WORK/dst2.rows" | head -10
		ok=1
	fi

	# the restored database keeps working: new purchase ids and members'
	# seqs do not collide with the restored rows
	if psql -X -q -v ON_ERROR_STOP=1 -d "$dst" >/dev/null <<'SQL'
INSERT INTO shop.purchases (customer, amount, channel) VALUES ('after-restore', 10, 'web');
SELECT loyalty.earn('m1', 5, 'after-restore');
SELECT loyalty.enroll('new-after-restore');
SQL
	then
		echo "restored database accepts new purchases, earn and enroll"
	else
		echo "FAIL: the restored database refused new activity"; ok=1
	fi
	check_invariants "$dst" > /dev/null || ok=1
	grep 'invariant failures' "$WORK/invariants.out" | sed 's/^ */after new activity: /'
	return $ok
}
