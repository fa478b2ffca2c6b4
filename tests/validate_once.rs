//! A cached document that has run cleanly skips the validation rules that depend on the
//! document alone (`GRAPHQL_VALIDATE_ONCE`); the answers, errors included, are byte for byte
//! those of full validation on every request, whatever the variables.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::{Router, body::Body, http::Request};
use common::TestApp;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(router: &Router, query: &str, variables: &Value) -> (u16, String) {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let response = router
        .clone()
        .oneshot(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn validations(router: &Router) -> (u64, u64) {
    let response = router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    let count = |mode: &str| -> u64 {
        let prefix = format!("titanbay_graphql_validations_total{{mode=\"{mode}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in metrics"))
    };
    (count("full"), count("reused"))
}

#[tokio::test]
async fn reused_validation_answers_exactly_what_full_validation_answers() {
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.db().conn).await.unwrap();
    let full = app.sibling(|c| c.graphql_validate_once = false).await;
    let once = app.sibling(|c| c.graphql_validate_once = true).await;
    let ids = app
        .gql_ok(
            "{ funds(first: 1, filter: { status: FUNDRAISING }) { nodes { id } } investors(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let fund = ids["funds"]["nodes"][0]["id"].clone();
    let investor = ids["investors"]["nodes"][0]["id"].clone();

    let by_id = "query($id: UUID!) { fund(id: $id) { name investments(first: 2) { nodes { amountUsd } } } }";
    let page = "query($first: Int, $status: FundStatus) { funds(first: $first, filter: { status: $status }) { nodes { name } } }";
    let filter =
        "query($filter: FundFilter) { funds(first: 2, filter: $filter) { nodes { name status } } }";
    let directive = "query($id: UUID!, $inc: Boolean!) { fund(id: $id) { name vintageYear @include(if: $inc) } }";
    let nested = "query($id: UUID!, $n: Int) { fund(id: $id) { investments(first: $n) { nodes { investor { name } } } } }";
    // Page sizes from variables: the complexity (page sizes multiplied) is checked on every
    // request even once the document is known to be valid.
    let sizes = "query($a: Int, $b: Int) { funds(first: $a) { nodes { investments(first: $b) { nodes { amountUsd investor { name } } } } } }";
    let cases: Vec<(&str, Value)> = vec![
        // Each document first runs cleanly (so that later requests may reuse its validation),
        // then with every kind of bad variable, then cleanly again.
        (by_id, json!({ "id": fund })),
        (by_id, json!({ "id": "not-a-uuid" })),
        (by_id, json!({ "id": 42 })),
        (by_id, json!({ "id": null })),
        (by_id, json!({})),
        (by_id, json!({ "id": ["a"] })),
        (by_id, json!({ "id": fund, "unused": "x" })),
        (page, json!({ "first": 2, "status": "OPEN" })),
        (page, json!({ "first": 2, "status": "FUNDRAISING" })),
        (page, json!({ "first": 2, "status": "NOT_A_STATUS" })),
        (page, json!({ "first": "two" })),
        (page, json!({ "first": 2.5 })),
        (page, json!({ "first": 1_u64 << 40 })),
        (page, json!({ "first": -1 })),
        (page, json!({ "first": 100_000 })),
        (page, json!({ "first": null, "status": null })),
        (filter, json!({ "filter": { "status": "CLOSED" } })),
        (filter, json!({ "filter": { "status": "closed" } })),
        (filter, json!({ "filter": { "nope": 1 } })),
        (filter, json!({ "filter": "CLOSED" })),
        (filter, json!({ "filter": ["CLOSED"] })),
        (filter, json!({ "filter": { "nameContains": 5 } })),
        (filter, json!({ "filter": null })),
        (directive, json!({ "id": fund, "inc": true })),
        (directive, json!({ "id": fund, "inc": "yes" })),
        (directive, json!({ "id": fund, "inc": null })),
        (directive, json!({ "id": fund, "inc": false })),
        (nested, json!({ "id": fund, "n": 1 })),
        (nested, json!({ "id": fund, "n": "1" })),
        (
            nested,
            json!({ "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "n": "1" }),
        ),
        (nested, json!({ "id": fund, "n": -3 })),
        (nested, json!({ "id": fund, "n": 1 })),
        (sizes, json!({ "a": 2, "b": 2 })),
        (sizes, json!({ "a": 100, "b": 100 })),
        (sizes, json!({ "a": 100 })),
        (sizes, json!({ "a": 2, "b": 2 })),
        // Never valid: refused in full every time.
        ("{ fund { nope } }", json!({})),
        (
            "query($x: Int) { funds { nodes { name } } }",
            json!({ "x": 1 }),
        ),
    ];
    for round in 0..2 {
        for (query, variables) in &cases {
            let expected = send(&full, query, variables).await;
            let got = send(&once, query, variables).await;
            assert_eq!(
                got, expected,
                "round {round}: {query} with {variables} differs from full validation"
            );
        }
    }

    // The page sizes' complexity is refused after the document ran cleanly (and the known
    // validation of the same document, with small sizes, is not reused for it).
    let (_, body) = send(&once, sizes, &json!({ "a": 100, "b": 100 })).await;
    assert!(body.contains("QUERY_TOO_COMPLEX"), "{body}");

    // Mutations: a clean run first, then bad inputs (which change nothing).
    let create = "mutation($input: CreateInvestmentInput!) { createInvestment(input: $input) { amountUsd investmentDate } }";
    let good = json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "10.00", "investmentDate": "2024-01-02" } });
    for router in [&full, &once] {
        let (status, body) = send(router, create, &good).await;
        assert_eq!(status, 200);
        assert!(!body.contains("errors"), "{body}");
    }
    let count = "query($id: UUID!) { fund(id: $id) { investments { totalCount } } }";
    let before = app.gql_ok(count, json!({ "id": fund })).await;
    let bad_inputs = [
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.234", "investmentDate": "2024-01-02" } }),
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": 5.5, "investmentDate": "2024-01-02" } }),
        json!({ "input": { "fundId": fund, "investorId": investor, "investmentDate": "2024-01-02" } }),
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-01-02", "extra": 1 } }),
        json!({ "input": { "fundId": "nope", "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-01-02" } }),
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "02/01/2024" } }),
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "-1.00", "investmentDate": "2024-01-02" } }),
        json!({ "input": null }),
        json!({ "input": [1] }),
    ];
    for variables in &bad_inputs {
        let expected = send(&full, create, variables).await;
        let got = send(&once, create, variables).await;
        assert_eq!(got, expected, "{variables} differs from full validation");
        assert!(
            got.1.contains("\"code\""),
            "{variables} must be refused: {}",
            got.1
        );
    }
    let after = app.gql_ok(count, json!({ "id": fund })).await;
    assert_eq!(before, after, "a refused mutation changed data");

    // The reuse did happen on the switched-on router (and never on the other).
    let (_, reused) = validations(&once).await;
    assert!(
        reused >= 20,
        "only {reused} executions reused their validation"
    );
    let (full_count, reused_off) = validations(&full).await;
    assert_eq!(reused_off, 0);
    assert!(full_count > 0);
}
