//! Many clients over few server connections. Run plainly (`cargo test`), the application's
//! own pool of 5 connections carries 200 concurrent clients; run with
//! `TITANBAY_TEST_POOLER=pgbouncer` (CI does), 200 client connections of the application go
//! through a real PgBouncer in transaction mode that holds 5 server connections, with
//! `DB_POOLER=transaction`. Either way every request succeeds and the numbers add up.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use common::{TEST_APPLICATION_NAME, TestApp, codes, fixtures::*, pgbouncer};
use futures_util::future::join_all;
use serde_json::{Value, json};

const CLIENTS: usize = 200;
const REQUESTS_PER_CLIENT: usize = 6;

const NESTED: &str = "query($id: UUID!) { fund(id: $id) { name totalCommittedUsd \
    investments(first: 5) { totalCount edges { node { amountUsd investor { name } } } } } }";

/// The server connections carrying the application's statements now: all but the tests' own
/// and, on a direct connection, the health probe's (a connection of its own by design; behind
/// PgBouncer it shares the 5).
async fn server_connections(app: &TestApp, pooled: bool) -> i64 {
    let probe = if pooled { "" } else { "titanbay-probe" };
    app.sql_scalar(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend' \
         AND application_name NOT IN ('{TEST_APPLICATION_NAME}', '{probe}')"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_clients_share_five_server_connections() {
    let pooled = pgbouncer::requested();
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            if pooled {
                // One PgBouncer client connection per concurrent request: PgBouncer, not the
                // application's pool, is what multiplexes them.
                c.database.max_connections = CLIENTS as u32;
                c.database.max_concurrent_reads = 0;
                c.database.max_concurrent_writes = Some(CLIENTS);
            }
        })
        .await,
    );
    let fund = fund(&app, "Pooled", "FUNDRAISING").await;
    let investors: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(investor(&app, &format!("I{i}"), &format!("i{i}@pool.example")).await);
        }
        ids
    };

    // Watch the server side while the clients run.
    let running = Arc::new(AtomicBool::new(true));
    let most_server_connections = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (app, running, most) = (
            Arc::clone(&app),
            Arc::clone(&running),
            Arc::clone(&most_server_connections),
        );
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let now = server_connections(&app, pooled).await;
                most.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let clients = (0..CLIENTS).map(|c| {
        let (app, fund, investor) = (
            Arc::clone(&app),
            fund.clone(),
            investors[c % investors.len()].clone(),
        );
        tokio::spawn(async move {
            let mut bodies: Vec<Value> = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                let body = if r % 3 == 0 {
                    app.gql(
                        CREATE_INVESTMENT,
                        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "10.01", "investmentDate": "2024-05-01" } }),
                    )
                    .await
                } else {
                    app.gql(NESTED, json!({ "id": fund })).await
                };
                bodies.push(body);
            }
            bodies
        })
    });
    let bodies: Vec<Value> = join_all(clients)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    running.store(false, Ordering::Relaxed);
    watcher.await.unwrap();

    let failed: Vec<&Value> = bodies.iter().filter(|b| !codes(b).is_empty()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:#}",
        failed.len(),
        bodies.len(),
        failed[0]
    );
    let writes = (CLIENTS * REQUESTS_PER_CLIENT.div_ceil(3)) as i64;
    let stored: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(stored, writes);
    let data = app.gql_ok(NESTED, json!({ "id": fund })).await;
    assert_eq!(data["fund"]["investments"]["totalCount"], stored);
    let cents = stored * 1001;
    assert_eq!(
        data["fund"]["totalCommittedUsd"],
        format!("{}.{:02}", cents / 100, cents % 100)
    );
    let most = most_server_connections.load(Ordering::Relaxed);
    assert!(
        (1..=pgbouncer::SERVER_POOL_SIZE as i64).contains(&most),
        "the server saw {most} connections at most"
    );
    if pooled {
        // The application really held many client connections, over those few.
        assert!(
            app.db().pool_status().size > pgbouncer::SERVER_POOL_SIZE * 4,
            "{:?}",
            app.db().pool_status()
        );
    }
}
