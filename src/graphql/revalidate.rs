//! Validating a cached document once instead of on every request.
//!
//! async-graphql validates every request's document in full (22 rules, each a walk with
//! registry lookups): for a small query that is about a tenth of the server's work per request.
//! All but one of those rules depend on the document alone, and the documents are cached
//! ([`super::pipeline::DocumentCache`]), so once a document has run without any error under the
//! full validation, those rules will pass again for it. The one rule that depends on the request
//! is "arguments of correct type", for arguments whose values use variables: this module
//! records, per document, every such argument with its declared type, and checks a request's
//! variables against them exactly as that rule does ([`is_valid_input`] mirrors async-graphql's
//! check). A request whose variables pass runs on a schema in async-graphql's `Fast` validation
//! mode (which still enforces the depth and complexity limits and refuses fragment cycles) when
//! a variable feeds an argument of a connection field (the complexity is computed from those
//! arguments: `first`/`last` set it, and the others are not told apart); otherwise those depend on the
//! document alone too, and the request skips validation altogether (the result is handed to the
//! vendored async-graphql: `vendor/async-graphql/PATCHED.md`). Any other request, and every
//! request of a document not yet run cleanly, is validated in full, so the errors a client sees
//! are the same either way.

use async_graphql::{
    Value as ConstValue, Variables,
    parser::types::{
        Directive, ExecutableDocument, OperationType, Selection, SelectionSet, VariableDefinition,
    },
    registry::{MetaType, MetaTypeName, Registry},
};
use async_graphql_value::Value;

use async_graphql::Positioned;

use super::document::contains_variable;

/// An argument whose value uses variables, and the type it is declared with.
#[derive(Debug)]
pub struct VariableArgument {
    ty: String,
    value: Value,
    /// Whether the argument's field computes its complexity from its arguments (a connection:
    /// any of its arguments counts, though only `first`/`last` change the result): the
    /// document's complexity is then taken to depend on the variables.
    feeds_complexity: bool,
}

/// Whether any of `arguments` feeds a field's complexity (see [`VariableArgument`]).
pub fn complexity_uses_variables(arguments: &[VariableArgument]) -> bool {
    arguments.iter().any(|a| a.feeds_complexity)
}

/// The arguments of a document's fields and directives (operations and fragments alike) whose
/// values use variables, with their declared types. `None` when the document is not eligible
/// for skipping validation: a field, type or directive the registry does not know (full
/// validation refuses those anyway), variables in introspection fields, or a subscription.
pub fn variable_arguments(
    doc: &ExecutableDocument,
    registry: &Registry,
) -> Option<Vec<VariableArgument>> {
    let mut out = Vec::new();
    for (_, op) in doc.operations.iter() {
        let op = &op.node;
        let root = match op.ty {
            OperationType::Query => registry.query_type.as_str(),
            OperationType::Mutation => registry.mutation_type.as_deref()?,
            OperationType::Subscription => return None,
        };
        if op
            .variable_definitions
            .iter()
            .any(|d: &Positioned<VariableDefinition>| !d.node.directives.is_empty())
        {
            return None;
        }
        directives(&op.directives, &mut out)?;
        walk(&op.selection_set.node, root, registry, &mut out)?;
    }
    for fragment in doc.fragments.values() {
        let fragment = &fragment.node;
        directives(&fragment.directives, &mut out)?;
        walk(
            &fragment.selection_set.node,
            fragment.type_condition.node.on.node.as_str(),
            registry,
            &mut out,
        )?;
    }
    Some(out)
}

fn walk(
    set: &SelectionSet,
    parent: &str,
    registry: &Registry,
    out: &mut Vec<VariableArgument>,
) -> Option<()> {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                directives(&field.directives, out)?;
                let name = field.name.node.as_str();
                if name.starts_with("__") {
                    // Introspection fields and types are not in this registry: eligible only
                    // when nothing under them uses a variable.
                    let uses = field
                        .arguments
                        .iter()
                        .any(|(_, v)| contains_variable(&v.node))
                        || set_uses_variables(&field.selection_set.node);
                    if uses {
                        return None;
                    }
                    continue;
                }
                let meta = registry.types.get(parent)?.field_by_name(name)?;
                for (arg, value) in &field.arguments {
                    if contains_variable(&value.node) {
                        out.push(VariableArgument {
                            ty: meta.args.get(arg.node.as_str())?.ty.clone(),
                            value: value.node.clone(),
                            feeds_complexity: meta.compute_complexity.is_some(),
                        });
                    }
                }
                let inner = MetaTypeName::concrete_typename(&meta.ty);
                walk(&field.selection_set.node, inner, registry, out)?;
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                directives(&inline.directives, out)?;
                let on = inline
                    .type_condition
                    .as_ref()
                    .map_or(parent, |c| c.node.on.node.as_str());
                walk(&inline.selection_set.node, on, registry, out)?;
            }
            Selection::FragmentSpread(spread) => directives(&spread.node.directives, out)?,
        }
    }
    Some(())
}

