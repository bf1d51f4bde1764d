-- Earning rule conditions beyond equality (src/conditions.c): not equal,
-- lists, ranges and nulls on any purchase column, as a jsonb object checked
-- by the trigger earning_rule_check (its C function is the same symbol; the
-- guard functions that follow renamed and dropped condition columns are
-- created with every function of sql/src after this file).
ALTER TABLE loyalty.earning_rules
	ADD COLUMN conditions jsonb
		CONSTRAINT conditions_are_an_object CHECK (jsonb_typeof(conditions) = 'object');
