//! Production hardening: every limit just under and just over, switches, persisted and trusted
//! documents, metrics, and a real PostgreSQL outage under load.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use common::{TestApp, codes, fixtures::*};
use local_pg::{LocalPgOptions, LocalPostgres};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, TransactionTrait,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use titanbay::{config::Config, db::Db, http, startup::build_state};
use tower::ServiceExt;

const SPEC: &str = "application/graphql-response+json";

fn post(body: Value) -> Request<Body> {
    Request::post("/graphql")
        .header("content-type", "application/json")
        .header("accept", SPEC)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn depth_is_limited_at_the_configured_level() {
    let app = TestApp::spawn_with(|c| c.limits.max_depth = 3).await;
    let ok = app.gql("{ funds { nodes { id } } }", json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    let over = app
        .post(
            "{ funds { nodes { investments { totalCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(over.codes(), ["QUERY_TOO_COMPLEX"]);
}

#[tokio::test]
async fn complexity_counts_page_size_times_selection() {
    // funds(first: n) { nodes { id } } costs 1 + n × 2.
    let app = TestApp::spawn_with(|c| c.limits.max_complexity = 101).await;
    let ok = app
        .gql("{ funds(first: 50) { nodes { id } } }", json!({}))
        .await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    let over = app
        .gql("{ funds(first: 51) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(codes(&over), ["QUERY_TOO_COMPLEX"]);
}

#[tokio::test]
async fn page_size_is_limited_at_the_configured_maximum() {
    let app = TestApp::spawn_with(|c| c.limits.max_page_size = 5).await;
    assert!(
        app.gql("{ funds(first: 5) { totalCount } }", json!({}))
            .await
            .get("errors")
            .is_none()
    );
    let over = app
        .gql("{ funds(first: 6) { totalCount } }", json!({}))
        .await;
    assert_eq!(codes(&over), ["BAD_USER_INPUT"]);
    assert_eq!(common::field(&over).as_deref(), Some("first"));
}

#[tokio::test]
async fn the_field_cap_counts_aliases_and_fragments() {
    let app = TestApp::spawn_with(|c| c.limits.max_fields = 4).await;
    let ok = app
        .gql(
            "{ a: __typename b: __typename c: __typename d: __typename }",
            json!({}),
        )
        .await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    let over = app
        .post(
            "{ a: __typename b: __typename c: __typename d: __typename e: __typename }",
            json!({}),
        )
        .await;
    assert_eq!(over.codes(), ["QUERY_TOO_COMPLEX"]);
    let fragments = app
        .gql(
            "{ ...F ...F } fragment F on Query { a: __typename b: __typename c: __typename }",
            json!({}),
        )
        .await;
    assert_eq!(
        codes(&fragments),
        ["QUERY_TOO_COMPLEX"],
        "fragments count each time they are spread"
    );
}

#[tokio::test]
async fn batches_are_limited_and_can_be_turned_off() {
    let app = TestApp::spawn_with(|c| c.limits.max_batch_size = 2).await;
    let two = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]);
    assert_eq!(app.send(post(two)).await.status, 200);
    let three = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]);
    let response = app.send(post(three)).await;
    assert_eq!(
        (response.status.as_u16(), response.codes()),
        (400, vec!["BAD_REQUEST".to_owned()])
    );
    let off = TestApp::spawn_with(|c| c.limits.max_batch_size = 0).await;
    let response = off.send(post(json!([{ "query": "{ __typename }" }]))).await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn a_slow_request_is_cut_off_and_its_connection_freed() {
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            c.limits.request_timeout = Duration::from_millis(800);
            c.database.statement_timeout = Duration::from_secs(3);
        })
        .await,
    );
    // Just under: an ordinary query finishes well inside the deadline.
    assert!(
        app.gql("{ funds { totalCount } }", json!({}))
            .await
            .get("errors")
            .is_none()
    );
    // Over: another session holds a lock the query needs.
    let blocker = app.sql_conn.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE funds IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let body = app.gql("{ funds { totalCount } }", json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(codes(&body), ["REQUEST_TIMEOUT"], "{body:#}");
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    blocker.rollback().await.unwrap();
    // The server (and its pool) serve on.
    for _ in 0..10 {
        assert!(
            app.gql("{ funds { totalCount } }", json!({}))
                .await
                .get("errors")
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_bound_wait_their_turn_until_their_deadline() {
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            c.limits.max_concurrent_requests = 1;
            c.limits.request_timeout = Duration::from_millis(600);
        })
        .await,
    );
    assert_eq!(app.state.slots.limit(), 1);
    // Just under: a request finds the slot free.
    assert!(
        app.gql("{ funds { totalCount } }", json!({}))
            .await
            .get("errors")
            .is_none()
    );
    // At the bound: while the only slot is taken, a request waits (it is counted as waiting
    // and does not answer), and runs as soon as the slot comes free.
    let held = app.state.slots.acquire(None).await.expect("a free slot");
    let waiter = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.gql("{ funds { totalCount } }", json!({})).await })
    };
    let mut waited = false;
    for _ in 0..200 {
        if app.state.slots.waiting() == 1 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(waited, "the second request never queued");
    assert!(!waiter.is_finished());
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let series = parse_metrics(&String::from_utf8_lossy(&metrics.raw));
    let value = |name: &str| series.iter().find(|(s, _)| s == name).map(|(_, v)| *v);
    assert_eq!(value("titanbay_graphql_requests_waiting"), Some(1.0));
    assert_eq!(value("titanbay_graphql_requests_running"), Some(1.0));
    assert_eq!(value("titanbay_graphql_max_concurrent_requests"), Some(1.0));
    drop(held);
    let body = waiter.await.unwrap();
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["funds"]["totalCount"], 0);
    // Over: a request that cannot get a slot before its deadline is refused with
    // REQUEST_TIMEOUT and HTTP 503, without having run anything.
    let held = app.state.slots.acquire(None).await.expect("a free slot");
    let before = app.statements();
    let response = app
        .send(post(json!({
            "query": "mutation { createFund(input: {name: \"Queued\", vintageYear: 2024, targetSizeUsd: \"1.00\", status: FUNDRAISING}) { id } }"
        })))
        .await;
    assert_eq!(response.status, 503);
    assert_eq!(
        codes(&response.body),
        ["REQUEST_TIMEOUT"],
        "{:#}",
        response.body
    );
    assert_eq!(app.statements(), before, "nothing ran");
    assert_eq!(app.state.slots.waiting(), 0);
    drop(held);
    let body = app.gql("{ funds { totalCount } }", json!({})).await;
    assert_eq!(
        body["data"]["funds"]["totalCount"], 0,
        "the queued mutation never ran"
    );
}

