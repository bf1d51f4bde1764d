-- The C functions behind these SQL functions are named by one scheme in
-- 0.2: the type prefix for a type's support functions (activity_*),
-- loyalty_ for the rest.  The library keeps the 0.1 names as aliases
-- (src/compat.c) for databases still on 0.1; this points 0.1 databases at
-- the new names.

CREATE OR REPLACE FUNCTION loyalty.activity_eq(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'activity_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_ne(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'activity_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_add(a loyalty.activity, month date, spend numeric,
									 orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_add(a loyalty.activity, at timestamptz, time_zone text,
									 spend numeric, orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_add_at' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_sum(a loyalty.activity, from_month date, to_month date,
									 OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'activity_sum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_total(a loyalty.activity,
									   OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'activity_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty.activity_buckets(a loyalty.activity)
	RETURNS TABLE (month date, spend numeric, orders bigint, points bigint)
	AS 'MODULE_PATHNAME', 'activity_buckets' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 12;
CREATE OR REPLACE FUNCTION loyalty.activity_month(at timestamptz, time_zone text) RETURNS date
	AS 'MODULE_PATHNAME', 'activity_month' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION loyalty._maintain_parallel(as_of timestamptz, batch_size integer, workers integer,
										   OUT members bigint, OUT releases bigint,
										   OUT expiries bigint, OUT expired_points bigint)
	AS 'MODULE_PATHNAME', 'loyalty_maintain_parallel' LANGUAGE C VOLATILE;
