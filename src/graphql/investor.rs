//! `Investor`: its fields, type enum, filter and creation input.

use async_graphql::{Enum, InputObject};

use super::{
    connection::Node,
    cursor::{self, Scope},
    fund::total_committed,
    investment::Investment,
    model::Access::{Needs, Open},
    scalars::{DateTime, Id, MoneyTotal},
};
use crate::{
    auth::Scope::{InvestmentsRead, PiiRead},
    domain,
    entity::investor::{self, InvestorType},
    error::AppError,
    service::{
        investment::Parent,
        investor::{InvestorFilter as ServiceInvestorFilter, NewInvestor},
    },
};

/// The kind of investor.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "InvestorType")]
pub enum GqlInvestorType {
    /// A natural person.
    Individual,
    /// A pension fund, endowment, bank or similar institution.
    Institution,
    /// A family office.
    FamilyOffice,
}

impl From<InvestorType> for GqlInvestorType {
    fn from(t: InvestorType) -> Self {
        match t {
            InvestorType::Individual => GqlInvestorType::Individual,
            InvestorType::Institution => GqlInvestorType::Institution,
            InvestorType::FamilyOffice => GqlInvestorType::FamilyOffice,
        }
    }
}

impl super::model::Leaf for GqlInvestorType {
    fn write_json(&self, out: &mut Vec<u8>) {
        super::model::write_enum(*self, out);
    }
}

impl From<GqlInvestorType> for InvestorType {
    fn from(t: GqlInvestorType) -> Self {
        match t {
            GqlInvestorType::Individual => InvestorType::Individual,
            GqlInvestorType::Institution => InvestorType::Institution,
            GqlInvestorType::FamilyOffice => InvestorType::FamilyOffice,
        }
    }
}

/// An investor, as the API shows it: the entity row (its GraphQL fields are declared below).
pub type Investor = investor::Model;

impl Node for Investor {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.id)
    }
}

crate::object! {
    /// An investor: a person or organisation committing capital to funds.
    Investor, "Investor";

    /// The investor's id (UUIDv7).
    column id("id"): Id, Open, investor::Column::Id, |i| Id(i.id);
    /// Display name.
    column name("name"): &str, Open, investor::Column::Name, |i| i.name.as_str();
    /// Kind of investor.
    column investor_type("investorType"): GqlInvestorType, Open, investor::Column::InvestorType,
        |i| i.investor_type.into();
    /// Contact email, lower-cased. Null only when the caller may not see personal data (see
    /// access control).
    column email("email"): Option<&str>, Needs(PiiRead), investor::Column::Email,
        |i| Some(i.email.as_str());
    /// When the investor was created; never changes.
    column created_at("createdAt"): DateTime, Open, investor::Column::CreatedAt,
        |i| DateTime(i.created_at);
    /// When the investor was last changed.
    column updated_at("updatedAt"): DateTime, Open, investor::Column::UpdatedAt,
        |i| DateTime(i.updated_at);
    /// Newest investment_date first; ties broken by id, newest first.
    investments investments("investments"): Investment, Needs(InvestmentsRead), Parent::Investor,
        |i| i.id;
    /// Exact sum of amountUsd over all of this investor's investments ("0.00" when none).
    loaded total_committed_usd("totalCommittedUsd"): MoneyTotal, Needs(InvestmentsRead),
        |ctx, i| total_committed(ctx, Parent::Investor, i.id).await;
}

/// Which investors `investors` lists. Filters combine with AND.
#[derive(Debug, Clone, Default, InputObject)]
pub struct InvestorFilter {
    /// Only investors of this type.
    pub investor_type: Option<GqlInvestorType>,
    /// Only the investor with this email, matched case-insensitively.
    pub email: Option<String>,
}

impl InvestorFilter {
    /// Checks the filter into a service filter: `filter.email` is normalised as stored emails
    /// are, at most the email length and without NUL.
    pub fn validate(self) -> Result<ServiceInvestorFilter, AppError> {
        let email = self
            .email
            .map(|text| {
                domain::check_filter_text(&text, domain::EMAIL_MAX_CHARS)
                    .map(|()| domain::normalize_email(&text))
                    .map_err(|m| AppError::bad_input("filter.email", m))
            })
            .transpose()?;
        Ok(ServiceInvestorFilter {
            investor_type: self.investor_type.map(Into::into),
            email,
        })
    }
}

/// A new investor.
#[derive(Debug, Clone, InputObject)]
pub struct CreateInvestorInput {
    /// Display name; trimmed, 1..=255 characters.
    pub name: String,
    /// Kind of investor.
    pub investor_type: GqlInvestorType,
    /// Contact email; trimmed, lower-cased, unique case-insensitively, at most 320 characters.
    pub email: String,
}

impl CreateInvestorInput {
    /// Checks every field into a service command.
    pub fn validate(self) -> Result<NewInvestor, AppError> {
        Ok(NewInvestor {
            name: domain::parse_name(&self.name)
                .map_err(|m| AppError::bad_input("input.name", m))?,
            investor_type: self.investor_type.into(),
            email: domain::parse_email(&self.email)
                .map_err(|m| AppError::bad_input("input.email", m))?,
        })
    }
}
