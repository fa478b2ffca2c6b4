//! The fast path for lists of plain objects answers byte for byte what async-graphql's own
//! resolvers answer, for every shape of selection (aliases, fragments, directives, repeated
//! fields, related rows, fields that need resolvers).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::{body::Body, http::Request};
use common::TestApp;
use serde_json::json;
use tower::ServiceExt;

const DOCUMENTS: &[(&str, &str)] = &[
    (
        "all fund scalars",
        "{ funds(first: 10) { nodes { __typename id name vintageYear targetSizeUsd status createdAt updatedAt } } }",
    ),
    (
        "aliases",
        "{ funds { nodes { a: name b: id c: __typename } } }",
    ),
    (
        "fragments",
        "{ funds { nodes { ...F ... on Fund { status } } } } fragment F on Fund { name ... on Fund { id } }",
    ),
    (
        "nested related rows",
        "{ funds(first: 5) { nodes { name investments(first: 3) { nodes { id amountUsd investmentDate createdAt fundId investorId investor { id name investorType email createdAt updatedAt } fund { name status } } } } } }",
    ),
    ("repeated field", "{ funds { nodes { name name id } } }"),
    (
        "repeated relation",
        "{ funds { nodes { investments { nodes { investor { name } investor { email } } } } } }",
    ),
    (
        "needs a resolver",
        "{ investors { nodes { name totalCommittedUsd } } }",
    ),
    (
        "investor fragments",
        "{ investors(first: 5) { nodes { ... on Investor { email investorType } __typename } } }",
    ),
    (
        "relation with a connection",
        "{ investors(first: 2) { nodes { investments { nodes { fund { name investments(first: 1) { totalCount } } } } } } }",
    ),
    (
        "edges",
        "{ funds(first: 2) { edges { cursor node { name } } } }",
    ),
    (
        "aggregates",
        "{ funds { nodes { name totalCommittedUsd investorCount investments(last: 2) { totalCount nodes { amountUsd } } } } }",
    ),
    // A list's investments connections, loaded for the whole list at once.
    (
        "the benchmark's fifty funds",
        "{ funds(first: 50) { nodes { name investments(first: 10) { nodes { amountUsd investmentDate investor { name } } } } } }",
    ),
    (
        "nested edges and page info",
        "{ funds(first: 4) { nodes { __typename id investments(first: 2) { __typename pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } edges { __typename cursor node { id amountUsd investor { name } } } nodes { investmentDate } } } } }",
    ),
    (
        "nested pages backward",
        "{ funds { nodes { name investments(last: 3) { pageInfo { hasPreviousPage hasNextPage startCursor } nodes { amountUsd } } } } }",
    ),
    (
        "empty nested pages",
        "{ funds { nodes { investments(first: 0) { pageInfo { hasNextPage startCursor endCursor } edges { cursor } nodes { id } } } } }",
    ),
    (
        "two connections per fund",
        "{ funds { nodes { a: investments(first: 1) { nodes { id } } b: investments(last: 1) { edges { node { id } } } } } }",
    ),
    (
        "the same page twice",
        "{ funds { nodes { a: investments(first: 1) { nodes { id } } b: investments(first: 1) { nodes { amountUsd } } } } }",
    ),
    (
        "nested connection fragments",
        "{ funds(first: 3) { nodes { ...P } } } fragment P on Fund { investments(first: 2) { ... on InvestmentConnection { nodes { id } } pageInfo { ...I } } } fragment I on PageInfo { endCursor }",
    ),
    (
        "investors with their investments",
        "{ investors(first: 5) { nodes { name investments(first: 2) { pageInfo { endCursor } nodes { amountUsd fund { name status } } } } } }",
    ),
    (
        "a nested page size from an absent variable",
        "query($n: Int) { funds { nodes { investments(first: $n) { nodes { id } } } } }",
    ),
];

