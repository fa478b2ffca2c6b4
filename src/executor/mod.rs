//! The one request pipeline: prepare → validate → run → codes.
//!
//! Every GraphQL operation, whatever transport brought it, goes through [`Executor::execute`]:
//!
//! 1. **prepare**: a persisted or trusted document is looked up ([`persisted`]); the document is
//!    bounded in bytes and tokens before it is parsed, then parsed once and cached
//!    ([`document`]);
//! 2. **refuse what must not run**: an unknown or missing operation name, a mutation sent with
//!    GET, more fields or deeper nesting than allowed (introspection is bounded apart from data,
//!    so stock clients' introspection queries pass the data limits), a complexity over the
//!    limit ([`complexity`]), introspection when it is
//!    off, a missing required variable, a string where an enum is expected ([`literals`]);
//! 3. **validate and run** with async-graphql (its full validation the first time a document
//!    runs, then only the request's variables are checked: [`variables`]), with a
//!    per-request loader, the caller's principal, and — for queries — a deadline and the
//!    database's reachability: a query is abandoned when either runs out, a mutation never
//!    after it may have committed;
//! 4. **finish**: every error gets its contract code ([`messages`] holds the async-graphql
//!    messages that decide some of them), null propagation, selection order, bounded errors
//!    ([`finish`]).
//!
//! This is deliberately not an async-graphql `Extension`: with any extension installed,
//! async-graphql sends every field resolution through the extension chain (a boxed future and a
//! registry lookup per field), which costs more than the rest of a large nested request.

pub mod complexity;
pub mod document;
pub mod finish;
pub mod literals;
pub mod messages;
pub mod persisted;
pub mod variables;

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Request, Response, ServerError, parser::types::OperationType};

use self::{
    document::{Document, DocumentCache, Selected, TooLarge},
    finish::{ErrorBounds, coded_error},
    persisted::PersistedDocuments,
};
use crate::{
    auth::Principal,
    config::Limits,
    db::Db,
    error::{AppError, ErrorCode},
    graphql::{
        AppSchema,
        context::{KeyContext, RequestContext},
        loader::{new_loaders, track},
        raw::{RawParts, RawTable},
    },
    metrics::{Gauges, Metrics},
    service::{
        Actor,
        idempotency::{self, Claim, KeyHold},
    },
};

/// One operation as it arrived: the GraphQL request and, for a trusted document, its id.
#[derive(Debug)]
pub struct Operation {
    /// The request (its document may still be empty: sent by hash or id).
    pub request: Request,
    /// The GraphQL-over-HTTP `documentId`, when given.
    pub document_id: Option<String>,
}

impl From<Request> for Operation {
    fn from(request: Request) -> Self {
        Operation {
            request,
            document_id: None,
        }
    }
}

/// Who sent an operation and with what budget.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal (its scopes and subject).
    pub principal: Principal,
    /// The request id (`X-Request-ID`), for the audit trail and logs.
    pub request_id: String,
    /// When the operation must be finished.
    pub deadline: Option<tokio::time::Instant>,
    /// The operation came by `GET` (only queries may run).
    pub is_get: bool,
    /// The `Idempotency-Key` header (checked for form by the transport): a mutation runs
    /// once per caller and key (see [`crate::service::idempotency`]).
    pub idempotency_key: Option<String>,
}

/// One executed (or refused) operation.
pub struct Outcome {
    /// The response (its errors coded).
    pub response: Response,
    /// Whether execution started (a response without `data` otherwise).
    pub executed: bool,
    /// The operation's name from its document, when it has one.
    pub operation_name: Option<String>,
    /// JSON written during execution by the fast path (see [`crate::graphql::raw`]).
    pub raw: RawTable,
    /// The stored answer of an earlier request under the same `Idempotency-Key`, written as
    /// it is instead of `response`.
    pub replayed: Option<Replayed>,
}

