------------------------------------------------------------------------------
-- The activity type: purchase activity in calendar-month buckets
-- (src/activity*.c)
------------------------------------------------------------------------------

CREATE TYPE loyalty.activity;

CREATE FUNCTION loyalty.activity_in(cstring) RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_out(loyalty.activity) RETURNS cstring
	AS 'MODULE_PATHNAME', 'activity_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_recv(internal) RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_send(loyalty.activity) RETURNS bytea
	AS 'MODULE_PATHNAME', 'activity_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.activity (
	INPUT = loyalty.activity_in,
	OUTPUT = loyalty.activity_out,
	RECEIVE = loyalty.activity_recv,
	SEND = loyalty.activity_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE loyalty.activity IS
	'spend, orders and points per calendar month (the latest 120 months), older months folded into "before"';

CREATE FUNCTION loyalty.activity_eq(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'activity_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.activity_ne(loyalty.activity, loyalty.activity) RETURNS boolean
	AS 'MODULE_PATHNAME', 'activity_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR loyalty.= (
	LEFTARG = loyalty.activity, RIGHTARG = loyalty.activity, PROCEDURE = loyalty.activity_eq,
	COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>)
);
CREATE OPERATOR loyalty.<> (
	LEFTARG = loyalty.activity, RIGHTARG = loyalty.activity, PROCEDURE = loyalty.activity_ne,
	COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=)
);

CREATE FUNCTION loyalty.activity_add(a loyalty.activity, month date, spend numeric,
									 orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_add(loyalty.activity, date, numeric, bigint, bigint) IS
	'add to the bucket of the calendar month containing month; spend rounded to 4 decimals';

-- STABLE like tz_add: the zone is looked up in the time zone database
CREATE FUNCTION loyalty.activity_add(a loyalty.activity, at timestamptz, time_zone text,
									 spend numeric, orders bigint, points bigint)
	RETURNS loyalty.activity
	AS 'MODULE_PATHNAME', 'activity_add_at' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_add(loyalty.activity, timestamptz, text, numeric, bigint, bigint) IS
	'add to the bucket of the calendar month of at in time_zone; spend rounded to 4 decimals';

CREATE FUNCTION loyalty.activity_sum(a loyalty.activity, from_month date, to_month date,
									 OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'activity_sum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_sum(loyalty.activity, date, date) IS
	'totals of the months from the month of from_month to the month of to_month; infinities are open ends, and from_month = -infinity includes "before"';

CREATE FUNCTION loyalty.activity_total(a loyalty.activity,
									   OUT spend numeric, OUT orders bigint, OUT points bigint)
	AS 'MODULE_PATHNAME', 'activity_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_total(loyalty.activity) IS
	'lifetime totals: "before" plus every bucket';

CREATE FUNCTION loyalty.activity_buckets(a loyalty.activity)
	RETURNS TABLE (month date, spend numeric, orders bigint, points bigint)
	AS 'MODULE_PATHNAME', 'activity_buckets' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 12;
COMMENT ON FUNCTION loyalty.activity_buckets(loyalty.activity) IS
	'one row per kept month, oldest first, month as its first day; the "before" bucket is not listed (see activity_sum from -infinity)';

CREATE FUNCTION loyalty.activity_month(at timestamptz, time_zone text) RETURNS date
	AS 'MODULE_PATHNAME', 'activity_month' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.activity_month(timestamptz, text) IS
	'first day of the calendar month of at in time_zone';

