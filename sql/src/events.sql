------------------------------------------------------------------------------
-- Behavioural events
------------------------------------------------------------------------------

CREATE FUNCTION loyalty.record_event(member text, action text, reference text,
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
	 WHERE x.program_id = m.program_id AND x.member_key = m.member_key
	   AND x.reference = record_event.reference;
	IF FOUND THEN
		IF ev.action <> record_event.action THEN
			RAISE EXCEPTION 'reference "%" was already used for a different event in program "%"',
							reference, p.code
				USING ERRCODE = 'LY004',
					  DETAIL = format('Event %s of member "%s" is action "%s".', ev.seq,
									  ev.member_key, ev.action),
					  HINT = 'Use a new reference for a new event; repeat an event with the same arguments.';
		END IF;
		SELECT * INTO l FROM loyalty.ledger x
		 WHERE x.program_id = ev.program_id AND x.member_key = ev.member_key AND x.seq = ev.seq;
		RETURN l;
	END IF;
	PERFORM loyalty._reference_unused(p, 'earn', m.member_key, reference);

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
		IF ref.member_key = m.member_key THEN
			RAISE EXCEPTION 'member "%" cannot refer themselves', m.member_key USING ERRCODE = 'LY019';
		END IF;
		IF ref.first_purchase_at IS NULL OR ref.first_purchase_at > at THEN
			RAISE EXCEPTION 'referred member "%" has not bought yet', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = 'A referral earns points once the new member''s first tracked purchase is recorded, at or before the event time.',
					  HINT = 'Record the referral after the referred member''s first purchase.';
		END IF;
		SELECT * INTO ev FROM loyalty.events x
		 WHERE x.program_id = p.id AND x.action = record_event.action AND x.referred_key = ref.member_key;
		IF FOUND THEN
			RAISE EXCEPTION 'member "%" was already referred', ref.member_key
				USING ERRCODE = 'LY019',
					  DETAIL = format('Event %s (reference "%s") credited member "%s".',
									  ev.seq, ev.reference, ev.member_key);
		END IF;
	ELSIF referred IS NOT NULL THEN
		RAISE EXCEPTION 'action "%" does not take a referred member', action USING ERRCODE = '22023';
	END IF;

	IF rule.cap_count IS NOT NULL THEN
		w := loyalty._period(at, rule.cap_period, p.time_zone);
		SELECT count(*) INTO n FROM loyalty.events x
		 WHERE x.program_id = m.program_id AND x.member_key = m.member_key AND x.action = rule.action
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
	INSERT INTO loyalty.events (program_id, member_key, seq, action, reference, referred_key,
								occurred_at, points)
	VALUES (p.id, m.member_key, l.seq, rule.action, reference, ref.member_key, at, rule.points);
	RETURN l;
END
$$;

CREATE FUNCTION loyalty.record_event(member anyelement, action text, reference text,
									 at timestamptz DEFAULT now(), program text DEFAULT NULL,
									 referred text DEFAULT NULL)
	RETURNS loyalty.ledger
	LANGUAGE sql
	AS $$ SELECT loyalty.record_event(member::text, action, reference, at, program, referred) $$;
COMMENT ON FUNCTION loyalty.record_event(anyelement, text, text, timestamptz, text, text) IS
	'award the points of a behavioural action (event_rules), once per reference, within caps';

