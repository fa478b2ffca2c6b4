//! `Fund`, its status enum, filter and mutation inputs.

use std::sync::Arc;

use async_graphql::{
    Context, ContextSelectionSet, Enum, InputObject, Lookahead, MaybeUndefined, Object, Positioned,
    Value, parser::types::Field,
};
use chrono::Utc;

use super::policy::{authorize, granted};
use super::{
    connection::{Connection, Node, PageArgs, TotalCount, connection_complexity},
    context::{db, limits, loader},
    cursor::{self, Scope},
    fast::PageSpec,
    investment::Investment,
    investor::Investor,
    loader::{CountKey, PageKey, TotalKey},
    scalars::{DateTime, Id, Money},
};
use crate::{
    auth::Scope as AuthScope,
    domain,
    entity::fund::{self, FundStatus},
    error::AppError,
    service::{
        self,
        fund::{FundChanges, FundFilter as ServiceFundFilter, NewFund},
        investment::{
            Aggregate, ColumnSet, FUND_COLUMNS, INVESTOR_COLUMNS, Include, PageQuery, Parent,
        },
    },
};

/// A fund's lifecycle stage. It only moves forward: FUNDRAISING → INVESTING → CLOSED.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "FundStatus")]
pub enum GqlFundStatus {
    /// Raising capital.
    Fundraising,
    /// Deploying capital; still accepts investments.
    Investing,
    /// Closed: accepts no new investments.
    Closed,
}

impl From<FundStatus> for GqlFundStatus {
    fn from(s: FundStatus) -> Self {
        match s {
            FundStatus::Fundraising => GqlFundStatus::Fundraising,
            FundStatus::Investing => GqlFundStatus::Investing,
            FundStatus::Closed => GqlFundStatus::Closed,
        }
    }
}

impl From<GqlFundStatus> for FundStatus {
    fn from(s: GqlFundStatus) -> Self {
        match s {
            GqlFundStatus::Fundraising => FundStatus::Fundraising,
            GqlFundStatus::Investing => FundStatus::Investing,
            GqlFundStatus::Closed => FundStatus::Closed,
        }
    }
}

/// A private-markets fund.
#[derive(Debug, Clone)]
pub struct Fund(pub fund::Model);

impl Node for Fund {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.0.id)
    }
}

