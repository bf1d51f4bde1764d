\set c random(1, 10000)
INSERT INTO purchases (customer, amount, channel) VALUES ('c' || :c, 42.50, 'web');
