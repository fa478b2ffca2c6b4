//! The README's examples work as written: the development token its "Access control" section
//! mints (with the secret, issuer and audience it exports) runs every operation of its "Try it"
//! section without an error, on a server configured with those same values. The examples are
//! read from README.md itself, so editing one without the other fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use axum::{body::Body, http::Request};
use common::TestApp;
use serde_json::json;
use titanbay::auth::{TokenRequest, mint_hs256, parse_scopes};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The text of the section headed `## {title}` (up to the next `## ` heading).
fn section<'a>(readme: &'a str, title: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has no section {title}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The first fenced block of `lang` in `text`.
fn fenced<'a>(text: &'a str, lang: &str) -> &'a str {
    let open = format!("```{lang}\n");
    let start = text.find(&open).expect("a fenced block") + open.len();
    let len = text[start..].find("```").expect("a closed block");
    &text[start..start + len]
}

/// The value of `NAME=value` in a shell line.
fn assignment<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line.find(&format!("{name}=")).expect("the assignment") + name.len() + 1;
    line[at..].split_whitespace().next().expect("a value")
}

/// The quoted value after `flag` in a shell line.
fn quoted_flag<'a>(line: &'a str, flag: &str) -> &'a str {
    let at = line.find(&format!("{flag} \"")).expect("the flag") + flag.len() + 2;
    let len = line[at..].find('"').expect("a closing quote");
    &line[at..at + len]
}

#[tokio::test]
async fn the_readme_token_runs_the_readme_examples() {
    let readme = readme();
    let shell = fenced(section(&readme, "Access control"), "sh");
    let export = shell
        .lines()
        .find(|l| l.starts_with("export "))
        .expect("an export line");
    let mint = shell
        .lines()
        .find(|l| l.contains("-- token"))
        .expect("a token line");
    let secret = assignment(export, "AUTH_HS256_SECRET").to_owned();
    let issuer = assignment(export, "AUTH_ISSUER").to_owned();
    let audience = assignment(export, "AUTH_AUDIENCE").to_owned();
    let scopes = parse_scopes(quoted_flag(mint, "--scopes")).unwrap();
    let subject = assignment(&mint.replace("--subject ", "--subject="), "--subject").to_owned();

    let token = mint_hs256(
        &secret,
        &TokenRequest {
            issuer: &issuer,
            audience: &audience,
            subject: &subject,
            scopes: &scopes,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap();
    let app = TestApp::spawn_with(|config| {
        config.auth.hs256_secret = Some(secret.clone());
        config.auth.issuer = Some(issuer.clone());
        config.auth.audience = Some(audience.clone());
    })
    .await;
    // The demo data, so that every level of the query (investments, their investors) has rows
    // and its scope is really checked.
    titanbay::seed::seed(&app.sql_conn).await.unwrap();

    let examples = fenced(section(&readme, "Try it"), "graphql");
    let operations: Vec<&str> = examples
        .split("\n\n")
        .map(str::trim)
        .filter(|op| !op.is_empty())
        .collect();
    assert!(operations.len() >= 2, "{operations:?}");
    for operation in operations {
        let request = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(json!({ "query": operation }).to_string()))
            .unwrap();
        let response = app.send(request).await;
        assert!(
            response.body.get("errors").is_none(),
            "{operation}\n{:#}",
            response.body
        );
        assert!(response.body["data"].is_object(), "{:#}", response.body);
        if operation.contains("investor {") {
            let text = response.body.to_string();
            assert!(text.contains("\"investor\":{\"name\""), "{text}");
        }
    }
}

/// Every error code the server can answer has its row in the README's table.
#[test]
fn every_error_code_is_in_the_error_table() {
    let readme = readme();
    let table = section(&readme, "Error codes");
    for code in titanbay::error::ErrorCode::ALL {
        assert!(
            table.contains(&format!("\n| `{}` |", code.as_str())),
            "README's error table lacks {code}"
        );
    }
}
