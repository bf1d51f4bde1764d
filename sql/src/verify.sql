-- Members whose stored lots disagree with their ledger, and ledger entries
-- that point nowhere.  Empty means healthy.
CREATE FUNCTION loyalty.verify()
	RETURNS TABLE (member_id bigint, program_code text, member_key text,
				   ledger_sum bigint, balance_total bigint, problem text)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, loyalty, pg_temp
AS $$
	WITH sums AS (
		SELECT l.member_id, sum(l.points) AS s FROM loyalty.ledger l GROUP BY l.member_id
	)
	-- per member: the total; the ledger replayed strictly on the time axis
	-- (src/timeline.c, mode verify): every entry holds at its own instant,
	-- inactivity deadlines up to settled_at are written, and the result is
	-- the stored lots; last_activity_at.  One problem per member, the first
	-- of these.
	SELECT m.id, p.code, m.member_key, coalesce(sums.s, 0)::bigint,
		   loyalty.lots_total(m.balance),
		   CASE WHEN coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
				THEN 'balance total differs from the sum of the ledger'
				WHEN (r.t).problem IS NOT NULL THEN (r.t).problem
				WHEN coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
				THEN 'stored lots differ from the ledger replayed in effective order'
				ELSE 'last_activity_at differs from the ledger' END
	  FROM loyalty.members m
	  JOIN loyalty.programs p ON p.id = m.program_id
	  LEFT JOIN sums ON sums.member_id = m.id
	  LEFT JOIN (SELECT mm.id AS member_id,
						loyalty._timeline(mm.program_id, 'verify', 'infinity', mm.settled_at,
										  l.kind, l.points, l.lots, l.reason, l.effective_at, l.id
										  ORDER BY l.effective_at,
												   (l.kind IN ('expire', 'reinstate') AND l.reason IS NOT DISTINCT FROM 'inactivity') DESC,
												   l.id) AS t
				   FROM loyalty.ledger l
				   JOIN loyalty.members mm ON mm.id = l.member_id
				  GROUP BY mm.id) r ON r.member_id = m.id
	 WHERE coalesce(sums.s, 0) <> loyalty.lots_total(m.balance)
		OR (r.t).problem IS NOT NULL
		OR coalesce((r.t).lots, '{}') OPERATOR(loyalty.<>) m.balance
		OR (r.t).last_activity IS DISTINCT FROM m.last_activity_at
	UNION ALL
	SELECT sums.member_id, NULL, NULL, sums.s::bigint, NULL,
		   'ledger entries for a member that does not exist'
	  FROM sums
	 WHERE NOT EXISTS (SELECT 1 FROM loyalty.members m WHERE m.id = sums.member_id)
	UNION ALL
	SELECT l.member_id, p.code, m.member_key, NULL, NULL,
		   format('ledger entry %s names program %s, the member belongs to %s',
				  l.id, l.program_id, m.program_id)
	  FROM loyalty.ledger l
	  JOIN loyalty.members m ON m.id = l.member_id
	  JOIN loyalty.programs p ON p.id = m.program_id
	 WHERE l.program_id <> m.program_id
	UNION ALL
	-- a credit adds its lots (and any debt it carries); a debit removes its
	-- lots and leaves its debt part owed; a release moves no points
	SELECT l.member_id, NULL, NULL, NULL, NULL,
		   format('ledger entry %s moves %s points but its lots say %s',
				  l.id, l.points, l.lots)
	  FROM loyalty.ledger l
	 WHERE l.points <> CASE
			WHEN l.kind = 'release' THEN 0
			WHEN l.points < 0 THEN -(loyalty.lots_points(l.lots) + loyalty.lots_debt(l.lots))
			ELSE loyalty.lots_total(l.lots) END
	ORDER BY 1
$$;
COMMENT ON FUNCTION loyalty.verify() IS
	'rows for every member whose ledger does not replay on the time axis or gives other lots than stored, and for ledger entries that point nowhere';

