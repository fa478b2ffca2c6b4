//! A fast path for lists of plain objects (and single objects looked up by id).
//!
//! async-graphql resolves every field of every object through a boxed future, a context clone
//! and a result map insertion; on a page of 500 investments with their investors that is most
//! of the request's cost. When every field a list item selects is a value already in memory
//! (scalars, `__typename`, and related rows fetched with the page), the item's response is
//! built directly from the selection set here. The items of a list of funds or investors may
//! also select their `investments` connection (`nodes`, `edges`, `pageInfo`): every item's
//! page is then loaded in one loader batch, as the items' resolvers would load them, and
//! written the same way. As soon as any item selects something else (`totalCount`, an
//! aggregate, a cursor argument, a field behind a permission the caller lacks, a directive
//! other than `@skip`/`@include`, a field selected twice under one name), the whole list falls
//! back to async-graphql's own resolution, so the answer is the same either way (a test
//! compares the two paths' bytes on many documents).

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use crate::{
    auth::Scope,
    domain,
    service::{
        investment::{Include, InvestmentKey, PageQuery, Parent},
        page::{Page, PageWindow},
    },
};
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
    parser::types::{Field, Selection, SelectionSet},
    registry,
    resolver_utils::{EnumType, resolve_list},
};

use super::{
    connection::Node,
    cursor::Scope as ListScope,
    fund::{Fund, GqlFundStatus},
    investment::Investment,
    investor::{GqlInvestorType, Investor},
    loader::{Loaders, PageKey},
    policy::granted,
    raw::{self, RawParts},
    scalars::{Date, DateTime, Id, Money},
};

/// Whether the fast path is on (schema data; on unless configured off).
#[derive(Debug, Clone, Copy)]
pub struct FastPath(pub bool);

/// The fields of an object's response, in selection order.
pub type Fields = async_graphql_value::indexmap::IndexMap<Name, Value>;

/// An object that can build its response without resolvers when the selection allows.
pub trait FastObject {
    /// The GraphQL type name (for `__typename` and fragment type conditions).
    const TYPE_NAME: &'static str;

    /// Whether field `name` is a scalar this type answers from memory for the caller. Asked
    /// once per list: the caller's permissions are the same for every item.
    fn has_leaf(ctx: &ContextSelectionSet<'_>, name: &str) -> bool;

    /// The value of field `name`, one that [`FastObject::has_leaf`] accepts (`None` for any
    /// other name).
    fn leaf(&self, name: &str) -> Option<Value>;

    /// Writes the JSON of [`FastObject::leaf`]'s value for `name`, byte for byte as serde_json
    /// writes it (types override it for their common fields, to skip the value); false for a
    /// name that is not a leaf.
    fn write_leaf(&self, name: &str, out: &mut Vec<u8>) -> bool {
        write_value(out, self.leaf(name))
    }

    /// The related object field `name` answers with, when the caller may read it (`None`: not
    /// such a field, or a caller that may not: resolvers answer it).
    fn related(_ctx: &ContextSelectionSet<'_>, _name: &str) -> Option<Related> {
        None
    }

    /// The related object, when it is in memory (fetched with the page).
    fn child(&self, _related: Related) -> Option<Child<'_>> {
        None
    }

    /// Whose investments the type's `investments` connection lists, if it has one.
    const PARENT: Option<Parent> = None;

