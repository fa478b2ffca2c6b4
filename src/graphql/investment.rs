//! `Investment` and its creation input.

use async_graphql::{Context, InputObject, Object};
use chrono::Utc;

use super::{
    context::loader,
    fund::Fund,
    investor::Investor,
    loader::{FundKey, InvestorKey},
    scalars::{Date, DateTime, Id, Money},
};
use crate::{domain, entity::investment, error::AppError, service::investment::NewInvestment};

/// A capital commitment of an investor to a fund.
#[derive(Debug, Clone)]
pub struct Investment(pub investment::Model);

#[Object]
impl Investment {
    /// The investment's id (UUIDv7).
    async fn id(&self) -> Id {
        Id(self.0.id)
    }

    /// The fund committed to.
    async fn fund_id(&self) -> Id {
        Id(self.0.fund_id)
    }

    /// The investor committing.
    async fn investor_id(&self) -> Id {
        Id(self.0.investor_id)
    }

    /// Committed amount in USD.
    async fn amount_usd(&self) -> Money {
        Money(self.0.amount_usd)
    }

    /// Date of the commitment.
    async fn investment_date(&self) -> Date {
        Date(self.0.investment_date)
    }

    /// When the investment was recorded; never changes.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// The fund committed to (batched across the page).
    async fn fund(&self, ctx: &Context<'_>) -> async_graphql::Result<Fund> {
        let fund = loader(ctx)?.load_one(FundKey(self.0.fund_id)).await?;
        // The foreign key guarantees the row; its absence is a bug, not a user error.
        fund.map(Fund).ok_or_else(|| {
            AppError::Internal(format!(
                "fund {} of investment {} missing",
                self.0.fund_id, self.0.id
            ))
            .into()
        })
    }

    /// The investor committing (batched across the page).
    async fn investor(&self, ctx: &Context<'_>) -> async_graphql::Result<Investor> {
        let investor = loader(ctx)?
            .load_one(InvestorKey(self.0.investor_id))
            .await?;
        investor.map(Investor).ok_or_else(|| {
            AppError::Internal(format!(
                "investor {} of investment {} missing",
                self.0.investor_id, self.0.id
            ))
            .into()
        })
    }
}

/// A new investment.
#[derive(Debug, Clone, InputObject)]
pub struct CreateInvestmentInput {
    /// The fund to commit to; it must exist and not be CLOSED.
    pub fund_id: Id,
    /// The investor committing; it must exist.
    pub investor_id: Id,
    /// Committed amount in USD, greater than 0.
    pub amount_usd: Money,
    /// Date of the commitment: from 1900-01-01 to one year after today (UTC).
    pub investment_date: Date,
}

impl CreateInvestmentInput {
    /// Checks every field into a service command.
    pub fn validate(self) -> Result<NewInvestment, AppError> {
        let today = Utc::now().date_naive();
        Ok(NewInvestment {
            fund_id: self.fund_id.0,
            investor_id: self.investor_id.0,
            amount_usd: domain::check_positive(self.amount_usd.0)
                .map_err(|m| AppError::bad_input("input.amountUsd", m))?,
            investment_date: domain::check_investment_date(self.investment_date.0, today)
                .map_err(|m| AppError::bad_input("input.investmentDate", m))?,
        })
    }
}
