/*
 * maintenance.c: run_maintenance(workers => n).
 *
 * Settling lots is one batch of members after another (_maintain_lots), and
 * at 1M members the batches are bound by writing the ledger rows and their
 * WAL on one core.  With workers > 0 the caller reads the key of every
 * batch_size-th member from the members' primary key, which cuts the
 * members into ranges of batch_size, then starts that many dynamic
 * background workers and waits for them.  They share the ranges and a
 * counter in a dynamic shared memory segment: each worker takes the next
 * range, settles its due members with _maintain_lots in a transaction of
 * its own, commits, and takes the next, until every range is taken.
 * Members enrolled meanwhile fall into a range too (the first and last are
 * open).  Locked members are skipped, as in the serial path, and caught by
 * the next run.
 *
 * What that changes for the caller, and why it is opt-in: the workers
 * commit on their own, so their work stays when the caller's transaction
 * rolls back, and they see only committed data.  An error in a worker stops
 * the others and is raised again in the caller with its SQLSTATE.
 *
 * Progress: the caller, its workers, and the serial steps of
 * run_maintenance and refresh_reports (loyalty._progress) write what they
 * are doing into their own pg_stat_activity query text, as autovacuum does,
 * in one form that the view loyalty.maintenance_progress reads back:
 * "loyalty maintenance: tiers, 300 of 1000 members", and for a worker
 * "loyalty maintenance worker for pid 123: releases and expiries, 4 of 9
 * ranges".  PostgreSQL 15's progress views take only its own commands, and
 * shared memory of our own would need shared_preload_libraries.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "purchase.h"

PG_FUNCTION_INFO_V1(loyalty_maintain_parallel);

PGDLLEXPORT void loyalty_maintenance_worker(Datum main_arg);

/* what the caller and its workers share */
typedef struct MaintShared
{
	Oid			database;
	Oid			role;
	TimestampTz as_of;
	int32		batch_size;
	int			lock_timeout;	/* ms, for the workers' table locks */
	int			caller_pid;		/* for the workers' progress reports */
	uint32		nbounds;		/* range i is (bound i - 1, bound i]; nbounds + 1 ranges */
	pg_atomic_uint32 taken;		/* ranges handed out so far */
	pg_atomic_uint32 ranges_done;	/* ranges settled and committed */
	pg_atomic_uint32 stop;		/* set when a worker failed */

	slock_t		mutex;			/* protects the rest */
	int			finished;		/* workers that took their last batch */
	int64		members;
	int64		releases;
	int64		expiries;
	int64		expired_points;
	XLogRecPtr	last_commit_end;	/* the latest end of a worker's commit record */
	bool		failed;
	int			sqlerrcode;
	char		message[512];
	char		detail[512];
	/* then nbounds Bound entries, then their keys, each NUL-terminated */
} MaintShared;

typedef struct Bound
{
	int32		program_id;
	uint32		key_offset;		/* from the start of the keys */
} Bound;

#define BOUNDS(shared) ((Bound *) ((char *) (shared) + MAXALIGN(sizeof(MaintShared))))
#define BOUND_KEY(shared, i) ((char *) (BOUNDS(shared) + (shared)->nbounds) + \
							  BOUNDS(shared)[i].key_offset)

/* every program id lies in (0, 2147483647): the open ends of the ranges */
#define FIRST_PROGRAM 0
#define LAST_PROGRAM PG_INT32_MAX

static const char *const batch_query =
"SELECT members, releases, expiries, expired_points "
"FROM loyalty._maintain_lots($1, $2, $3, $4, $5, $6)";

#define LOTS_PHASE "releases and expiries"

/*
 * Report progress in this backend's pg_stat_activity query text, in the
 * form loyalty.maintenance_progress parses (see the top of this file); a
 * worker (caller_pid set) names the session it works for.
 */
static void
report_progress(int caller_pid, const char *phase, int64 done, int64 total, const char *unit)
{
	char		text[256];

	if (caller_pid != 0)
		snprintf(text, sizeof(text),
				 "loyalty maintenance worker for pid %d: %s, " INT64_FORMAT " of " INT64_FORMAT " %s",
				 caller_pid, phase, done, total, unit);
	else
		snprintf(text, sizeof(text),
				 "loyalty maintenance: %s, " INT64_FORMAT " of " INT64_FORMAT " %s",
				 phase, done, total, unit);
	pgstat_report_activity(STATE_RUNNING, text);
}

/* lower-case words, as the view's pattern reads them */
static bool
progress_word(const char *s, bool spaces)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (spaces && *s == ' ')))
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(loyalty_progress);

/*
 * loyalty._progress(phase, done, total, unit): report a step of
 * run_maintenance or refresh_reports; phase NULL: the step is over, show
 * the statement that called it again.
 */
