------------------------------------------------------------------------------
-- Transfers and donations
------------------------------------------------------------------------------

-- Move points between two members of a program: the sender's lots drawn
-- FIFO go to the receiver with their expiry.  Both members are locked in key
-- order (as the purchase triggers lock theirs), so transfers that cross
-- cannot deadlock.
CREATE FUNCTION loyalty._transfer(p loyalty.programs, from_member text, to_member text,
								  points bigint, reference text, donation boolean)
	RETURNS SETOF loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	a loyalty.members;
	b loyalty.members;
	debit loyalty.ledger;
	credit loyalty.ledger;
	s record;
	what text := CASE WHEN donation THEN 'donation' ELSE 'transfer' END;
BEGIN
	PERFORM loyalty._check_points(points);
	a := loyalty._member(p, from_member, false);
	b := loyalty._member(p, to_member, false);
	IF a.member_key = b.member_key THEN
		RAISE EXCEPTION 'cannot transfer points from a member to the same member'
			USING ERRCODE = '22023', DETAIL = format('Both sides are member "%s".', a.member_key);
	END IF;
	PERFORM 1 FROM loyalty.members x
	 WHERE x.program_id = p.id AND x.member_key IN (a.member_key, b.member_key)
	 ORDER BY x.member_key FOR UPDATE;
	SELECT * INTO a FROM loyalty.members WHERE program_id = a.program_id AND member_key = a.member_key;
	SELECT * INTO b FROM loyalty.members WHERE program_id = b.program_id AND member_key = b.member_key;
	IF donation AND NOT EXISTS (SELECT 1 FROM loyalty.causes c WHERE c.program_id = b.program_id AND c.member_key = b.member_key
							 AND c.active) THEN
		RAISE EXCEPTION 'member "%" is not an active cause account', b.member_key
			USING ERRCODE = 'LY016',
				  HINT = 'Register it with loyalty.register_cause(), or use loyalty.transfer().';
	END IF;

	-- the reference is the sender's: its debit leg names the transfer, and the
	-- receiver's credit leg carries the same reference
	IF reference IS NOT NULL THEN
		SELECT * INTO debit FROM loyalty.ledger l
		 WHERE l.program_id = a.program_id AND l.member_key = a.member_key AND l.kind = 'transfer'
		   AND l.reference = _transfer.reference AND l.points < 0;
		SELECT * INTO credit FROM loyalty.ledger l
		 WHERE l.program_id = b.program_id AND l.member_key = b.member_key AND l.kind = 'transfer'
		   AND l.reference = _transfer.reference AND l.points > 0;
		IF debit.seq IS NOT NULL AND credit.seq IS NOT NULL AND debit.points = -points
		   AND credit.points = points AND debit.recorded_at = credit.recorded_at
		   AND debit.reason = format('%s to %s', what, b.member_key)
		   AND credit.reason = format('%s from %s', what, a.member_key) THEN
			RETURN NEXT debit;
			RETURN NEXT credit;
			RETURN;
		END IF;
		IF debit.seq IS NOT NULL OR credit.seq IS NOT NULL THEN
			RAISE EXCEPTION 'reference "%" was already used for a different transfer in program "%"',
							reference, p.code
				USING ERRCODE = 'LY004',
					  DETAIL = CASE WHEN debit.seq IS NOT NULL
								THEN format('Entry %s of member "%s" sends %s points.',
											debit.seq, a.member_key, -debit.points)
								ELSE format('Entry %s of member "%s" receives %s points.',
											credit.seq, b.member_key, credit.points) END,
					  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
		END IF;
	END IF;

	a := loyalty._settled(p, a);
	PERFORM loyalty._need_points(a, points, initcap(what));
	-- the receiver's releases and expiries are written before the credit, as
	-- they are applied before it (a release pays debt before the credit would)
	b := loyalty._settled(p, b);
	s := loyalty.lots_spend(a.balance, points, now());
	debit := loyalty._append(p, a.member_key, 'transfer', -points, s.drawn, reference,
							 format('%s to %s', what, b.member_key), now());
	credit := loyalty._append(p, b.member_key, 'transfer', points, s.drawn, reference,
							  format('%s from %s', what, a.member_key), now());
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, a, s.remaining),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE program_id = a.program_id AND member_key = a.member_key;
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, b, loyalty.lots_merge(b.balance, s.drawn)),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE program_id = b.program_id AND member_key = b.member_key;
	RETURN NEXT debit;
	RETURN NEXT credit;
END
$$;

CREATE FUNCTION loyalty.transfer(from_member text, to_member text, points bigint,
								 reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	AS $$ SELECT * FROM loyalty._transfer(loyalty._program(program), from_member, to_member,
										  points, reference, false) $$;

CREATE FUNCTION loyalty.transfer(from_member anyelement, to_member anyelement, points bigint,
								 reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT * FROM loyalty.transfer(from_member::text, to_member::text, points, reference, program) $$;
COMMENT ON FUNCTION loyalty.transfer(anyelement, anyelement, bigint, text, text) IS
	'move points between two members; the receiver gets the sender''s lots with their expiry';

CREATE FUNCTION loyalty.register_cause(member text, name text, program text DEFAULT NULL)
	RETURNS loyalty.causes
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	m loyalty.members := loyalty.enroll(member, program);
	c loyalty.causes;
BEGIN
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'a cause needs a name' USING ERRCODE = '22023';
	END IF;
	INSERT INTO loyalty.causes AS x (program_id, member_key, name)
	VALUES (m.program_id, m.member_key, register_cause.name)
	ON CONFLICT (program_id, member_key) DO UPDATE SET name = excluded.name, active = true
	RETURNING * INTO c;
	RETURN c;
END
$$;
COMMENT ON FUNCTION loyalty.register_cause(text, text, text) IS
	'enroll a member key as a cause account that may receive donations';

CREATE FUNCTION loyalty.donate(member text, cause text, points bigint,
							   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
	AS $$ SELECT * FROM loyalty._transfer(loyalty._program(program), member, cause, points,
										  reference, true) $$;

CREATE FUNCTION loyalty.donate(member anyelement, cause text, points bigint,
							   reference text DEFAULT NULL, program text DEFAULT NULL)
	RETURNS SETOF loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT * FROM loyalty.donate(member::text, cause, points, reference, program) $$;
COMMENT ON FUNCTION loyalty.donate(anyelement, text, bigint, text, text) IS
	'transfer points to a cause account';

