/*
 * The SQL half of the purchase triggers: every statement they run, in one
 * table, prepared once per backend when first used.
 *
 * None is built per tracked table: a tracked table's columns are read in
 * C (purchase_read.c), and the statements see only loyalty's own tables.
 * What a trigger reads of the program's configuration is read by the
 * program cache (program.c) with statements of its own.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "purchase.h"

/*
 * loyalty's own types have an OID of their own in every database, which
 * the tracked table's configuration gives (TrackCols): the table names
 * them by these stand-ins, below any type's OID.
 */
#define ARG_LOTS			((Oid) 1)
#define ARG_LOTS_ARRAY		((Oid) 2)
#define ARG_ACTIVITY		((Oid) 3)
#define ARG_ACTIVITY_ARRAY	((Oid) 4)

#define MAX_ARGS 18

typedef struct PurchaseStatement
{
	const char *sql;
	int			nargs;
	Oid			argtypes[MAX_ARGS];
} PurchaseStatement;

/*
 * The ledger rows of a statement, passed as parallel arrays ($3 .. $10) and
 * unnested in the select list (ProjectSet): unnest() in FROM would be a
 * function scan, which first copies every row into a tuplestore.  $10 is
 * each row's seq (INSERT_ROWS: read from STMT_LAST_SEQS after the members
 * were locked and settled), or its place among the member's rows of the
 * statement, added to the member's greatest seq read in the same statement
 * (STMT_WRITE_MEMBER).
 */
#define UNNEST_ROWS "SELECT unnest($3) AS k, unnest($10) AS o, unnest($4) AS kind, unnest($5) AS p," \
	" unnest($6) AS lots, unnest($7) AS r, unnest($8) AS reason, unnest($9) AS e"
#define ROWS_FROM " u.kind, u.p, u.lots, u.r, u.reason, u.e FROM (" UNNEST_ROWS ") u"

/*
 * Award rows (kind earn or pending, with a track_id) conflict only on
 * ledger_purchase_award: name it, so that no other unique index is probed.
 */
#define AWARD_CONFLICT "ON CONFLICT (member_key, track_id, reference)" \
	" WHERE track_id IS NOT NULL AND kind IN ('earn', 'pending') DO NOTHING"

#define INSERT_COLUMNS "INSERT INTO loyalty.ledger (program_id, track_id, member_key, seq, kind," \
	" points, lots, reference, reason, effective_at) "
#define INSERT_ROWS INSERT_COLUMNS "SELECT $1, $2, u.k, u.o," ROWS_FROM

#define INSERT_ROWS_ARGS {INT4OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, \
	ARG_LOTS_ARRAY, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID}

#define LOCK_COLUMNS "program_id, member_key, balance, first_purchase_at, last_activity_at, tier," \
	" activity, settled_at"

