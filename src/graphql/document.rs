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

fn contains_variable(value: &Value) -> bool {
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
