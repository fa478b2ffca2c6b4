//! Small, fallible accessors for what resolvers need from the context (never
//! `data_unchecked`, which panics when data is missing).

use async_graphql::Context;

use super::loader::Loaders;
use crate::{config::Limits, db::Db, service::Actor};

/// Per-request facts the resolvers need.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Who is acting.
    pub actor: Actor,
}

/// The database, or `SERVICE_UNAVAILABLE` at once while it is known to be unreachable.
pub fn db<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Db> {
    let db = ctx.data::<Db>()?;
    db.ensure_reachable()?;
    Ok(db)
}

/// The request's loader.
pub fn loader<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>()
}

/// The request limits.
pub fn limits<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Limits> {
    ctx.data::<Limits>()
}

/// The acting client.
pub fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::service::Actor> {
    Ok(&ctx.data::<RequestContext>()?.actor)
}
