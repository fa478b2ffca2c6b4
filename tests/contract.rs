//! The GraphQL contract: validation at every boundary, every error code, the business rules and
//! GraphQL over HTTP, through the router on real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::{body::Body, http::Request};
use chrono::{Datelike, Duration, Utc};
use common::{TestApp, codes, field, fixtures::*};
use serde_json::{Value, json};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn fund_input(name: &str, year: i64, size: Value) -> Value {
    json!({ "input": { "name": name, "vintageYear": year, "targetSizeUsd": size } })
}

/// Asserts a single error with `code` (and `field` when given).
fn assert_error(body: &Value, code: &str, expected_field: Option<&str>) {
    assert_eq!(codes(body), [code], "{body:#}");
    if let Some(f) = expected_field {
        assert_eq!(field(body).as_deref(), Some(f), "{body:#}");
    }
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn vintage_years_are_accepted_from_1900_to_five_years_ahead() {
    let app = TestApp::spawn().await;
    let this_year = i64::from(Utc::now().year());
    for (year, ok) in [
        (1899, false),
        (1900, true),
        (this_year + 5, true),
        (this_year + 6, false),
    ] {
        let body = app
            .gql(CREATE_FUND, fund_input("F", year, json!("1.00")))
            .await;
        if ok {
            assert_eq!(body["data"]["createFund"]["vintageYear"], year, "{body:#}");
        } else {
            assert_error(&body, "BAD_USER_INPUT", Some("input.vintageYear"));
        }
    }
}

#[tokio::test]
async fn money_is_exact_text_with_two_decimals_and_never_a_float() {
    let app = TestApp::spawn().await;
    for (sent, returned) in [
        (json!("999999999999999999.99"), "999999999999999999.99"),
        (json!("0.3"), "0.30"),
        (json!("1200"), "1200.00"),
        (json!("1200.5"), "1200.50"),
        (json!(1200), "1200.00"),
        (json!("0.01"), "0.01"),
    ] {
        let body = app
            .gql(CREATE_FUND, fund_input("F", 2024, sent.clone()))
            .await;
        assert_eq!(
            body["data"]["createFund"]["targetSizeUsd"], returned,
            "{sent}: {body:#}"
        );
    }
    for bad in [
        json!("1000000000000000000.00"),
        json!("1000000000000000000"),
        json!("100.005"),
        json!("1.500"),
        json!("1e5"),
        json!("+5"),
        json!(" 5"),
        json!("abc"),
        json!(""),
        json!(1.5),
        json!(true),
        json!("0"),
        json!("0.00"),
        json!("-5"),
    ] {
        let body = app
            .gql(CREATE_FUND, fund_input("F", 2024, bad.clone()))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("input.targetSizeUsd"));
    }
    // Inline literals are held to the same rules.
    let inline = |size: &str| {
        format!(
            "mutation {{ createFund(input: {{name: \"F\", vintageYear: 2024, targetSizeUsd: {size}}}) {{ targetSizeUsd }} }}"
        )
    };
    assert_error(
        &app.gql(&inline("1.5"), json!({})).await,
        "BAD_USER_INPUT",
        Some("input.targetSizeUsd"),
    );
    assert_error(
        &app.gql(&inline("\"100.005\""), json!({})).await,
        "BAD_USER_INPUT",
        Some("input.targetSizeUsd"),
    );
    assert_eq!(
        app.gql_ok(&inline("42"), json!({})).await["createFund"]["targetSizeUsd"],
        "42.00"
    );
}

#[tokio::test]
async fn names_are_trimmed_and_between_1_and_255_characters() {
    let app = TestApp::spawn().await;
    let ok = app
        .gql_ok(CREATE_FUND, fund_input("  Spaced Out \t", 2024, json!("1")))
        .await;
    assert_eq!(ok["createFund"]["name"], "Spaced Out");
    let max = "ü".repeat(255);
    let ok = app
        .gql_ok(CREATE_FUND, fund_input(&max, 2024, json!("1")))
        .await;
    assert_eq!(ok["createFund"]["name"], max);
    for bad in [String::new(), "   ".to_owned(), "x".repeat(256)] {
        let body = app
            .gql(CREATE_FUND, fund_input(&bad, 2024, json!("1")))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("input.name"));
        let body = app
            .gql(CREATE_INVESTOR, json!({ "input": { "name": bad, "investorType": "INDIVIDUAL", "email": "a@b.co" } }))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("input.name"));
    }
}