#[tokio::test]
async fn the_database_cancels_statements_over_its_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.database.statement_timeout = Duration::from_millis(300);
        c.limits.request_timeout = Duration::from_secs(10);
    })
    .await;
    let setting = app
        .pool_text("SELECT current_setting('statement_timeout')")
        .await;
    assert_eq!(setting, "300ms");
    let blocker = app.sql_conn.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE funds IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let body = app.gql("{ funds { totalCount } }", json!({})).await;
    assert_eq!(codes(&body), ["REQUEST_TIMEOUT"], "{body:#}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A mutation cancelled by the database did not commit, and says so with the same code.
    let body = app
        .gql(
            CREATE_FUND,
            json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1" } }),
        )
        .await;
    assert_eq!(codes(&body), ["REQUEST_TIMEOUT"], "{body:#}");
    blocker.rollback().await.unwrap();
    let count: i64 = app.sql_scalar("SELECT count(*) FROM funds").await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn introspection_and_graphiql_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| {
        c.introspection = false;
        c.graphiql = false;
    })
    .await;
    let body = app.gql("{ __schema { types { name } } }", json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"]);
    let body = app
        .gql("{ __type(name: \"Fund\") { name } }", json!({}))
        .await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"]);
    assert_eq!(
        app.gql("{ __typename }", json!({})).await["data"]["__typename"],
        "Query"
    );
    let page = app
        .send(
            Request::get("/graphql")
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, 404);
}

