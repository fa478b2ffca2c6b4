//! The fast path: lists (and objects looked up by id) written straight to JSON from the field
//! declarations, without a resolver per field.
//!
//! async-graphql resolves every field of every object through a boxed future, a context and a
//! map insertion; on a page of 500 investments with their investors that is most of the
//! request's cost. When every field a list item selects can be answered from memory (values of
//! the row, related rows fetched with its page, and — for the items of a list — their
//! investments pages, loaded for the whole list in one batch), the selection is compiled once
//! into a [`Plan`] from the type's [`Declared::FIELDS`] and every item is written with it.
//!
//! Nothing here knows a type or a field by name: it reads the declarations, so a field is
//! answered here exactly as its resolver answers it (both evaluate the one declared
//! expression; a test compares the two paths for every field of the schema). As soon as an
//! item selects anything else (a field answered only by its resolver, one the caller may not
//! read, a cursor argument, a directive, a response key twice), the whole list goes to
//! async-graphql's own resolution.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use async_graphql::{
    ContextSelectionSet, OutputType, Positioned, ServerResult, Value,
    parser::types::{Field, Selection, SelectionSet},
    registry,
    resolver_utils::resolve_list,
};

use super::{
    connection::{Node, PageArgs},
    context::limits,
    cursor::{CursorError, Scope as ListScope},
    loader::{Loaders, PageKey},
    model::{Answer, Declared, allows, write_str},
    raw::RawParts,
};
use crate::service::{
    investment::{Include, InvestmentKey, InvestmentWith, PageQuery, Parent},
    page::{Page, PageWindow},
};

/// Whether the fast path is on (schema data; on unless configured off).
#[derive(Debug, Clone, Copy)]
pub struct FastPath(pub bool);

