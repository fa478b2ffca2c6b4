//! `Investment`: its fields and creation input.

use async_graphql::InputObject;
use chrono::Utc;

use super::{
    connection::Node,
    cursor::{self, Scope},
    fund::Fund,
    investor::Investor,
    loader::{FundKey, InvestorKey},
    model::Access::{Needs, Open},
    scalars::{Date, DateTime, Id, Money},
};
use crate::{
    auth::Scope::{FundsRead, InvestorsRead},
    domain,
    entity::investment,
    error::AppError,
    service::investment::{InvestmentWith, NewInvestment, Relation},
};

/// An investment, as the API shows it: the row with its fund and investor when they came with
/// its page (its GraphQL fields are declared below).
pub type Investment = InvestmentWith;

impl Node for Investment {
    fn cursor(&self, scope: Scope) -> String {
        let row = &self.investment;
        match scope {
            Scope::Investments(parent, parent_id) => {
                cursor::investment_cursor(parent, parent_id, (row.investment_date, row.id))
            }
            // Investments are only listed under a parent.
            other => cursor::id_cursor(other, row.id),
        }
    }
}

crate::object! {
    /// A capital commitment of an investor to a fund.
    Investment, "Investment";

    /// The investment's id (UUIDv7).
    column id("id"): Id, Open, investment::Column::Id, |i| Id(i.investment.id);
    /// The fund committed to.
    column fund_id("fundId"): Id, Open, investment::Column::FundId, |i| Id(i.investment.fund_id);
    /// The investor committing.
    column investor_id("investorId"): Id, Open, investment::Column::InvestorId,
        |i| Id(i.investment.investor_id);
    /// Committed amount in USD.
    column amount_usd("amountUsd"): Money, Open, investment::Column::AmountUsd,
        |i| Money(i.investment.amount_usd);
    /// Date of the commitment.
    column investment_date("investmentDate"): Date, Open, investment::Column::InvestmentDate,
        |i| Date(i.investment.investment_date);
    /// When the investment was recorded; never changes.
    column created_at("createdAt"): DateTime, Open, investment::Column::CreatedAt,
        |i| DateTime(i.investment.created_at);
    /// The fund committed to (fetched with the page, or batched across it).
    related fund("fund"): Fund, Needs(FundsRead), Relation::Fund,
        |i| i.fund.as_ref(), |k| FundKey(k.investment.fund_id);
    /// The investor committing (fetched with the page, or batched across it).
    related investor("investor"): Investor, Needs(InvestorsRead), Relation::Investor,
        |i| i.investor.as_ref(), |k| InvestorKey(k.investment.investor_id);
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
