//! Per-parent aggregates over investments, from the totals kept with the data
//! ([`crate::service::totals`]): one primary-key lookup per parent, however many investments
//! it has, for many parents in one statement.

use std::collections::HashMap;

use sea_orm::{DbBackend, Statement};
use uuid::Uuid;

use super::Parent;
use crate::{
    db::{Db, rows::Columns},
    error::AppError,
};

/// A per-parent count over investments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Number of investments.
    Count,
    /// Number of distinct investors (for an investor: 1 once it has an investment).
    DistinctInvestors,
}

/// What is kept for one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Number of investments.
    pub investments: i64,
    /// Exact sum of their amounts, as PostgreSQL's decimal text with two decimals. Text,
    /// because a sum has no upper bound: every amount fits `NUMERIC(20,2)` (18 integer digits),
    /// but a total of many large commitments may not fit it, nor a 96-bit decimal.
    pub committed_usd: String,
    /// Number of distinct investors.
    pub investors: i64,
}

impl Totals {
    /// A parent without investments.
    pub fn none() -> Totals {
        Totals {
            investments: 0,
            committed_usd: "0.00".to_owned(),
            investors: 0,
        }
    }

    /// The count `aggregate` asks for.
    pub fn count(&self, aggregate: Aggregate) -> i64 {
        match aggregate {
            Aggregate::Count => self.investments,
            Aggregate::DistinctInvestors => self.investors,
        }
    }
}

/// The totals of every parent in `ids`, one statement for all of them (parents without
/// investments get [`Totals::none`]).
pub async fn totals_by_parent(
    db: &Db,
    parent: Parent,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Totals>, AppError> {
    let sql = match parent {
        Parent::Fund => {
            "SELECT fund_id, investments, round(committed_usd, 2)::text, investors \
             FROM fund_totals WHERE fund_id = ANY($1::uuid[])"
        }
        Parent::Investor => {
            "SELECT investor_id, investments, round(committed_usd, 2)::text, \
                    least(investments, 1) \
             FROM investor_totals WHERE investor_id = ANY($1::uuid[])"
        }
    };
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, [ids.to_vec().into()]);
    let mut out: HashMap<Uuid, Totals> = ids.iter().map(|id| (*id, Totals::none())).collect();
    for row in db.fetch_all(stmt).await? {
        let columns = Columns::of(&row, 0);
        out.insert(
            columns.get(0)?,
            Totals {
                investments: columns.get(1)?,
                committed_usd: columns.get(2)?,
                investors: columns.get(3)?,
            },
        );
    }
    Ok(out)
}
