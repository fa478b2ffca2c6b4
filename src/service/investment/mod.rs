//! Investments: creation under the fund's row lock ([`create_investment`]), per-parent keyset
//! pages for many parents in one statement ([`page`]), and per-parent aggregates for many
//! parents in one statement ([`aggregate`]).

pub mod aggregate;
pub mod page;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sea_orm::{DbBackend, Statement};
use uuid::Uuid;

pub use aggregate::{Aggregate, Totals, totals_by_parent};
pub use page::{
    Include, InvestmentKey, InvestmentWith, PageQuery, Parent, Relation, fund_with_page,
    investment_pages, investor_with_page, page_statements,
};

use super::{Actor, now_micros};
use crate::{
    db::{
        Db,
        rows::{self, Columns},
    },
    entity::investment,
    error::{AppError, is_foreign_key_violation},
};

/// An investment by id, or `None`.
pub async fn find_investment(db: &Db, id: Uuid) -> Result<Option<investment::Model>, AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT {} FROM investments i WHERE i.id = $1",
            rows::all_columns::<investment::Entity>("i")
        ),
        [id.into()],
    );
    match db.fetch_optional(stmt).await? {
        Some(row) => Ok(Some(rows::investment(&Columns::of(&row, 0))?)),
        None => Ok(None),
    }
}

/// A validated new investment.
#[derive(Debug, Clone)]
pub struct NewInvestment {
    /// The fund committed to.
    pub fund_id: Uuid,
    /// The investor committing.
    pub investor_id: Uuid,
    /// Positive amount.
    pub amount_usd: Decimal,
    /// Checked date.
    pub investment_date: NaiveDate,
}

fn unknown_fund(id: Uuid) -> AppError {
    AppError::NotFound {
        entity: "fund",
        id,
        field: "input.fundId",
    }
}

fn unknown_investor(id: Uuid) -> AppError {
    AppError::NotFound {
        entity: "investor",
        id,
        field: "input.investorId",
    }
}

/// The lock, the closed check, the insert and its audit row as one statement, so one round
/// trip: the fund row is locked (`FOR UPDATE`; a racing close is waited for and re-read), and
/// the insert (with its audit row) only happens while the fund is not closed. The totals kept
/// with the data ([`crate::service::totals`]) move with it: the (fund, investor) pair's count
/// (its first investment adds a distinct investor to the fund), the fund's totals (under the
/// fund's row lock already held, so no new point of contention) and the investor's. Under an
/// `Idempotency-Key` ([`CREATE_INVESTMENT_KEYED_SQL`]) the key's row is locked too, the insert
/// happens only while this request's claim holds it, and the new id is recorded under the key
/// ([`crate::service::idempotency`]), still in the one statement. A single statement commits
/// or rolls back as a whole. The last column says whether the claim held (always true
/// without a key).
macro_rules! create_investment_sql {
    ($claim:literal, $claimed:literal, $recorded:literal, $holds:literal) => {
        concat!(
            "WITH fund AS (SELECT id, status FROM funds WHERE id = $1 FOR UPDATE)",
            $claim,
            ", created AS (\
                INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date, created_at) \
                SELECT $2::uuid, fund.id, $3::uuid, $4::numeric(20,2), $5::date, $6::timestamptz \
                FROM fund WHERE fund.status <> 'Closed'",
            $claimed,
            " RETURNING id)",
            $recorded,
            ", audit AS (\
                INSERT INTO audit_events (id, subject, operation, entity, entity_id, related_ids, request_id) \
                SELECT $7::uuid, $8::varchar, 'createInvestment', 'investment', created.id, \
                       ARRAY[$1::uuid, $3::uuid], $9::varchar \
                FROM created\
            ), pair AS (\
                INSERT INTO fund_investors (fund_id, investor_id, investments) \
                SELECT $1::uuid, $3::uuid, 1 FROM created \
                ON CONFLICT (fund_id, investor_id) \
                DO UPDATE SET investments = fund_investors.investments + 1 \
                RETURNING (xmax = 0) AS first\
            ), fund_total AS (\
                INSERT INTO fund_totals (fund_id, investments, committed_usd, investors) \
                SELECT $1::uuid, 1, $4::numeric(20,2), CASE WHEN pair.first THEN 1 ELSE 0 END FROM pair \
                ON CONFLICT (fund_id) DO UPDATE SET \
                    investments = fund_totals.investments + 1, \
                    committed_usd = fund_totals.committed_usd + excluded.committed_usd, \
                    investors = fund_totals.investors + excluded.investors\
            ), investor_total AS (\
                INSERT INTO investor_totals (investor_id, investments, committed_usd) \
                SELECT $3::uuid, 1, $4::numeric(20,2) FROM created \
                ON CONFLICT (investor_id) DO UPDATE SET \
                    investments = investor_totals.investments + 1, \
                    committed_usd = investor_totals.committed_usd + excluded.committed_usd\
            ) SELECT fund.status, created.id, ",
            $holds,
            " FROM fund LEFT JOIN created ON true"
        )
    };
}

