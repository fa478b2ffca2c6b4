//! An investor's investments newest first, as a keyset index (the investor-side twin of
//! `ix_investments_fund_date`), covering `amount_usd` so an investor's total is index-only.

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Adds `ix_investments_investor_date`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &["CREATE INDEX ix_investments_investor_date \
               ON investments (investor_id, investment_date DESC, id DESC) INCLUDE (amount_usd)"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, &["DROP INDEX ix_investments_investor_date"]).await
    }
}
