//! Funds: lookups, keyset lists, creation and the one-way lifecycle.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use rust_decimal::Decimal;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, Iterable, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, Statement, sea_query::Expr,
    sea_query::extension::postgres::PgExpr,
};
use uuid::Uuid;

use super::{
    Actor, SqlTexts,
    audit::{self, AuditEntry},
    cached_sql, count, decode_all, now_micros,
    page::{Direction, Page, PageWindow, like_contains_pattern},
};
use crate::{
    db::{
        Db, Tx,
        rows::{self, ColumnSet, Columns},
    },
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

/// A fund by id with the columns of `columns` (the others are placeholders: see
/// [`ColumnSet`]), or `None`.
pub async fn find_fund(
    db: &Db,
    id: Uuid,
    columns: ColumnSet,
) -> Result<Option<fund::Model>, AppError> {
    static TEXTS: SqlTexts<ColumnSet> = LazyLock::new(Mutex::default);
    let sql = cached_sql(&TEXTS, columns, || {
        let mut list = String::new();
        rows::select_list::<fund::Entity>(&mut list, "f", columns.without_id());
        format!("SELECT true{list} FROM funds f WHERE f.id = $1")
    });
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, [id.into()]);
    match db.fetch_optional(stmt).await? {
        Some(row) => Ok(Some(rows::fund(&Columns::of(&row, 1), id, columns)?)),
        None => Ok(None),
    }
}

/// Funds by id, in no particular order; unknown ids are left out.
pub async fn funds_by_ids(db: &Db, ids: &[Uuid]) -> Result<HashMap<Uuid, fund::Model>, AppError> {
    // `= ANY($1)` keeps one statement text (and one prepared statement) for every batch size.
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT {} FROM funds f WHERE f.id = ANY($1::uuid[])",
            rows::all_columns::<fund::Entity>("f")
        ),
        [ids.to_vec().into()],
    );
    let found = decode_all(&db.fetch_all(stmt).await?, rows::fund)?;
    Ok(found.into_iter().map(|f| (f.id, f)).collect())
}

/// One page of funds in id order (oldest first), filtered.
pub async fn list_funds(
    db: &Db,
    filter: &FundFilter,
    window: &PageWindow<Uuid>,
) -> Result<Page<fund::Model>, AppError> {
    let stmt = list_funds_statement(filter, window);
    let rows = decode_all(&db.fetch_all(stmt).await?, rows::fund)?;
    Ok(window.into_page(rows))
}

/// The statement of [`list_funds`]: a keyset seek in id order, on `ix_funds_status_id` or
/// `ix_funds_vintage_year_id` when filtered (tests check its plan).
pub fn list_funds_statement(filter: &FundFilter, window: &PageWindow<Uuid>) -> Statement {
    let mut query = filter.apply(
        fund::Entity::find()
            .select_only()
            .columns(fund::Column::iter()),
    );
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
    query.limit(window.fetch_limit()).build(DbBackend::Postgres)
}

/// How many funds match the filter.
pub async fn count_funds(db: &Db, filter: &FundFilter) -> Result<u64, AppError> {
    let stmt = filter
        .apply(fund::Entity::find())
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .build(DbBackend::Postgres);
    count(db, stmt).await
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

/// Creates a fund (and its audit row, in the same transaction).
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id))]
pub async fn create_fund(db: &Db, actor: &Actor, new: NewFund) -> Result<fund::Model, AppError> {
    let now = now_micros();
    let created = fund::Model {
        id: Uuid::now_v7(),
        name: new.name,
        vintage_year: new.vintage_year,
        target_size_usd: new.target_size_usd,
        status: new.status,
        created_at: now,
        updated_at: now,
    };
    let insert =
        fund::Entity::insert(fund::ActiveModel::from(created.clone())).build(DbBackend::Postgres);
    let mut tx = db.begin(actor.deadline).await?;
    let result = db
        .guard(actor.deadline, async {
            tx.execute(insert).await?;
            audit::record(&mut tx, actor, fund_entry("createFund", created.id)).await
        })
        .await;
    tx.finish(result).await?;
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
    let mut tx = db.begin(actor.deadline).await?;
    let result = db
        .guard(actor.deadline, async {
            let updated = apply_fund_changes(&mut tx, changes).await?;
            audit::record(&mut tx, actor, fund_entry("updateFund", updated.id)).await?;
            Ok(updated)
        })
        .await;
    tx.finish(result).await
}

/// The body of [`update_fund`], inside its transaction.
async fn apply_fund_changes(
    tx: &mut Tx<'_>,
    changes: FundChanges,
) -> Result<fund::Model, AppError> {
    let lock = fund::Entity::find_by_id(changes.id)
        .lock_exclusive()
        .build(DbBackend::Postgres);
    let current = match tx.fetch_optional(lock).await? {
        Some(row) => decode_all(std::slice::from_ref(&row), rows::fund)?
            .pop()
            .ok_or_else(|| AppError::Internal("a locked fund row did not decode".to_owned()))?,
        None => {
            return Err(AppError::NotFound {
                entity: "fund",
                id: changes.id,
                field: "input.id",
            });
        }
    };
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
    let mut updated = current;
    if let Some(name) = changes.name {
        updated.name = name;
    }
    if let Some(year) = changes.vintage_year {
        updated.vintage_year = year;
    }
    if let Some(size) = changes.target_size_usd {
        updated.target_size_usd = size;
    }
    if let Some(status) = changes.status {
        updated.status = status;
    }
    updated.updated_at = updated_at;
    let update = fund::Entity::update_many()
        .set(fund::ActiveModel {
            name: Set(updated.name.clone()),
            vintage_year: Set(updated.vintage_year),
            target_size_usd: Set(updated.target_size_usd),
            status: Set(updated.status),
            updated_at: Set(updated.updated_at),
            ..Default::default()
        })
        .filter(fund::Column::Id.eq(updated.id))
        .build(DbBackend::Postgres);
    tx.execute(update).await?;
    Ok(updated)
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
