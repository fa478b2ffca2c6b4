//! Finishing a response: every error gets its contract code, the spec's null propagation is
//! applied, response keys come in selection order, and errors are bounded in number and size.

use async_graphql::{
    Name, PathSegment, Positioned, Response, ServerError, Value,
    indexmap::IndexMap,
    parser::types::{
        ExecutableDocument, FragmentDefinition, OperationDefinition, OperationType, Selection,
        SelectionSet,
    },
    registry::{MetaTypeName, Registry},
};
use std::collections::HashMap;

use super::{
    document::Document,
    messages::{self, Stage},
};
use crate::error::{AppError, ErrorCode, INTERNAL_MESSAGE};

/// An error with a code (and optionally a field) in its extensions.
pub fn coded_error(
    code: ErrorCode,
    message: impl Into<String>,
    field: Option<&str>,
) -> ServerError {
    let mut err = ServerError::new(message, None);
    set_code(&mut err, code, field);
    err
}

fn set_code(err: &mut ServerError, code: ErrorCode, field: Option<&str>) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code.as_str());
    if let Some(field) = field {
        ext.set("field", field);
    }
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

/// The code a finished error carries, if any.
pub fn error_code(err: &ServerError) -> Option<ErrorCode> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(code) => ErrorCode::from_code(code),
        _ => None,
    }
}

/// A friendlier hint for our scalars' format, appended to coercion errors.
fn scalar_hint(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "Decimal" => {
            "a Decimal is a string such as \"1200.50\": at most 2 decimals and 18 integer digits, no float"
        }
        "UUID" => "a UUID is hyphenated hex, e.g. \"0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d\"",
        "Date" => "a Date looks like \"2024-09-22\"",
        "DateTime" => "a DateTime looks like \"2024-01-15T10:30:00.123456Z\"",
        _ => return None,
    })
}

/// Codes an error async-graphql raised before execution.
fn classify_request_error(err: &mut ServerError, document: &Document) {
    let code = messages::code_of(Stage::Request, &err.message);
    if code != ErrorCode::BadUserInput {
        set_code(err, code, None);
        return;
    }
    let path = messages::argument_path(&err.message).map(str::to_owned);
    let from_variable = err
        .locations
        .iter()
        .any(|p| document.variable_arguments.contains(p));
    if messages::is_shape_error(&err.message) && !from_variable {
        // The document itself names an input field that does not exist (or leaves a required
        // one out): a document error, not a bad value.
        set_code(err, ErrorCode::GraphqlValidationFailed, None);
        return;
    }
    if let Some(hint) = messages::expected_type(&err.message).and_then(scalar_hint) {
        err.message = format!("{} ({hint})", err.message);
    }
    set_code(err, ErrorCode::BadUserInput, path.as_deref());
}

/// Codes an error raised while executing.
fn classify_field_error(err: &mut ServerError) {
    let source = err.source.clone();
    let app = source.as_deref().and_then(|s| {
        s.downcast_ref::<AppError>().or_else(|| {
            s.downcast_ref::<std::sync::Arc<AppError>>()
                .map(|a| a.as_ref())
        })
    });
    if let Some(app) = app {
        let code = app.code();
        if app.is_internal() {
            log_internal(err, Some(app));
        }
        err.message = app.public_message();
        set_code(err, code, app.field());
        if let AppError::Forbidden { scope, .. } = app
            && let Some(ext) = err.extensions.as_mut()
        {
            ext.set("scope", scope.as_str());
        }
        return;
    }
    match messages::code_of(Stage::Execution, &err.message) {
        ErrorCode::InternalServerError => {
            log_internal(err, None);
            err.message = INTERNAL_MESSAGE.to_owned();
            set_code(err, ErrorCode::InternalServerError, None);
        }
        code => set_code(err, code, None),
    }
}

fn log_internal(err: &ServerError, app: Option<&AppError>) {
    let cause = app.map(|a| {
        let mut text = a.to_string();
        let mut source = std::error::Error::source(a);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    });
    tracing::error!(
        message = %err.message,
        cause = cause.as_deref().unwrap_or(""),
        path = ?err.path,
        "internal error while resolving a request"
    );
}

/// Whether execution started: async-graphql answers a refused request with no data and
/// errors without a path; once execution starts, data is an object or a field error has a
/// path.
pub fn executed(response: &Response) -> bool {
    !(response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty()))
}

/// How errors are bounded in a response.
#[derive(Debug, Clone, Copy)]
pub struct ErrorBounds {
    /// Most errors kept; the rest are counted in one last error.
    pub max_errors: usize,
    /// Longest message kept, in characters.
    pub max_message_chars: usize,
}

