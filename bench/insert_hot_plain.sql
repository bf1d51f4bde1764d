INSERT INTO purchases_hot_plain (customer, amount) VALUES ('house', 42.50);