#[tokio::test]
async fn emails_are_checked_trimmed_and_stored_lower_cased() {
    let app = TestApp::spawn().await;
    let created = app
        .gql_ok(
            CREATE_INVESTOR,
            json!({ "input": { "name": "Jane", "investorType": "INDIVIDUAL", "email": "  Jane.Doe@Example.COM " } }),
        )
        .await;
    assert_eq!(created["createInvestor"]["email"], "jane.doe@example.com");
    assert_eq!(created["createInvestor"]["investorType"], "INDIVIDUAL");
    let long_ok = format!("{}@example.com", "a".repeat(308));
    let too_long = format!("{}@example.com", "a".repeat(309));
    let ok = app
        .gql(
            CREATE_INVESTOR,
            json!({ "input": { "name": "L", "investorType": "INSTITUTION", "email": long_ok } }),
        )
        .await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    for bad in [
        "",
        "plain",
        "no@dot",
        "two@@x.com",
        "a b@x.com",
        "@x.com",
        "a@",
        too_long.as_str(),
    ] {
        let body = app
            .gql(
                CREATE_INVESTOR,
                json!({ "input": { "name": "N", "investorType": "FAMILY_OFFICE", "email": bad } }),
            )
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("input.email"));
    }
}

#[tokio::test]
async fn investment_dates_run_from_1900_to_one_year_after_today() {
    let app = TestApp::spawn().await;
    let fund = fund(&app, "F", "FUNDRAISING").await;
    let investor = investor(&app, "I", "i@x.co").await;
    let today = Utc::now().date_naive();
    let in_a_year = today
        .with_year(today.year() + 1)
        .unwrap_or(today + Duration::days(365));
    let create = |date: String| json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": date } });
    for (date, ok) in [
        ("1899-12-31".to_owned(), false),
        ("1900-01-01".to_owned(), true),
        (in_a_year.to_string(), true),
        ((in_a_year + Duration::days(1)).to_string(), false),
        ("9999-12-31".to_owned(), false),
    ] {
        let body = app.gql(CREATE_INVESTMENT, create(date.clone())).await;
        if ok {
            assert_eq!(
                body["data"]["createInvestment"]["investmentDate"], date,
                "{body:#}"
            );
        } else {
            assert_error(&body, "BAD_USER_INPUT", Some("input.investmentDate"));
        }
    }
    for malformed in [
        "2024-13-01",
        "2024-02-30",
        "24-01-01",
        "2024-01-01T00:00:00Z",
        "yesterday",
    ] {
        let body = app
            .gql(CREATE_INVESTMENT, create(malformed.to_owned()))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("input.investmentDate"));
    }
}

