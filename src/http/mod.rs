//! HTTP: the router, GraphQL over HTTP, the playground, health, request ids, per-request logs,
//! and serving connections with their own limits. Nothing here reaches the database: requests
//! go to the [`crate::executor`].

pub mod graphql;
pub mod health;
pub mod middleware;
pub mod playground;
pub mod render;
pub mod serve;

use std::sync::Arc;

use axum::{Router, routing::get};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::{
        CompressionLayer,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::{AllowOrigin, CorsLayer},
};

use crate::{auth::Authenticator, config::Config, executor::Executor, metrics::Metrics};

/// Responses smaller than this are sent uncompressed: compressing them costs more CPU than
/// the bytes it saves.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Runs GraphQL operations.
    pub executor: Arc<Executor>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How callers are authenticated.
    pub auth: Arc<Authenticator>,
    /// How many GraphQL requests may run at once.
    pub slots: Arc<crate::slots::ExecutionSlots>,
}

/// CORS for the allow-listed origins only (none by default: browsers on other origins are
/// refused by their own same-origin rules).
fn cors_layer(origins: &[String]) -> CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            HeaderName::from_static(middleware::REQUEST_ID_HEADER),
            HeaderName::from_static(graphql::IDEMPOTENCY_KEY_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static(middleware::REQUEST_ID_HEADER),
            HeaderName::from_static(graphql::IDEMPOTENT_REPLAYED_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The application's routes and middleware.
///
/// The middleware wraps the routes once, from outside. Added with `Router::layer` it would wrap
/// every method of every route separately, and axum clones a route's whole stack (its boxes,
/// the CORS configuration, the state) for each request it serves: about 5,000 instructions
/// per request (callgrind, one fund by id). Here a request clones the stack once.
pub fn router(state: AppState) -> Router {
    let compression = CompressionLayer::new().compress_when(
        SizeAbove::new(COMPRESS_ABOVE_BYTES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE),
    );
    let cors = cors_layer(&state.config.cors_allowed_origins);
    let mut routes = Router::new()
        .route(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    if state.config.graphiql {
        routes = routes.merge(playground::assets());
    }
    let routes = routes.fallback(health::not_found).with_state(state.clone());
    let service = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::request_context,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(cors)
        .layer(compression)
        .service(routes);
    Router::new().fallback_service(service)
}
