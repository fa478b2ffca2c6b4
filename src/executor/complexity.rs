//! The complexity of an operation, as the contract defines it: every field costs 1 plus what it
//! selects, and a connection field (one with `first`/`last` arguments) costs 1 plus its page size
//! times what it selects, so a fan-out of 100 × 100 × … is refused before it runs. Page sizes
//! given by variables count with their values. Introspection (`__schema`, `__type`) costs nothing
//! here: it is bounded apart (see the executor), so stock clients' introspection queries do not
//! eat into the budget meant for data.

use std::collections::HashMap;

use async_graphql::{
    Name, Positioned, Variables,
    parser::types::{
        FragmentDefinition, OperationDefinition, OperationType, Selection, SelectionSet,
    },
    registry::{MetaTypeName, Registry},
};
use async_graphql_value::Value;

use crate::graphql::connection::connection_complexity;

/// The complexity of `op` with `variables`.
pub fn complexity(
    op: &OperationDefinition,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &Variables,
    registry: &Registry,
) -> usize {
    let root = match op.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let Some(root) = root else { return 0 };
    let mut walk = Walk {
        fragments,
        variables,
        registry,
        memo: HashMap::new(),
        depth: 0,
    };
    walk.set(&op.selection_set.node, root)
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Variables,
    registry: &'a Registry,
    /// Each fragment's cost (its type condition fixes its parent type).
    memo: HashMap<&'a Name, usize>,
    depth: usize,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, parent: &str) -> usize {
        // Fragment cycles (refused by validation) and absurd nesting end here.
        if self.depth > 128 {
            return 0;
        }
        self.depth += 1;
        let mut total = 0usize;
        for selection in &set.items {
            let cost = match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        0
                    } else {
                        let meta = self
                            .registry
                            .types
                            .get(parent)
                            .and_then(|t| t.field_by_name(name));
                        let child_type = meta
                            .map(|m| MetaTypeName::concrete_typename(&m.ty).to_owned())
                            .unwrap_or_default();
                        let child = self.set(&field.node.selection_set.node, &child_type);
                        let is_connection = meta.is_some_and(|m| {
                            m.args.contains_key("first") && m.args.contains_key("last")
                        });
                        if is_connection {
                            let size = |arg: &str| {
                                field
                                    .node
                                    .get_argument(arg)
                                    .and_then(|v| self.number(&v.node))
                            };
                            connection_complexity(size("first"), size("last"), child)
                        } else {
                            1usize.saturating_add(child)
                        }
                    }
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
                    match (self.memo.get(name), self.fragments.get(name)) {
                        (Some(cost), _) => *cost,
                        (None, Some(fragment)) => {
                            let ty = fragment.node.type_condition.node.on.node.to_string();
                            // Guards against cycles while this fragment is measured.
                            self.memo.insert(name, 0);
                            let cost = self.set(&fragment.node.selection_set.node, &ty);
                            self.memo.insert(name, cost);
                            cost
                        }
                        (None, None) => 0,
                    }
                }
            };
            total = total.saturating_add(cost);
        }
        self.depth -= 1;
        total
    }

    /// The integer an argument is given, literally or through a variable.
    fn number(&self, value: &Value) -> Option<i32> {
        let value = match value {
            Value::Variable(name) => self.variables.get(name)?.clone().into_value(),
            other => other.clone(),
        };
        match value {
            Value::Number(n) => n.as_i64().map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            _ => None,
        }
    }
}