#[tokio::test]
async fn malformed_uuids_are_bad_input_and_the_nil_uuid_finds_nothing() {
    let app = TestApp::spawn().await;
    for q in ["fund", "investor", "investment"] {
        let data = app
            .gql_ok(
                &format!("query($id: UUID!) {{ {q}(id: $id) {{ id }} }}"),
                json!({ "id": NIL }),
            )
            .await;
        assert_eq!(data[q], Value::Null);
        let body = app
            .gql(
                &format!("query($id: UUID!) {{ {q}(id: $id) {{ id }} }}"),
                json!({ "id": "nope" }),
            )
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("id"));
        let body = app
            .gql(&format!("{{ {q}(id: \"1234\") {{ id }} }}"), json!({}))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some("id"));
    }
    let body = app
        .gql(
            CREATE_INVESTMENT,
            json!({ "input": { "fundId": "x", "investorId": NIL, "amountUsd": "1", "investmentDate": "2024-01-01" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT", Some("input.fundId"));
}

#[tokio::test]
async fn a_missing_required_variable_is_bad_input_before_execution() {
    let app = TestApp::spawn().await;
    let response = app
        .post("query($id: UUID!) { fund(id: $id) { id } }", json!({}))
        .await;
    assert_error(&response.body, "BAD_USER_INPUT", Some("id"));
    assert!(response.body.get("data").is_none());
}

#[tokio::test]
async fn documents_that_do_not_parse_or_validate_get_their_codes() {
    let app = TestApp::spawn().await;
    assert_error(
        &app.gql("{ funds { ", json!({})).await,
        "GRAPHQL_PARSE_FAILED",
        None,
    );
    assert_error(
        &app.gql("{ nope }", json!({})).await,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    );
    assert_error(
        &app.gql("{ funds(size: 3) { totalCount } }", json!({}))
            .await,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    );
    assert_error(
        &app.gql("mutation { createFund(input: {name: \"F\", vintageYear: 2024, targetSizeUsd: \"1\", color: 1}) { id } }", json!({}))
            .await,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    );
    assert_error(
        &app.gql("{ funds }", json!({})).await,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    );
    // An unknown field in a variable's value is a bad value, not a bad document.
    let body = app
        .gql(CREATE_FUND, json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1", "color": 1 } }))
        .await;
    assert_error(&body, "BAD_USER_INPUT", Some("input"));
    // An enum value that does not exist.
    let body = app
        .gql(CREATE_FUND, json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1", "status": "OPEN" } }))
        .await;
    assert_error(&body, "BAD_USER_INPUT", Some("input.status"));
}

#[tokio::test]
async fn depth_and_complexity_over_the_limits_are_refused_before_running() {
    let app = TestApp::spawn().await;
    let before = app.statements();
    // 11 levels: funds > nodes > investments > nodes > fund > investments > nodes > investor > investments > nodes > id
    let deep = "{ funds { nodes { investments { nodes { fund { investments { nodes { investor { investments { nodes { id } } } } } } } } } } }";
    assert_error(&app.gql(deep, json!({})).await, "QUERY_TOO_COMPLEX", None);
    // 10 levels run.
    let ten = "{ funds(first: 1) { nodes { investments(first: 1) { nodes { fund { investments(first: 1) { nodes { investor { investments(first: 1) { totalCount } } } } } } } } } }";
    let ok = app.gql(ten, json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    let wide =
        "{ funds(first: 100) { nodes { investments(first: 100) { nodes { id amountUsd } } } } }";
    assert_error(&app.gql(wide, json!({})).await, "QUERY_TOO_COMPLEX", None);
    assert_eq!(
        app.statements(),
        before + 1,
        "only the 10-level query ran (one statement: funds)"
    );
}

#[tokio::test]
async fn page_arguments_are_checked() {
    let app = TestApp::spawn().await;
    for (args, expected_field) in [
        ("first: 101", "first"),
        ("first: -1", "first"),
        ("last: 101", "last"),
        ("first: 1, last: 1", "last"),
        ("after: \"garbage\"", "after"),
        ("before: \"Zm9v\"", "before"),
    ] {
        let body = app
            .gql(&format!("{{ funds({args}) {{ totalCount }} }}"), json!({}))
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some(expected_field));
    }
    let ok = app
        .gql(
            "{ funds(first: 100) { totalCount } investors(last: 0) { totalCount } }",
            json!({}),
        )
        .await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    // A cursor of one list is refused on another.
    fund(&app, "F", "FUNDRAISING").await;
    let data = app
        .gql_ok("{ funds(first: 1) { pageInfo { endCursor } } }", json!({}))
        .await;
    let cursor = data["funds"]["pageInfo"]["endCursor"].as_str().unwrap();
    let body = app
        .gql(
            "query($c: String) { investors(after: $c) { totalCount } }",
            json!({ "c": cursor }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT", Some("after"));
}

// ---------------------------------------------------------------- business rules

#[tokio::test]
async fn update_fund_is_partial_and_moves_updated_at_only_when_something_is_given() {
    let app = TestApp::spawn().await;
    let created = app
        .gql_ok(CREATE_FUND, fund_input("Before", 2020, json!("10.00")))
        .await["createFund"]
        .clone();
    let id = created["id"].as_str().unwrap();

    let same = app
        .gql_ok(UPDATE_FUND, json!({ "input": { "id": id } }))
        .await["updateFund"]
        .clone();
    assert_eq!(same, created, "an update with only the id changes nothing");

    let renamed = app
        .gql_ok(
            UPDATE_FUND,
            json!({ "input": { "id": id, "name": " After " } }),
        )
        .await["updateFund"]
        .clone();
    assert_eq!(renamed["name"], "After");
    assert_eq!(renamed["vintageYear"], 2020);
    assert_eq!(renamed["targetSizeUsd"], "10.00");
    assert_eq!(renamed["createdAt"], created["createdAt"]);
    assert!(renamed["updatedAt"].as_str() > created["updatedAt"].as_str());

    let again = app
        .gql_ok(
            UPDATE_FUND,
            json!({ "input": { "id": id, "targetSizeUsd": "20" } }),
        )
        .await["updateFund"]
        .clone();
    assert!(again["updatedAt"].as_str() > renamed["updatedAt"].as_str());
    assert_eq!(again["targetSizeUsd"], "20.00");

    let read = app
        .gql_ok("query($id: UUID!) { fund(id: $id) { id name vintageYear targetSizeUsd status createdAt updatedAt } }", json!({ "id": id }))
        .await;
    assert_eq!(
        read["fund"], again,
        "a mutation's reply equals a later read"
    );

    for (field_name, null_field) in [
        ("name", "input.name"),
        ("vintageYear", "input.vintageYear"),
        ("targetSizeUsd", "input.targetSizeUsd"),
        ("status", "input.status"),
    ] {
        let body = app
            .gql(
                UPDATE_FUND,
                json!({ "input": { "id": id, field_name: null } }),
            )
            .await;
        assert_error(&body, "BAD_USER_INPUT", Some(null_field));
    }
    assert_error(
        &app.gql(
            UPDATE_FUND,
            json!({ "input": { "id": id, "vintageYear": 1899 } }),
        )
        .await,
        "BAD_USER_INPUT",
        Some("input.vintageYear"),
    );
    assert_error(
        &app.gql(UPDATE_FUND, json!({ "input": { "id": NIL, "name": "x" } }))
            .await,
        "NOT_FOUND",
        Some("input.id"),
    );
    // Validation comes before existence.
    assert_error(
        &app.gql(UPDATE_FUND, json!({ "input": { "id": NIL, "name": "" } }))
            .await,
        "BAD_USER_INPUT",
        Some("input.name"),
    );
}

#[tokio::test]
async fn the_fund_lifecycle_only_moves_forward_and_closed_funds_can_still_be_corrected() {
    let app = TestApp::spawn().await;
    let id = fund(&app, "Life", "FUNDRAISING").await;
    let set = |status: &str| json!({ "input": { "id": id, "status": status } });
    assert_eq!(
        app.gql_ok(UPDATE_FUND, set("FUNDRAISING")).await["updateFund"]["status"],
        "FUNDRAISING"
    );
    assert_eq!(
        app.gql_ok(UPDATE_FUND, set("INVESTING")).await["updateFund"]["status"],
        "INVESTING"
    );
    assert_error(
        &app.gql(UPDATE_FUND, set("FUNDRAISING")).await,
        "INVALID_STATUS_TRANSITION",
        None,
    );
    assert_eq!(
        app.gql_ok(UPDATE_FUND, set("CLOSED")).await["updateFund"]["status"],
        "CLOSED"
    );
    assert_error(
        &app.gql(UPDATE_FUND, set("INVESTING")).await,
        "INVALID_STATUS_TRANSITION",
        None,
    );
    let fixed = app
        .gql_ok(
            UPDATE_FUND,
            json!({ "input": { "id": id, "name": "Life (corrected)", "targetSizeUsd": "5.5" } }),
        )
        .await;
    assert_eq!(fixed["updateFund"]["name"], "Life (corrected)");
    assert_eq!(fixed["updateFund"]["targetSizeUsd"], "5.50");
    assert_eq!(fixed["updateFund"]["status"], "CLOSED");
    // Skipping ahead is allowed.
    let other = fund(&app, "Skip", "FUNDRAISING").await;
    let closed = app
        .gql_ok(
            UPDATE_FUND,
            json!({ "input": { "id": other, "status": "CLOSED" } }),
        )
        .await;
    assert_eq!(closed["updateFund"]["status"], "CLOSED");
}

#[tokio::test]
async fn investments_check_existence_then_the_closed_rule() {
    let app = TestApp::spawn().await;
    let open = fund(&app, "Open", "FUNDRAISING").await;
    let investing = fund(&app, "Investing", "INVESTING").await;
    let closed = fund(&app, "Closed", "CLOSED").await;
    let inv = investor(&app, "I", "i@x.co").await;
    let create = |f: &str, i: &str, amount: &str| json!({ "input": { "fundId": f, "investorId": i, "amountUsd": amount, "investmentDate": "2024-06-30" } });
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(NIL, &inv, "1")).await,
        "NOT_FOUND",
        Some("input.fundId"),
    );
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(&open, NIL, "1")).await,
        "NOT_FOUND",
        Some("input.investorId"),
    );
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(NIL, NIL, "1")).await,
        "NOT_FOUND",
        Some("input.fundId"),
    );
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(&closed, NIL, "1")).await,
        "NOT_FOUND",
        Some("input.investorId"),
    );
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(&closed, &inv, "1")).await,
        "FUND_CLOSED",
        None,
    );
    assert_error(
        &app.gql(CREATE_INVESTMENT, create(NIL, NIL, "0")).await,
        "BAD_USER_INPUT",
        Some("input.amountUsd"),
    );
    let made = app
        .gql_ok(CREATE_INVESTMENT, create(&investing, &inv, "10.5"))
        .await;
    assert_eq!(made["createInvestment"]["amountUsd"], "10.50");
    assert_eq!(made["createInvestment"]["fundId"], investing);
    // Top-ups: the same investor may invest in the same fund again.
    app.gql_ok(CREATE_INVESTMENT, create(&open, &inv, "1"))
        .await;
    app.gql_ok(CREATE_INVESTMENT, create(&open, &inv, "2"))
        .await;
    let count: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(count, 3, "refused investments left nothing behind");
}

