//! Keyset pages of investments for many parents in one statement, with the related rows a
//! client selects joined into the same statement.

use std::{
    hash::Hash,
    sync::{LazyLock, Mutex},
};

use chrono::NaiveDate;
use sea_orm::{DbBackend, Statement, Value};
use uuid::Uuid;

use crate::{
    db::{
        Db,
        rows::{self, ColumnSet, Columns},
    },
    entity::{fund, investment, investor},
    error::AppError,
    service::page::{Direction, Page, PageWindow},
    service::{SqlTexts, cached_sql},
};

/// The sort key of investments within a parent: newest `investment_date` first, ties by id.
pub type InvestmentKey = (NaiveDate, Uuid);

/// Whose investments a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parent {
    /// A fund's investments (index `ix_investments_fund_date`).
    Fund,
    /// An investor's investments (index `ix_investments_investor_date`).
    Investor,
}

impl Parent {
    /// The investments column holding the parent's id.
    pub fn column(self) -> &'static str {
        match self {
            Parent::Fund => "fund_id",
            Parent::Investor => "investor_id",
        }
    }

    /// The investment's other foreign key (the one that is not the parent's).
    fn other_column(self) -> &'static str {
        match self {
            Parent::Fund => "investor_id",
            Parent::Investor => "fund_id",
        }
    }
}

/// A row related to an investment, which a page statement can join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The investment's fund.
    Fund,
    /// The investment's investor.
    Investor,
}

/// Related rows to fetch with each page, in the same statement, and which of their columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Include {
    /// Each investment's investor.
    pub investor: Option<ColumnSet>,
    /// Each investment's fund.
    pub fund: Option<ColumnSet>,
}

impl Include {
    /// This and `relation` with `columns` (added to any columns already asked for).
    #[must_use]
    pub fn with(self, relation: Relation, columns: ColumnSet) -> Include {
        let join = |current: Option<ColumnSet>| Some(current.unwrap_or_default().union(columns));
        match relation {
            Relation::Fund => Include {
                fund: join(self.fund),
                ..self
            },
            Relation::Investor => Include {
                investor: join(self.investor),
                ..self
            },
        }
    }

    /// What both ask for: one statement can answer both.
    #[must_use]
    pub fn union(self, other: Include) -> Include {
        let join = |a: Option<ColumnSet>, b: Option<ColumnSet>| match (a, b) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
        Include {
            investor: join(self.investor, other.investor),
            fund: join(self.fund, other.fund),
        }
    }
}

/// An investment, with its investor and fund when they were fetched along (only the columns
/// the client selected: see [`ColumnSet`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InvestmentWith {
    /// The investment.
    pub investment: investment::Model,
    /// Its investor, when [`Include::investor`] was asked.
    pub investor: Option<investor::Model>,
    /// Its fund, when [`Include::fund`] was asked.
    pub fund: Option<fund::Model>,
}

impl From<investment::Model> for InvestmentWith {
    fn from(investment: investment::Model) -> Self {
        InvestmentWith {
            investment,
            investor: None,
            fund: None,
        }
    }
}

/// One parent's page request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageQuery {
    /// The fund or investor.
    pub parent_id: Uuid,
    /// Which slice of its investments.
    pub window: PageWindow<InvestmentKey>,
}

/// The shape of a page statement: requests with the same shape share one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    direction: Direction,
    limit: u32,
    after: bool,
    before: bool,
}

impl Shape {
    fn of(window: &PageWindow<InvestmentKey>) -> Shape {
        Shape {
            direction: window.direction,
            limit: window.limit,
            after: window.after.is_some(),
            before: window.before.is_some(),
        }
    }
}

