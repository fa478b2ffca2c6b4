//! Writing GraphQL responses: the media type the client negotiated, the spec's status codes,
//! and the JSON of one result or a batch, with the fast path's JSON spliced in.

use axum::{
    body::Body,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{ACCEPT, CONTENT_TYPE, VARY},
    },
    response::{IntoResponse, Response},
};

use super::middleware::GraphqlOutcome;
use crate::{
    error::ErrorCode,
    executor::{Outcome, finish::coded_error},
};

/// `application/graphql-response+json`.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// `application/json`.
pub const APPLICATION_JSON: &str = "application/json";

/// The media type a response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
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
pub fn negotiate(headers: &HeaderMap) -> Option<Format> {
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

/// The JSON body of one result or of a batch's results.
fn body(outcomes: &[Outcome], batch: bool) -> serde_json::Result<Vec<u8>> {
    let spliced: usize = outcomes.iter().map(Outcome::written_len).sum();
    let mut out = Vec::with_capacity(1024 + spliced + spliced / 8);
    if batch {
        out.push(b'[');
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        outcome.write_json(&mut out)?;
    }
    if batch {
        out.push(b']');
    }
    Ok(out)
}

/// The HTTP status of one outcome.
fn status(outcome: &Outcome, format: Format) -> StatusCode {
    match outcome.first_code() {
        Some(ErrorCode::MethodNotAllowed) => StatusCode::METHOD_NOT_ALLOWED,
        Some(ErrorCode::IdempotencyKeyInProgress) if format == Format::GraphqlResponse => {
            StatusCode::CONFLICT
        }
        Some(ErrorCode::IdempotencyKeyReused) if format == Format::GraphqlResponse => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ if format == Format::GraphqlResponse
            && !outcome.executed
            && !outcome.response.errors.is_empty() =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

/// The response of one operation (`batch` false) or of a batch's operations.
pub fn outcomes(
    outcomes: &[Outcome],
    batch: bool,
    format: Format,
    operation: Option<String>,
) -> Response {
    let status = if batch {
        if outcomes
            .iter()
            .any(|o| o.first_code() == Some(ErrorCode::MethodNotAllowed))
        {
            StatusCode::METHOD_NOT_ALLOWED
        } else if format == Format::GraphqlResponse && outcomes.iter().all(|o| !o.executed) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    } else {
        outcomes
            .first()
            .map_or(StatusCode::OK, |o| status(o, format))
    };
    let mut response = bytes(status, format, body(outcomes, batch));
    response.extensions_mut().insert(GraphqlOutcome {
        graphql: true,
        operation,
        error_code: outcomes.iter().find_map(Outcome::first_code),
    });
    response
}

/// An error response written without running anything (bad body, too large, …).
pub fn request_error(
    status: StatusCode,
    format: Format,
    code: ErrorCode,
    message: impl Into<String>,
) -> Response {
    let outcome = Outcome::refused(coded_error(code, message, None));
    let mut response = bytes(status, format, body(std::slice::from_ref(&outcome), false));
    response.extensions_mut().insert(GraphqlOutcome {
        graphql: true,
        operation: None,
        error_code: Some(code),
    });
    response
}

/// A request error about one input, such as a header, named in `extensions.field`.
pub fn field_error(
    format: Format,
    code: ErrorCode,
    message: impl Into<String>,
    field: &str,
) -> Response {
    let outcome = Outcome::refused(coded_error(code, message, Some(field)));
    let status = if format == Format::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = bytes(status, format, body(std::slice::from_ref(&outcome), false));
    response.extensions_mut().insert(GraphqlOutcome {
        graphql: true,
        operation: None,
        error_code: Some(code),
    });
    response
}

/// A response with an already serialised JSON body.
fn bytes(status: StatusCode, format: Format, body: serde_json::Result<Vec<u8>>) -> Response {
    match body {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
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
