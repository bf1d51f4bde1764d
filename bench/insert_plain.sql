\set c random(1, 10000)
INSERT INTO purchases_plain (customer, amount, channel) VALUES ('c' || :c, 42.50, 'web');
