//! A fast path for lists of plain objects (and single objects looked up by id).
//!
//! async-graphql resolves every field of every object through a boxed future, a context clone
//! and a result map insertion; on a page of 500 investments with their investors that is most
//! of the request's cost. When every field a list item selects is a value already in memory
//! (scalars, `__typename`, and related rows fetched with the page), the item's response is
//! built directly from the selection set here. As soon as any item selects something else (a
//! connection, an aggregate, a field behind a permission the caller lacks, a directive other
//! than `@skip`/`@include`, a field selected twice under one name), the whole list falls back
//! to async-graphql's own resolution, so the answer is the same either way (a test compares
//! the two paths on many documents).

use std::{borrow::Cow, sync::Arc};

use crate::auth::Scope;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
    parser::types::{Field, Selection, SelectionSet},
    registry,
    resolver_utils::{EnumType, resolve_list},
};

use super::{
    connection::Node,
    fund::{Fund, GqlFundStatus},
    investment::Investment,
    investor::{GqlInvestorType, Investor},
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

    /// The value of field `name` with sub-selection `set`, or `None` to fall back.
    fn fast_field(
        &self,
        ctx: &ContextSelectionSet<'_>,
        name: &str,
        set: &SelectionSet,
    ) -> Option<Value>;

    /// The related object field `name` answers with, when it is already in memory and the
    /// caller may read it (`None`: not such a field; [`FastObject::fast_field`] decides).
    fn fast_child(&self, _ctx: &ContextSelectionSet<'_>, _name: &str) -> Option<Child<'_>> {
        None
    }
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
    visit: &mut dyn FnMut(&'s Field) -> bool,
) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => only_skip_include(&field.node.directives) && visit(&field.node),
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
        let key = field.response_key();
        if !first_use(&mut keys, key.node.as_str()) {
            return false;
        }
        let name = field.name.node.as_str();
        let child_set = &field.selection_set.node;
        let value = if name == "__typename" {
            Some(Value::String(T::TYPE_NAME.to_owned()))
        } else if let Some(child) = item.fast_child(ctx, name) {
            match child {
                Child::Fund(f) => object(f, ctx, child_set),
                Child::Investor(i) => object(i, ctx, child_set),
            }
        } else {
            item.fast_field(ctx, name, child_set)
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

/// As [`object`], writing the object's JSON to `out` instead of building a value (what
/// serialising that value would write, byte for byte). False to fall back (`out` then holds
/// a partial object: discard it).
fn write_object<'s, T: FastObject>(
    item: &T,
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    out: &mut Vec<u8>,
) -> bool {
    let mut keys: Vec<&'s str> = Vec::with_capacity(set.items.len());
    out.push(b'{');
    let complete = walk(ctx, set, T::TYPE_NAME, &mut |field| {
        let key = field.response_key().node.as_str();
        if !first_use(&mut keys, key) {
            return false;
        }
        if keys.len() > 1 {
            out.push(b',');
        }
        if raw::write_str(out, key).is_err() {
            return false;
        }
        out.push(b':');
        let name = field.name.node.as_str();
        let child_set = &field.selection_set.node;
        if name == "__typename" {
            raw::write_str(out, T::TYPE_NAME).is_ok()
        } else if let Some(child) = item.fast_child(ctx, name) {
            match child {
                Child::Fund(f) => write_object(f, ctx, child_set, out),
                Child::Investor(i) => write_object(i, ctx, child_set, out),
            }
        } else {
            item.fast_field(ctx, name, child_set)
                .is_some_and(|value| raw::write_leaf(out, &value).is_ok())
        }
    });
    out.push(b'}');
    complete
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
                // serialised (see [`raw`]).
                let mut out = Vec::with_capacity(2 + 96 * self.0.len());
                out.push(b'[');
                let complete = self.0.iter().enumerate().all(|(i, item)| {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_object(item, ctx, set, &mut out)
                });
                if complete {
                    out.push(b']');
                    return Ok(parts.placeholder(out));
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
                if write_object(&self.0, ctx, set, &mut out) {
                    return Ok(parts.placeholder(out));
                }
            } else if let Some(value) = object(&self.0, ctx, set) {
                return Ok(value);
            }
        }
        self.0.resolve(ctx, field).await
    }
}

/// A leaf with no sub-selection (a sub-selection on a scalar would not have validated).
fn leaf(set: &SelectionSet, value: Value) -> Option<Value> {
    set.items.is_empty().then_some(value)
}

impl FastObject for Fund {
    const TYPE_NAME: &'static str = "Fund";

    fn fast_field(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        name: &str,
        set: &SelectionSet,
    ) -> Option<Value> {
        let f = &self.0;
        leaf(
            set,
            match name {
                "id" => Id(f.id).to_value(),
                "name" => Value::String(f.name.clone()),
                "vintageYear" => Value::from(f.vintage_year),
                "targetSizeUsd" => Money(f.target_size_usd).to_value(),
                "status" => enum_value(GqlFundStatus::from(f.status)),
                "createdAt" => DateTime(f.created_at).to_value(),
                "updatedAt" => DateTime(f.updated_at).to_value(),
                // investments, totalCommittedUsd, investorCount: resolvers with loaders.
                _ => return None,
            },
        )
    }
}

impl FastObject for Investor {
    const TYPE_NAME: &'static str = "Investor";

    fn fast_field(
        &self,
        ctx: &ContextSelectionSet<'_>,
        name: &str,
        set: &SelectionSet,
    ) -> Option<Value> {
        let i = &self.0;
        leaf(
            set,
            match name {
                "id" => Id(i.id).to_value(),
                "name" => Value::String(i.name.clone()),
                "investorType" => enum_value(GqlInvestorType::from(i.investor_type)),
                // Personal data: only when the caller may see it (else the resolver answers).
                "email" if super::investor::may_read_email(ctx) => Value::String(i.email.clone()),
                "createdAt" => DateTime(i.created_at).to_value(),
                "updatedAt" => DateTime(i.updated_at).to_value(),
                // investments, totalCommittedUsd: resolvers with loaders.
                _ => return None,
            },
        )
    }
}

impl FastObject for Investment {
    const TYPE_NAME: &'static str = "Investment";

    fn fast_field(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        name: &str,
        set: &SelectionSet,
    ) -> Option<Value> {
        let m = self.model();
        match name {
            "id" => leaf(set, Id(m.id).to_value()),
            "fundId" => leaf(set, Id(m.fund_id).to_value()),
            "investorId" => leaf(set, Id(m.investor_id).to_value()),
            "amountUsd" => leaf(set, Money(m.amount_usd).to_value()),
            "investmentDate" => leaf(set, Date(m.investment_date).to_value()),
            "createdAt" => leaf(set, DateTime(m.created_at).to_value()),
            // fund, investor: see fast_child.
            _ => None,
        }
    }

    /// Related rows only when they came with the page (else the loader resolves them) and
    /// the caller may read them (else the resolver answers FORBIDDEN).
    fn fast_child(&self, ctx: &ContextSelectionSet<'_>, name: &str) -> Option<Child<'_>> {
        match name {
            "fund" if granted(ctx, Scope::FundsRead) => self.embedded_fund().map(Child::Fund),
            "investor" if granted(ctx, Scope::InvestorsRead) => {
                self.embedded_investor().map(Child::Investor)
            }
            _ => None,
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