/// Builds the page statement for one shape. For many parents (`single` false): the LATERAL
/// form, one index seek per parent, stopping after `limit + 1` rows, with each parent's own
/// cursor passed as extra `unnest` columns. For one parent: the same seek with the parent and
/// its cursor as plain parameters (no `unnest`, no LATERAL re-scan; on one fund's page
/// PostgreSQL spends about a fifth less per statement) and the ordinal a constant 1. Related
/// rows asked for are joined by primary key inside the seek (one probe per row of the page).
fn page_sql(parent: Parent, shape: Shape, include: Include, single: bool) -> String {
    let column = parent.column();
    let mut arrays = vec!["$1::uuid[]".to_owned()];
    let mut names = vec!["parent_id"];
    let mut conditions = if single {
        format!("inv.{column} = $1::uuid")
    } else {
        format!("inv.{column} = k.parent_id")
    };
    let mut next = 2;
    // List order is (investment_date, id) descending: "after" means smaller keys.
    for (present, prefix, op) in [(shape.after, "after", '<'), (shape.before, "before", '>')] {
        if present {
            let (date, id) = (format!("${next}"), format!("${}", next + 1));
            if single {
                conditions.push_str(&format!(
                    " AND (inv.investment_date, inv.id) {op} ({date}::date, {id}::uuid)"
                ));
            } else {
                arrays.push(format!("{date}::date[]"));
                arrays.push(format!("{id}::uuid[]"));
                names.extend(if prefix == "after" {
                    ["after_date", "after_id"]
                } else {
                    ["before_date", "before_id"]
                });
                conditions.push_str(&format!(
                    " AND (inv.investment_date, inv.id) {op} (k.{prefix}_date, k.{prefix}_id)"
                ));
            }
            next += 2;
        }
    }
    let order = match shape.direction {
        Direction::Forward => "inv.investment_date DESC, inv.id DESC",
        Direction::Backward => "inv.investment_date ASC, inv.id ASC",
    };
    // The parent's own column is not fetched: every row of its page holds the parent's id.
    let other = parent.other_column();
    let mut columns = format!(
        "{ord} AS ord, i.id, i.{other}, i.amount_usd, i.investment_date, i.created_at",
        ord = if single { "1::int8" } else { "k.ord" }
    );
    // The related rows' columns, as the seek's and then as the outer statement's. They are
    // joined inside the seek, so that each page row is probed as it is found, under the LIMIT.
    // Joined after a LATERAL instead, PostgreSQL put a Memoize node in front of the probes (the
    // same investor rarely comes twice in a batch, so its cache only cost: about a quarter of
    // PostgreSQL's time for fifty funds' pages, measured with pgbench), and joined after one
    // parent's page it could hash a whole table.
    let mut related = String::new();
    let mut joins = String::new();
    if let Some(set) = include.investor {
        rows::select_list::<investor::Entity>(&mut related, "v", set.without_id());
        rows::forward_list::<investor::Entity>(&mut columns, "i", "v", set.without_id());
        joins.push_str(" JOIN investors v ON v.id = inv.investor_id");
    }
    if let Some(set) = include.fund {
        rows::select_list::<fund::Entity>(&mut related, "f", set.without_id());
        rows::forward_list::<fund::Entity>(&mut columns, "i", "f", set.without_id());
        joins.push_str(" JOIN funds f ON f.id = inv.fund_id");
    }
    let seek = format!(
        "SELECT inv.id, inv.{other}, inv.amount_usd, inv.investment_date, inv.created_at{related} \
         FROM investments inv{joins} WHERE {conditions} ORDER BY {order} LIMIT ${next}"
    );
    if single {
        format!("SELECT {columns} FROM ({seek}) i")
    } else {
        format!(
            "SELECT {columns} \
             FROM unnest({arrays}) WITH ORDINALITY AS k({names}, ord) \
             CROSS JOIN LATERAL ({seek}) i",
            arrays = arrays.join(", "),
            names = names.join(", "),
        )
    }
}

