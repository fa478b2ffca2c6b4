//! `AuditEvent`: one row of the append-only audit trail.

use async_graphql::{ContextSelectionSet, Object, ScalarType, Value};

use super::{
    connection::Node,
    cursor::{self, Scope},
    fast::FastObject,
    scalars::{DateTime, Id},
};
use crate::entity::audit_event;

/// A successful mutation, recorded in the same transaction as its change.
#[derive(Debug, Clone)]
pub struct AuditEvent(pub audit_event::Model);

#[Object]
impl AuditEvent {
    /// The event's id (UUIDv7).
    async fn id(&self) -> Id {
        Id(self.0.id)
    }

    /// When the mutation's transaction ran.
    async fn occurred_at(&self) -> DateTime {
        DateTime(self.0.occurred_at)
    }

    /// The caller's token subject; null when the server ran without authentication.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// The mutation, e.g. `createInvestment`.
    async fn operation(&self) -> &str {
        &self.0.operation
    }

    /// The kind of row changed: `fund`, `investor` or `investment`.
    async fn entity(&self) -> &str {
        &self.0.entity
    }

    /// The row changed.
    async fn entity_id(&self) -> Id {
        Id(self.0.entity_id)
    }

    /// Other rows involved (an investment's fund and investor).
    async fn related_ids(&self) -> Vec<Id> {
        self.0.related_ids.iter().copied().map(Id).collect()
    }

    /// The id of the HTTP request (the `X-Request-ID` answered to the caller).
    async fn request_id(&self) -> &str {
        &self.0.request_id
    }
}

impl Node for AuditEvent {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.0.id)
    }
}

impl FastObject for AuditEvent {
    const TYPE_NAME: &'static str = "AuditEvent";

    fn has_leaf(_ctx: &ContextSelectionSet<'_>, name: &str) -> bool {
        matches!(
            name,
            "id" | "occurredAt"
                | "subject"
                | "operation"
                | "entity"
                | "entityId"
                | "relatedIds"
                | "requestId"
        )
    }

    fn leaf(&self, name: &str) -> Option<Value> {
        let e = &self.0;
        Some(match name {
            "id" => Id(e.id).to_value(),
            "occurredAt" => DateTime(e.occurred_at).to_value(),
            "subject" => e.subject.clone().map_or(Value::Null, Value::String),
            "operation" => Value::String(e.operation.clone()),
            "entity" => Value::String(e.entity.clone()),
            "entityId" => Id(e.entity_id).to_value(),
            "relatedIds" => {
                Value::List(e.related_ids.iter().map(|id| Id(*id).to_value()).collect())
            }
            "requestId" => Value::String(e.request_id.clone()),
            _ => return None,
        })
    }
}
