//! Investments: creation under the fund's row lock, per-parent keyset pages for many parents in
//! one statement, and per-parent aggregates for many parents in one statement.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{LazyLock, Mutex},
};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveEnum, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QuerySelect,
    Statement, Value, sqlx::postgres::PgRow,
};
use uuid::Uuid;

use super::{
    Actor, now_micros,
    page::{Direction, Page, PageWindow},
};
use crate::{
    db::Db,
    entity::{fund, fund::FundStatus, investment, investor},
    error::{AppError, is_foreign_key_violation},
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
    fn column(self) -> &'static str {
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

    /// The parent table's columns that a [`ColumnSet`] of it counts.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Parent::Fund => &FUND_COLUMNS,
            Parent::Investor => &INVESTOR_COLUMNS,
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

/// An investment by id, or `None`.
pub async fn find_investment(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<investment::Model>, AppError> {
    Ok(
        super::find_by_pk::<investment::Entity>(db, "SELECT * FROM investments WHERE id = $1", id)
            .await?,
    )
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
/// the insert (with its audit row) only happens while the fund is not closed. A single
/// statement commits or rolls back as a whole.
const CREATE_INVESTMENT_SQL: &str = "\
WITH fund AS (\
    SELECT id, status FROM funds WHERE id = $1 FOR UPDATE\
), created AS (\
    INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date, created_at) \
    SELECT $2::uuid, fund.id, $3::uuid, $4::numeric(20,2), $5::date, $6::timestamptz \
    FROM fund WHERE fund.status <> 'Closed' \
    RETURNING id\
), audit AS (\
    INSERT INTO audit_events (id, subject, operation, entity, entity_id, related_ids, request_id) \
    SELECT $7::uuid, $8::varchar, 'createInvestment', 'investment', created.id, \
           ARRAY[$1::uuid, $3::uuid], $9::varchar \
    FROM created\
) \
SELECT fund.status, created.id FROM fund LEFT JOIN created ON true";

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
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        CREATE_INVESTMENT_SQL,
        [
            model.fund_id.into(),
            model.id.into(),
            model.investor_id.into(),
            model.amount_usd.into(),
            model.investment_date.into(),
            model.created_at.into(),
            Uuid::now_v7().into(),
            actor.subject.clone().into(),
            actor.request_id.clone().into(),
        ],
    );
    let outcome = db
        .single_write(actor.deadline, async {
            // One row when the fund exists: its status and the new id (null when closed).
            match db.write_returning(stmt).await {
                Ok(rows) => match rows.first() {
                    Some(row) => Ok(Some(
                        Columns::of(row, 0)
                            .get::<Option<Uuid>>(1)
                            .map_err(AppError::Database)?,
                    )),
                    None => Ok(None),
                },
                // The foreign key is the existence check for the investor on the common path.
                Err(e) if is_foreign_key_violation(&e, "fk_investments_investor_id") => {
                    Err(unknown_investor(new.investor_id))
                }
                Err(e) => Err(Db::write_error(e)),
            }
        })
        .await?;
    match outcome {
        None => Err(unknown_fund(new.fund_id)),
        Some(Some(_)) => Ok(model),
        Some(None) => {
            // Closed. An unknown investor outranks the closed fund; only this rare path pays
            // the lookup.
            let investor_exists = investor::Entity::find_by_id(new.investor_id)
                .select_only()
                .column(investor::Column::Id)
                .into_tuple::<Uuid>()
                .one(&db.conn)
                .await?
                .is_some();
            Err(if investor_exists {
                AppError::FundClosed {
                    fund_id: new.fund_id,
                }
            } else {
                unknown_investor(new.investor_id)
            })
        }
    }
}

/// The investor columns a page can fetch along with each investment, in [`ColumnSet`] bit
/// order (the investor's id is the investment's `investor_id`, so never fetched again).
pub const INVESTOR_COLUMNS: [&str; 5] =
    ["name", "investor_type", "email", "created_at", "updated_at"];

/// The fund columns a page can fetch along with each investment, in [`ColumnSet`] bit order
/// (the fund's id is the investment's `fund_id`).
pub const FUND_COLUMNS: [&str; 6] = [
    "name",
    "vintage_year",
    "target_size_usd",
    "status",
    "created_at",
    "updated_at",
];

/// Some of a related row's columns ([`INVESTOR_COLUMNS`] or [`FUND_COLUMNS`]), one bit each.
///
/// A page fetches only the related columns its client selects: less for PostgreSQL to send and
/// for the server to decode. The other fields of such a row hold placeholders and must not be
/// read; the GraphQL layer derives the set from every field selected on the relation, so
/// whatever it resolves was fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ColumnSet(u8);

impl ColumnSet {
    /// Every column.
    pub const ALL: ColumnSet = ColumnSet(u8::MAX);

    /// The set of the named `columns` of `table` (a column list above); unknown names are
    /// ignored.
    pub fn of<'a>(table: &[&str], columns: impl IntoIterator<Item = &'a str>) -> ColumnSet {
        ColumnSet(columns.into_iter().fold(0, |bits, name| {
            table
                .iter()
                .position(|c| *c == name)
                .map_or(bits, |i| bits | (1 << i))
        }))
    }

    /// Whether column number `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// Both sets' columns.
    pub fn union(self, other: ColumnSet) -> ColumnSet {
        ColumnSet(self.0 | other.0)
    }
}