/// One page row of `parent_id`'s page (see [`page_sql`]): the ordinal, the investment
/// (without the parent's column), then the investor's columns, then the fund's.
fn page_row(
    row: &Columns<'_>,
    include: Include,
    parent: Parent,
    parent_id: Uuid,
) -> Result<InvestmentWith, AppError> {
    let other: Uuid = row.get(2)?;
    let (fund_id, investor_id) = match parent {
        Parent::Fund => (parent_id, other),
        Parent::Investor => (other, parent_id),
    };
    let investment = investment::Model {
        id: row.get(1)?,
        fund_id,
        investor_id,
        amount_usd: row.decimal(3)?,
        investment_date: row.date(4)?,
        created_at: row.timestamp(5)?,
    };
    let mut at = 6;
    let investor = match include.investor {
        Some(set) => {
            let model = rows::investor(&row.shifted(at), investor_id, set)?;
            at += rows::width::<investor::Entity>(set.without_id());
            Some(model)
        }
        None => None,
    };
    let fund = match include.fund {
        Some(set) => Some(rows::fund(&row.shifted(at), fund_id, set)?),
        None => None,
    };
    Ok(InvestmentWith {
        investment,
        investor,
        fund,
    })
}

/// The statements that answer `queries`: one per distinct page shape (normally exactly one),
/// each with the indexes (into `queries`) of the requests it answers, in `unnest` order. A
/// shape asked for by one parent gets the single-parent form of [`page_sql`].
pub fn page_statements(
    parent: Parent,
    include: Include,
    queries: &[PageQuery],
) -> Vec<(Vec<usize>, Statement)> {
    let mut groups: Vec<(Shape, Vec<usize>)> = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let shape = Shape::of(&q.window);
        match groups.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, members)) => members.push(i),
            None => groups.push((shape, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(shape, members)| {
            let single = members.len() == 1;
            let windows = || members.iter().map(|&i| &queries[i].window);
            let mut values: Vec<Value> = if single {
                vec![queries[members[0]].parent_id.into()]
            } else {
                vec![
                    members
                        .iter()
                        .map(|&i| queries[i].parent_id)
                        .collect::<Vec<_>>()
                        .into(),
                ]
            };
            for (present, pick) in [
                (
                    shape.after,
                    (|w| w.after) as fn(&PageWindow<InvestmentKey>) -> Option<InvestmentKey>,
                ),
                (shape.before, |w| w.before),
            ] {
                if present {
                    let keys: Vec<InvestmentKey> =
                        windows().map(|w| pick(w).unwrap_or_default()).collect();
                    match keys.as_slice() {
                        [key] if single => values.extend([key.0.into(), key.1.into()]),
                        _ => {
                            values.push(keys.iter().map(|k| k.0).collect::<Vec<_>>().into());
                            values.push(keys.iter().map(|k| k.1).collect::<Vec<_>>().into());
                        }
                    }
                }
            }
            // One row more than the page when any member needs to know whether more follow
            // (the others drop it): the text is the same either way.
            let probe = windows().any(|w| w.probe);
            values.push((i64::from(shape.limit) + i64::from(probe)).into());
            static TEXTS: SqlTexts<(Parent, Shape, Include, bool)> = LazyLock::new(Mutex::default);
            let sql = cached_sql(&TEXTS, (parent, shape, include, single), || {
                page_sql(parent, shape, include, single)
            });
            let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
            (members, stmt)
        })
        .collect()
}

/// Pages of investments for many parents: one statement per distinct page shape (normally
/// exactly one), whatever the number of parents, with the related rows `include` asks for.
/// Results come back in request order.
pub async fn investment_pages(
    db: &Db,
    parent: Parent,
    include: Include,
    queries: &[PageQuery],
) -> Result<Vec<Page<InvestmentWith>>, AppError> {
    let mut rows_by_query: Vec<Vec<InvestmentWith>> = vec![Vec::new(); queries.len()];
    for (members, stmt) in page_statements(parent, include, queries) {
        for row in db.fetch_all(stmt).await?.iter() {
            let columns = Columns::of(row, 0);
            let ord: i64 = columns.get(0)?;
            let Some(&query_index) = usize::try_from(ord - 1).ok().and_then(|o| members.get(o))
            else {
                return Err(AppError::Internal(format!(
                    "page row with ordinal {ord} out of range"
                )));
            };
            let parent_id = queries[query_index].parent_id;
            rows_by_query[query_index].push(page_row(&columns, include, parent, parent_id)?);
        }
    }
    Ok(rows_by_query
        .into_iter()
        .zip(queries)
        .map(|(rows, q)| finish_page(rows, q))
        .collect())
}

