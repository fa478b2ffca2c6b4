//! The GraphQL playground (GraphiQL) served to browsers on `GET /graphql`.

use axum::response::{Html, IntoResponse, Response};

use crate::config::Config;

/// The playground's page.
pub fn page(_config: &Config) -> Response {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Titanbay private-markets API")
            .finish(),
    )
    .into_response()
}

/// The playground's static files (none yet: the page loads GraphiQL from its CDN).
pub fn assets<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
}
