//! `titanbay seed`: an idempotent demo data set with fixed ids.
//!
//! The ids are fixed UUIDv7 literals whose timestamps equal the rows' `created_at`, so id order
//! stays creation order. Running it twice leaves exactly one copy (`ON CONFLICT DO NOTHING`).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

const FUNDS: &str = r#"
INSERT INTO funds (id, name, vintage_year, target_size_usd, status, created_at, updated_at) VALUES
  ('019b8d62-7a80-77a0-81b2-c3d4e5f60000', 'Titanbay Growth Fund I',   2024, 250000000.00, 'Fundraising', '2026-01-05T09:00:00Z', '2026-01-05T09:00:00Z'),
  ('019b8d63-64e0-77a1-81b2-c3d4e5f60001', 'Titanbay Growth Fund II',  2025, 500000000.00, 'Fundraising', '2026-01-05T09:01:00Z', '2026-01-05T09:01:00Z'),
  ('019b8d64-4f40-77a2-81b2-c3d4e5f60002', 'Titanbay Buyout Fund III', 2023, 750000000.00, 'Investing',   '2026-01-05T09:02:00Z', '2026-01-05T09:02:00Z'),
  ('019b8d65-39a0-77a3-81b2-c3d4e5f60003', 'Titanbay Venture Fund I',  2022, 100000000.00, 'Closed',      '2026-01-05T09:03:00Z', '2026-01-05T09:03:00Z')
ON CONFLICT DO NOTHING
"#;

const INVESTORS: &str = r#"
INSERT INTO investors (id, name, investor_type, email, created_at, updated_at) VALUES
  ('019b8d66-2400-77a4-81b2-c3d4e5f60004', 'Goldman Sachs Asset Management', 'Institution',   'investments@gsam.com',         '2026-01-05T09:04:00Z', '2026-01-05T09:04:00Z'),
  ('019b8d67-0e60-77a5-81b2-c3d4e5f60005', 'CalPERS',                        'Institution',   'privateequity@calpers.ca.gov', '2026-01-05T09:05:00Z', '2026-01-05T09:05:00Z'),
  ('019b8d67-f8c0-77a6-81b2-c3d4e5f60006', 'Smith Family Office',            'Family Office', 'invest@smithfo.com',           '2026-01-05T09:06:00Z', '2026-01-05T09:06:00Z'),
  ('019b8d68-e320-77a7-81b2-c3d4e5f60007', 'Jane Doe',                       'Individual',    'jane.doe@example.com',         '2026-01-05T09:07:00Z', '2026-01-05T09:07:00Z')
ON CONFLICT DO NOTHING
"#;

/// Only rows whose fund and investor exist (an investor with a demo email created by hand
/// keeps its own id, and the demo investments that would name the missing one are skipped).
const INVESTMENTS: &str = r#"
INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date, created_at)
SELECT v.id::uuid, v.fund_id::uuid, v.investor_id::uuid, v.amount::numeric(20,2), v.day::date, v.created::timestamptz
FROM (VALUES
  ('019b8d69-cd80-77a8-81b2-c3d4e5f60008', '019b8d62-7a80-77a0-81b2-c3d4e5f60000', '019b8d66-2400-77a4-81b2-c3d4e5f60004', '50000000.00', '2024-03-15', '2026-01-05T09:08:00Z'),
  ('019b8d6a-b7e0-77a9-81b2-c3d4e5f60009', '019b8d62-7a80-77a0-81b2-c3d4e5f60000', '019b8d67-0e60-77a5-81b2-c3d4e5f60005', '75000000.00', '2024-09-22', '2026-01-05T09:09:00Z'),
  ('019b8d6b-a240-77aa-81b2-c3d4e5f6000a', '019b8d64-4f40-77a2-81b2-c3d4e5f60002', '019b8d67-f8c0-77a6-81b2-c3d4e5f60006', '25000000.00', '2023-08-01', '2026-01-05T09:10:00Z'),
  ('019b8d6c-8ca0-77ab-81b2-c3d4e5f6000b', '019b8d63-64e0-77a1-81b2-c3d4e5f60001', '019b8d68-e320-77a7-81b2-c3d4e5f60007', '5000000.00',  '2025-01-10', '2026-01-05T09:11:00Z'),
  ('019b8d6d-7700-77ac-81b2-c3d4e5f6000c', '019b8d62-7a80-77a0-81b2-c3d4e5f60000', '019b8d66-2400-77a4-81b2-c3d4e5f60004', '10000000.50', '2024-11-01', '2026-01-05T09:12:00Z')
) AS v(id, fund_id, investor_id, amount, day, created)
JOIN funds f ON f.id = v.fund_id::uuid
JOIN investors i ON i.id = v.investor_id::uuid
ON CONFLICT DO NOTHING
"#;

/// Rows inserted by one run of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// New funds.
    pub funds: u64,
    /// New investors.
    pub investors: u64,
    /// New investments.
    pub investments: u64,
}

/// Inserts the demo data set, once.
pub async fn seed(db: &DatabaseConnection) -> Result<SeedReport, DbErr> {
    let txn = db.begin().await?;
    let funds = txn.execute_unprepared(FUNDS).await?.rows_affected();
    let investors = txn.execute_unprepared(INVESTORS).await?.rows_affected();
    let investments = txn.execute_unprepared(INVESTMENTS).await?.rows_affected();
    // Rows inserted here, not through the API: the kept totals are recounted with them.
    if investments > 0 {
        for sql in crate::service::totals::REPAIR_SQL {
            txn.execute_unprepared(sql).await?;
        }
    }
    txn.commit().await?;
    Ok(SeedReport {
        funds,
        investors,
        investments,
    })
}
