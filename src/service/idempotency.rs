//! Idempotency keys: a mutation request sent with an `Idempotency-Key` header runs once per
//! caller and key; a retry gets the first answer.
//!
//! How a keyed request goes (the executor drives it, see [`crate::executor`]):
//!
//! 1. [`claim`] the key (one statement). A key not seen before (or expired) is claimed with a
//!    fresh token and a lease; a key whose request finished gives its stored answer
//!    ([`Claim::Replay`]); the same key with other input is refused
//!    ([`Claim::Reused`]); a key whose request is still running is refused as in progress
//!    ([`Claim::InProgress`], retry later). A claim whose holder died (its lease ran out
//!    without an answer stored) is taken over, with what it had committed.
//! 2. Each mutation field's transaction records the id it committed under the key
//!    ([`record`], inside the same transaction: a write that committed is always on record,
//!    one that rolled back never). A field already on record is answered from that id
//!    instead of running again. A transaction whose claim was taken over (its token no longer
//!    holds the key) rolls back.
//! 3. When the request finishes, the answer is stored ([`complete`]); after a failure that
//!    may be temporary (the database unavailable, an unknown commit outcome, a timeout) the
//!    claim is released instead ([`release`]) so that a retry can run at once, and a retry
//!    then answers every field on record from its id.
//!
//! Expired keys are deleted by [`prune`] (the server runs it periodically).

use std::{collections::HashMap, time::Duration};

use sea_orm::{DbBackend, Statement};
use uuid::Uuid;

use super::Actor;
use crate::{
    db::{Db, Tx, rows::Columns},
    error::AppError,
};

/// A key held by one request, and the mutation field it is acting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHold {
    /// The caller (token subject; empty when authentication is off).
    pub subject: String,
    /// The `Idempotency-Key`.
    pub key: String,
    /// This request's claim on the key.
    pub token: Uuid,
    /// The response key (alias or name) of the mutation field acting under it.
    pub field: String,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// The request runs under `token`; `recorded` holds what earlier attempts committed
    /// (response key → id).
    Run {
        /// This request's claim.
        token: Uuid,
        /// Committed by an earlier attempt, by response key.
        recorded: HashMap<String, Uuid>,
    },
    /// The stored answer of the request that ran under the key.
    Replay(String),
    /// The key belongs to a request with other input.
    Reused,
    /// The request under the key is still running.
    InProgress,
}

/// Claims a key not seen before. It never waits on another request's claim: a key already
/// there is left alone (`DO NOTHING` does not lock the row) and read apart ([`HELD_SQL`]).
///
/// Committed without waiting for its WAL flush (`synchronous_commit` off for this statement's
/// transaction, set in the statement): the write that depends on the claim flushes it with its
/// own commit (WAL is written in order), and a claim lost in a crash before any write is a
/// claim that never happened. The same holds for taking over, storing and releasing.
const CLAIM_SQL: &str = "\
INSERT INTO idempotency_keys \
    (subject, key, fingerprint, token, locked_until, results, response, created_at, expires_at) \
SELECT $1, $2, $3, $4, now() + $5 * interval '1 millisecond', '{}', NULL, now(), \
       now() + $6 * interval '1 millisecond' \
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
ON CONFLICT (subject, key) DO NOTHING \
RETURNING results::text";

/// A key already there, as it is (a read: no lock, no wait): same input, stored answer,
/// claim still held, key still kept.
const HELD_SQL: &str = "\
SELECT fingerprint = $3, response, locked_until > now(), expires_at > now() \
FROM idempotency_keys WHERE subject = $1 AND key = $2";

/// Takes over an expired key (afresh) or a dead holder's claim on the same input (with what it
/// committed). Only after a lease ran out, so it rarely waits.
const TAKE_OVER_SQL: &str = "\
UPDATE idempotency_keys AS k SET \
    fingerprint = $3, \
    token = $4, \
    locked_until = now() + $5 * interval '1 millisecond', \
    response = NULL, \
    results = CASE WHEN k.expires_at <= now() THEN '{}'::jsonb ELSE k.results END, \
    created_at = CASE WHEN k.expires_at <= now() THEN now() ELSE k.created_at END, \
    expires_at = CASE WHEN k.expires_at <= now() \
                      THEN now() + $6 * interval '1 millisecond' ELSE k.expires_at END \
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
WHERE k.subject = $1 AND k.key = $2 AND (k.expires_at <= now() \
   OR (k.response IS NULL AND k.locked_until <= now() AND k.fingerprint = $3)) \
