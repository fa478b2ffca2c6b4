//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::AppState;

/// How long readiness waits for the database to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive (200), whatever the database does.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the database answers `SELECT 1` in time, else 503.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.db.health().is_healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
        );
    }
    let probe =
        tokio::time::timeout(READY_TIMEOUT, state.db.conn.execute_unprepared("SELECT 1")).await;
    match probe {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness probe failed");
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
    let mut body = state
        .metrics
        .render(&state.db, state.config.database.max_connections);
    let slots = &state.slots;
    body.push_str(&format!(
        "# HELP titanbay_graphql_requests_running GraphQL requests running now.\n\
         # TYPE titanbay_graphql_requests_running gauge\n\
         titanbay_graphql_requests_running {}\n\
         # HELP titanbay_graphql_requests_waiting GraphQL requests waiting for a free slot.\n\
         # TYPE titanbay_graphql_requests_waiting gauge\n\
         titanbay_graphql_requests_waiting {}\n\
         # HELP titanbay_graphql_max_concurrent_requests The bound on running requests (0: none).\n\
         # TYPE titanbay_graphql_max_concurrent_requests gauge\n\
         titanbay_graphql_max_concurrent_requests {}\n",
        slots.running(),
        slots.waiting(),
        slots.limit()
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
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