#[Object]
impl Fund {
    /// The fund's id (UUIDv7).
    async fn id(&self) -> Id {
        Id(self.0.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Year the fund was established.
    async fn vintage_year(&self) -> i32 {
        self.0.vintage_year
    }

    /// Target size in USD.
    async fn target_size_usd(&self) -> Money {
        Money(self.0.target_size_usd)
    }

    /// Lifecycle stage.
    async fn status(&self) -> GqlFundStatus {
        self.0.status.into()
    }

    /// When the fund was created; never changes.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the fund was last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }

    /// Newest investment_date first; ties broken by id, newest first.
    #[graphql(complexity = "connection_complexity(first, last, child_complexity)")]
    async fn investments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<Connection<Investment>> {
        authorize(ctx, "Fund", "investments")?;
        investments_of(
            ctx,
            Parent::Fund,
            self.0.id,
            PageArgs {
                first,
                after,
                last,
                before,
            },
        )
        .await
    }

    /// Exact sum of amountUsd over all of this fund's investments ("0.00" when none).
    async fn total_committed_usd(&self, ctx: &Context<'_>) -> async_graphql::Result<Money> {
        authorize(ctx, "Fund", "totalCommittedUsd")?;
        total_committed(ctx, Parent::Fund, self.0.id).await
    }

    /// Number of distinct investors with at least one investment in this fund.
    async fn investor_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        authorize(ctx, "Fund", "investorCount")?;
        let n = loader(ctx)?
            .load_one(CountKey {
                parent: Parent::Fund,
                aggregate: Aggregate::DistinctInvestors,
                id: self.0.id,
            })
            .await?
            .unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// A parent's investments page, through the batched loader (or fetched already with the
/// parent's row, see [`root_page`]). When the client selects each investment's investor or
/// fund, they are fetched in the page's own statement.
pub(super) async fn investments_of(
    ctx: &Context<'_>,
    parent: Parent,
    parent_id: uuid::Uuid,
    args: PageArgs,
) -> async_graphql::Result<Connection<Investment>> {
    let key = page_key(
        ctx,
        &ctx.look_ahead(),
        parent,
        parent_id,
        &args,
        limits(ctx)?.max_page_size,
    )?;
    let page = loader(ctx)?
        .load_page(key)
        .await?
        // Usually the only reference left by now, so the rows move instead of being copied.
        .map(|page| Arc::try_unwrap(page).unwrap_or_else(|shared| (*shared).clone()))
        .unwrap_or_default();
    Ok(Connection::new(
        page,
        Scope::Investments(parent, parent_id),
        TotalCount::Investments(parent, parent_id),
        Investment::from,
    ))
}

/// The loader key of a parent's investments page: `look` is the connection field's selection.
fn page_key(
    ctx: &Context<'_>,
    look: &Lookahead<'_>,
    parent: Parent,
    parent_id: uuid::Uuid,
    args: &PageArgs,
    max_page_size: u32,
) -> Result<PageKey, AppError> {
    let mut window = args.window(max_page_size, |c| {
        cursor::decode_investment(c, parent, parent_id)
    })?;
    window.probe = look.field("pageInfo").exists();
    Ok(PageKey {
        parent,
        include: page_include(ctx, look),
        query: PageQuery { parent_id, window },
    })
}

/// The related rows that come in a page's own statement: those selected (under the
/// connection field `look`) and readable by the caller, with the columns their selected
/// fields read.
fn page_include(ctx: &Context<'_>, look: &Lookahead<'_>) -> Include {
    Include {
        investor: related_columns(look, "investor", &INVESTOR_COLUMNS, investor_column)
            .filter(|_| granted(ctx, AuthScope::InvestorsRead)),
        fund: related_columns(look, "fund", &FUND_COLUMNS, fund_column)
            .filter(|_| granted(ctx, AuthScope::FundsRead)),
    }
}

/// The page that the `investments` connection `field` asks of every item of a list of
/// parents, for the fast path to load them all at once (see [`super::fast`]): the same
/// window and related rows the field's resolver would ask for. `None` (the resolvers answer)
/// when the caller may not read the field, an argument is invalid, or a cursor is given (a
/// cursor belongs to one parent: the resolver reports it on the others).
pub(super) fn page_spec(
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
    parent: Parent,
) -> Option<PageSpec> {
    let ctx = ctx.with_field(field);
    let type_name = match parent {
        Parent::Fund => "Fund",
        Parent::Investor => "Investor",
    };
    authorize(&ctx, type_name, "investments").ok()?;
    let size = |name: &str| {
        ctx.param_value::<Option<i32>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    let cursor = |name: &str| {
        ctx.param_value::<Option<String>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    if cursor("after")?.is_some() || cursor("before")?.is_some() {
        return None;
    }
    let args = PageArgs {
        first: size("first")?,
        last: size("last")?,
        ..PageArgs::default()
    };
    let mut window = args
        .window(limits(&ctx).ok()?.max_page_size, |_| {
            Err(cursor::CursorError::Malformed)
        })
        .ok()?;
    let look = ctx.look_ahead();
    window.probe = look.field("pageInfo").exists();
    Some(PageSpec {
        parent,
        include: page_include(&ctx, &look),
        window,
    })
}

/// The investments page that a root lookup (`fund(id)`, `investor(id)`, the current field of
/// `ctx`) can fetch in its own statement: when it selects `investments` exactly once, the
/// caller may read it, and its arguments are valid. Anything else is left to the field itself
/// (which then reports what is wrong).
fn root_page(ctx: &Context<'_>, parent: Parent, parent_id: uuid::Uuid) -> Option<PageKey> {
    let type_name = match parent {
        Parent::Fund => "Fund",
        Parent::Investor => "Investor",
    };
    authorize(ctx, type_name, "investments").ok()?;
    let look = ctx.look_ahead().field("investments");
    let fields = look.selection_fields();
    let [field] = fields.as_slice() else {
        return None;
    };
    let mut args = PageArgs::default();
    for (name, value) in field.arguments().ok()? {
        let number = |value: &Value| match value {
            Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        };
        let text = |value: Value| match value {
            Value::String(s) => Some(s),
            _ => None,
        };
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            ("first", value) => args.first = Some(number(&value)?),
            ("last", value) => args.last = Some(number(&value)?),
            ("after", value) => args.after = Some(text(value)?),
            ("before", value) => args.before = Some(text(value)?),
            _ => return None,
        }
    }
    let max_page_size = limits(ctx).ok()?.max_page_size;
    page_key(ctx, &look, parent, parent_id, &args, max_page_size).ok()
}

/// The columns of `table` that the current field's selected fields read (see
/// [`ColumnSet`]: a row fetched with only these must not be read otherwise).
fn root_columns(
    ctx: &Context<'_>,
    table: &[&str],
    column_of: fn(&str) -> Option<&'static str>,
) -> ColumnSet {
    let fields = ctx.look_ahead().selection_fields();
    let names = fields
        .iter()
        .flat_map(|f| f.selection_set())
        .filter_map(|f| column_of(f.name()));
    ColumnSet::of(table, names)
}

/// The columns of related rows that `relation`'s selected fields read (under `nodes` and
/// `edges.node` of the connection field `look`, every alias and fragment included), or `None`
/// when it is not selected. Fields that read no column (`__typename`, connections,
/// aggregates: they need only the id, which the investment row carries) add nothing.
fn related_columns(
    look: &Lookahead<'_>,
    relation: &str,
    table: &[&str],
    column_of: fn(&str) -> Option<&'static str>,
) -> Option<ColumnSet> {
    let fields: Vec<_> = [
        look.field("nodes").field(relation),
        look.field("edges").field("node").field(relation),
    ]
    .iter()
    .flat_map(|l| l.selection_fields())
    .collect();
    if fields.is_empty() {
        return None;
    }
    let names = fields
        .iter()
        .flat_map(|f| f.selection_set())
        .filter_map(|f| column_of(f.name()));
    Some(ColumnSet::of(table, names))
}

/// The investor column an `Investor` field reads, if any.
fn investor_column(field: &str) -> Option<&'static str> {
    Some(match field {
        "name" => "name",
        "investorType" => "investor_type",
        "email" => "email",
        "createdAt" => "created_at",
        "updatedAt" => "updated_at",
        _ => return None,
    })
}

/// The fund column a `Fund` field reads, if any.
fn fund_column(field: &str) -> Option<&'static str> {
    Some(match field {
        "name" => "name",
        "vintageYear" => "vintage_year",
        "targetSizeUsd" => "target_size_usd",
        "status" => "status",
        "createdAt" => "created_at",
        "updatedAt" => "updated_at",
        _ => return None,
    })
}

/// A parent's exact committed total, through the batched loader.
pub(super) async fn total_committed(
    ctx: &Context<'_>,
    parent: Parent,
    id: uuid::Uuid,
) -> async_graphql::Result<Money> {
    let total = loader(ctx)?.load_one(TotalKey { parent, id }).await?;
    Ok(Money(total.unwrap_or_default()))
}

/// Which funds `funds` lists. Filters combine with AND.
#[derive(Debug, Clone, Default, InputObject)]
pub struct FundFilter {
    /// Only funds with this status.
    pub status: Option<GqlFundStatus>,
    /// Only funds of this vintage year.
    pub vintage_year: Option<i32>,
    /// Only funds whose name contains this text, case-insensitively; `%` and `_` are literal.
    pub name_contains: Option<String>,
}

impl From<FundFilter> for ServiceFundFilter {
    fn from(f: FundFilter) -> Self {
        ServiceFundFilter {
            status: f.status.map(Into::into),
            vintage_year: f.vintage_year,
            name_contains: f.name_contains,
        }
    }
}

/// A new fund.
#[derive(Debug, Clone, InputObject)]
pub struct CreateFundInput {
    /// Display name; trimmed, 1..=255 characters.
    pub name: String,
    /// Year the fund was established: 1900 ..= current year + 5.
    pub vintage_year: i32,
    /// Target size in USD, greater than 0.
    pub target_size_usd: Money,
    /// Initial status.
    #[graphql(default_with = "Some(GqlFundStatus::Fundraising)")]
    pub status: Option<GqlFundStatus>,
}

impl CreateFundInput {
    /// Checks every field (the contract's rules) into a service command.
    pub fn validate(self) -> Result<NewFund, AppError> {
        let today = Utc::now().date_naive();
        Ok(NewFund {
            name: domain::parse_name(&self.name)
                .map_err(|m| AppError::bad_input("input.name", m))?,
            vintage_year: domain::check_vintage_year(self.vintage_year, today)
                .map_err(|m| AppError::bad_input("input.vintageYear", m))?,
            target_size_usd: domain::check_positive(self.target_size_usd.0)
                .map_err(|m| AppError::bad_input("input.targetSizeUsd", m))?,
            status: self.status.unwrap_or(GqlFundStatus::Fundraising).into(),
        })
    }
}

/// Partial update: absent fields keep their value. Mirrors PUT /funds with the id in the body.
#[derive(Debug, Clone, InputObject)]
pub struct UpdateFundInput {
    /// The fund to change.
    pub id: Id,
    /// New display name; trimmed, 1..=255 characters.
    pub name: MaybeUndefined<String>,
    /// New vintage year: 1900 ..= current year + 5.
    pub vintage_year: MaybeUndefined<i32>,
    /// New target size in USD, greater than 0.
    pub target_size_usd: MaybeUndefined<Money>,
    /// New status; it may only move forward.
    pub status: MaybeUndefined<GqlFundStatus>,
}

/// An absent field keeps its value; an explicit null is refused.
fn present<T>(value: MaybeUndefined<T>, field: &str) -> Result<Option<T>, AppError> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(AppError::bad_input(
            field,
            "must not be null; leave the field out to keep its value",
        )),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}

impl UpdateFundInput {
    /// Checks every given field into a service command.
    pub fn validate(self) -> Result<FundChanges, AppError> {
        let today = Utc::now().date_naive();
        let name = present(self.name, "input.name")?
            .map(|n| domain::parse_name(&n).map_err(|m| AppError::bad_input("input.name", m)))
            .transpose()?;
        let vintage_year = present(self.vintage_year, "input.vintageYear")?
            .map(|y| {
                domain::check_vintage_year(y, today)
                    .map_err(|m| AppError::bad_input("input.vintageYear", m))
            })
            .transpose()?;
        let target_size_usd = present(self.target_size_usd, "input.targetSizeUsd")?
            .map(|m| {
                domain::check_positive(m.0)
                    .map_err(|e| AppError::bad_input("input.targetSizeUsd", e))
            })
            .transpose()?;
        let status = present(self.status, "input.status")?.map(Into::into);
        Ok(FundChanges {
            id: self.id.0,
            name,
            vintage_year,
            target_size_usd,
            status,
        })
    }
}

/// Loads one fund for `Query.fund`: with its investments page in the same statement when the
/// client selects it (see [`root_page`]).
pub(super) async fn fund_by_id(ctx: &Context<'_>, id: Id) -> async_graphql::Result<Option<Fund>> {
    let db = db(ctx)?;
    let Some(key) = root_page(ctx, Parent::Fund, id.0) else {
        return Ok(service::fund::find_fund(db, id.0).await?.map(Fund));
    };
    let columns = root_columns(ctx, &FUND_COLUMNS, fund_column);
    let found = service::investment::fund_with_page(db, columns, key.include, &key.query).await?;
    Ok(found.map(|(fund, page)| {
        if let Ok(loaders) = loader(ctx) {
            loaders.prime_page(key, page);
        }
        Fund(fund)
    }))
}

/// Loads one investor for `Query.investor`, as [`fund_by_id`] does a fund.
pub(super) async fn investor_by_id(
    ctx: &Context<'_>,
    id: Id,
) -> async_graphql::Result<Option<Investor>> {
    let db = db(ctx)?;
    let Some(key) = root_page(ctx, Parent::Investor, id.0) else {
        return Ok(service::investor::find_investor(&db.conn, id.0)
            .await?
            .map(Investor));
    };
    let columns = root_columns(ctx, &INVESTOR_COLUMNS, investor_column);
    let found =
        service::investment::investor_with_page(db, columns, key.include, &key.query).await?;
    Ok(found.map(|(investor, page)| {
        if let Ok(loaders) = loader(ctx) {
            loaders.prime_page(key, page);
        }
        Investor(investor)
    }))
}