/// Finishes `response` for `document` (see the module documentation). Returns whether
/// execution started.
pub fn finish(
    response: &mut Response,
    document: &Document,
    registry: &Registry,
    bounds: ErrorBounds,
    schema_description: &str,
) -> bool {
    let executed = executed(response);
    for err in &mut response.errors {
        if has_code(err) {
            continue;
        }
        if executed {
            classify_field_error(err);
        } else {
            classify_request_error(err, document);
        }
    }
    if executed && let Some(op) = document.operation() {
        if response.errors.iter().any(|e| !e.path.is_empty()) {
            let paths: Vec<&[PathSegment]> =
                response.errors.iter().map(|e| e.path.as_slice()).collect();
            propagate_errors_to_nulls(registry, &document.doc, op, &mut response.data, &paths);
        }
        order_like_selection(
            &mut response.data,
            &[&op.selection_set.node],
            &document.doc.fragments,
        );
        if document.introspection {
            describe_schema(
                &mut response.data,
                &op.selection_set.node,
                &document.doc.fragments,
                schema_description,
            );
        }
    }
    bound_errors(&mut response.errors, bounds);
    executed
}

/// The fields named `name` in `set` (fragments expanded), by response key, with their
/// selection sets.
fn fields_named<'a>(
    set: &'a SelectionSet,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    name: &str,
    out: &mut Vec<(&'a str, &'a SelectionSet)>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) if field.node.name.node == name => out.push((
                field.node.response_key().node.as_str(),
                &field.node.selection_set.node,
            )),
            Selection::Field(_) => {}
            Selection::InlineFragment(inline) => {
                fields_named(
                    &inline.node.selection_set.node,
                    fragments,
                    name,
                    out,
                    depth + 1,
                );
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    fields_named(
                        &fragment.node.selection_set.node,
                        fragments,
                        name,
                        out,
                        depth + 1,
                    );
                }
            }
        }
    }
}

/// Answers `__schema { description }` with this API's description: async-graphql 7 answers a
/// fixed text about GraphQL schemas in general.
fn describe_schema(
    data: &mut Value,
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    description: &str,
) {
    let Value::Object(root) = data else { return };
    let mut schemas = Vec::new();
    fields_named(set, fragments, "__schema", &mut schemas, 0);
    for (key, schema_set) in schemas {
        let Some(Value::Object(schema)) = root.get_mut(key) else {
            continue;
        };
        let mut descriptions = Vec::new();
        fields_named(schema_set, fragments, "description", &mut descriptions, 0);
        for (key, _) in descriptions {
            if let Some(value) = schema.get_mut(key) {
                *value = Value::String(description.to_owned());
            }
        }
    }
}

/// Keeps at most `bounds.max_errors` errors (the last one kept says how many were left out,
/// with the first left-out error's code) and cuts long messages.
pub fn bound_errors(errors: &mut Vec<ServerError>, bounds: ErrorBounds) {
    for err in errors.iter_mut() {
        if err.message.chars().count() > bounds.max_message_chars {
            let cut: String = err.message.chars().take(bounds.max_message_chars).collect();
            err.message = format!("{cut}…");
        }
    }
    let keep = bounds.max_errors.max(1);
    if errors.len() > keep {
        let dropped = errors.len() - (keep - 1);
        let code = error_code(&errors[keep - 1]).unwrap_or(ErrorCode::GraphqlValidationFailed);
        errors.truncate(keep - 1);
        errors.push(coded_error(
            code,
            format!("{dropped} more errors like the ones above were left out"),
            None,
        ));
    }
}

