-- The owner of a tracked partitioned table (a role below superuser) could
-- not create or attach a partition: PostgreSQL clones the row trigger to it
-- and checks EXECUTE on loyalty.purchase_change for that role
-- (sql/src/grants.sql says why PUBLIC may have it).
GRANT EXECUTE ON FUNCTION loyalty.purchase_change() TO PUBLIC;
