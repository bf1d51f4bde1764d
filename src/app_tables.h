/*
 * The application's tables named by the configuration (app_tables.c): what
 * the checks and the reads as the table's owner (app_read.c) share.
 * Private to loyalty, not installed.
 */
#ifndef LOYALTY_APP_TABLES_H
#define LOYALTY_APP_TABLES_H

#include "postgres.h"

#include "access/attnum.h"
#include "access/htup.h"
#include "utils/relcache.h"
#include "fmgr.h"

/* what a column is read for decides the types it may have */
typedef enum ColumnKind
{
	COL_KEY,					/* member and customer keys */
	COL_AMOUNT,
	COL_TIME,
	COL_LABEL,					/* status, channel, category, store */
	COL_REFERENCE,
	COL_CONDITION				/* named by an earning rule's conditions */
} ColumnKind;

typedef struct ColumnUse
{
	const char *name;			/* NULL: not configured */
	const char *what;			/* "member", "amount", ... for messages */
	ColumnKind	kind;
} ColumnUse;

/* why a relation or column cannot be used; NULL pointers mean "fine" */
typedef struct Problem
{
	int			sqlstate;
	char	   *message;
	char	   *detail;
	char	   *hint;
} Problem;

/* what loyalty_become_owner() saves for loyalty_end_owner() */
typedef struct AsOwner
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} AsOwner;

/* A tracked table's configuration as stored (SPI connected). */
typedef struct TrackedRow
{
	bool		found;
	bool		active;
	bool		dropped;		/* table_name is NULL: the table was dropped */
	Oid			relid;
	int32		program_id;
	char	   *cols[7];
	char	  **refs;
	int			nrefs;
	char	  **reversed;
	int			nreversed;
} TrackedRow;

extern Problem *loyalty_column_problem(Oid relid, const ColumnUse *use, AttrNumber *attnum,
									   Oid *typid);
extern void loyalty_raise_problem(Problem *p);
extern void loyalty_require_arg(FunctionCallInfo fcinfo, int n, const char *what);
extern void loyalty_become_owner(Oid relid, AsOwner *saved);
extern void loyalty_end_owner(AsOwner *saved);
extern void loyalty_read_tracked(int32 track_id, TrackedRow *t);
extern Problem *loyalty_tracked_problem(TrackedRow *t);
extern bool loyalty_read_customers(int32 program_id, Oid *relid, char **column);
extern Problem *loyalty_customers_problem(Oid relid, char *column, AttrNumber *attnum);

/* app_read.c */
extern HeapTuple loyalty_moved_row(Oid rootid, Relation part, HeapTuple old, const int *refs,
								   int nrefs, TupleDesc *desc);

#endif
