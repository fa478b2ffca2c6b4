//! `Fund`: its fields, status enum, filter and mutation inputs.

use async_graphql::{Context, Enum, InputObject, MaybeUndefined};
use chrono::Utc;

use super::{
    connection::Node,
    context::loader,
    cursor::{self, Scope},
    investment::Investment,
    loader::TotalsKey,
    model::Access::{Needs, Open},
    scalars::{DateTime, Id, Money, MoneyTotal},
};
use crate::{
    auth::Scope::InvestmentsRead,
    domain,
    entity::fund::{self, FundStatus},
    error::AppError,
    service::{
        fund::{FundChanges, FundFilter as ServiceFundFilter, NewFund},
        investment::{Aggregate, Parent, Totals},
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

impl super::model::Leaf for GqlFundStatus {
    fn write_json(&self, out: &mut Vec<u8>) {
        super::model::write_enum(*self, out);
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

/// A fund, as the API shows it: the entity row (its GraphQL fields are declared below).
pub type Fund = fund::Model;

impl Node for Fund {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.id)
    }
}

crate::object! {
    /// A private-markets fund.
    Fund, "Fund";

    /// The fund's id (UUIDv7).
    column id("id"): Id, Open, fund::Column::Id, |f| Id(f.id);
    /// Display name.
    column name("name"): &str, Open, fund::Column::Name, |f| f.name.as_str();
    /// Year the fund was established.
    column vintage_year("vintageYear"): i32, Open, fund::Column::VintageYear, |f| f.vintage_year;
    /// Target size in USD.
    column target_size_usd("targetSizeUsd"): Money, Open, fund::Column::TargetSizeUsd,
        |f| Money(f.target_size_usd);
    /// Lifecycle stage.
    column status("status"): GqlFundStatus, Open, fund::Column::Status, |f| f.status.into();
    /// When the fund was created; never changes.
    column created_at("createdAt"): DateTime, Open, fund::Column::CreatedAt, |f| DateTime(f.created_at);
    /// When the fund was last changed.
    column updated_at("updatedAt"): DateTime, Open, fund::Column::UpdatedAt, |f| DateTime(f.updated_at);
    /// Newest investment_date first; ties broken by id, newest first.
    investments investments("investments"): Investment, Needs(InvestmentsRead), Parent::Fund, |f| f.id;
    /// Exact sum of amountUsd over all of this fund's investments ("0.00" when none).
    loaded total_committed_usd("totalCommittedUsd"): MoneyTotal, Needs(InvestmentsRead),
        |ctx, f| total_committed(ctx, Parent::Fund, f.id).await;
    /// Number of distinct investors with at least one investment in this fund.
    loaded investor_count("investorCount"): i32, Needs(InvestmentsRead),
        |ctx, f| count_of(ctx, Parent::Fund, Aggregate::DistinctInvestors, f.id).await;
}

/// A parent's kept totals, through the batched loader (one lookup answers every aggregate of
/// the parent).
async fn totals_of(
    ctx: &Context<'_>,
    parent: Parent,
    id: uuid::Uuid,
) -> async_graphql::Result<Totals> {
    Ok(loader(ctx)?
        .load_one(TotalsKey { parent, id })
        .await?
        .unwrap_or_else(Totals::none))
}

/// A parent's exact committed total.
pub(super) async fn total_committed(
    ctx: &Context<'_>,
    parent: Parent,
    id: uuid::Uuid,
) -> async_graphql::Result<MoneyTotal> {
    Ok(MoneyTotal(totals_of(ctx, parent, id).await?.committed_usd))
}

/// A per-parent count (as a GraphQL `Int`, capped at its maximum).
pub(super) async fn count_of(
    ctx: &Context<'_>,
    parent: Parent,
    aggregate: Aggregate,
    id: uuid::Uuid,
) -> async_graphql::Result<i32> {
    let n = totals_of(ctx, parent, id).await?.count(aggregate);
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
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

impl FundFilter {
    /// Checks the filter's text into a service filter (`filter.nameContains` is at most
    /// `max_text` characters and holds no NUL, which PostgreSQL text cannot hold).
    pub fn validate(self, max_text: usize) -> Result<ServiceFundFilter, AppError> {
        let name_contains = self
            .name_contains
            .map(|text| {
                domain::check_filter_text(&text, max_text)
                    .map(|()| text)
                    .map_err(|m| AppError::bad_input("filter.nameContains", m))
            })
            .transpose()?;
        Ok(ServiceFundFilter {
            status: self.status.map(Into::into),
            vintage_year: self.vintage_year,
            name_contains,
        })
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
