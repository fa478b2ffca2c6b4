//! Small, fallible accessors for what resolvers need from the context (never
//! `data_unchecked`, which panics when data is missing).

use async_graphql::Context;

use std::collections::HashMap;

use uuid::Uuid;

use super::loader::Loaders;
use crate::{
    config::Limits,
    db::Db,
    service::{Actor, idempotency::KeyHold},
};

/// Per-request facts the resolvers need.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Who is acting.
    pub actor: Actor,
    /// The `Idempotency-Key` a mutation request runs under, if any.
    pub key: Option<KeyContext>,
}

/// A mutation request's hold on its `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct KeyContext {
    /// The hold (its `field` is filled in per mutation field).
    pub hold: KeyHold,
    /// What earlier attempts under the key committed, by response key.
    pub recorded: HashMap<String, Uuid>,
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

/// What a mutation field acts as: the caller, and under an `Idempotency-Key` the hold for
/// this field (by its response key). `Some(id)` when an earlier attempt under the key already
/// committed this field: it is answered from that id instead of running again.
pub fn mutation_actor(ctx: &Context<'_>) -> async_graphql::Result<(Actor, Option<Uuid>)> {
    let request = ctx.data::<RequestContext>()?;
    let mut actor = request.actor.clone();
    let Some(key) = &request.key else {
        return Ok((actor, None));
    };
    let field = ctx.item.node.response_key().node.to_string();
    let recorded = key.recorded.get(&field).copied();
    actor.key = Some(KeyHold {
        field,
        ..key.hold.clone()
    });
    Ok((actor, recorded))
}
