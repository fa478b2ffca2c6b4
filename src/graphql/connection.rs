//! Relay cursor connections: `edges`, `nodes`, `pageInfo` and a `totalCount` computed only
//! when selected.

use std::sync::Arc;

use async_graphql::{Context, Object, OutputType, SimpleObject};
use uuid::Uuid;

use super::{
    audit::AuditEvent,
    context::{db, limits, loader},
    cursor::{self, CursorError, Scope},
    fast::NodeList,
    fund::{Fund, count_of},
    investment::Investment,
    investor::Investor,
    loader::PageKey,
    model::{self, Declared},
};
use crate::{
    error::AppError,
    service::{
        self,
        fund::FundFilter,
        investment::{Aggregate, PageQuery, Parent},
        investor::InvestorFilter,
        page::{Direction, Page, PageWindow},
    },
};

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// Relay page information.
#[derive(Debug, Clone, Default, SimpleObject)]
pub struct PageInfo {
    /// Whether rows follow this page. Paging backward, true when `before` was given.
    pub has_next_page: bool,
    /// Whether rows precede this page. Paging forward, true when `after` was given.
    pub has_previous_page: bool,
    /// Cursor of the first edge; null when the page is empty.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge; null when the page is empty.
    pub end_cursor: Option<String>,
}

/// Where `totalCount` comes from when it is selected.
#[derive(Debug, Clone)]
pub enum TotalCount {
    /// Funds matching a filter.
    Funds(FundFilter),
    /// Investors matching a filter.
    Investors(InvestorFilter),
    /// A parent's investments (batched across parents).
    Investments(Parent, Uuid),
    /// The audit trail.
    AuditEvents,
    /// Already known (loaded side by side with the page).
    Known(i32),
}

/// A node of a connection: it knows its own position (cursor) in its list.
pub trait Node: OutputType + Clone {
    /// The cursor of this node in the list `scope`.
    fn cursor(&self, scope: Scope) -> String;
}

/// An edge: a node and its cursor.
#[derive(Debug, Clone)]
pub struct Edge<N> {
    cursor: String,
    node: N,
}

#[Object(
    concrete(name = "FundEdge", params(Fund)),
    concrete(name = "InvestorEdge", params(Investor)),
    concrete(name = "InvestmentEdge", params(Investment)),
    concrete(name = "AuditEventEdge", params(AuditEvent))
)]
impl<N: OutputType + Clone> Edge<N> {
    /// Opaque position of this node; pass it as `after` or `before` to page from here.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The node.
    async fn node(&self) -> &N {
        &self.node
    }
}

/// One page of a list. Cursors are computed only when selected.
#[derive(Debug, Clone)]
pub struct Connection<N> {
    nodes: Vec<N>,
    has_next_page: bool,
    has_previous_page: bool,
    scope: Scope,
    total: TotalCount,
}

impl<N: Node> Connection<N> {
    /// Builds a connection from a page of nodes of the list `scope`.
    pub fn new<T>(page: Page<T>, scope: Scope, total: TotalCount, node: impl Fn(T) -> N) -> Self {
        Connection {
            nodes: page.items.into_iter().map(node).collect(),
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            scope,
            total,
        }
    }
}

#[Object(
    concrete(name = "FundConnection", params(Fund)),
    concrete(name = "InvestorConnection", params(Investor)),
    concrete(name = "InvestmentConnection", params(Investment)),
    concrete(name = "AuditEventConnection", params(AuditEvent))
)]
impl<N: Node + Declared + Sync> Connection<N>
where
    Edge<N>: OutputType,
{
    /// The page's edges (node with cursor).
    async fn edges(&self) -> Vec<Edge<N>> {
        self.nodes
            .iter()
            .map(|n| Edge {
                cursor: n.cursor(self.scope),
                node: n.clone(),
            })
            .collect()
    }

    /// The page's nodes, without cursors.
    async fn nodes(&self) -> NodeList<'_, N> {
        NodeList(&self.nodes)
    }

    /// Paging state of this page.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            start_cursor: self.nodes.first().map(|n| n.cursor(self.scope)),
            end_cursor: self.nodes.last().map(|n| n.cursor(self.scope)),
        }
    }

    /// Number of rows matching the filter, ignoring paging. Computed only when selected.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let count = match &self.total {
            TotalCount::Funds(filter) => service::fund::count_funds(db(ctx)?, filter).await?,
            TotalCount::Investors(filter) => {
                service::investor::count_investors(db(ctx)?, filter).await?
            }
            TotalCount::AuditEvents => service::audit::count_audit_events(db(ctx)?).await?,
            TotalCount::Investments(parent, id) => {
                return count_of(ctx, *parent, Aggregate::Count, *id).await;
            }
            TotalCount::Known(n) => return Ok(*n),
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }
}

/// The Relay arguments of a connection field.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    /// Rows from the start.
    pub first: Option<i32>,
    /// Start after this cursor.
    pub after: Option<String>,
    /// Rows from the end.
    pub last: Option<i32>,
    /// End before this cursor.
    pub before: Option<String>,
}