static const PurchaseStatement statements[NUM_PURCHASE_STMTS] = {
	[STMT_TRACKED_TABLE] = {
		"SELECT program_id, member_column::text, amount_column::text,"
		" time_column::text, status_column::text, channel_column::text,"
		" category_column::text, store_column::text,"
		" reference_columns::text[], reversed_statuses,"
		" 'loyalty.lots'::regtype::oid, table_name::oid,"
		" 'loyalty.activity'::regtype::oid"
		" FROM loyalty.tracked_tables WHERE id = $1 AND active",
		1, {INT4OID}
	},
	[STMT_LOCK_MEMBER] = {
		"SELECT " LOCK_COLUMNS " FROM loyalty.members"
		" WHERE program_id = $1 AND member_key = $2 FOR UPDATE",
		2, {INT4OID, TEXTOID}
	},
	[STMT_LOCK_MEMBERS] = {
		"SELECT " LOCK_COLUMNS " FROM loyalty.members"
		" WHERE program_id = $1 AND member_key = ANY ($2)"
		" ORDER BY member_key FOR UPDATE",
		2, {INT4OID, TEXTARRAYOID}
	},
	/*
	 * enrolled at the member's first purchase, so that a backfill of old
	 * orders does not enroll after them; never later than now
	 */
	[STMT_ENROLL] = {
		"INSERT INTO loyalty.members (program_id, member_key, enrolled_at)"
		" SELECT $1, u.k, least(now(), u.at) FROM unnest($2, $3) AS u(k, at)"
		" ON CONFLICT (program_id, member_key) DO NOTHING",
		3, {INT4OID, TEXTARRAYOID, TIMESTAMPTZARRAYOID}
	},
	/* per member its greatest seq (the primary key), once it is locked */
	[STMT_LAST_SEQS] = {
		"SELECT (SELECT coalesce(max(l.seq), 0) FROM loyalty.ledger l"
		" WHERE l.program_id = $1 AND l.member_key = u.k)"
		" FROM unnest($2) WITH ORDINALITY AS u(k, n) ORDER BY u.n",
		2, {INT4OID, TEXTARRAYOID}
	},
	/* per member the newest entry of the ledger_member_time index */
	[STMT_LATEST_ENTRIES] = {
		"SELECT u.k, (SELECT max(l.effective_at) FROM loyalty.ledger l"
		" WHERE l.program_id = $1 AND l.member_key = u.k)"
		" FROM unnest($2) WITH ORDINALITY AS u(k, n) ORDER BY u.n",
		2, {INT4OID, TEXTARRAYOID}
	},
	[STMT_SETTLE] = {
		"UPDATE loyalty.members m SET balance = loyalty._settle(m, $3),"
		" settled_at = greatest(m.settled_at, $3)"
		" WHERE program_id = $1 AND member_key = $2 RETURNING balance, settled_at",
		3, {INT4OID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_REBUILD] = {
		"UPDATE loyalty.members m SET balance = loyalty._rebuild(m, $3),"
		" settled_at = $3 WHERE program_id = $1 AND member_key = $2 RETURNING balance",
		3, {INT4OID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_CAP_USED] = {
		"SELECT coalesce(sum(points), 0)::bigint FROM loyalty.ledger"
		" WHERE program_id = $1 AND member_key = $2 AND effective_at >= $3 AND effective_at < $4"
		" AND track_id IS NOT NULL AND points > 0"
		" AND (reason IS NULL OR reason = 'purchase amount changed')",
		4, {INT4OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	[STMT_TIER_UPGRADE] = {
		"SELECT loyalty._tier_upgrade($1, $2, $3, $4)",
		4, {INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_INSERT_ROWS] = {
		INSERT_ROWS,
		10, INSERT_ROWS_ARGS
	},
	[STMT_INSERT_NEW_ROWS] = {
		INSERT_ROWS " " AWARD_CONFLICT " RETURNING reference, member_key",
		10, INSERT_ROWS_ARGS
	},
	[STMT_WRITE_MEMBER] = {
		"WITH prior AS (SELECT (SELECT max(effective_at) FROM loyalty.ledger"
		" WHERE program_id = $1 AND member_key = $14) AS at,"
		" (SELECT coalesce(max(seq), 0) FROM loyalty.ledger"
		" WHERE program_id = $1 AND member_key = $14) AS seq),"
		" ins AS (" INSERT_COLUMNS "SELECT $1, $2, u.k, (SELECT seq FROM prior) + u.o,"
		ROWS_FROM " " AWARD_CONFLICT " RETURNING reference),"
		" upd AS (UPDATE loyalty.members SET balance = $11,"
		" first_purchase_at = $12, last_activity_at = $13, activity = $16,"
		" settled_at = $17"
		" WHERE program_id = $1 AND member_key = $14 AND (SELECT count(*) FROM ins) = $15"
		" AND coalesce((SELECT at FROM prior), '-infinity') <= $18 RETURNING 1)"
		" SELECT (SELECT count(*) FROM upd), (SELECT array_agg(reference) FROM ins),"
		" (SELECT at FROM prior)",
		18, {INT4OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
			ARG_LOTS_ARRAY, TEXTARRAYOID, TEXTARRAYOID,
			TIMESTAMPTZARRAYOID, INT8ARRAYOID, ARG_LOTS, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TEXTOID, INT8OID, ARG_ACTIVITY, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	/* settled_at: loyalty_plan_members() saw to it that everything due by now is written */
	[STMT_UPDATE_MEMBERS] = {
		"UPDATE loyalty.members m SET balance = u.b,"
		" first_purchase_at = u.f, last_activity_at = u.a, activity = u.act,"
		" settled_at = $6"
		" FROM unnest($1, $2, $3, $4, $5) AS u(k, b, f, a, act)"
		" WHERE m.program_id = $7 AND m.member_key = u.k",
		7, {TEXTARRAYOID, ARG_LOTS_ARRAY, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
		ARG_ACTIVITY_ARRAY, TIMESTAMPTZOID, INT4OID}
	},
	[STMT_UPDATE_MEMBER] = {
		"UPDATE loyalty.members SET balance = $2, first_purchase_at = $3,"
		" last_activity_at = $4, activity = $5 WHERE program_id = $6 AND member_key = $1",
		6, {TEXTOID, ARG_LOTS, TIMESTAMPTZOID, TIMESTAMPTZOID, ARG_ACTIVITY, INT4OID}
	},
	[STMT_AWARD_OF] = {
		"SELECT kind, points, lots, effective_at FROM loyalty.ledger"
		" WHERE program_id = $4 AND member_key = $1 AND track_id = $2 AND reference = $3"
		" ORDER BY seq",
		4, {TEXTOID, INT4OID, TEXTOID, INT4OID}
	},
	/*
	 * the program that awarded a member's purchase: of its entries, the
	 * initial award's, else (a purchase moved to the member) any; one probe
	 * of the primary key per program
	 */
	[STMT_AWARD_PROGRAM] = {
		"SELECT program_id FROM loyalty.ledger"
		" WHERE program_id = ANY (ARRAY(SELECT id FROM loyalty.programs))"
		" AND member_key = $1 AND track_id = $2 AND reference = $3"
		" ORDER BY kind IN ('earn', 'pending') DESC, seq LIMIT 1",
		3, {TEXTOID, INT4OID, TEXTOID}
	},
	/*
	 * whether another tracking of the same table awarded a member's
	 * purchase (a table tracked for several programs): one probe of
	 * ledger_purchase_award per other tracking
	 */
	[STMT_AWARDED_BY_OTHER] = {
		"SELECT 1 FROM loyalty.ledger"
		" WHERE member_key = $1 AND reference = $3 AND kind IN ('earn', 'pending')"
		" AND track_id = ANY (ARRAY(SELECT x.id FROM loyalty.tracked_tables x"
		" JOIN loyalty.tracked_tables y ON y.table_name = x.table_name"
		" WHERE y.id = $2 AND x.id <> $2))"
		" LIMIT 1",
		3, {TEXTOID, INT4OID, TEXTOID}
	},
	/*
	 * of refused awards, those whose purchase holds nothing (it was deleted)
	 * and was awarded in this program (docs/concepts.md: a purchase belongs
	 * to the program that awarded it)
	 */
	[STMT_TAKEN_BACK] = {
		"SELECT u.r, u.k FROM unnest($2, $4) AS u(r, k)"
		" WHERE (SELECT coalesce(sum(l.points), 0) FROM loyalty.ledger l"
		" WHERE l.program_id = $3 AND l.member_key = u.k AND l.track_id = $1"
		" AND l.reference = u.r) = 0"
		" AND (SELECT l.program_id FROM loyalty.ledger l WHERE l.member_key = u.k"
		" AND l.track_id = $1 AND l.reference = u.r AND l.kind IN ('earn', 'pending')) = $3",
		4, {INT4OID, TEXTARRAYOID, INT4OID, TEXTARRAYOID}
	},
	[STMT_INSERT_ENTRY] = {
		"INSERT INTO loyalty.ledger (program_id, track_id, member_key, seq, kind,"
		" points, lots, reference, reason, effective_at)"
		" SELECT $1, $2, $3, coalesce(max(l.seq), 0) + 1, $4, $5, $6, $7, $8, $9"
		" FROM loyalty.ledger l WHERE l.program_id = $1 AND l.member_key = $3",
		9, {INT4OID, INT4OID, TEXTOID, TEXTOID, INT8OID, ARG_LOTS,
		TEXTOID, TEXTOID, TIMESTAMPTZOID}
	},
};

static SPIPlanPtr plans[NUM_PURCHASE_STMTS];
static uint64 plans_generation = 0;

/*
 * The statements are the library's: they need the tables of the same
 * version of the extension.  Between installing a new version's files and
 * ALTER EXTENSION loyalty UPDATE, a database still has the old tables:
 * say so, once per backend until it matches (SPI connected).
 */
void
loyalty_check_version(void)
{
	static bool matches = false;
	char	   *installed;

	if (matches)
		return;
	if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'loyalty'",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the installed version of loyalty");
	installed = loyalty_spi_text(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (installed == NULL || strcmp(installed, LOYALTY_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("loyalty's library is version %s but this database has loyalty %s",
						LOYALTY_VERSION, installed ? installed : "(none)"),
				 errdetail("The library was updated; the database's tables are still those of %s.",
						   installed ? installed : "(none)"),
				 errhint("Run ALTER EXTENSION loyalty UPDATE in this database.")));
	matches = true;
}

/* Plans name loyalty.lots by OID: drop them when configuration changed. */
void
loyalty_purchase_plans_check(void)
{
	loyalty_check_version();
	if (plans_generation == loyalty_config_generation)
		return;
	for (int i = 0; i < NUM_PURCHASE_STMTS; i++)
	{
		if (plans[i])
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	plans_generation = loyalty_config_generation;
}

static Oid
arg_type(Oid type, const TrackCols *tc)
{
	if (type > ARG_ACTIVITY_ARRAY)
		return type;
	if (tc == NULL)
		elog(ERROR, "a purchase statement names loyalty's types without a tracked table");
	switch (type)
	{
		case ARG_LOTS:
			return tc->lots_type;
		case ARG_LOTS_ARRAY:
			return get_array_type(tc->lots_type);
		case ARG_ACTIVITY:
			return tc->activity_type;
		case ARG_ACTIVITY_ARRAY:
			return get_array_type(tc->activity_type);
	}
	return InvalidOid;
}

/*
 * Prepare a statement unless it is (SPI connected).  tc gives the OIDs of
 * loyalty's types; NULL for a statement that names none.
 */
SPIPlanPtr
loyalty_purchase_plan(PurchaseStmt stmt, const TrackCols *tc)
{
	const PurchaseStatement *s = &statements[stmt];
	Oid			argtypes[MAX_ARGS];

	if (plans[stmt] != NULL)
		return plans[stmt];
	for (int i = 0; i < s->nargs; i++)
		argtypes[i] = arg_type(s->argtypes[i], tc);
	/* generic plans: these run for every purchase statement; replanning cost more than the work */
	plans[stmt] = SPI_prepare_cursor(s->sql, s->nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plans[stmt] == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", s->sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plans[stmt]);
	return plans[stmt];
}

/* Run a statement, as SPI_execute_plan. */
int
loyalty_purchase_exec(PurchaseStmt stmt, const TrackCols *tc, Datum *args, const char *nulls,
					  bool read_only, long count)
{
	return SPI_execute_plan(loyalty_purchase_plan(stmt, tc), args, nulls, read_only, count);
}

char *
loyalty_spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

ArrayType *
loyalty_array_of(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval, typalign);
}
