//! The mutation root: each field validates its input, then calls one service function that
//! owns its transaction. Each carries its access rule as a guard, checked before it runs.

use async_graphql::{Context, Object};

use super::{
    context::{actor, db},
    fund::{CreateFundInput, Fund, UpdateFundInput},
    investment::{CreateInvestmentInput, Investment},
    investor::{CreateInvestorInput, Investor},
    model::Access::Needs,
};
use crate::{
    auth::Scope::{FundsWrite, InvestmentsWrite, InvestorsWrite},
    service::{self, investment::InvestmentWith},
};

/// Write operations.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a fund.
    #[graphql(guard = "Needs(FundsWrite)")]
    async fn create_fund(
        &self,
        ctx: &Context<'_>,
        input: CreateFundInput,
    ) -> async_graphql::Result<Fund> {
        let new = input.validate()?;
        Ok(service::fund::create_fund(db(ctx)?, actor(ctx)?, new).await?)
    }

    /// Changes the given fields of a fund; absent fields keep their value. The status may
    /// only move forward (FUNDRAISING → INVESTING → CLOSED).
    #[graphql(guard = "Needs(FundsWrite)")]
    async fn update_fund(
        &self,
        ctx: &Context<'_>,
        input: UpdateFundInput,
    ) -> async_graphql::Result<Fund> {
        let changes = input.validate()?;
        Ok(service::fund::update_fund(db(ctx)?, actor(ctx)?, changes).await?)
    }

    /// Creates an investor; the email must not be taken (case-insensitively).
    #[graphql(guard = "Needs(InvestorsWrite)")]
    async fn create_investor(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestorInput,
    ) -> async_graphql::Result<Investor> {
        let new = input.validate()?;
        Ok(service::investor::create_investor(db(ctx)?, actor(ctx)?, new).await?)
    }

    /// Records an investment of an existing investor into an existing fund that is not CLOSED.
    #[graphql(guard = "Needs(InvestmentsWrite)")]
    async fn create_investment(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestmentInput,
    ) -> async_graphql::Result<Investment> {
        let new = input.validate()?;
        Ok(InvestmentWith::from(
            service::investment::create_investment(db(ctx)?, actor(ctx)?, new).await?,
        ))
    }
}
