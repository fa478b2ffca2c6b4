//! HTTP: the router, GraphQL over HTTP, health checks, request ids and per-request logs.

pub mod graphql;
pub mod health;
pub mod middleware;
pub mod persisted;
pub mod playground;

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

use crate::{
    auth::Authenticator,
    config::Config,
    db::Db,
    graphql::{AppSchema, pipeline::DocumentCache},
    metrics::Metrics,
};

/// Responses smaller than this are sent uncompressed: compressing them costs more CPU than
/// the bytes it saves.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// The same schema without the document-only validation rules, for requests whose
    /// document already passed them (`None` when `GRAPHQL_VALIDATE_ONCE` is off).
    pub revalidated_schema: Option<AppSchema>,
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: Arc<Config>,
    /// Parsed documents, by text.
    pub documents: Arc<DocumentCache>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Persisted and trusted documents.
    pub persisted: Arc<persisted::PersistedDocuments>,
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
        ])
        .expose_headers([HeaderName::from_static(middleware::REQUEST_ID_HEADER)])
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
