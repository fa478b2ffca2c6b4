//! `Idempotency-Key` on mutations: a retry gets the first answer and never a second write; the
//! same key with other input is refused; a retry while the first runs is told so; keys are per
//! caller; they expire and are pruned; a retry after an unknown outcome or a killed server
//! returns what was committed. All on real PostgreSQL (and, in CI, again through PgBouncer).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use common::{TestApp, TestResponse, codes, field, fixtures::*};
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use titanbay::auth::{Scope, TokenRequest, mint_hs256};

const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";

fn hs256(config: &mut titanbay::config::Config) {
    config.auth.hs256_secret = Some(SECRET.to_owned());
    config.auth.issuer = Some("titanbay".to_owned());
    config.auth.audience = Some("titanbay".to_owned());
}

fn token_for(subject: &str) -> String {
    token_with(subject, &Scope::ALL)
}

fn token_with(subject: &str, scopes: &[Scope]) -> String {
    mint_hs256(
        SECRET,
        &TokenRequest {
            issuer: "titanbay",
            audience: "titanbay",
            subject,
            scopes,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap()
}

/// POSTs `query` with `Idempotency-Key: key` (and a bearer token when given).
async fn keyed(
    app: &TestApp,
    key: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> TestResponse {
    let mut request = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("idempotency-key", key);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.send(
        request
            .body(Body::from(
                json!({ "query": query, "variables": variables }).to_string(),
            ))
            .unwrap(),
    )
    .await
}

fn investment_input(fund: &str, investor: &str, amount: &str) -> Value {
    json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": amount, "investmentDate": "2024-05-01" } })
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.sql_scalar(&format!("SELECT count(*) FROM {table}"))
        .await
}

async fn book(app: &TestApp) -> (String, String) {
    let fund = fund(app, "Keyed Fund", "FUNDRAISING").await;
    let investor = investor(app, "Keyed Investor", "keyed@example.com").await;
    (fund, investor)
}

#[tokio::test]
async fn a_retry_gets_the_stored_answer_without_running_again() {
    let app = TestApp::spawn().await;
    let (fund, investor) = book(&app).await;
    let vars = investment_input(&fund, &investor, "100.00");
    let first = keyed(&app, "order-1", None, CREATE_INVESTMENT, vars.clone()).await;
    assert!(codes(&first.body).is_empty(), "{:#}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let id = first.body["data"]["createInvestment"]["id"].clone();
    let statements = app.statements();
    let retry = keyed(&app, "order-1", None, CREATE_INVESTMENT, vars.clone()).await;
    assert_eq!(retry.raw, first.raw, "the same answer, byte for byte");
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body["data"]["createInvestment"]["id"], id);
    // The claim finds the stored answer: the claim (and behind a pooler its COMMIT) and the
    // read of the answer; nothing else runs.
    assert!(app.statements() - statements <= 3);
    assert_eq!(count(&app, "investments").await, 1);
    assert_eq!(
        app.sql_scalar::<i64>(
            "SELECT count(*) FROM audit_events WHERE operation = 'createInvestment'"
        )
        .await,
        1
    );
    let total: String = app
        .sql_scalar("SELECT committed_usd::text FROM fund_totals")
        .await;
    assert_eq!(total, "100.00");
    // Another key is another request; no key at all is never deduplicated.
    keyed(&app, "order-2", None, CREATE_INVESTMENT, vars.clone()).await;
    app.gql_ok(CREATE_INVESTMENT, vars).await;
    assert_eq!(count(&app, "investments").await, 3);
}

#[tokio::test]
async fn the_same_key_with_other_input_is_refused_and_variable_order_does_not_matter() {
    let app = TestApp::spawn().await;
    let (fund, investor) = book(&app).await;
    let first = keyed(
        &app,
        "k",
        None,
        CREATE_INVESTMENT,
        investment_input(&fund, &investor, "5.00"),
    )
    .await;
    assert!(codes(&first.body).is_empty());
    let other = keyed(
        &app,
        "k",
        None,
        CREATE_INVESTMENT,
        investment_input(&fund, &investor, "6.00"),
    )
    .await;
    assert_eq!(codes(&other.body), ["IDEMPOTENCY_KEY_REUSED"]);
    assert_eq!(field(&other.body).as_deref(), Some("Idempotency-Key"));
    assert!(other.body.get("data").is_none());
    // The same values with the input's fields in another order: the same request.
    let reordered = json!({ "input": { "investmentDate": "2024-05-01", "amountUsd": "5.00", "investorId": investor, "fundId": fund } });
    let same = keyed(&app, "k", None, CREATE_INVESTMENT, reordered).await;
    assert_eq!(same.raw, first.raw);
    // Another document under the key is refused too.
    let other_doc = keyed(&app, "k", None, CREATE_FUND, json!({ "input": { "name": "X", "vintageYear": 2024, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } })).await;
    assert_eq!(codes(&other_doc.body), ["IDEMPOTENCY_KEY_REUSED"]);
    assert_eq!(count(&app, "investments").await, 1);
    assert_eq!(count(&app, "funds").await, 1);
}

/// A transaction of the test's own holding `fund`'s row lock (writes to the fund wait inside
/// their statement until it ends).
async fn hold_fund_lock(app: &TestApp, fund: &str) -> sea_orm::DatabaseTransaction {
    let blocker = app.sql_conn.begin().await.unwrap();
    blocker
        .execute_unprepared(&format!(
            "SELECT 1 FROM funds WHERE id = '{fund}' FOR UPDATE"
        ))
        .await
        .unwrap();
    blocker
}

/// Waits until a backend of this database waits for a lock.
async fn until_waiting_for_a_lock(app: &TestApp) {
    let started = Instant::now();
    loop {
        let waiting: i64 = app
            .sql_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nobody waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_while_the_first_runs_is_told_so_then_gets_the_answer() {
    // Room for a second write beside the one waiting (the tests' pool is small).
    let app = Arc::new(TestApp::spawn_with(|c| c.database.max_concurrent_writes = Some(4)).await);
    let (fund, investor) = book(&app).await;
    let vars = investment_input(&fund, &investor, "7.00");
    // Hold the fund's row lock so the first attempt waits inside its transaction.
    let blocker = hold_fund_lock(&app, &fund).await;
    let first = {
        let (app, vars) = (Arc::clone(&app), vars.clone());
        tokio::spawn(async move { keyed(&app, "slow", None, CREATE_INVESTMENT, vars).await })
    };
    until_waiting_for_a_lock(&app).await;
    let during = keyed(&app, "slow", None, CREATE_INVESTMENT, vars.clone()).await;
    assert_eq!(codes(&during.body), ["IDEMPOTENCY_KEY_IN_PROGRESS"]);
    blocker.commit().await.unwrap();
    let first = first.await.unwrap();
    assert!(codes(&first.body).is_empty(), "{:#}", first.body);
    let after = keyed(&app, "slow", None, CREATE_INVESTMENT, vars).await;
    assert_eq!(after.raw, first.raw);
    assert_eq!(count(&app, "investments").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_retries_of_one_key_make_one_row_and_one_answer() {
    // Room for the retries' claims beside the write waiting (the tests' pool is small).
    let app = Arc::new(TestApp::spawn_with(|c| c.database.max_concurrent_writes = Some(4)).await);
    let (fund, investor) = book(&app).await;
    let vars = investment_input(&fund, &investor, "20.00");
    // The fund's lock held for a moment, so the twenty overlap for sure.
    let blocker = hold_fund_lock(&app, &fund).await;
    let told = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let attempts = (0..20).map(|_| {
        let (app, vars, told) = (Arc::clone(&app), vars.clone(), Arc::clone(&told));
        tokio::spawn(async move {
            let mut in_progress = 0;
            loop {
                let r = keyed(&app, "same-order", None, CREATE_INVESTMENT, vars.clone()).await;
                if codes(&r.body) == ["IDEMPOTENCY_KEY_IN_PROGRESS"] {
                    if in_progress == 0 {
                        told.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    in_progress += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return (r.raw, in_progress);
            }
        })
    });
    let attempts = tokio::spawn(join_all(attempts));
    until_waiting_for_a_lock(&app).await;
    // Release the lock only once the other nineteen have each been told to wait (however
    // slowly a loaded machine starts them).
    let started = Instant::now();
    while told.load(std::sync::atomic::Ordering::Relaxed) < 19 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the retries did not overlap"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    blocker.commit().await.unwrap();
    let results: Vec<_> = attempts
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let told_to_wait: usize = results.iter().map(|(_, n)| n).sum();
    assert!(
        told_to_wait >= 19,
        "the others were told the first is running"
    );
    let first = &results[0].0;
    assert!(results.iter().all(|(raw, _)| raw == first), "one answer");
    let body: Value = serde_json::from_slice(first).unwrap();
    assert!(codes(&body).is_empty(), "{body:#}");
    assert_eq!(count(&app, "investments").await, 1);
    assert_eq!(
        app.sql_scalar::<String>("SELECT committed_usd::text FROM fund_totals")
            .await,
        "20.00"
    );
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let app = TestApp::spawn_with(hs256).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let create = |name: &str| json!({ "input": { "name": name, "vintageYear": 2024, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } });
    let a = keyed(&app, "shared", Some(&alice), CREATE_FUND, create("Alice's")).await;
    // Bob's request under the same key is his own: it runs, and never sees Alice's answer.
    let b = keyed(&app, "shared", Some(&bob), CREATE_FUND, create("Bob's")).await;
    assert!(
        codes(&a.body).is_empty() && codes(&b.body).is_empty(),
        "{:#} {:#}",
        a.body,
        b.body
    );
    assert_ne!(
        a.body["data"]["createFund"]["id"],
        b.body["data"]["createFund"]["id"]
    );
    assert_eq!(b.body["data"]["createFund"]["name"], "Bob's");
    // Bob repeating Alice's exact request under the key still gets his own answer space.
    let b2 = keyed(&app, "shared", Some(&bob), CREATE_FUND, create("Alice's")).await;
    assert_eq!(codes(&b2.body), ["IDEMPOTENCY_KEY_REUSED"]);
    let a2 = keyed(&app, "shared", Some(&alice), CREATE_FUND, create("Alice's")).await;
    assert_eq!(a2.raw, a.raw);
    // A token of Alice's with other scopes is not replayed an answer it might not read.
    let narrower = token_with("alice", &[Scope::FundsWrite, Scope::FundsRead]);
    let a3 = keyed(
        &app,
        "shared",
        Some(&narrower),
        CREATE_FUND,
        create("Alice's"),
    )
    .await;
    assert_eq!(codes(&a3.body), ["IDEMPOTENCY_KEY_REUSED"]);
    assert_eq!(count(&app, "funds").await, 2);
}

#[tokio::test]
async fn keys_expire_and_are_pruned() {
    let app =
        TestApp::spawn_with(|c| c.limits.idempotency_retention = Duration::from_millis(800)).await;
    let (fund, investor) = book(&app).await;
    let first = keyed(
        &app,
        "old",
        None,
        CREATE_INVESTMENT,
        investment_input(&fund, &investor, "1.00"),
    )
    .await;
    assert!(codes(&first.body).is_empty());
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Expired: the key is free again, also for other input.
    let reused = keyed(
        &app,
        "old",
        None,
        CREATE_INVESTMENT,
        investment_input(&fund, &investor, "2.00"),
    )
    .await;
    assert!(codes(&reused.body).is_empty(), "{:#}", reused.body);
    assert_ne!(
        reused.body["data"]["createInvestment"]["id"],
        first.body["data"]["createInvestment"]["id"]
    );
    assert_eq!(count(&app, "investments").await, 2);
    // And the server deletes expired keys by itself.
    let started = Instant::now();
    while count(&app, "idempotency_keys").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "expired keys were not pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn malformed_keys_and_keyed_batches_are_refused_before_anything_runs() {
    let app = TestApp::spawn().await;
    let vars = json!({ "input": { "name": "F", "vintageYear": 2024, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } });
    let long = "k".repeat(256);
    for key in [long.as_str(), "tab\there", " "] {
        let r = keyed(&app, key, None, CREATE_FUND, vars.clone()).await;
        if key == " " {
            // A space is printable: a valid (if odd) key.
            assert!(codes(&r.body).is_empty(), "{:#}", r.body);
            continue;
        }
        assert_eq!(codes(&r.body), ["BAD_USER_INPUT"], "{key:?}");
        assert_eq!(field(&r.body).as_deref(), Some("Idempotency-Key"));
    }
    let ok = keyed(&app, &"k".repeat(255), None, CREATE_FUND, vars.clone()).await;
    assert!(codes(&ok.body).is_empty());
    let batch = json!([{ "query": CREATE_FUND, "variables": vars }, { "query": "{ funds { totalCount } }" }]);
    let r = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("idempotency-key", "batch")
                .body(Body::from(batch.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(codes(&r.body), ["BAD_REQUEST"]);
    assert_eq!(count(&app, "funds").await, 2);
    // A query under a key is not stored (it changes nothing).
    let q = keyed(
        &app,
        "query-key",
        None,
        "{ funds { totalCount } }",
        json!({}),
    )
    .await;
    assert!(codes(&q.body).is_empty());
    assert_eq!(count(&app, "idempotency_keys").await, 2);
}

const TWO_MUTATIONS: &str = "mutation($f: CreateFundInput!, $i: CreateInvestorInput!) { \
    fund: createFund(input: $f) { id name } investor: createInvestor(input: $i) { id email } }";

fn two_inputs() -> Value {
    json!({
        "f": { "name": "Both", "vintageYear": 2024, "targetSizeUsd": "1.00", "status": "FUNDRAISING" },
        "i": { "name": "Both", "investorType": "INDIVIDUAL", "email": "both@example.com" }
    })
}

#[tokio::test]
async fn a_document_of_several_mutations_resumes_after_the_field_that_committed() {
    let app = TestApp::spawn().await;
    // The second field fails in a way a retry may not (a statement timeout): the first field
    // committed and is on record.
    app.sql(
        "CREATE FUNCTION refuse_investors() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '57014'; END $$; \
         CREATE TRIGGER refuse_investors BEFORE INSERT ON investors \
         FOR EACH ROW EXECUTE FUNCTION refuse_investors()",
    )
    .await;
    let first = keyed(&app, "two", None, TWO_MUTATIONS, two_inputs()).await;
    assert_eq!(codes(&first.body), ["REQUEST_TIMEOUT"], "{:#}", first.body);
    // Both fields are non-null, so the answer has no data; the fund is in the database.
    assert_eq!(count(&app, "funds").await, 1);
    let fund_id: String = app.sql_scalar("SELECT id::text FROM funds").await;
    app.sql("DROP TRIGGER refuse_investors ON investors").await;
    // The retry answers the fund from the record and runs the investor.
    let retry = keyed(&app, "two", None, TWO_MUTATIONS, two_inputs()).await;
    assert!(codes(&retry.body).is_empty(), "{:#}", retry.body);
    assert_eq!(retry.body["data"]["fund"]["id"], fund_id.as_str());
    assert_eq!(retry.body["data"]["investor"]["email"], "both@example.com");
    assert_eq!(count(&app, "funds").await, 1);
    assert_eq!(count(&app, "investors").await, 1);
    let again = keyed(&app, "two", None, TWO_MUTATIONS, two_inputs()).await;
    assert_eq!(again.raw, retry.raw);
}

#[tokio::test]
async fn a_retry_after_an_unknown_commit_outcome_makes_one_row() {
    let app = TestApp::spawn().await;
    let (fund, investor) = book(&app).await;
    // A check deferred to COMMIT fails once: the client sees INTERNAL_SERVER_ERROR, the
    // outcome it cannot know (nothing committed here).
    app.sql(
        "CREATE TABLE fail_commit (n int); INSERT INTO fail_commit VALUES (1); \
         CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF EXISTS (SELECT 1 FROM fail_commit) THEN \
           RAISE EXCEPTION 'commit fails'; END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON investments \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()",
    )
    .await;
    let vars = investment_input(&fund, &investor, "3.00");
    let first = keyed(&app, "unknown", None, CREATE_INVESTMENT, vars.clone()).await;
    assert_eq!(
        codes(&first.body),
        ["INTERNAL_SERVER_ERROR"],
        "{:#}",
        first.body
    );
    app.sql("DELETE FROM fail_commit").await;
    // The README's advice: retry with the same key.
    let retry = keyed(&app, "unknown", None, CREATE_INVESTMENT, vars.clone()).await;
    assert!(codes(&retry.body).is_empty(), "{:#}", retry.body);
    let again = keyed(&app, "unknown", None, CREATE_INVESTMENT, vars).await;
    assert_eq!(again.raw, retry.raw);
    assert_eq!(count(&app, "investments").await, 1);
}

// ---- the server killed mid-request: a real server process ----

const BIN: &str = env!("CARGO_BIN_EXE_titanbay");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary on `app`'s database (through PgBouncer when the run asks for it).
fn server(app: &TestApp, port: u16) -> Child {
    let db = &app.state.config.database;
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url.as_deref().unwrap())
        .env("RUN_MIGRATIONS", "false")
        .env("DB_MIN_CONNECTIONS", "0")
        .env("DB_MAX_CONNECTIONS", "4")
        .env("IDEMPOTENCY_LEASE_SECS", "2")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if db.pooler == titanbay::config::PoolerMode::Transaction {
        command.env("DB_POOLER", "transaction");
        command.env("DATABASE_LISTEN_URL", db.listen_url.as_deref().unwrap());
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A keyed POST to the server on `port`, on a thread; its JSON body (None if the connection
/// died first).
fn post_keyed(
    port: u16,
    key: &str,
    query: &str,
    variables: &Value,
) -> std::thread::JoinHandle<Option<Value>> {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let key = key.to_owned();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        write!(
            stream,
            "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Idempotency-Key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    })
}

/// Retries `request` until it is not refused as in progress (the dead server's lease runs
/// out after 2 s).
fn retry_until_answered(port: u16, key: &str, query: &str, variables: &Value) -> Value {
    let started = Instant::now();
    loop {
        let body = post_keyed(port, key, query, variables)
            .join()
            .unwrap()
            .expect("an answer");
        if codes(&body) != ["IDEMPOTENCY_KEY_IN_PROGRESS"] {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still in progress"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn until_query_waits(app: &TestApp, query_prefix: &str, wait_event: &str) -> i32 {
    let started = Instant::now();
    loop {
        let pid: Option<i32> = app
            .sql_scalar(&format!(
                "SELECT (SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND query LIKE '{query_prefix}%' AND wait_event = '{wait_event}' LIMIT 1)"
            ))
            .await;
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {query_prefix} waits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_server_is_killed_makes_one_row_whether_or_not_the_write_committed() {
    let app = TestApp::spawn().await;
    let (fund, investor) = book(&app).await;

    // 1. Killed before the commit: the first attempt waits for the fund's lock.
    let vars = investment_input(&fund, &investor, "11.00");
    let port = free_port();
    let mut first_server = server(&app, port);
    let blocker = hold_fund_lock(&app, &fund).await;
    let lost = post_keyed(port, "before-commit", CREATE_INVESTMENT, &vars);
    until_waiting_for_a_lock(&app).await;
    first_server.kill().unwrap(); // SIGKILL
    first_server.wait().unwrap();
    blocker.commit().await.unwrap();
    assert!(lost.join().unwrap().is_none(), "the killed server answered");
    let port = free_port();
    let mut second_server = server(&app, port);
    let body = retry_until_answered(port, "before-commit", CREATE_INVESTMENT, &vars);
    assert!(codes(&body).is_empty(), "{body:#}");
    assert_eq!(count(&app, "investments").await, 1);

    // 2. Killed after the commit, before the answer was stored: storing it hangs.
    app.sql(
        "CREATE FUNCTION hang_store() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$; \
         CREATE TRIGGER hang_store BEFORE UPDATE ON idempotency_keys FOR EACH ROW \
         WHEN (NEW.response IS NOT NULL) EXECUTE FUNCTION hang_store()",
    )
    .await;
    let vars = investment_input(&fund, &investor, "12.00");
    let lost = post_keyed(port, "after-commit", CREATE_INVESTMENT, &vars);
    let storing = until_query_waits(&app, "UPDATE idempotency_keys SET response", "PgSleep").await;
    second_server.kill().unwrap();
    second_server.wait().unwrap();
    assert!(lost.join().unwrap().is_none(), "the killed server answered");
    app.sql(&format!(
        "SELECT pg_terminate_backend({storing}); DROP TRIGGER hang_store ON idempotency_keys"
    ))
    .await;
    let committed: String = app
        .sql_scalar("SELECT id::text FROM investments WHERE amount_usd = 12.00")
        .await;
    let port = free_port();
    let mut third_server = server(&app, port);
    let body = retry_until_answered(port, "after-commit", CREATE_INVESTMENT, &vars);
    third_server.kill().unwrap();
    third_server.wait().unwrap();
    assert!(codes(&body).is_empty(), "{body:#}");
    assert_eq!(body["data"]["createInvestment"]["id"], committed.as_str());
    assert_eq!(count(&app, "investments").await, 2);
    assert_eq!(
        app.sql_scalar::<String>("SELECT committed_usd::text FROM fund_totals")
            .await,
        "23.00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_claim_was_taken_over_rolls_back() {
    let app = Arc::new(TestApp::spawn().await);
    let (fund, investor) = book(&app).await;
    let vars = investment_input(&fund, &investor, "9.00");
    let blocker = hold_fund_lock(&app, &fund).await;
    let first = {
        let (app, vars) = (Arc::clone(&app), vars.clone());
        tokio::spawn(async move { keyed(&app, "taken", None, CREATE_INVESTMENT, vars).await })
    };
    until_waiting_for_a_lock(&app).await;
    // Another attempt took the key over (as after the first one's lease ran out).
    app.sql("UPDATE idempotency_keys SET token = gen_random_uuid()")
        .await;
    blocker.commit().await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(
        codes(&first.body),
        ["IDEMPOTENCY_KEY_IN_PROGRESS"],
        "{:#}",
        first.body
    );
    assert_eq!(count(&app, "investments").await, 0);
    assert_eq!(count(&app, "fund_totals").await, 0);
}
