//! Read-only facts about a parsed document, used before validation: which operation runs,
//! which arguments come from variables, where a variable is used, and how many fields the
//! document selects once fragments are expanded.

use std::collections::{HashMap, HashSet};

use async_graphql_value::Value;

use async_graphql::{
    Name, Pos, Positioned,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
    },
};

/// The operation that will run: the named one, or the only one.
pub fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The name of the document's only operation, when it is named.
pub fn only_operation_name(doc: &ExecutableDocument) -> Option<String> {
    match &doc.operations {
        DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// Calls `visit` for every field (with its arguments) in the document's operations and
/// fragments.
fn for_each_field(
    doc: &ExecutableDocument,
    visit: &mut dyn FnMut(&async_graphql::parser::types::Field),
) {
    fn walk(set: &SelectionSet, visit: &mut dyn FnMut(&async_graphql::parser::types::Field)) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    visit(&field.node);
                    walk(&field.node.selection_set.node, visit);
                }
                Selection::InlineFragment(inline) => walk(&inline.node.selection_set.node, visit),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    for (_, op) in doc.operations.iter() {
        walk(&op.node.selection_set.node, visit);
    }
    for fragment in doc.fragments.values() {
        walk(&fragment.node.selection_set.node, visit);
    }
}

/// Whether `value` uses a variable anywhere (in lists and objects too).
pub(crate) fn contains_variable(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(contains_variable),
        Value::Object(fields) => fields.values().any(contains_variable),
        _ => false,
    }
}

/// Positions of argument names whose value uses a variable (so a bad value there came from
/// the request's variables, not from the document).
pub fn variable_argument_positions(doc: &ExecutableDocument) -> HashSet<Pos> {
    let mut out = HashSet::new();
    for_each_field(doc, &mut |field| {
        for (name, value) in &field.arguments {
            if contains_variable(&value.node) {
                out.insert(name.pos);
            }
        }
    });
    out
}

/// The dot path (argument and input-field names) where `variable` is first used.
pub fn variable_usage_path(doc: &ExecutableDocument, variable: &str) -> Option<String> {
    fn find(value: &Value, variable: &str, path: &mut Vec<String>) -> bool {
        match value {
            Value::Variable(name) => name.as_str() == variable,
            Value::Object(fields) => fields.iter().any(|(key, v)| {
                path.push(key.to_string());
                let found = find(v, variable, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::List(items) => items.iter().enumerate().any(|(i, v)| {
                path.push(i.to_string());
                let found = find(v, variable, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut result = None;
    for_each_field(doc, &mut |field| {
        if result.is_some() {
            return;
        }
        for (name, value) in &field.arguments {
            let mut path = vec![name.node.to_string()];
            if find(&value.node, variable, &mut path) {
                result = Some(path.join("."));
                return;
            }
        }
    });
    result
}

/// Fields the operation selects with fragments expanded (aliases count once each), without
/// expanding anything: fragment sizes are memoised, so a document that would expand
/// exponentially is counted in linear time. Fragment cycles count as zero (validation refuses
/// them anyway).
pub fn expanded_field_count(doc: &ExecutableDocument, op: &OperationDefinition) -> usize {
    fn count(
        set: &SelectionSet,
        fragments: &HashMap<Name, Positioned<async_graphql::parser::types::FragmentDefinition>>,
        memo: &mut HashMap<Name, usize>,
        visiting: &mut HashSet<Name>,
    ) -> usize {
        let mut total: usize = 0;
        for selection in &set.items {
            let n = match &selection.node {
                Selection::Field(field) => 1usize.saturating_add(count(
                    &field.node.selection_set.node,
                    fragments,
                    memo,
                    visiting,
                )),
                Selection::InlineFragment(inline) => {
                    count(&inline.node.selection_set.node, fragments, memo, visiting)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(n) = memo.get(name) {
                        *n
                    } else if visiting.contains(name) {
                        0
                    } else if let Some(fragment) = fragments.get(name) {
                        visiting.insert(name.clone());
                        let n = count(&fragment.node.selection_set.node, fragments, memo, visiting);
                        visiting.remove(name);
                        memo.insert(name.clone(), n);
                        n
                    } else {
                        0
                    }
                }
            };
            total = total.saturating_add(n);
        }
        total
    }
    count(
        &op.selection_set.node,
        &doc.fragments,
        &mut HashMap::new(),
        &mut HashSet::new(),
    )
}

/// Whether the document asks for `__schema` or `__type` anywhere.
pub fn selects_introspection(doc: &ExecutableDocument) -> bool {
    let mut found = false;
    for_each_field(doc, &mut |field| {
        let name = field.name.node.as_str();
        found |= name == "__schema" || name == "__type";
    });
    found
}

/// The field selections (all of them, fragments included) answering to `response_key` in the
/// given selection sets, as (field name, child selection sets).
fn fields_for_key<'a>(
    doc: &'a ExecutableDocument,
    sets: &[&'a SelectionSet],
    response_key: &str,
) -> Option<(&'a str, Vec<&'a SelectionSet>)> {
    fn collect<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        key: &str,
        name: &mut Option<&'a str>,
        children: &mut Vec<&'a SelectionSet>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) if field.node.response_key().node.as_str() == key => {
                    *name = Some(field.node.name.node.as_str());
                    children.push(&field.node.selection_set.node);
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(inline) => collect(
                    doc,
                    &inline.node.selection_set.node,
                    key,
                    name,
                    children,
                    depth + 1,
                ),
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                        collect(
                            doc,
                            &fragment.node.selection_set.node,
                            key,
                            name,
                            children,
                            depth + 1,
                        );
                    }
                }
            }
        }
    }
    let mut name = None;
    let mut children = Vec::new();
    for set in sets {
        collect(doc, set, response_key, &mut name, &mut children, 0);
    }
    name.map(|n| (n, children))
}

/// Whether each step of `path` (a response path) is nullable, per the schema.
fn nullability_along(
    registry: &async_graphql::registry::Registry,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    path: &[async_graphql::PathSegment],
) -> Option<Vec<bool>> {
    use async_graphql::{PathSegment, parser::types::OperationType, registry::MetaTypeName};
    let root = match op.ty {
        OperationType::Query => registry.query_type.as_str(),
        OperationType::Mutation => registry.mutation_type.as_deref()?,
        OperationType::Subscription => registry.subscription_type.as_deref()?,
    };
    let mut parent = root.to_owned();
    let mut current_ty = String::new();
    let mut sets = vec![&op.selection_set.node];
    let mut nullable = Vec::with_capacity(path.len());
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                let (name, children) = fields_for_key(doc, &sets, key)?;
                let ty = if name == "__typename" {
                    "String!".to_owned()
                } else {
                    registry.types.get(&parent)?.field_by_name(name)?.ty.clone()
                };
                nullable.push(!ty.ends_with('!'));
                parent = MetaTypeName::concrete_typename(&ty).to_owned();
                current_ty = ty;
                sets = children;
            }
            PathSegment::Index(_) => {
                let list = current_ty.strip_suffix('!').unwrap_or(&current_ty);
                let item = list.strip_prefix('[')?.strip_suffix(']')?.to_owned();
                nullable.push(!item.ends_with('!'));
                current_ty = item;
            }
        }
    }
    Some(nullable)
}

