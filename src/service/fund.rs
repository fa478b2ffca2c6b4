//! Funds: lookups, keyset lists, creation and the one-way lifecycle.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
    sea_query::Expr, sea_query::extension::postgres::PgExpr,
};
use uuid::Uuid;

use super::{
    Actor,
    audit::{self, AuditEntry},
    now_micros,
    page::{Direction, Page, PageWindow, like_contains_pattern},
};
use crate::{
    db::Db,
    domain,
    entity::fund::{self, FundStatus},
    error::AppError,
};

/// Which funds a list shows.
#[derive(Debug, Clone, Default)]
pub struct FundFilter {
    /// Only funds with this status.
    pub status: Option<FundStatus>,
    /// Only funds of this vintage year.
    pub vintage_year: Option<i32>,
    /// Only funds whose name contains this text, case-insensitively (`%` and `_` literal).
    pub name_contains: Option<String>,
}

impl FundFilter {
    fn apply(&self, mut query: Select<fund::Entity>) -> Select<fund::Entity> {
        if let Some(status) = self.status {
            query = query.filter(fund::Column::Status.eq(status));
        }
        if let Some(year) = self.vintage_year {
            query = query.filter(fund::Column::VintageYear.eq(year));
        }
        if let Some(text) = &self.name_contains {
            query = query.filter(Expr::col(fund::Column::Name).ilike(like_contains_pattern(text)));
        }
        query
    }
}

/// A fund by id, or `None`.
pub async fn find_fund(db: &Db, id: Uuid) -> Result<Option<fund::Model>, AppError> {
    // The columns in the order of `FUND_COLUMNS`, decoded by position (as page rows are).
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT name, vintage_year, target_size_usd, status, created_at, updated_at \
         FROM funds WHERE id = $1",
        [id.into()],
    );
    match db.fetch_all(stmt).await?.first() {
        Some(row) => Ok(Some(super::investment::fund_row(row, id)?)),
        None => Ok(None),
    }
}

/// Funds by id, in no particular order; unknown ids are left out.
pub async fn funds_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, fund::Model>, AppError> {
    // `= ANY($1)` keeps one statement text (and one prepared statement) for every batch size.
    let rows = fund::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM funds WHERE id = ANY($1::uuid[])",
            [ids.to_vec().into()],
        ))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|f| (f.id, f)).collect())
}

/// One page of funds in id order (oldest first), filtered.
pub async fn list_funds(
    db: &Db,
    filter: &FundFilter,
    window: &PageWindow<Uuid>,
) -> Result<Page<fund::Model>, AppError> {
    // The id, then the columns in the order of `FUND_COLUMNS`, decoded by position (as page
    // rows are) and run on the pool directly: decoding by name through SeaORM took about 5,000
    // instructions a row.
    let mut query = filter.apply(fund::Entity::find().select_only().columns([
        fund::Column::Id,
        fund::Column::Name,
        fund::Column::VintageYear,
        fund::Column::TargetSizeUsd,
        fund::Column::Status,
        fund::Column::CreatedAt,
        fund::Column::UpdatedAt,
    ]));
    if let Some(after) = window.after {
        query = query.filter(fund::Column::Id.gt(after));
    }
    if let Some(before) = window.before {
        query = query.filter(fund::Column::Id.lt(before));
    }
    query = match window.direction {
        Direction::Forward => query.order_by_asc(fund::Column::Id),
        Direction::Backward => query.order_by_desc(fund::Column::Id),
    };
    let stmt = query.limit(window.fetch_limit()).build(DbBackend::Postgres);
    let rows = db
        .fetch_all(stmt)
        .await?
        .iter()
        .map(super::investment::fund_row_with_id)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(window.into_page(rows))
}

/// How many funds match the filter.
pub async fn count_funds(db: &impl ConnectionTrait, filter: &FundFilter) -> Result<u64, AppError> {
    Ok(filter.apply(fund::Entity::find()).count(db).await?)
}

