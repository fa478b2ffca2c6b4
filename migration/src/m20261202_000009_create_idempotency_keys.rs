//! Idempotency keys: what a mutation sent with an `Idempotency-Key` header committed and
//! answered, per caller (token subject) and key, so a retry gets the first answer instead of
//! running again.
//!
//! - `fingerprint`: SHA-256 of the document, operation name and variables, so the same key
//!   with other input is refused;
//! - `token` and `locked_until`: the claim of the request running under the key (a retry
//!   while it runs is refused as in progress; a claim whose holder died expires);
//! - `results`: each mutation field's response key → the id it committed, written in the
//!   field's own transaction (so a committed write is never run twice);
//! - `response`: the JSON answer, stored when the request finished;
//! - `expires_at`: when the key may be pruned and reused.

use sea_orm_migration::prelude::*;

use crate::run_all;

/// Creates `idempotency_keys`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE TABLE idempotency_keys (\
                   subject VARCHAR(255) NOT NULL, \
                   key VARCHAR(255) NOT NULL, \
                   fingerprint BYTEA NOT NULL, \
                   token UUID NOT NULL, \
                   locked_until TIMESTAMPTZ NOT NULL, \
                   results JSONB NOT NULL DEFAULT '{}', \
                   response TEXT, \
                   created_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
                   expires_at TIMESTAMPTZ NOT NULL, \
                   PRIMARY KEY (subject, key))",
                "CREATE INDEX ix_idempotency_keys_expires_at ON idempotency_keys (expires_at)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, &["DROP TABLE idempotency_keys"]).await
    }
}
