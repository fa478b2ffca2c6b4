//! `AuditEvent`: one row of the append-only audit trail.

use super::{
    connection::Node,
    cursor::{self, Scope},
    model::Access::Open,
    scalars::{DateTime, Id},
};
use crate::entity::audit_event;

/// An audit event, as the API shows it: the entity row (its GraphQL fields are declared
/// below).
pub type AuditEvent = audit_event::Model;

impl Node for AuditEvent {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.id)
    }
}

crate::object! {
    /// A successful mutation, recorded in the same transaction as its change.
    AuditEvent, "AuditEvent";

    /// The event's id (UUIDv7).
    column id("id"): Id, Open, audit_event::Column::Id, |e| Id(e.id);
    /// When the mutation's transaction ran.
    column occurred_at("occurredAt"): DateTime, Open, audit_event::Column::OccurredAt,
        |e| DateTime(e.occurred_at);
    /// The caller's token subject; null when the server ran without authentication.
    column subject("subject"): Option<&str>, Open, audit_event::Column::Subject,
        |e| e.subject.as_deref();
    /// The mutation, e.g. `createInvestment`.
    column operation("operation"): &str, Open, audit_event::Column::Operation,
        |e| e.operation.as_str();
    /// The kind of row changed: `fund`, `investor` or `investment`.
    column entity("entity"): &str, Open, audit_event::Column::Entity, |e| e.entity.as_str();
    /// The row changed.
    column entity_id("entityId"): Id, Open, audit_event::Column::EntityId, |e| Id(e.entity_id);
    /// Other rows involved (an investment's fund and investor).
    column related_ids("relatedIds"): Vec<Id>, Open, audit_event::Column::RelatedIds,
        |e| e.related_ids.iter().copied().map(Id).collect();
    /// The id of the HTTP request (the `X-Request-ID` answered to the caller).
    column request_id("requestId"): &str, Open, audit_event::Column::RequestId,
        |e| e.request_id.as_str();
}