    /// For the connection field `field` of a list item (a parent's `investments`): the page
    /// every item of the list asks for, when the fast path may load them all at once.
    fn page_spec(ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<PageSpec> {
        let parent = Self::PARENT?;
        (field.node.name.node == "investments")
            .then(|| super::fund::page_spec(ctx, field, parent))
            .flatten()
    }

    /// The item's id, as the parent of its investments pages.
    fn parent_id(&self) -> Option<uuid::Uuid> {
        None
    }
}

/// The investments page that every item of a list asks for through a connection field (see
/// [`FastObject::page_spec`]): each item's is this with the item as the parent.
#[derive(Debug, Clone)]
pub struct PageSpec {
    /// Whose investments.
    pub parent: Parent,
    /// The related rows fetched with the page.
    pub include: Include,
    /// The window: no cursor, so the same for every parent.
    pub window: PageWindow<InvestmentKey>,
}

impl PageSpec {
    /// The loader key of `parent_id`'s page.
    fn key(&self, parent_id: uuid::Uuid) -> PageKey {
        PageKey {
            parent: self.parent,
            include: self.include,
            query: PageQuery {
                parent_id,
                window: self.window.clone(),
            },
        }
    }
}

/// A kind of related object a list item may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Related {
    /// An investment's fund.
    Fund,
    /// An investment's investor.
    Investor,
}

/// A related object in memory (fetched with its page).
pub enum Child<'a> {
    /// The investment's fund.
    Fund(&'a Fund),
    /// The investment's investor.
    Investor(&'a Investor),
}

/// Directives already applied before execution (async-graphql removes skipped selections).
fn only_skip_include(directives: &[Positioned<async_graphql::parser::types::Directive>]) -> bool {
    directives
        .iter()
        .all(|d| matches!(d.node.name.node.as_str(), "skip" | "include"))
}

/// Visits the fields of `set` for an object of type `type_name`, fragments expanded; stops
/// (false) as soon as `visit` or the selection refuses.
fn walk<'s>(
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    type_name: &str,
    visit: &mut dyn FnMut(&'s Positioned<Field>) -> bool,
) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => only_skip_include(&field.node.directives) && visit(field),
        Selection::FragmentSpread(spread) => {
            only_skip_include(&spread.node.directives)
                && matches!(
                    ctx.query_env.fragments.get(&spread.node.fragment_name.node),
                    Some(fragment) if fragment.node.type_condition.node.on.node.as_str() == type_name
                        && walk(ctx, &fragment.node.selection_set.node, type_name, visit)
                )
        }
        Selection::InlineFragment(inline) => {
            only_skip_include(&inline.node.directives)
                && inline
                    .node
                    .type_condition
                    .as_ref()
                    .is_none_or(|tc| tc.node.on.node.as_str() == type_name)
                && walk(ctx, &inline.node.selection_set.node, type_name, visit)
        }
    })
}

/// The whole response object of `item` for `set`, or `None` to fall back.
pub fn object<'s, T: FastObject>(
    item: &T,
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
) -> Option<Value> {
    let mut fields = Fields::with_capacity(set.items.len());
    let mut keys: Vec<&'s str> = Vec::with_capacity(set.items.len());
    let complete = walk(ctx, set, T::TYPE_NAME, &mut |field| {
        let field = &field.node;
        let key = field.response_key();
        if !first_use(&mut keys, key.node.as_str()) {
            return false;
        }
        let name = field.name.node.as_str();
        let child_set = &field.selection_set.node;
        let value = if name == "__typename" {
            Some(Value::String(T::TYPE_NAME.to_owned()))
        } else if let Some(related) = T::related(ctx, name) {
            match item.child(related) {
                Some(Child::Fund(f)) => object(f, ctx, child_set),
                Some(Child::Investor(i)) => object(i, ctx, child_set),
                None => None,
            }
        } else if child_set.items.is_empty() && T::has_leaf(ctx, name) {
            item.leaf(name)
        } else {
            None
        };
        match value {
            Some(value) => {
                fields.insert(key.node.clone(), value);
                true
            }
            None => false,
        }
    });
    complete.then_some(Value::Object(fields))
}

/// Records `key` as answered; false when it already was (the same name twice needs field
/// merging: left to async-graphql).
fn first_use<'s>(keys: &mut Vec<&'s str>, key: &'s str) -> bool {
    if keys.contains(&key) {
        return false;
    }
    keys.push(key);
    true
}

