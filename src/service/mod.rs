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
