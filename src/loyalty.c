/*
 * loyalty: loyalty-program accounting inside PostgreSQL.
 *
 * The files of src/ and what each holds: the layout table in README.md.
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
