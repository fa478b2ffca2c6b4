//! Property tests and fuzzing: money text, cursors and validation never panic and keep their
//! promises; thousands of random and mutated GraphQL documents with random variables go through
//! the router without a panic, a 5xx, or an error lacking a code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::{body::Body, http::Request};
use common::TestApp;
use proptest::prelude::*;
use serde_json::{Value, json};
use titanbay::{
    domain,
    graphql::cursor::{self, Scope},
    service::investment::Parent,
};
use tower::ServiceExt;

/// The contract's grammar for decimal text, written independently of the parser.
fn is_contract_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = unsigned
        .split_once('.')
        .map_or((unsigned, None), |(i, f)| (i, Some(f)));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && frac.is_none_or(|f| digits(f) && f.len() <= 2)
        && int.trim_start_matches('0').len() <= 18
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn money_round_trips_exactly(units in -999_999_999_999_999_999i128..=999_999_999_999_999_999i128, cents in 0u8..100) {
        let text = if units < 0 {
            format!("-{}.{cents:02}", -units)
        } else {
            format!("{units}.{cents:02}")
        };
        let parsed = domain::parse_money(&text).unwrap();
        prop_assert_eq!(domain::format_money(parsed), text.clone());
        // One decimal is the same value with a trailing zero.
        if cents % 10 == 0 {
            let short = text[..text.len() - 1].to_owned();
            prop_assert_eq!(domain::format_money(domain::parse_money(&short).unwrap()), text);
        }
    }

    #[test]
    fn money_text_is_accepted_exactly_when_the_grammar_allows_it(text in "[-+0-9. eE,a]{0,24}") {
        let accepted = domain::parse_money(&text).is_ok();
        prop_assert_eq!(accepted, is_contract_decimal(&text), "{:?}", text);
    }

    #[test]
    fn money_never_panics_on_any_text(text in any::<String>()) {
        let _ = domain::parse_money(&text);
    }

    #[test]
    fn cursors_never_panic_and_refuse_garbage(text in any::<String>()) {
        let _ = cursor::decode_id(&text, Scope::Funds);
        let _ = cursor::decode_investment(&text, Parent::Fund, uuid::Uuid::nil());
    }

    #[test]
    fn cursors_round_trip(a in any::<u128>(), b in any::<u128>(), days in 0i64..60_000) {
        let (id, parent) = (uuid::Uuid::from_u128(a), uuid::Uuid::from_u128(b));
        let date = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
        prop_assert_eq!(cursor::decode_id(&cursor::id_cursor(Scope::Investors, id), Scope::Investors), Ok(id));
        let c = cursor::investment_cursor(Parent::Investor, parent, (date, id));
        prop_assert_eq!(cursor::decode_investment(&c, Parent::Investor, parent), Ok((date, id)));
    }

    #[test]
    fn names_are_accepted_exactly_when_trimmed_they_hold_1_to_255_characters(text in any::<String>()) {
        let n = text.trim().chars().count();
        prop_assert_eq!(domain::parse_name(&text).is_ok(), (1..=255).contains(&n));
        if let Ok(name) = domain::parse_name(&text) {
            prop_assert_eq!(name.as_str(), text.trim());
        }
    }

    #[test]
    fn accepted_emails_are_trimmed_lower_case_and_well_formed(text in "[ a-zA-Z0-9@.\\-_+]{0,40}") {
        if let Ok(email) = domain::parse_email(&text) {
            prop_assert_eq!(email.clone(), text.trim().to_lowercase());
            prop_assert_eq!(email.matches('@').count(), 1);
            let (local, domain_part) = email.split_once('@').unwrap();
            prop_assert!(!local.is_empty() && domain_part.contains('.') && !email.contains(' '));
        }
    }
}

/// Documents that are valid or nearly so, to mutate.
const SEEDS: &[&str] = &[
    "{ funds(first: 3) { totalCount pageInfo { hasNextPage endCursor } nodes { id name status investments(last: 2) { nodes { amountUsd investor { email } } } } } }",
    "query Q($id: UUID!) { fund(id: $id) { name totalCommittedUsd investorCount } }",
    "mutation M($input: CreateFundInput!) { createFund(input: $input) { id targetSizeUsd } }",
    "mutation { createInvestor(input: {name: \"x\", investorType: INDIVIDUAL, email: \"a@b.co\"}) { id } }",
    "mutation { updateFund(input: {id: \"00000000-0000-0000-0000-000000000000\", status: CLOSED}) { id } }",
    "{ investors(filter: {investorType: INSTITUTION, email: \"a@b.co\"}, after: \"abc\") { edges { cursor node { name } } } }",
    "{ investment(id: \"00000000-0000-0000-0000-000000000000\") { fund { name } investor { name } } }",
    "query A { __typename } query B { funds { totalCount } }",
    "{ ...F } fragment F on Query { funds { nodes { ... on Fund { id } } } }",
    "mutation($i: CreateInvestmentInput!) { createInvestment(input: $i) { id } }",
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ":",
    "$x",
    "...",
    "@skip(if: true)",
    "funds",
    "fund",
    "investors",
    "nodes",
    "edges",
    "node",
    "id",
    "name",
    "investments",
    "first:",
    "last:",
    "after:",
    "1",
    "-1",
    "101",
    "\"x\"",
    "null",
    "query",
    "mutation",
    "fragment F on Fund",
    "__typename",
    "__schema",
    "createFund",
    "input:",
    "[",
    "]",
    "CLOSED",
    "1.5",
    "\"0.3\"",
    "9999999999999999999999",
    "#",
    "\"\\u0000\"",
    "totalCount",
];

