//! `investors`: one row per investor; one investor per email, case-insensitively.

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Creates `investors` with its CHECK constraints and the design's three named indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                r#"CREATE TABLE investors (
                    id            uuid         NOT NULL,
                    name          varchar(255) NOT NULL,
                    investor_type varchar(32)  NOT NULL,
                    email         varchar(320) NOT NULL,
                    created_at    timestamptz  NOT NULL DEFAULT now(),
                    updated_at    timestamptz  NOT NULL DEFAULT now(),
                    CONSTRAINT pk_investors PRIMARY KEY (id),
                    CONSTRAINT ck_investors_name_not_blank CHECK (btrim(name) <> ''),
                    CONSTRAINT ck_investors_email_not_blank CHECK (btrim(email) <> ''),
                    CONSTRAINT ck_investors_investor_type
                        CHECK (investor_type IN ('Individual', 'Institution', 'Family Office'))
                )"#,
                "CREATE INDEX ix_investors_name ON investors (name)",
                // The real guard of "one investor per email": the application pre-checks only
                // for speed, and maps this index's unique violation to CONFLICT.
                "CREATE UNIQUE INDEX ix_investors_email ON investors (lower(email))",
                "CREATE INDEX ix_investors_created_at ON investors (created_at)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, &["DROP TABLE investors"]).await
    }
}
