//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use super::AppState;

/// How long readiness waits for the database to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive (200), whatever the database does.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the database answers in time, else 503.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(READY_TIMEOUT, state.executor.database_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(reason)) => {
            tracing::warn!(%reason, "readiness probe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database did not answer in time" })),
        ),
    }
}

/// `GET /metrics`: Prometheus text format (404 when `METRICS=false`).
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    if !state.config.metrics {
        return not_found().await.into_response();
    }
    let mut gauges = state.executor.gauges();
    let slots = &state.slots;
    gauges.requests = (slots.running(), slots.waiting(), slots.limit());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// Anything else: 404 with a JSON body.
pub async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not found; the API is at /graphql" })),
    )
}