fn document() -> impl Strategy<Value = String> {
    let seed = prop::sample::select(SEEDS).prop_map(str::to_owned);
    let mutated = (
        prop::sample::select(SEEDS),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..6),
    )
        .prop_map(|(doc, edits)| {
            let mut chars: Vec<char> = doc.chars().collect();
            for (at, kind, c) in edits {
                if chars.is_empty() {
                    chars.push(c);
                    continue;
                }
                let i = at.index(chars.len());
                match kind {
                    0 => {
                        chars.remove(i);
                    }
                    1 => chars.insert(i, c),
                    2 => chars[i] = c,
                    _ => {
                        let j = at.index(chars.len().max(1)).min(chars.len());
                        chars.truncate(j);
                    }
                }
            }
            chars.into_iter().collect()
        });
    let tokens =
        prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|t| t.join(" "));
    let noise = any::<String>();
    prop_oneof![2 => seed, 6 => mutated, 3 => tokens, 1 => noise]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9.@-]{0,12}".prop_map(Value::from),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("2024-01-01")),
        Just(json!("1200.50")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn variables() -> impl Strategy<Value = Value> {
    prop::collection::hash_map(
        prop::sample::select(&["id", "input", "i", "x"][..]).prop_map(str::to_owned),
        json_value(),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Every error in a GraphQL response (or in each item of a batch) has a code.
fn every_error_has_a_code(body: &Value) -> bool {
    let one = |r: &Value| {
        r.get("errors")
            .and_then(Value::as_array)
            .is_none_or(|errs| {
                errs.iter().all(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .is_some_and(|c| !c.is_empty())
                })
            })
    };
    match body {
        Value::Array(items) => items.iter().all(one),
        other => one(other),
    }
}

#[test]
fn random_and_mutated_documents_never_break_the_router() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::spawn());
    runtime.block_on(async { titanbay::seed::seed(&app.sql_conn).await.unwrap() });
    let cases: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let strategy = (
        document(),
        variables(),
        any::<bool>(),
        any::<bool>(),
        0u8..8,
    );
    runner
        .run(&strategy, |(query, variables, spec, get, shape)| {
            let (request, description) = match shape {
                // Mostly well-formed requests; sometimes batches, raw bodies or GETs.
                0 => (
                    Request::post("/graphql")
                        .header("content-type", "application/json")
                        .body(Body::from(json!([{ "query": query, "variables": variables }, { "query": "{ __typename }" }]).to_string()))
                        .unwrap(),
                    "batch",
                ),
                1 => (
                    Request::post("/graphql")
                        .header("content-type", "application/json")
                        .body(Body::from(query.clone()))
                        .unwrap(),
                    "raw body",
                ),
                _ if get => {
                    let encoded: String = query.bytes().map(|b| format!("%{b:02X}")).collect();
                    (Request::get(format!("/graphql?query={encoded}")).body(Body::empty()).unwrap(), "get")
                }
                _ => (
                    Request::post("/graphql")
                        .header("content-type", "application/json")
                        .header("accept", if spec { "application/graphql-response+json" } else { "application/json" })
                        .body(Body::from(json!({ "query": query, "variables": variables }).to_string()))
                        .unwrap(),
                    "post",
                ),
            };
            let (status, bytes) = runtime.block_on(async {
                let response = app.router.clone().oneshot(request).await.unwrap();
                let status = response.status();
                (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
            });
            prop_assert!(status.as_u16() < 500, "{description} {query:?}: HTTP {status}");
            let body: Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("{description} {query:?}: not JSON ({e})")))?;
            prop_assert!(every_error_has_a_code(&body), "{description} {query:?}: {body}");
            prop_assert!(!body.to_string().contains("panicked"));
            Ok(())
        })
        .unwrap();
}
