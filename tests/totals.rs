//! Totals kept with the data: every write moves them in its own statement, concurrent writes
//! (and a fund closing among them) leave them equal to a recount, every aggregate is one
//! primary-key lookup whatever a parent's size, and `titanbay check-totals` finds what a bulk
//! load outside the API left behind (`--repair` rewrites it).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{process::Command, sync::Arc};

use common::{TestApp, codes, fixtures::*};
use futures_util::future::join_all;
use serde_json::{Value, json};
use titanbay::service::totals;

const BIN: &str = env!("CARGO_BIN_EXE_titanbay");

/// What the API answers for every fund and investor: `(id, totalCount, totalCommittedUsd,
/// investorCount)` (investors: investorCount is absent, reported as -1).
async fn api_totals(app: &TestApp) -> Vec<(String, i64, String, i64)> {
    let data = app
        .gql_ok(
            "{ funds(first: 100) { nodes { id totalCommittedUsd investorCount investments(first: 1) { totalCount } } }
               investors(first: 100) { nodes { id totalCommittedUsd investments(first: 1) { totalCount } } } }",
            json!({}),
        )
        .await;
    let mut out = Vec::new();
    for fund in data["funds"]["nodes"].as_array().unwrap() {
        out.push((
            fund["id"].as_str().unwrap().to_owned(),
            fund["investments"]["totalCount"].as_i64().unwrap(),
            fund["totalCommittedUsd"].as_str().unwrap().to_owned(),
            fund["investorCount"].as_i64().unwrap(),
        ));
    }
    for investor in data["investors"]["nodes"].as_array().unwrap() {
        out.push((
            investor["id"].as_str().unwrap().to_owned(),
            investor["investments"]["totalCount"].as_i64().unwrap(),
            investor["totalCommittedUsd"].as_str().unwrap().to_owned(),
            -1,
        ));
    }
    out.sort();
    out
}

/// The same figures recounted from the rows with SQL.
async fn counted_totals(app: &TestApp) -> Vec<(String, i64, String, i64)> {
    let text = app
        .pool_text(
            "SELECT COALESCE(json_agg(t ORDER BY t.id), '[]')::text FROM ( \
               SELECT f.id::text AS id, count(i.id) AS n, \
                      round(COALESCE(sum(i.amount_usd), 0), 2)::text AS total, \
                      count(DISTINCT i.investor_id) AS investors \
               FROM funds f LEFT JOIN investments i ON i.fund_id = f.id GROUP BY f.id \
               UNION ALL \
               SELECT v.id::text, count(i.id), round(COALESCE(sum(i.amount_usd), 0), 2)::text, -1 \
               FROM investors v LEFT JOIN investments i ON i.investor_id = v.id GROUP BY v.id) t",
        )
        .await;
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut out: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
                r["total"].as_str().unwrap().to_owned(),
                r["investors"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_leave_the_totals_equal_to_a_recount() {
    let app = Arc::new(TestApp::spawn().await);
    let mut funds = Vec::new();
    for n in 0..3 {
        funds.push(fund(&app, &format!("Fund {n}"), "FUNDRAISING").await);
    }
    let mut investors = Vec::new();
    for n in 0..5 {
        investors
            .push(investor(&app, &format!("Investor {n}"), &format!("i{n}@example.com")).await);
    }
    // 16 writers × 20 investments over every (fund, investor) pair, with cents; the last fund
    // closes among them, so some are refused and must leave no trace in the totals.
    let funds = Arc::new(funds);
    let investors = Arc::new(investors);
    let mut tasks = Vec::new();
    for writer in 0..16usize {
        let (app, funds, investors) =
            (Arc::clone(&app), Arc::clone(&funds), Arc::clone(&investors));
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for n in 0..20usize {
                let fund = &funds[(writer + n) % funds.len()];
                let investor = &investors[(writer * 7 + n) % investors.len()];
                let amount = format!("{}.{:02}", 1000 + writer * 20 + n, (writer + n) % 100);
                let body = app
                    .gql(
                        CREATE_INVESTMENT,
                        json!({ "input": { "fundId": fund, "investorId": investor,
                                           "amountUsd": amount, "investmentDate": "2024-05-01" } }),
                    )
                    .await;
                match codes(&body).as_slice() {
                    [] => {}
                    [code] if code == "FUND_CLOSED" => refused += 1,
                    other => panic!("{other:?}: {body:#}"),
                }
            }
            refused
        }));
    }
    let closer = {
        let (app, funds) = (Arc::clone(&app), Arc::clone(&funds));
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            app.gql_ok(
                UPDATE_FUND,
                json!({ "input": { "id": funds[2], "status": "CLOSED" } }),
            )
            .await;
        })
    };
    let refused: i32 = join_all(tasks).await.into_iter().map(Result::unwrap).sum();
    closer.await.unwrap();
    let stored: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(stored + i64::from(refused), 16 * 20);

    assert_eq!(totals::check(&app.db).await.unwrap(), Vec::new());
    assert_eq!(api_totals(&app).await, counted_totals(&app).await);
    // Every (fund, investor) pair that has investments has its row.
    let pairs: i64 = app.sql_scalar("SELECT count(*) FROM fund_investors").await;
    let distinct: i64 = app
        .sql_scalar(
            "SELECT count(*) FROM (SELECT DISTINCT fund_id, investor_id FROM investments) p",
        )
        .await;
    assert_eq!(pairs, distinct);
}

