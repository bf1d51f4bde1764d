# loyalty: PGXS build.  `make && make install`, then `make installcheck`
# against your own server, or scripts/test for a throwaway cluster.
EXTENSION = loyalty
MODULE_big = loyalty
EXTVERSION = 0.1

OBJS = src/loyalty.o src/lots.o src/lots_io.o src/lots_funcs.o src/tz.o \
	src/activity.o src/activity_io.o src/activity_funcs.o src/compat.o \
	src/program.o src/rules.o src/tiers.o src/purchase_sql.o src/purchase_read.o src/purchase_members.o \
	src/purchase_awards.o src/purchase_write.o src/purchase_insert.o src/purchase_change.o \
	src/maintenance.o src/app_tables.o src/app_read.o src/timeline.o

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

TESTS = $(wildcard sql/[0-9]*.sql)
REGRESS = $(patsubst sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
# isolationtester specs (specs/*.spec, expected/*.out); each creates the extension
ISOLATION = $(patsubst specs/%.spec,%,$(wildcard specs/*.spec))

PG_CFLAGS = -Wall -Wextra -Werror
PG_CONFIG ?= pg_config
# PostgreSQL's own headers are not -Wextra clean; treat them as system headers
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(wildcard src/*.h)

# pgTAP suite: needs a running server (PG* environment) with pgtap available.
.PHONY: prove
prove:
	pg_prove --ext .sql -r test/
