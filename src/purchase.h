/*
 * Automatic accrual from an application's own purchases table: what the
 * files of the purchase triggers share.  Private to loyalty, not installed.
 *
 * loyalty.track_purchases() attaches two triggers:
 *   - purchase_insert (purchase_insert.c): AFTER INSERT FOR EACH STATEMENT
 *     with a transition table, so an INSERT ... SELECT or COPY of a million
 *     rows is one set: one query locks (and enrolls) the members, ledger
 *     rows go in batches of arrays, one UPDATE writes the new balances.
 *   - purchase_change (purchase_change.c): AFTER UPDATE OR DELETE FOR EACH
 *     ROW: an amount change awards or reverses the difference; a status
 *     moving to a reversed value, or a DELETE, reverses the award.
 * The trigger's first argument is the loyalty.tracked_tables id.
 *
 * Both read rows and their table's configuration with purchase_read.c,
 * lock members with purchase_members.c, cap, count and upgrade with
 * purchase_awards.c and write with purchase_write.c; every SQL statement
 * they run is in purchase_sql.c.
 *
 * Exactly once: the initial award of a purchase is unique on
 * (track_id, reference) and inserted with ON CONFLICT DO NOTHING, so a
 * replayed row (a restore of the purchases table) awards nothing.
 */
#ifndef LOYALTY_PURCHASE_H
#define LOYALTY_PURCHASE_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/rel.h"

#include "activity.h"
#include "labels.h"
#include "lots.h"
#include "program.h"
#include "rules.h"

#define BONUS_SUFFIX "#first-purchase-bonus"
/* the reason of the entry that awards a deleted purchase inserted again */
#define REASON_REINSERTED "purchase inserted again"

/* column positions in the tracked table, resolved per statement */
typedef struct TrackCols
{
	int32		track_id;
	int32		program_id;
	int			member;
	int			amount;
	int			at;				/* 0 = purchase time is now() */
	int			status;
	int			label[NUM_LABELS];	/* channel, category, store */
	const struct RuleLabels *labels;	/* loyalty_track_labels() */
	int			nref;
	int			ref[INDEX_MAX_KEYS];
	int			nreversed;
	char	  **reversed;
	Oid			lots_type;
	Oid			activity_type;
} TrackCols;

typedef struct Purchase
{
	char	   *member_key;
	uint32		key_hash;		/* of member_key: sorts and finds members fast */
	int			member;			/* index into members */
	char	   *reference;
	PurchaseFacts facts;		/* with the flags reversed and duplicate */
} Purchase;

typedef struct MemberState
{
	char	   *key;
	uint32		key_hash;
	int32		program_id;		/* set when the member is found */
	LotsBuf		lots;
	bool		found;
	bool		dirty;
	bool		had_purchase;	/* first_purchase_at was set */
	TimestampTz first_purchase_at;
	TimestampTz last_activity_at;
	/* the three above as locked: what a refused (replayed) award must not move */
	bool		locked_had_purchase;
	TimestampTz locked_first_purchase_at;
	TimestampTz locked_last_activity_at;
	char	   *tier;
	Activity   *activity;
	char	   *locked_tier;	/* the tier before this statement */
	TimestampTz settled_at;		/* members.settled_at; DT_NOBEGIN when NULL */
	TimestampTz enroll_at;		/* its earliest purchase: enrolled_at, if enrolled */
	bool		replay;			/* its lots must be rebuilt from the ledger */
	/* corrections: the instants of the entries written for it */
	TimestampTz earliest_write;
	TimestampTz latest_write;
	bool		wrote_activity;
	bool		replayed;		/* some of its purchases were awarded before */
	bool		any_went_in;	/* with replayed: some of its rows went in */
	/* upgrades this statement qualified for, written once the awards are in */
	int			nups;
	int			maxups;
	const char **up_tier;
	TimestampTz *up_at;
	/* purchase points this statement awarded so far, for caps seen later */
	int			nawards;
	int			maxawards;
	TimestampTz *award_at;
	int64	   *award_points;
	/* caps: what this statement awarded so far, per (rule, period start) */
	int			ncaps;
	int			maxcaps;
	struct CapUse
	{
		int32		rule_id;
		TimestampTz start;		/* the cap's period: [start, end) */
		TimestampTz end;
		int64		used;
	}		   *caps;
} MemberState;

/* ledger rows waiting for the batch insert */
typedef struct PendingRows
{
	int			n;
	int			max;
	Datum	   *member_key;
	Datum	   *kind;
	Datum	   *points;
	Datum	   *lots;
	Datum	   *reference;
	Datum	   *reason;
	bool	   *reason_null;
	Datum	   *effective;
	int		   *member;			/* index into members */
	Numeric    *amount;			/* a purchase's award: its amount; NULL for a bonus */
} PendingRows;