/// A validated new fund.
#[derive(Debug, Clone)]
pub struct NewFund {
    /// Trimmed name.
    pub name: String,
    /// Checked vintage year.
    pub vintage_year: i32,
    /// Positive target size.
    pub target_size_usd: Decimal,
    /// Initial status.
    pub status: FundStatus,
}

/// Creates a fund.
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id))]
pub async fn create_fund(db: &Db, actor: &Actor, new: NewFund) -> Result<fund::Model, AppError> {
    let now = now_micros();
    let model = fund::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        vintage_year: Set(new.vintage_year),
        target_size_usd: Set(new.target_size_usd),
        status: Set(new.status),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = db.begin(actor.deadline).await?;
    let created = db
        .guard(actor.deadline, async {
            let created = model.insert(&txn).await?;
            audit::record(&txn, actor, fund_entry("createFund", created.id)).await?;
            Ok(created)
        })
        .await?;
    db.commit(txn).await?;
    Ok(created)
}

/// A validated partial update: `None` keeps the current value.
#[derive(Debug, Clone)]
pub struct FundChanges {
    /// The fund to change.
    pub id: Uuid,
    /// New trimmed name.
    pub name: Option<String>,
    /// New vintage year.
    pub vintage_year: Option<i32>,
    /// New positive target size.
    pub target_size_usd: Option<Decimal>,
    /// New status (forward only).
    pub status: Option<FundStatus>,
}

impl FundChanges {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.vintage_year.is_none()
            && self.target_size_usd.is_none()
            && self.status.is_none()
    }
}

/// Updates a fund under its row lock, so a close and a racing investment are serialised.
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id, fund_id = %changes.id))]
pub async fn update_fund(
    db: &Db,
    actor: &Actor,
    changes: FundChanges,
) -> Result<fund::Model, AppError> {
    let txn = db.begin(actor.deadline).await?;
    let updated = db
        .guard(actor.deadline, async {
            let updated = apply_fund_changes(&txn, changes).await?;
            audit::record(&txn, actor, fund_entry("updateFund", updated.id)).await?;
            Ok(updated)
        })
        .await?;
    db.commit(txn).await?;
    Ok(updated)
}

/// The body of [`update_fund`], inside its transaction.
async fn apply_fund_changes(
    txn: &impl ConnectionTrait,
    changes: FundChanges,
) -> Result<fund::Model, AppError> {
    let current = fund::Entity::find_by_id(changes.id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::NotFound {
            entity: "fund",
            id: changes.id,
            field: "input.id",
        })?;
    if let Some(to) = changes.status
        && !domain::status_transition_allowed(current.status, to)
    {
        return Err(AppError::InvalidStatusTransition {
            from: status_name(current.status),
            to: status_name(to),
        });
    }
    if changes.is_empty() {
        return Ok(current);
    }
    // updatedAt must move on every update, even two within one microsecond.
    let updated_at = Ord::max(
        now_micros(),
        current.updated_at + chrono::Duration::microseconds(1),
    );
    let mut model: fund::ActiveModel = current.into();
    if let Some(name) = changes.name {
        model.name = Set(name);
    }
    if let Some(year) = changes.vintage_year {
        model.vintage_year = Set(year);
    }
    if let Some(size) = changes.target_size_usd {
        model.target_size_usd = Set(size);
    }
    if let Some(status) = changes.status {
        model.status = Set(status);
    }
    model.updated_at = Set(updated_at);
    Ok(model.update(txn).await?)
}

fn fund_entry(operation: &'static str, id: Uuid) -> AuditEntry {
    AuditEntry {
        operation,
        entity: "fund",
        entity_id: id,
        related_ids: Vec::new(),
    }
}

/// The contract's (GraphQL) name of a status, for messages.
pub fn status_name(status: FundStatus) -> &'static str {
    match status {
        FundStatus::Fundraising => "FUNDRAISING",
        FundStatus::Investing => "INVESTING",
        FundStatus::Closed => "CLOSED",
    }
}
