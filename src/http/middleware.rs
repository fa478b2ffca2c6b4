//! Per-request context: the request id (echoed or generated), a tracing span carrying it, and
//! one log line per request with status, operation, error code and duration.

use std::{any::Any, time::Instant};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    middleware::Next,
    response::Response,
};
use tracing::{Instrument, field::Empty};

use super::AppState;
use crate::error::{ErrorCode, INTERNAL_MESSAGE};

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request, and when the server began handling it (after the
/// client sent it: every write acknowledged to the client before is committed by then).
#[derive(Debug, Clone)]
pub struct RequestId(pub String, pub tokio::time::Instant);

/// What the GraphQL handler reports back for the request log and metrics.
#[derive(Debug, Clone, Default)]
pub struct GraphqlOutcome {
    /// A GraphQL request was handled (not GraphiQL, not a transport refusal before parsing).
    pub graphql: bool,
    /// Operation name(s), when given.
    pub operation: Option<String>,
    /// The first error code of the response, if any.
    pub error_code: Option<ErrorCode>,
}

/// A fresh random (version 4) UUID. Request ids need uniqueness, not unpredictability, so a
/// fast thread-local generator replaces a `getrandom` system call per request.
fn new_request_id() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A client's id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]`.
fn acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Wraps every request: assigns the id, opens the span, logs the outcome.
pub async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    request
        .extensions_mut()
        .insert(RequestId(id.clone(), tokio::time::Instant::now()));
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        operation = Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let outcome = response
        .extensions()
        .get::<GraphqlOutcome>()
        .cloned()
        .unwrap_or_default();
    if let Some(op) = &outcome.operation {
        span.record("operation", op.as_str());
    }
    let status = response.status().as_u16();
    // Whole microseconds: `0.192`, not `0.19219899999999998`.
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let code = outcome.error_code.map(ErrorCode::as_str).unwrap_or("");
    state.metrics.record_http(&path, status);
    if outcome.graphql {
        state.metrics.record_graphql(
            outcome.operation.as_deref(),
            outcome.error_code.map_or("ok", ErrorCode::as_str),
            elapsed,
        );
    }
    if elapsed >= state.config.log.slow_request {
        tracing::warn!(parent: &span, status, duration_ms, error_code = code, "slow request");
    } else {
        tracing::info!(parent: &span, status, duration_ms, error_code = code, "request finished");
    }
    response
}

/// A panic anywhere below becomes a generic 500 in the contract's error shape (the cause is
/// logged, never sent).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = detail, "a request handler panicked");
    let body = serde_json::json!({
        "errors": [{ "message": INTERNAL_MESSAGE, "extensions": { "code": ErrorCode::InternalServerError.as_str() } }]
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_safe() {
        assert!(acceptable_request_id("abc-123_x.y:z"));
        assert!(acceptable_request_id(&"a".repeat(128)));
        assert!(!acceptable_request_id(&"a".repeat(129)));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("a b"));
        assert!(!acceptable_request_id("a\nb"));
    }
}
