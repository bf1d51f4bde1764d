# loyalty: PGXS build.  `make && make install`, then `make installcheck`
# against your own server, or scripts/test for a throwaway cluster.
EXTENSION = loyalty
MODULE_big = loyalty
# the one version source: default_version in the control file
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'$$/\1/p" $(EXTENSION).control)
# META.json (for PGXN) repeats it: refuse to build when they differ
META_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' META.json)
ifneq ($(META_VERSION),$(EXTVERSION).0)
$(error META.json says version $(META_VERSION), $(EXTENSION).control $(EXTVERSION): make them agree)
endif

OBJS = src/loyalty.o src/lots.o src/lots_io.o src/lots_funcs.o src/tz.o \
	src/activity.o src/activity_io.o src/activity_funcs.o src/compat.o \
	src/program.o src/labels.o src/conditions.o src/rules.o src/tiers.o src/purchase_sql.o src/purchase_read.o src/purchase_members.o \
	src/purchase_awards.o src/purchase_write.o src/purchase_insert.o src/purchase_change.o \
	src/maintenance.o src/app_tables.o src/app_read.o src/timeline.o

# The install script of the current version is built from sql/src/, one file
# per concern, in this order (each file may use what the ones before define).
SQL_SOURCES = $(addprefix sql/src/, lots.sql activity.sql time_zones.sql tables.sql \
	internals.sql members.sql verify.sql accrual.sql maintenance.sql tiers.sql \
	rewards.sql transfers.sql events.sql reports.sql guards.sql \
	grants.sql)
# The upgrade script from the previous version is built the same way, from
# sql/updates/$(PREVVERSION)--$(EXTVERSION)/*.sql in name order, followed
# by every function and view of sql/src again (FUNCTION_SOURCES), as
# CREATE OR REPLACE: an upgraded database runs the same code as a fresh
# install by construction (an update step drops what cannot be replaced:
# a changed result type, materialized views, event triggers).
PREVVERSION = 0.1
UPDATE_SOURCES = $(sort $(wildcard sql/updates/$(PREVVERSION)--$(EXTVERSION)/*.sql))
FUNCTION_SOURCES = $(addprefix sql/src/, internals.sql members.sql verify.sql accrual.sql \
	maintenance.sql tiers.sql rewards.sql transfers.sql events.sql reports.sql guards.sql grants.sql)
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql
# released install and upgrade scripts, kept as they were released
DATA = $(filter-out $(DATA_built), $(wildcard sql/$(EXTENSION)--*.sql))

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
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -DLOYALTY_VERSION='"$(EXTVERSION)"'

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(wildcard src/*.h)

# pgTAP suite: needs a running server (PG* environment) with pgtap available.
.PHONY: prove
prove:
	pg_prove test/pgtap/*.sql

# (the Makefile and the directory too: a file taken out must rebuild them)
sql/$(EXTENSION)--$(EXTVERSION).sql: sql/src/header.sql.in $(SQL_SOURCES) $(EXTENSION).control Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/' sql/src/header.sql.in > $@
	cat $(SQL_SOURCES) >> $@

sql/$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql: sql/updates/header.sql.in $(UPDATE_SOURCES) \
		$(FUNCTION_SOURCES) sql/updates/$(PREVVERSION)--$(EXTVERSION) $(EXTENSION).control Makefile
	sed -e 's/@EXTVERSION@/$(EXTVERSION)/g' -e 's/@PREVVERSION@/$(PREVVERSION)/g' sql/updates/header.sql.in > $@
	cat $(UPDATE_SOURCES) >> $@
	printf '%s\n' '' '-- Every function and view of sql/src, created or replaced (Makefile, FUNCTION_SOURCES).' >> $@
	sed -e 's/^CREATE FUNCTION /CREATE OR REPLACE FUNCTION /' -e 's/^CREATE VIEW /CREATE OR REPLACE VIEW /' \
		$(FUNCTION_SOURCES) >> $@