impl PageArgs {
    /// Checks the arguments against the contract and decodes the cursors.
    pub fn window<K>(
        &self,
        max_page_size: u32,
        decode: impl Fn(&str) -> Result<K, CursorError>,
    ) -> Result<PageWindow<K>, AppError> {
        let size = |field: &str, value: i32| {
            u32::try_from(value)
                .ok()
                .filter(|v| *v <= max_page_size)
                .ok_or_else(|| {
                    AppError::bad_input(
                        field,
                        format!("must be between 0 and {max_page_size}, got {value}"),
                    )
                })
        };
        let (direction, limit) = match (self.first, self.last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input(
                    "last",
                    "give either first or last, not both",
                ));
            }
            (Some(first), None) => (Direction::Forward, size("first", first)?),
            (None, Some(last)) => (Direction::Backward, size("last", last)?),
            (None, None) => (Direction::Forward, DEFAULT_PAGE_SIZE.min(max_page_size)),
        };
        let cursor = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|c| decode(c).map_err(|e| AppError::bad_input(field, e.message())))
                .transpose()
        };
        Ok(PageWindow {
            direction,
            limit,
            after: cursor("after", &self.after)?,
            before: cursor("before", &self.before)?,
            probe: true,
        })
    }
}

/// A parent's investments page, through the batched loader (or fetched already with the
/// parent's row, see [`super::query`]). When the client selects each investment's investor or
/// fund, they are fetched in the page's own statement.
pub async fn investments_of(
    ctx: &Context<'_>,
    parent: Parent,
    parent_id: Uuid,
    args: PageArgs,
) -> async_graphql::Result<Connection<Investment>> {
    let key = page_key(ctx, parent, parent_id, &args)?;
    // `totalCount` is asked of the loader together with the page (so it joins the batch of the
    // parents' other aggregates instead of waiting for the page), and the page only when
    // something reads it.
    let selection = ctx.look_ahead();
    let wants_page = ["nodes", "edges", "pageInfo"]
        .iter()
        .any(|name| selection.field(name).exists());
    let wants_total = selection.field("totalCount").exists();
    let page = async {
        if !wants_page {
            return Ok(Page::default());
        }
        Ok::<_, async_graphql::Error>(
            loader(ctx)?
                .load_page(key)
                .await?
                // Usually the only reference left by now, so the rows move instead of being
                // copied.
                .map(|page| Arc::try_unwrap(page).unwrap_or_else(|shared| (*shared).clone()))
                .unwrap_or_default(),
        )
    };
    let total = async {
        if wants_total {
            count_of(ctx, parent, Aggregate::Count, parent_id)
                .await
                .map(TotalCount::Known)
        } else {
            Ok(TotalCount::Investments(parent, parent_id))
        }
    };
    let (page, total) = futures_util::future::join(page, total).await;
    Ok(Connection::new(
        page?,
        Scope::Investments(parent, parent_id),
        total?,
        |row| row,
    ))
}

/// The loader key of a parent's investments page, for the connection field of `ctx` (the
/// current field): its window, and the related rows its selection reads.
pub fn page_key(
    ctx: &Context<'_>,
    parent: Parent,
    parent_id: Uuid,
    args: &PageArgs,
) -> Result<PageKey, AppError> {
    let max_page_size = limits(ctx)
        .map_err(|_| AppError::Internal("no limits in the schema data".to_owned()))?
        .max_page_size;
    let mut window = args.window(max_page_size, |c| {
        cursor::decode_investment(c, parent, parent_id)
    })?;
    let set = &ctx.item.node.selection_set.node;
    let selection = ctx.with_selection_set(&ctx.item.node.selection_set);
    window.probe = model::selects(&selection, set, "InvestmentConnection", "pageInfo");
    Ok(PageKey {
        parent,
        include: model::page_include::<Investment>(&selection, set),
        query: PageQuery { parent_id, window },
    })
}

/// Complexity of a connection field: its page size times the cost of what is selected in it,
/// so a fan-out of 100 × 100 × … is refused before it runs.
pub fn connection_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first
        .or(last)
        .map(|n| usize::try_from(n).unwrap_or(0))
        .unwrap_or(DEFAULT_PAGE_SIZE as usize);
    1usize.saturating_add(size.max(1).saturating_mul(child))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(first: Option<i32>, last: Option<i32>) -> PageArgs {
        PageArgs {
            first,
            last,
            ..PageArgs::default()
        }
    }

    fn no_cursor(_: &str) -> Result<(), CursorError> {
        Err(CursorError::Malformed)
    }

    fn field_of(r: Result<PageWindow<()>, AppError>) -> Option<String> {
        r.err().and_then(|e| e.field().map(str::to_owned))
    }

    #[test]
    fn page_sizes_run_from_zero_to_the_maximum() {
        assert!(args(Some(0), None).window(100, no_cursor).is_ok());
        assert!(args(Some(100), None).window(100, no_cursor).is_ok());
        assert_eq!(
            field_of(args(Some(101), None).window(100, no_cursor)),
            Some("first".into())
        );
        assert_eq!(
            field_of(args(None, Some(-1)).window(100, no_cursor)),
            Some("last".into())
        );
        assert_eq!(
            field_of(args(Some(1), Some(1)).window(100, no_cursor)),
            Some("last".into())
        );
    }

    #[test]
    fn no_size_means_the_first_twenty() {
        let w = args(None, None).window(100, no_cursor).ok();
        assert_eq!(
            w.map(|w| (w.direction, w.limit)),
            Some((Direction::Forward, 20))
        );
    }

    #[test]
    fn complexity_multiplies_by_the_page_size() {
        assert_eq!(connection_complexity(Some(10), None, 5), 51);
        assert_eq!(connection_complexity(None, Some(0), 5), 6);
        assert_eq!(connection_complexity(None, None, 1), 21);
    }
}
