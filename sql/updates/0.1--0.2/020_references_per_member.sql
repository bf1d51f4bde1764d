-- References are the member's own: the API's idempotency and the
-- uniqueness of cancellations, transfers, redemptions and events are per
-- (program, member, reference), so that a member's requests are checked
-- where the member's rows are (docs/concepts.md, Idempotency on reference).

DROP INDEX loyalty.ledger_reference;
CREATE UNIQUE INDEX ledger_reference ON loyalty.ledger
	(program_id, member_id, (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END), reference)
	WHERE reference IS NOT NULL AND track_id IS NULL
	  AND kind IN ('earn', 'pending', 'redeem', 'adjust');
DROP INDEX loyalty.ledger_cancel_reference;
CREATE UNIQUE INDEX ledger_cancel_reference ON loyalty.ledger (program_id, member_id, reference)
	WHERE kind = 'cancel' AND reference IS NOT NULL;
DROP INDEX loyalty.ledger_transfer_reference;
CREATE UNIQUE INDEX ledger_transfer_reference ON loyalty.ledger
	(program_id, member_id, reference, (points < 0))
	WHERE kind = 'transfer' AND reference IS NOT NULL;
DROP INDEX loyalty.reward_redemptions_reference;
CREATE UNIQUE INDEX reward_redemptions_reference ON loyalty.reward_redemptions
	(program_id, member_id, reference) WHERE reference IS NOT NULL;
ALTER TABLE loyalty.events DROP CONSTRAINT events_program_id_reference_key,
	ADD CONSTRAINT events_program_id_member_id_reference_key UNIQUE (program_id, member_id, reference);

DROP FUNCTION loyalty._reference_unused(loyalty.programs, text, text);
DROP FUNCTION loyalty.cancel_redemption(text, text);


-- An earlier entry under the same reference: the same request (return it) or a conflict.
CREATE OR REPLACE FUNCTION loyalty._replayed(program loyalty.programs, op text, reference text,
								  member_id bigint, points bigint)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	IF reference IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO l FROM loyalty.ledger
	 WHERE ledger.program_id = program.id AND ledger.member_id = _replayed.member_id
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	   AND ledger.reference = _replayed.reference
	   AND ledger.track_id IS NULL
	   AND kind IN ('earn', 'pending', 'redeem', 'adjust');
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF l.points <> _replayed.points THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Ledger entry %s holds %s points.', l.id, l.points),
				  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
	END IF;
	RETURN l;
END
$$;

-- LY004 when an API entry of this operation for the member already uses the
-- reference.
CREATE FUNCTION loyalty._reference_unused(program loyalty.programs, op text, member_id bigint,
										  reference text)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	l loyalty.ledger;