#[test]
fn production_mode_turns_both_off_unless_asked() {
    let prod = Config::from_lookup(|k| (k == "APP_ENV").then(|| "production".to_owned())).unwrap();
    assert!(!prod.introspection && !prod.graphiql);
    let dev = Config::from_lookup(|_| None).unwrap();
    assert!(dev.introspection && dev.graphiql);
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn automatic_persisted_queries_register_then_run_by_hash() {
    let app = TestApp::spawn().await;
    let query = "query Count { funds { totalCount } }";
    let hash = sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let miss = app.send(post(json!({ "extensions": ext }))).await;
    assert_eq!(
        (miss.status.as_u16(), miss.codes()),
        (400, vec!["PERSISTED_QUERY_NOT_FOUND".to_owned()])
    );
    let register = app
        .send(post(json!({ "query": query, "extensions": ext })))
        .await;
    assert_eq!(register.body["data"]["funds"]["totalCount"], 0);
    let hit = app.send(post(json!({ "extensions": ext }))).await;
    assert_eq!(hit.body["data"]["funds"]["totalCount"], 0);
    // Over GET too (the point of APQ: cacheable URLs).
    let get = app
        .send(
            Request::get(format!(
                "/graphql?extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22{hash}%22%7D%7D"
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(get.body["data"]["funds"]["totalCount"], 0);
    let wrong = app
        .send(post(
            json!({ "query": "{ __typename }", "extensions": ext }),
        ))
        .await;
    assert_eq!(wrong.codes(), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn trusted_documents_run_by_id_and_can_be_the_only_thing_that_runs() {
    let dir = std::env::temp_dir().join(format!("titanbay-trusted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("trusted.json");
    let count = "query Count { funds { totalCount } }";
    std::fs::write(
        &file,
        json!({
            "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": sha256_hex(count), "name": "Count", "type": "query", "body": count }]
        })
        .to_string(),
    )
    .unwrap();
    let open = TestApp::spawn_with(|c| c.trusted_documents = Some(file.clone())).await;
    let by_id = open
        .send(post(
            json!({ "documentId": format!("sha256:{}", sha256_hex(count)) }),
        ))
        .await;
    assert_eq!(by_id.body["data"]["funds"]["totalCount"], 0);
    let unknown = open.send(post(json!({ "documentId": "sha256:00" }))).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.codes()),
        (400, vec!["PERSISTED_QUERY_NOT_FOUND".to_owned()])
    );
    assert!(
        open.gql("{ __typename }", json!({}))
            .await
            .get("errors")
            .is_none(),
        "free text runs when not enforced"
    );

    let locked = TestApp::spawn_with(|c| {
        c.trusted_documents = Some(file.clone());
        c.trusted_documents_only = true;
    })
    .await;
    let refused = locked
        .send(post(json!({ "query": "{ __typename }" })))
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.codes()),
        (400, vec!["PERSISTED_QUERY_NOT_IN_LIST".to_owned()])
    );
    let listed_text = locked.send(post(json!({ "query": count }))).await;
    assert_eq!(
        listed_text.body["data"]["funds"]["totalCount"], 0,
        "the trusted text itself runs"
    );
    let by_id = locked
        .send(post(json!({ "documentId": sha256_hex(count) })))
        .await;
    assert_eq!(by_id.body["data"]["funds"]["totalCount"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prometheus text → (series with labels → value).
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_expose_requests_latency_pool_and_batches() {
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.sql_conn).await.unwrap();
    for _ in 0..3 {
        app.gql(
            "query Tree { funds { nodes { investments { nodes { investor { name } } } } } }",
            json!({}),
        )
        .await;
    }
    app.gql(
        "query Tree2 { funds { nodes { totalCommittedUsd } } }",
        json!({}),
    )
    .await;
    app.gql("{ nope }", json!({})).await;
    let response = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, 200);
    assert!(
        response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8_lossy(&response.raw).to_string();
    let series = parse_metrics(&text);
    let value = |name: &str| series.iter().find(|(s, _)| s == name).map(|(_, v)| *v);
    assert_eq!(
        value("titanbay_graphql_requests_total{operation=\"Tree\",outcome=\"ok\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            "titanbay_graphql_requests_total{operation=\"anonymous\",outcome=\"GRAPHQL_VALIDATION_FAILED\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("titanbay_graphql_request_duration_seconds_count{operation=\"Tree\"}"),
        Some(3.0)
    );
    assert!(
        value("titanbay_graphql_request_duration_seconds_bucket{operation=\"Tree\",le=\"+Inf\"}")
            .is_some()
    );
    assert!(value("titanbay_db_pool_connections{state=\"in_use\"}").is_some());
    assert!(value("titanbay_db_pool_connections{state=\"idle\"}").is_some());
    assert_eq!(value("titanbay_db_pool_waiting"), Some(0.0));
    assert_eq!(value("titanbay_db_reads_running"), Some(0.0));
    assert_eq!(value("titanbay_db_reads_waiting"), Some(0.0));
    assert_eq!(value("titanbay_db_writes_running"), Some(0.0));
    assert_eq!(value("titanbay_db_writes_waiting"), Some(0.0));
    assert!(value("titanbay_document_cache_bytes").unwrap_or(0.0) > 0.0);
    assert_eq!(value("titanbay_db_reachable"), Some(1.0));
    assert!(value("titanbay_db_statements_total").unwrap_or(0.0) >= 8.0);
    assert_eq!(
        value("titanbay_loader_batch_size_count{relation=\"investment_pages\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("titanbay_loader_batch_size_bucket{relation=\"investment_pages\",le=\"5\"}"),
        Some(3.0),
        "4 funds per batch"
    );
    assert!(value("titanbay_loader_batch_size_count{relation=\"totals\"}").is_some());
    assert!(
        value("titanbay_http_requests_total{path=\"/graphql\",status=\"200\"}").unwrap_or(0.0)
            >= 5.0
    );
}

/// What the load saw: (was a mutation, code or "ok", how long it took, id created).
type Observation = (bool, String, Duration, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_the_server_recovers_without_a_restart() {
    // A cluster of its own, whose data survives the stop.
    let base_dir =
        std::env::temp_dir().join(format!("titanbay-test-{}-outage", std::process::id()));
    let options = LocalPgOptions {
        base_dir: base_dir.clone(),
        bin_dir: None,
        ephemeral: true,
        remove_on_exit: false,
        settings: Vec::new(),
    };
    let start = |o: LocalPgOptions| async move {
        tokio::task::spawn_blocking(move || LocalPostgres::start(&o))
            .await
            .unwrap()
            .unwrap()
    };
    let mut pg = start(options.clone()).await;
    titanbay::db::ensure_database(&pg.url("postgres"), "outage")
        .await
        .unwrap();
    let url = pg.url("outage");
    let conn = Database::connect(url.clone()).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    conn.close().await.unwrap();
    let mut config = common::test_config(&url);
    config.database.connect_timeout = Duration::from_secs(1);
    let db = Db::connect(&config.database, &url).await.unwrap();
    let router = http::router(build_state(db, config).await.unwrap());
    let shared = router.clone();
    let gql = move |query: &'static str, variables: Value| {
        let router = shared.clone();
        async move {
            let response = router
                .oneshot(post(json!({ "query": query, "variables": variables })))
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let (_, body) = gql(
        CREATE_FUND,
        json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1" } }),
    )
    .await;
    let fund = body["data"]["createFund"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = gql(
        CREATE_INVESTOR,
        json!({ "input": { "name": "I", "investorType": "INDIVIDUAL", "email": "i@x.co" } }),
    )
    .await;
    let investor = body["data"]["createInvestor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The load: queries and mutations, back to back, from four clients.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Instant, Observation)>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..4 {
        let (stop, seen, gql) = (Arc::clone(&stop), Arc::clone(&seen), gql.clone());
        let (fund, investor) = (fund.clone(), investor.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let mutation = (i + client).is_multiple_of(2);
                let started = Instant::now();
                let (status, body) = if mutation {
                    gql(CREATE_INVESTMENT, json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-01-01" } })).await
                } else {
                    gql("{ funds { totalCount nodes { investments(first: 1) { totalCount } } } }", json!({})).await
                };
                assert!(status.as_u16() < 500, "{status}: {body}");
                let outcome = codes(&body).first().cloned().unwrap_or_else(|| "ok".to_owned());
                let created = body["data"]["createInvestment"]["id"].as_str().map(str::to_owned);
                seen.lock().unwrap().push((started, (mutation, outcome, started.elapsed(), created)));
            }
        }));
    }
    let wait_for = |what: &'static str, deadline: Duration, check: Box<dyn Fn() -> bool + Send>| async move {
        let until = Instant::now() + deadline;
        while !check() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let count_since =
        |seen: Arc<Mutex<Vec<(Instant, Observation)>>>, since: Instant, outcome: &'static str| {
            move || {
                seen.lock()
                    .unwrap()
                    .iter()
                    .filter(|(t, o)| *t >= since && (outcome.is_empty() || o.1 == outcome))
                    .count()
                    >= 20
            }
        };
    let phase1 = Instant::now();
    wait_for(
        "traffic before the outage",
        Duration::from_secs(20),
        Box::new(count_since(Arc::clone(&seen), phase1, "ok")),
    )
    .await;

    // Outage.
    tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(10)).map(|_| pg))
        .await
        .unwrap()
        .unwrap();
    let down_at = Instant::now();
    let ready = |router: axum::Router| async move {
        router
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let until = Instant::now() + Duration::from_secs(5);
    while ready(router.clone()).await != 503 {
        assert!(Instant::now() < until, "readyz never answered 503");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = router
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let phase2 = Instant::now();
    wait_for(
        "requests during the outage",
        Duration::from_secs(20),
        Box::new(count_since(
            Arc::clone(&seen),
            phase2,
            "SERVICE_UNAVAILABLE",
        )),
    )
    .await;

    // Recovery, with the same data folder, and no restart of the server. A request that ends
    // before the restart begins saw only the outage; one still running when it begins may
    // rightly succeed against the database that is coming back.
    let back_at = Instant::now();
    let pg = start(options).await;
    let until = Instant::now() + Duration::from_secs(15);
    while ready(router.clone()).await != 200 {
        assert!(Instant::now() < until, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let phase3 = Instant::now();
    wait_for(
        "traffic after recovery",
        Duration::from_secs(20),
        Box::new(count_since(Arc::clone(&seen), phase3, "ok")),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    let during: Vec<&Observation> = seen
        .iter()
        .filter(|(t, o)| *t >= down_at && *t + o.2 < back_at)
        .map(|(_, o)| o)
        .collect();
    // Nothing waited out the outage either, whenever it ended.
    for (t, (_, _, took, _)) in &seen {
        if *t >= down_at && *t < back_at {
            assert!(
                *took < Duration::from_secs(3),
                "a request waited {took:?} during the outage"
            );
        }
    }
    assert!(
        during.len() >= 20,
        "{} requests during the outage",
        during.len()
    );
    for (mutation, outcome, took, _) in &during {
        assert!(
            *took < Duration::from_secs(3),
            "a request waited {took:?} during the outage"
        );
        let allowed = if *mutation {
            matches!(
                outcome.as_str(),
                "SERVICE_UNAVAILABLE" | "INTERNAL_SERVER_ERROR"
            )
        } else {
            outcome == "SERVICE_UNAVAILABLE"
        };
        assert!(
            allowed,
            "during the outage: {outcome} (mutation: {mutation})"
        );
    }
    // Nothing reported as created is missing, and nothing unreported beyond the unknowns exists.
    let created: Vec<String> = seen.iter().filter_map(|(_, o)| o.3.clone()).collect();
    let unknown = seen
        .iter()
        .filter(|(_, o)| o.0 && o.1 == "INTERNAL_SERVER_ERROR")
        .count();
    let conn = Database::connect(url.clone()).await.unwrap();
    for id in &created {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT 1 FROM investments WHERE id = '{id}'"),
            ))
            .await
            .unwrap();
        assert!(
            row.is_some(),
            "investment {id} was reported created but is not stored"
        );
    }
    let stored: i64 = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM investments".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert!(stored as usize >= created.len() && stored as usize <= created.len() + unknown);
    conn.close().await.unwrap();
    let mut pg = pg;
    let _ = tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(10))).await;
    let _ = std::fs::remove_dir_all(&base_dir);
}

/// Polls `done` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not reached within 10 s: {what}");
}

/// Microseconds since the epoch, from the first column of the only row.
fn micros(rows: &[sea_orm::sqlx::postgres::PgRow]) -> i64 {
    use sea_orm::sqlx::Row;
    rows[0].try_get::<i64, _>(0).unwrap()
}

/// A statement of `sql`.
fn stmt(sql: &str) -> sea_orm::Statement {
    sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)
}

/// How many statements containing `marker` are active in PostgreSQL (waiting on a lock only,
/// when `lock`).
async fn active(app: &TestApp, marker: &str, lock: bool) -> i64 {
    app.sql_scalar::<i64>(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
         AND datname = current_database() \
         AND query LIKE '%{marker}%' AND state = 'active' {}",
        if lock {
            "AND wait_event_type = 'Lock'"
        } else {
            ""
        }
    ))
    .await
}

type Rows = Vec<sea_orm::sqlx::postgres::PgRow>;
type Read = tokio::task::JoinHandle<Result<Rows, titanbay::error::AppError>>;

/// Spawns `sql` as a read through the server's pool.
fn spawn_read(app: &TestApp, sql: &'static str) -> Read {
    let db = app.db().clone();
    tokio::spawn(async move { db.fetch_all(stmt(sql)).await })
}

/// Spawns `sql` as a write through the server's pool.
fn spawn_write(app: &TestApp, sql: &'static str) -> Read {
    let db = app.db().clone();
    tokio::spawn(async move { db.write(None, stmt(sql)).await })
}

/// A session of its own holding advisory lock `key` until the returned transaction ends.
async fn hold_lock(app: &TestApp, key: i64) -> (DatabaseConnection, DatabaseTransaction) {
    let holder_conn = Database::connect(app.url.as_str()).await.unwrap();
    let holder = holder_conn.begin().await.unwrap();
    holder
        .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})"))
        .await
        .unwrap();
    (holder_conn, holder)
}

/// Takes the only read turn of `app` (a bound of 1): a session of its own holds an advisory
/// lock, and a first read blocks on it inside PostgreSQL. Committing the returned transaction
/// lets it finish.
async fn hold_the_only_turn(app: &TestApp) -> (DatabaseConnection, DatabaseTransaction, Read) {
    let (holder_conn, holder) = hold_lock(app, 4242).await;
    let first = spawn_read(
        app,
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 'reads-bound-first' \
         FROM (SELECT pg_advisory_xact_lock_shared(4242)) AS locked",
    );
    eventually("the first read waits for the lock", async || {
        active(app, "reads-bound-first", true).await == 1
    })
    .await;
    assert_eq!(app.db().reads_in_progress().0, 1);
    (holder_conn, holder, first)
}

/// The rows of a spawned read, within 10 s.
async fn rows_of(read: Read) -> Rows {
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the read finished")
        .expect("the read did not panic")
        .expect("the read succeeded")
}

#[tokio::test]
async fn reads_past_the_bound_wait_their_turn_and_writes_do_not() {
    let app = TestApp::spawn_with(|c| c.database.max_concurrent_reads = 1).await;
    let (_conn, holder, first) = hold_the_only_turn(&app).await;
    let second = spawn_read(
        &app,
        "SELECT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint, 'reads-bound-second'",
    );
    eventually("the second read waits for its turn", async || {
        app.db().reads_in_progress().1 == 1
    })
    .await;
    assert_eq!(app.db().reads_in_progress().0, 1);
    assert_eq!(
        active(&app, "reads-bound-second", false).await,
        0,
        "not sent to PostgreSQL"
    );
    // A write does not wait for a read's turn.
    let write = tokio::time::timeout(
        Duration::from_secs(10),
        app.db().write(None, stmt("SELECT 1::bigint")),
    )
    .await
    .expect("the write ran while the reads were held")
    .unwrap();
    assert_eq!(micros(&write), 1);

    holder.commit().await.unwrap();
    let first = rows_of(first).await;
    let second = rows_of(second).await;
    assert!(
        micros(&second) >= micros(&first),
        "the second read started after the first had its rows"
    );
    assert_eq!(app.db().reads_in_progress(), (0, 0));
}

#[tokio::test]
async fn writes_past_their_share_wait_their_turn_and_reads_still_run() {
    // Writes queued on one row lock must not take every connection and stall the reads.
    let app = TestApp::spawn_with(|c| c.database.max_concurrent_writes = Some(1)).await;
    let (_conn, holder) = hold_lock(&app, 4343).await;
    let first = spawn_write(
        &app,
        "SELECT 1::bigint, 'writes-bound-first' FROM (SELECT pg_advisory_xact_lock_shared(4343)) l",
    );
    eventually("the first write waits for the lock", async || {
        active(&app, "writes-bound-first", true).await == 1
    })
    .await;
    let second = spawn_write(&app, "SELECT 2::bigint, 'writes-bound-second'");
    eventually("the second write waits for its turn", async || {
        app.db().writes_in_progress() == (1, 1)
    })
    .await;
    assert_eq!(active(&app, "writes-bound-second", false).await, 0);
    // Reads run meanwhile.
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        app.db().fetch_all(stmt("SELECT 3::bigint")),
    )
    .await
    .expect("the read ran while the writes were held")
    .unwrap();
    assert_eq!(micros(&read), 3);
    holder.commit().await.unwrap();
    assert_eq!(micros(&rows_of(first).await), 1);
    assert_eq!(micros(&rows_of(second).await), 2);
    assert_eq!(app.db().writes_in_progress(), (0, 0));
}