/// A stored answer given again.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The JSON of the answer.
    pub body: String,
    /// The code of its first error, if any.
    pub code: Option<ErrorCode>,
}

impl Replayed {
    fn new(body: String) -> Replayed {
        let code = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["errors"][0]["extensions"]["code"]
                    .as_str()
                    .and_then(ErrorCode::from_code)
            });
        Replayed { body, code }
    }
}

impl Outcome {
    /// An operation refused before anything ran.
    pub fn refused(err: ServerError) -> Outcome {
        Outcome {
            response: Response::from_errors(vec![err]),
            executed: false,
            operation_name: None,
            raw: RawTable::default(),
            replayed: None,
        }
    }

    /// The code of the first error, if any.
    pub fn first_code(&self) -> Option<ErrorCode> {
        match &self.replayed {
            Some(replayed) => replayed.code,
            None => self.response.errors.iter().find_map(finish::error_code),
        }
    }

    /// Bytes of JSON the fast path wrote for this result (to size the response buffer).
    pub fn written_len(&self) -> usize {
        self.raw.len() + self.replayed.as_ref().map_or(0, |r| r.body.len())
    }

    /// Writes the result as the spec does — `{"data", "errors", "extensions"}`, compact, absent
    /// and empty members left out, no `data` when execution never started — with the JSON the
    /// fast path wrote spliced into `data`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        use crate::graphql::raw;
        if let Some(replayed) = &self.replayed {
            out.extend_from_slice(replayed.body.as_bytes());
            return Ok(());
        }
        out.push(b'{');
        let mut members = 0;
        let mut member = |out: &mut Vec<u8>, name: &str| {
            if members > 0 {
                out.push(b',');
            }
            members += 1;
            raw::write_str(out, name).map(|()| out.push(b':'))
        };
        if self.executed {
            member(out, "data")?;
            raw::write_value(out, &self.response.data, &self.raw)?;
        }
        if !self.response.errors.is_empty() {
            member(out, "errors")?;
            serde_json::to_writer(&mut *out, &self.response.errors)?;
        }
        if !self.response.extensions.is_empty() {
            member(out, "extensions")?;
            serde_json::to_writer(&mut *out, &self.response.extensions)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Introspection (`__schema`, `__type`) is bounded apart from the data limits: at most this
/// many fields, fragments expanded. The stock introspection queries of graphql-js, GraphiQL,
/// Apollo and gql select a few hundred.
const MAX_INTROSPECTION_FIELDS: usize = 2_000;

/// Runs GraphQL operations (see the module documentation).
pub struct Executor {
    /// Validates in full (every rule): documents not seen to pass yet.
    schema: AppSchema,
    /// The same schema with async-graphql's `Fast` validation, for documents that passed in
    /// full before and whose variables fit their types ([`variables`]).
    revalidating: AppSchema,
    registry: async_graphql::registry::Registry,
    db: Db,
    documents: DocumentCache,
    persisted: PersistedDocuments,
    limits: Limits,
    introspection: bool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// An error refusing a request, with its code.
fn refuse(code: ErrorCode, message: impl Into<String>) -> Outcome {
    Outcome::refused(coded_error(code, message, None))
}

impl Executor {
    /// An executor of `schema`'s operations on `db`.
    pub fn new(
        schema: AppSchema,
        revalidating: AppSchema,
        db: Db,
        persisted: PersistedDocuments,
        limits: Limits,
        introspection: bool,
        metrics: Arc<Metrics>,
    ) -> Executor {
        spawn_key_pruning(db.downgrade(), limits.idempotency_retention);
        Executor {
            registry: crate::graphql::registry(),
            documents: DocumentCache::new(limits.document_cache_bytes),
            schema,
            revalidating,
            db,
            persisted,
            limits,
            introspection,
            metrics,
        }
    }

    /// Closes the database pool (at shutdown).
    pub fn close(&self) {
        self.db.close();
    }

    /// Whether the database answers a trivial statement (for readiness).
    pub async fn database_ready(&self) -> Result<(), String> {
        self.db.ensure_reachable().map_err(|e| e.to_string())?;
        self.db
            .fetch_all(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT 1",
            ))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The gauges of the database and the caches, for metrics.
    pub fn gauges(&self) -> Gauges {
        let pool = self.db.pool_status();
        let stats = self.db.stats();
        Gauges {
            pool_in_use: pool.size.saturating_sub(pool.idle),
            pool_idle: pool.idle,
            pool_waiting: pool.waiting,
            pool_max: pool.max,
            reads: self.db.reads_in_progress(),
            writes: self.db.writes_in_progress(),
            reachable: self.db.health().is_healthy(),
            statements: (stats.statements(), stats.failed()),
            requests: (0, 0, 0),
            caches: (self.documents.bytes(), self.persisted.remembered_bytes()),
        }
    }

    /// The parsed document of `request`, from the cache or parsed now (bounded first).
    fn document(&self, request: &Request) -> Result<Arc<Document>, Box<Outcome>> {
        let text = &request.query;
        let name = request.operation_name.as_deref();
        if let Some(hit) = self.documents.get(text, name) {
            return Ok(hit);
        }
        if let Err(too_large) = document::check_size(
            text,
            self.limits.max_document_bytes,
            self.limits.max_document_tokens,
        ) {
            return Err(Box::new(refuse(
                ErrorCode::QueryTooComplex,
                match too_large {
                    TooLarge::Bytes(n) => format!(
                        "the document is {n} bytes; the limit is {}",
                        self.limits.max_document_bytes
                    ),
                    TooLarge::Tokens => format!(
                        "the document has more than {} tokens",
                        self.limits.max_document_tokens
                    ),
                },
            )));
        }
        match Document::parse(text, name) {
            Ok(document) => {
                let document = Arc::new(document);
                self.documents.put(Arc::clone(&document));
                Ok(document)
            }
            Err(err) => {
                let mut refused =
                    coded_error(ErrorCode::GraphqlParseFailed, syntax_message(&err), None);
                refused.locations = err.positions().collect();
                Err(Box::new(Outcome::refused(refused)))
            }
        }
    }

    /// What must be refused before validation (see the module documentation), if anything.
    fn refusal(&self, document: &Document, request: &Request, is_get: bool) -> Option<Outcome> {
        let limits = &self.limits;
        let ty = match document.selected {
            Selected::Operation(ty) => ty,
            Selected::UnknownName => {
                return Some(refuse(
                    ErrorCode::BadRequest,
                    "the document has no operation of the given operationName",
                ));
            }
            Selected::NameRequired => {
                return Some(refuse(
                    ErrorCode::BadRequest,
                    "the document has several operations: give operationName",
                ));
            }
        };
        if is_get && ty != OperationType::Query {
            return Some(refuse(
                ErrorCode::MethodNotAllowed,
                "only queries may be sent with GET; send mutations with POST",
            ));
        }
        let measure = document.measure;
        if measure.data_fields > limits.max_fields {
            return Some(refuse(
                ErrorCode::QueryTooComplex,
                format!(
                    "the operation selects {} fields (fragments expanded); the limit is {}",
                    measure.data_fields, limits.max_fields
                ),
            ));
        }
        if measure.data_depth > limits.max_depth {
            return Some(refuse(
                ErrorCode::QueryTooComplex,
                format!(
                    "the operation nests {} levels deep; the limit is {}",
                    measure.data_depth, limits.max_depth
                ),
            ));
        }
        if measure.introspection_fields > MAX_INTROSPECTION_FIELDS {
            return Some(refuse(
                ErrorCode::QueryTooComplex,
                format!(
                    "the introspection selects {} fields; the limit is {MAX_INTROSPECTION_FIELDS}",
                    measure.introspection_fields
                ),
            ));
        }
        if let Some(op) = document.operation() {
            let compute = || {
                complexity::complexity(
                    op,
                    &document.doc.fragments,
                    &request.variables,
                    &self.registry,
                )
            };
            // Only page sizes given by variables make it depend on the request.
            let cost = if document.variable_arguments.is_empty() {
                *document.memo.complexity.get_or_init(compute)
            } else {
                compute()
            };
            if cost > limits.max_complexity {
                return Some(refuse(
                    ErrorCode::QueryTooComplex,
                    format!(
                        "the operation's complexity is {cost} (a connection costs its page size \
                         times what it selects); the limit is {}",
                        limits.max_complexity
                    ),
                ));
            }
        }
        if document.introspection && !self.introspection {
            return Some(refuse(
                ErrorCode::GraphqlValidationFailed,
                "introspection is disabled on this server",
            ));
        }
        for (name, ty, path) in &document.required_variables {
            let provided = request
                .variables
                .get(name.as_str())
                .is_some_and(|v| !matches!(v, async_graphql::Value::Null));
            if !provided {
                return Some(Outcome::refused(coded_error(
                    ErrorCode::BadUserInput,
                    format!("variable ${name} of type {ty} must be given a non-null value"),
                    path.as_deref(),
                )));
            }
        }
        let enum_literal = document.memo.enum_literal.get_or_init(|| {
            document.operation().and_then(|op| {
                literals::string_for_enum(op, &document.doc.fragments, &self.registry)
            })
        });
        if let Some((path, enum_name)) = enum_literal {
            return Some(refuse(
                ErrorCode::GraphqlValidationFailed,
                format!(
                    "{path}: a {enum_name} value is written without quotes (an enum value, not a string)"
                ),
            ));
        }
        None
    }

    /// Runs one operation for `caller`.
    ///
    /// A query is abandoned (and answered with a coded error) when the caller's deadline
    /// passes or the database becomes unreachable while it runs. A mutation is never abandoned
    /// from here: its transaction is guarded up to the commit, so its answer always tells
    /// whether it committed.
    pub async fn execute(&self, operation: Operation, caller: &Caller) -> Outcome {
        let Operation {
            mut request,
            document_id,
        } = operation;
        if let Err(err) = self.persisted.resolve(&mut request, document_id.as_deref()) {
            return Outcome::refused(err);
        }
        if request.query.is_empty() {
            return refuse(ErrorCode::BadRequest, "the request has no query");
        }
        let document = match self.document(&request) {
            Ok(document) => document,
            Err(refused) => return *refused,
        };
        if let Some(refused) = self.refusal(&document, &request, caller.is_get) {
            return Outcome {
                operation_name: document.name.clone(),
                ..refused
            };
        }
        let is_mutation = document.operation_type() == Some(OperationType::Mutation);
        let actor = Actor {
            subject: caller.principal.subject.clone(),
            request_id: caller.request_id.clone(),
            deadline: caller.deadline,
            key: None,
        };
        // A mutation under an Idempotency-Key runs once (queries change nothing: a key on
        // them is ignored).
        let mut keyed = None;
        if let (Some(key), true) = (&caller.idempotency_key, is_mutation) {
            match self.claim(&actor, &caller.principal, key, &request).await {
                Ok((hold, recorded)) => keyed = Some((hold, recorded)),
                Err(outcome) => {
                    return Outcome {
                        operation_name: document.name.clone(),
                        ..*outcome
                    };
                }
            }
        }
        let (loaders, quiescence) = new_loaders(self.db.clone(), Arc::clone(&self.metrics));
        let raw_parts = Arc::new(RawParts::default());
        request.set_parsed_query(document.doc.clone());
        let request = request
            .data(Arc::clone(&raw_parts))
            .data(loaders)
            .data(caller.principal.clone())
            .data(RequestContext {
                actor: actor.clone(),
                key: keyed.as_ref().map(|(hold, recorded)| KeyContext {
                    hold: hold.clone(),
                    recorded: recorded.clone(),
                }),
            });
        // Full validation until the document has passed it once; then only the variables depend
        // on the request (async-graphql's full validation costs about a quarter of a small
        // query's instructions, measured with callgrind on W1).
        let known = document.validated.get().is_some()
            && document
                .operation()
                .is_some_and(|op| variables::fit(op, &request.variables, &self.registry));
        let schema = if known {
            &self.revalidating
        } else {
            &self.schema
        };
        let work = track(quiescence, schema.execute(request));
        tokio::pin!(work);
        let abandoned = |code: ErrorCode, message: String| Outcome {
            // Execution started but was stopped: no data, one coded error.
            response: Response::from_errors(vec![coded_error(code, message, None)]),
            executed: true,
            operation_name: document.name.clone(),
            raw: RawTable::default(),
            replayed: None,
        };
        let mut response = tokio::select! {
            response = &mut work => response,
            () = crate::db::expiry(caller.deadline), if !is_mutation => return abandoned(
                ErrorCode::RequestTimeout,
                format!("the request ran longer than {:?} and was cut off", self.limits.request_timeout),
            ),
            () = self.db.health().unreachable(), if !is_mutation => return abandoned(
                ErrorCode::ServiceUnavailable,
                "the database became unreachable; retry later".to_owned(),
            ),
        };
        let bounds = ErrorBounds {
            max_errors: self.limits.max_errors,
            max_message_chars: self.limits.max_error_message_chars,
        };
        if !known && finish::executed(&response) {
            let _ = document.validated.set(());
        }
        let executed = finish::finish(
            &mut response,
            &document,
            &self.registry,
            bounds,
            crate::graphql::DESCRIPTION,
        );
        let outcome = Outcome {
            response,
            executed,
            operation_name: document.name.clone(),
            raw: raw_parts.take(),
            replayed: None,
        };
        if let Some((hold, _)) = keyed {
            self.settle(&actor, &hold, &outcome).await;
        }
        outcome
    }

    /// Claims `key` for this mutation (see [`crate::service::idempotency`]): the hold and
    /// what earlier attempts committed, or the outcome to answer instead of running.
    async fn claim(
        &self,
        actor: &Actor,
        principal: &Principal,
        key: &str,
        request: &Request,
    ) -> Result<(KeyHold, HashMap<String, uuid::Uuid>), Box<Outcome>> {
        let claimed = idempotency::claim(
            &self.db,
            actor,
            key,
            &fingerprint(request, principal),
            self.limits.idempotency_lease,
            self.limits.idempotency_retention,
        )
        .await;
        let err = match claimed {
            Ok(Claim::Run { token, recorded }) => {
                let hold = KeyHold {
                    subject: actor.subject.clone().unwrap_or_default(),
                    key: key.to_owned(),
                    token,
                    field: String::new(),
                };
                return Ok((hold, recorded));
            }
            Ok(Claim::Replay(body)) => {
                return Err(Box::new(Outcome {
                    response: Response::new(async_graphql::Value::Null),
                    executed: true,
                    operation_name: None,
                    raw: RawTable::default(),
                    replayed: Some(Replayed::new(body)),
                }));
            }
            Ok(Claim::Reused) => AppError::IdempotencyKeyReused,
            Ok(Claim::InProgress) => AppError::IdempotencyKeyInProgress,
            Err(e) => e,
        };
        if err.is_internal() {
            tracing::error!(error = %err, "claiming an idempotency key failed");
        }
        Err(Box::new(Outcome::refused(coded_error(
            err.code(),
            err.public_message(),
            Some("Idempotency-Key"),
        ))))
    }

    /// Stores the answer under the key, or releases the claim when the answer may not be
    /// final (a retry then runs, answering what was committed from the record).
    async fn settle(&self, actor: &Actor, hold: &KeyHold, outcome: &Outcome) {
        let temporary = outcome.response.errors.iter().any(|e| {
            matches!(
                finish::error_code(e),
                Some(
                    ErrorCode::ServiceUnavailable
                        | ErrorCode::InternalServerError
                        | ErrorCode::RequestTimeout
                        | ErrorCode::IdempotencyKeyInProgress
                        | ErrorCode::Unauthenticated
                        | ErrorCode::Forbidden
                )
            )
        });
        // Not bounded by the request's deadline: the answer is ready, and storing it is what
        // makes a retry cheap.
        let actor = Actor {
            deadline: None,
            ..actor.clone()
        };
        let stored = if temporary {
            idempotency::release(&self.db, &actor, hold).await
        } else {
            let mut body = Vec::with_capacity(256 + outcome.written_len());
            match outcome
                .write_json(&mut body)
                .map(|()| String::from_utf8(body))
            {
                Ok(Ok(body)) => idempotency::complete(&self.db, &actor, hold, body).await,
                _ => idempotency::release(&self.db, &actor, hold).await,
            }
        };
        if let Err(e) = stored {
            // The answer still goes out; a retry answers from what was committed.
            tracing::warn!(error = %e, "could not store the answer under an idempotency key");
        }
    }
}

/// Expired idempotency keys deleted per statement.
const PRUNE_BATCH: u32 = 1000;

/// Deletes expired idempotency keys every minute (or a quarter of the retention, when that is
/// shorter), in batches, until the server stops. Outside a Tokio runtime nothing is started.
fn spawn_key_pruning(db: crate::db::WeakDb, retention: std::time::Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let every = (retention / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(db) = db.upgrade() else { return };
            if db.ensure_reachable().is_err() {
                continue;
            }
            loop {
                match idempotency::prune(&db, PRUNE_BATCH).await {
                    Ok(n) if n == u64::from(PRUNE_BATCH) => continue,
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(pruned = n, "expired idempotency keys deleted");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning idempotency keys failed");
                        break;
                    }
                }
            }
        }
    });
}

