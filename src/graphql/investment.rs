//! `Investment` and its creation input.

use std::borrow::Cow;

use async_graphql::{Context, InputObject, Object};
use chrono::Utc;

use super::policy::authorize;
use super::{
    connection::Node,
    context::loader,
    cursor::{self, Scope},
    fund::Fund,
    investor::Investor,
    loader::{FundKey, InvestorKey},
    scalars::{Date, DateTime, Id, Money},
};
use crate::{
    domain,
    entity::investment,
    error::AppError,
    service::investment::{InvestmentWith, NewInvestment},
};

/// A capital commitment of an investor to a fund.
#[derive(Debug, Clone)]
pub struct Investment {
    model: investment::Model,
    /// The investor, when it came with the page.
    investor: Option<Investor>,
    /// The fund, when it came with the page.
    fund: Option<Fund>,
}

impl Investment {
    /// The investment row.
    pub fn model(&self) -> &investment::Model {
        &self.model
    }

    /// The investor, when it came with the page.
    pub fn embedded_investor(&self) -> Option<&Investor> {
        self.investor.as_ref()
    }

    /// The fund, when it came with the page.
    pub fn embedded_fund(&self) -> Option<&Fund> {
        self.fund.as_ref()
    }
}

impl Node for Investment {
    fn cursor(&self, scope: Scope) -> String {
        match scope {
            Scope::Investments(parent, parent_id) => cursor::investment_cursor(
                parent,
                parent_id,
                (self.model.investment_date, self.model.id),
            ),
            // Investments are only listed under a parent.
            other => cursor::id_cursor(other, self.model.id),
        }
    }
}

impl From<investment::Model> for Investment {
    fn from(model: investment::Model) -> Self {
        Investment {
            model,
            investor: None,
            fund: None,
        }
    }
}

impl From<InvestmentWith> for Investment {
    fn from(row: InvestmentWith) -> Self {
        Investment {
            model: row.investment,
            investor: row.investor.map(Investor),
            fund: row.fund.map(Fund),
        }
    }
}

#[Object]
impl Investment {
    /// The investment's id (UUIDv7).
    async fn id(&self) -> Id {
        Id(self.model.id)
    }

    /// The fund committed to.
    async fn fund_id(&self) -> Id {
        Id(self.model.fund_id)
    }

    /// The investor committing.
    async fn investor_id(&self) -> Id {
        Id(self.model.investor_id)
    }

    /// Committed amount in USD.
    async fn amount_usd(&self) -> Money {
        Money(self.model.amount_usd)
    }

    /// Date of the commitment.
    async fn investment_date(&self) -> Date {
        Date(self.model.investment_date)
    }

    /// When the investment was recorded; never changes.
    async fn created_at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }

    /// The fund committed to (fetched with the page, or batched across it).
    async fn fund(&self, ctx: &Context<'_>) -> async_graphql::Result<Cow<'_, Fund>> {
        authorize(ctx, "Investment", "fund")?;
        if let Some(fund) = &self.fund {
            return Ok(Cow::Borrowed(fund));
        }
        let fund = loader(ctx)?.load_one(FundKey(self.model.fund_id)).await?;
        // The foreign key guarantees the row; its absence is a bug, not a user error.
        fund.map(|f| Cow::Owned(Fund(f))).ok_or_else(|| {
            AppError::Internal(format!(
                "fund {} of investment {} missing",
                self.model.fund_id, self.model.id
            ))
            .into()
        })
    }

    /// The investor committing (fetched with the page, or batched across it).
    async fn investor(&self, ctx: &Context<'_>) -> async_graphql::Result<Cow<'_, Investor>> {
        authorize(ctx, "Investment", "investor")?;
        if let Some(investor) = &self.investor {
            return Ok(Cow::Borrowed(investor));
        }
        let investor = loader(ctx)?
            .load_one(InvestorKey(self.model.investor_id))
            .await?;
        investor.map(|i| Cow::Owned(Investor(i))).ok_or_else(|| {
            AppError::Internal(format!(
                "investor {} of investment {} missing",
                self.model.investor_id, self.model.id
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