/// Sets the value at `path` to null; false when the path no longer exists (an ancestor was
/// already nulled).
fn set_null(data: &mut async_graphql::Value, path: &[async_graphql::PathSegment]) -> bool {
    use async_graphql::{PathSegment, Value as ConstValue};
    let Some((last, parents)) = path.split_last() else {
        *data = ConstValue::Null;
        return true;
    };
    let mut node = data;
    for segment in parents {
        node = match (segment, node) {
            (PathSegment::Field(key), ConstValue::Object(map)) => match map.get_mut(key.as_str()) {
                Some(child) => child,
                None => return false,
            },
            (PathSegment::Index(i), ConstValue::List(items)) => match items.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (PathSegment::Field(key), ConstValue::Object(map)) => {
            map.insert(Name::new(key), ConstValue::Null);
            true
        }
        (PathSegment::Index(i), ConstValue::List(items)) if *i < items.len() => {
            items[*i] = ConstValue::Null;
            true
        }
        _ => false,
    }
}

/// Applies the spec's null propagation for field errors, which async-graphql 7 leaves out (it
/// drops the failing field from its parent): a failed field becomes null, and a null in a
/// non-null position makes its nearest nullable ancestor null (or `data` itself).
pub fn propagate_errors_to_nulls(
    registry: &async_graphql::registry::Registry,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    data: &mut async_graphql::Value,
    error_paths: &[&[async_graphql::PathSegment]],
) {
    for path in error_paths {
        if path.is_empty() {
            continue;
        }
        let Some(nullable) = nullability_along(registry, doc, op, path) else {
            continue;
        };
        match nullable.iter().rposition(|n| *n) {
            Some(at) => {
                set_null(data, &path[..=at]);
            }
            None => *data = async_graphql::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn doc(text: &str) -> ExecutableDocument {
        parse_query(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn variable_paths_use_argument_and_field_names() {
        let d =
            doc("mutation($y: Int!) { createFund(input: {name: \"x\", vintageYear: $y}) { id } }");
        assert_eq!(
            variable_usage_path(&d, "y").as_deref(),
            Some("input.vintageYear")
        );
        assert_eq!(variable_argument_positions(&d).len(), 1);
    }

    #[test]
    fn fragments_are_counted_without_expanding_them() {
        let mut text = String::from("query { ...f0 }\n");
        for i in 0..30 {
            text.push_str(&format!(
                "fragment f{i} on Query {{ ...f{} ...f{} }}\n",
                i + 1,
                i + 1
            ));
        }
        text.push_str("fragment f30 on Query { __typename }\n");
        let d = doc(&text);
        let op = selected_operation(&d, None).unwrap_or_else(|| panic!("no operation"));
        assert_eq!(expanded_field_count(&d, op), 1 << 30);
    }

    #[test]
    fn introspection_is_spotted_inside_fragments() {
        assert!(selects_introspection(&doc(
            "{ ...f } fragment f on Query { __schema { queryType { name } } }"
        )));
        assert!(!selects_introspection(&doc("{ __typename }")));
    }
}
