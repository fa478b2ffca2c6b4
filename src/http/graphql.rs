//! GraphQL over HTTP, following the GraphQL-over-HTTP spec: `POST` with JSON, `GET` for
//! queries, `application/graphql-response+json` when the client accepts it (then a request
//! that fails before execution is HTTP 400), batching up to a limit, and a body limit.

use std::sync::Arc;

use async_graphql::{Request, Response, ServerError, Value};
use axum::{
    Extension,
    body::{Body, Bytes},
    extract::{Query, State, rejection::QueryRejection},
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, VARY, WWW_AUTHENTICATE},
    },
    response::{IntoResponse, Response as HttpResponse},
};
use serde::Deserialize;

use super::{
    AppState,
    middleware::{GraphqlOutcome, RequestId},
};
use async_graphql::registry::Registry;

use crate::{
    auth::{AuthError, Principal},
    error::{AppError, ErrorCode},
    graphql::{
        context::RequestContext,
        loader::{new_loaders, track},
        pipeline::{self, PrepareOptions, Validation, coded_error, error_code},
        raw::{self, RawParts, RawTable},
    },
    service::Actor,
};

/// `application/graphql-response+json`.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// `application/json`.
const APPLICATION_JSON: &str = "application/json";

/// The media type a response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `application/graphql-response+json`: request errors are HTTP 400.
    GraphqlResponse,
    /// `application/json` (legacy): every GraphQL result is HTTP 200.
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        }
    }
}

/// Picks the response format from `Accept`: the spec's type when it is preferred, JSON
/// otherwise (also with no `Accept`), `None` when neither is acceptable.
fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    // Highest q given to each format; `*/*` and `application/*` count for plain JSON.
    let (mut spec_q, mut json_q) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => spec_q = spec_q.max(q),
            APPLICATION_JSON | "application/*" | "*/*" => json_q = json_q.max(q),
            _ => {}
        }
    }
    if spec_q > 0.0 && spec_q >= json_q {
        Some(Format::GraphqlResponse)
    } else if json_q > 0.0 {
        Some(Format::Json)
    } else {
        None
    }
}

/// A GraphQL result as the spec writes it: no `data` key when execution never started.
struct WireResponse<'a> {
    data: Option<&'a Value>,
    errors: &'a [ServerError],
    extensions: &'a std::collections::BTreeMap<String, Value>,
    /// JSON written during execution, for the placeholders in `data`.
    raw: &'a RawTable,
}

