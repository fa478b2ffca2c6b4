-- Deterministic data set for benchmarks and plan tests (PostgreSQL).
-- Placeholders, replaced by the caller: __FUNDS__, __INVESTORS__, __INVESTMENTS__,
-- __HOT_FUNDS__ (how many funds get __HOT_SIZE__ investments each; the rest share the remainder).
-- Ids are UUIDv7-shaped and increase with creation time, so id order is creation order.
-- Foreign-key triggers are skipped for the bulk load (session_replication_role); the generator
-- only ever references rows it created.

SET session_replication_role = replica;
SET synchronous_commit = off;

CREATE OR REPLACE FUNCTION pg_temp.v7(ms bigint, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex((n >> 48) & 4095), 3, '0')
          || to_hex(8 + ((n >> 44) & 3)) || lpad(to_hex(n & x'fffffffffff'::bigint), 15, '0'))::uuid
$$;

-- A cheap deterministic hash of an integer (0 .. 2^31).
CREATE OR REPLACE FUNCTION pg_temp.h(n bigint, salt int) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT ((n * 2654435761 + salt * 40503) # ((n * 2246822519) >> 13)) & 2147483647
$$;

INSERT INTO funds (id, name, vintage_year, target_size_usd, status, created_at, updated_at)
SELECT pg_temp.v7(1700000000000 + g, g),
       'Fund ' || lpad(g::text, 5, '0'),
       2012 + (g % 14),
       (100000000 + (pg_temp.h(g, 1) % 900000000))::numeric(20,2),
       CASE WHEN g % 10 = 9 THEN 'Closed' WHEN g % 3 = 0 THEN 'Investing' ELSE 'Fundraising' END,
       to_timestamp((1700000000000 + g) / 1000.0),
       to_timestamp((1700000000000 + g) / 1000.0)
FROM generate_series(1, __FUNDS__) AS g;

INSERT INTO investors (id, name, investor_type, email, created_at, updated_at)
SELECT pg_temp.v7(1710000000000 + g, g),
       'Investor ' || lpad(g::text, 7, '0'),
       (ARRAY['Individual', 'Institution', 'Family Office'])[1 + g % 3],
       'investor' || g || '@example.com',
       to_timestamp((1710000000000 + g) / 1000.0),
       to_timestamp((1710000000000 + g) / 1000.0)
FROM generate_series(1, __INVESTORS__) AS g;

-- Hot funds 1..__HOT_FUNDS__ take __HOT_SIZE__ rows each; the rest spread over the other funds.
-- Open funds only (status not Closed), so the hot ones can also take new investments.
INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date, created_at)
SELECT pg_temp.v7(1720000000000 + g, g),
       pg_temp.v7(1700000000000 + f, f),
       pg_temp.v7(1710000000000 + 1 + pg_temp.h(g, 2) % __INVESTORS__, 1 + pg_temp.h(g, 2) % __INVESTORS__),
       ((100000 + pg_temp.h(g, 3) % 1000000000) / 100.0)::numeric(20,2),
       DATE '2015-01-01' + (pg_temp.h(g, 4) % 3653)::int,
       to_timestamp((1720000000000 + g) / 1000.0)
FROM (
  SELECT g,
         CASE WHEN g <= __HOT_FUNDS__::bigint * __HOT_SIZE__
              THEN 1 + (g - 1) / __HOT_SIZE__
              ELSE __HOT_FUNDS__ + 1 + pg_temp.h(g, 5) % (__FUNDS__ - __HOT_FUNDS__)
         END AS f
  FROM generate_series(1, __INVESTMENTS__) AS g
) AS s;

RESET session_replication_role;
VACUUM ANALYZE funds;
VACUUM ANALYZE investors;
VACUUM ANALYZE investments;