/// `@include` and `@skip` (their one argument is `if: Boolean!`); any other directive makes
/// the document ineligible when it uses a variable.
fn directives(list: &[Positioned<Directive>], out: &mut Vec<VariableArgument>) -> Option<()> {
    for directive in list {
        let directive = &directive.node;
        for (arg, value) in &directive.arguments {
            if !contains_variable(&value.node) {
                continue;
            }
            let known = matches!(directive.name.node.as_str(), "include" | "skip")
                && arg.node.as_str() == "if";
            if !known {
                return None;
            }
            out.push(VariableArgument {
                ty: "Boolean!".to_owned(),
                value: value.node.clone(),
                feeds_complexity: false,
            });
        }
    }
    Some(())
}

fn set_uses_variables(set: &SelectionSet) -> bool {
    set.items.iter().any(|selection| match &selection.node {
        Selection::Field(field) => {
            field
                .node
                .arguments
                .iter()
                .any(|(_, v)| contains_variable(&v.node))
                || directives_use_variables(&field.node.directives)
                || set_uses_variables(&field.node.selection_set.node)
        }
        Selection::InlineFragment(inline) => {
            directives_use_variables(&inline.node.directives)
                || set_uses_variables(&inline.node.selection_set.node)
        }
        Selection::FragmentSpread(spread) => directives_use_variables(&spread.node.directives),
    })
}

fn directives_use_variables(list: &[Positioned<Directive>]) -> bool {
    list.iter().any(|d| {
        d.node
            .arguments
            .iter()
            .any(|(_, v)| contains_variable(&v.node))
    })
}

/// Whether every recorded argument, with the request's variables substituted, is a valid
/// value of its type. An argument whose variable is absent is not checked (as in
/// async-graphql's rule: the variable's default, or its absence, is checked elsewhere).
pub fn variables_valid(
    arguments: &[VariableArgument],
    variables: &Variables,
    registry: &Registry,
) -> bool {
    arguments.iter().all(|arg| {
        let value = arg
            .value
            .clone()
            .into_const_with(|name| variables.get(&name).cloned().ok_or(()));
        match value {
            Ok(value) => is_valid_input(registry, &arg.ty, &value),
            Err(()) => true,
        }
    })
}

/// Whether `value` is a valid input of `type_name`: async-graphql's
/// `validation::utils::is_valid_input_value` (which is private), returning whether it finds
/// no error. Kept in step with async-graphql 7.2 (an unknown type counts as invalid, so such a
/// request is validated in full).
pub fn is_valid_input(registry: &Registry, type_name: &str, value: &ConstValue) -> bool {
    match MetaTypeName::create(type_name) {
        MetaTypeName::NonNull(inner) => {
            !matches!(value, ConstValue::Null) && is_valid_input(registry, inner, value)
        }
        MetaTypeName::List(inner) => match value {
            ConstValue::List(items) => items.iter().all(|v| is_valid_input(registry, inner, v)),
            ConstValue::Null => true,
            _ => is_valid_input(registry, inner, value),
        },
        MetaTypeName::Named(name) => {
            if matches!(value, ConstValue::Null) {
                return true;
            }
            match registry.types.get(name) {
                None => false,
                Some(MetaType::Scalar {
                    is_valid: Some(valid),
                    ..
                }) => valid(value),
                Some(MetaType::Scalar { is_valid: None, .. }) => true,
                Some(MetaType::Enum { enum_values, .. }) => match value {
                    ConstValue::Enum(v) => enum_values.contains_key(v.as_str()),
                    ConstValue::String(v) => enum_values.contains_key(v.as_str()),
                    _ => false,
                },
                Some(MetaType::InputObject {
                    input_fields,
                    oneof,
                    ..
                }) => match value {
                    ConstValue::Object(values) => {
                        if *oneof
                            && (values.len() != 1
                                || values
                                    .values()
                                    .next()
                                    .is_some_and(|v| matches!(v, ConstValue::Null)))
                        {
                            return false;
                        }
                        let fields_ok = input_fields.values().all(|field| {
                            match values.get(field.name.as_str()) {
                                Some(v) => is_valid_input(registry, &field.ty, v),
                                None => {
                                    !MetaTypeName::create(&field.ty).is_non_null()
                                        || field.default_value.is_some()
                                }
                            }
                        });
                        fields_ok && values.keys().all(|k| input_fields.contains_key(k.as_str()))
                    }
                    _ => true,
                },
                Some(_) => true,
            }
        }
    }
}
