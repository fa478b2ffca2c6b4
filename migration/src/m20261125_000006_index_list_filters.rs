//! Keyset pages of filtered lists: `funds` by status or vintage year and `investors` by type
//! page in id order by seeking on `(filter column, id)`. `nameContains` gets a trigram index
//! (`pg_trgm`, shipped with PostgreSQL's contrib and trusted, so the database owner may
//! install it).

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Adds the filter indexes and `pg_trgm`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE INDEX ix_funds_status_id ON funds (status, id)",
                "CREATE INDEX ix_funds_vintage_year_id ON funds (vintage_year, id)",
                "CREATE INDEX ix_investors_investor_type_id ON investors (investor_type, id)",
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                "CREATE INDEX ix_funds_name_trgm ON funds USING gin (name gin_trgm_ops)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The extension stays: other objects of the database may use it.
        run_all(
            manager,
            &[
                "DROP INDEX ix_funds_name_trgm",
                "DROP INDEX ix_investors_investor_type_id",
                "DROP INDEX ix_funds_vintage_year_id",
                "DROP INDEX ix_funds_status_id",
            ],
        )
        .await
    }
}
