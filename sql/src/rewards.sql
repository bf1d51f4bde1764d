------------------------------------------------------------------------------
-- Rewards
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.redeem_reward(member text, reward text, reference text DEFAULT NULL,
									  program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	r loyalty.rewards;
	rr loyalty.reward_redemptions;
	w record;
	used bigint;
	l loyalty.ledger;
BEGIN
	IF reward IS NULL THEN
		RAISE EXCEPTION 'reward code must not be null' USING ERRCODE = '22004';
	END IF;
	m := loyalty._member(p, member, true);
	-- the member's lock orders repeats; the reward's lock orders its stock
	SELECT * INTO r FROM loyalty.rewards
	 WHERE rewards.program_id = p.id AND rewards.code = redeem_reward.reward
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'reward "%" does not exist in loyalty program "%"', reward, p.code
			USING ERRCODE = 'LY013',
				  HINT = 'See SELECT code FROM loyalty.rewards.';
	END IF;

	IF reference IS NOT NULL THEN
		SELECT * INTO rr FROM loyalty.reward_redemptions x
		 WHERE x.program_id = m.program_id AND x.member_key = m.member_key
		   AND x.reference = redeem_reward.reference;
		IF FOUND THEN
			IF rr.reward_id <> r.id THEN
				RAISE EXCEPTION 'reference "%" was already used for a different redeem in program "%"',
								reference, p.code
					USING ERRCODE = 'LY004',
						  DETAIL = format('Redemption %s of member "%s" is reward id %s.', rr.seq,
									  rr.member_key, rr.reward_id),
						  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
			END IF;
			SELECT * INTO l FROM loyalty.ledger x
			 WHERE x.program_id = rr.program_id AND x.member_key = rr.member_key AND x.seq = rr.seq;
			RETURN l;
		END IF;
		PERFORM loyalty._reference_unused(p, 'redeem', m.member_key, reference);
	END IF;

	IF NOT r.active OR now() < r.valid_from OR now() >= r.valid_until THEN
		RAISE EXCEPTION 'reward "%" is not available', r.code
			USING ERRCODE = 'LY014',
				  DETAIL = CASE WHEN NOT r.active THEN 'The reward is inactive.'
							ELSE format('It can be redeemed from %s until %s.',
										coalesce(r.valid_from::text, '-infinity'),
										coalesce(r.valid_until::text, 'infinity')) END,
				  HINT = 'Offer only rewards that are active and valid now.';
	END IF;
	IF r.tiers IS NOT NULL AND (m.tier IS NULL OR NOT m.tier = ANY (r.tiers)) THEN
		RAISE EXCEPTION 'reward "%" is not available for tier "%"', r.code, coalesce(m.tier, '(none)')
			USING ERRCODE = 'LY011',
				  DETAIL = format('The reward is for tiers %s.', array_to_string(r.tiers, ', ')),
				  HINT = 'Offer the member only rewards of their tier.';
	END IF;
	IF r.limit_per_member IS NOT NULL THEN
		w := loyalty._period(now(), r.limit_period, p.time_zone);
		SELECT count(*) INTO used FROM loyalty.reward_redemptions x
		 WHERE x.program_id = m.program_id AND x.member_key = m.member_key AND x.reward_id = r.id
		   AND x.cancelled_at IS NULL
		   AND x.redeemed_at >= w.starts AND x.redeemed_at < w.ends;
		IF used >= r.limit_per_member THEN
			RAISE EXCEPTION 'member "%" reached the limit of reward "%"', m.member_key, r.code
				USING ERRCODE = 'LY012',
					  DETAIL = format('%s of %s allowed %s already redeemed%s.', used,
									  r.limit_per_member, loyalty._per(r.limit_period),
									  CASE WHEN r.limit_period = 'ever' THEN ''
										   ELSE format(' (period %s to %s)', w.starts, w.ends) END),
					  HINT = 'A cancelled redemption no longer counts.';
		END IF;
	END IF;
	IF r.stock = 0 THEN
		RAISE EXCEPTION 'reward "%" is out of stock', r.code
			USING ERRCODE = 'LY010',
				  HINT = 'Restock with UPDATE loyalty.rewards SET stock = ...; cancellations return stock.';
	END IF;
	PERFORM loyalty._need_points(m, r.cost, format('Reward "%s"', r.code));

	l := loyalty.redeem(member, r.cost, reference, p.code);
	UPDATE loyalty.rewards SET stock = stock - 1 WHERE id = r.id AND stock IS NOT NULL;
	INSERT INTO loyalty.reward_redemptions (program_id, member_key, seq, reward_id, reference,
											redeemed_at)
	VALUES (p.id, m.member_key, l.seq, r.id, reference, l.effective_at);
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.redeem_reward(member anyelement, reward text, reference text DEFAULT NULL,
									  program text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.redeem_reward(member::text, reward, reference, program) $$;
COMMENT ON FUNCTION loyalty.redeem_reward(anyelement, text, text, text) IS
	'redeem a catalog reward: checks validity, tier, limit, stock and points; idempotent on reference';

-- Give back a redemption's points with their original expiry.  Lots that
-- expired meanwhile come back and expire at once, in an expire entry dated
-- with the cancellation (dating it at the old expiry would not replay: the
-- lot was spent then).  A reference is the member's own: without the
-- member, it must name one member's redemption.
CREATE FUNCTION loyalty.cancel_redemption(reference text, program text DEFAULT NULL,
										  member text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	d loyalty.ledger;
	c loyalty.ledger;
	m loyalty.members;
	s record;
	e record;
	rr loyalty.reward_redemptions;
	who text;
	n bigint;
	first_key text;
	first_seq bigint;
BEGIN
	IF reference IS NULL THEN
		RAISE EXCEPTION 'reference must not be null' USING ERRCODE = '22004';
	END IF;
	IF member IS NOT NULL THEN
		who := (loyalty._member(p, member, false)).member_key;
	END IF;
	-- with the member: one probe of ledger_reference; without: every
	-- member's redeem entries with the reference
	SELECT count(*), min(l.member_key), min(l.seq) INTO n, first_key, first_seq FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.kind = 'redeem' AND l.reference = cancel_redemption.reference
	   AND l.track_id IS NULL AND (who IS NULL OR l.member_key = who);
	IF n = 0 AND member IS NOT NULL THEN
		RAISE EXCEPTION 'no redemption with reference "%" in loyalty program "%"', reference, p.code
			USING ERRCODE = 'LY015', DETAIL = format('Member "%s" has none.', member),
				  HINT = 'Only redeem() and redeem_reward() calls made with a reference can be cancelled.';
	ELSIF n = 0 THEN
		RAISE EXCEPTION 'no redemption with reference "%" in loyalty program "%"', reference, p.code
			USING ERRCODE = 'LY015',
				  HINT = 'Only redeem() and redeem_reward() calls made with a reference can be cancelled.';
	ELSIF n > 1 THEN
		RAISE EXCEPTION 'reference "%" names redemptions of % members in loyalty program "%"',
						reference, n, p.code
			USING ERRCODE = 'LY021',
				  DETAIL = 'A reference is unique per member, not per program.',
				  HINT = 'Pass member => the key of the member whose redemption to cancel.';
	END IF;
	SELECT * INTO m FROM loyalty.members x
	 WHERE x.program_id = p.id AND x.member_key = first_key FOR UPDATE;
	SELECT * INTO d FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.member_key = first_key AND l.seq = first_seq;
	SELECT * INTO c FROM loyalty.ledger l
	 WHERE l.program_id = m.program_id AND l.member_key = m.member_key AND l.kind = 'cancel'
	   AND l.reference = cancel_redemption.reference;
	IF FOUND THEN
		RETURN c;
	END IF;

	m := loyalty._settled(p, m);
	m.balance := loyalty.lots_merge(m.balance, d.lots);
	c := loyalty._append(p, m.member_key, 'cancel', -d.points, d.lots, reference, 'redemption cancelled', now());
	s := loyalty.lots_expire(m.balance, now());
	FOR e IN SELECT * FROM loyalty.lots_entries(s.expired) WHERE lots_entries.state = 'lot' LOOP
		INSERT INTO loyalty.ledger (program_id, member_key, seq, kind, points, lots, reference,
									reason, effective_at)
		VALUES (p.id, m.member_key, loyalty._next_seq(p.id, m.member_key), 'expire', -e.points, loyalty.lots_add('{}', e.points, e.expires_at),
				reference, 'expired before the redemption was cancelled', now());
	END LOOP;
	-- a cancellation is not activity (docs/concepts.md, Inactivity)
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, m, s.remaining), settled_at = now()
	 WHERE program_id = m.program_id AND member_key = m.member_key;

	UPDATE loyalty.reward_redemptions x SET cancelled_at = now()
	 WHERE x.program_id = d.program_id AND x.member_key = d.member_key AND x.seq = d.seq
	RETURNING * INTO rr;
	IF FOUND THEN
		UPDATE loyalty.rewards SET stock = stock + 1 WHERE id = rr.reward_id AND stock IS NOT NULL;
	END IF;
	RETURN c;
END
$$;
COMMENT ON FUNCTION loyalty.cancel_redemption(text, text, text) IS
	'give back the points of a redeem or redeem_reward with their original expiry; idempotent';

