//! GraphQL over HTTP (the GraphQL-over-HTTP spec): `POST` with JSON, `GET` for queries,
//! `application/graphql-response+json` when the client accepts it, batching up to a limit,
//! and a body limit. This module only negotiates, reads requests and renders; the
//! [`crate::executor`] runs them.

use async_graphql::{Request, Variables};
use axum::{
    Extension,
    body::{Body, Bytes},
    extract::{Query, State, rejection::QueryRejection},
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE},
    },
    response::Response,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    AppState,
    middleware::RequestId,
    render::{self, APPLICATION_JSON, Format, GRAPHQL_RESPONSE_JSON, negotiate, request_error},
};
use crate::{
    auth::{AuthError, Principal},
    error::ErrorCode,
    executor::{Caller, Operation},
};

/// A body as it arrived: one operation or a batch.
enum Batch {
    /// A JSON object.
    Single(Box<Operation>),
    /// A JSON array of objects.
    Many(Vec<Operation>),
}

/// Why a body is not a GraphQL request.
enum BodyError {
    /// Not the shape of a GraphQL-over-HTTP request.
    NotGraphql(String),
    /// The variables (or extensions) do not parse, e.g. a number out of range.
    Variables(String),
}

/// The JSON object of one operation (`documentId` is the GraphQL-over-HTTP persisted form).
/// `variables` and `extensions` are read apart, so that a value in them that JSON cannot
/// represent (such as `1e400`) is reported as bad input, not as a malformed request.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    query: Option<String>,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Box<RawValue>>,
    #[serde(default)]
    extensions: Option<Box<RawValue>>,
    #[serde(rename = "documentId", default)]
    document_id: Option<String>,
}

impl Envelope {
    fn into_operation(self) -> Result<Operation, BodyError> {
        let mut request = Request::new(self.query.unwrap_or_default());
        request.operation_name = self.operation_name;
        if let Some(raw) = self.variables.filter(|r| r.get() != "null") {
            request.variables = serde_json::from_str::<Variables>(raw.get())
                .map_err(|e| BodyError::Variables(format!("the variables do not parse: {e}")))?;
        }
        if let Some(raw) = self.extensions.filter(|r| r.get() != "null") {
            request.extensions = serde_json::from_str(raw.get())
                .map_err(|e| BodyError::Variables(format!("the extensions do not parse: {e}")))?;
        }
        Ok(Operation {
            request,
            document_id: self.document_id,
        })
    }
}

/// Reads a single request (a JSON object) or a batch (a non-empty array of objects).
fn parse_body(bytes: &[u8]) -> Result<Batch, BodyError> {
    let not_graphql = |e: serde_json::Error| BodyError::NotGraphql(e.to_string());
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice::<Envelope>(bytes)
            .map_err(not_graphql)?
            .into_operation()
            .map(|o| Batch::Single(Box::new(o))),
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_slice(bytes).map_err(not_graphql)?;
            if items.is_empty() {
                return Err(BodyError::NotGraphql("the batch is empty".to_owned()));
            }
            items
                .iter()
                .map(|raw| {
                    if raw.get().trim_start().starts_with('{') {
                        serde_json::from_str::<Envelope>(raw.get())
                            .map_err(not_graphql)?
                            .into_operation()
                    } else {
                        Err(BodyError::NotGraphql(
                            "every batch item must be an object".to_owned(),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Batch::Many)
        }
        _ => Err(BodyError::NotGraphql(
            "expected a JSON object or array".to_owned(),
        )),
    }
}

/// Runs a single or batched request and writes the HTTP response.
async fn run(
    state: &AppState,
    format: Format,
    batch: Batch,
    request_id: &RequestId,
    is_get: bool,
    principal: Principal,
    idempotency_key: Option<String>,
) -> Response {
    let limits = &state.config.limits;
    if idempotency_key.is_some() && matches!(batch, Batch::Many(_)) {
        return request_error(
            StatusCode::BAD_REQUEST,
            format,
            ErrorCode::BadRequest,
            "an Idempotency-Key covers one operation: send the mutation on its own, not in a batch",
        );
    }
    let caller = Caller {
        principal,
        request_id: request_id.0.clone(),
        deadline: Some(tokio::time::Instant::now() + limits.request_timeout),
        is_get,
        idempotency_key,
    };
    // Held until the response is written: execution and serialisation both count.
    let Some(_slot) = state.slots.acquire(caller.deadline).await else {
        return request_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format,
            ErrorCode::RequestTimeout,
            format!(
                "the server was too busy to start the request within {:?}; nothing was run",
                limits.request_timeout
            ),
        );
    };
    match batch {
        Batch::Single(operation) => {
            let name = operation.request.operation_name.clone();
            let outcome = state.executor.execute(*operation, &caller).await;
            let name = name.or_else(|| outcome.operation_name.clone());
            let mut response =
                render::outcomes(std::slice::from_ref(&outcome), false, format, name);
            if outcome.replayed.is_some() {
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
            }
            response
        }
        Batch::Many(operations) => {
            let limit = limits.max_batch_size;
            if operations.len() > limit {
                return request_error(
                    StatusCode::BAD_REQUEST,
                    format,
                    ErrorCode::BadRequest,
                    if limit == 0 {
                        "batched requests are turned off on this server".to_owned()
                    } else {
                        format!(
                            "a batch may hold at most {limit} operations, got {}",
                            operations.len()
                        )
                    },
                );
            }
            let names: Vec<String> = operations
                .iter()
                .map(|o| {
                    o.request
                        .operation_name
                        .clone()
                        .unwrap_or_else(|| "-".to_owned())
                })
                .collect();
            // Operations of a batch run one after another, as separate requests would.
            let mut outcomes = Vec::with_capacity(operations.len());
            for operation in operations {
                outcomes.push(state.executor.execute(operation, &caller).await);
            }
            render::outcomes(&outcomes, true, format, Some(names.join(",")))
        }
    }
}

/// The caller, from the `Authorization` header; a 401 (with the spec's media type) or a 200
/// with `UNAUTHENTICATED` when there is no valid token. The reason is logged, not returned.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    format: Format,
) -> Result<Principal, Response> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.auth.authenticate(header).await.map_err(|err| {
        tracing::info!(reason = %err, "request refused: not authenticated");
        let status = if format == Format::GraphqlResponse {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        let mut response = request_error(
            status,
            format,
            ErrorCode::Unauthenticated,
            "a valid bearer token is required (Authorization: Bearer <token>)",
        );
        let challenge = match err {
            AuthError::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        };
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    })
}

