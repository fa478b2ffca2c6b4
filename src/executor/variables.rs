//! Whether a request's variables fit the types its operation declares for them — the one part
//! of async-graphql's validation that depends on the request rather than on its document.
//!
//! A document is validated in full the first time it runs (every rule of the specification);
//! once it has passed, later requests with the same document need only this check, and run with
//! async-graphql's `Fast` validation (see the executor). When this check says no, the request is
//! validated in full again, so its errors are exactly full validation's.

use async_graphql::{
    Value, Variables,
    parser::types::OperationDefinition,
    registry::{MetaType, Registry},
};

/// Whether every variable of `op` given in `variables` (or its default) fits its declared
/// type. Required variables left out are refused before this (see the executor).
pub fn fit(op: &OperationDefinition, variables: &Variables, registry: &Registry) -> bool {
    op.variable_definitions.iter().all(|definition| {
        let definition = &definition.node;
        let ty = definition.var_type.node.to_string();
        match variables.get(&definition.name.node) {
            Some(value) => fits(value, &ty, registry, 0),
            None => definition
                .default_value
                .as_ref()
                .is_none_or(|default| fits(&default.node, &ty, registry, 0)),
        }
    })
}

/// Whether `value` fits the input type `ty` (GraphQL notation: `[Int!]!`).
fn fits(value: &Value, ty: &str, registry: &Registry, depth: usize) -> bool {
    // Input values nest only as deep as the request's JSON; the body limit bounds that, and this
    // bound keeps the recursion small whatever comes.
    if depth > 32 {
        return false;
    }
    let (bare, non_null) = match ty.strip_suffix('!') {
        Some(bare) => (bare, true),
        None => (ty, false),
    };
    if matches!(value, Value::Null) {
        return !non_null;
    }
    if let Some(item) = bare.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match value {
            Value::List(items) => items.iter().all(|v| fits(v, item, registry, depth + 1)),
            // A single value is coerced to a one-item list.
            other => fits(other, item, registry, depth + 1),
        };
    }
    match registry.types.get(bare) {
        Some(MetaType::Scalar { is_valid, .. }) => is_valid.as_ref().is_none_or(|f| f(value)),
        Some(MetaType::Enum { enum_values, .. }) => match value {
            Value::Enum(name) => enum_values.contains_key(name.as_str()),
            Value::String(name) => enum_values.contains_key(name.as_str()),
            _ => false,
        },
        Some(MetaType::InputObject { input_fields, .. }) => match value {
            Value::Object(fields) => {
                fields.keys().all(|k| input_fields.contains_key(k.as_str()))
                    && input_fields
                        .values()
                        .all(|field| match fields.get(field.name.as_str()) {
                            Some(v) => fits(v, &field.ty, registry, depth + 1),
                            None => !field.ty.ends_with('!') || field.default_value.is_some(),
                        })
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(text: &str) -> OperationDefinition {
        match async_graphql::parser::parse_query(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .operations
        {
            async_graphql::parser::types::DocumentOperations::Single(op) => op.node,
            _ => panic!("one operation"),
        }
    }

    fn vars(json: serde_json::Value) -> Variables {
        Variables::from_json(json)
    }

    #[test]
    fn variables_are_checked_against_their_declared_types() {
        let registry = crate::graphql::registry();
        let doc = op(
            "query($id: UUID!, $n: Int, $f: FundFilter, $i: CreateInvestmentInput) { __typename }",
        );
        let ok = vars(serde_json::json!({
            "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d",
            "n": 10,
            "f": { "status": "CLOSED", "nameContains": "x" },
            "i": { "fundId": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d",
                   "investorId": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d",
                   "amountUsd": "1.00", "investmentDate": "2024-01-01" }
        }));
        assert!(fit(&doc, &ok, &registry));
        for bad in [
            serde_json::json!({ "id": "not-a-uuid" }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "n": "ten" }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "n": 1e12 }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "f": { "status": "OPEN" } }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "f": { "nope": 1 } }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "i": { "fundId": "x" } }),
            serde_json::json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "i": { "amountUsd": 1.5 } }),
        ] {
            assert!(!fit(&doc, &vars(bad.clone()), &registry), "{bad}");
        }
    }
}