#[tokio::test]
async fn the_fast_path_answers_exactly_what_the_resolvers_answer() {
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.sql_conn).await.unwrap();
    let slow = app.sibling(|c| c.graphql_fast_path = false).await;
    let fast = app.sibling(|c| c.graphql_fast_path = true).await;
    let send = |router: axum::Router, query: &str, variables: serde_json::Value| {
        let body = json!({ "query": query, "variables": variables }).to_string();
        async move {
            let response = router
                .oneshot(
                    Request::post("/graphql")
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        }
    };
    let mut cases: Vec<(String, String, serde_json::Value)> = DOCUMENTS
        .iter()
        .map(|(name, q)| (name.to_string(), q.to_string(), json!({})))
        .collect();
    // Root lookups by id: the object itself goes through the fast path too.
    let ids = app
        .gql_ok(
            "{ funds(first: 1) { nodes { id investments(first: 1) { nodes { id investorId } } } } }",
            json!({}),
        )
        .await;
    let fund = &ids["funds"]["nodes"][0];
    let investment = &fund["investments"]["nodes"][0];
    for (name, query, id) in [
        (
            "fund by id",
            "query($id: UUID!) { fund(id: $id) { __typename id name vintageYear targetSizeUsd status createdAt updatedAt } }",
            &fund["id"],
        ),
        (
            "fund by id with fragments",
            "query($id: UUID!) { fund(id: $id) { a: name ...F ... on Fund { b: id } } } fragment F on Fund { status createdAt }",
            &fund["id"],
        ),
        (
            "fund by id with resolvers",
            "query($id: UUID!) { fund(id: $id) { name totalCommittedUsd investments(first: 2) { nodes { amountUsd investor { name } } } } }",
            &fund["id"],
        ),
        (
            "investor by id",
            "query($id: UUID!) { investor(id: $id) { id name investorType email createdAt updatedAt __typename } }",
            &investment["investorId"],
        ),
        (
            "investment by id",
            "query($id: UUID!) { investment(id: $id) { id fundId investorId amountUsd investmentDate createdAt } }",
            &investment["id"],
        ),
        (
            "investment by id with relations",
            "query($id: UUID!) { investment(id: $id) { amountUsd fund { name } investor { email } } }",
            &investment["id"],
        ),
        (
            "no such fund",
            "query($id: UUID!) { fund(id: $id) { name } }",
            &json!("0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d"),
        ),
    ] {
        cases.push((name.to_owned(), query.to_owned(), json!({ "id": id })));
    }
    for flag in [true, false] {
        cases.push((
            format!("directives with {flag}"),
            "query($y: Boolean!) { funds { nodes { name @include(if: $y) id @skip(if: $y) status } } }".to_owned(),
            json!({ "y": flag }),
        ));
    }
    // Nested pages from variables and with a cursor (which the resolvers answer).
    let pages = app
        .gql_ok(
            "{ funds(first: 2) { nodes { investments(first: 1) { edges { cursor } } } } }",
            json!({}),
        )
        .await;
    let cursor = &pages["funds"]["nodes"][1]["investments"]["edges"][0]["cursor"];
    let paged = "query($n: Int, $c: String) { funds(first: 3) { nodes { investments(first: $n, after: $c) { pageInfo { hasPreviousPage } nodes { id } } } } }";
    cases.push((
        "a nested page size from a variable".to_owned(),
        paged.to_owned(),
        json!({ "n": 2 }),
    ));
    // The same answers, byte for byte (the fields of an object come in selection order on both
    // paths).
    for (name, query, variables) in cases {
        let a = send(slow.clone(), &query, variables.clone()).await;
        let b = send(fast.clone(), &query, variables).await;
        let text = String::from_utf8_lossy(&a);
        assert!(!text.contains("\"errors\""), "{name}: {text}");
        assert_eq!(
            text,
            String::from_utf8_lossy(&b),
            "{name}: the fast path answered differently"
        );
    }
    // Bad nested page arguments, and a cursor (which belongs to one fund's list), are left to
    // the resolvers: the same errors, on every fund they concern.
    for (name, query, variables) in [
        (
            "a nested page size out of range",
            "{ funds(first: 3) { nodes { name investments(first: 500) { nodes { id } } } } }",
            json!({}),
        ),
        (
            "a nested page with both sizes",
            "{ funds(first: 3) { nodes { investments(first: 1, last: 1) { nodes { id } } } } }",
            json!({}),
        ),
        (
            "a nested page after a cursor",
            paged,
            json!({ "n": 2, "c": cursor }),
        ),
    ] {
        let a = send(slow.clone(), query, variables.clone()).await;
        let b = send(fast.clone(), query, variables).await;
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("BAD_USER_INPUT"), "{name}: {text}");
        assert_eq!(text, String::from_utf8_lossy(&b), "{name}");
    }
    // The fast path writes keys in selection order.
    let bytes = send(
        fast,
        "{ funds(first: 1) { nodes { c: name a: id b: __typename } } }",
        json!({}),
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    let (c, a, b) = (
        text.find("\"c\"").unwrap(),
        text.find("\"a\"").unwrap(),
        text.find("\"b\"").unwrap(),
    );
    assert!(c < a && a < b, "{text}");
}

