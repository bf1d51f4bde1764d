-- References are the member's own: the API's idempotency and the
-- uniqueness of cancellations, transfers, redemptions and events are per
-- (program, member, reference), so that a member's requests are checked
-- where the member's rows are (docs/concepts.md, Idempotency on reference).
-- The unique indexes that say so come with the tables 100_member_keys.sql
-- rebuilds, and the functions with the rest of sql/src at the end of this
-- script (the Makefile appends them); here only the signatures that go.

DROP FUNCTION loyalty._reference_unused(loyalty.programs, text, text);
DROP FUNCTION loyalty.cancel_redemption(text, text);
