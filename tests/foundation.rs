//! Foundation: migrations, the schema in the catalog, the HTTP surface, start-up and seeding.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use axum::{body::Body, http::Request};
use common::{TestApp, cluster, codes, fixtures::*};
use local_pg::{LocalPgOptions, LocalPostgres};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use titanbay::{
    db::Db,
    http,
    startup::{Application, build_state},
};
use tower::ServiceExt;

async fn rows(conn: &impl ConnectionTrait, sql: &str) -> Vec<Vec<String>> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (0..8)
                .map_while(|i| r.try_get_by_index::<Option<String>>(i).ok())
                .map(|v| v.unwrap_or_default())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let cluster = cluster();
    let name = cluster.create_empty_database().await;
    let conn = Database::connect(cluster.url(&name)).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let tables = "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('funds','investors','investments')";
    assert_eq!(rows(&conn, tables).await, vec![vec!["3".to_owned()]]);
    Migrator::down(&conn, None).await.unwrap();
    assert_eq!(rows(&conn, tables).await, vec![vec!["0".to_owned()]]);
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(rows(&conn, tables).await, vec![vec!["3".to_owned()]]);
    conn.close().await.unwrap();
    cluster.drop_database(name);
}

#[tokio::test]
async fn the_catalog_has_the_designed_types_indexes_and_constraints() {
    let app = TestApp::spawn().await;
    let conn = &app.sql_conn;

    let types = rows(
        conn,
        "SELECT table_name::text, column_name::text, data_type::text, \
                COALESCE(numeric_precision::text, ''), COALESCE(numeric_scale::text, '') \
         FROM information_schema.columns WHERE table_schema = 'public' \
           AND table_name IN ('funds','investors','investments') ORDER BY 1, 2",
    )
    .await;
    let find = |t: &str, c: &str| {
        types
            .iter()
            .find(|r| r[0] == t && r[1] == c)
            .unwrap_or_else(|| panic!("{t}.{c} missing"))
            .clone()
    };
    for t in ["funds", "investors", "investments"] {
        assert_eq!(find(t, "id")[2], "uuid");
        assert_eq!(find(t, "created_at")[2], "timestamp with time zone");
    }
    assert_eq!(find("funds", "updated_at")[2], "timestamp with time zone");
    assert_eq!(
        find("investors", "updated_at")[2],
        "timestamp with time zone"
    );
    assert_eq!(
        find("funds", "target_size_usd")[2..],
        ["numeric", "20", "2"]
    );
    assert_eq!(
        find("investments", "amount_usd")[2..],
        ["numeric", "20", "2"]
    );
    assert_eq!(find("investments", "fund_id")[2], "uuid");
    assert_eq!(find("investments", "investor_id")[2], "uuid");
    assert_eq!(find("investments", "investment_date")[2], "date");
    assert_eq!(find("funds", "status")[2], "character varying");
    assert_eq!(find("investors", "investor_type")[2], "character varying");

    let indexes = rows(
        conn,
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
           AND tablename IN ('funds','investors','investments') ORDER BY 1",
    )
    .await;
    let def = |name: &str| {
        indexes
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("index {name} missing"))[1]
            .clone()
    };
    for pk in ["pk_funds", "pk_investors"] {
        assert!(
            def(pk).contains("UNIQUE INDEX") && def(pk).contains("(id)"),
            "{pk}"
        );
    }
    if common::partitioned_layout() {
        // A partitioned table's unique keys contain its partition key; lookups by id use
        // their own index.
        assert!(def("pk_investments").contains("UNIQUE INDEX"));
        assert!(def("pk_investments").ends_with("(fund_id, id)"));
        assert!(def("ix_investments_id").ends_with("(id)"));
    } else {
        assert!(def("pk_investments").contains("UNIQUE INDEX"));
        assert!(def("pk_investments").ends_with("(id)"));
    }
    assert!(def("ix_funds_name").ends_with("(name)"));
    assert!(def("ix_funds_vintage_year").ends_with("(vintage_year)"));
    assert!(def("ix_funds_created_at").ends_with("(created_at)"));
    assert!(def("ix_investors_name").ends_with("(name)"));
    assert!(def("ix_investors_created_at").ends_with("(created_at)"));
    assert!(def("ix_investors_email").contains("CREATE UNIQUE INDEX"));
    assert!(def("ix_investors_email").contains("lower((email)::text)"));
    assert!(def("ix_investments_fund_id").ends_with("(fund_id)"));
    assert!(def("ix_investments_investor_id").ends_with("(investor_id)"));
    assert!(def("ix_investments_fund_date").ends_with("(fund_id, investment_date DESC, id DESC)"));
    // No second, plain unique index on email.
    assert!(
        !indexes
            .iter()
            .any(|r| r[1].contains("UNIQUE") && r[1].ends_with("(email)"))
    );

    let fks = rows(
        conn,
        "SELECT conname::text, confdeltype::text FROM pg_constraint \
         WHERE contype = 'f' AND conrelid = 'investments'::regclass ORDER BY 1",
    )
    .await;
    assert_eq!(
        fks,
        vec![
            vec!["fk_investments_fund_id".to_owned(), "r".to_owned()],
            vec!["fk_investments_investor_id".to_owned(), "r".to_owned()],
        ]
    );

    // The rules data must obey are enforced by the database itself.
    let fund = "INSERT INTO funds (id, name, vintage_year, target_size_usd, status) VALUES (gen_random_uuid(), ";
    for bad in [
        format!("{fund}'  ', 2020, 1, 'Fundraising')"),
        format!("{fund}'x', 1899, 1, 'Fundraising')"),
        format!("{fund}'x', 2020, 0, 'Fundraising')"),
        format!("{fund}'x', 2020, 1, 'Open')"),
        "INSERT INTO investors (id, name, investor_type, email) VALUES (gen_random_uuid(), 'x', 'Bank', 'a@b.co')".to_owned(),
    ] {
        assert!(conn.execute_unprepared(&bad).await.is_err(), "accepted: {bad}");
    }
    conn.execute_unprepared(
        "INSERT INTO investors (id, name, investor_type, email) VALUES (gen_random_uuid(), 'x', 'Individual', 'dup@x.co')",
    )
    .await
    .unwrap();
    let dup = conn
        .execute_unprepared(
            "INSERT INTO investors (id, name, investor_type, email) VALUES (gen_random_uuid(), 'y', 'Individual', 'DUP@X.CO')",
        )
        .await;
    assert!(dup.is_err(), "the unique index must be case-insensitive");
}

