//! `titanbay partition-investments`: converting a populated database to hash partitions by
//! `fund_id` keeps every row, every answer and every rule; running it again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{TestApp, codes, fixtures::*};
use serde_json::json;
use titanbay::service::partition::{Converted, partition_investments};

const BOOK: &str = "{ funds(first: 10) { totalCount edges { node { name totalCommittedUsd investorCount \
    investments(first: 20) { totalCount edges { node { id amountUsd investmentDate investor { email } } } } } } } }";

#[tokio::test]
async fn converting_a_populated_database_keeps_every_row_and_answer() {
    let app = TestApp::spawn().await;
    let mut funds = Vec::new();
    for f in 0..5 {
        funds.push(fund(&app, &format!("Fund {f}"), "FUNDRAISING").await);
    }
    let mut investors = Vec::new();
    for i in 0..8 {
        investors.push(investor(&app, &format!("I{i}"), &format!("i{i}@part.example")).await);
    }
    let mut ids = Vec::new();
    for n in 0..60 {
        let amount = format!("{}.{:02}", 1000 + n, n % 100);
        ids.push(
            investment(
                &app,
                &funds[n % 5],
                &investors[n % 8],
                &amount,
                "2024-03-01",
            )
            .await,
        );
    }
    let before = app.gql_ok(BOOK, json!({})).await;
    let converted = partition_investments(app.db(), 8).await.unwrap();
    if common::partitioned_layout() {
        assert_eq!(converted, Converted::Already);
    } else {
        assert_eq!(
            converted,
            Converted::Now {
                rows: 60,
                partitions: 8
            }
        );
        let kind: String = app
            .sql_scalar("SELECT relkind::text FROM pg_class WHERE relname = 'investments'")
            .await;
        assert_eq!(kind, "p");
        let parts: i64 = app
            .sql_scalar(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'investments'::regclass",
            )
            .await;
        assert_eq!(parts, 8);
    }
    assert_eq!(
        app.gql_ok(BOOK, json!({})).await,
        before,
        "the same answers"
    );
    // Again: nothing to do.
    assert_eq!(
        partition_investments(app.db(), 8).await.unwrap(),
        Converted::Already
    );
    // Lookups by id (every partition probed), writes, and the rules keyed on constraint names.
    let one = app
        .gql_ok(
            "query($id: UUID!) { investment(id: $id) { id amountUsd } }",
            json!({ "id": ids[7] }),
        )
        .await;
    assert_eq!(one["investment"]["id"], ids[7].as_str());
    investment(&app, &funds[0], &investors[0], "5.00", "2024-04-01").await;
    let unknown = app
        .gql(
            CREATE_INVESTMENT,
            json!({ "input": { "fundId": funds[0], "investorId": uuid::Uuid::now_v7(), "amountUsd": "1.00", "investmentDate": "2024-05-01" } }),
        )
        .await;
    assert_eq!(codes(&unknown), ["NOT_FOUND"]);
    let differences = titanbay::service::totals::check(app.db()).await.unwrap();
    assert!(differences.is_empty(), "{differences:?}");
    let rows: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert_eq!(rows, 61);
}

#[tokio::test]
async fn the_number_of_partitions_is_bounded() {
    let app = TestApp::spawn().await;
    for bad in [0, 1025] {
        let err = partition_investments(app.db(), bad).await.unwrap_err();
        assert_eq!(err.code(), titanbay::error::ErrorCode::BadUserInput);
    }
}