impl WireResponse<'_> {
    /// Writes the compact JSON of `{"data", "errors", "extensions"}` (absent and empty
    /// members left out), with the parts of `raw` spliced into `data`.
    fn render(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        let mut members = 0;
        let mut member = |out: &mut Vec<u8>, name: &str| {
            if members > 0 {
                out.push(b',');
            }
            members += 1;
            raw::write_str(out, name).map(|()| out.push(b':'))
        };
        if let Some(data) = self.data {
            member(out, "data")?;
            raw::write_value(out, data, self.raw)?;
        }
        if !self.errors.is_empty() {
            member(out, "errors")?;
            serde_json::to_writer(&mut *out, self.errors)?;
        }
        if !self.extensions.is_empty() {
            member(out, "extensions")?;
            serde_json::to_writer(&mut *out, self.extensions)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// The JSON body of one result or of a batch's results.
fn render(wires: &[WireResponse<'_>], batch: bool) -> serde_json::Result<Vec<u8>> {
    let spliced: usize = wires.iter().map(|w| w.raw.len()).sum();
    let mut out = Vec::with_capacity(1024 + spliced + spliced / 8);
    if batch {
        out.push(b'[');
    }
    for (i, wire) in wires.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        wire.render(&mut out)?;
    }
    if batch {
        out.push(b']');
    }
    Ok(out)
}

/// One executed (or refused) operation.
struct Outcome {
    response: Response,
    executed: bool,
    /// The operation's name from its document (`query Name { … }`), when it has one.
    operation_name: Option<String>,
    /// JSON parts written during execution (see [`raw`]).
    raw: RawTable,
}

impl Outcome {
    fn wire(&self) -> WireResponse<'_> {
        WireResponse {
            data: self.executed.then_some(&self.response.data),
            errors: &self.response.errors,
            extensions: &self.response.extensions,
            raw: &self.raw,
        }
    }

    fn refused(err: ServerError) -> Outcome {
        Outcome {
            response: Response::from_errors(vec![err]),
            executed: false,
            operation_name: None,
            raw: RawTable::default(),
        }
    }

    fn first_code(&self) -> Option<ErrorCode> {
        self.response.errors.iter().find_map(error_code)
    }

    /// The HTTP status this outcome asks for.
    fn status(&self, format: Format) -> StatusCode {
        match self.first_code() {
            Some(ErrorCode::MethodNotAllowed) => StatusCode::METHOD_NOT_ALLOWED,
            _ if format == Format::GraphqlResponse
                && !self.executed
                && !self.response.errors.is_empty() =>
            {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::OK,
        }
    }
}

/// An error response written without running anything (bad body, too large, …).
fn request_error(
    status: StatusCode,
    format: Format,
    code: ErrorCode,
    message: impl Into<String>,
) -> HttpResponse {
    let outcome = Outcome::refused(coded_error(code, message, None));
    let mut response = bytes_response(status, format, render(&[outcome.wire()], false));
    response.extensions_mut().insert(GraphqlOutcome {
        graphql: true,
        operation: None,
        error_code: Some(code),
    });
    response
}

/// A response with an already serialised JSON body.
fn bytes_response(
    status: StatusCode,
    format: Format,
    body: serde_json::Result<Vec<u8>>,
) -> HttpResponse {
    match body {
        Ok(bytes) => {
            let mut response = HttpResponse::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            response
                .headers_mut()
                .insert(VARY, HeaderValue::from_static("accept"));
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "could not serialise a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Runs one operation with this request's loader, context and state.
///
/// A query is abandoned (and answered with a coded error) when the request's deadline passes
/// or the database becomes unreachable while it runs. A mutation is never abandoned from
/// here: its transaction is guarded up to the commit, so its answer always tells whether it
/// committed.
///
/// `began`: a moment after the client sent the operation (every write acknowledged to the
/// client before is committed by then), from which a query may share identical statements.
async fn execute_one(
    state: &AppState,
    incoming: Incoming,
    actor: &Actor,
    principal: &Principal,
    is_get: bool,
    began: tokio::time::Instant,
) -> Outcome {
    let Incoming {
        mut request,
        document_id,
    } = incoming;
    if let Err(err) = state
        .persisted
        .resolve(&mut request, document_id.as_deref())
    {
        return Outcome::refused(err);
    }
    let options = PrepareOptions {
        is_get,
        introspection_disabled: !state.config.introspection,
        limits: &state.config.limits,
    };
    let (request, facts) = match pipeline::prepare(request, options, &state.documents) {
        Ok(prepared) => prepared,
        Err(errors) => {
            return Outcome {
                response: Response::from_errors(errors),
                executed: false,
                operation_name: None,
                raw: RawTable::default(),
            };
        }
    };
    let operation_name = facts.operation_name();
    let fresh_since = facts.is_query().then_some(began);
    let (loaders, quiescence) =
        new_loaders(state.db.clone(), Arc::clone(&state.metrics), fresh_since);
    let raw_parts = Arc::new(RawParts::default());
    let request = request
        .data(Arc::clone(&raw_parts))
        .data(loaders)
        .data(principal.clone())
        .data(RequestContext {
            actor: actor.clone(),
        });
    let registry = state.schema.data::<Registry>();
    let validation = match (&state.revalidated_schema, registry) {
        (Some(_), Some(registry)) => facts.validation(&request.variables, registry),
        _ => Validation::Full,
    };
    let (schema, request) = match (validation, &state.revalidated_schema) {
        (Validation::Known(result), Some(fast)) => (fast, request.data(result)),
        (Validation::Limits, Some(fast)) => (fast, request),
        _ => (&state.schema, request),
    };
    let validated_in_full = std::ptr::eq(schema, &state.schema);
    state.metrics.record_validation(!validated_in_full);
    let work = track(
        quiescence,
        crate::db::fresh_since(fresh_since, schema.execute(request)),
    );
    tokio::pin!(work);
    let mut deadline = std::pin::pin!(crate::db::expiry(actor.deadline));
    let abandoned = |code: ErrorCode, message: String| Outcome {
        // Execution started but was stopped: no data, one coded error.
        response: Response::from_errors(vec![coded_error(code, message, None)]),
        executed: true,
        operation_name: operation_name.clone(),
        raw: RawTable::default(),
    };
    let mut response = tokio::select! {
        response = &mut work => response,
        () = &mut deadline, if !facts.is_mutation() => return abandoned(
            ErrorCode::RequestTimeout,
            format!("the request ran longer than {:?} and was stopped", state.config.limits.request_timeout),
        ),
        () = state.db.health().unreachable(), if !facts.is_mutation() => return abandoned(
            ErrorCode::ServiceUnavailable,
            AppError::ServiceUnavailable(None).public_message(),
        ),
    };
    if validated_in_full && response.errors.is_empty() {
        facts.mark_validated(response.cache_control);
    }
    let executed = match registry {
        Some(registry) => pipeline::finish(&mut response, &facts, registry),
        None => pipeline::executed(&response),
    };
    Outcome {
        response,
        executed,
        operation_name,
        raw: raw_parts.take(),
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
) -> HttpResponse {
    let RequestId(request_id, arrived) = request_id;
    let actor = Actor {
        subject: principal.subject.clone(),
        request_id: request_id.clone(),
        deadline: Some(tokio::time::Instant::now() + state.config.limits.request_timeout),
    };
    // Held until the response is written: execution and serialisation both count.
    let Some(_slot) = state.slots.acquire(actor.deadline).await else {
        return request_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format,
            ErrorCode::RequestTimeout,
            format!(
                "the server was too busy to start the request within {:?}; nothing was run",
                state.config.limits.request_timeout
            ),
        );
    };
    match batch {
        Batch::Single(incoming) => {
            let operation = incoming.request.operation_name.clone();
            let outcome = execute_one(state, incoming, &actor, &principal, is_get, *arrived).await;
            let body = render(&[outcome.wire()], false);
            let mut response = bytes_response(outcome.status(format), format, body);
            response.extensions_mut().insert(GraphqlOutcome {
                graphql: true,
                error_code: outcome.first_code(),
                operation: operation.or(outcome.operation_name),
            });
            response
        }
        Batch::Many(requests) => {
            let limit = state.config.limits.max_batch_size;
            if requests.len() > limit {
                return request_error(
                    StatusCode::BAD_REQUEST,
                    format,
                    ErrorCode::BadRequest,
                    if limit == 0 {
                        "batched requests are turned off on this server".to_owned()
                    } else {
                        format!(
                            "a batch may hold at most {limit} operations, got {}",
                            requests.len()
                        )
                    },
                );
            }
            let names: Vec<String> = requests
                .iter()
                .map(|r| {
                    r.request
                        .operation_name
                        .clone()
                        .unwrap_or_else(|| "-".to_owned())
                })
                .collect();
            // Operations of a batch run one after another, as separate requests would.
            let mut outcomes = Vec::with_capacity(requests.len());
            // The first as a single operation would; each of the others from its own start,
            // after the writes of those before it.
            for (i, request) in requests.into_iter().enumerate() {
                let began = if i == 0 {
                    *arrived
                } else {
                    tokio::time::Instant::now()
                };
                outcomes.push(execute_one(state, request, &actor, &principal, is_get, began).await);
            }
            let all_refused = outcomes.iter().all(|o| !o.executed);
            let status = if outcomes
                .iter()
                .any(|o| o.first_code() == Some(ErrorCode::MethodNotAllowed))
            {
                StatusCode::METHOD_NOT_ALLOWED
            } else if format == Format::GraphqlResponse && all_refused {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            let wires: Vec<WireResponse<'_>> = outcomes.iter().map(Outcome::wire).collect();
            let mut response = bytes_response(status, format, render(&wires, true));
            response.extensions_mut().insert(GraphqlOutcome {
                graphql: true,
                operation: Some(names.join(",")),
                error_code: outcomes.iter().find_map(Outcome::first_code),
            });
            response
        }
    }
}

/// The caller, from the `Authorization` header; a 401 (with the spec's media type) or a 200
/// with `UNAUTHENTICATED` when there is no valid token. The reason is logged, not returned.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    format: Format,
) -> Result<Principal, HttpResponse> {
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
            AuthError::Malformed | AuthError::Invalid(_) => "Bearer error=\"invalid_token\"",
        };
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    })
}

fn not_acceptable() -> HttpResponse {
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
) -> HttpResponse {
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
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) => {
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
    };
    let batch = match parse_body(&bytes) {
        Ok(batch) => batch,
        Err(reason) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                ErrorCode::BadRequest,
                format!(
                    "the body is not a GraphQL request (a JSON object with \"query\", \"variables\", \"operationName\", or a non-empty array of them): {reason}"
                ),
            );
        }
    };
    run(&state, format, batch, &request_id, false, principal).await
}

