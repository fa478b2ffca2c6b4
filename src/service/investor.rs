//! Investors: lookups, keyset lists and creation with one investor per email.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Statement,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use super::{
    Actor,
    audit::{self, AuditEntry},
    now_micros,
    page::{Direction, Page, PageWindow},
};
use crate::{
    db::Db,
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
    /// Only the investor with this email (case-insensitive, surrounding spaces ignored).
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
            query = query.filter(lower_email().eq(email.trim().to_lowercase()));
        }
        query
    }
}

/// An investor by id, or `None`.
pub async fn find_investor(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<investor::Model>, AppError> {
    Ok(
        super::find_by_pk::<investor::Entity>(db, "SELECT * FROM investors WHERE id = $1", id)
            .await?,
    )
}

/// Investors by id; unknown ids are left out.
pub async fn investors_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, investor::Model>, AppError> {
    // `= ANY($1)` keeps one statement text (and one prepared statement) for every batch size.
    let rows = investor::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM investors WHERE id = ANY($1::uuid[])",
            [ids.to_vec().into()],
        ))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|i| (i.id, i)).collect())
}

/// One page of investors in id order (oldest first), filtered.
pub async fn list_investors(
    db: &impl ConnectionTrait,
    filter: &InvestorFilter,
    window: &PageWindow<Uuid>,
) -> Result<Page<investor::Model>, AppError> {
    let mut query = filter.apply(investor::Entity::find());
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
    let rows = query.limit(window.fetch_limit()).all(db).await?;
    Ok(window.into_page(rows))
}

/// How many investors match the filter.
pub async fn count_investors(
    db: &impl ConnectionTrait,
    filter: &InvestorFilter,
) -> Result<u64, AppError> {
    Ok(filter.apply(investor::Entity::find()).count(db).await?)
}

/// A validated new investor.
#[derive(Debug, Clone)]
pub struct NewInvestor {
    /// Trimmed name.
    pub name: String,
    /// Kind of investor.
    pub investor_type: InvestorType,
    /// Trimmed, lower-cased, checked email.
    pub email: String,
}

fn duplicate_email(email: &str) -> AppError {
    AppError::Conflict {
        field: "input.email",
        message: format!("an investor with email {email:?} already exists"),
    }
}

/// Creates an investor. A duplicate email (case-insensitively) is `CONFLICT`, also when two
/// requests race: the unique index decides, the pre-check only saves an insert attempt. (One
/// transaction, so the audit row of a later change commits or rolls back with it.)
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id))]
pub async fn create_investor(
    db: &Db,
    actor: &Actor,
    new: NewInvestor,
) -> Result<investor::Model, AppError> {
    let txn = db.begin(actor.deadline).await?;
    let created = db
        .guard(actor.deadline, async {
            let created = insert_investor(&txn, new).await?;
            let entry = AuditEntry {
                operation: "createInvestor",
                entity: "investor",
                entity_id: created.id,
                related_ids: Vec::new(),
            };
            audit::record(&txn, actor, entry).await?;
            Ok(created)
        })
        .await?;
    db.commit(txn).await?;
    Ok(created)
}

/// The body of [`create_investor`], inside its transaction.
async fn insert_investor(
    txn: &impl ConnectionTrait,
    new: NewInvestor,
) -> Result<investor::Model, AppError> {
    let taken = investor::Entity::find()
        .select_only()
        .column(investor::Column::Id)
        .filter(lower_email().eq(new.email.clone()))
        .into_tuple::<Uuid>()
        .one(txn)
        .await?
        .is_some();
    if taken {
        return Err(duplicate_email(&new.email));
    }
    let now = now_micros();
    let email = new.email.clone();
    let model = investor::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        investor_type: Set(new.investor_type),
        email: Set(new.email),
        created_at: Set(now),
        updated_at: Set(now),
    };
    model.insert(txn).await.map_err(|e| {
        if is_unique_violation(&e, EMAIL_INDEX) {
            duplicate_email(&email)
        } else {
            AppError::from(e)
        }
    })
}
