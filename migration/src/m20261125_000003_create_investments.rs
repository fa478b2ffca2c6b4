//! `investments`: capital commitments of investors to funds (the high-volume table).

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Creates `investments` with its foreign keys, CHECK constraints and the design's three named
/// indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                r#"CREATE TABLE investments (
                    id              uuid          NOT NULL,
                    fund_id         uuid          NOT NULL,
                    investor_id     uuid          NOT NULL,
                    amount_usd      numeric(20,2) NOT NULL,
                    investment_date date          NOT NULL,
                    created_at      timestamptz   NOT NULL DEFAULT now(),
                    CONSTRAINT pk_investments PRIMARY KEY (id),
                    CONSTRAINT fk_investments_fund_id FOREIGN KEY (fund_id)
                        REFERENCES funds (id) ON DELETE RESTRICT ON UPDATE RESTRICT,
                    CONSTRAINT fk_investments_investor_id FOREIGN KEY (investor_id)
                        REFERENCES investors (id) ON DELETE RESTRICT ON UPDATE RESTRICT,
                    CONSTRAINT ck_investments_amount_positive CHECK (amount_usd > 0),
                    CONSTRAINT ck_investments_date CHECK (investment_date >= DATE '1900-01-01')
                )"#,
                "CREATE INDEX ix_investments_fund_id ON investments (fund_id)",
                "CREATE INDEX ix_investments_investor_id ON investments (investor_id)",
                // The hot path: a fund's investments newest first, ties by id. Keyset pages seek
                // on it in either direction without a sort.
                "CREATE INDEX ix_investments_fund_date \
                 ON investments (fund_id, investment_date DESC, id DESC)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, &["DROP TABLE investments"]).await
    }
}
