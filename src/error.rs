//! One error type for the whole application, each variant answering with exactly one stable
//! `extensions.code` from the contract.
//!
//! Services return [`AppError`]; the GraphQL layer turns it into a response error. Database and
//! unexpected errors keep their cause for the log and answer clients with a generic message, so
//! no SQL, constraint name or error chain ever reaches a client.

use std::fmt;

use sea_orm::{DbErr, RuntimeErr};

/// The stable codes carried in `errors[].extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Invalid argument or input value (with `extensions.field`).
    BadUserInput,
    /// A mutation names a fund or investor that does not exist.
    NotFound,
    /// Duplicate investor email.
    Conflict,
    /// Investment into a closed fund.
    FundClosed,
    /// Fund status moved backwards.
    InvalidStatusTransition,
    /// The document does not parse.
    GraphqlParseFailed,
    /// The document does not validate against the schema.
    GraphqlValidationFailed,
    /// Over the depth, complexity or size limits.
    QueryTooComplex,
    /// A persisted-query hash (or document id) the server does not know.
    PersistedQueryNotFound,
    /// A document outside the allow-list, when only trusted documents run.
    PersistedQueryNotInList,
    /// The request is not a well-formed GraphQL-over-HTTP request.
    BadRequest,
    /// The request body is over the configured limit.
    PayloadTooLarge,
    /// A mutation was sent with GET.
    MethodNotAllowed,
    /// The request or one of its statements ran out of time.
    RequestTimeout,
    /// No or invalid credentials.
    Unauthenticated,
    /// The credentials do not allow this.
    Forbidden,
    /// The database cannot be reached or the pool is exhausted.
    ServiceUnavailable,
    /// Anything unexpected.
    InternalServerError,
    /// The `Idempotency-Key` was used before with other input (another document, operation
    /// name or variables).
    IdempotencyKeyReused,
    /// The request first sent with this `Idempotency-Key` is still running; retry later.
    IdempotencyKeyInProgress,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::BadUserInput,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::FundClosed,
        ErrorCode::InvalidStatusTransition,
        ErrorCode::GraphqlParseFailed,
        ErrorCode::GraphqlValidationFailed,
        ErrorCode::QueryTooComplex,
        ErrorCode::PersistedQueryNotFound,
        ErrorCode::PersistedQueryNotInList,
        ErrorCode::BadRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalServerError,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInProgress,
    ];

    /// The wire form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::FundClosed => "FUND_CLOSED",
            ErrorCode::InvalidStatusTransition => "INVALID_STATUS_TRANSITION",
            ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ErrorCode::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
        }
    }

    /// Parses the wire form back (used when reading codes off responses).
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether this code means the request failed before execution started.
    pub fn is_request_error(self) -> bool {
        matches!(
            self,
            ErrorCode::GraphqlParseFailed
                | ErrorCode::GraphqlValidationFailed
                | ErrorCode::QueryTooComplex
                | ErrorCode::PersistedQueryNotFound
                | ErrorCode::PersistedQueryNotInList
                | ErrorCode::BadRequest
                | ErrorCode::PayloadTooLarge
                | ErrorCode::MethodNotAllowed
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message clients see for anything unexpected; details go to the log only.
pub const INTERNAL_MESSAGE: &str =
    "Internal server error. The request id identifies it in the log.";

/// Every way an operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An argument or input field is invalid.
    #[error("{field}: {message}")]
    BadUserInput {
        /// Dot path of argument and input-field names, e.g. `input.vintageYear`.
        field: String,
        /// What is wrong, for humans.
        message: String,
    },
    /// A referenced fund or investor does not exist.
    #[error("{entity} {id} does not exist")]
    NotFound {
        /// `fund` or `investor`.
        entity: &'static str,
        /// The id that was not found.
        id: uuid::Uuid,
        /// The input field that named it.
        field: &'static str,
    },
    /// A unique rule was broken (duplicate investor email).
    #[error("{message}")]
    Conflict {
        /// The input field whose value is taken.
        field: &'static str,
        /// What is taken, for humans.
        message: String,
    },
    /// An investment into a closed fund.
    #[error("fund {fund_id} is closed and accepts no new investments")]
    FundClosed {
        /// The closed fund.
        fund_id: uuid::Uuid,
    },
    /// A fund's status may only move forward.
    #[error("a fund's status cannot move from {from} back to {to}")]
    InvalidStatusTransition {
        /// Current status (GraphQL name).
        from: &'static str,
        /// Requested status (GraphQL name).
        to: &'static str,
    },
    /// The caller's token lacks the scope this field needs.
    #[error("this needs the `{scope}` scope, which the token does not grant")]
    Forbidden {
        /// The scope needed.
        scope: crate::auth::Scope,
        /// The argument that needs it, when the field itself is allowed (e.g.
        /// `filter.email`, which would otherwise let a caller probe personal data).
        argument: Option<&'static str>,
    },
    /// A statement ran over the database's statement timeout, or the request over its deadline.
    #[error("the request took too long and was cancelled")]
    Timeout,
    /// The database cannot be reached or the pool is exhausted; nothing was committed.
    #[error("the database is unavailable; retry later")]
    ServiceUnavailable(#[source] Option<DbErr>),
    /// A commit whose outcome is unknown (the connection broke during COMMIT).
    #[error("commit outcome unknown")]
    CommitOutcomeUnknown(#[source] DbErr),
    /// Anything else from the database.
    #[error("database error")]
    Database(#[source] DbErr),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
    /// The `Idempotency-Key` was used before with other input.
    #[error(
        "this Idempotency-Key was used with another request (document, operation name or \
         variables); use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// The request first sent with this `Idempotency-Key` is still running.
    #[error(
        "the request first sent with this Idempotency-Key is still running; retry with the \
         same key shortly to get its answer"
    )]
    IdempotencyKeyInProgress,
}

impl AppError {
    /// A `BAD_USER_INPUT` error for `field`.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The contract code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadUserInput { .. } => ErrorCode::BadUserInput,
            AppError::NotFound { .. } => ErrorCode::NotFound,
            AppError::Conflict { .. } => ErrorCode::Conflict,
            AppError::FundClosed { .. } => ErrorCode::FundClosed,
            AppError::InvalidStatusTransition { .. } => ErrorCode::InvalidStatusTransition,
            AppError::Forbidden { .. } => ErrorCode::Forbidden,
            AppError::Timeout => ErrorCode::RequestTimeout,
            AppError::ServiceUnavailable(_) => ErrorCode::ServiceUnavailable,
            AppError::CommitOutcomeUnknown(_) | AppError::Database(_) | AppError::Internal(_) => {
                ErrorCode::InternalServerError
            }
            AppError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            AppError::IdempotencyKeyInProgress => ErrorCode::IdempotencyKeyInProgress,
        }
    }

    /// The input field this error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::BadUserInput { field, .. } => Some(field),
            AppError::NotFound { field, .. } | AppError::Conflict { field, .. } => Some(field),
            AppError::Forbidden {
                argument: Some(field),
                ..
            } => Some(field),
            _ => None,
        }
    }

    /// Whether the cause must stay in the log (clients get [`INTERNAL_MESSAGE`]).
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::InternalServerError
    }

    /// The message clients see.
    pub fn public_message(&self) -> String {
        if self.is_internal() {
            INTERNAL_MESSAGE.to_owned()
        } else {
            self.to_string()
        }
    }

    /// Classifies an error from a statement that certainly did not commit anything:
    /// unreachable database → `SERVICE_UNAVAILABLE`, statement timeout → `REQUEST_TIMEOUT`,
    /// anything else → internal.
    pub fn from_db(err: DbErr) -> Self {
        match classify_db_error(&err) {
            DbErrorClass::Unavailable => AppError::ServiceUnavailable(Some(err)),
            DbErrorClass::Timeout => AppError::Timeout,
            DbErrorClass::Other => AppError::Database(err),
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        AppError::from_db(err)
    }
}