/// Related rows to fetch with each page, in the same statement (when the client selects them),
/// and which of their columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Include {
    /// Each investment's investor.
    pub investor: Option<ColumnSet>,
    /// Each investment's fund.
    pub fund: Option<ColumnSet>,
}

impl Include {
    /// What both ask for: one statement can answer both.
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

/// An investment, with its investor and fund when they were fetched along.
#[derive(Debug, Clone, PartialEq)]
pub struct InvestmentWith {
    /// The investment.
    pub investment: investment::Model,
    /// Its investor, when [`Include::investor`] was asked.
    pub investor: Option<investor::Model>,
    /// Its fund, when [`Include::fund`] was asked.
    pub fund: Option<fund::Model>,
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

/// Statement texts already built, by what determines them.
type SqlTexts<K> = LazyLock<Mutex<HashMap<K, String>>>;

/// The texts kept at most per kind of statement: the shapes in use are few, but a client
/// could ask for many (every page size, every set of related columns).
const SQL_TEXTS_KEPT: usize = 512;

/// The statement text for `key`, built once (up to [`SQL_TEXTS_KEPT`] texts; past that, built
/// on every use).
fn cached_sql<K: Hash + Eq>(texts: &SqlTexts<K>, key: K, build: impl FnOnce() -> String) -> String {
    if let Some(sql) = texts.lock().ok().and_then(|t| t.get(&key).cloned()) {
        return sql;
    }
    let sql = build();
    if let Ok(mut texts) = texts.lock()
        && texts.len() < SQL_TEXTS_KEPT
    {
        texts.insert(key, sql.clone());
    }
    sql
}

/// `, alias.column AS prefix_column` for each column of `set`.
fn push_columns(out: &mut String, alias: &str, table: &[&str], set: ColumnSet) {
    for (i, column) in table.iter().enumerate() {
        if set.contains(i) {
            out.push_str(&format!(", {alias}.{column} AS {alias}_{column}"));
        }
    }
}

/// `, source.alias_column` for each column of `set` (the names [`push_columns`] gives them).
fn push_named(out: &mut String, source: &str, alias: &str, table: &[&str], set: ColumnSet) {
    for (i, column) in table.iter().enumerate() {
        if set.contains(i) {
            out.push_str(&format!(", {source}.{alias}_{column}"));
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
    for (set, alias, table, name, key) in [
        (
            include.investor,
            "v",
            &INVESTOR_COLUMNS[..],
            "investors",
            "investor_id",
        ),
        (include.fund, "f", &FUND_COLUMNS[..], "funds", "fund_id"),
    ] {
        if let Some(set) = set {
            push_columns(&mut related, alias, table, set);
            push_named(&mut columns, "i", alias, table, set);
            joins.push_str(&format!(" JOIN {name} {alias} ON {alias}.id = inv.{key}"));
        }
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

/// A fund row holding every column of `FUND_COLUMNS` in that order (the id aside), decoded
/// by position.
pub(crate) fn fund_row(row: &PgRow, id: Uuid) -> Result<fund::Model, AppError> {
    fund_row_at(row, 0, id)
}

/// A fund row holding its id and then every column of `FUND_COLUMNS` in that order.
pub(crate) fn fund_row_with_id(row: &PgRow) -> Result<fund::Model, AppError> {
    let id = Columns::of(row, 0).get(0)?;
    fund_row_at(row, 1, id)
}

/// A fund row holding every column of `FUND_COLUMNS` in that order from column `base`.
fn fund_row_at(row: &PgRow, base: usize, id: Uuid) -> Result<fund::Model, AppError> {
    let mut at = 0;
    Ok(Columns::of(row, base).fund(id, ColumnSet::ALL, &mut at)?)
}

/// Typed access to the columns of a page row by position, without sqlx's per-value type-name
/// checks: the statement is ours and fixed, so its column types are known (and the tests
/// decode every column of every shape).
/// Positions count from `base`: a page's columns may follow a parent row's.
struct Columns<'r> {
    row: &'r PgRow,
    base: usize,
}

impl<'r> Columns<'r> {
    fn of(row: &'r PgRow, base: usize) -> Columns<'r> {
        Columns { row, base }
    }

    fn get<T>(&self, index: usize) -> Result<T, DbErr>
    where
        T: for<'a> sea_orm::sqlx::Decode<'a, sea_orm::sqlx::Postgres>
            + sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>,
    {
        use sea_orm::sqlx::Row;
        let index = self.base + index;
        self.row
            .try_get_unchecked(index)
            .map_err(|e| DbErr::Type(format!("page column {index}: {e}")))
    }

    /// A `NUMERIC` column, decoded directly when it is in the common binary shape (see
    /// [`crate::db::numeric`]), else by the generic decoder.
    fn decimal(&self, index: usize) -> Result<Decimal, DbErr> {
        use sea_orm::sqlx::{Row, ValueRef, postgres::PgValueFormat};
        if let Ok(raw) = self.row.try_get_raw(self.base + index)
            && !raw.is_null()
            && raw.format() == PgValueFormat::Binary
            && let Some(value) = raw
                .as_bytes()
                .ok()
                .and_then(crate::db::numeric::decode_binary)
        {
            return Ok(value);
        }
        self.get(index)
    }

    /// The binary bytes of a column of type `oid`, when it is that type, not null and in
    /// binary form (else `None`: the generic decoder then decides, and reports a mismatch).
    fn binary(&self, index: usize, oid: u32) -> Option<&'r [u8]> {
        use sea_orm::sqlx::{Row, ValueRef, postgres::PgValueFormat};
        let raw = self.row.try_get_raw(self.base + index).ok()?;
        if raw.is_null()
            || raw.format() != PgValueFormat::Binary
            || raw.type_info().oid().map(|o| o.0) != Some(oid)
        {
            return None;
        }
        raw.as_bytes().ok()
    }

    /// A `DATE` column, decoded directly in the common case (see [`crate::db::temporal`]).
    fn date(&self, index: usize) -> Result<NaiveDate, DbErr> {
        match self
            .binary(index, crate::db::temporal::DATE_OID)
            .and_then(crate::db::temporal::decode_date)
        {
            Some(date) => Ok(date),
            None => self.get(index),
        }
    }

    /// A `TIMESTAMPTZ` column, decoded directly in the common case.
    fn timestamp(&self, index: usize) -> Result<DateTime<Utc>, DbErr> {
        match self
            .binary(index, crate::db::temporal::TIMESTAMPTZ_OID)
            .and_then(crate::db::temporal::decode_timestamptz)
        {
            Some(at) => Ok(at),
            None => self.get(index),
        }
    }

    /// One page row of `parent_id`'s page (see [`page_sql`]): the ordinal, the investment
    /// (without the parent's column), then the investor's columns, then the fund's.
    fn page_row(
        &self,
        include: Include,
        parent: Parent,
        parent_id: Uuid,
    ) -> Result<InvestmentWith, DbErr> {
        let investment = self.investment(parent, parent_id)?;
        let mut at = 6;
        let investor = include
            .investor
            .map(|set| self.investor(investment.investor_id, set, &mut at))
            .transpose()?;
        let fund = include
            .fund
            .map(|set| self.fund(investment.fund_id, set, &mut at))
            .transpose()?;
        Ok(InvestmentWith {
            investment,
            investor,
            fund,
        })
    }

    /// The investment columns of a page row of `parent_id`'s page (the parent's own column is
    /// not fetched: it is `parent_id`).
    fn investment(&self, parent: Parent, parent_id: Uuid) -> Result<investment::Model, DbErr> {
        let other: Uuid = self.get(2)?;
        let (fund_id, investor_id) = match parent {
            Parent::Fund => (parent_id, other),
            Parent::Investor => (other, parent_id),
        };
        Ok(investment::Model {
            id: self.get(1)?,
            fund_id,
            investor_id,
            amount_usd: self.decimal(3)?,
            investment_date: self.date(4)?,
            created_at: self.timestamp(5)?,
        })
    }

    /// Column `*at` when `wanted` (moving `at` on), else `placeholder`.
    fn next_or<T>(&self, wanted: bool, at: &mut usize, placeholder: T) -> Result<T, DbErr>
    where
        T: for<'a> sea_orm::sqlx::Decode<'a, sea_orm::sqlx::Postgres>
            + sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>,
    {
        if !wanted {
            return Ok(placeholder);
        }
        let value = self.get(*at)?;
        *at += 1;
        Ok(value)
    }

    /// The investor `id` with the columns of `set` starting at `*at` (see [`ColumnSet`] for
    /// the placeholders of the others).
    fn investor(&self, id: Uuid, set: ColumnSet, at: &mut usize) -> Result<investor::Model, DbErr> {
        let epoch = chrono::DateTime::UNIX_EPOCH;
        Ok(investor::Model {
            id,
            name: self.next_or(set.contains(0), at, String::new())?,
            investor_type: match self.next_or::<Option<String>>(set.contains(1), at, None)? {
                Some(t) => investor::InvestorType::try_from_value(&t)?,
                None => investor::InvestorType::Individual,
            },
            email: self.next_or(set.contains(2), at, String::new())?,
            created_at: self.next_or(set.contains(3), at, epoch)?,
            updated_at: self.next_or(set.contains(4), at, epoch)?,
        })
    }

    /// The fund `id` with the columns of `set` starting at `*at`.
    fn fund(&self, id: Uuid, set: ColumnSet, at: &mut usize) -> Result<fund::Model, DbErr> {
        let epoch = chrono::DateTime::UNIX_EPOCH;
        Ok(fund::Model {
            id,
            name: self.next_or(set.contains(0), at, String::new())?,
            vintage_year: self.next_or(set.contains(1), at, 0)?,
            target_size_usd: if set.contains(2) {
                let value = self.decimal(*at)?;
                *at += 1;
                value
            } else {
                Decimal::ZERO
            },
            status: match self.next_or::<Option<String>>(set.contains(3), at, None)? {
                Some(s) => FundStatus::try_from_value(&s)?,
                None => FundStatus::Fundraising,
            },
            created_at: self.next_or(set.contains(4), at, epoch)?,
            updated_at: self.next_or(set.contains(5), at, epoch)?,
        })
    }
}

/// The statements that answer `queries`: one per distinct page shape (normally exactly one),
/// each with the indexes (into `queries`) of the requests it answers, in `unnest` order. A
/// shape asked for by one parent gets the single-parent form of [`page_sql`].
pub fn page_statements(
    parent: Parent,
    include: Include,
    queries: &[PageQuery],
) -> Vec<(Vec<usize>, Statement)> {
    let mut groups: HashMap<Shape, Vec<usize>> = HashMap::new();
    for (i, q) in queries.iter().enumerate() {
        groups.entry(Shape::of(&q.window)).or_default().push(i);
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
            rows_by_query[query_index].push(columns.page_row(include, parent, parent_id)?);
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

/// A fund by id with some of its columns (see [`ColumnSet`]: the others are placeholders) and
/// a page of its investments, in one statement (one round trip instead of two when a client
/// asks for a fund and its investments). `None` when there is no such fund.
pub async fn fund_with_page(
    db: &Db,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Option<(fund::Model, Page<InvestmentWith>)>, AppError> {
    let id = query.parent_id;
    parent_with_page(db, Parent::Fund, columns, include, query, |c| {
        let mut at = 0;
        c.fund(id, columns, &mut at)
    })
    .await
}

/// An investor by id with some of its columns and a page of its investments, in one
/// statement; `None` when there is no such investor.
pub async fn investor_with_page(
    db: &Db,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
) -> Result<Option<(investor::Model, Page<InvestmentWith>)>, AppError> {
    let id = query.parent_id;
    parent_with_page(db, Parent::Investor, columns, include, query, |c| {
        let mut at = 0;
        c.investor(id, columns, &mut at)
    })
    .await
}

/// The statement of [`fund_with_page`] / [`investor_with_page`]: the parent row's columns,
/// then the page statement's (all null when the page is empty: a LEFT JOIN), so there are rows
/// exactly when the parent exists.
pub fn parent_with_page_statement(
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
        push_columns(&mut selected, "r", parent.columns(), columns);
        let table_name = match parent {
            Parent::Fund => "funds",
            Parent::Investor => "investors",
        };
        // The first column is the parent's own (a constant, so that the list is never empty).
        format!(
            "SELECT true AS r_found{selected}, p.* FROM {table_name} r LEFT JOIN ({inner}) p ON true \
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

async fn parent_with_page<T>(
    db: &Db,
    parent: Parent,
    columns: ColumnSet,
    include: Include,
    query: &PageQuery,
    parent_row: impl Fn(&Columns<'_>) -> Result<T, DbErr>,
) -> Result<Option<(T, Page<InvestmentWith>)>, AppError> {
    let stmt = parent_with_page_statement(parent, columns, include, query)?;
    let rows = db.fetch_all(stmt).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    // Column 0 is the constant; the parent's columns follow, then the page's.
    let parent_columns = Columns::of(first, 1);
    let model = parent_row(&parent_columns)?;
    let base = 1 + parent
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, _)| columns.contains(*i))
        .count();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        let page_columns = Columns::of(row, base);
        // A null ordinal is the LEFT JOIN's row for an empty page.
        if page_columns.get::<Option<i64>>(0)?.is_some() {
            items.push(page_columns.page_row(include, parent, query.parent_id)?);
        }
    }
    Ok(Some((model, finish_page(items, query))))
}

/// A per-parent aggregate over investments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Number of investments.
    Count,
    /// Sum of `amount_usd` (`0.00` when none).
    TotalCommitted,
    /// Number of distinct investors (meaningful for funds).
    DistinctInvestors,
}

#[derive(Debug, FromQueryResult)]
struct CountRow {
    parent_id: Uuid,
    value: i64,
}

#[derive(Debug, FromQueryResult)]
struct SumRow {
    parent_id: Uuid,
    value: Decimal,
}

fn aggregate_sql(parent: Parent, aggregate: Aggregate) -> String {
    let column = parent.column();
    let expr = match aggregate {
        Aggregate::Count => "count(*)",
        Aggregate::TotalCommitted => "COALESCE(sum(amount_usd), 0)::numeric(20,2)",
        Aggregate::DistinctInvestors => "count(DISTINCT investor_id)",
    };
    format!(
        "SELECT {column} AS parent_id, {expr} AS value FROM investments \
         WHERE {column} = ANY($1::uuid[]) GROUP BY {column}"
    )
}

/// Counts per parent, one statement for all parents; parents without investments get 0.
pub async fn count_by_parent(
    db: &impl ConnectionTrait,
    parent: Parent,
    aggregate: Aggregate,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        aggregate_sql(parent, aggregate),
        [ids.to_vec().into()],
    );
    let mut out: HashMap<Uuid, i64> = ids.iter().map(|id| (*id, 0)).collect();
    for row in CountRow::find_by_statement(stmt).all(db).await? {
        out.insert(row.parent_id, row.value);
    }
    Ok(out)
}

/// Exact sums of `amount_usd` per parent, one statement for all parents; 0.00 when none.
pub async fn total_committed_by_parent(
    db: &impl ConnectionTrait,
    parent: Parent,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Decimal>, AppError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        aggregate_sql(parent, Aggregate::TotalCommitted),
        [ids.to_vec().into()],
    );
    let mut out: HashMap<Uuid, Decimal> = ids.iter().map(|id| (*id, Decimal::new(0, 2))).collect();
    for row in SumRow::find_by_statement(stmt).all(db).await? {
        out.insert(row.parent_id, row.value);
    }
    Ok(out)
}
