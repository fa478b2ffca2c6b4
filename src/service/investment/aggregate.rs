//! Per-parent aggregates over investments, for many parents in one statement.

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
    /// Number of distinct investors (meaningful for funds).
    DistinctInvestors,
}

/// Counts per parent, one statement for all parents; parents without investments get 0.
pub async fn count_by_parent(
    db: &Db,
    parent: Parent,
    aggregate: Aggregate,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, AppError> {
    let column = parent.column();
    let expr = match aggregate {
        Aggregate::Count => "count(*)",
        Aggregate::DistinctInvestors => "count(DISTINCT investor_id)",
    };
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT {column}, {expr} FROM investments WHERE {column} = ANY($1::uuid[]) \
             GROUP BY {column}"
        ),
        [ids.to_vec().into()],
    );
    let mut out: HashMap<Uuid, i64> = ids.iter().map(|id| (*id, 0)).collect();
    for row in db.fetch_all(stmt).await? {
        let columns = Columns::of(&row, 0);
        out.insert(columns.get(0)?, columns.get(1)?);
    }
    Ok(out)
}

/// Exact sums of `amount_usd` per parent, one statement for all parents, as PostgreSQL's
/// decimal text with two decimals (`"0.00"` when none).
///
/// Text, because a sum has no upper bound: every amount fits `NUMERIC(20,2)` (18 integer
/// digits), but a fund's total of many large commitments may not fit it, nor a 96-bit decimal.
/// PostgreSQL sums `NUMERIC` exactly at any size, and its text is the exact answer.
pub async fn total_committed_by_parent(
    db: &Db,
    parent: Parent,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, AppError> {
    let column = parent.column();
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        // The sum of NUMERIC(20,2) values keeps their scale: always two decimals.
        format!(
            "SELECT {column}, sum(amount_usd)::text FROM investments \
             WHERE {column} = ANY($1::uuid[]) GROUP BY {column}"
        ),
        [ids.to_vec().into()],
    );
    let mut out: HashMap<Uuid, String> = ids.iter().map(|id| (*id, "0.00".to_owned())).collect();
    for row in db.fetch_all(stmt).await? {
        let columns = Columns::of(&row, 0);
        out.insert(columns.get(0)?, columns.get(1)?);
    }
    Ok(out)
}