#[tokio::test]
async fn every_aggregate_of_a_page_of_funds_is_one_lookup_statement() {
    let app = TestApp::spawn().await;
    let fund_id = fund(&app, "Big", "FUNDRAISING").await;
    let investor_id = investor(&app, "Holder", "holder@example.com").await;
    investment(&app, &fund_id, &investor_id, "10.00", "2024-01-01").await;
    let before = app.statements();
    let data = app
        .gql_ok(
            "{ funds(first: 10) { nodes { totalCommittedUsd investorCount investments(first: 1) { totalCount } } } }",
            json!({}),
        )
        .await;
    // The list, and one statement for the three aggregates of every fund (the page itself is
    // not selected beyond totalCount).
    assert_eq!(app.statements() - before, 2, "{data:#}");
    assert_eq!(data["funds"]["nodes"][0]["totalCommittedUsd"], "10.00");

    // The lookup reads the totals' primary key, never the investments.
    let plan = app
        .pool_text(&format!(
            "EXPLAIN (FORMAT JSON) SELECT fund_id, investments, round(committed_usd, 2)::text, investors \
             FROM fund_totals WHERE fund_id = ANY(ARRAY['{fund_id}'::uuid])"
        ))
        .await;
    assert!(!plan.contains("\"investments\""), "{plan}");
    assert!(plan.contains("fund_totals"), "{plan}");
}

#[tokio::test]
async fn check_totals_lists_a_bulk_load_and_repair_rewrites_the_totals() {
    let app = TestApp::spawn().await;
    let fund_id = fund(&app, "Loaded", "FUNDRAISING").await;
    let investor_id = investor(&app, "Loader", "loader@example.com").await;
    investment(&app, &fund_id, &investor_id, "5.00", "2024-01-01").await;
    let check = |args: &[&str]| {
        Command::new(BIN)
            .arg("check-totals")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &app.url)
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap()
    };
    let clean = check(&[]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(clean.stdout.is_empty(), "{clean:?}");

    // A bulk load straight into the table, as an import outside the API would do.
    app.sql(&format!(
        "INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date) \
         SELECT gen_random_uuid(), '{fund_id}', '{investor_id}', 2.50, DATE '2024-02-01' \
         FROM generate_series(1, 4)"
    ))
    .await;
    let dirty = check(&[]);
    assert_eq!(dirty.status.code(), Some(1), "{dirty:?}");
    let listed = String::from_utf8_lossy(&dirty.stdout);
    assert!(
        listed.contains(&format!("fund {fund_id} investments: kept 1, rows say 5")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "fund {fund_id} committed_usd: kept 5.00, rows say 15.00"
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "investor {investor_id} investments: kept 1, rows say 5"
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "fund_investor {fund_id} {investor_id} investments: kept 1, rows say 5"
        )),
        "{listed}"
    );

    let repaired = check(&["--repair"]);
    assert!(repaired.status.success(), "{repaired:?}");
    let after = check(&[]);
    assert!(after.status.success(), "{after:?}");
    assert!(after.stdout.is_empty(), "{after:?}");
    assert_eq!(api_totals(&app).await, counted_totals(&app).await);
    let data = app
        .gql_ok(
            &format!(r#"{{ fund(id: "{fund_id}") {{ totalCommittedUsd investorCount }} }}"#),
            json!({}),
        )
        .await;
    assert_eq!(data["fund"]["totalCommittedUsd"], "15.00");
    assert_eq!(data["fund"]["investorCount"], 1);
}
