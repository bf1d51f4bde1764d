/*
 * loyalty: loyalty-program accounting inside PostgreSQL.
 *
 * One C file per concern: balance.c (lots), balance_io.c (text/binary I/O),
 * balance_funcs.c (SQL functions on balances), tz.c (calendar arithmetic in
 * a program's time zone).
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;