/// A selection set compiled once for all the items of a list (see [`plan`]).
struct Plan<'s> {
    /// Per response key, in selection order: the bytes written before its value (`"key":`,
    /// after a comma unless first) and what answers it.
    fields: Vec<(Vec<u8>, Step<'s>)>,
}

/// What answers one response key of a [`Plan`].
enum Step<'s> {
    /// `__typename`.
    Typename(&'static str),
    /// A scalar field of the item, by name.
    Leaf(&'s str),
    /// A related object, with the plan of its own selection.
    Child(Related, Plan<'s>),
    /// An investments connection: the item's page (number `.0` of the list's pages), loaded
    /// for every item of the list in one batch.
    Page(usize, ConnectionPlan<'s>),
}

/// A connection's selection, compiled (see [`connection_plan`]).
struct ConnectionPlan<'s> {
    /// The page each item asks for.
    spec: PageSpec,
    /// Per response key: its prefix and what answers it.
    fields: Vec<(Vec<u8>, ConnectionStep<'s>)>,
}

/// What answers one response key of an investments connection.
enum ConnectionStep<'s> {
    /// `__typename`.
    Typename,
    /// `nodes`, with the plan of an investment.
    Nodes(Plan<'s>),
    /// `edges`, with the plan of an edge.
    Edges(Vec<(Vec<u8>, EdgeStep<'s>)>),
    /// `pageInfo`, with the plan of its fields.
    PageInfo(Vec<(Vec<u8>, InfoStep)>),
}

/// What answers one response key of an edge.
enum EdgeStep<'s> {
    /// `__typename`.
    Typename,
    /// `cursor`.
    Cursor,
    /// `node`, with the plan of an investment.
    Node(Plan<'s>),
}

/// What answers one response key of `pageInfo`.
enum InfoStep {
    Typename,
    HasNextPage,
    HasPreviousPage,
    StartCursor,
    EndCursor,
}

/// Compiles the fields of `set` on `type_name`: each response key once, with its prefix
/// bytes and what `step` says answers it. `None` when a key repeats (field merging is left to
/// async-graphql), a directive or fragment needs resolvers, or `step` refuses a field.
fn compile<'s, S>(
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    type_name: &str,
    mut step: impl FnMut(&'s Positioned<Field>) -> Option<S>,
) -> Option<Vec<(Vec<u8>, S)>> {
    let mut keys: Vec<&'s str> = Vec::with_capacity(set.items.len());
    let mut fields = Vec::with_capacity(set.items.len());
    let complete = walk(ctx, set, type_name, &mut |field| {
        let key = field.node.response_key().node.as_str();
        if !first_use(&mut keys, key) {
            return false;
        }
        let mut prefix = Vec::with_capacity(key.len() + 4);
        if !fields.is_empty() {
            prefix.push(b',');
        }
        if raw::write_str(&mut prefix, key).is_err() {
            return false;
        }
        prefix.push(b':');
        match step(field) {
            Some(step) => {
                fields.push((prefix, step));
                true
            }
            None => false,
        }
    });
    complete.then_some(fields)
}

/// Compiles `set` for objects of type `T`: the walk over the selection (fragments expanded,
/// keys escaped, the caller's permissions checked) is done once for the whole list instead of
/// once per item. `None` when the selection needs resolvers (as [`object`] decides). With
/// `pages`, an investments connection of the item is planned too (its pages are then loaded
/// for the whole list at once, see [`load_pages`]).
fn plan<'s, T: FastObject>(
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    pages: bool,
) -> Option<Plan<'s>> {
    let mut count = 0;
    let fields = compile(ctx, set, T::TYPE_NAME, |field| {
        let name = field.node.name.node.as_str();
        let child_set = &field.node.selection_set.node;
        if name == "__typename" {
            Some(Step::Typename(T::TYPE_NAME))
        } else if let Some(related) = T::related(ctx, name) {
            let child = match related {
                Related::Fund => plan::<Fund>(ctx, child_set, false),
                Related::Investor => plan::<Investor>(ctx, child_set, false),
            };
            Some(Step::Child(related, child?))
        } else if child_set.items.is_empty() && T::has_leaf(ctx, name) {
            Some(Step::Leaf(name))
        } else if pages && let Some(spec) = T::page_spec(ctx, field) {
            let connection = connection_plan(ctx, child_set, spec)?;
            count += 1;
            Some(Step::Page(count - 1, connection))
        } else {
            None
        }
    })?;
    Some(Plan { fields })
}

/// Compiles an investments connection's selection: `nodes`, `edges`, `pageInfo` and
/// `__typename` (anything else, such as `totalCount`, is left to the resolvers).
fn connection_plan<'s>(
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    spec: PageSpec,
) -> Option<ConnectionPlan<'s>> {
    let fields = compile(ctx, set, "InvestmentConnection", |field| {
        let set = &field.node.selection_set.node;
        Some(match field.node.name.node.as_str() {
            "__typename" => ConnectionStep::Typename,
            "nodes" => ConnectionStep::Nodes(plan::<Investment>(ctx, set, false)?),
            "edges" => ConnectionStep::Edges(compile(ctx, set, "InvestmentEdge", |edge| {
                Some(match edge.node.name.node.as_str() {
                    "__typename" => EdgeStep::Typename,
                    "cursor" => EdgeStep::Cursor,
                    "node" => EdgeStep::Node(plan::<Investment>(
                        ctx,
                        &edge.node.selection_set.node,
                        false,
                    )?),
                    _ => return None,
                })
            })?),
            "pageInfo" => ConnectionStep::PageInfo(compile(ctx, set, "PageInfo", |info| {
                Some(match info.node.name.node.as_str() {
                    "__typename" => InfoStep::Typename,
                    "hasNextPage" => InfoStep::HasNextPage,
                    "hasPreviousPage" => InfoStep::HasPreviousPage,
                    "startCursor" => InfoStep::StartCursor,
                    "endCursor" => InfoStep::EndCursor,
                    _ => return None,
                })
            })?),
            _ => return None,
        })
    })?;
    Some(ConnectionPlan { spec, fields })
}

/// The pages of a list's items, by (page number in the plan, parent id).
type Pages = HashMap<(usize, uuid::Uuid), Page<Investment>>;

/// Loads the pages that `plan`'s connections ask for, for every one of `items`, in one
/// loader batch (one statement per page shape, as when each item's resolver asks).
/// `None` (the resolvers answer, and report any error) when the load fails or two of the
/// plan's connections ask for the very same page.
async fn load_pages<N: FastObject>(
    ctx: &ContextSelectionSet<'_>,
    plan: &Plan<'_>,
    items: &[N],
) -> Option<Pages> {
    let specs: Vec<(usize, &PageSpec)> = plan
        .fields
        .iter()
        .filter_map(|(_, step)| match step {
            Step::Page(index, connection) => Some((*index, &connection.spec)),
            _ => None,
        })
        .collect();
    let mut pages = Pages::with_capacity(specs.len() * items.len());
    if specs.is_empty() {
        return Some(pages);
    }
    let mut wanted = Vec::with_capacity(specs.len() * items.len());
    for item in items {
        let id = item.parent_id()?;
        for (index, spec) in &specs {
            wanted.push(((*index, id), spec.key(id)));
        }
    }
    let keys = wanted.iter().map(|(_, key)| key.clone()).collect();
    let mut loaded = ctx.data_opt::<Loaders>()?.load_pages(keys).await.ok()?;
    for (slot, key) in wanted {
        // Usually the only reference: the rows move instead of being copied.
        let page = loaded.remove(&key)?;
        let page = Arc::try_unwrap(page).unwrap_or_else(|shared| (*shared).clone());
        pages.insert(
            slot,
            Page {
                items: page.items.into_iter().map(Investment::from).collect(),
                has_next_page: page.has_next_page,
                has_previous_page: page.has_previous_page,
            },
        );
    }
    Some(pages)
}

/// Writes `item`'s JSON for `plan` to `out` (what serialising [`object`]'s value would write,
/// byte for byte), with its connections' pages from `pages`. False to fall back (`out` then
/// holds a partial object: discard it).
fn write_planned<T: FastObject>(
    item: &T,
    plan: &Plan<'_>,
    pages: &Pages,
    out: &mut Vec<u8>,
) -> bool {
    out.push(b'{');
    for (prefix, step) in &plan.fields {
        out.extend_from_slice(prefix);
        let written = match step {
            Step::Typename(name) => write_text(out, name),
            Step::Leaf(name) => item.write_leaf(name, out),
            Step::Child(related, child) => match (related, item.child(*related)) {
                (Related::Fund, Some(Child::Fund(f))) => write_planned(f, child, pages, out),
                (Related::Investor, Some(Child::Investor(i))) => {
                    write_planned(i, child, pages, out)
                }
                _ => false,
            },
            Step::Page(index, connection) => {
                match item
                    .parent_id()
                    .and_then(|id| Some((id, pages.get(&(*index, id))?)))
                {
                    Some((id, page)) => write_connection(
                        page,
                        ListScope::Investments(connection.spec.parent, id),
                        connection,
                        out,
                    ),
                    None => false,
                }
            }
        };
        if !written {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// Writes `items` as a JSON list, each for `plan`.
fn write_items<T: FastObject>(
    items: &[T],
    plan: &Plan<'_>,
    pages: &Pages,
    out: &mut Vec<u8>,
) -> bool {
    out.push(b'[');
    let complete = items.iter().enumerate().all(|(i, item)| {
        if i > 0 {
            out.push(b',');
        }
        write_planned(item, plan, pages, out)
    });
    out.push(b']');
    complete
}

/// Writes an investments connection's JSON for `plan` (as its resolvers would answer).
fn write_connection(
    page: &Page<Investment>,
    scope: ListScope,
    plan: &ConnectionPlan<'_>,
    out: &mut Vec<u8>,
) -> bool {
    let none = Pages::new();
    let cursor = |out: &mut Vec<u8>, item: Option<&Investment>| match item {
        Some(item) => write_text(out, &item.cursor(scope)),
        None => {
            out.extend_from_slice(b"null");
            true
        }
    };
    let flag = |out: &mut Vec<u8>, value: bool| {
        out.extend_from_slice(if value { b"true" } else { b"false" });
        true
    };
    out.push(b'{');
    for (prefix, step) in &plan.fields {
        out.extend_from_slice(prefix);
        let written = match step {
            ConnectionStep::Typename => write_text(out, "InvestmentConnection"),
            ConnectionStep::Nodes(node) => write_items(&page.items, node, &none, out),
            ConnectionStep::Edges(fields) => {
                out.push(b'[');
                let complete = page.items.iter().enumerate().all(|(i, item)| {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    let complete = fields.iter().all(|(prefix, step)| {
                        out.extend_from_slice(prefix);
                        match step {
                            EdgeStep::Typename => write_text(out, "InvestmentEdge"),
                            EdgeStep::Cursor => cursor(out, Some(item)),
                            EdgeStep::Node(node) => write_planned(item, node, &none, out),
                        }
                    });
                    out.push(b'}');
                    complete
                });
                out.push(b']');
                complete
            }
            ConnectionStep::PageInfo(fields) => {
                out.push(b'{');
                let complete = fields.iter().all(|(prefix, step)| {
                    out.extend_from_slice(prefix);
                    match step {
                        InfoStep::Typename => write_text(out, "PageInfo"),
                        InfoStep::HasNextPage => flag(out, page.has_next_page),
                        InfoStep::HasPreviousPage => flag(out, page.has_previous_page),
                        InfoStep::StartCursor => cursor(out, page.items.first()),
                        InfoStep::EndCursor => cursor(out, page.items.last()),
                    }
                });
                out.push(b'}');
                complete
            }
        };
        if !written {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// A list of nodes, resolved by the fast path when every item allows it.
pub struct NodeList<'a, N>(pub &'a [N]);

impl<'a, N: Node + FastObject + Sync> OutputType for NodeList<'a, N> {
    fn type_name() -> Cow<'static, str> {
        <&'a [N] as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <&'a [N] as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        <&'a [N] as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if ctx.data_opt::<FastPath>().is_some_and(|f| f.0) {
            let set = &ctx.item.node;
            if let Some(parts) = ctx.data_opt::<Arc<RawParts>>() {
                // The list's JSON written at once, spliced into the response when it is
                // serialised (see [`raw`]); its items' investments pages loaded first, all in
                // one batch.
                if let Some(plan) = plan::<N>(ctx, set, true)
                    && let Some(pages) = load_pages(ctx, &plan, self.0).await
                {
                    let mut out = Vec::with_capacity(2 + 96 * self.0.len());
                    if write_items(self.0, &plan, &pages, &mut out) {
                        return Ok(parts.placeholder(out));
                    }
                }
            } else {
                let items: Option<Vec<Value>> =
                    self.0.iter().map(|item| object(item, ctx, set)).collect();
                if let Some(items) = items {
                    return Ok(Value::List(items));
                }
            }
        }
        resolve_list(ctx, field, self.0.iter(), Some(self.0.len())).await
    }
}

/// One object, resolved by the fast path when its selection allows (a root lookup such as
/// `fund(id)`), else by async-graphql. The schema sees `T` itself.
pub struct One<T>(pub T);

impl<T: FastObject + OutputType + Sync> OutputType for One<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if ctx.data_opt::<FastPath>().is_some_and(|f| f.0) {
            let set = &ctx.item.node;
            if let Some(parts) = ctx.data_opt::<Arc<RawParts>>() {
                let mut out = Vec::with_capacity(256);
                if let Some(plan) = plan::<T>(ctx, set, false)
                    && write_planned(&self.0, &plan, &Pages::new(), &mut out)
                {
                    return Ok(parts.placeholder(out));
                }
            } else if let Some(value) = object(&self.0, ctx, set) {
                return Ok(value);
            }
        }
        self.0.resolve(ctx, field).await
    }
}

/// Writes a leaf's value as JSON (false when there is none, or it cannot be written).
fn write_value(out: &mut Vec<u8>, value: Option<Value>) -> bool {
    value.is_some_and(|value| raw::write_leaf(out, &value).is_ok())
}

/// Writes what `write` appends, ASCII with nothing to escape (digits, signs, points, dashes),
/// as a JSON string.
fn write_quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    out.push(b'"');
    write(out);
    out.push(b'"');
    true
}

/// Writes `text` as a JSON string (false when it cannot be written).
fn write_text(out: &mut Vec<u8>, text: &str) -> bool {
    raw::write_str(out, text).is_ok()
}

impl FastObject for Fund {
    const TYPE_NAME: &'static str = "Fund";
    const PARENT: Option<Parent> = Some(Parent::Fund);

    fn has_leaf(_ctx: &ContextSelectionSet<'_>, name: &str) -> bool {
        // investments, totalCommittedUsd, investorCount: resolvers with loaders.
        matches!(
            name,
            "id" | "name" | "vintageYear" | "targetSizeUsd" | "status" | "createdAt" | "updatedAt"
        )
    }

    fn leaf(&self, name: &str) -> Option<Value> {
        let f = &self.0;
        Some(match name {
            "id" => Id(f.id).to_value(),
            "name" => Value::String(f.name.clone()),
            "vintageYear" => Value::from(f.vintage_year),
            "targetSizeUsd" => Money(f.target_size_usd).to_value(),
            "status" => enum_value(GqlFundStatus::from(f.status)),
            "createdAt" => DateTime(f.created_at).to_value(),
            "updatedAt" => DateTime(f.updated_at).to_value(),
            _ => return None,
        })
    }

    fn write_leaf(&self, name: &str, out: &mut Vec<u8>) -> bool {
        match name {
            "name" => write_text(out, &self.0.name),
            "targetSizeUsd" => {
                write_quoted(out, |out| domain::write_money(out, self.0.target_size_usd))
            }
            _ => write_value(out, self.leaf(name)),
        }
    }

    fn parent_id(&self) -> Option<uuid::Uuid> {
        Some(self.0.id)
    }
}

impl FastObject for Investor {
    const TYPE_NAME: &'static str = "Investor";
    const PARENT: Option<Parent> = Some(Parent::Investor);

    fn has_leaf(ctx: &ContextSelectionSet<'_>, name: &str) -> bool {
        match name {
            "id" | "name" | "investorType" | "createdAt" | "updatedAt" => true,
            // Personal data: only when the caller may see it (else the resolver answers).
            "email" => super::investor::may_read_email(ctx),
            // investments, totalCommittedUsd: resolvers with loaders.
            _ => false,
        }
    }

    fn leaf(&self, name: &str) -> Option<Value> {
        let i = &self.0;
        Some(match name {
            "id" => Id(i.id).to_value(),
            "name" => Value::String(i.name.clone()),
            "investorType" => enum_value(GqlInvestorType::from(i.investor_type)),
            "email" => Value::String(i.email.clone()),
            "createdAt" => DateTime(i.created_at).to_value(),
            "updatedAt" => DateTime(i.updated_at).to_value(),
            _ => return None,
        })
    }

    fn write_leaf(&self, name: &str, out: &mut Vec<u8>) -> bool {
        match name {
            "name" => write_text(out, &self.0.name),
            "email" => write_text(out, &self.0.email),
            _ => write_value(out, self.leaf(name)),
        }
    }

    fn parent_id(&self) -> Option<uuid::Uuid> {
        Some(self.0.id)
    }
}

impl FastObject for Investment {
    const TYPE_NAME: &'static str = "Investment";

    fn has_leaf(_ctx: &ContextSelectionSet<'_>, name: &str) -> bool {
        // fund, investor: see related.
        matches!(
            name,
            "id" | "fundId" | "investorId" | "amountUsd" | "investmentDate" | "createdAt"
        )
    }

    fn leaf(&self, name: &str) -> Option<Value> {
        let m = self.model();
        Some(match name {
            "id" => Id(m.id).to_value(),
            "fundId" => Id(m.fund_id).to_value(),
            "investorId" => Id(m.investor_id).to_value(),
            "amountUsd" => Money(m.amount_usd).to_value(),
            "investmentDate" => Date(m.investment_date).to_value(),
            "createdAt" => DateTime(m.created_at).to_value(),
            _ => return None,
        })
    }

    fn write_leaf(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let m = self.model();
        match name {
            "amountUsd" => write_quoted(out, |out| domain::write_money(out, m.amount_usd)),
            "investmentDate" => write_quoted(out, |out| domain::write_date(out, m.investment_date)),
            _ => write_value(out, self.leaf(name)),
        }
    }

    /// Related rows only when the caller may read them (else the resolver answers FORBIDDEN)
    /// and, per item, only when they came with the page (else the loader resolves them).
    fn related(ctx: &ContextSelectionSet<'_>, name: &str) -> Option<Related> {
        match name {
            "fund" if granted(ctx, Scope::FundsRead) => Some(Related::Fund),
            "investor" if granted(ctx, Scope::InvestorsRead) => Some(Related::Investor),
            _ => None,
        }
    }

    fn child(&self, related: Related) -> Option<Child<'_>> {
        match related {
            Related::Fund => self.embedded_fund().map(Child::Fund),
            Related::Investor => self.embedded_investor().map(Child::Investor),
        }
    }
}

/// The response value of an enum, as async-graphql writes it.
fn enum_value<E: EnumType>(e: E) -> Value {
    Value::Enum(Name::new(
        E::items()
            .iter()
            .find(|i| i.value == e)
            .map_or("", |i| i.name),
    ))
}
