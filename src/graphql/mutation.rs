//! The mutation root: each field validates its input, then calls one service function that
//! owns its transaction.

use async_graphql::{Context, Object};

use super::{
    context::{actor, db},
    fund::{CreateFundInput, Fund, UpdateFundInput},
    investment::{CreateInvestmentInput, Investment},
    investor::{CreateInvestorInput, Investor},
};
use crate::service;

use super::policy::authorize;

/// Write operations.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a fund.
    async fn create_fund(
        &self,
        ctx: &Context<'_>,
        input: CreateFundInput,
    ) -> async_graphql::Result<Fund> {
        authorize(ctx, "Mutation", "createFund")?;
        let new = input.validate()?;
        Ok(Fund(
            service::fund::create_fund(db(ctx)?, actor(ctx)?, new).await?,
        ))
    }

    /// Changes the given fields of a fund; absent fields keep their value. The status may
    /// only move forward (FUNDRAISING → INVESTING → CLOSED).
    async fn update_fund(
        &self,
        ctx: &Context<'_>,
        input: UpdateFundInput,
    ) -> async_graphql::Result<Fund> {
        authorize(ctx, "Mutation", "updateFund")?;
        let changes = input.validate()?;
        Ok(Fund(
            service::fund::update_fund(db(ctx)?, actor(ctx)?, changes).await?,
        ))
    }

    /// Creates an investor; the email must not be taken (case-insensitively).
    async fn create_investor(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestorInput,
    ) -> async_graphql::Result<Investor> {
        authorize(ctx, "Mutation", "createInvestor")?;
        let new = input.validate()?;
        Ok(Investor(
            service::investor::create_investor(db(ctx)?, actor(ctx)?, new).await?,
        ))
    }

    /// Records an investment of an existing investor into an existing fund that is not CLOSED.
    async fn create_investment(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestmentInput,
    ) -> async_graphql::Result<Investment> {
        authorize(ctx, "Mutation", "createInvestment")?;
        let new = input.validate()?;
        Ok(Investment::from(
            service::investment::create_investment(db(ctx)?, actor(ctx)?, new).await?,
        ))
    }
}
