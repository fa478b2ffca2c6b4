//! Business operations. Each mutation is one function owning one transaction (or one
//! statement); every statement is built here (with SeaORM's query builder or as fixed text)
//! and run through [`crate::db::Db`]. Nothing here knows about GraphQL.

pub mod audit;
pub mod fund;
pub mod idempotency;
pub mod investment;
pub mod investor;
pub mod page;
pub mod partition;
pub mod totals;

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{LazyLock, Mutex},
};

use chrono::{DateTime, SubsecRound, Utc};

/// Who is acting and until when, for the audit trail, logs and time limits.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The token subject, when the request was authenticated.
    pub subject: Option<String>,
    /// The request id of the HTTP request.
    pub request_id: String,
    /// When the request must be finished; work still running then is abandoned before commit.
    pub deadline: Option<tokio::time::Instant>,
    /// The `Idempotency-Key` the acting mutation field runs under, if any: its transaction
    /// records what it committed there ([`idempotency::record`]).
    pub key: Option<idempotency::KeyHold>,
}

/// Now, at the microsecond precision PostgreSQL stores, so a mutation's reply equals a later
/// read of the same row.
pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Statement texts already built, by what determines them.
pub(crate) type SqlTexts<K> = LazyLock<Mutex<HashMap<K, String>>>;

/// The texts kept at most per kind of statement: the shapes in use are few, but a client
/// could ask for many (every page size, every set of related columns).
const SQL_TEXTS_KEPT: usize = 512;

/// The statement text for `key`, built once (up to [`SQL_TEXTS_KEPT`] texts; past that, built
/// on every use).
pub(crate) fn cached_sql<K: Hash + Eq>(
    texts: &SqlTexts<K>,
    key: K,
    build: impl FnOnce() -> String,
) -> String {
    if let Some(sql) = texts.lock().ok().and_then(|t| t.get(&key).cloned()) {
        return sql;
    }
    let sql = build();
    if let Ok(mut texts) = texts.lock()
        && texts.len() < SQL_TEXTS_KEPT
    {
        texts.insert(key, sql.clone());
    }
    sql
}

/// Decodes rows of `E` fetched with every column in entity order (a statement built by
/// SeaORM's `Entity::find()`): the id first, then the rest from position 1.
pub(crate) fn decode_all<M>(
    rows: &[sea_orm::sqlx::postgres::PgRow],
    decode: fn(
        &crate::db::rows::Columns<'_>,
        uuid::Uuid,
        crate::db::rows::ColumnSet,
    ) -> Result<M, sea_orm::DbErr>,
) -> Result<Vec<M>, crate::error::AppError> {
    rows.iter()
        .map(|row| {
            let columns = crate::db::rows::Columns::of(row, 0);
            let id = columns.get(0)?;
            Ok(decode(
                &columns.shifted(1),
                id,
                crate::db::rows::ColumnSet::ALL,
            )?)
        })
        .collect()
}

/// The number in the first column of a `count(*)` statement's only row.
pub(crate) async fn count(
    db: &crate::db::Db,
    stmt: sea_orm::Statement,
) -> Result<u64, crate::error::AppError> {
    let row = db.fetch_optional(stmt).await?;
    let n: i64 = match row {
        Some(row) => crate::db::rows::Columns::of(&row, 0).get(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}
