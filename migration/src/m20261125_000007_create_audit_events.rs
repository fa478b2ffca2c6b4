//! `audit_events`: an append-only trail of every successful mutation, written in the
//! mutation's own transaction. Updates and deletes are refused by a trigger, so the trail
//! cannot be rewritten through the application's connection.

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Creates `audit_events` and its append-only guard.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                // Ids are UUIDv7 (time-ordered): the primary key is also the keyset index of the
                // newest-first list.
                r#"CREATE TABLE audit_events (
                    id          uuid         NOT NULL,
                    occurred_at timestamptz  NOT NULL DEFAULT now(),
                    subject     varchar(255),
                    operation   varchar(64)  NOT NULL,
                    entity      varchar(32)  NOT NULL,
                    entity_id   uuid         NOT NULL,
                    related_ids uuid[]       NOT NULL DEFAULT '{}',
                    request_id  varchar(128) NOT NULL,
                    CONSTRAINT pk_audit_events PRIMARY KEY (id),
                    CONSTRAINT ck_audit_events_operation_not_blank CHECK (btrim(operation) <> '')
                )"#,
                "CREATE INDEX ix_audit_events_entity_id ON audit_events (entity_id)",
                r#"CREATE FUNCTION audit_events_append_only() RETURNS trigger
                   LANGUAGE plpgsql AS $$
                   BEGIN
                       RAISE EXCEPTION 'audit_events is append-only';
                   END
                   $$"#,
                "CREATE TRIGGER tr_audit_events_append_only \
                 BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events \
                 FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "DROP TABLE audit_events",
                "DROP FUNCTION audit_events_append_only()",
            ],
        )
        .await
    }
}
