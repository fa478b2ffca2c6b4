//! A fund's aggregates from the index alone: `totalCommittedUsd` (sum of `amount_usd`),
//! `investorCount` (distinct `investor_id`, already in order) and `totalCount`, without
//! touching the table's heap.

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Adds `ix_investments_fund_investor`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &["CREATE INDEX ix_investments_fund_investor \
               ON investments (fund_id, investor_id) INCLUDE (amount_usd)"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, &["DROP INDEX ix_investments_fund_investor"]).await
    }
}