/// What a database error means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorClass {
    /// The database cannot be reached, refused the connection, or the pool is exhausted.
    Unavailable,
    /// The statement was cancelled by `statement_timeout`.
    Timeout,
    /// Anything else (constraint violations are handled by the services before this).
    Other,
}

/// SQLSTATEs that mean "the server is going away or cannot take us now".
fn sqlstate_is_unavailable(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "53300" // too_many_connections
                | "53000" // insufficient_resources
        )
}

/// Classifies a database error by its cause, not its message.
pub fn classify_db_error(err: &DbErr) -> DbErrorClass {
    use sea_orm::sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => DbErrorClass::Unavailable,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => DbErrorClass::Unavailable,
                sqlx::Error::Database(db) => match db.code() {
                    Some(code) if code == "57014" => DbErrorClass::Timeout,
                    Some(code) if sqlstate_is_unavailable(&code) => DbErrorClass::Unavailable,
                    _ => DbErrorClass::Other,
                },
                _ => DbErrorClass::Other,
            }
        }
        _ => DbErrorClass::Other,
    }
}

/// The SQLSTATE and constraint name of a database-reported error, when it is one.
fn database_error(err: &DbErr) -> Option<(String, Option<String>)> {
    use sea_orm::sqlx;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Database(db) => Some((
                    db.code().map(|c| c.into_owned()).unwrap_or_default(),
                    db.constraint().map(str::to_owned),
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `err` is a unique violation (SQLSTATE 23505) of the named index.
pub fn is_unique_violation(err: &DbErr, index: &str) -> bool {
    matches!(database_error(err), Some((code, Some(c))) if code == "23505" && c == index)
}

/// Whether `err` is a foreign-key violation (SQLSTATE 23503) of the named constraint.
pub fn is_foreign_key_violation(err: &DbErr, constraint: &str) -> bool {
    matches!(database_error(err), Some((code, Some(c))) if code == "23503" && c == constraint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_exactly_one_contract_code() {
        let id = uuid::Uuid::nil();
        let cases: Vec<(AppError, &str)> = vec![
            (AppError::bad_input("input.name", "blank"), "BAD_USER_INPUT"),
            (
                AppError::NotFound {
                    entity: "fund",
                    id,
                    field: "input.fundId",
                },
                "NOT_FOUND",
            ),
            (
                AppError::Conflict {
                    field: "input.email",
                    message: "taken".into(),
                },
                "CONFLICT",
            ),
            (AppError::FundClosed { fund_id: id }, "FUND_CLOSED"),
            (
                AppError::InvalidStatusTransition {
                    from: "CLOSED",
                    to: "INVESTING",
                },
                "INVALID_STATUS_TRANSITION",
            ),
            (
                AppError::Forbidden {
                    scope: crate::auth::Scope::PiiRead,
                    argument: None,
                },
                "FORBIDDEN",
            ),
            (AppError::Timeout, "REQUEST_TIMEOUT"),
            (AppError::ServiceUnavailable(None), "SERVICE_UNAVAILABLE"),
            (
                AppError::CommitOutcomeUnknown(DbErr::Custom("commit".into())),
                "INTERNAL_SERVER_ERROR",
            ),
            (
                AppError::Database(DbErr::Custom("x".into())),
                "INTERNAL_SERVER_ERROR",
            ),
            (AppError::Internal("x".into()), "INTERNAL_SERVER_ERROR"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code().as_str(), code, "{err:?}");
            assert_eq!(ErrorCode::from_code(code), Some(err.code()));
        }
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let err = AppError::Database(DbErr::Custom("relation \"funds\" does not exist".into()));
        assert_eq!(err.public_message(), INTERNAL_MESSAGE);
        let err = AppError::CommitOutcomeUnknown(DbErr::Custom("broken pipe".into()));
        assert_eq!(err.public_message(), INTERNAL_MESSAGE);
        assert_eq!(
            AppError::bad_input("first", "too big").public_message(),
            "first: too big"
        );
    }

    #[test]
    fn pool_and_connection_failures_are_unavailable_not_internal() {
        let acquire = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        assert_eq!(classify_db_error(&acquire), DbErrorClass::Unavailable);
        assert_eq!(
            AppError::from(acquire).code(),
            ErrorCode::ServiceUnavailable
        );
        let conn = DbErr::Conn(RuntimeErr::Internal("refused".into()));
        assert_eq!(AppError::from(conn).code(), ErrorCode::ServiceUnavailable);
        assert_eq!(
            AppError::from(DbErr::Custom("x".into())).code(),
            ErrorCode::InternalServerError
        );
    }

    #[test]
    fn codes_round_trip_and_request_errors_are_known() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(code));
        }
        assert!(ErrorCode::GraphqlParseFailed.is_request_error());
        assert!(!ErrorCode::BadUserInput.is_request_error());
    }
}
