//! A check async-graphql's validation leaves out: a string literal where an enum is expected
//! (`status: "CLOSED"` instead of `status: CLOSED`) is accepted by async-graphql, while the
//! GraphQL specification refuses it (enum values are names; only variables, which come as
//! JSON, carry them as strings).

use std::collections::HashSet;

use async_graphql::{
    Name,
    parser::types::{OperationDefinition, Selection, SelectionSet},
    registry::{MetaType, MetaTypeName, Registry},
};
use async_graphql_value::Value;

/// The first string literal given where the schema expects an enum, as the argument path
/// (`filter.status`) and the enum's name.
pub fn string_for_enum(
    op: &OperationDefinition,
    fragments: &std::collections::HashMap<
        Name,
        async_graphql::Positioned<async_graphql::parser::types::FragmentDefinition>,
    >,
    registry: &Registry,
) -> Option<(String, String)> {
    let root = match op.ty {
        async_graphql::parser::types::OperationType::Query => registry.query_type.clone(),
        async_graphql::parser::types::OperationType::Mutation => registry.mutation_type.clone()?,
        async_graphql::parser::types::OperationType::Subscription => {
            registry.subscription_type.clone()?
        }
    };
    for definition in &op.variable_definitions {
        if let Some(default) = &definition.node.default_value {
            let ty = definition.node.var_type.node.to_string();
            let mut path = vec![definition.node.name.node.to_string()];
            let default = default.node.clone().into_value();
            if let Some(found) = check_value(&default, &ty, registry, &mut path) {
                return Some(found);
            }
        }
    }
    let mut walk = Walk {
        registry,
        fragments,
        seen: HashSet::new(),
    };
    walk.set(&op.selection_set.node, &root)
}

struct Walk<'a> {
    registry: &'a Registry,
    fragments: &'a std::collections::HashMap<
        Name,
        async_graphql::Positioned<async_graphql::parser::types::FragmentDefinition>,
    >,
    seen: HashSet<&'a Name>,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, parent: &str) -> Option<(String, String)> {
        for selection in &set.items {
            let found = match &selection.node {
                Selection::Field(field) => {
                    let Some(meta) = self
                        .registry
                        .types
                        .get(parent)
                        .and_then(|t| t.field_by_name(field.node.name.node.as_str()))
                    else {
                        // Unknown fields are validation's to report.
                        continue;
                    };
                    for (name, value) in &field.node.arguments {
                        let Some(arg) = meta.args.get(name.node.as_str()) else {
                            continue;
                        };
                        let mut path = vec![name.node.to_string()];
                        if let Some(found) =
                            check_value(&value.node, &arg.ty, self.registry, &mut path)
                        {
                            return Some(found);
                        }
                    }
                    let child = MetaTypeName::concrete_typename(&meta.ty).to_owned();
                    self.set(&field.node.selection_set.node, &child)
                }
                Selection::InlineFragment(inline) => {
                    let ty = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent.to_owned(), |tc| tc.node.on.node.to_string());
                    self.set(&inline.node.selection_set.node, &ty)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    match self.fragments.get(name) {
                        Some(fragment) if self.seen.insert(name) => {
                            let ty = fragment.node.type_condition.node.on.node.to_string();
                            self.set(&fragment.node.selection_set.node, &ty)
                        }
                        _ => None,
                    }
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Checks a literal against an input type (`ty` in GraphQL notation, e.g. `[FundStatus!]!`).
fn check_value(
    value: &Value,
    ty: &str,
    registry: &Registry,
    path: &mut Vec<String>,
) -> Option<(String, String)> {
    let bare = ty.strip_suffix('!').unwrap_or(ty);
    if let Some(item) = bare.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match value {
            Value::List(items) => items.iter().enumerate().find_map(|(i, v)| {
                path.push(i.to_string());
                let found = check_value(v, item, registry, path);
                path.pop();
                found
            }),
            // A single value where a list is expected is coerced to a one-item list.
            other => check_value(other, item, registry, path),
        };
    }
    match (registry.types.get(bare), value) {
        (Some(MetaType::Enum { .. }), Value::String(_)) => Some((path.join("."), bare.to_owned())),
        (Some(MetaType::InputObject { input_fields, .. }), Value::Object(fields)) => {
            fields.iter().find_map(|(name, v)| {
                let field = input_fields.get(name.as_str())?;
                path.push(name.to_string());
                let found = check_value(v, &field.ty, registry, path);
                path.pop();
                found
            })
        }
        _ => None,
    }
}