/// Plans a type's selection (a type's [`plan`]).
pub type PlanFn = fn(&ContextSelectionSet<'_>, &SelectionSet) -> Option<Plan>;

/// Compiles a connection's selection for its node type (a node type's [`connection_plan`]).
pub type ConnectionPlanFn =
    fn(&ContextSelectionSet<'_>, &SelectionSet, PageSpec) -> Option<ConnectionPlan>;

/// Writes a page of a connection's nodes (a node type's [`write_connection`]).
pub type ConnectionWriter =
    fn(&Page<InvestmentWith>, ListScope, &ConnectionPlan, &mut Vec<u8>) -> bool;

/// A selection set compiled for one object type: per response key, in selection order, the
/// bytes written before its value (`"key":`, after a comma unless first) and what answers it.
#[derive(Debug)]
pub struct Plan {
    fields: Vec<(Vec<u8>, Step)>,
}

/// What answers one response key of a [`Plan`].
#[derive(Debug)]
enum Step {
    /// `__typename`.
    Typename(&'static str),
    /// A declared field answered from the object (its index in the type's fields).
    Leaf(usize),
    /// A related object, with the plan of its own selection.
    Child(usize, Box<Plan>),
    /// An investments connection of a list item: page number `.0` of the list's pages.
    Page(usize, usize, Box<ConnectionPlan>),
}

/// A connection's selection, compiled.
#[derive(Debug)]
pub struct ConnectionPlan {
    spec: PageSpec,
    fields: Vec<(Vec<u8>, ConnectionStep)>,
}

#[derive(Debug)]
enum ConnectionStep {
    Typename,
    Nodes(Plan),
    Edges(Vec<(Vec<u8>, EdgeStep)>),
    PageInfo(Vec<(Vec<u8>, InfoStep)>),
}

#[derive(Debug)]
enum EdgeStep {
    Typename,
    Cursor,
    Node(Plan),
}

#[derive(Debug)]
enum InfoStep {
    Typename,
    HasNextPage,
    HasPreviousPage,
    StartCursor,
    EndCursor,
}

/// The investments page that every item of a list asks for through a connection field: each
/// item's is this with the item as the parent.
#[derive(Debug, Clone)]
pub struct PageSpec {
    parent: Parent,
    include: Include,
    window: PageWindow<InvestmentKey>,
}

impl PageSpec {
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

/// Compiles the fields of `set` on `type_name`: each response key once, with its prefix bytes
/// and what `step` says answers it. `None` when a key repeats (field merging is left to
/// async-graphql), a selection carries a directive, or `step` refuses a field.
fn compile<S>(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    type_name: &str,
    mut step: impl FnMut(&Positioned<Field>) -> Option<S>,
) -> Option<Vec<(Vec<u8>, S)>> {
    let mut fields: Vec<(Vec<u8>, S)> = Vec::with_capacity(set.items.len());
    let mut keys: Vec<String> = Vec::with_capacity(set.items.len());
    if compile_into(ctx, set, type_name, &mut step, &mut keys, &mut fields) {
        Some(fields)
    } else {
        None
    }
}

fn compile_into<S>(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    type_name: &str,
    step: &mut impl FnMut(&Positioned<Field>) -> Option<S>,
    keys: &mut Vec<String>,
    fields: &mut Vec<(Vec<u8>, S)>,
) -> bool {
    set.items.iter().all(|selection| {
        if !selection.node.directives().is_empty() {
            return false;
        }
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                if keys.iter().any(|k| k == key) {
                    return false;
                }
                keys.push(key.to_owned());
                let mut prefix = Vec::with_capacity(key.len() + 4);
                if !fields.is_empty() {
                    prefix.push(b',');
                }
                write_str(&mut prefix, key);
                prefix.push(b':');
                match step(field) {
                    Some(s) => {
                        fields.push((prefix, s));
                        true
                    }
                    None => false,
                }
            }
            Selection::FragmentSpread(spread) => {
                matches!(
                    ctx.query_env.fragments.get(&spread.node.fragment_name.node),
                    Some(fragment) if fragment.node.type_condition.node.on.node.as_str() == type_name
                        && compile_into(ctx, &fragment.node.selection_set.node, type_name, step, keys, fields)
                )
            }
            Selection::InlineFragment(inline) => {
                inline
                    .node
                    .type_condition
                    .as_ref()
                    .is_none_or(|tc| tc.node.on.node.as_str() == type_name)
                    && compile_into(
                        ctx,
                        &inline.node.selection_set.node,
                        type_name,
                        step,
                        keys,
                        fields,
                    )
            }
        }
    })
}

/// Compiles `set` for objects of type `T` (related objects included), or `None` when the
/// selection needs resolvers.
pub fn plan<T: Declared>(ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> Option<Plan> {
    plan_of::<T>(ctx, set, false)
}

/// As [`plan`]; with `pages`, the items' investments connections are planned too (their pages
/// are then loaded for the whole list in one batch).
fn plan_of<T: Declared>(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    pages: bool,
) -> Option<Plan> {
    let mut count = 0;
    let fields = compile(ctx, set, T::NAME, |field| {
        let name = field.node.name.node.as_str();
        if name == "__typename" {
            return Some(Step::Typename(T::NAME));
        }
        let (index, def) = T::FIELDS.iter().enumerate().find(|(_, f)| f.name == name)?;
        // A field the caller may not read is left to its resolver, which answers FORBIDDEN.
        if !allows(ctx, def.access) {
            return None;
        }
        let child = &field.node.selection_set.node;
        match &def.answer {
            Answer::Leaf(_) if child.items.is_empty() && field.node.arguments.is_empty() => {
                Some(Step::Leaf(index))
            }
            Answer::Related(related) if field.node.arguments.is_empty() => {
                Some(Step::Child(index, Box::new((related.plan)(ctx, child)?)))
            }
            Answer::Investments(investments) if pages => {
                let spec = page_spec(ctx, field, investments.parent, investments.include)?;
                let connection = (investments.plan)(ctx, child, spec)?;
                count += 1;
                Some(Step::Page(count - 1, index, Box::new(connection)))
            }
            _ => None,
        }
    })?;
    Some(Plan { fields })
}

/// The page that the connection `field` of every item of a list asks for: the same window and
/// related rows the field's resolver would ask for. `None` (the resolvers answer) when an
/// argument is invalid or a cursor is given (a cursor belongs to one parent: the resolver
/// reports it on the others).
fn page_spec(
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
    parent: Parent,
    include: fn(&ContextSelectionSet<'_>, &SelectionSet) -> Include,
) -> Option<PageSpec> {
    let field_ctx = ctx.with_field(field);
    let size = |name: &str| {
        field_ctx
            .param_value::<Option<i32>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    let cursor = |name: &str| {
        field_ctx
            .param_value::<Option<String>>(name, None)
            .ok()
            .map(|(_, v)| v)
    };
    if cursor("after")?.is_some() || cursor("before")?.is_some() {
        return None;
    }
    let args = PageArgs {
        first: size("first")?,
        last: size("last")?,
        ..PageArgs::default()
    };
    let window = args
        .window(limits(&field_ctx).ok()?.max_page_size, |_| {
            Err(CursorError::Malformed)
        })
        .ok()?;
    Some(PageSpec {
        parent,
        include: include(ctx, &field.node.selection_set.node),
        window,
    })
}

/// Compiles a connection of `N`'s selection: `nodes`, `edges`, `pageInfo` and `__typename`
/// (anything else, such as `totalCount`, is left to the resolvers). The page fetches one row
/// more than asked only when `pageInfo` is selected.
pub fn connection_plan<N: Declared>(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    mut spec: PageSpec,
) -> Option<ConnectionPlan> {
    let connection = format!("{}Connection", N::NAME);
    let edge = format!("{}Edge", N::NAME);
    let fields = compile(ctx, set, &connection, |field| {
        let child = &field.node.selection_set.node;
        Some(match field.node.name.node.as_str() {
            "__typename" => ConnectionStep::Typename,
            "nodes" => ConnectionStep::Nodes(plan::<N>(ctx, child)?),
            "edges" => ConnectionStep::Edges(compile(ctx, child, &edge, |e| {
                Some(match e.node.name.node.as_str() {
                    "__typename" => EdgeStep::Typename,
                    "cursor" => EdgeStep::Cursor,
                    "node" => EdgeStep::Node(plan::<N>(ctx, &e.node.selection_set.node)?),
                    _ => return None,
                })
            })?),
            "pageInfo" => ConnectionStep::PageInfo(compile(ctx, child, "PageInfo", |info| {
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
    spec.window.probe = fields
        .iter()
        .any(|(_, step)| matches!(step, ConnectionStep::PageInfo(_)));
    Some(ConnectionPlan { spec, fields })
}

/// The pages of a list's items, by (page number in the plan, parent id).
type Pages = HashMap<(usize, uuid::Uuid), Page<InvestmentWith>>;

/// Loads the pages that `plan`'s connections ask for, for every one of `items`, in one loader
/// batch (one statement per page shape, as when each item's resolver asks). `None` (the
/// resolvers answer, and report any error) when the load fails.
async fn load_pages<T: Declared>(
    ctx: &ContextSelectionSet<'_>,
    plan: &Plan,
    items: &[T],
) -> Option<Pages> {
    let specs: Vec<(usize, usize, &PageSpec)> = plan
        .fields
        .iter()
        .filter_map(|(_, step)| match step {
            Step::Page(slot, index, connection) => Some((*slot, *index, &connection.spec)),
            _ => None,
        })
        .collect();
    let mut pages = Pages::with_capacity(specs.len() * items.len());
    if specs.is_empty() {
        return Some(pages);
    }
    let mut wanted = Vec::with_capacity(specs.len() * items.len());
    for item in items {
        for (slot, index, spec) in &specs {
            let Some(Answer::Investments(investments)) = T::FIELDS.get(*index).map(|f| &f.answer)
            else {
                return None;
            };
            let id = (investments.parent_id)(item);
            wanted.push(((*slot, id), spec.key(id)));
        }
    }
    let keys = wanted.iter().map(|(_, key)| key.clone()).collect();
    let mut loaded = ctx.data_opt::<Loaders>()?.load_pages(keys).await.ok()?;
    for (slot, key) in wanted {
        let page = loaded.remove(&key)?;
        // Usually the only reference: the rows move instead of being copied.
        pages.insert(
            slot,
            Arc::try_unwrap(page).unwrap_or_else(|shared| (*shared).clone()),
        );
    }
    Some(pages)
}

/// Writes `item`'s JSON for `plan` (what async-graphql would answer, byte for byte). False to
/// fall back (`out` then holds a partial object: discard it).
pub fn write_object<T: Declared>(item: &T, plan: &Plan, out: &mut Vec<u8>) -> bool {
    write_planned(item, plan, None, out)
}

fn write_planned<T: Declared>(
    item: &T,
    plan: &Plan,
    pages: Option<&Pages>,
    out: &mut Vec<u8>,
) -> bool {
    out.push(b'{');
    for (prefix, step) in &plan.fields {
        out.extend_from_slice(prefix);
        let answer = |index: &usize| T::FIELDS.get(*index).map(|f| &f.answer);
        let written = match step {
            Step::Typename(name) => {
                write_str(out, name);
                true
            }
            Step::Leaf(index) => match answer(index) {
                Some(Answer::Leaf(write)) => {
                    write(item, out);
                    true
                }
                _ => false,
            },
            Step::Child(index, child) => match answer(index) {
                Some(Answer::Related(related)) => (related.write)(item, child, out),
                _ => false,
            },
            Step::Page(slot, index, connection) => match answer(index) {
                Some(Answer::Investments(investments)) => {
                    let id = (investments.parent_id)(item);
                    match pages.and_then(|p| p.get(&(*slot, id))) {
                        Some(page) => (investments.write)(
                            page,
                            ListScope::Investments(investments.parent, id),
                            connection,
                            out,
                        ),
                        None => false,
                    }
                }
                _ => false,
            },
        };
        if !written {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// Writes `items` as a JSON list, each for `plan`.
fn write_items<T: Declared>(
    items: &[T],
    plan: &Plan,
    pages: Option<&Pages>,
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

/// Writes a connection of `N` for `plan` (as its resolvers would answer).
pub fn write_connection<N: Declared + Node>(
    page: &Page<N>,
    scope: ListScope,
    plan: &ConnectionPlan,
    out: &mut Vec<u8>,
) -> bool {
    let connection = format!("{}Connection", N::NAME);
    let edge = format!("{}Edge", N::NAME);
    let cursor = |out: &mut Vec<u8>, item: Option<&N>| match item {
        Some(item) => write_str(out, &item.cursor(scope)),
        None => out.extend_from_slice(b"null"),
    };
    let flag = |out: &mut Vec<u8>, value: bool| {
        out.extend_from_slice(if value { b"true" } else { b"false" });
    };
    out.push(b'{');
    for (prefix, step) in &plan.fields {
        out.extend_from_slice(prefix);
        let written = match step {
            ConnectionStep::Typename => {
                write_str(out, &connection);
                true
            }
            ConnectionStep::Nodes(node) => write_items(&page.items, node, None, out),
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
                            EdgeStep::Typename => {
                                write_str(out, &edge);
                                true
                            }
                            EdgeStep::Cursor => {
                                cursor(out, Some(item));
                                true
                            }
                            EdgeStep::Node(node) => write_planned(item, node, None, out),
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
                for (prefix, step) in fields {
                    out.extend_from_slice(prefix);
                    match step {
                        InfoStep::Typename => write_str(out, "PageInfo"),
                        InfoStep::HasNextPage => flag(out, page.has_next_page),
                        InfoStep::HasPreviousPage => flag(out, page.has_previous_page),
                        InfoStep::StartCursor => cursor(out, page.items.first()),
                        InfoStep::EndCursor => cursor(out, page.items.last()),
                    }
                }
                out.push(b'}');
                true
            }
        };
        if !written {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// Whether this request may take the fast path (on, and its response is written by our HTTP
/// layer, which splices the JSON written here).
fn raw_parts(ctx: &ContextSelectionSet<'_>) -> Option<Arc<RawParts>> {
    if !ctx.data_opt::<FastPath>().is_some_and(|f| f.0) {
        return None;
    }
    ctx.data_opt::<Arc<RawParts>>().cloned()
}

/// A list of nodes, written by the fast path when every item allows it.
pub struct NodeList<'a, N>(pub &'a [N]);

impl<'a, N: Declared + OutputType> OutputType for NodeList<'a, N> {
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
        if let Some(parts) = raw_parts(ctx)
            && let Some(plan) = plan_of::<N>(ctx, &ctx.item.node, true)
            && let Some(pages) = load_pages(ctx, &plan, self.0).await
        {
            let mut out = Vec::with_capacity(2 + 96 * self.0.len());
            if write_items(self.0, &plan, Some(&pages), &mut out) {
                return Ok(parts.placeholder(out));
            }
        }
        resolve_list(ctx, field, self.0.iter(), Some(self.0.len())).await
    }
}

/// One object, written by the fast path when its selection allows (a root lookup such as
/// `fund(id)`), else resolved by async-graphql. The schema sees `T` itself.
pub struct One<T>(pub T);

impl<T: Declared + OutputType> OutputType for One<T> {
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
        if let Some(parts) = raw_parts(ctx)
            && let Some(plan) = plan::<T>(ctx, &ctx.item.node)
        {
            let mut out = Vec::with_capacity(256);
            if write_object(&self.0, &plan, &mut out) {
                return Ok(parts.placeholder(out));
            }
        }
        self.0.resolve(ctx, field).await
    }
}
