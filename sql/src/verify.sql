-- Members whose stored lots disagree with their ledger, and ledger entries
-- that point nowhere.  Empty means healthy.
CREATE FUNCTION loyalty.verify()
	RETURNS TABLE (program_code text, member_key text, seq bigint,
				   ledger_sum bigint, balance_total bigint, problem text)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
	WITH sums AS (
		SELECT l.program_id, l.member_key, sum(l.points) AS s
		  FROM loyalty.ledger l GROUP BY l.program_id, l.member_key
	)
	-- per member: the total; the ledger replayed strictly on the time axis
	-- (src/timeline.c, mode verify): every entry holds at its own instant,
	-- inactivity deadlines up to settled_at are written, and the result is
	-- the stored lots; last_activity_at.  One problem per member, the first
	-- of these.  (seq may skip numbers: a purchase statement numbers its
	-- rows before it knows which were awarded before.)
	SELECT p.code, m.member_key, NULL::bigint, coalesce(sums.s, 0)::bigint,
		   loyalty.lots_total(m.balance),
		   CASE WHEN coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
				THEN 'balance total differs from the sum of the ledger'
				WHEN (r.t).problem IS NOT NULL THEN (r.t).problem
				WHEN coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
				THEN 'stored lots differ from the ledger replayed in effective order'
				ELSE 'last_activity_at differs from the ledger' END
	  FROM loyalty.members m
	  JOIN loyalty.programs p ON p.id = m.program_id
	  LEFT JOIN sums ON sums.program_id = m.program_id AND sums.member_key = m.member_key
	  LEFT JOIN (SELECT mm.program_id, mm.member_key,
						loyalty._timeline(mm.program_id, 'verify', 'infinity', mm.settled_at,
										  l.kind, l.points, l.lots, l.reason, l.effective_at, l.seq
										  ORDER BY l.effective_at,
												   (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
												   l.seq) AS t
				   FROM loyalty.ledger l
				   JOIN loyalty.members mm
					 ON mm.program_id = l.program_id AND mm.member_key = l.member_key
				  GROUP BY mm.program_id, mm.member_key) r
		ON r.program_id = m.program_id AND r.member_key = m.member_key
	 WHERE coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
		OR (r.t).problem IS NOT NULL
		OR coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
		OR (r.t).last_activity IS DISTINCT FROM m.last_activity_at
	UNION ALL
	SELECT coalesce(p.code, sums.program_id::text), sums.member_key, NULL, sums.s::bigint, NULL,
		   CASE WHEN p.id IS NULL THEN 'ledger entries for a program that does not exist'
				ELSE 'ledger entries for a member that does not exist' END
	  FROM sums
	  LEFT JOIN loyalty.programs p ON p.id = sums.program_id
	 WHERE NOT EXISTS (SELECT 1 FROM loyalty.members m
						WHERE m.program_id = sums.program_id AND m.member_key = sums.member_key)
	UNION ALL
	-- a credit adds its lots (and any debt it carries); a debit removes its
	-- lots and leaves its debt part owed; a release moves no points
	SELECT coalesce(p.code, l.program_id::text), l.member_key, l.seq, NULL, NULL,
		   format('ledger entry %s moves %s points but its lots say %s',
				  l.seq, l.points, l.lots)
	  FROM loyalty.ledger l
	  LEFT JOIN loyalty.programs p ON p.id = l.program_id
	 WHERE l.points <> CASE
			WHEN l.kind = 'release' THEN 0
			WHEN l.points < 0 THEN -(loyalty.lots_points(l.lots) + loyalty.lots_debt(l.lots))
			ELSE loyalty.lots_total(l.lots) END
	ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION loyalty.verify() IS
	'rows for every member whose ledger does not replay on the time axis or gives other lots than stored, and for ledger entries that point nowhere';