/// SHA-256 of what makes a request the same request: the document, the operation name, the
/// variables (keys sorted at every level, so their order does not matter) and the scopes the
/// caller holds (a stored answer is never replayed to a token that could not have read it).
fn fingerprint(request: &Request, principal: &Principal) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    fn canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(
                        serde_json::Value::from(k.as_str()).to_string().as_bytes(),
                    );
                    out.push(b':');
                    canonical(v, out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(v, out);
                }
                out.push(b']');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    let mut variables = Vec::new();
    let json = request
        .variables
        .clone()
        .into_value()
        .into_json()
        .unwrap_or_default();
    canonical(&json, &mut variables);
    let scopes: Vec<u8> = crate::auth::Scope::ALL
        .iter()
        .map(|s| u8::from(principal.has(*s)))
        .collect();
    let mut hash = Sha256::new();
    for part in [
        request.query.as_bytes(),
        request.operation_name.as_deref().unwrap_or("").as_bytes(),
        &variables,
        &scopes,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().to_vec()
}

/// A parse error in one line: where, and what the parser expected.
fn syntax_message(err: &async_graphql::parser::Error) -> String {
    let at = err
        .positions()
        .next()
        .map(|p| format!(" at line {}, column {}", p.line, p.column))
        .unwrap_or_default();
    // The parser's own text is a multi-line drawing of the document around the error; only
    // the expectation on its last line is kept.
    let text = err.to_string();
    let expected = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim_start_matches(['=', ' ']))
        .filter(|line| line.len() < 200)
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    format!("the document does not parse{at}{expected}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_one_line_with_a_location() {
        let err = match async_graphql::parser::parse_query("{ funds(first: ) { id } }") {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        };
        let message = syntax_message(&err);
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("line 1, column"), "{message}");
    }
}
