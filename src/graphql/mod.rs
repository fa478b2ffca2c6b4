//! The GraphQL API: schema, roots, object types, inputs, scalars, loaders and the pipeline
//! that gives every error a contract code.

pub mod audit;
pub mod connection;
pub mod context;
pub mod cursor;
pub mod document;
pub mod fast;
pub mod fund;
pub mod investment;
pub mod investor;
pub mod loader;
pub mod mutation;
pub mod pipeline;
pub mod policy;
pub mod query;
pub mod raw;
pub mod revalidate;
pub mod scalars;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder, ValidationMode};

use crate::{config::Config, db::Db};

pub use mutation::MutationRoot;
pub use query::QueryRoot;

/// The application's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
}

/// Builds the schema served to clients, with the database and limits as schema data. No
/// async-graphql extension is installed (see [`pipeline`] for why).
pub fn build_schema(db: Db, config: &Config) -> AppSchema {
    build_schema_with(db, config, ValidationMode::Strict)
}

/// The same schema validating in async-graphql's `Fast` mode: only for requests whose
/// document has passed full validation and whose variables pass [`revalidate`]'s check.
pub fn build_revalidated_schema(db: Db, config: &Config) -> AppSchema {
    build_schema_with(db, config, ValidationMode::Fast)
}

fn build_schema_with(db: Db, config: &Config, mode: ValidationMode) -> AppSchema {
    let mut b = builder()
        .validation_mode(mode)
        .data(db)
        .data(config.limits.clone())
        .data(pipeline::type_registry())
        .data(fast::FastPath(config.graphql_fast_path))
        .limit_depth(config.limits.max_depth)
        .limit_complexity(config.limits.max_complexity)
        .limit_recursive_depth(config.limits.max_depth.saturating_mul(4).max(32));
    if !config.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The schema's SDL, sorted so that it only changes when the schema does. Needs no database.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
