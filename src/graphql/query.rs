//! The query root.

use async_graphql::{Context, Object};

use super::{
    audit::AuditEvent,
    connection::{Connection, PageArgs, TotalCount, connection_complexity},
    context::{db, limits},
    cursor::{self, Scope},
    fast::One,
    fund::{Fund, FundFilter, fund_by_id, investor_by_id},
    investment::Investment,
    investor::{Investor, InvestorFilter},
    scalars::Id,
};
use crate::service;

use super::policy::{authorize, authorize_argument};

/// Read operations.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Oldest first (ids are UUIDv7, so id order is creation order).
    #[graphql(complexity = "connection_complexity(first, last, child_complexity)")]
    async fn funds(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
        #[graphql(desc = "Only funds matching every given field.")] filter: Option<FundFilter>,
    ) -> async_graphql::Result<Connection<Fund>> {
        authorize(ctx, "Query", "funds")?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(limits(ctx)?.max_page_size, |c| {
            cursor::decode_id(c, Scope::Funds)
        })?;
        let filter: service::fund::FundFilter = filter.unwrap_or_default().into();
        let page = service::fund::list_funds(db(ctx)?, &filter, &window).await?;
        Ok(Connection::new(
            page,
            Scope::Funds,
            TotalCount::Funds(filter),
            Fund,
        ))
    }

    /// A fund by id, or null when there is none.
    async fn fund(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fund's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Fund>>> {
        authorize(ctx, "Query", "fund")?;
        Ok(fund_by_id(ctx, id).await?.map(One))
    }

    /// Oldest first (id order).
    #[graphql(complexity = "connection_complexity(first, last, child_complexity)")]
    async fn investors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
        #[graphql(desc = "Only investors matching every given field.")] filter: Option<
            InvestorFilter,
        >,
    ) -> async_graphql::Result<Connection<Investor>> {
        authorize(ctx, "Query", "investors")?;
        if filter.as_ref().is_some_and(|f| f.email.is_some()) {
            authorize_argument(ctx, "Query", "investors", "filter.email")?;
        }
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(limits(ctx)?.max_page_size, |c| {
            cursor::decode_id(c, Scope::Investors)
        })?;
        let filter: service::investor::InvestorFilter = filter.unwrap_or_default().into();
        let page = service::investor::list_investors(&db(ctx)?.conn, &filter, &window).await?;
        Ok(Connection::new(
            page,
            Scope::Investors,
            TotalCount::Investors(filter),
            Investor,
        ))
    }

    /// An investor by id, or null when there is none.
    async fn investor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The investor's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Investor>>> {
        authorize(ctx, "Query", "investor")?;
        Ok(investor_by_id(ctx, id).await?.map(One))
    }

    /// The audit trail, newest first: one event per successful mutation. Needs `audit:read`.
    #[graphql(complexity = "connection_complexity(first, last, child_complexity)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<Connection<AuditEvent>> {
        authorize(ctx, "Query", "auditEvents")?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(limits(ctx)?.max_page_size, |c| {
            cursor::decode_id(c, Scope::AuditEvents)
        })?;
        let page = service::audit::list_audit_events(&db(ctx)?.conn, &window).await?;
        Ok(Connection::new(
            page,
            Scope::AuditEvents,
            TotalCount::AuditEvents,
            AuditEvent,
        ))
    }

    /// An investment by id, or null when there is none.
    async fn investment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The investment's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Investment>>> {
        authorize(ctx, "Query", "investment")?;
        Ok(service::investment::find_investment(&db(ctx)?.conn, id.0)
            .await?
            .map(|i| One(Investment::from(i))))
    }
}
