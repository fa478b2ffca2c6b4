//! Totals kept with the data, and their check against the rows.
//!
//! `fund_totals` (per fund: investments, their exact sum, distinct investors),
//! `investor_totals` (per investor: investments, their sum) and `fund_investors` (per fund and
//! investor: how many investments join them, which keeps the distinct count exact) are
//! maintained by `createInvestment` in its own statement, under the fund's row lock
//! ([`super::investment`]), so every aggregate the API answers is a primary-key lookup
//! ([`super::investment::totals_by_parent`]). Rows written outside the API (a bulk load) leave
//! them behind: [`check`] lists every difference from a recount, and [`repair`] rewrites them.

use sea_orm::{DbBackend, Statement};

use crate::{
    db::{Db, rows::Columns},
    error::AppError,
};

/// Rewrites every total from the rows, in one transaction. Writes of investments wait for it
/// (the `SHARE` lock lets reads through and waits for writes in flight), so nothing committed
/// meanwhile is missed. The seed runs the same statements after inserting its rows.
pub const REPAIR_SQL: &[&str] = &[
    "LOCK TABLE investments IN SHARE MODE",
    "DELETE FROM fund_investors",
    "DELETE FROM fund_totals",
    "DELETE FROM investor_totals",
    "INSERT INTO fund_investors (fund_id, investor_id, investments) \
     SELECT fund_id, investor_id, count(*) FROM investments GROUP BY fund_id, investor_id",
    "INSERT INTO fund_totals (fund_id, investments, committed_usd, investors) \
     SELECT a.fund_id, a.n, a.total, p.investors \
     FROM (SELECT fund_id, count(*) AS n, sum(amount_usd) AS total \
           FROM investments GROUP BY fund_id) a \
     JOIN (SELECT fund_id, count(*) AS investors FROM fund_investors GROUP BY fund_id) p \
       ON p.fund_id = a.fund_id",
    "INSERT INTO investor_totals (investor_id, investments, committed_usd) \
     SELECT investor_id, count(*), sum(amount_usd) FROM investments GROUP BY investor_id",
];

/// Every kept total that differs from a recount of the rows: `(what, kept, counted)`, with
/// `what` naming the table, the key and the column. One statement for each table, all in one
/// snapshot.
const CHECK_SQL: &[&str] = &[
    "SELECT 'fund ' || f.id || ' ' || c.name, c.kept, c.counted \
     FROM funds f \
     LEFT JOIN fund_totals t ON t.fund_id = f.id \
     LEFT JOIN (SELECT fund_id, count(*) AS n, sum(amount_usd) AS total, \
                       count(DISTINCT investor_id) AS investors \
                FROM investments GROUP BY fund_id) a ON a.fund_id = f.id \
     CROSS JOIN LATERAL (VALUES \
       ('investments', COALESCE(t.investments, 0)::text, COALESCE(a.n, 0)::text), \
       ('committed_usd', round(COALESCE(t.committed_usd, 0), 2)::text, \
                         round(COALESCE(a.total, 0), 2)::text), \
       ('investors', COALESCE(t.investors, 0)::text, COALESCE(a.investors, 0)::text) \
     ) AS c(name, kept, counted) \
     WHERE c.kept <> c.counted ORDER BY f.id, c.name",
    "SELECT 'investor ' || v.id || ' ' || c.name, c.kept, c.counted \
     FROM investors v \
     LEFT JOIN investor_totals t ON t.investor_id = v.id \
     LEFT JOIN (SELECT investor_id, count(*) AS n, sum(amount_usd) AS total \
                FROM investments GROUP BY investor_id) a ON a.investor_id = v.id \
     CROSS JOIN LATERAL (VALUES \
       ('investments', COALESCE(t.investments, 0)::text, COALESCE(a.n, 0)::text), \
       ('committed_usd', round(COALESCE(t.committed_usd, 0), 2)::text, \
                         round(COALESCE(a.total, 0), 2)::text) \
     ) AS c(name, kept, counted) \
     WHERE c.kept <> c.counted ORDER BY v.id, c.name",
    "SELECT 'fund_investor ' || COALESCE(p.fund_id, a.fund_id) || ' ' \
            || COALESCE(p.investor_id, a.investor_id) || ' investments', \
            COALESCE(p.investments, 0)::text, COALESCE(a.n, 0)::text \
     FROM fund_investors p \
     FULL JOIN (SELECT fund_id, investor_id, count(*) AS n \
                FROM investments GROUP BY fund_id, investor_id) a \
       ON a.fund_id = p.fund_id AND a.investor_id = p.investor_id \
     WHERE COALESCE(p.investments, 0) <> COALESCE(a.n, 0) \
     ORDER BY 1",
];

/// One kept total that differs from the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The table, the key and the column, e.g. `fund <id> investments`.
    pub what: String,
    /// The value kept.
    pub kept: String,
    /// The value the rows give.
    pub counted: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: kept {}, rows say {}",
            self.what, self.kept, self.counted
        )
    }
}

/// Recounts every total from the rows (in one read-only snapshot, without a statement
/// timeout: a recount reads every investment) and returns the differences, in key order.
pub async fn check(db: &Db) -> Result<Vec<Difference>, AppError> {
    let mut tx = db.begin(None).await?;
    let result = async {
        tx.execute(fixed(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        ))
        .await?;
        tx.execute(fixed("SET LOCAL statement_timeout = 0")).await?;
        let mut out = Vec::new();
        for sql in CHECK_SQL {
            for row in tx.fetch_all(fixed(sql)).await? {
                let columns = Columns::of(&row, 0);
                out.push(Difference {
                    what: columns.get(0)?,
                    kept: columns.get(1)?,
                    counted: columns.get(2)?,
                });
            }
        }
        Ok(out)
    }
    .await;
    tx.finish(result).await
}

/// Rewrites every total from the rows ([`REPAIR_SQL`]) in one transaction.
pub async fn repair(db: &Db) -> Result<(), AppError> {
    let mut tx = db.begin(None).await?;
    let result = async {
        tx.execute(fixed("SET LOCAL statement_timeout = 0")).await?;
        for sql in REPAIR_SQL {
            tx.execute(fixed(sql)).await?;
        }
        Ok(())
    }
    .await;
    tx.finish(result).await
}

fn fixed(sql: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}