Datum
loyalty_progress(PG_FUNCTION_ARGS)
{
	char	   *phase;
	char	   *unit;

	if (PG_ARGISNULL(0))
	{
		pgstat_report_activity(STATE_RUNNING, debug_query_string ? debug_query_string : "");
		PG_RETURN_VOID();
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		elog(ERROR, "progress needs done, total and unit");
	phase = text_to_cstring(PG_GETARG_TEXT_PP(0));
	unit = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (!progress_word(phase, true) || !progress_word(unit, false) ||
		PG_GETARG_INT64(1) < 0 || PG_GETARG_INT64(2) < 0)
		elog(ERROR, "progress report (\"%s\", \"%s\") is not in the form maintenance_progress reads", phase, unit);
	report_progress(0, phase, PG_GETARG_INT64(1), PG_GETARG_INT64(2), unit);
	PG_RETURN_VOID();
}

static void
record_failure(MaintShared *shared, ErrorData *edata)
{
	SpinLockAcquire(&shared->mutex);
	if (!shared->failed)
	{
		shared->failed = true;
		shared->sqlerrcode = edata->sqlerrcode;
		strlcpy(shared->message, edata->message ? edata->message : "", sizeof(shared->message));
		strlcpy(shared->detail, edata->detail ? edata->detail : "", sizeof(shared->detail));
	}
	SpinLockRelease(&shared->mutex);
	pg_atomic_write_u32(&shared->stop, 1);
}

static int64
column_int64(HeapTuple tuple, TupleDesc desc, int column)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, column, &isnull);

	return isnull ? 0 : DatumGetInt64(value);
}

/*
 * Ranges of members until none are left, adding what they wrote to totals
 * (members, releases, expiries, expired points).  Each range is one batch,
 * in a transaction of its own.
 */
static void
settle_batches(MaintShared *shared, int64 *totals)
{
	Oid			argtypes[6] = {TIMESTAMPTZOID, INT4OID, INT4OID, TEXTOID, INT4OID, TEXTOID};

	for (;;)
	{
		uint32		range;
		Datum		values[6];
		int			ret;

		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u32(&shared->stop))
			break;
		range = pg_atomic_fetch_add_u32(&shared->taken, 1);
		if (range > shared->nbounds)
			break;
		/* (bound range - 1, bound range], the first and the last open */
		if (range == 0)
		{
			values[2] = Int32GetDatum(FIRST_PROGRAM);
			values[3] = CStringGetTextDatum("");
		}
		else
		{
			values[2] = Int32GetDatum(BOUNDS(shared)[range - 1].program_id);
			values[3] = CStringGetTextDatum(BOUND_KEY(shared, range - 1));
		}
		if (range == shared->nbounds)
		{
			values[4] = Int32GetDatum(LAST_PROGRAM);
			values[5] = CStringGetTextDatum("");
		}
		else
		{
			values[4] = Int32GetDatum(BOUNDS(shared)[range].program_id);
			values[5] = CStringGetTextDatum(BOUND_KEY(shared, range));
		}

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		report_progress(shared->caller_pid, LOTS_PHASE, pg_atomic_read_u32(&shared->ranges_done),
						(int64) shared->nbounds + 1, "ranges");
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		values[0] = TimestampTzGetDatum(shared->as_of);
		values[1] = Int32GetDatum(shared->batch_size);
		ret = SPI_execute_with_args(batch_query, 6, argtypes, values, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "loyalty._maintain_lots returned %d", ret);
		for (int i = 0; i < 4; i++)
			totals[i] += column_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		/* what the caller flushes at the end: this commit's record, written */
		SpinLockAcquire(&shared->mutex);
		if (XactLastCommitEnd > shared->last_commit_end)
			shared->last_commit_end = XactLastCommitEnd;
		SpinLockRelease(&shared->mutex);
		pg_atomic_fetch_add_u32(&shared->ranges_done, 1);
	}
}

/*
 * One background worker.  Its batches commit with synchronous_commit off:
 * the caller flushes their WAL once all workers are done, and a crash
 * before that loses only batches that the next run writes again
 * (maintenance is idempotent).
 */
