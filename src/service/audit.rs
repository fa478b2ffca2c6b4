//! The audit trail: one append-only row per successful mutation, written inside the mutation's
//! own transaction (so a mutation that rolls back leaves no row), and a newest-first list.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::Expr,
};
use uuid::Uuid;

use super::{
    Actor, count,
    page::{Direction, Page, PageWindow},
};
use crate::{
    db::{
        Db, Tx,
        rows::{self, Columns},
    },
    entity::audit_event,
    error::AppError,
};

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

/// Appends an audit row inside `tx` (the mutation's transaction), and when the mutation runs
/// under an `Idempotency-Key`, records the row it changed there too (the trace every write
/// leaves, in one place).
pub async fn record(tx: &mut Tx<'_>, actor: &Actor, entry: AuditEntry) -> Result<(), AppError> {
    if let Some(hold) = &actor.key {
        super::idempotency::record(tx, hold, entry.entity_id).await?;
    }
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
    tx.execute(audit_event::Entity::insert(row).build(DbBackend::Postgres))
        .await
}

/// One page of the trail, newest first.
pub async fn list_audit_events(
    db: &Db,
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
    let stmt = query.limit(window.fetch_limit()).build(DbBackend::Postgres);
    let rows = db
        .fetch_all(stmt)
        .await?
        .iter()
        .map(|row| rows::audit_event(&Columns::of(row, 0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(window.into_page(rows))
}

/// How many audit rows exist.
pub async fn count_audit_events(db: &Db) -> Result<u64, AppError> {
    let stmt = audit_event::Entity::find()
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .build(DbBackend::Postgres);
    count(db, stmt).await
}