RETURNING k.results::text";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Claims `key` for `subject`'s request with `fingerprint` (see the module documentation).
/// The claim holds for `lease` unless the request finishes first; the key is kept for
/// `retention`. A new key costs one statement; a retry two (three when it takes over).
pub async fn claim(
    db: &Db,
    actor: &Actor,
    key: &str,
    fingerprint: &[u8],
    lease: Duration,
    retention: Duration,
) -> Result<Claim, AppError> {
    let subject = actor.subject.clone().unwrap_or_default();
    let values = |token: Uuid| -> Vec<sea_orm::Value> {
        vec![
            subject.clone().into(),
            key.to_owned().into(),
            fingerprint.to_vec().into(),
            token.into(),
            millis(lease).into(),
            millis(retention).into(),
        ]
    };
    let run = |token: Uuid, text: String| -> Result<Claim, AppError> {
        Ok(Claim::Run {
            token,
            recorded: parse_results(&text)?,
        })
    };
    // A key pruned or taken over between the statements is looked at again.
    for _ in 0..3 {
        let token = Uuid::now_v7();
        let stmt = Statement::from_sql_and_values(DbBackend::Postgres, CLAIM_SQL, values(token));
        if let Some(row) = db.write(actor.deadline, stmt).await?.first() {
            return run(token, Columns::of(row, 0).get(0)?);
        }
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            HELD_SQL,
            [
                subject.clone().into(),
                key.to_owned().into(),
                fingerprint.to_vec().into(),
            ],
        );
        let Some(row) = db.fetch_optional(stmt).await? else {
            continue;
        };
        let columns = Columns::of(&row, 0);
        let same: bool = columns.get(0)?;
        let response: Option<String> = columns.get(1)?;
        let held: bool = columns.get(2)?;
        let kept: bool = columns.get(3)?;
        match (kept, same, response, held) {
            (true, false, _, _) => return Ok(Claim::Reused),
            (true, true, Some(body), _) => return Ok(Claim::Replay(body)),
            (true, true, None, true) => return Ok(Claim::InProgress),
            // Expired, or its holder's lease ran out: take it over.
            _ => {
                let stmt = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    TAKE_OVER_SQL,
                    values(token),
                );
                if let Some(row) = db.write(actor.deadline, stmt).await?.first() {
                    return run(token, Columns::of(row, 0).get(0)?);
                }
            }
        }
    }
    Err(AppError::Internal(
        "an idempotency key could be neither claimed nor read".to_owned(),
    ))
}

fn parse_results(text: &str) -> Result<HashMap<String, Uuid>, AppError> {
    let raw: HashMap<String, String> = serde_json::from_str(text)
        .map_err(|e| AppError::Internal(format!("idempotency results: {e}")))?;
    raw.into_iter()
        .map(|(field, id)| {
            Uuid::parse_str(&id)
                .map(|id| (field, id))
                .map_err(|e| AppError::Internal(format!("idempotency results: {e}")))
        })
        .collect()
}

/// Records, inside the mutation's transaction, that the acting field committed `id`. Fails
/// with `IDEMPOTENCY_KEY_IN_PROGRESS` (and the transaction rolls back) when the claim was
/// taken over by another attempt.
pub async fn record(tx: &mut Tx<'_>, hold: &KeyHold, id: Uuid) -> Result<(), AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE idempotency_keys SET results = results || jsonb_build_object($4::text, $5::text) \
         WHERE subject = $1 AND key = $2 AND token = $3 RETURNING 1",
        [
            hold.subject.clone().into(),
            hold.key.clone().into(),
            hold.token.into(),
            hold.field.clone().into(),
            id.to_string().into(),
        ],
    );
    match tx.fetch_optional(stmt).await? {
        Some(_) => Ok(()),
        None => Err(AppError::IdempotencyKeyInProgress),
    }
}

/// Stores the answer of the request holding the key and ends its claim.
pub async fn complete(
    db: &Db,
    actor: &Actor,
    hold: &KeyHold,
    response: String,
) -> Result<(), AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE idempotency_keys SET response = $4, locked_until = now() \
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
         WHERE subject = $1 AND key = $2 AND token = $3",
        [
            hold.subject.clone().into(),
            hold.key.clone().into(),
            hold.token.into(),
            response.into(),
        ],
    );
    db.write(actor.deadline, stmt).await.map(|_| ())
}

/// Ends the claim without an answer (the request failed in a way a retry may not): a retry
/// may run at once, and answers what was committed from the record.
pub async fn release(db: &Db, actor: &Actor, hold: &KeyHold) -> Result<(), AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE idempotency_keys SET locked_until = now() \
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
         WHERE subject = $1 AND key = $2 AND token = $3 AND response IS NULL",
        [
            hold.subject.clone().into(),
            hold.key.clone().into(),
            hold.token.into(),
        ],
    );
    db.write(actor.deadline, stmt).await.map(|_| ())
}

/// Deletes up to `batch` expired keys whose claim is over; returns how many.
pub async fn prune(db: &Db, batch: u32) -> Result<u64, AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH gone AS (DELETE FROM idempotency_keys WHERE (subject, key) IN (\
             SELECT subject, key FROM idempotency_keys \
             WHERE expires_at <= now() AND locked_until <= now() LIMIT $1) RETURNING 1) \
         SELECT count(*) FROM gone",
        [i64::from(batch).into()],
    );
    let rows = db.write(None, stmt).await?;
    let n: i64 = match rows.first() {
        Some(row) => Columns::of(row, 0).get(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}
