-- The program of bench/setup.sql and bench/dupes_setup.sql: points expire
-- at the end of the year after the purchase, double points in the app.
CREATE EXTENSION IF NOT EXISTS loyalty;
INSERT INTO loyalty.programs (code, name, expiry_policy, expiry_period, pending_interval,
                              time_zone, is_default)
VALUES ('bench', 'Bench', 'period_end', 'year', '0', 'Europe/Berlin', true);
INSERT INTO loyalty.earning_rules (program_id, name, kind, channel, multiplier)
SELECT id, 'app double', 'multiplier', 'app', 2 FROM loyalty.programs;