void
loyalty_maintenance_worker(Datum main_arg)
{
	dsm_segment *segment;
	MaintShared *shared;
	int64		totals[4] = {0, 0, 0, 0};

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	segment = dsm_attach(DatumGetUInt32(main_arg));
	if (segment == NULL)
		proc_exit(0);			/* the caller is gone already */
	shared = dsm_segment_address(segment);

	BackgroundWorkerInitializeConnectionByOid(shared->database, shared->role, 0);
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	/* not the role's or database's default: nothing of another schema is found */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
	/*
	 * Rows locked by others are skipped, but a table lock is waited for.  If
	 * the caller holds one that conflicts (LOCK TABLE, ALTER TABLE in its
	 * transaction), the caller waits for the worker and the worker for the
	 * caller, which no deadlock check sees: give up after lock_timeout.
	 */
	{
		char		ms[32];

		snprintf(ms, sizeof(ms), "%d", shared->lock_timeout);
		SetConfigOption("lock_timeout", ms, PGC_USERSET, PGC_S_SESSION);
	}
	SetConfigOption("application_name", "loyalty maintenance", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("loyalty maintenance");

	PG_TRY();
	{
		settle_batches(shared, totals);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		record_failure(shared, edata);
		/* no handler above: the error ends the worker, aborting its batch */
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&shared->mutex);
	shared->finished++;
	shared->members += totals[0];
	shared->releases += totals[1];
	shared->expiries += totals[2];
	shared->expired_points += totals[3];
	SpinLockRelease(&shared->mutex);

	dsm_detach(segment);
	proc_exit(0);
}

/* the workers a caller started, for stopping them when it ends early */
typedef struct StartedWorkers
{
	MaintShared *shared;
	BackgroundWorkerHandle **handles;
	int			started;
} StartedWorkers;

/*
 * The caller was cancelled, failed, or is exiting (pg_terminate_backend):
 * stop the workers, which would otherwise go on alone.  Runs both as an
 * error cleanup and, for an exit, before the caller leaves shared memory.
 */
static void
stop_workers(int code, Datum arg)
{
	StartedWorkers *w = (StartedWorkers *) DatumGetPointer(arg);

	(void) code;
	pg_atomic_write_u32(&w->shared->stop, 1);
	for (int i = 0; i < w->started; i++)
		TerminateBackgroundWorker(w->handles[i]);
}

/*
 * Wait until every worker has stopped, reporting the ranges they have
 * settled as they go (the postmaster sets our latch when a worker stops;
 * the count is read every 100 ms).
 */
static void
wait_for_workers(StartedWorkers *w)
{
	int64		total = (int64) w->shared->nbounds + 1;
	int64		reported = -1;

	for (;;)
	{
		bool		running = false;
		int64		done;

		for (int i = 0; i < w->started; i++)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(w->handles[i], &pid) != BGWH_STOPPED)
				running = true;
		}
		/* read after the workers' states: once none runs, this is final */
		done = pg_atomic_read_u32(&w->shared->ranges_done);
		if (done != reported)
		{
			report_progress(0, LOTS_PHASE, done, total, "ranges");
			reported = done;
		}
		if (!running)
			break;
		if (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH, 100L,
					  WAIT_EVENT_BGWORKER_SHUTDOWN) & WL_POSTMASTER_DEATH)
			ereport(FATAL,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("postmaster exited during maintenance")));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * A shared segment holding the key of every batch_size-th member in key
 * order (the ranges' bounds), read from the members' primary key; NULL
 * when there are no members.
 */
static dsm_segment *
member_ranges(int32 batch_size)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(batch_size)};
	dsm_segment *segment = NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	loyalty_check_version();
	if (SPI_execute("SELECT 1 FROM loyalty.members LIMIT 1", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the members");
	if (SPI_processed == 1)
	{
		Size		keys = 0;
		Size		size;
		MaintShared *shared;
		char	   *key_at;
		char	  **bound_keys;

		if (SPI_execute_with_args("SELECT program_id, member_key FROM"
								  " (SELECT program_id, member_key,"
								  " row_number() OVER (ORDER BY program_id, member_key) AS n"
								  " FROM loyalty.members) m"
								  " WHERE n % $1 = 0 ORDER BY program_id, member_key",
								  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the members' ranges");
		if (SPI_processed >= PG_UINT32_MAX / sizeof(Bound))
			elog(ERROR, "too many maintenance ranges: pass a larger batch_size");
		bound_keys = palloc(sizeof(char *) * Max(SPI_processed, 1));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bound_keys[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			keys += strlen(bound_keys[i]) + 1;
			if (keys >= PG_UINT32_MAX)
				elog(ERROR, "the maintenance ranges' keys take more than 4 GB: pass a larger batch_size");
		}
		size = MAXALIGN(sizeof(MaintShared)) + sizeof(Bound) * SPI_processed + keys;
		segment = dsm_create(size, 0);
		shared = dsm_segment_address(segment);
		memset(shared, 0, sizeof(MaintShared));
		shared->nbounds = (uint32) SPI_processed;
		key_at = (char *) (BOUNDS(shared) + shared->nbounds);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Size		len = strlen(bound_keys[i]) + 1;

			BOUNDS(shared)[i].program_id =
				DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			BOUNDS(shared)[i].key_offset = (uint32) (key_at - (char *) (BOUNDS(shared) + shared->nbounds));
			memcpy(key_at, bound_keys[i], len);
			key_at += len;
		}
	}
	SPI_finish();
	return segment;
}

/*
 * loyalty._maintain_parallel(as_of, batch_size, workers): start the workers,
 * wait for them, return what they wrote (members, releases, expiries,
 * expired points).  Called by run_maintenance(workers => n).
 */
Datum
loyalty_maintain_parallel(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	int32		batch_size;
	int32		workers;
	dsm_segment *segment;
	MaintShared *shared;
	StartedWorkers *w;
	TupleDesc	tupdesc;
	Datum		result[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of, batch_size and workers must not be NULL")));
	as_of = PG_GETARG_TIMESTAMPTZ(0);
	batch_size = PG_GETARG_INT32(1);
	workers = PG_GETARG_INT32(2);
	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite instant")));
	if (batch_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive")));
	if (workers < 1 || workers > max_worker_processes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers must be between 1 and max_worker_processes (%d), not %d",
						max_worker_processes, workers),
				 errhint("Pass workers => 0 to settle the lots in this transaction.")));
	/* the workers would write what this transaction may not (or wait forever on a standby) */
	PreventCommandIfReadOnly("run_maintenance with workers");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("run_maintenance with workers needs READ COMMITTED"),
				 errdetail("The workers commit on their own; a %s transaction would not see what they wrote.",
						   IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Call it in a READ COMMITTED transaction, or pass workers => 0.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	segment = member_ranges(batch_size);
	if (segment == NULL)
	{
		result[0] = result[1] = result[2] = result[3] = Int64GetDatum(0);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), result, nulls)));
	}
	shared = dsm_segment_address(segment);
	shared->database = MyDatabaseId;
	shared->role = GetUserId();
	shared->caller_pid = MyProcPid;
	shared->as_of = as_of;
	shared->batch_size = batch_size;
	/* the caller's lock_timeout, or a minute when it has none */
	shared->lock_timeout = LockTimeout > 0 ? LockTimeout : 60 * 1000;
	pg_atomic_init_u32(&shared->taken, 0);
	pg_atomic_init_u32(&shared->ranges_done, 0);
	pg_atomic_init_u32(&shared->stop, 0);
	SpinLockInit(&shared->mutex);

	w = palloc0(sizeof(StartedWorkers));
	w->shared = shared;
	w->handles = palloc0(sizeof(BackgroundWorkerHandle *) * workers);
	PG_ENSURE_ERROR_CLEANUP(stop_workers, PointerGetDatum(w));
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		/* as MODULE_PATHNAME, so that it loads from where the functions do */
		strlcpy(worker.bgw_library_name, "$libdir/loyalty", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "loyalty_maintenance_worker", BGW_MAXLEN);
		strlcpy(worker.bgw_name, "loyalty maintenance worker", BGW_MAXLEN);
		strlcpy(worker.bgw_type, "loyalty maintenance", BGW_MAXLEN);
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(segment));
		worker.bgw_notify_pid = MyProcPid;

		for (w->started = 0; w->started < workers; w->started++)
			if (!RegisterDynamicBackgroundWorker(&worker, &w->handles[w->started]))
				break;
		if (w->started == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start a background worker for maintenance"),
					 errdetail("All max_worker_processes (%d) slots are in use.", max_worker_processes),
					 errhint("Raise max_worker_processes, or pass workers => 0.")));
		wait_for_workers(w);
	}
	PG_END_ENSURE_ERROR_CLEANUP(stop_workers, PointerGetDatum(w));

	if (shared->failed)
		ereport(ERROR,
				(errcode(shared->sqlerrcode),
				 errmsg("%s", shared->message),
				 shared->detail[0] ? errdetail("%s", shared->detail) : 0,
				 errcontext("loyalty maintenance worker; batches it and the other workers committed before the error stay written")));
	if (shared->finished != w->started)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("%d of %d maintenance workers stopped before the end",
						w->started - shared->finished, w->started),
				 errhint("See the server log. Members left due are settled by the next run.")));

	/*
	 * The workers committed with synchronous_commit off: flush their WAL up
	 * to their last commit record now, so that what this call reports is
	 * durable when it returns, whether or not the caller's own transaction
	 * writes anything.  (Not up to GetXLogInsertRecPtr(): on a page boundary
	 * it points past the next page's header, which is not written yet, and
	 * XLogFlush refuses a request past the end of generated WAL.)
	 */
	if (shared->last_commit_end != InvalidXLogRecPtr)
		XLogFlush(shared->last_commit_end);

	result[0] = Int64GetDatum(shared->members);
	result[1] = Int64GetDatum(shared->releases);
	result[2] = Int64GetDatum(shared->expiries);
	result[3] = Int64GetDatum(shared->expired_points);
	dsm_detach(segment);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), result, nulls)));
}
