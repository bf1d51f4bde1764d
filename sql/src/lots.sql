------------------------------------------------------------------------------
-- The lots type: a member's points as expiring lots (src/lots*.c)
------------------------------------------------------------------------------

CREATE TYPE loyalty.lots;

-- STABLE like timestamptz_in: input without a zone is read in the session's TimeZone
CREATE FUNCTION loyalty.lots_in(cstring) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_in' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_out(loyalty.lots) RETURNS cstring
	AS 'MODULE_PATHNAME', 'lots_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_recv(internal) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_send(loyalty.lots) RETURNS bytea
	AS 'MODULE_PATHNAME', 'lots_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.lots (
	INPUT = loyalty.lots_in,
	OUTPUT = loyalty.lots_out,
	RECEIVE = loyalty.lots_recv,
	SEND = loyalty.lots_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE loyalty.lots IS
	'points as lots sorted by expiry, pending lots with their release instant, and debt';

CREATE FUNCTION loyalty.lots_eq(loyalty.lots, loyalty.lots) RETURNS boolean
	AS 'MODULE_PATHNAME', 'lots_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_ne(loyalty.lots, loyalty.lots) RETURNS boolean
	AS 'MODULE_PATHNAME', 'lots_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR loyalty.= (
	LEFTARG = loyalty.lots, RIGHTARG = loyalty.lots, PROCEDURE = loyalty.lots_eq,
	COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>)
);
CREATE OPERATOR loyalty.<> (
	LEFTARG = loyalty.lots, RIGHTARG = loyalty.lots, PROCEDURE = loyalty.lots_ne,
	COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=)
);

CREATE FUNCTION loyalty.lots_add(lots loyalty.lots, points bigint, expires_at timestamptz)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_add(loyalty.lots, bigint, timestamptz) IS
	'add a lot usable until expires_at (infinity: never expires); pays off debt first';

CREATE FUNCTION loyalty.lots_add_pending(lots loyalty.lots, points bigint,
										 release_at timestamptz, expires_at timestamptz)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_add_pending' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_spend(lots loyalty.lots, points bigint, as_of timestamptz,
								   allow_debt boolean DEFAULT false,
								   OUT remaining loyalty.lots, OUT drawn loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_spend' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_spend(loyalty.lots, bigint, timestamptz, boolean) IS
	'spend FIFO by soonest expiry among lots usable at as_of; drawn holds what was taken';

CREATE FUNCTION loyalty.lots_expire(lots loyalty.lots, as_of timestamptz,
									OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_settle(lots loyalty.lots, as_of timestamptz,
									OUT remaining loyalty.lots, OUT released loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_settle' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_expire_all(lots loyalty.lots,
										OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire_all' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_expire_all(loyalty.lots) IS
	'expire every available lot whatever its expiry (inactivity); pending lots stay';
CREATE FUNCTION loyalty.lots_expire_usable(lots loyalty.lots, at timestamptz,
										   OUT remaining loyalty.lots, OUT expired loyalty.lots)
	AS 'MODULE_PATHNAME', 'lots_expire_usable' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_expire_usable(loyalty.lots, timestamptz) IS
	'an inactivity deadline at "at": every lot still usable then expires; pending lots and lots expiring by then stay';
CREATE FUNCTION loyalty.lots_next_event(loyalty.lots) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'lots_next_event' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_next_event(loyalty.lots) IS
	'the next release or finite expiry in the lots; NULL when nothing will change';
CREATE FUNCTION loyalty.lots_settlement(lots loyalty.lots, as_of timestamptz,
										OUT remaining loyalty.lots, OUT kinds text[],
										OUT points bigint[], OUT entry_lots loyalty.lots[],
										OUT effective timestamptz[])
	AS 'MODULE_PATHNAME', 'lots_settlement' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_settlement(loyalty.lots, timestamptz) IS
	'the lots left after settling at as_of, and the release and expire entries that settling writes';

CREATE FUNCTION loyalty.lots_merge(loyalty.lots, loyalty.lots) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_merge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_subtract(loyalty.lots, loyalty.lots) RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_subtract' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_apply(state loyalty.lots, delta loyalty.lots, op text)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_apply' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION loyalty.lots_available(lots loyalty.lots, as_of timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_available' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_pending(lots loyalty.lots, as_of timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_pending' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_expiring(lots loyalty.lots, from_ts timestamptz, to_ts timestamptz)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_expiring' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_total(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_total' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_points(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_points' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.lots_points(loyalty.lots) IS 'points in lots and pending lots, before debt';
CREATE FUNCTION loyalty.lots_debt(loyalty.lots) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lots_debt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.lots_entries(lots loyalty.lots,
									 OUT state text, OUT release_at timestamptz,
									 OUT expires_at timestamptz, OUT points bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'lots_entries' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 4;

-- Rebuild lots from ledger entries: replay(lots, op ORDER BY effective_at, id)
CREATE AGGREGATE loyalty.replay(loyalty.lots, text) (
	SFUNC = loyalty.lots_apply,
	STYPE = loyalty.lots,
	INITCOND = '{}',
	PARALLEL = SAFE
);
-- The same for verify(): NULL instead of an error when an entry removes lots
-- that the replayed state does not hold
CREATE FUNCTION loyalty._lots_apply_checked(state loyalty.lots, delta loyalty.lots, op text)
	RETURNS loyalty.lots
	AS 'MODULE_PATHNAME', 'lots_apply_checked' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE loyalty._replay_checked(loyalty.lots, text) (
	SFUNC = loyalty._lots_apply_checked,
	STYPE = loyalty.lots,
	INITCOND = '{}',
	PARALLEL = SAFE
);

-- A member's ledger on the time axis (src/timeline.c): the lots it gives as
-- of an instant ('read'), or everything with what fell due by as_of written
-- out ('settle', for writers), or the recorded entries checked strictly
-- ('verify').  Feed it in the order of the time axis: ORDER BY
-- effective_at, (kind IN ('expire', 'reinstate') AND reason IS NOT DISTINCT
-- FROM 'inactivity') DESC, id -- an inactivity expiry, and its withdrawal,
-- before the other entries of its instant.
CREATE TYPE loyalty._timeline_result AS (
	lots			loyalty.lots,
	problem			text,
	kinds			text[],
	points			bigint[],
	entry_lots		loyalty.lots[],
	effective		timestamptz[],
	reasons			text[],
	last_activity	timestamptz
);
CREATE FUNCTION loyalty._timeline_step(internal, program_id integer, mode text, as_of timestamptz,
									   settled_at timestamptz, kind text, points bigint,
									   lots loyalty.lots, reason text, effective_at timestamptz,
									   id bigint)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'loyalty_timeline_step' LANGUAGE C;
CREATE FUNCTION loyalty._timeline_final(internal) RETURNS loyalty._timeline_result
	AS 'MODULE_PATHNAME', 'loyalty_timeline_final' LANGUAGE C;
CREATE AGGREGATE loyalty._timeline(program_id integer, mode text, as_of timestamptz,
								   settled_at timestamptz, kind text, points bigint,
								   lots loyalty.lots, reason text, effective_at timestamptz,
								   id bigint) (
	SFUNC = loyalty._timeline_step,
	STYPE = internal,
	FINALFUNC = loyalty._timeline_final
);

