//! The query root.
//!
//! Every root field carries its access rule as a guard (`guard = "Needs(..)"`): the rule sits
//! on the field it guards and is checked before the resolver runs, so a refusal never reveals
//! whether an id exists.

use async_graphql::{Context, Object};
use uuid::Uuid;

use super::{
    audit::AuditEvent,
    connection::{Connection, PageArgs, TotalCount, page_key},
    context::{db, limits, loader},
    cursor::{self, Scope},
    fast::One,
    fund::{Fund, FundFilter},
    investment::Investment,
    investor::{Investor, InvestorFilter},
    model::{Access::Needs, Answer, Declared, allows, authorize, selected_columns},
    scalars::Id,
};
use crate::{
    auth::Scope::{AuditRead, FundsRead, InvestmentsRead, InvestorsRead, PiiRead},
    db::{Db, rows::ColumnSet},
    error::AppError,
    service::{
        self,
        investment::{Include, InvestmentWith, PageQuery},
        page::Page,
    },
};

/// Read operations.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Oldest first (ids are UUIDv7, so id order is creation order).
    #[graphql(guard = "Needs(FundsRead)")]
    async fn funds(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
        #[graphql(desc = "Only funds matching every given field.")] filter: Option<FundFilter>,
    ) -> async_graphql::Result<Connection<Fund>> {
        let limits = limits(ctx)?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(limits.max_page_size, |c| cursor::decode_id(c, Scope::Funds))?;
        let filter = filter
            .unwrap_or_default()
            .validate(limits.max_filter_text_chars)?;
        let page = service::fund::list_funds(db(ctx)?, &filter, &window).await?;
        Ok(Connection::new(
            page,
            Scope::Funds,
            TotalCount::Funds(filter),
            |f| f,
        ))
    }

    /// A fund by id, or null when there is none.
    #[graphql(guard = "Needs(FundsRead)")]
    async fn fund(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fund's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Fund>>> {
        Ok(lookup::<Fund>(ctx, id.0).await?.map(One))
    }

    /// Oldest first (id order).
    #[graphql(guard = "Needs(InvestorsRead)")]
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
        if filter.as_ref().is_some_and(|f| f.email.is_some()) {
            // Filtering by email would let a caller without `pii:read` test whether an
            // address is a customer.
            authorize(ctx, Needs(PiiRead)).map_err(|e| match e {
                AppError::Forbidden { scope, .. } => AppError::Forbidden {
                    scope,
                    argument: Some("filter.email"),
                },
                other => other,
            })?;
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
        let filter = filter.unwrap_or_default().validate()?;
        let page = service::investor::list_investors(db(ctx)?, &filter, &window).await?;
        Ok(Connection::new(
            page,
            Scope::Investors,
            TotalCount::Investors(filter),
            |i| i,
        ))
    }

    /// An investor by id, or null when there is none.
    #[graphql(guard = "Needs(InvestorsRead)")]
    async fn investor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The investor's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Investor>>> {
        Ok(lookup::<Investor>(ctx, id.0).await?.map(One))
    }

    /// The audit trail, newest first: one event per successful mutation. Needs `audit:read`.
    #[graphql(guard = "Needs(AuditRead)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
        #[graphql(desc = "Start after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
        #[graphql(desc = "End before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<Connection<AuditEvent>> {
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(limits(ctx)?.max_page_size, |c| {
            cursor::decode_id(c, Scope::AuditEvents)
        })?;
        let page = service::audit::list_audit_events(db(ctx)?, &window).await?;
        Ok(Connection::new(
            page,
            Scope::AuditEvents,
            TotalCount::AuditEvents,
            |e| e,
        ))
    }

    /// An investment by id, or null when there is none.
    #[graphql(guard = "Needs(InvestmentsRead)")]
    async fn investment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The investment's id.")] id: Id,
    ) -> async_graphql::Result<Option<One<Investment>>> {
        Ok(service::investment::find_investment(db(ctx)?, id.0)
            .await?
            .map(|i| One(InvestmentWith::from(i))))
    }
}