BEGIN
	SELECT * INTO l FROM loyalty.ledger
	 WHERE ledger.program_id = program.id AND ledger.member_id = _reference_unused.member_id
	   AND ledger.reference = _reference_unused.reference
	   AND ledger.track_id IS NULL
	   AND (CASE kind WHEN 'pending' THEN 'earn' ELSE kind END) = op
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'reference "%" was already used for a different % in program "%"',
						reference, op, program.code
			USING ERRCODE = 'LY004',
				  DETAIL = format('Ledger entry %s holds %s points.', l.id, l.points),
				  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION loyalty.redeem_reward(member text, reward text, reference text DEFAULT NULL,
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
		 WHERE x.program_id = p.id AND x.member_id = m.id AND x.reference = redeem_reward.reference;
		IF FOUND THEN
			IF rr.reward_id <> r.id THEN
				RAISE EXCEPTION 'reference "%" was already used for a different redeem in program "%"',
								reference, p.code
					USING ERRCODE = 'LY004',
						  DETAIL = format('Redemption %s is reward id %s.', rr.id, rr.reward_id),
						  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
			END IF;
			SELECT * INTO l FROM loyalty.ledger WHERE id = rr.ledger_id;
			RETURN l;
		END IF;
		PERFORM loyalty._reference_unused(p, 'redeem', m.id, reference);
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
		 WHERE x.member_id = m.id AND x.reward_id = r.id AND x.cancelled_at IS NULL
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
	INSERT INTO loyalty.reward_redemptions (program_id, reward_id, member_id, reference, ledger_id,
											redeemed_at)
	VALUES (p.id, r.id, m.id, reference, l.id, l.effective_at);
	RETURN l;
END
$$;

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
	who bigint;
	n bigint;
	first_id bigint;
BEGIN
	IF reference IS NULL THEN
		RAISE EXCEPTION 'reference must not be null' USING ERRCODE = '22004';
	END IF;
	IF member IS NOT NULL THEN
		who := (loyalty._member(p, member, false)).id;
	END IF;
	SELECT count(*), min(l.id) INTO n, first_id FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.kind = 'redeem' AND l.reference = cancel_redemption.reference
	   AND l.track_id IS NULL AND (who IS NULL OR l.member_id = who);
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
	SELECT * INTO d FROM loyalty.ledger WHERE id = first_id;
	SELECT * INTO m FROM loyalty.members WHERE id = d.member_id FOR UPDATE;
	SELECT * INTO c FROM loyalty.ledger l
	 WHERE l.program_id = p.id AND l.member_id = m.id AND l.kind = 'cancel'
	   AND l.reference = cancel_redemption.reference;
	IF FOUND THEN
		RETURN c;
	END IF;

	m := loyalty._settled(p, m);
	m.balance := loyalty.lots_merge(m.balance, d.lots);
	c := loyalty._append(p, m.id, 'cancel', -d.points, d.lots, reference, 'redemption cancelled', now());
	s := loyalty.lots_expire(m.balance, now());
	FOR e IN SELECT * FROM loyalty.lots_entries(s.expired) WHERE lots_entries.state = 'lot' LOOP
		INSERT INTO loyalty.ledger (program_id, member_id, kind, points, lots, reference, reason,
									effective_at)
		VALUES (p.id, m.id, 'expire', -e.points, loyalty.lots_add('{}', e.points, e.expires_at),
				reference, 'expired before the redemption was cancelled', now());
	END LOOP;
	-- a cancellation is not activity (docs/concepts.md, Inactivity)
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, m, s.remaining), settled_at = now()
	 WHERE id = m.id;

	UPDATE loyalty.reward_redemptions x SET cancelled_at = now()
	 WHERE x.ledger_id = d.id
	RETURNING * INTO rr;
	IF FOUND THEN
		UPDATE loyalty.rewards SET stock = stock + 1 WHERE id = rr.reward_id AND stock IS NOT NULL;
	END IF;
	RETURN c;
END
$$;
COMMENT ON FUNCTION loyalty.cancel_redemption(text, text, text) IS
	'give back the points of a redeem or redeem_reward with their original expiry; idempotent';