/// Every key of `embedded` has the value the same field has when `root` fetches the whole row.
fn assert_fields_match(what: &str, embedded: &serde_json::Value, root: &serde_json::Value) {
    let fields = embedded.as_object().expect("an object");
    assert!(!fields.is_empty(), "{what}: no fields");
    for (key, value) in fields {
        assert_eq!(value, &root[key], "{what}: field {key}");
    }
}

/// A page fetches only the columns of related rows that the client's fields read; what every
/// field answers must still be the row's real value, whichever way the fields are selected
/// (aliases, fragments, `edges`, siblings asking for different fields in one statement), with
/// the fast path on and off.
#[tokio::test]
async fn related_rows_fetched_with_a_page_answer_every_selected_field() {
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.sql_conn).await.unwrap();
    let query = r#"{
      funds(first: 6) { nodes {
        a: investments(first: 3) { nodes { investorId fundId investor { name } fund { vintageYear } } }
        b: investments(first: 3) { nodes { investorId fundId other: investor { ... on Investor { email createdAt } } ...F } }
        c: investments(first: 3) { edges { node { investorId fundId investor { investorType updatedAt id __typename } fund { ...G } } } }
      } }
    }
    fragment F on Investment { investor { name email } fund { status targetSizeUsd } }
    fragment G on Fund { name createdAt updatedAt id }"#;
    // The fast path is on by default; the sibling answers through the resolvers only.
    let statements_before = app.statements();
    let fast = app.gql_ok(query, json!({})).await;
    // One statement for the funds, one for every page of every alias (same page size, so one
    // shape; the union of the related columns the aliases select).
    assert_eq!(app.statements() - statements_before, 2);
    let slow_router = app.sibling(|c| c.graphql_fast_path = false).await;
    let response = slow_router
        .oneshot(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(json!({ "query": query }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let slow: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(slow.get("errors").is_none(), "{slow}");
    for data in [fast, slow["data"].clone()] {
        let mut checked = 0;
        for fund in data["funds"]["nodes"].as_array().unwrap() {
            let nodes = fund["a"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .chain(fund["b"]["nodes"].as_array().unwrap())
                .chain(
                    fund["c"]["edges"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| &e["node"]),
                );
            for node in nodes {
                let investor = app
                    .gql_ok(
                        "query($id: UUID!) { investor(id: $id) { id name investorType email createdAt updatedAt __typename } }",
                        json!({ "id": node["investorId"] }),
                    )
                    .await;
                let fund_row = app
                    .gql_ok(
                        "query($id: UUID!) { fund(id: $id) { id name vintageYear targetSizeUsd status createdAt updatedAt } }",
                        json!({ "id": node["fundId"] }),
                    )
                    .await;
                for key in ["investor", "other"] {
                    if !node[key].is_null() {
                        assert_fields_match(key, &node[key], &investor["investor"]);
                    }
                }
                assert_fields_match("fund", &node["fund"], &fund_row["fund"]);
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} investments checked");
    }
}

/// The selection of one field of `ty` from the registry: scalars as they are, objects with
/// their `__typename` and `id`, connections with a page of ids.
fn select_field(
    registry: &async_graphql::registry::Registry,
    ty: &str,
    field: &str,
) -> Option<String> {
    use async_graphql::registry::{MetaType, MetaTypeName};
    let meta = registry.types.get(ty)?.field_by_name(field)?;
    // Fields with required arguments need values this walk does not invent.
    if meta
        .args
        .values()
        .any(|a| a.ty.ends_with('!') && a.default_value.is_none())
    {
        return None;
    }
    let target = MetaTypeName::concrete_typename(&meta.ty);
    Some(match registry.types.get(target) {
        Some(MetaType::Object { name, .. }) if name.ends_with("Connection") => {
            format!("{field}(first: 2) {{ pageInfo {{ hasNextPage }} nodes {{ __typename }} }}")
        }
        Some(MetaType::Object { .. }) => format!("{field} {{ __typename id }}"),
        _ => field.to_owned(),
    })
}

/// Every field of every object type reachable from the list and lookup roots, found by walking
/// the schema's registry (a field added later is covered without touching this test), answers
/// byte for byte the same with the fast path on and off: each field alone and all of a type's
/// fields together, as list items, as nested list items, as related rows of a page, and as a
/// root lookup.
#[tokio::test]
async fn every_field_of_the_schema_answers_the_same_on_both_paths() {
    use async_graphql::registry::{MetaType, MetaTypeName};
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.sql_conn).await.unwrap();
    // A mutation, so that the audit trail has a row to list.
    common::fixtures::fund(&app, "Audited", "FUNDRAISING").await;
    let registry = titanbay::graphql::registry();
    let slow = app.sibling(|c| c.graphql_fast_path = false).await;
    let fast = app.sibling(|c| c.graphql_fast_path = true).await;
    let ids = app
        .gql_ok(
            "{ funds(first: 1) { nodes { id investments(first: 1) { nodes { id investorId } } } } }",
            json!({}),
        )
        .await;
    let fund = ids["funds"]["nodes"][0]["id"].as_str().unwrap().to_owned();
    let investment = ids["funds"]["nodes"][0]["investments"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let investor = ids["funds"]["nodes"][0]["investments"]["nodes"][0]["investorId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The ways to reach an object: a template with `@@` where its selection goes, and its type.
    let mut ways: Vec<(String, String)> = Vec::new();
    let query = match registry.types.get("Query") {
        Some(MetaType::Object { fields, .. }) => fields,
        _ => panic!("no Query type"),
    };
    for (name, meta) in query {
        let target = MetaTypeName::concrete_typename(&meta.ty).to_owned();
        let id = match target.as_str() {
            "Fund" => &fund,
            "Investor" => &investor,
            "Investment" => &investment,
            _ => "",
        };
        match registry.types.get(&target) {
            Some(MetaType::Object {
                name: connection, ..
            }) if connection.ends_with("Connection") => {
                let node = connection.trim_end_matches("Connection").to_owned();
                ways.push((
                    format!("{name}(first: 5) {{ nodes {{ @@ }} }}"),
                    node.clone(),
                ));
                ways.push((
                    format!("{name}(first: 5) {{ edges {{ node {{ @@ }} }} }}"),
                    node,
                ));
            }
            Some(MetaType::Object { .. }) if !id.is_empty() => {
                ways.push((format!("{name}(id: \"{id}\") {{ @@ }}"), target));
            }
            _ => {}
        }
    }
    // One level down: the objects and connections of each list item's type.
    let mut nested = Vec::new();
    for (way, ty) in &ways {
        let Some(MetaType::Object { fields, .. }) = registry.types.get(ty) else {
            continue;
        };
        for (name, meta) in fields {
            let target = MetaTypeName::concrete_typename(&meta.ty).to_owned();
            match registry.types.get(&target) {
                Some(MetaType::Object {
                    name: connection, ..
                }) if connection.ends_with("Connection") => nested.push((
                    way.replace("@@", &format!("id {name}(first: 3) {{ nodes {{ @@ }} }}")),
                    connection.trim_end_matches("Connection").to_owned(),
                )),
                Some(MetaType::Object { .. }) if !target.starts_with("PageInfo") => {
                    nested.push((way.replace("@@", &format!("id {name} {{ @@ }}")), target));
                }
                _ => {}
            }
        }
    }
    ways.extend(nested);
    let send = |router: axum::Router, query: String| async move {
        let body = json!({ "query": query }).to_string();
        let response = router
            .oneshot(
                Request::post("/graphql")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    };
    let mut compared = std::collections::BTreeSet::new();
    let mut documents = 0;
    for (way, ty) in &ways {
        let Some(MetaType::Object { fields, .. }) = registry.types.get(ty) else {
            continue;
        };
        let selections: Vec<(String, String)> = fields
            .keys()
            .filter(|f| !f.starts_with("__"))
            .filter_map(|f| Some((f.clone(), select_field(&registry, ty, f)?)))
            .collect();
        let all = selections
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cases: Vec<(String, String)> = selections
            .iter()
            .map(|(f, s)| (format!("{ty}.{f}"), s.clone()))
            .collect();
        cases.push((format!("every field of {ty}"), all));
        for (what, selection) in cases {
            let query = format!("{{ {} }}", way.replace("@@", &selection));
            let a = send(slow.clone(), query.clone()).await;
            let b = send(fast.clone(), query.clone()).await;
            let text = String::from_utf8_lossy(&a);
            assert!(!text.contains("\"errors\""), "{query}: {text}");
            assert_eq!(
                text,
                String::from_utf8_lossy(&b),
                "{what} through {way}: the fast path answered differently"
            );
            compared.insert(what);
            documents += 1;
        }
    }
    // Every field of every declared object type was compared.
    for ty in ["Fund", "Investor", "Investment", "AuditEvent"] {
        let Some(MetaType::Object { fields, .. }) = registry.types.get(ty) else {
            panic!("{ty} is not in the schema");
        };
        for field in fields.keys().filter(|f| !f.starts_with("__")) {
            assert!(
                compared.contains(&format!("{ty}.{field}")),
                "{ty}.{field} was never compared"
            );
        }
    }
    assert!(documents > 100, "only {documents} documents");
}
