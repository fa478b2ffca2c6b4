//! The introspection documents stock clients send (graphql-js 16 and 17, GraphiQL 5, Apollo
//! Rover, graphql-core, gql; see `tests/fixtures/introspection/README.md`) are answered in full,
//! byte for byte as those clients produce them, whatever the data-depth limit, and are refused
//! with a stable code when introspection is off.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{collections::BTreeSet, path::PathBuf};

use axum::{body::Body, http::Request};
use common::TestApp;
use serde_json::{Value, json};

/// Every stock document, with the operation name its client sends (if any).
fn documents() -> Vec<(String, String, Option<String>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/introspection");
    let mut docs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = text
                .trim_start()
                .strip_prefix("query ")
                .and_then(|rest| rest.split([' ', '{', '(']).next())
                .map(str::to_owned);
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (file, text, name)
        })
        .collect();
    docs.sort();
    assert!(docs.len() >= 9, "{} stock documents", docs.len());
    docs
}

/// The named types `schema.graphql` declares.
fn declared_types() -> BTreeSet<String> {
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    sdl.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("type" | "input" | "enum" | "scalar" | "interface" | "union") => words
                    .next()
                    .map(|name| name.trim_end_matches('{').to_owned()),
                _ => None,
            }
        })
        .collect()
}

async fn introspect(app: &TestApp, text: &str, name: Option<&str>) -> (Value, Vec<String>) {
    let mut body = json!({ "query": text });
    if let Some(name) = name {
        body["operationName"] = json!(name);
    }
    let response = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
    let codes = response.codes();
    (response.body, codes)
}

#[tokio::test]
async fn every_stock_clients_introspection_is_answered_in_full() {
    // A data-depth limit far below the documents' depth (13 to 15): introspection is bounded
    // apart from data, so the limit does not apply to it.
    let app = TestApp::spawn_with(|c| c.limits.max_depth = 3).await;
    let declared = declared_types();
    assert!(declared.contains("Fund") && declared.contains("Investment"));
    for (file, text, name) in documents() {
        let (body, codes) = introspect(&app, &text, name.as_deref()).await;
        assert!(codes.is_empty(), "{file}: {codes:?} {}", body["errors"]);
        let schema = &body["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query", "{file}");
        assert_eq!(schema["mutationType"]["name"], "Mutation", "{file}");
        let types: BTreeSet<String> = schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<_> = declared.difference(&types).collect();
        assert!(missing.is_empty(), "{file}: {missing:?} missing");
        // Fields and their argument lists, as clients build their schema from them.
        let fund = schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "Fund")
            .unwrap();
        let investments = fund["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "investments")
            .unwrap_or_else(|| panic!("{file}: Fund.investments"));
        assert!(
            !investments["args"].as_array().unwrap().is_empty(),
            "{file}"
        );
        assert!(
            !schema["directives"].as_array().unwrap().is_empty(),
            "{file}"
        );
        if text.contains("description\n  }") || text.contains("__schema {\n    description") {
            // Ours, not async-graphql's generic text.
            assert_eq!(
                schema["description"],
                titanbay::graphql::DESCRIPTION,
                "{file}"
            );
        }
    }
}

#[tokio::test]
async fn stock_introspection_is_refused_with_a_code_when_introspection_is_off() {
    let app = TestApp::spawn_with(|c| c.introspection = false).await;
    for (file, text, name) in documents() {
        let (body, codes) = introspect(&app, &text, name.as_deref()).await;
        assert!(!codes.is_empty(), "{file}: answered {body}");
        assert!(
            codes.iter().all(|code| code == "GRAPHQL_VALIDATION_FAILED"),
            "{file}: {codes:?}"
        );
        assert!(
            body["data"].is_null() || body.get("data").is_none(),
            "{file}"
        );
    }
}
