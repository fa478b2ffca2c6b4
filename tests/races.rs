//! Business rules under real concurrency on PostgreSQL: the unique email index and the fund row
//! lock decide races, and no race ends in an internal error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{TestApp, codes, fixtures::*};
use futures_util::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_sign_ups_with_one_email_make_exactly_one_investor() {
    let app = Arc::new(TestApp::spawn().await);
    let attempts = (0..20).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            // Vary the case: uniqueness is case-insensitive.
            let email = if i % 2 == 0 { "Race@Example.com" } else { "race@example.COM" };
            app.gql(
                CREATE_INVESTOR,
                json!({ "input": { "name": format!("Racer {i}"), "investorType": "INDIVIDUAL", "email": email } }),
            )
            .await
        })
    });
    let bodies: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let successes = bodies.iter().filter(|b| b.get("errors").is_none()).count();
    let conflicts = bodies.iter().filter(|b| codes(b) == ["CONFLICT"]).count();
    assert_eq!(successes, 1, "{bodies:#?}");
    assert_eq!(conflicts, 19, "{bodies:#?}");
    let stored: i64 = app.sql_scalar("SELECT count(*) FROM investors").await;
    assert_eq!(stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn investments_racing_a_close_either_commit_before_it_or_are_refused() {
    let app = Arc::new(TestApp::spawn().await);
    let fund = fund(&app, "Closing", "INVESTING").await;
    let investor = investor(&app, "I", "i@x.co").await;
    let mut tasks = Vec::new();
    for i in 0..31 {
        let app = Arc::clone(&app);
        let (fund, investor) = (fund.clone(), investor.clone());
        tasks.push(tokio::spawn(async move {
            if i == 15 {
                app.gql(UPDATE_FUND, json!({ "input": { "id": fund, "status": "CLOSED" } })).await
            } else {
                app.gql(
                    CREATE_INVESTMENT,
                    json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-05-01" } }),
                )
                .await
            }
        }));
    }
    let bodies: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let close = &bodies[15];
    assert!(close.get("errors").is_none(), "{close:#}");
    let closed_at = close["data"]["updateFund"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut created = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        if i == 15 {
            continue;
        }
        match body.get("errors") {
            None => created.push(
                body["data"]["createInvestment"]["createdAt"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            Some(_) => assert_eq!(codes(body), ["FUND_CLOSED"], "{body:#}"),
        }
    }
    // Every investment that committed was accepted while the fund was open: its row lock
    // serialised it before the close.
    for created_at in &created {
        assert!(
            created_at < &closed_at,
            "{created_at} committed after the close at {closed_at}"
        );
    }
    let stored: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(stored as usize, created.len());
    // And after the close, nothing more gets in.
    let late = app
        .gql(
            CREATE_INVESTMENT,
            json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-05-01" } }),
        )
        .await;
    assert_eq!(codes(&late), ["FUND_CLOSED"]);
}

/// Waits until some session of this database is blocked on a lock.
async fn until_a_session_waits_for_a_lock(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = app
            .sql_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session ever waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unique_index_decides_when_the_pre_check_cannot_see_the_other_insert() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = Arc::new(TestApp::spawn().await);
    // Another writer has inserted the email but not committed: the pre-check cannot see it.
    let other = app.sql_conn.begin().await.unwrap();
    other
        .execute_unprepared(
            "INSERT INTO investors (id, name, investor_type, email) VALUES (gen_random_uuid(), 'Other', 'Individual', 'held@x.co')",
        )
        .await
        .unwrap();
    let racing = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.gql(CREATE_INVESTOR, json!({ "input": { "name": "Me", "investorType": "INDIVIDUAL", "email": "HELD@x.co" } }))
                .await
        })
    };
    until_a_session_waits_for_a_lock(&app).await;
    other.commit().await.unwrap();
    let body = racing.await.unwrap();
    assert_eq!(codes(&body), ["CONFLICT"], "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_investment_waits_for_an_in_flight_close_and_then_sees_it() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = Arc::new(TestApp::spawn().await);
    let fund = fund(&app, "Closing", "INVESTING").await;
    let investor = investor(&app, "I", "i@x.co").await;
    // A close in flight: it holds the fund row lock and has changed the status, uncommitted.
    let close = app.sql_conn.begin().await.unwrap();
    close
        .execute_unprepared(&format!(
            "SELECT 1 FROM funds WHERE id = '{fund}' FOR UPDATE"
        ))
        .await
        .unwrap();
    close
        .execute_unprepared(&format!(
            "UPDATE funds SET status = 'Closed' WHERE id = '{fund}'"
        ))
        .await
        .unwrap();
    let racing = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.gql(
                CREATE_INVESTMENT,
                json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-05-01" } }),
            )
            .await
        })
    };
    until_a_session_waits_for_a_lock(&app).await;
    close.commit().await.unwrap();
    let body = racing.await.unwrap();
    assert_eq!(codes(&body), ["FUND_CLOSED"], "{body:#}");
    let stored: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(stored, 0);
}
