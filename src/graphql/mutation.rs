//! The mutation root: each field validates its input, then calls one service function that
//! owns its transaction. Each carries its access rule as a guard, checked before it runs.
//!
//! Under an `Idempotency-Key`, a field that an earlier attempt already committed is answered
//! from the recorded id (the row read back) instead of running again
//! ([`crate::service::idempotency`]).

use async_graphql::{Context, Object};

use super::{
    context::{db, mutation_actor},
    fund::{CreateFundInput, Fund, UpdateFundInput},
    investment::{CreateInvestmentInput, Investment},
    investor::{CreateInvestorInput, Investor},
    model::Access::Needs,
};
use crate::{
    auth::Scope::{FundsWrite, InvestmentsWrite, InvestorsWrite},
    db::rows::ColumnSet,
    error::AppError,
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
        let (actor, recorded) = mutation_actor(ctx)?;
        if let Some(id) = recorded {
            return Ok(recorded_row(
                service::fund::find_fund(db(ctx)?, id, ColumnSet::ALL).await?,
            )?);
        }
        Ok(service::fund::create_fund(db(ctx)?, &actor, new).await?)
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
        let (actor, recorded) = mutation_actor(ctx)?;
        if let Some(id) = recorded {
            return Ok(recorded_row(
                service::fund::find_fund(db(ctx)?, id, ColumnSet::ALL).await?,
            )?);
        }
        Ok(service::fund::update_fund(db(ctx)?, &actor, changes).await?)
    }

    /// Creates an investor; the email must not be taken (case-insensitively).
    #[graphql(guard = "Needs(InvestorsWrite)")]
    async fn create_investor(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestorInput,
    ) -> async_graphql::Result<Investor> {
        let new = input.validate()?;
        let (actor, recorded) = mutation_actor(ctx)?;
        if let Some(id) = recorded {
            return Ok(recorded_row(
                service::investor::find_investor(db(ctx)?, id, ColumnSet::ALL).await?,
            )?);
        }
        Ok(service::investor::create_investor(db(ctx)?, &actor, new).await?)
    }

    /// Records an investment of an existing investor into an existing fund that is not CLOSED.
    #[graphql(guard = "Needs(InvestmentsWrite)")]
    async fn create_investment(
        &self,
        ctx: &Context<'_>,
        input: CreateInvestmentInput,
    ) -> async_graphql::Result<Investment> {
        let new = input.validate()?;
        let (actor, recorded) = mutation_actor(ctx)?;
        if let Some(id) = recorded {
            let row = service::investment::find_investment(db(ctx)?, id).await?;
            return Ok(InvestmentWith::from(recorded_row(row)?));
        }
        Ok(InvestmentWith::from(
            service::investment::create_investment(db(ctx)?, &actor, new).await?,
        ))
    }
}

/// The row an earlier attempt committed (rows are never deleted, so it is there).
fn recorded_row<T>(row: Option<T>) -> Result<T, AppError> {
    row.ok_or_else(|| AppError::Internal("a row recorded under an idempotency key is gone".into()))
}
