//! Totals kept with the data: per fund its investments, their exact sum and its distinct
//! investors; per investor its investments and their sum; per (fund, investor) pair how many
//! investments join them (what makes the distinct count exact). `createInvestment` maintains
//! them in its own statement, under the fund's row lock, so every aggregate the API answers is
//! one primary-key lookup instead of a scan of a parent's investments. Sums are unbounded
//! `numeric` (a total may exceed what one amount's `NUMERIC(20,2)` holds).
//!
//! The migration fills them from the rows already there; `titanbay check-totals` compares them
//! with the rows and `--repair` rewrites them (for bulk loads made outside the API).

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Creates and fills `fund_totals`, `investor_totals` and `fund_investors`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE TABLE fund_totals (\
                   fund_id UUID PRIMARY KEY REFERENCES funds (id), \
                   investments BIGINT NOT NULL CHECK (investments >= 0), \
                   committed_usd NUMERIC NOT NULL CHECK (committed_usd >= 0), \
                   investors BIGINT NOT NULL CHECK (investors >= 0))",
                "CREATE TABLE investor_totals (\
                   investor_id UUID PRIMARY KEY REFERENCES investors (id), \
                   investments BIGINT NOT NULL CHECK (investments >= 0), \
                   committed_usd NUMERIC NOT NULL CHECK (committed_usd >= 0))",
                "CREATE TABLE fund_investors (\
                   fund_id UUID NOT NULL REFERENCES funds (id), \
                   investor_id UUID NOT NULL REFERENCES investors (id), \
                   investments BIGINT NOT NULL CHECK (investments > 0), \
                   PRIMARY KEY (fund_id, investor_id))",
                // Writes wait while the tables are filled, so nothing slips between the two.
                "LOCK TABLE investments IN SHARE MODE",
                "INSERT INTO fund_investors (fund_id, investor_id, investments) \
                 SELECT fund_id, investor_id, count(*) FROM investments GROUP BY fund_id, investor_id",
                "INSERT INTO fund_totals (fund_id, investments, committed_usd, investors) \
                 SELECT fund_id, sum(investments), 0, count(*) FROM fund_investors GROUP BY fund_id",
                "UPDATE fund_totals t SET committed_usd = s.total FROM \
                 (SELECT fund_id, sum(amount_usd) AS total FROM investments GROUP BY fund_id) s \
                 WHERE s.fund_id = t.fund_id",
                "INSERT INTO investor_totals (investor_id, investments, committed_usd) \
                 SELECT investor_id, count(*), sum(amount_usd) FROM investments GROUP BY investor_id",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "DROP TABLE fund_investors",
                "DROP TABLE investor_totals",
                "DROP TABLE fund_totals",
            ],
        )
        .await
    }
}