#[tokio::test]
async fn one_investor_per_email_case_insensitively() {
    let app = TestApp::spawn().await;
    investor(&app, "First", "dup@example.com").await;
    let body = app
        .gql(CREATE_INVESTOR, json!({ "input": { "name": "Second", "investorType": "INDIVIDUAL", "email": " DUP@Example.com" } }))
        .await;
    assert_error(&body, "CONFLICT", Some("input.email"));
    let found = app
        .gql_ok(
            "{ investors(filter: {email: \"Dup@EXAMPLE.com\"}) { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(found["investors"]["totalCount"], 1);
    assert_eq!(found["investors"]["nodes"][0]["name"], "First");
}

#[tokio::test]
async fn sums_of_many_cent_amounts_are_exact() {
    let app = TestApp::spawn().await;
    let f = fund(&app, "Cents", "FUNDRAISING").await;
    let a = investor(&app, "A", "a@x.co").await;
    let b = investor(&app, "B", "b@x.co").await;
    // 0.01 + 0.02 + … + 0.99 (99 amounts) and one huge amount: float sums would drift.
    let mut expected_cents: i128 = 0;
    for cents in 1..=99i128 {
        let who = if cents % 2 == 0 { &a } else { &b };
        investment(&app, &f, who, &format!("0.{cents:02}"), "2024-01-01").await;
        expected_cents += cents;
    }
    investment(&app, &f, &a, "999999999999999.99", "2024-01-02").await;
    expected_cents += 99_999_999_999_999_999;
    let data = app
        .gql_ok(
            "query($id: UUID!) { fund(id: $id) { totalCommittedUsd investorCount investments { totalCount } } investor(id: $id) { id } }",
            json!({ "id": f }),
        )
        .await;
    let expected = format!("{}.{:02}", expected_cents / 100, expected_cents % 100);
    assert_eq!(data["fund"]["totalCommittedUsd"], expected);
    assert_eq!(data["fund"]["investorCount"], 2);
    assert_eq!(data["fund"]["investments"]["totalCount"], 100);
    let empty = fund(&app, "Empty", "FUNDRAISING").await;
    let data = app
        .gql_ok(
            "query($id: UUID!) { fund(id: $id) { totalCommittedUsd investorCount } }",
            json!({ "id": empty }),
        )
        .await;
    assert_eq!(
        data["fund"],
        json!({ "totalCommittedUsd": "0.00", "investorCount": 0 })
    );
}

// ---------------------------------------------------------------- lists and filters

#[tokio::test]
async fn fund_lists_filter_page_and_count() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for (name, status) in [
        ("Alpha 50% Fund", "FUNDRAISING"),
        ("Beta_Fund", "INVESTING"),
        ("alpha growth", "FUNDRAISING"),
        ("Gamma", "CLOSED"),
        ("Alpha5 Fund", "FUNDRAISING"),
    ] {
        ids.push(fund(&app, name, status).await);
    }
    let names = |data: &Value| -> Vec<String> {
        data["funds"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app
        .gql_ok("{ funds { totalCount nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        names(&all),
        [
            "Alpha 50% Fund",
            "Beta_Fund",
            "alpha growth",
            "Gamma",
            "Alpha5 Fund"
        ]
    );
    let by_status = app
        .gql_ok(
            "{ funds(filter: {status: FUNDRAISING}) { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(by_status["funds"]["totalCount"], 3);
    let contains = app
        .gql_ok(
            "{ funds(filter: {nameContains: \"ALPHA\"}) { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(contains["funds"]["totalCount"], 3);
    let percent = app
        .gql_ok(
            "{ funds(filter: {nameContains: \"0%\"}) { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(names(&percent), ["Alpha 50% Fund"]);
    let underscore = app
        .gql_ok(
            "{ funds(filter: {nameContains: \"a_f\"}) { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(names(&underscore), ["Beta_Fund"]);
    let combined = app
        .gql_ok("{ funds(filter: {status: FUNDRAISING, vintageYear: 2024, nameContains: \"fund\"}) { totalCount } }", json!({}))
        .await;
    assert_eq!(combined["funds"]["totalCount"], 2);
    let none = app
        .gql_ok(
            "{ funds(filter: {vintageYear: 1999}) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(none["funds"], json!({ "totalCount": 0, "nodes": [] }));

    // Forward pages of 2, then backward from the end.
    let page1 = app
        .gql_ok("{ funds(first: 2) { edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }", json!({}))
        .await;
    assert_eq!(page1["funds"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(page1["funds"]["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(
        page1["funds"]["pageInfo"]["startCursor"],
        page1["funds"]["edges"][0]["cursor"]
    );
    let after = page1["funds"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .gql_ok("query($a: String) { funds(first: 2, after: $a) { nodes { name } pageInfo { hasNextPage hasPreviousPage } } }", json!({ "a": after }))
        .await;
    assert_eq!(names(&page2), ["alpha growth", "Gamma"]);
    assert_eq!(
        page2["funds"]["pageInfo"],
        json!({ "hasNextPage": true, "hasPreviousPage": true })
    );
    let last2 = app
        .gql_ok(
            "{ funds(last: 2) { nodes { name } pageInfo { hasNextPage hasPreviousPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(names(&last2), ["Gamma", "Alpha5 Fund"]);
    assert_eq!(
        last2["funds"]["pageInfo"],
        json!({ "hasNextPage": false, "hasPreviousPage": true })
    );
    let empty = app
        .gql_ok("{ funds(first: 0) { edges { cursor } pageInfo { hasNextPage startCursor endCursor } } }", json!({}))
        .await;
    assert_eq!(
        empty["funds"],
        json!({ "edges": [], "pageInfo": { "hasNextPage": true, "startCursor": null, "endCursor": null } })
    );
    // A cursor is a position: it may be reused with another filter.
    let filtered = app
        .gql_ok(
            "query($a: String) { funds(after: $a, filter: {status: FUNDRAISING}) { nodes { name } } }",
            json!({ "a": after }),
        )
        .await;
    assert_eq!(names(&filtered), ["alpha growth", "Alpha5 Fund"]);
}

#[tokio::test]
async fn investor_lists_filter_by_type_and_email() {
    let app = TestApp::spawn().await;
    investor(&app, "Inst", "inst@x.co").await;
    app.gql_ok(
        CREATE_INVESTOR,
        json!({ "input": { "name": "Fam", "investorType": "FAMILY_OFFICE", "email": "fam@x.co" } }),
    )
    .await;
    let data = app
        .gql_ok(
            "{ a: investors(filter: {investorType: FAMILY_OFFICE}) { totalCount nodes { name investorType } } b: investors(filter: {email: \" INST@X.CO \"}) { nodes { name } } c: investors { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["a"],
        json!({ "totalCount": 1, "nodes": [{ "name": "Fam", "investorType": "FAMILY_OFFICE" }] })
    );
    assert_eq!(data["b"]["nodes"], json!([{ "name": "Inst" }]));
    assert_eq!(data["c"]["totalCount"], 2);
}

// ---------------------------------------------------------------- GraphQL over HTTP

fn post_with(accept: &str, content_type: &str, body: String) -> Request<Body> {
    Request::post("/graphql")
        .header("accept", accept)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

const SPEC: &str = "application/graphql-response+json";

#[tokio::test]
async fn request_errors_are_400_with_the_spec_media_type_and_200_with_json() {
    let app = TestApp::spawn().await;
    let bad = json!({ "query": "{ funds { " }).to_string();
    let spec = app
        .send(post_with(SPEC, "application/json", bad.clone()))
        .await;
    assert_eq!(spec.status, 400);
    assert!(
        spec.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(SPEC)
    );
    assert!(
        spec.body.get("data").is_none(),
        "no data key when execution never started"
    );
    assert_eq!(spec.codes(), ["GRAPHQL_PARSE_FAILED"]);
    let legacy = app
        .send(post_with("application/json", "application/json", bad))
        .await;
    assert_eq!(legacy.status, 200);
    assert!(
        legacy.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(legacy.codes(), ["GRAPHQL_PARSE_FAILED"]);

    // A bad variable is a request error too.
    let var =
        json!({ "query": "query($id: UUID!) { fund(id: $id) { id } }", "variables": { "id": 5 } })
            .to_string();
    let spec = app.send(post_with(SPEC, "application/json", var)).await;
    assert_eq!(spec.status, 400);
    assert_eq!(spec.codes(), ["BAD_USER_INPUT"]);

    // Errors during execution ride along with data: 200.
    let f = fund(&app, "Closed", "CLOSED").await;
    let i = investor(&app, "I", "i@x.co").await;
    let exec = json!({ "query": CREATE_INVESTMENT, "variables": { "input": { "fundId": f, "investorId": i, "amountUsd": "1", "investmentDate": "2024-01-01" } } }).to_string();
    let spec = app.send(post_with(SPEC, "application/json", exec)).await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.codes(), ["FUND_CLOSED"]);
    assert!(spec.body.get("data").is_some());
}

#[tokio::test]
async fn bodies_that_are_not_graphql_requests_are_400() {
    let app = TestApp::spawn().await;
    for body in ["{not json", "[]", "42", "{\"query\": 5}"] {
        let response = app
            .send(post_with(SPEC, "application/json", body.to_owned()))
            .await;
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.codes(), ["BAD_REQUEST"], "{body}");
    }
    let response = app
        .send(post_with(
            SPEC,
            "text/plain",
            json!({ "query": "{ __typename }" }).to_string(),
        ))
        .await;
    assert_eq!(response.status, 415);
    let response = app
        .send(post_with(
            "text/html",
            "application/json",
            json!({ "query": "{ __typename }" }).to_string(),
        ))
        .await;
    assert_eq!(response.status, 406);
    let unknown_op =
        json!({ "query": "query A { __typename } query B { __typename }", "operationName": "C" })
            .to_string();
    let response = app
        .send(post_with(SPEC, "application/json", unknown_op))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.codes(), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn queries_run_over_get_and_mutations_over_get_are_405() {
    let app = TestApp::spawn().await;
    let get = |query: &str| {
        let encoded: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Request::get(format!("/graphql?query={encoded}"))
            .header("accept", SPEC)
            .body(Body::empty())
            .unwrap()
    };
    let ok = app.send(get("{ funds { totalCount } }")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["data"]["funds"]["totalCount"], 0);
    let mutation = app
        .send(get("mutation { createFund(input: {name: \"x\", vintageYear: 2024, targetSizeUsd: \"1\"}) { id } }"))
        .await;
    assert_eq!(mutation.status, 405);
    assert_eq!(mutation.codes(), ["METHOD_NOT_ALLOWED"]);
    let count: i64 = app.sql_scalar("SELECT count(*) FROM funds").await;
    assert_eq!(count, 0);
    let with_vars = app
        .send(
            Request::get("/graphql?query=query(%24id%3AUUID!)%7Bfund(id%3A%24id)%7Bid%7D%7D&variables=%7B%22id%22%3A%2200000000-0000-0000-0000-000000000000%22%7D")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(with_vars.body, json!({ "data": { "fund": null } }));
}

#[tokio::test]
async fn batches_answer_in_order_up_to_the_limit() {
    let app = TestApp::spawn_with(|c| c.limits.max_batch_size = 3).await;
    let batch = json!([
        { "query": "{ a: funds { totalCount } }" },
        { "query": "{ nope }" },
        { "query": "query Q { b: investors { totalCount } }", "operationName": "Q" }
    ])
    .to_string();
    let response = app.send(post_with(SPEC, "application/json", batch)).await;
    assert_eq!(response.status, 200);
    let items = response.body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["data"]["a"]["totalCount"], 0);
    assert_eq!(codes(&items[1]), ["GRAPHQL_VALIDATION_FAILED"]);
    assert_eq!(items[2]["data"]["b"]["totalCount"], 0);
    let too_many = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]).to_string();
    let response = app
        .send(post_with(SPEC, "application/json", too_many))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.codes(), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn unexpected_failures_are_internal_errors_without_details() {
    let app = TestApp::spawn().await;
    let f = fund(&app, "F", "FUNDRAISING").await;
    app.sql("DROP TABLE investments").await;
    let body = app
        .gql(
            "query($id: UUID!) { fund(id: $id) { name investments { totalCount } } }",
            json!({ "id": f }),
        )
        .await;
    assert_eq!(codes(&body), ["INTERNAL_SERVER_ERROR"]);
    let text = body.to_string();
    assert!(
        !text.contains("relation") && !text.contains("investments\" does not"),
        "{text}"
    );
    assert_eq!(body["data"]["fund"], Value::Null, "{body:#}");
}

/// Response objects list their fields in the order the selection asked for them, whichever
/// finished first (GraphQL spec, "Serialized Map Ordering"): here the fields that wait on the
/// database come first and the ones answered from memory after them, at every level.
#[tokio::test]
async fn response_fields_come_in_the_order_they_were_selected() {
    let app = TestApp::spawn().await;
    let fund = fund(&app, "Ordered Fund", "FUNDRAISING").await;
    let investor = investor(&app, "Ordered Investor", "ordered@example.com").await;
    investment(&app, &fund, &investor, "10.00", "2024-01-02").await;
    let query = "query($id: UUID!) { fund(id: $id) { \
        totalCommittedUsd investorCount \
        investments(first: 1) { totalCount pageInfo { hasNextPage } nodes { investor { totalCommittedUsd name } amountUsd } } \
        name id } \
        funds(first: 1) { totalCount nodes { name } } }";
    for _ in 0..3 {
        let response = app.post(query, json!({ "id": fund })).await;
        assert!(response.body.get("errors").is_none(), "{:#}", response.body);
        let text = std::str::from_utf8(&response.raw).unwrap();
        let keys = [
            "\"fund\"",
            "\"totalCommittedUsd\"",
            "\"investorCount\"",
            "\"investments\"",
            "\"totalCount\"",
            "\"pageInfo\"",
            "\"nodes\"",
            "\"investor\"",
            "\"totalCommittedUsd\"",
            "\"name\"",
            "\"amountUsd\"",
            "\"name\"",
            "\"id\"",
            "\"funds\"",
            "\"totalCount\"",
            "\"nodes\"",
            "\"name\"",
        ];
        let mut from = 0;
        for key in keys {
            let Some(at) = text[from..].find(key) else {
                panic!("{key} missing or out of order after byte {from}: {text}");
            };
            from += at + key.len();
        }
    }
}
