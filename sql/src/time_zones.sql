------------------------------------------------------------------------------
-- Time zones (src/tz.c)
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.tz_add(ts timestamptz, span interval, time_zone text)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'loyalty_tz_add' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.tz_add(timestamptz, interval, text) IS
	'ts + span with months and days counted on the wall clock of time_zone (DST-safe)';

CREATE FUNCTION loyalty.interval_sign(interval) RETURNS integer
	AS 'MODULE_PATHNAME', 'loyalty_interval_sign' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.interval_sign(interval) IS
	'1 if no field is negative and one is positive, 0 if all are zero, -1 if any field is negative';

CREATE FUNCTION loyalty.valid_time_zone(text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'loyalty_valid_time_zone' LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- End of the period containing ts, plus extra whole periods, in time_zone.
CREATE FUNCTION loyalty.period_end(ts timestamptz, period text, extra integer, time_zone text)
	RETURNS timestamptz
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF period NOT IN ('day', 'week', 'month', 'quarter', 'year') THEN
		RAISE EXCEPTION 'unknown period "%"', period
			USING ERRCODE = '22023', HINT = 'Use day, week, month, quarter or year.';
	END IF;
	IF extra < 0 THEN
		RAISE EXCEPTION 'extra periods must not be negative' USING ERRCODE = '22023';
	END IF;
	RETURN loyalty.tz_add(
		date_trunc(period, ts, time_zone),
		CASE period
			WHEN 'day' THEN make_interval(days => extra + 1)
			WHEN 'week' THEN make_interval(weeks => extra + 1)
			WHEN 'month' THEN make_interval(months => extra + 1)
			WHEN 'quarter' THEN make_interval(months => 3 * (extra + 1))
			WHEN 'year' THEN make_interval(years => extra + 1)
		END,
		time_zone);
END
$$;

