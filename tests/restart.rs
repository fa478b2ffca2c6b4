//! The server heals from a database restart and from terminated backends while traffic never
//! pauses: requests keep coming back to back (no client is idle for even a millisecond), and
//! within 2 s of PostgreSQL accepting connections again every request answers normally. Writes
//! answered SERVICE_UNAVAILABLE certainly did not commit; acknowledged writes are all there.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use common::fixtures::*;
use local_pg::{LocalPgOptions, LocalPostgres};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use titanbay::{db::Db, http, startup::build_state};
use tower::ServiceExt;

/// One request of the load: when it started and ended, whether it wrote, its outcome (`ok` or
/// the first error code), and the unique amount of a write.
#[derive(Debug, Clone)]
struct Seen {
    started: Instant,
    write: bool,
    outcome: String,
    amount: Option<String>,
}

async fn gql(router: &axum::Router, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables });
    let response = router
        .clone()
        .oneshot(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn start(options: LocalPgOptions) -> LocalPostgres {
    tokio::task::spawn_blocking(move || LocalPostgres::start(&options))
        .await
        .unwrap()
        .unwrap()
}

/// Waits until `count` observations started at or after `since`.
async fn until_seen(seen: &Mutex<Vec<Seen>>, since: Instant, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.started >= since)
            .count();
        if n >= count {
            return;
        }
        assert!(Instant::now() < deadline, "the load stalled: {n} requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The observations that started in `from..to`, and those of them that did not answer
/// normally.
fn window(seen: &Mutex<Vec<Seen>>, from: Instant, to: Instant) -> (usize, Vec<Seen>) {
    let seen = seen.lock().unwrap();
    let inside: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.started >= from && s.started < to)
        .collect();
    let failed = inside
        .iter()
        .filter(|s| s.outcome != "ok")
        .map(|s| (*s).clone())
        .collect();
    (inside.len(), failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_heals_from_terminated_backends_and_a_fast_restart_under_continuous_traffic() {
    // A cluster of its own: this test stops it.
    let base_dir =
        std::env::temp_dir().join(format!("titanbay-test-{}-restart", std::process::id()));
    let options = LocalPgOptions {
        base_dir: base_dir.clone(),
        bin_dir: None,
        ephemeral: true,
        remove_on_exit: false,
        settings: Vec::new(),
    };
    let mut pg = start(options.clone()).await;
    titanbay::db::ensure_database(&pg.url("postgres"), "restart")
        .await
        .unwrap();
    let url = pg.url("restart");
    let conn = Database::connect(url.clone()).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    conn.close().await.unwrap();

    let mut config = common::test_config(&url);
    config.database.max_connections = 10;
    config.database.min_connections = 4;
    config.database.connect_timeout = Duration::from_secs(1);
    let db = Db::connect(&config.database, &url).await.unwrap();
    let router = http::router(build_state(db, config).await.unwrap());

    let fund = gql(
        &router,
        CREATE_FUND,
        json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1.00" } }),
    )
    .await["data"]["createFund"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let investor = gql(
        &router,
        CREATE_INVESTOR,
        json!({ "input": { "name": "I", "investorType": "INDIVIDUAL", "email": "i@x.co" } }),
    )
    .await["data"]["createInvestor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The load: six readers and two writers, each sending its next request the moment the
    // previous one is answered.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let next_amount = Arc::new(AtomicU64::new(1));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (stop, seen, router) = (Arc::clone(&stop), Arc::clone(&seen), router.clone());
        let (fund, investor, next_amount) =
            (fund.clone(), investor.clone(), Arc::clone(&next_amount));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let write = client < 2;
                let started = Instant::now();
                let (body, amount) = if write {
                    // A unique amount per attempt tells afterwards whether it committed.
                    let n = next_amount.fetch_add(1, Ordering::Relaxed);
                    let amount = format!("{}.{:02}", 1000 + n / 100, n % 100);
                    let body = gql(
                        &router,
                        CREATE_INVESTMENT,
                        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": amount, "investmentDate": "2024-01-01" } }),
                    )
                    .await;
                    (body, Some(amount))
                } else {
                    let body = gql(
                        &router,
                        "query($id: UUID!) { fund(id: $id) { name investments(first: 3) { nodes { amountUsd investor { name } } } } }",
                        json!({ "id": fund }),
                    )
                    .await;
                    (body, None)
                };
                let outcome = common::codes(&body)
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "ok".to_owned());
                seen.lock().unwrap().push(Seen {
                    started,
                    write,
                    outcome,
                    amount,
                });
                // An answer refused at once (the database down) is ready without waiting: give
                // the runtime its turn, so its timers run and a failing test can end.
                tokio::task::yield_now().await;
            }
        }));
    }
    until_seen(&seen, Instant::now(), 200).await;

    // Fault 1: every backend of the server's pool is terminated (PostgreSQL stays up).
    let admin = common::connect(&pg.url("postgres")).await;
    let terminated_at = Instant::now();
    let killed: i64 = common::scalar(
        &admin,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = 'restart' AND application_name = 'titanbay'",
    )
    .await;
    assert!(killed >= 4, "{killed} backends terminated");
    drop(admin);
    let healed_after_kill = terminated_at + Duration::from_secs(2);
    until_seen(&seen, healed_after_kill, 300).await;
    let (count, failed) = window(&seen, healed_after_kill, Instant::now());
    assert!(
        failed.is_empty(),
        "{} of {count} requests failed more than 2 s after the backends were terminated: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Fault 2: a fast restart (what a failover or a minor upgrade is).
    tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(10)).map(|()| pg))
        .await
        .unwrap()
        .unwrap();
    let pg = start(options).await;
    let accepting_at = Instant::now();
    let healed_after_restart = accepting_at + Duration::from_secs(2);
    until_seen(&seen, healed_after_restart, 300).await;
    let (count, failed) = window(&seen, healed_after_restart, Instant::now());
    assert!(
        failed.is_empty(),
        "{} of {count} requests failed more than 2 s after PostgreSQL accepted connections again: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    // Every acknowledged write is there; none answered SERVICE_UNAVAILABLE is; only writes in
    // flight when a fault struck may be reported as of unknown outcome.
    let conn = common::connect(&pg.url("restart")).await;
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT amount_usd::text FROM investments",
        ))
        .await
        .unwrap();
    let committed: HashSet<String> = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    let seen = seen.lock().unwrap().clone();
    let mut unknown = 0;
    for s in seen.iter().filter(|s| s.write) {
        let amount = s.amount.as_ref().unwrap();
        match s.outcome.as_str() {
            "ok" => assert!(committed.contains(amount), "acknowledged {amount} is lost"),
            "SERVICE_UNAVAILABLE" | "REQUEST_TIMEOUT" => assert!(
                !committed.contains(amount),
                "{amount} was answered {} but committed",
                s.outcome
            ),
            "INTERNAL_SERVER_ERROR" => unknown += 1,
            other => panic!("a write answered {other}"),
        }
    }
    for s in seen.iter().filter(|s| !s.write) {
        assert!(
            matches!(
                s.outcome.as_str(),
                "ok" | "SERVICE_UNAVAILABLE" | "REQUEST_TIMEOUT"
            ),
            "a read answered {}",
            s.outcome
        );
    }
    // Two writers, two faults: at most one write in flight per writer per fault.
    assert!(unknown <= 4, "{unknown} writes of unknown outcome");
    let total = seen.len();
    assert!(total > 1000, "only {total} requests in the whole run");
    let mut pg = pg;
    let _ = tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(10))).await;
    let _ = std::fs::remove_dir_all(&base_dir);
}