/* Every SQL statement the purchase triggers run (purchase_sql.c). */
typedef enum PurchaseStmt
{
	STMT_TRACKED_TABLE,
	STMT_LOCK_MEMBER,
	STMT_LOCK_MEMBERS,
	STMT_ENROLL,
	STMT_LAST_SEQS,
	STMT_LATEST_ENTRIES,
	STMT_SETTLE,
	STMT_REBUILD,
	STMT_CAP_USED,
	STMT_TIER_UPGRADE,
	STMT_INSERT_ROWS,
	STMT_INSERT_NEW_ROWS,
	STMT_WRITE_MEMBER,
	STMT_UPDATE_MEMBERS,
	STMT_UPDATE_MEMBER,
	STMT_AWARD_OF,
	STMT_AWARD_PROGRAM,
	STMT_AWARDED_BY_OTHER,
	STMT_INSERT_ENTRY,
	STMT_TAKEN_BACK,
	NUM_PURCHASE_STMTS
} PurchaseStmt;

/* purchase_sql.c */
extern void loyalty_check_version(void);
extern void loyalty_purchase_plans_check(void);
extern SPIPlanPtr loyalty_purchase_plan(PurchaseStmt stmt, const TrackCols *tc);
extern int	loyalty_purchase_exec(PurchaseStmt stmt, const TrackCols *tc, Datum *args,
								  const char *nulls, bool read_only, long count);
extern char *loyalty_spi_text(HeapTuple tup, TupleDesc desc, int col);
extern ArrayType *loyalty_array_of(Datum *values, bool *nulls, int n, Oid type);

/* purchase_read.c */
extern int32 loyalty_track_id_arg(TriggerData *trigdata);
extern void loyalty_load_track(int32 track_id, Relation rel, TrackCols *tc);
extern void loyalty_track_labels(TrackCols *tc, Relation rel, ProgramConf *prog);
extern bool loyalty_references_unique(Relation rel, TrackCols *tc);
extern bool loyalty_read_purchase(TupleTableSlot *slot, TrackCols *tc, ProgramConf *prog,
								  Purchase *p);

/* purchase_members.c */
extern uint32 loyalty_member_hash(const char *key);
extern int	loyalty_member_order(uint32 hash_a, const char *a, uint32 hash_b, const char *b);
extern int	loyalty_purchase_cmp(const void *a, const void *b);
extern void loyalty_lock_members(TrackCols *tc, bool enroll, MemberState *members,
								 int nmembers);
extern bool loyalty_lock_member(TrackCols *tc, const char *key, bool enroll, TimestampTz at,
								MemberState *m);
extern void loyalty_latest_entries(MemberState *members, int nmembers, TimestampTz *latest);
extern void loyalty_plan_members(ProgramConf *prog, Purchase *purchases, int npurchases,
								 MemberState *members, int nmembers, bool check_latest);
extern void loyalty_settle_due(MemberState *m, TimestampTz at);
extern void loyalty_rebuild_member(MemberState *m);

/* purchase_awards.c */
extern int64 loyalty_apply_caps(ProgramConf *prog, MemberState *m, const PurchaseFacts *f,
								int64 points);
extern Lots *loyalty_award_lots(ProgramConf *prog, const ExpirySpec *expiry, TimestampTz at,
								int64 points, const char **kind);
extern void loyalty_count_activity(ProgramConf *prog, MemberState *m, Numeric amount, int sign,
								   int64 points, TimestampTz at);
extern void loyalty_uncount_row(ProgramConf *prog, MemberState *m, PendingRows *rows, int i);
extern void loyalty_times_from_inserted(MemberState *members, int nmembers, PendingRows *rows,
										const bool *went_in);
extern void loyalty_write_upgrades(ProgramConf *prog, MemberState *m);

/* purchase_change.c */
extern void loyalty_settle_purchase(TrackCols *tc, ProgramConf *prog, Purchase *p, bool award,
									Purchase *undo, const char *reason, const char *moved_from);

/* purchase_write.c */
extern int	loyalty_cstring_ptr_cmp(const void *a, const void *b);
extern void loyalty_rows_add(PendingRows *rows, int member, const char *member_key, const char *kind,
							 int64 points, Lots *lots, const char *reference,
							 const char *reason, TimestampTz at, Numeric amount);
extern bool *loyalty_rows_insert(TrackCols *tc, PendingRows *rows, int from, int n);
extern void loyalty_members_update(TrackCols *tc, MemberState *members, int nmembers);
extern void loyalty_write_one_member(TrackCols *tc, ProgramConf *prog, MemberState *m,
									 PendingRows *rows, bool *went_in);
extern void loyalty_insert_entry(TrackCols *tc, MemberState *m, const char *kind, int64 points,
								 Lots *lots, const char *reference, const char *reason,
								 TimestampTz at);
extern void loyalty_update_member(MemberState *m, TrackCols *tc);

#endif
