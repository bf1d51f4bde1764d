# loyalty: PGXS build.  `make && make install`, then `make installcheck`
# against your own server, or scripts/test for a throwaway cluster.
EXTENSION = loyalty
MODULE_big = loyalty
EXTVERSION = 0.1

OBJS = src/loyalty.o src/balance.o src/balance_io.o src/balance_funcs.o src/tz.o \
	src/activity.o src/activity_io.o \
	src/rules.o src/tiers.o src/purchases.o src/maintenance.o src/app_tables.o src/timeline.o
HEADERS = src/balance.h src/activity.h src/loyalty_errors.h src/loyalty_util.h src/loyalty_tz.h src/rules.h

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress tests (test/sql/*.sql, test/expected/*.out), named by topic as
# contrib does, listed in the order they read as a guide: the lots type first
TESTS = $(wildcard test/sql/*.sql)
REGRESS = lots programs earn_redeem tiers
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)
# a file missing from the list would never run: refuse to build without it
ifeq ($(origin REGRESS),file)
ifneq ($(sort $(REGRESS)),$(sort $(patsubst test/sql/%.sql,%,$(TESTS))))
$(error REGRESS must name every test/sql/*.sql file)
endif
endif
# isolationtester specs (test/specs/*.spec, test/expected/*.out); each
# creates the extension
ISOLATION = $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec))
ISOLATION_OPTS = --inputdir=test

PG_CFLAGS = -Wall -Wextra -Werror
PG_CONFIG ?= pg_config
# PostgreSQL's own headers are not -Wextra clean; treat them as system headers
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(HEADERS)

# pgTAP suite: needs a running server (PG* environment) with pgtap available.
.PHONY: prove
prove:
	pg_prove test/pgtap/*.sql