fn not_acceptable() -> Response {
    request_error(
        StatusCode::NOT_ACCEPTABLE,
        Format::Json,
        ErrorCode::BadRequest,
        format!("this endpoint answers {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}"),
    )
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().eq_ignore_ascii_case(APPLICATION_JSON))
        .unwrap_or(false)
}

/// `POST /graphql`.
pub async fn graphql_post(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(format) = negotiate(&headers) else {
        return not_acceptable();
    };
    let principal = match authenticate(&state, &headers, format).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    if !is_json_content_type(&headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format,
            ErrorCode::BadRequest,
            "send the request as Content-Type: application/json",
        );
    }
    let limit = state.config.limits.max_body_bytes;
    let read = tokio::time::timeout(
        state.config.http.body_timeout,
        axum::body::to_bytes(body, limit),
    );
    let bytes: Bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                request_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format,
                    ErrorCode::PayloadTooLarge,
                    format!("the request body is over the limit of {limit} bytes"),
                )
            } else {
                request_error(
                    StatusCode::BAD_REQUEST,
                    format,
                    ErrorCode::BadRequest,
                    "could not read the request body",
                )
            };
        }
        Err(_) => {
            return request_error(
                StatusCode::REQUEST_TIMEOUT,
                format,
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {:?}",
                    state.config.http.body_timeout
                ),
            );
        }
    };
    let batch = match parse_body(&bytes) {
        Ok(batch) => batch,
        Err(BodyError::NotGraphql(reason)) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadRequest,
                format!(
                    "the body is not a GraphQL request (a JSON object with \"query\", \"variables\", \"operationName\", or a non-empty array of them): {}",
                    short(&reason)
                ),
            );
        }
        Err(BodyError::Variables(reason)) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadUserInput,
                short(&reason),
            );
        }
    };
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    run(&state, format, batch, &request_id, false, principal, key).await
}

/// The request header naming a mutation's idempotency key (at most 255 printable ASCII
/// characters).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The response header marking an answer given again under an idempotency key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The `Idempotency-Key` header (`None` without one), or the response refusing its form.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_CHARS
        || !bytes.iter().all(|b| (0x20..=0x7e).contains(b))
    {
        return Err(Box::new(render::field_error(
            negotiate(headers).unwrap_or(Format::Json),
            ErrorCode::BadUserInput,
            format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable \
                 ASCII characters"
            ),
            "Idempotency-Key",
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// A parser's reason, bounded (it never quotes the body, but be sure).
fn short(reason: &str) -> String {
    reason.chars().take(200).collect()
}

/// Query-string parameters of `GET /graphql`.
#[derive(Debug, Deserialize)]
pub struct GetParams {
    query: Option<String>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// `GET /graphql`: the playground for browsers; otherwise a query from the query string.
pub async fn graphql_get(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let params = params.ok().map(|Query(p)| p);
    let has_operation = params
        .as_ref()
        .is_some_and(|p| p.query.is_some() || p.extensions.is_some() || p.document_id.is_some());
    if !has_operation && wants_html(&headers) {
        if state.config.graphiql {
            let options = super::playground::PlaygroundOptions::default()
                .requiring_token(!state.auth.is_open());
            return super::playground::page(&options);
        }
        let mut response = request_error(
            StatusCode::NOT_FOUND,
            Format::Json,
            ErrorCode::BadRequest,
            "the playground is turned off on this server; POST GraphQL requests to /graphql",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    let Some(format) = negotiate(&headers) else {
        return not_acceptable();
    };
    let principal = match authenticate(&state, &headers, format).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Some(params) = params else {
        return request_error(
            StatusCode::BAD_REQUEST,
            format,
            ErrorCode::BadRequest,
            "the query string could not be read",
        );
    };
    let json = |name: &str, text: Option<String>| match text {
        None => Ok(None),
        Some(text) => RawValue::from_string(text)
            .map(Some)
            .map_err(|_| format!("the {name} parameter must be JSON")),
    };
    let (variables, extensions) = match (
        json("variables", params.variables),
        json("extensions", params.extensions),
    ) {
        (Ok(v), Ok(e)) => (v, e),
        (Err(reason), _) | (_, Err(reason)) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadRequest,
                reason,
            );
        }
    };
    let envelope = Envelope {
        query: params.query,
        operation_name: params.operation_name,
        variables,
        extensions,
        document_id: params.document_id,
    };
    let operation = match envelope.into_operation() {
        Ok(operation) => operation,
        Err(BodyError::NotGraphql(reason)) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadRequest,
                short(&reason),
            );
        }
        // As over POST: JSON that no GraphQL value holds (`1e400`) is bad input.
        Err(BodyError::Variables(reason)) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadUserInput,
                short(&reason),
            );
        }
    };
    // Only queries run over GET; an Idempotency-Key there has nothing to protect.
    run(
        &state,
        format,
        Batch::Single(Box::new(operation)),
        &request_id,
        true,
        principal,
        None,
    )
    .await
}