/// A root lookup by id of a parent of investments (a fund, an investor).
pub trait Lookup: Declared {
    /// The row by id, with the columns of `columns`.
    fn find(
        db: &Db,
        id: Uuid,
        columns: ColumnSet,
    ) -> impl Future<Output = Result<Option<Self>, AppError>> + Send;

    /// The row by id with one page of its investments, in one statement.
    fn find_with_page(
        db: &Db,
        columns: ColumnSet,
        include: Include,
        query: &PageQuery,
    ) -> impl Future<Output = Result<Option<(Self, Page<InvestmentWith>)>, AppError>> + Send;
}

impl Lookup for Fund {
    async fn find(db: &Db, id: Uuid, columns: ColumnSet) -> Result<Option<Self>, AppError> {
        service::fund::find_fund(db, id, columns).await
    }

    async fn find_with_page(
        db: &Db,
        columns: ColumnSet,
        include: Include,
        query: &PageQuery,
    ) -> Result<Option<(Self, Page<InvestmentWith>)>, AppError> {
        service::investment::fund_with_page(db, columns, include, query).await
    }
}

impl Lookup for Investor {
    async fn find(db: &Db, id: Uuid, columns: ColumnSet) -> Result<Option<Self>, AppError> {
        service::investor::find_investor(db, id, columns).await
    }

    async fn find_with_page(
        db: &Db,
        columns: ColumnSet,
        include: Include,
        query: &PageQuery,
    ) -> Result<Option<(Self, Page<InvestmentWith>)>, AppError> {
        service::investment::investor_with_page(db, columns, include, query).await
    }
}

/// Loads one `T` for a root lookup (the current field of `ctx`), with only the columns its
/// selection reads. When the selection holds its investments connection exactly once, with
/// arguments that are valid, and the caller may read it, the page comes in the same statement
/// and is handed to the request's loader, so the connection field does not fetch it again;
/// anything else is left to the connection field itself (which then reports what is wrong).
async fn lookup<T: Lookup>(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<T>> {
    let db = db(ctx)?;
    let columns = selected_columns::<T>(ctx);
    let Some(key) = root_page::<T>(ctx, id) else {
        return Ok(T::find(db, id, columns).await?);
    };
    let found = T::find_with_page(db, columns, key.include, &key.query).await?;
    Ok(found.map(|(row, page)| {
        if let Ok(loaders) = loader(ctx) {
            loaders.prime_page(key, page);
        }
        row
    }))
}

/// The page that [`lookup`] may fetch with the parent's row (see there).
fn root_page<T: Declared>(ctx: &Context<'_>, id: Uuid) -> Option<super::loader::PageKey> {
    let selection = ctx.with_selection_set(&ctx.item.node.selection_set);
    let mut fields = Vec::new();
    super::model::selected_fields(
        &selection,
        &ctx.item.node.selection_set.node,
        T::NAME,
        &mut fields,
    );
    let mut connections = fields.iter().filter_map(|field| {
        let def = T::field(field.node.name.node.as_str())?;
        match &def.answer {
            Answer::Investments(investments) => Some((*field, def, investments.parent)),
            _ => None,
        }
    });
    let (field, def, parent) = connections.next()?;
    if connections.next().is_some() || !field.node.directives.is_empty() || !allows(ctx, def.access)
    {
        return None;
    }
    // The field's arguments, as its resolver will read them.
    let field_ctx = ctx.with_field(field);
    let size = |name: &str| {
        field_ctx
            .param_value::<Option<i32>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    let text = |name: &str| {
        field_ctx
            .param_value::<Option<String>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    let args = PageArgs {
        first: size("first")?,
        after: text("after")?,
        last: size("last")?,
        before: text("before")?,
    };
    page_key(&field_ctx, parent, id, &args).ok()
}