REVOKE EXECUTE ON FUNCTION loyalty.cancel_redemption(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION loyalty._reference_unused(loyalty.programs, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.cancel_redemption(text, text, text) TO loyalty_app;


-- Move points between two members of a program: the sender's lots drawn
-- FIFO go to the receiver with their expiry.  Both members are locked in id
-- order, so transfers that cross cannot deadlock.
CREATE OR REPLACE FUNCTION loyalty._transfer(p loyalty.programs, from_member text, to_member text,
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
	IF a.id = b.id THEN
		RAISE EXCEPTION 'cannot transfer points from a member to the same member'
			USING ERRCODE = '22023', DETAIL = format('Both sides are member "%s".', a.member_key);
	END IF;
	PERFORM 1 FROM loyalty.members WHERE id IN (a.id, b.id) ORDER BY id FOR UPDATE;
	SELECT * INTO a FROM loyalty.members WHERE id = a.id;
	SELECT * INTO b FROM loyalty.members WHERE id = b.id;
	IF donation AND NOT EXISTS (SELECT 1 FROM loyalty.causes c WHERE c.member_id = b.id AND c.active) THEN
		RAISE EXCEPTION 'member "%" is not an active cause account', b.member_key
			USING ERRCODE = 'LY016',
				  HINT = 'Register it with loyalty.register_cause(), or use loyalty.transfer().';
	END IF;

	-- the reference is the sender's: its debit leg names the transfer, and the
	-- receiver's credit leg carries the same reference
	IF reference IS NOT NULL THEN
		SELECT * INTO debit FROM loyalty.ledger l
		 WHERE l.program_id = p.id AND l.member_id = a.id AND l.kind = 'transfer'
		   AND l.reference = _transfer.reference AND l.points < 0;
		SELECT * INTO credit FROM loyalty.ledger l
		 WHERE l.program_id = p.id AND l.member_id = b.id AND l.kind = 'transfer'
		   AND l.reference = _transfer.reference AND l.points > 0;
		IF debit.id IS NOT NULL AND credit.id IS NOT NULL AND debit.points = -points
		   AND credit.points = points AND debit.recorded_at = credit.recorded_at
		   AND debit.reason = format('%s to %s', what, b.member_key)
		   AND credit.reason = format('%s from %s', what, a.member_key) THEN
			RETURN NEXT debit;
			RETURN NEXT credit;
			RETURN;
		END IF;
		IF debit.id IS NOT NULL OR credit.id IS NOT NULL THEN
			RAISE EXCEPTION 'reference "%" was already used for a different transfer in program "%"',
							reference, p.code
				USING ERRCODE = 'LY004',
					  DETAIL = CASE WHEN debit.id IS NOT NULL
								THEN format('Ledger entry %s sends %s points from member "%s".',
											debit.id, -debit.points, a.member_key)
								ELSE format('Ledger entry %s gives %s points to member "%s".',
											credit.id, credit.points, b.member_key) END,
					  HINT = 'Use a new reference for a new request; repeat a request with the same arguments.';
		END IF;
	END IF;

	a := loyalty._settled(p, a);
	PERFORM loyalty._need_points(a, points, initcap(what));
	-- the receiver's releases and expiries are written before the credit, as
	-- they are applied before it (a release pays debt before the credit would)
	b := loyalty._settled(p, b);
	s := loyalty.lots_spend(a.balance, points, now());
	debit := loyalty._append(p, a.id, 'transfer', -points, s.drawn, reference,
							 format('%s to %s', what, b.member_key), now());
	credit := loyalty._append(p, b.id, 'transfer', points, s.drawn, reference,
							  format('%s from %s', what, a.member_key), now());
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, a, s.remaining),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = a.id;
	UPDATE loyalty.members
	   SET balance = loyalty._after_write(p, b, loyalty.lots_merge(b.balance, s.drawn)),
		   last_activity_at = greatest(last_activity_at, now()), settled_at = now()
	 WHERE id = b.id;
	RETURN NEXT debit;
	RETURN NEXT credit;
END
$$;

CREATE OR REPLACE FUNCTION loyalty.record_event(member text, action text, reference text,
									 at timestamptz DEFAULT now(), program text DEFAULT NULL,
									 referred text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
DECLARE
	p loyalty.programs := loyalty._program(program);
	m loyalty.members;
	ref loyalty.members;
	ev loyalty.events;
	rule loyalty.event_rules;
	w record;
	n bigint;
	l loyalty.ledger;
BEGIN
	IF action IS NULL THEN
		RAISE EXCEPTION 'action must not be null' USING ERRCODE = '22004';
	END IF;
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'an event needs a reference'
			USING ERRCODE = '22023', HINT = 'Pass a key that identifies the event, e.g. ''review-4711''.';
	END IF;
	IF at IS NULL OR NOT isfinite(at) THEN
		RAISE EXCEPTION 'event time must be a finite timestamp' USING ERRCODE = '22008';
	END IF;
	m := loyalty._member(p, member, true);

	SELECT * INTO ev FROM loyalty.events x
	 WHERE x.program_id = p.id AND x.member_id = m.id AND x.reference = record_event.reference;
	IF FOUND THEN
		IF ev.action <> record_event.action THEN
			RAISE EXCEPTION 'reference "%" was already used for a different event in program "%"',
							reference, p.code
				USING ERRCODE = 'LY004',
					  DETAIL = format('Event %s is action "%s".', ev.id, ev.action),
					  HINT = 'Use a new reference for a new event; repeat an event with the same arguments.';
		END IF;
		SELECT * INTO l FROM loyalty.ledger WHERE id = ev.ledger_id;
		RETURN l;
	END IF;
	PERFORM loyalty._reference_unused(p, 'earn', m.id, reference);

	SELECT * INTO rule FROM loyalty.event_rules x
	 WHERE x.program_id = p.id AND x.action = record_event.action AND x.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'action "%" earns nothing in loyalty program "%"', action, p.code
			USING ERRCODE = 'LY017',
				  DETAIL = format('Actions with an active rule: %s.',
								  coalesce((SELECT string_agg(x.action, ', ' ORDER BY x.action)
											  FROM loyalty.event_rules x
											 WHERE x.program_id = p.id AND x.active), 'none')),
				  HINT = 'Add a row to loyalty.event_rules.';
	END IF;

	IF rule.is_referral THEN
		IF referred IS NULL THEN
			RAISE EXCEPTION 'action "%" needs the referred member', action
				USING ERRCODE = 'LY019', HINT = 'Pass referred => the new member''s key.';
		END IF;
		ref := loyalty._member(p, referred, false);
		IF ref.id = m.id THEN
			RAISE EXCEPTION 'member "%" cannot refer themselves', m.member_key USING ERRCODE = 'LY019';
		END IF;
		IF ref.first_purchase_at IS NULL OR ref.first_purchase_at > at THEN
			RAISE EXCEPTION 'referred member "%" has not bought yet', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = 'A referral earns points once the new member''s first tracked purchase is recorded, at or before the event time.',
					  HINT = 'Record the referral after the referred member''s first purchase.';
		END IF;
		SELECT * INTO ev FROM loyalty.events x
		 WHERE x.program_id = p.id AND x.action = record_event.action AND x.referred_id = ref.id;
		IF FOUND THEN
			RAISE EXCEPTION 'member "%" was already referred', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = format('Event %s (reference "%s") credited member id %s.',
									  ev.id, ev.reference, ev.member_id);
		END IF;
	ELSIF referred IS NOT NULL THEN
		RAISE EXCEPTION 'action "%" does not take a referred member', action USING ERRCODE = '22023';
	END IF;

	IF rule.cap_count IS NOT NULL THEN
		w := loyalty._period(at, rule.cap_period, p.time_zone);
		SELECT count(*) INTO n FROM loyalty.events x
		 WHERE x.member_id = m.id AND x.action = rule.action
		   AND x.occurred_at >= w.starts AND x.occurred_at < w.ends;
		IF n >= rule.cap_count THEN
			RAISE EXCEPTION 'member "%" reached the cap for action "%"', m.member_key, action
				USING ERRCODE = 'LY018',
					  DETAIL = format('%s of %s events allowed %s already recorded%s.', n,
									  rule.cap_count, loyalty._per(rule.cap_period),
									  CASE WHEN rule.cap_period = 'ever' THEN ''
										   ELSE format(' (period %s to %s)', w.starts, w.ends) END);
		END IF;
	END IF;

	l := loyalty.earn(member, rule.points, reference, at, p.code);
	INSERT INTO loyalty.events (program_id, member_id, action, reference, referred_id, occurred_at,
								points, ledger_id)
	VALUES (p.id, m.id, rule.action, reference, ref.id, at, rule.points, l.id);
	RETURN l;
END
$$;
