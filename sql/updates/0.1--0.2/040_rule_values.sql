-- Earning rules compare channel, category and store by value in the type
-- of the tracked column (src/labels.c); a rule whose value is not one of
-- that type's is refused when written.
CREATE FUNCTION loyalty.earning_rule_check() RETURNS trigger
	AS 'MODULE_PATHNAME', 'loyalty_earning_rule_check' LANGUAGE C;
CREATE TRIGGER earning_rule_check AFTER INSERT OR UPDATE ON loyalty.earning_rules
	FOR EACH ROW EXECUTE FUNCTION loyalty.earning_rule_check();
REVOKE EXECUTE ON FUNCTION loyalty.earning_rule_check() FROM PUBLIC;
