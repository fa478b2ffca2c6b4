//! The GraphQL schema: roots, object types (each field declared once in [`model`]), inputs,
//! scalars, connections, loaders and the fast path.

pub mod audit;
pub mod connection;
pub mod context;
pub mod cursor;
pub mod fast;
pub mod fund;
pub mod investment;
pub mod investor;
pub mod loader;
pub mod model;
pub mod mutation;
pub mod query;
pub mod raw;
pub mod scalars;

use async_graphql::{
    EmptySubscription, SDLExportOptions, Schema, SchemaBuilder, ValidationMode, registry::Registry,
};

use crate::{config::Config, db::Db};

pub use mutation::MutationRoot;
pub use query::QueryRoot;

/// The application's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// What the schema says about itself (`__schema { description }`).
pub const DESCRIPTION: &str = "Titanbay private-markets API: funds, investors and their \
investments (capital commitments). Money is exact decimal text; lists are Relay connections \
paged by keyset cursors.";

/// The deepest an introspection query may nest (the stock ones of graphql-js, GraphiQL,
/// Apollo and gql nest up to 13 levels); data is held to `MAX_QUERY_DEPTH` by the executor.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
}

/// Builds the schema served to clients, with the database and limits as schema data. No
/// async-graphql extension is installed (see [`crate::executor`] for why).
pub fn build_schema(db: Db, config: &Config) -> AppSchema {
    build_schema_with(db, config, ValidationMode::Strict)
}

/// The same schema validating in async-graphql's `Fast` mode (no rules, only the limits'
/// walk): for documents that passed full validation before, whose variables the executor has
/// checked.
pub fn build_revalidating_schema(db: Db, config: &Config) -> AppSchema {
    build_schema_with(db, config, ValidationMode::Fast)
}

fn build_schema_with(db: Db, config: &Config, mode: ValidationMode) -> AppSchema {
    let limits = &config.limits;
    let mut b = builder()
        .validation_mode(mode)
        .data(db)
        .data(limits.clone())
        .data(fast::FastPath(config.graphql_fast_path))
        // Data depth is checked by the executor without counting introspection; this bounds
        // everything, introspection included.
        .limit_depth(limits.max_depth.max(MAX_INTROSPECTION_DEPTH))
        .limit_recursive_depth(limits.max_depth.saturating_mul(4).max(64))
        .limit_directives(8);
    if !config.introspection {
        b = b.disable_introspection().disable_suggestions();
    }
    b.finish()
}

/// The access rule of an object type's field, from its declaration (the generic connection,
/// edge and page-info types only pass their parent's objects on: open). `None` for the roots,
/// whose fields carry their rule as a guard, and for unknown fields.
pub fn declared_access(type_name: &str, field: &str) -> Option<model::Access> {
    use model::Declared;
    fn of<T: Declared>(field: &str) -> Option<model::Access> {
        T::field(field).map(|f| f.access)
    }
    match type_name {
        fund::Fund::NAME => of::<fund::Fund>(field),
        investor::Investor::NAME => of::<investor::Investor>(field),
        investment::Investment::NAME => of::<investment::Investment>(field),
        audit::AuditEvent::NAME => of::<audit::AuditEvent>(field),
        t if t.ends_with("Connection") || t.ends_with("Edge") || t == "PageInfo" => {
            Some(model::Access::Open)
        }
        _ => None,
    }
}

/// The object types' fields, for null propagation and checks (built from the roots, without a
/// database).
pub fn registry() -> Registry {
    use async_graphql::OutputType;
    let mut registry = Registry {
        query_type: "Query".to_owned(),
        mutation_type: Some("Mutation".to_owned()),
        ..Registry::default()
    };
    <QueryRoot as OutputType>::create_type_info(&mut registry);
    <MutationRoot as OutputType>::create_type_info(&mut registry);
    registry
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
