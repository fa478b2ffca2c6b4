//! Business operations. Each mutation is one function owning one transaction; reads are plain
//! functions over `&impl ConnectionTrait` so they work on the pool or inside a transaction.
//! Nothing here knows about GraphQL.

pub mod audit;
pub mod fund;
pub mod investment;
pub mod investor;
pub mod page;

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
}

/// Now, at the microsecond precision PostgreSQL stores, so a mutation's reply equals a later
/// read of the same row.
pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// One row of entity `E` by primary key, with a fixed statement text (`SELECT * FROM <table>
/// WHERE id = $1`): the text is a constant instead of being rebuilt by the query builder on
/// every call, and PostgreSQL prepares it once per connection.
pub(crate) async fn find_by_pk<E>(
    db: &impl sea_orm::ConnectionTrait,
    sql: &'static str,
    id: uuid::Uuid,
) -> Result<Option<E::Model>, sea_orm::DbErr>
where
    E: sea_orm::EntityTrait,
{
    E::find()
        .from_raw_sql(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            [id.into()],
        ))
        .one(db)
        .await
}
