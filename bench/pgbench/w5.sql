-- W5: the createInvestment transaction: lock a random open fund, insert for a random investor.
-- Ids follow bench/generate.sql (UUIDv7-shaped from the row number); open funds are those whose
-- number does not end in 9, so the number is built from a random decade and a digit 1..8.
-- The new id is UUIDv7-shaped (time first), as the application generates it.
\set decade random(0, (:funds / 10) - 1)
\set digit random(1, 8)
\set f (:decade * 10 + :digit)
\set v random(1, :investors)
BEGIN;
SELECT status FROM funds
 WHERE id = (lpad(to_hex(1700000000000 + :f::bigint), 12, '0') || '7000' || '8' || lpad(to_hex(:f::bigint), 15, '0'))::uuid
 FOR UPDATE;
INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date, created_at)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7'
         || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid,
        (lpad(to_hex(1700000000000 + :f::bigint), 12, '0') || '7000' || '8' || lpad(to_hex(:f::bigint), 15, '0'))::uuid,
        (lpad(to_hex(1710000000000 + :v::bigint), 12, '0') || '7000' || '8' || lpad(to_hex(:v::bigint), 15, '0'))::uuid,
        1000.00, DATE '2024-06-01', now());
COMMIT;
