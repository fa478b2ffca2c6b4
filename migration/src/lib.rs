//! Database migrations for the titanbay API, one change per file.
//!
//! Migrations are written as plain PostgreSQL DDL: the project runs on PostgreSQL only, and the
//! SQL shows exactly which types, constraints and indexes exist. Landed migrations are never
//! edited; a change to the schema is a new file here.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_funds;
mod m20261125_000002_create_investors;
mod m20261125_000003_create_investments;
mod m20261125_000004_index_investments_investor_date;
mod m20261125_000005_index_fund_aggregates;
mod m20261125_000006_index_list_filters;
mod m20261125_000007_create_audit_events;
mod m20261202_000008_create_totals;
mod m20261202_000009_create_idempotency_keys;

/// The ordered list of migrations that make up the schema.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_funds::Migration),
            Box::new(m20261125_000002_create_investors::Migration),
            Box::new(m20261125_000003_create_investments::Migration),
            Box::new(m20261125_000004_index_investments_investor_date::Migration),
            Box::new(m20261125_000005_index_fund_aggregates::Migration),
            Box::new(m20261125_000006_index_list_filters::Migration),
            Box::new(m20261125_000007_create_audit_events::Migration),
            Box::new(m20261202_000008_create_totals::Migration),
            Box::new(m20261202_000009_create_idempotency_keys::Migration),
        ]
    }
}

/// Runs each statement of a migration step in order on the manager's connection.
pub(crate) async fn run_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}
