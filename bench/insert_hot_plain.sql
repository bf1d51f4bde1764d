INSERT INTO purchases_plain (customer, amount) VALUES ('house', 42.50);
