//! `Investor`, its type enum, filter and creation input.

use async_graphql::{Context, Enum, InputObject, Object};

use super::policy::{authorize, granted};
use super::{
    connection::{Connection, Node, PageArgs, connection_complexity},
    cursor::{self, Scope},
    fund::{investments_of, total_committed},
    investment::Investment,
    scalars::{DateTime, Id, Money},
};
use crate::{
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

impl From<GqlInvestorType> for InvestorType {
    fn from(t: GqlInvestorType) -> Self {
        match t {
            GqlInvestorType::Individual => InvestorType::Individual,
            GqlInvestorType::Institution => InvestorType::Institution,
            GqlInvestorType::FamilyOffice => InvestorType::FamilyOffice,
        }
    }
}

/// An investor: a person or organisation committing capital to funds.
#[derive(Debug, Clone)]
pub struct Investor(pub investor::Model);

impl Node for Investor {
    fn cursor(&self, scope: Scope) -> String {
        cursor::id_cursor(scope, self.0.id)
    }
}

#[Object]
impl Investor {
    /// The investor's id (UUIDv7).
    async fn id(&self) -> Id {
        Id(self.0.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Kind of investor.
    async fn investor_type(&self) -> GqlInvestorType {
        self.0.investor_type.into()
    }

    /// Contact email, lower-cased. Null only when the caller may not see personal data (see
    /// access control).
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        // Without `pii:read` the field is null with a FORBIDDEN error; the rest of the response
        // stays.
        authorize(ctx, "Investor", "email")?;
        Ok(Some(&self.0.email))
    }

    /// When the investor was created; never changes.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the investor was last changed.
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
        authorize(ctx, "Investor", "investments")?;
        investments_of(
            ctx,
            Parent::Investor,
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

    /// Exact sum of amountUsd over all of this investor's investments ("0.00" when none).
    async fn total_committed_usd(&self, ctx: &Context<'_>) -> async_graphql::Result<Money> {
        authorize(ctx, "Investor", "totalCommittedUsd")?;
        total_committed(ctx, Parent::Investor, self.0.id).await
    }
}

/// Whether the caller may read investors' personal data (email).
pub fn may_read_email<T>(ctx: &async_graphql::ContextBase<'_, T>) -> bool {
    granted(ctx, crate::auth::Scope::PiiRead)
}

/// Which investors `investors` lists. Filters combine with AND.
#[derive(Debug, Clone, Default, InputObject)]
pub struct InvestorFilter {
    /// Only investors of this type.
    pub investor_type: Option<GqlInvestorType>,
    /// Only the investor with this email, matched case-insensitively.
    pub email: Option<String>,
}

impl From<InvestorFilter> for ServiceInvestorFilter {
    fn from(f: InvestorFilter) -> Self {
        ServiceInvestorFilter {
            investor_type: f.investor_type.map(Into::into),
            email: f.email,
        }
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