/// Puts the keys of every object of `value` in the order the selection asks for them
/// (the spec's "ordered map"): async-graphql inserts them as they complete, so a field that
/// waited on the database comes after those answered from memory. Objects already in order
/// are left as they are; JSON written by the fast path is in order by construction.
fn order_like_selection(
    value: &mut Value,
    sets: &[&SelectionSet],
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
) {
    match value {
        Value::List(items) => {
            for item in items {
                order_like_selection(item, sets, fragments);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<(&str, Vec<&SelectionSet>)> = Vec::with_capacity(map.len());
            for set in sets {
                collect_keys(set, fragments, &mut keys, 0);
            }
            let in_order = map
                .keys()
                .zip(keys.iter().filter(|(k, _)| map.contains_key(*k)))
                .all(|(have, (want, _))| have.as_str() == *want);
            if !in_order {
                let mut ordered = IndexMap::with_capacity(map.len());
                for (key, _) in &keys {
                    if let Some((k, v)) = map.shift_remove_entry(*key) {
                        ordered.insert(k, v);
                    }
                }
                // Anything the selection does not name (never expected) keeps its place last.
                ordered.extend(std::mem::take(map));
                *map = ordered;
            }
            for (key, children) in &keys {
                if !children.is_empty()
                    && let Some(child) = map.get_mut(*key)
                {
                    order_like_selection(child, children, fragments);
                }
            }
        }
        _ => {}
    }
}

/// The response keys of `set` in order of first appearance, each with the selection sets of
/// the fields answering to it (fragments expanded).
fn collect_keys<'a>(
    set: &'a SelectionSet,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    keys: &mut Vec<(&'a str, Vec<&'a SelectionSet>)>,
    depth: usize,
) {
    // Executed documents are valid: no fragment cycles. The bound only guards the recursion.
    if depth > 64 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                let child = &field.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, children)) => {
                        if !child.items.is_empty() {
                            children.push(child);
                        }
                    }
                    None => keys.push((
                        key,
                        if child.items.is_empty() {
                            Vec::new()
                        } else {
                            vec![child]
                        },
                    )),
                }
            }
            Selection::InlineFragment(inline) => {
                collect_keys(&inline.node.selection_set.node, fragments, keys, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    collect_keys(
                        &fragment.node.selection_set.node,
                        fragments,
                        keys,
                        depth + 1,
                    );
                }
            }
        }
    }
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
    registry: &Registry,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    path: &[PathSegment],
) -> Option<Vec<bool>> {
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
fn set_null(data: &mut Value, path: &[PathSegment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *data = Value::Null;
        return true;
    };
    let mut node = data;
    for segment in parents {
        node = match (segment, node) {
            (PathSegment::Field(key), Value::Object(map)) => match map.get_mut(key.as_str()) {
                Some(child) => child,
                None => return false,
            },
            (PathSegment::Index(i), Value::List(items)) => match items.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (PathSegment::Field(key), Value::Object(map)) => {
            map.insert(Name::new(key), Value::Null);
            true
        }
        (PathSegment::Index(i), Value::List(items)) if *i < items.len() => {
            items[*i] = Value::Null;
            true
        }
        _ => false,
    }
}

/// Applies the spec's null propagation for field errors, which async-graphql 7 leaves out (it
/// drops the failing field from its parent): a failed field becomes null, and a null in a
/// non-null position makes its nearest nullable ancestor null (or `data` itself).
fn propagate_errors_to_nulls(
    registry: &Registry,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    data: &mut Value,
    error_paths: &[&[PathSegment]],
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
            None => *data = Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (Name::new(k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn keys_are_put_in_selection_order_at_every_level() {
        let doc = async_graphql::parser::parse_query(
            "{ a { x y } ...F b } fragment F on Query { c { z } }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let op = match &doc.operations {
            async_graphql::parser::types::DocumentOperations::Single(op) => &op.node,
            _ => panic!("one operation"),
        };
        let mut data = object(&[
            ("b", Value::from(1)),
            ("c", object(&[("z", Value::from(2))])),
            (
                "a",
                Value::List(vec![object(&[
                    ("y", Value::from(3)),
                    ("x", Value::from(4)),
                ])]),
            ),
        ]);
        order_like_selection(&mut data, &[&op.selection_set.node], &doc.fragments);
        let Value::Object(map) = &data else {
            panic!("object")
        };
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["a", "c", "b"]
        );
        let Some(Value::List(items)) = map.get("a") else {
            panic!("list")
        };
        let Some(Value::Object(item)) = items.first() else {
            panic!("item")
        };
        assert_eq!(
            item.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn errors_are_bounded_in_number_and_length() {
        let mut errors: Vec<ServerError> = (0..50)
            .map(|i| {
                coded_error(
                    ErrorCode::GraphqlValidationFailed,
                    "x".repeat(i * 100),
                    None,
                )
            })
            .collect();
        bound_errors(
            &mut errors,
            ErrorBounds {
                max_errors: 5,
                max_message_chars: 200,
            },
        );
        assert_eq!(errors.len(), 5);
        assert!(errors.iter().all(|e| e.message.chars().count() <= 201));
        assert!(errors[4].message.contains("46 more errors"));
        assert_eq!(
            error_code(&errors[4]),
            Some(ErrorCode::GraphqlValidationFailed)
        );
    }
}
