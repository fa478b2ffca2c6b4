//! Investors: lookups, keyset lists and creation with one investor per email.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DbBackend, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use super::{
    Actor, SqlTexts,
    audit::{self, AuditEntry},
    cached_sql, count, decode_all, now_micros,
    page::{Direction, Page, PageWindow},
};
use crate::{
    db::{
        Db, Tx,
        rows::{self, ColumnSet, Columns},
    },
    entity::investor::{self, InvestorType},
    error::{AppError, is_unique_violation},
};

/// The unique index on `lower(email)`: the real guard of one investor per email.
const EMAIL_INDEX: &str = "ix_investors_email";

/// Which investors a list shows.
#[derive(Debug, Clone, Default)]
pub struct InvestorFilter {
    /// Only investors of this type.
    pub investor_type: Option<InvestorType>,
    /// Only the investor with this email (normalised as stored emails are).
    pub email: Option<String>,
}

/// `lower(email)`, the expression the unique index is built on (so lookups use it).
fn lower_email() -> Expr {
    Expr::expr(Func::lower(Expr::col(investor::Column::Email)))
}

impl InvestorFilter {
    fn apply(&self, mut query: Select<investor::Entity>) -> Select<investor::Entity> {
        if let Some(kind) = self.investor_type {
            query = query.filter(investor::Column::InvestorType.eq(kind));
        }
        if let Some(email) = &self.email {
            query = query.filter(lower_email().eq(email.clone()));
        }
        query
    }
}

/// An investor by id with the columns of `columns` (the others are placeholders), or `None`.
pub async fn find_investor(
    db: &Db,
    id: Uuid,
    columns: ColumnSet,
) -> Result<Option<investor::Model>, AppError> {
    static TEXTS: SqlTexts<ColumnSet> = LazyLock::new(Mutex::default);
    let sql = cached_sql(&TEXTS, columns, || {
        let mut list = String::new();
        rows::select_list::<investor::Entity>(&mut list, "v", columns.without_id());
        format!("SELECT true{list} FROM investors v WHERE v.id = $1")
    });
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, [id.into()]);
    match db.fetch_optional(stmt).await? {
        Some(row) => Ok(Some(rows::investor(&Columns::of(&row, 1), id, columns)?)),
        None => Ok(None),
    }
}

/// Investors by id; unknown ids are left out.
pub async fn investors_by_ids(
    db: &Db,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, investor::Model>, AppError> {
    // `= ANY($1)` keeps one statement text (and one prepared statement) for every batch size.
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT {} FROM investors v WHERE v.id = ANY($1::uuid[])",
            rows::all_columns::<investor::Entity>("v")
        ),
        [ids.to_vec().into()],
    );
    let found = decode_all(&db.fetch_all(stmt).await?, rows::investor)?;
    Ok(found.into_iter().map(|i| (i.id, i)).collect())
}

/// One page of investors in id order (oldest first), filtered.
pub async fn list_investors(
    db: &Db,
    filter: &InvestorFilter,
    window: &PageWindow<Uuid>,
) -> Result<Page<investor::Model>, AppError> {
    let mut query = filter.apply(
        investor::Entity::find()
            .select_only()
            .columns(investor::Column::iter()),
    );
    if let Some(after) = window.after {
        query = query.filter(investor::Column::Id.gt(after));
    }
    if let Some(before) = window.before {
        query = query.filter(investor::Column::Id.lt(before));
    }
    query = match window.direction {
        Direction::Forward => query.order_by_asc(investor::Column::Id),
        Direction::Backward => query.order_by_desc(investor::Column::Id),
    };
    let stmt = query.limit(window.fetch_limit()).build(DbBackend::Postgres);
    let rows = decode_all(&db.fetch_all(stmt).await?, rows::investor)?;
    Ok(window.into_page(rows))
}

/// How many investors match the filter.
pub async fn count_investors(db: &Db, filter: &InvestorFilter) -> Result<u64, AppError> {
    let stmt = filter
        .apply(investor::Entity::find())
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .build(DbBackend::Postgres);
    count(db, stmt).await
}

/// A validated new investor.
#[derive(Debug, Clone)]
pub struct NewInvestor {
    /// Trimmed name.
    pub name: String,
    /// Kind of investor.
    pub investor_type: InvestorType,
    /// Normalised, checked email.
    pub email: String,
}

fn duplicate_email() -> AppError {
    AppError::Conflict {
        field: "input.email",
        message: "an investor with this email already exists".to_owned(),
    }
}

/// Creates an investor. A duplicate email (case-insensitively) is `CONFLICT`, also when two
/// requests race: the unique index decides, the pre-check only saves an insert attempt. (One
/// transaction, so the audit row commits or rolls back with it.)
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id))]
pub async fn create_investor(
    db: &Db,
    actor: &Actor,
    new: NewInvestor,
) -> Result<investor::Model, AppError> {
    let mut tx = db.begin(actor.deadline).await?;
    let result = db
        .guard(actor.deadline, async {
            let created = insert_investor(&mut tx, new).await?;
            let entry = AuditEntry {
                operation: "createInvestor",
                entity: "investor",
                entity_id: created.id,
                related_ids: Vec::new(),
            };
            audit::record(&mut tx, actor, entry).await?;
            Ok(created)
        })
        .await;
    tx.finish(result).await
}

/// The body of [`create_investor`], inside its transaction.
async fn insert_investor(tx: &mut Tx<'_>, new: NewInvestor) -> Result<investor::Model, AppError> {
    let taken = investor::Entity::find()
        .select_only()
        .column(investor::Column::Id)
        .filter(lower_email().eq(new.email.clone()))
        .build(DbBackend::Postgres);
    if tx.fetch_optional(taken).await?.is_some() {
        return Err(duplicate_email());
    }
    let now = now_micros();
    let created = investor::Model {
        id: Uuid::now_v7(),
        name: new.name,
        investor_type: new.investor_type,
        email: new.email,
        created_at: now,
        updated_at: now,
    };
    let insert = investor::Entity::insert(investor::ActiveModel {
        id: Set(created.id),
        name: Set(created.name.clone()),
        investor_type: Set(created.investor_type),
        email: Set(created.email.clone()),
        created_at: Set(created.created_at),
        updated_at: Set(created.updated_at),
    })
    .build(DbBackend::Postgres);
    match tx.execute(insert).await {
        Ok(()) => Ok(created),
        Err(AppError::Database(e)) if is_unique_violation(&e, EMAIL_INDEX) => {
            Err(duplicate_email())
        }
        Err(e) => Err(e),
    }
}