/// [`create_investment_sql!`] without a key: `$1`–`$9`.
const CREATE_INVESTMENT_SQL: &str = create_investment_sql!("", "", "", "true");

/// [`create_investment_sql!`] under an `Idempotency-Key` (`$10` subject, `$11` key, `$12`
/// token, `$13` response key): the key's row locked, the insert only while this request's
/// claim holds it, the new id recorded under the key.
const CREATE_INVESTMENT_KEYED_SQL: &str = create_investment_sql!(
    ", claim AS (SELECT 1 FROM idempotency_keys \
       WHERE subject = $10 AND key = $11 AND token = $12 FOR UPDATE)",
    " AND EXISTS (SELECT 1 FROM claim)",
    ", recorded AS (UPDATE idempotency_keys \
       SET results = results || jsonb_build_object($13::text, created.id::text) \
       FROM created WHERE subject = $10 AND key = $11 AND token = $12)",
    "EXISTS (SELECT 1 FROM claim)"
);

/// Whether an investor exists (the rare path of a closed fund, where an unknown investor
/// still outranks the closed fund).
async fn investor_exists(db: &Db, id: Uuid) -> Result<bool, AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT 1 FROM investors WHERE id = $1",
        [id.into()],
    );
    Ok(db.fetch_optional(stmt).await?.is_some())
}

/// Records an investment. The fund row is locked (`FOR UPDATE`) for the closed check and the
/// insert, so an investment racing a close either commits before the close or sees it.
/// Checks run in the contract's order: unknown fund, unknown investor, then closed fund.
#[tracing::instrument(skip_all, fields(request_id = %actor.request_id, fund_id = %new.fund_id))]
pub async fn create_investment(
    db: &Db,
    actor: &Actor,
    new: NewInvestment,
) -> Result<investment::Model, AppError> {
    let model = investment::Model {
        id: Uuid::now_v7(),
        fund_id: new.fund_id,
        investor_id: new.investor_id,
        amount_usd: new.amount_usd,
        investment_date: new.investment_date,
        created_at: now_micros(),
    };
    let mut values: Vec<sea_orm::Value> = vec![
        model.fund_id.into(),
        model.id.into(),
        model.investor_id.into(),
        model.amount_usd.into(),
        model.investment_date.into(),
        model.created_at.into(),
        Uuid::now_v7().into(),
        actor.subject.clone().into(),
        actor.request_id.clone().into(),
    ];
    let sql = match &actor.key {
        None => CREATE_INVESTMENT_SQL,
        Some(key) => {
            values.extend([
                key.subject.clone().into(),
                key.key.clone().into(),
                key.token.into(),
                key.field.clone().into(),
            ]);
            CREATE_INVESTMENT_KEYED_SQL
        }
    };
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    // One row when the fund exists: its status, the new id (null when closed or when the
    // key's claim was lost) and whether the claim still holds.
    let created = match db.write(actor.deadline, stmt).await {
        Ok(rows) => match rows.first() {
            Some(row) => {
                let columns = Columns::of(row, 0);
                if !columns.get::<bool>(2)? {
                    return Err(AppError::IdempotencyKeyInProgress);
                }
                Some(columns.get::<Option<Uuid>>(1)?)
            }
            None => None,
        },
        // The foreign key is the existence check for the investor on the common path.
        Err(AppError::Database(e))
            if is_foreign_key_violation(&e, "fk_investments_investor_id") =>
        {
            return Err(unknown_investor(new.investor_id));
        }
        Err(e) => return Err(e),
    };
    match created {
        None => Err(unknown_fund(new.fund_id)),
        Some(Some(_)) => Ok(model),
        Some(None) if investor_exists(db, new.investor_id).await? => Err(AppError::FundClosed {
            fund_id: new.fund_id,
        }),
        Some(None) => Err(unknown_investor(new.investor_id)),
    }
}
