//! Hostile input: every resource a client can spend is bounded before it is spent, and no
//! input reaches INTERNAL_SERVER_ERROR. Each test asserts a code (and the field), a bounded
//! answer, and that nothing was written.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::{body::Body, http::Request};
use common::{TestApp, codes, field, fixtures::*};
use serde_json::{Value, json};
use titanbay::{
    auth::{Scope, TokenRequest, mint_hs256},
    config::{AppEnv, Config},
};

const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
const ISSUER: &str = "https://auth.titanbay.test";
const AUDIENCE: &str = "titanbay-api";

/// The answers to hostile requests stay this small (a refusal is a short error, whatever the
/// request's size).
const SMALL: usize = 4 * 1024;

fn raw(body: String) -> Request<Body> {
    Request::post("/graphql")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_huge_document_is_refused_before_it_is_parsed_with_a_small_answer() {
    let app = TestApp::spawn().await;
    // 0.9 MB: 450,000 fields.
    let doc = format!("{{ {} }}", "a ".repeat(450_000));
    let response = app.post(&doc, json!({})).await;
    assert_eq!(
        response.codes(),
        ["QUERY_TOO_COMPLEX"],
        "{:.300}",
        response.body
    );
    assert!(response.raw.len() < SMALL, "{} bytes", response.raw.len());
    // Under the byte limit but with too many tokens.
    let doc = format!("{{ {} }}", "a ".repeat(6_000));
    let response = app.post(&doc, json!({})).await;
    assert_eq!(
        response.codes(),
        ["QUERY_TOO_COMPLEX"],
        "{:.300}",
        response.body
    );
    // And the same holds for a document registered by hash (APQ).
    let doc = format!("{{ {} }}", "a ".repeat(20_000));
    let hash = common::sha256_hex(&doc);
    let body = json!({ "query": doc, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    let response = app.send(raw(body.to_string())).await;
    assert_eq!(response.codes(), ["QUERY_TOO_COMPLEX"]);
    let body = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    let response = app.send(raw(body.to_string())).await;
    assert_eq!(
        response.codes(),
        ["PERSISTED_QUERY_NOT_FOUND"],
        "never registered"
    );
}

#[tokio::test]
async fn a_parse_error_is_one_short_line_with_a_location() {
    let app = TestApp::spawn().await;
    let doc = format!("{{ funds {} (", "b ".repeat(2_000));
    let response = app.post(&doc, json!({})).await;
    assert_eq!(response.codes(), ["GRAPHQL_PARSE_FAILED"]);
    let message = response.body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.len() < 300, "{message}");
    assert!(response.body["errors"][0]["locations"][0]["line"].is_number());
    assert!(response.raw.len() < SMALL, "{} bytes", response.raw.len());
}

#[tokio::test]
async fn filter_texts_are_bounded_and_refused_with_their_field() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(900_000);
    let body = app
        .gql(
            "query($t: String) { funds(filter: { nameContains: $t }) { totalCount } }",
            json!({ "t": long }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(field(&body).as_deref(), Some("filter.nameContains"));
    let just_under = "x".repeat(200);
    let data = app
        .gql_ok(
            "query($t: String) { funds(filter: { nameContains: $t }) { totalCount } }",
            json!({ "t": just_under }),
        )
        .await;
    assert_eq!(data["funds"]["totalCount"], 0);
    let body = app
        .gql(
            "query($e: String) { investors(filter: { email: $e }) { totalCount } }",
            json!({ "e": format!("{}@example.com", "a".repeat(400)) }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(field(&body).as_deref(), Some("filter.email"));
}

#[tokio::test]
async fn nul_characters_are_bad_input_wherever_a_string_reaches_sql() {
    let app = TestApp::spawn().await;
    let nul = "a\u{0}b";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            CREATE_FUND,
            json!({ "input": { "name": nul, "vintageYear": 2024, "targetSizeUsd": "1.00" } }),
            "input.name",
        ),
        (
            CREATE_INVESTOR,
            json!({ "input": { "name": nul, "investorType": "INDIVIDUAL", "email": "a@b.co" } }),
            "input.name",
        ),
        (
            CREATE_INVESTOR,
            json!({ "input": { "name": "A", "investorType": "INDIVIDUAL", "email": "a\u{0}@b.co" } }),
            "input.email",
        ),
        (
            "query($t: String) { funds(filter: { nameContains: $t }) { totalCount } }",
            json!({ "t": nul }),
            "filter.nameContains",
        ),
        (
            "query($e: String) { investors(filter: { email: $e }) { totalCount } }",
            json!({ "e": "a\u{0}@b.co" }),
            "filter.email",
        ),
    ];
    for (doc, variables, path) in cases {
        let body = app.gql(doc, variables).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{path}: {body:#}");
        assert_eq!(field(&body).as_deref(), Some(path), "{body:#}");
    }
    let rows: i64 = app
        .sql_scalar("SELECT (SELECT count(*) FROM funds) + (SELECT count(*) FROM investors)")
        .await;
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn names_refuse_control_and_bidirectional_formatting_characters() {
    let app = TestApp::spawn().await;
    for name in [
        "Evil\u{202E}gnp.exe",
        "Tab\tName",
        "Bell\u{7}",
        "Iso\u{2066}late",
    ] {
        let body = app
            .gql(
                CREATE_FUND,
                json!({ "input": { "name": name, "vintageYear": 2024, "targetSizeUsd": "1.00" } }),
            )
            .await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{name:?}: {body:#}");
        assert_eq!(field(&body).as_deref(), Some("input.name"));
    }
    // Ordinary Unicode is welcome.
    app.gql_ok(
        CREATE_FUND,
        json!({ "input": { "name": "Fonds Généraux — Ørsted 株式会社", "vintageYear": 2024, "targetSizeUsd": "1.00" } }),
    )
    .await;
}

#[tokio::test]
async fn emails_are_unicode_normalised_before_the_uniqueness_check() {
    let app = TestApp::spawn().await;
    investor(&app, "Full width", "ＡＢＣ@example.com").await;
    let body = app
        .gql(
            CREATE_INVESTOR,
            json!({ "input": { "name": "Ascii", "investorType": "INDIVIDUAL", "email": "abc@example.com" } }),
        )
        .await;
    assert_eq!(codes(&body), ["CONFLICT"], "{body:#}");
    // The message does not repeat the address.
    assert!(!body.to_string().contains("abc@example.com"), "{body}");
    let stored: String = app.sql_scalar("SELECT email FROM investors").await;
    assert_eq!(stored, "abc@example.com");
}

#[tokio::test]
async fn unused_variables_give_a_bounded_number_of_errors() {
    let app = TestApp::spawn().await;
    let definitions: Vec<String> = (0..1000).map(|i| format!("$v{i}: Int")).collect();
    let doc = format!("query({}) {{ __typename }}", definitions.join(", "));
    let response = app.post(&doc, json!({})).await;
    let errors = response.body["errors"].as_array().unwrap();
    assert!(errors.len() <= 20, "{} errors", errors.len());
    assert!(
        response
            .codes()
            .iter()
            .all(|c| c == "GRAPHQL_VALIDATION_FAILED"),
        "{:?}",
        response.codes()
    );
    assert!(
        response.raw.len() < 8 * 1024,
        "{} bytes",
        response.raw.len()
    );
}

#[tokio::test]
async fn long_operation_names_do_not_grow_the_metrics() {
    let app = TestApp::spawn().await;
    let name = "A".repeat(500_000);
    for _ in 0..20 {
        let body = json!({ "query": "{ __typename }", "operationName": name });
        let response = app.send(raw(body.to_string())).await;
        assert_eq!(response.codes(), ["BAD_REQUEST"]);
        assert!(response.raw.len() < SMALL);
    }
    // As many distinct valid names as the cap, then as many again: the second batch adds no
    // series of its own (it is counted as "other").
    let metrics_len = |text: &str| {
        text.lines()
            .filter(|line| line.contains("operation=\""))
            .count()
    };
    for i in 0..300 {
        let doc = format!("query Op{i} {{ __typename }}");
        app.gql_ok(&doc, json!({})).await;
    }
    let before = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let before = String::from_utf8_lossy(&before.raw).to_string();
    for i in 300..600 {
        let doc = format!("query Op{i} {{ __typename }}");
        app.gql_ok(&doc, json!({})).await;
    }
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8_lossy(&metrics.raw);
    assert_eq!(metrics_len(&text), metrics_len(&before));
    assert!(!text.contains("operation=\"Op599\""));
    assert!(text.contains("operation=\"other\""));
    assert!(!text.contains(&"A".repeat(100)));
}

#[tokio::test]
async fn numbers_json_cannot_hold_are_bad_input() {
    let app = TestApp::spawn().await;
    let body = r#"{"query": "query($n: Int) { funds(first: $n) { totalCount } }", "variables": {"n": 1e400}}"#;
    let response = app.send(raw(body.to_owned())).await;
    assert_eq!(response.codes(), ["BAD_USER_INPUT"], "{:#}", response.body);
    assert!(response.raw.len() < SMALL);
    // The same over GET, where the variables come in the query string.
    let get = Request::get(
        "/graphql?query=query(%24n%3A%20Int)%20%7B%20funds(first%3A%20%24n)%20%7B%20totalCount%20%7D%20%7D&variables=%7B%22n%22%3A1e400%7D",
    )
    .body(Body::empty())
    .unwrap();
    let response = app.send(get).await;
    assert_eq!(response.codes(), ["BAD_USER_INPUT"], "{:#}", response.body);
}

#[tokio::test]
async fn two_operations_without_an_operation_name_are_a_bad_request_not_a_parse_error() {
    let app = TestApp::spawn().await;
    // The document parses; the request does not say which operation to run.
    let response = app
        .post(
            "query A { funds { totalCount } } query B { investors { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(response.codes(), ["BAD_REQUEST"], "{:#}", response.body);
}

#[tokio::test]
async fn the_persisted_query_cache_is_bounded_by_bytes() {
    let limit = 256 * 1024;
    let app = TestApp::spawn_with(|config| config.limits.apq_cache_bytes = limit).await;
    // 64 documents of about 16 KiB each (1 MiB in all), every one registered and run.
    for n in 0..64 {
        let query = format!(
            "query Q{n} {{ funds {{ totalCount }} }} # {}",
            "x".repeat(16 * 1024)
        );
        let body = json!({
            "query": query,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": common::sha256_hex(&query) } },
        });
        let response = app.send(raw(body.to_string())).await;
        assert!(response.body.get("errors").is_none(), "{:#}", response.body);
    }
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8_lossy(&metrics.raw).into_owned();
    let kept: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("titanbay_apq_cache_bytes "))
        .unwrap_or_else(|| panic!("no titanbay_apq_cache_bytes in {text:.2000}"))
        .trim()
        .parse()
        .unwrap();
    assert!(kept > 0.0 && kept <= limit as f64, "{kept}");
    // The newest is still kept; the oldest went.
    let by_hash = |n: usize| {
        let query = format!(
            "query Q{n} {{ funds {{ totalCount }} }} # {}",
            "x".repeat(16 * 1024)
        );
        let body = json!({
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": common::sha256_hex(&query) } },
        });
        raw(body.to_string())
    };
    let newest = app.send(by_hash(63)).await;
    assert!(newest.body.get("errors").is_none(), "{:#}", newest.body);
    let oldest = app.send(by_hash(0)).await;
    assert_eq!(oldest.codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
}

#[tokio::test]
async fn an_enum_written_as_a_string_literal_is_refused() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            r#"{ funds(filter: { status: "CLOSED" }) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body:#}");
    // As a variable (JSON has no enums) a string is the way to send it.
    app.gql_ok(
        "query($s: FundStatus) { funds(filter: { status: $s }) { totalCount } }",
        json!({ "s": "CLOSED" }),
    )
    .await;
    let body = app
        .gql(
            r#"query($s: FundStatus = "CLOSED") { funds(filter: { status: $s }) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body:#}");
}

#[tokio::test]
async fn with_introspection_off_errors_suggest_no_field_names() {
    let app = TestApp::spawn_with(|c| c.introspection = false).await;
    let body = app.gql("{ funds { nodes { nmae } } }", json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"]);
    assert!(!body.to_string().contains("Did you mean"), "{body}");
}

#[tokio::test]
async fn totals_are_exact_beyond_what_an_amount_can_hold() {
    let app = TestApp::spawn().await;
    let fund_id = fund(&app, "Huge", "FUNDRAISING").await;
    let investor_id = investor(&app, "Whale", "whale@example.com").await;
    for _ in 0..2 {
        investment(
            &app,
            &fund_id,
            &investor_id,
            "999999999999999999.99",
            "2024-01-01",
        )
        .await;
    }
    let data = app
        .gql_ok(
            &format!(
                r#"{{ fund(id: "{fund_id}") {{ totalCommittedUsd investorCount }}
                     investor(id: "{investor_id}") {{ totalCommittedUsd }}
                     funds {{ nodes {{ name totalCommittedUsd }} }} }}"#
            ),
            json!({}),
        )
        .await;
    assert_eq!(data["fund"]["totalCommittedUsd"], "1999999999999999999.98");
    assert_eq!(
        data["investor"]["totalCommittedUsd"],
        "1999999999999999999.98"
    );
    assert_eq!(
        data["funds"]["nodes"][0]["totalCommittedUsd"],
        "1999999999999999999.98"
    );
    // Far past a 96-bit decimal too: PostgreSQL's exact sum, as text.
    app.sql(&format!(
        "INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date) \
         SELECT gen_random_uuid(), '{fund_id}', '{investor_id}', 999999999999999999.99, DATE '2024-01-02' \
         FROM generate_series(1, 1000)"
    ))
    .await;
    // Loaded outside the API: the kept totals are rewritten from the rows.
    titanbay::service::totals::repair(&app.db).await.unwrap();
    let data = app
        .gql_ok(
            &format!(r#"{{ fund(id: "{fund_id}") {{ totalCommittedUsd }} }}"#),
            json!({}),
        )
        .await;
    assert_eq!(
        data["fund"]["totalCommittedUsd"],
        "1001999999999999999989.98"
    );
}

fn hs256(config: &mut Config) {
    config.auth.hs256_secret = Some(SECRET.to_owned());
    config.auth.issuer = Some(ISSUER.to_owned());
    config.auth.audience = Some(AUDIENCE.to_owned());
}

fn token_for(subject: &str) -> String {
    mint_hs256(
        SECRET,
        &TokenRequest {
            issuer: ISSUER,
            audience: AUDIENCE,
            subject,
            scopes: &Scope::ALL,
            ttl: std::time::Duration::from_secs(600),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn token_subjects_are_bounded_before_use() {
    let app = TestApp::spawn_with(hs256).await;
    let call = |token: String, query: &'static str, variables: Value| {
        let body = json!({ "query": query, "variables": variables });
        Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let input = json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1.00" } });
    let long = app
        .send(call(
            token_for(&"s".repeat(256)),
            CREATE_FUND,
            input.clone(),
        ))
        .await;
    assert_eq!(long.codes(), ["UNAUTHENTICATED"], "{:#}", long.body);
    let control = app
        .send(call(
            token_for("bad\u{0}subject"),
            CREATE_FUND,
            input.clone(),
        ))
        .await;
    assert_eq!(control.codes(), ["UNAUTHENTICATED"]);
    // At the limit the token works, and its subject is recorded.
    let ok = app
        .send(call(token_for(&"s".repeat(255)), CREATE_FUND, input))
        .await;
    assert!(ok.body.get("errors").is_none(), "{:#}", ok.body);
    let recorded: i32 = app
        .sql_scalar("SELECT length(subject) FROM audit_events")
        .await;
    assert_eq!(recorded, 255);
    // A token of 100 KB is not even decoded.
    let huge = app
        .send(call("x".repeat(100_000), CREATE_FUND, json!({})))
        .await;
    assert_eq!(huge.codes(), ["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn an_issuer_without_a_key_refuses_to_start() {
    let mut config = Config::defaults();
    config.auth.issuer = Some(ISSUER.to_owned());
    let err = titanbay::startup::check_auth_config(&config).unwrap_err();
    assert!(err.to_string().contains("no key"), "{err}");
    let mut config = Config::defaults();
    config.auth.audience = Some(AUDIENCE.to_owned());
    assert!(titanbay::startup::check_auth_config(&config).is_err());
    assert!(titanbay::startup::check_auth_config(&Config::defaults()).is_ok());
}

#[tokio::test]
async fn production_refuses_to_start_unconfigured_before_touching_the_database() {
    let cluster = common::cluster();
    let database = cluster.create_empty_database().await;
    let mut config = common::test_config(&cluster.url(&database));
    config.app_env = AppEnv::Production;
    config.database.run_migrations = true;
    let err = match titanbay::startup::Application::build(config).await {
        Ok(_) => panic!("production started without authentication"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("requires authentication"), "{err}");
    let conn = common::connect(&cluster.url(&database)).await;
    let migrated: i64 = common::scalar(
        &conn,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'seaql_migrations'",
    )
    .await;
    assert_eq!(migrated, 0, "production migrated before refusing");
    cluster.drop_database(database);
}

/// Reads from `stream` until the server closes it (`true`) or `within` passes (`false`).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_connections_are_capped() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = common::cluster();
    let database = cluster.create_database().await;
    let mut config = common::test_config(&cluster.url(&database));
    config.http.header_timeout = Duration::from_secs(1);
    config.http.max_connections = 3;
    let app = titanbay::startup::Application::build(config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let connect = || tokio::net::TcpStream::connect(addr);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // A connection that sends nothing, and one that sends half a request head, are closed.
    let mut silent = connect().await.unwrap();
    let mut slow = connect().await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "idle connection kept"
    );
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "slow header kept"
    );

    // A kept-alive connection that goes idle after a request is closed too.
    let mut kept = connect().await.unwrap();
    kept.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, Duration::from_secs(5)).await,
        "idle keep-alive kept"
    );

    // At most three connections are served at once: a fourth waits until one closes.
    let mut idle: Vec<_> = Vec::new();
    for _ in 0..3 {
        idle.push(connect().await.unwrap());
    }
    // Give the server the moment it needs to accept the three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect().await.unwrap();
    fourth.write_all(request).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), fourth.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the fourth connection was served past the cap"
    );
    // The idle ones time out, and the fourth is then served.
    let n = tokio::time::timeout(Duration::from_secs(10), fourth.read(&mut buf))
        .await
        .expect("the fourth connection was served once a slot freed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    cluster.drop_database(database);
}
