//! The audit trail: one append-only row per successful mutation, written inside the mutation's
//! own transaction (so a mutation that rolls back leaves no row), and a newest-first list.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{
    Actor,
    page::{Direction, Page, PageWindow},
};
use crate::{entity::audit_event, error::AppError};

/// What a mutation changed.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The GraphQL mutation, e.g. `createFund`.
    pub operation: &'static str,
    /// `fund`, `investor` or `investment`.
    pub entity: &'static str,
    /// The row changed.
    pub entity_id: Uuid,
    /// Other rows involved.
    pub related_ids: Vec<Uuid>,
}

/// Appends an audit row on `txn` (the mutation's transaction).
pub async fn record(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    entry: AuditEntry,
) -> Result<(), AppError> {
    let row = audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        // The transaction's time, from the database.
        occurred_at: NotSet,
        subject: Set(actor.subject.clone()),
        operation: Set(entry.operation.to_owned()),
        entity: Set(entry.entity.to_owned()),
        entity_id: Set(entry.entity_id),
        related_ids: Set(entry.related_ids),
        request_id: Set(actor.request_id.clone()),
    };
    audit_event::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// One page of the trail, newest first.
pub async fn list_audit_events(
    db: &impl ConnectionTrait,
    window: &PageWindow<Uuid>,
) -> Result<Page<audit_event::Model>, AppError> {
    let mut query = audit_event::Entity::find();
    // List order is id descending: "after" means smaller ids.
    if let Some(after) = window.after {
        query = query.filter(audit_event::Column::Id.lt(after));
    }
    if let Some(before) = window.before {
        query = query.filter(audit_event::Column::Id.gt(before));
    }
    query = match window.direction {
        Direction::Forward => query.order_by_desc(audit_event::Column::Id),
        Direction::Backward => query.order_by_asc(audit_event::Column::Id),
    };
    let rows = query.limit(window.fetch_limit()).all(db).await?;
    Ok(window.into_page(rows))
}

/// How many audit rows exist.
pub async fn count_audit_events(db: &impl ConnectionTrait) -> Result<u64, AppError> {
    Ok(audit_event::Entity::find().count(db).await?)
}