/// A parent's rows as fetched (in any order: the joins may reorder them), as its page.
fn finish_page(mut rows: Vec<InvestmentWith>, query: &PageQuery) -> Page<InvestmentWith> {
    let key = |r: &InvestmentWith| (r.investment.investment_date, r.investment.id);
    match query.window.direction {
        Direction::Forward => rows.sort_unstable_by_key(|r| std::cmp::Reverse(key(r))),
        Direction::Backward => rows.sort_unstable_by_key(key),
    }
    query.window.into_page(rows)
}

/// A fund by id with the columns of `columns` (see [`ColumnSet`]) and a page of its
/// investments, in one statement (one round trip instead of two when a client asks for a fund
/// and its investments). `None` when there is no such fund.
pub async fn fund_with_page(
    db: &Db,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Option<(fund::Model, Page<InvestmentWith>)>, AppError> {
    match parent_with_page::<fund::Entity>(db, Parent::Fund, columns, include, query).await? {
        Some((row, page)) => Ok(Some((
            rows::fund(&Columns::of(&row, 1), query.parent_id, columns)?,
            page,
        ))),
        None => Ok(None),
    }
}

/// An investor by id with the columns of `columns` and a page of its investments, in one
/// statement; `None` when there is no such investor.
pub async fn investor_with_page(
    db: &Db,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Option<(investor::Model, Page<InvestmentWith>)>, AppError> {
    match parent_with_page::<investor::Entity>(db, Parent::Investor, columns, include, query)
        .await?
    {
        Some((row, page)) => Ok(Some((
            rows::investor(&Columns::of(&row, 1), query.parent_id, columns)?,
            page,
        ))),
        None => Ok(None),
    }
}

/// The statement of [`fund_with_page`] / [`investor_with_page`]: a constant, the parent row's
/// columns, then the page statement's (all null when the page is empty: a LEFT JOIN), so there
/// are rows exactly when the parent exists.
pub fn parent_with_page_statement<E: sea_orm::EntityTrait>(
    parent: Parent,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Statement, AppError> {
    let Some((_, page)) = page_statements(parent, include, std::slice::from_ref(query)).pop()
    else {
        return Err(AppError::Internal("a page without a statement".to_owned()));
    };
    // A single parent's page statement has the parent's id as `$1`.
    let values = page.values.map(|v| v.0).unwrap_or_default();
    static TEXTS: SqlTexts<(Parent, Shape, Include, ColumnSet)> = LazyLock::new(Mutex::default);
    let key = (parent, Shape::of(&query.window), include, columns);
    let sql = cached_sql(&TEXTS, key, || {
        let mut selected = String::new();
        rows::select_list::<E>(&mut selected, "r", columns.without_id());
        let table = match parent {
            Parent::Fund => "funds",
            Parent::Investor => "investors",
        };
        format!(
            "SELECT true AS r_found{selected}, p.* FROM {table} r LEFT JOIN ({inner}) p ON true \
             WHERE r.id = $1",
            inner = page.sql,
        )
    });
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}

/// Runs [`parent_with_page_statement`]: the first row (for the parent's columns, which start
/// at position 1) and the page.
async fn parent_with_page<E: sea_orm::EntityTrait>(
    db: &Db,
    parent: Parent,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Option<(sea_orm::sqlx::postgres::PgRow, Page<InvestmentWith>)>, AppError> {
    let stmt = parent_with_page_statement::<E>(parent, columns, include, query)?;
    let mut found = db.fetch_all(stmt).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let base = 1 + rows::width::<E>(columns.without_id());
    let mut items = Vec::with_capacity(found.len());
    for row in &found {
        let page_columns = Columns::of(row, base);
        // A null ordinal is the LEFT JOIN's row for an empty page.
        if page_columns.get::<Option<i64>>(0)?.is_some() {
            items.push(page_row(&page_columns, include, parent, query.parent_id)?);
        }
    }
    let first = found.swap_remove(0);
    Ok(Some((first, finish_page(items, query))))
}