/// One operation as it arrived: the GraphQL request and, for a persisted document, its id.
pub struct Incoming {
    request: Request,
    document_id: Option<String>,
}

/// A body as it arrived: one operation or a batch. (Short-lived, so the size difference of
/// the variants does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Batch {
    /// A JSON object.
    Single(Incoming),
    /// A JSON array of objects.
    Many(Vec<Incoming>),
}

/// The JSON object of one operation (`documentId` is the GraphQL-over-HTTP persisted form).
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "documentId", default)]
    document_id: Option<String>,
    #[serde(flatten)]
    request: Request,
}

impl From<Envelope> for Incoming {
    fn from(e: Envelope) -> Self {
        Incoming {
            request: e.request,
            document_id: e.document_id,
        }
    }
}

/// Reads a single request (a JSON object) or a batch (a non-empty array of objects). serde
/// would also build a request out of an array, so the shape is checked first.
fn parse_body(bytes: &[u8]) -> Result<Batch, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => serde_json::from_slice::<Envelope>(bytes)
            .map(|e| Batch::Single(e.into()))
            .map_err(|e| e.to_string()),
        Some(b'[') => {
            let items: Vec<Box<serde_json::value::RawValue>> =
                serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            if items.is_empty() {
                return Err("the batch is empty".to_owned());
            }
            items
                .iter()
                .map(|raw| {
                    if raw.get().trim_start().starts_with('{') {
                        serde_json::from_str::<Envelope>(raw.get())
                            .map(Incoming::from)
                            .map_err(|e| e.to_string())
                    } else {
                        Err("every batch item must be an object".to_owned())
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Batch::Many)
        }
        _ => Err("expected a JSON object or array".to_owned()),
    }
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
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// `GET /graphql`: GraphiQL for browsers; otherwise a query from the query string.
pub async fn graphql_get(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> HttpResponse {
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
            "GraphiQL is turned off on this server; POST GraphQL requests to /graphql",
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
    let mut request = Request::new(params.query.unwrap_or_default());
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    for (name, text, slot) in [
        ("variables", params.variables, 0),
        ("extensions", params.extensions, 1),
    ] {
        let Some(text) = text else { continue };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => {
                let value = Value::from_json(serde_json::Value::Object(map)).unwrap_or(Value::Null);
                if slot == 0 {
                    request.variables = async_graphql::Variables::from_value(value);
                } else if let Value::Object(map) = value {
                    request.extensions = async_graphql::Extensions(
                        map.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    );
                }
            }
            Ok(serde_json::Value::Null) => {}
            _ => {
                return request_error(
                    StatusCode::BAD_REQUEST,
                    format,
                    ErrorCode::BadRequest,
                    format!("the {name} parameter must be a JSON object"),
                );
            }
        }
    }
    run(
        &state,
        format,
        Batch::Single(Incoming {
            request,
            document_id: params.document_id,
        }),
        &request_id,
        true,
        principal,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(ACCEPT, v);
        }
        h
    }

    #[test]
    fn the_spec_media_type_wins_when_preferred() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(
            negotiate(&accept(GRAPHQL_RESPONSE_JSON)),
            Some(Format::GraphqlResponse)
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(Format::GraphqlResponse)
        );
        assert_eq!(
            negotiate(&accept(
                "application/json, application/graphql-response+json;q=0.5"
            )),
            Some(Format::Json)
        );
        assert_eq!(negotiate(&accept("*/*")), Some(Format::Json));
        assert_eq!(negotiate(&accept("text/plain")), None);
    }
}
