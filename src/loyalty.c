/*
 * loyalty: loyalty-program accounting inside PostgreSQL.
 *
 * One C file per concern: lots.c (lots), lots_io.c (text/binary I/O),
 * lots_funcs.c (SQL functions on balances), tz.c (calendar arithmetic in
 * a program's time zone), program.c (programs, cached), rules.c (earning rules),
 * purchase_*.c (the triggers on tracked purchase tables), maintenance.c
 * (run_maintenance's background workers).
 */
#include "postgres.h"

#include "fmgr.h"

#include "program.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	loyalty_program_init();
}
