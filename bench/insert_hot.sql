INSERT INTO purchases_hot (customer, amount) VALUES ('house', 42.50);