#[tokio::test]
async fn a_created_fund_round_trips_through_the_router_with_exact_money() {
    let app = TestApp::spawn().await;
    let created = app
        .gql_ok(
            CREATE_FUND,
            json!({ "input": { "name": "Round Trip", "vintageYear": 2024, "targetSizeUsd": "0.10" } }),
        )
        .await;
    assert_eq!(created["createFund"]["targetSizeUsd"], "0.10");
    assert_eq!(created["createFund"]["status"], "FUNDRAISING");
    let id = created["createFund"]["id"].as_str().unwrap();
    let read = app
        .gql_ok(
            "query($id: UUID!) { fund(id: $id) { id name vintageYear targetSizeUsd status createdAt updatedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read["fund"], created["createFund"]);
}

#[tokio::test]
async fn request_ids_are_echoed_when_safe_and_generated_otherwise() {
    let app = TestApp::spawn().await;
    let echoed = app
        .send(
            Request::get("/healthz")
                .header("x-request-id", "abc-123:x.y_z")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "abc-123:x.y_z");
    for bad in ["has space", &"x".repeat(129), "semi;colon"] {
        let generated = app
            .send(
                Request::get("/healthz")
                    .header("x-request-id", bad)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let id = generated.headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    let missing = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert!(uuid::Uuid::parse_str(missing.headers["x-request-id"].to_str().unwrap()).is_ok());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_before_execution() {
    let app = TestApp::spawn_with(|c| c.limits.max_body_bytes = 1024).await;
    let padding = " ".repeat(2000);
    let body = format!("{{\"query\": \"{{ __typename }}\"{padding}}}");
    let before = app.statements();
    let response = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("accept", "application/graphql-response+json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.codes(), ["PAYLOAD_TOO_LARGE"]);
    assert_eq!(app.statements(), before);
    // Just under the limit runs.
    let small = format!("{{\"query\": \"{{ __typename }}\"{}}}", " ".repeat(900));
    let response = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(small))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn health_is_always_ok_and_readiness_follows_the_database() {
    // A cluster of its own: this test stops PostgreSQL.
    let base_dir = std::env::temp_dir().join(format!("titanbay-test-{}-ready", std::process::id()));
    let mut pg = tokio::task::spawn_blocking(move || {
        LocalPostgres::start(&LocalPgOptions {
            base_dir,
            bin_dir: None,
            ephemeral: true,
            remove_on_exit: true,
            settings: Vec::new(),
        })
    })
    .await
    .unwrap()
    .unwrap();
    let url = pg.url("postgres");
    let mut config = common::test_config(&url);
    config.database.connect_timeout = Duration::from_secs(1);
    config.database.acquire_timeout = Duration::from_secs(2);
    let db = Db::connect(&config.database, &url).await.unwrap();
    let router = http::router(build_state(db, config).await.expect("state"));
    let get = |path: &'static str| {
        let router = router.clone();
        async move {
            router
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("/readyz").await, 200);
    assert_eq!(get("/healthz").await, 200);
    tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(10)).map(|_| pg))
        .await
        .unwrap()
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(get("/readyz").await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "readiness must answer fast"
    );
    assert_eq!(get("/healthz").await, 200);
}

#[tokio::test]
async fn unknown_paths_are_404_with_json() {
    let app = TestApp::spawn().await;
    let response = app
        .send(Request::get("/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, 404);
    assert!(response.body["error"].is_string());
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_on_get() {
    let app = TestApp::spawn().await;
    let response = app
        .send(
            Request::get("/graphql")
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, 200);
    let html = String::from_utf8_lossy(&response.raw);
    assert!(html.contains("graphiql"), "{html}");
}

#[tokio::test]
async fn the_committed_schema_file_matches_the_schema() {
    let sdl = titanbay::graphql::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is out of date; regenerate it with `cargo run -- schema > schema.graphql` \
         (or UPDATE_SCHEMA=1 cargo test --test foundation) and review the diff"
    );
}

#[tokio::test]
async fn seeding_twice_leaves_one_copy_of_the_demo_data() {
    let app = TestApp::spawn().await;
    let first = titanbay::seed::seed(&app.sql_conn).await.unwrap();
    assert_eq!((first.funds, first.investors, first.investments), (4, 4, 5));
    let second = titanbay::seed::seed(&app.sql_conn).await.unwrap();
    assert_eq!(
        (second.funds, second.investors, second.investments),
        (0, 0, 0)
    );
    let data = app
        .gql_ok(
            "{ funds(first: 10) { totalCount nodes { name status totalCommittedUsd investorCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["funds"]["totalCount"], 4);
    let growth = &data["funds"]["nodes"][0];
    assert_eq!(growth["name"], "Titanbay Growth Fund I");
    assert_eq!(growth["totalCommittedUsd"], "135000000.50");
    assert_eq!(growth["investorCount"], 2);
    assert_eq!(data["funds"]["nodes"][3]["status"], "CLOSED");
}

/// A minimal HTTP/1.1 client over a real socket.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_application_migrates_an_empty_database_serves_on_a_real_port_and_stops_gracefully() {
    let cluster = cluster();
    let name = cluster.create_empty_database().await;
    let mut config = common::test_config(&cluster.url(&name));
    config.database.run_migrations = true;
    let app = Application::build(config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let response = http_get(addr, "/graphql?query=%7Bfunds%7BtotalCount%7D%7D").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("{\"data\":{\"funds\":{\"totalCount\":0}}}"),
        "{response}"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    cluster.drop_database(name);
}

#[tokio::test]
async fn start_up_gives_up_on_an_unreachable_database_naming_its_host_only() {
    let mut config = common::test_config("postgres://someone:s3cret@127.0.0.1:9/nowhere");
    config.database.startup_retry = Duration::from_millis(1200);
    config.database.connect_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = Application::build(config).await.err().expect("must fail");
    let text = format!("{err:#}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_compose_file_declares_a_health_checked_database_and_the_server() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let services = &doc["services"];
    assert!(
        services["postgres"]["healthcheck"]["test"].is_array()
            || services["postgres"]["healthcheck"]["test"].is_string()
    );
    assert_eq!(
        services["api"]["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    assert!(services["api"]["environment"]["DATABASE_URL"].is_string());
    assert!(codes(&json!({})).is_empty());
}

/// Money columns are decoded from PostgreSQL's binary NUMERIC directly: the result (value and
/// scale) equals the generic decoder's for every value it handles, and it handles every
/// NUMERIC(20,2) value; anything else is left to the generic decoder.
#[tokio::test]
async fn numeric_decoding_matches_the_generic_decoder() {
    use sea_orm::sqlx::{self, Row, ValueRef};
    let app = TestApp::spawn().await;
    let pool = app.sql_conn.get_postgres_connection_pool();
    let rows = sqlx::query(
        "SELECT v::numeric(20,2) AS money, true AS fixed FROM (VALUES (0), (0.01), (-0.01), (1), \
         (10000), (10000.5), (99999999999999999.99), (-99999999999999999.99), (1234.5), \
         (0.1), (100000000)) t(v) \
         UNION ALL SELECT ((g * 7919.13) % 1e15 - 5e14)::numeric(20,2), true \
           FROM generate_series(1, 3000) g \
         UNION ALL SELECT (g * 1.5 ^ (g % 40))::numeric(20,2), true FROM generate_series(1, 300) g \
         UNION ALL SELECT v, false FROM (VALUES (1.5e-20::numeric), (123456789012345678901234567890::numeric), \
           (1e30::numeric), ('NaN'::numeric), (0.000::numeric), (42::numeric), (-7.250::numeric)) t(v)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(rows.len() > 3300);
    for row in &rows {
        let raw = row.try_get_raw(0).unwrap();
        assert!(!raw.is_null());
        let bytes = raw.as_bytes().unwrap().to_vec();
        let fixed: bool = row.get(1);
        let fast = titanbay::db::numeric::decode_binary(&bytes);
        match row.try_get::<rust_decimal::Decimal, _>(0) {
            Ok(generic) => {
                if let Some(fast) = fast {
                    assert_eq!(fast, generic, "value of {bytes:?}");
                    assert_eq!(fast.to_string(), generic.to_string(), "scale of {bytes:?}");
                } else {
                    assert!(
                        !fixed,
                        "NUMERIC(20,2) value {generic} left to the generic decoder"
                    );
                }
            }
            Err(_) => assert!(
                fast.is_none(),
                "decoded what the generic decoder refuses: {bytes:?}"
            ),
        }
    }
}
