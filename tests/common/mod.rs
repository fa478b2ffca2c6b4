//! Test harness: one throwaway PostgreSQL cluster per test binary, one database per test.
//!
//! The cluster is `TEST_DATABASE_URL` when set, otherwise a server-owned PostgreSQL started from
//! the installed binaries (as the `postgres` account when we are root). A migrated template is
//! built once; each test gets `CREATE DATABASE … TEMPLATE` (a few ms) and drops it at the end.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod pgbouncer;

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Request, StatusCode},
};
use local_pg::{LocalPgOptions, LocalPostgres};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use titanbay::{
    config::Config,
    db::{Db, quote_ident},
    http::{self, AppState},
    startup::build_state,
};
use tower::ServiceExt;

/// Whether this run's databases have `investments` hash-partitioned by `fund_id`
/// (`TITANBAY_TEST_LAYOUT=partitioned`; CI runs the whole suite once that way).
pub fn partitioned_layout() -> bool {
    std::env::var("TITANBAY_TEST_LAYOUT").is_ok_and(|v| v == "partitioned")
}

/// The per-binary cluster and its migrated template.
pub struct Cluster {
    /// Superuser URL of the `postgres` database.
    admin_url: String,
    /// Name of the migrated template database.
    template: String,
    /// The server-owned PostgreSQL, when `TEST_DATABASE_URL` is not set. Never dropped: when
    /// the test process exits, its wrapper stops PostgreSQL and deletes the folder.
    _local: Option<LocalPostgres>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs `f` on a fresh single-threaded runtime on its own thread (setup and teardown must not
/// depend on any test's runtime).
fn block_on_thread<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("setup thread panicked")
}

async fn admin_connection(url: &str) -> DatabaseConnection {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(1)
        .min_connections(0)
        .sqlx_logging(false);
    Database::connect(opt)
        .await
        .expect("connect to the test cluster")
}

/// The `application_name` of the tests' own connections (to tell them from the server's).
pub const TEST_APPLICATION_NAME: &str = "titanbay-test";

/// A small pool of the tests' own (a test may hold a transaction on one connection while it
/// queries on another).
async fn test_connection(url: &str) -> DatabaseConnection {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(4)
        .min_connections(0)
        .sqlx_logging(false)
        .set_application_name(TEST_APPLICATION_NAME);
    Database::connect(opt)
        .await
        .expect("connect to the test database")
}

fn start_cluster() -> Result<Cluster, String> {
    let (admin_url, local) = match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => (url, None),
        None => {
            let tmp = std::env::temp_dir();
            local_pg::sweep_stale_clusters(&tmp, "titanbay-test-");
            let base_dir = tmp.join(format!(
                "titanbay-test-{}-{}",
                std::process::id(),
                NEXT_DB.fetch_add(1, Ordering::Relaxed)
            ));
            let pg = LocalPostgres::start(&LocalPgOptions {
                base_dir,
                bin_dir: std::env::var_os("PG_BIN_DIR").map(Into::into),
                ephemeral: true,
                remove_on_exit: true,
                settings: Vec::new(),
            })
            .map_err(|e| {
                format!(
                    "cannot start a test PostgreSQL: {e}\nInstall PostgreSQL's server package \
                     (e.g. `apt install postgresql`) or set TEST_DATABASE_URL to a server \
                     where the user may create databases."
                )
            })?;
            (pg.url("postgres"), Some(pg))
        }
    };
    let template = format!("titanbay_tpl_{}", std::process::id());
    let url = admin_url.clone();
    let tpl = template.clone();
    block_on_thread(async move {
        let admin = admin_connection(&url).await;
        let _ = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&tpl)
            ))
            .await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(&tpl)))
            .await
            .map_err(|e| format!("create template: {e}"))?;
        let conn = admin_connection(&with_database(&url, &tpl)).await;
        Migrator::up(&conn, None)
            .await
            .map_err(|e| format!("migrate template: {e}"))?;
        conn.close().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })?;
    if partitioned_layout() {
        let template_url = with_database(&admin_url, &template);
        block_on_thread(async move {
            let db = Db::connect(&test_config(&template_url).database, &template_url)
                .await
                .map_err(|e| format!("connect to the template: {e}"))?;
            let converted = titanbay::service::partition::partition_investments(
                &db,
                titanbay::service::partition::DEFAULT_PARTITIONS,
            )
            .await
            .map_err(|e| format!("partition the template: {e}"));
            db.close();
            converted.map(|_| ())
        })?;
    }
    let url = admin_url.clone();
    let tpl = template.clone();
    block_on_thread(async move {
        let admin = admin_connection(&url).await;
        // Nothing may stay connected to a template, or every CREATE DATABASE stalls.
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
                quote_ident(&tpl)
            ))
            .await
            .map_err(|e| format!("seal template: {e}"))?;
        admin.close().await.map_err(|e| e.to_string())
    })?;
    Ok(Cluster {
        admin_url,
        template,
        _local: local,
    })
}

/// The cluster of this test binary (started on first use).
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

impl Cluster {
    /// Superuser URL of `database`.
    pub fn url(&self, database: &str) -> String {
        with_database(&self.admin_url, database)
    }

    /// Creates a migrated database from the template.
    pub async fn create_database(&self) -> String {
        let name = format!(
            "titanbay_t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_connection(&self.admin_url).await;
        admin
            .execute_unprepared(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(&self.template)
            ))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        name
    }

    /// Creates an empty database (no migrations).
    pub async fn create_empty_database(&self) -> String {
        let name = format!(
            "titanbay_e_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_connection(&self.admin_url).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .expect("create empty database");
        let _ = admin.close().await;
        name
    }

    /// Drops a database, disconnecting whoever is still on it.
    pub fn drop_database(&'static self, name: String) {
        let url = self.admin_url.clone();
        block_on_thread(async move {
            let admin = admin_connection(&url).await;
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                ))
                .await;
            let _ = admin.close().await;
        });
    }
}

/// Lowercase hex SHA-256 of `text` (APQ hashes).
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A connection of the tests' own to `url`.
pub async fn connect(url: &str) -> DatabaseConnection {
    test_connection(url).await
}

/// One scalar of a query on `conn`.
pub async fn scalar<T: sea_orm::TryGetable>(conn: &DatabaseConnection, sql: &str) -> T {
    conn.query_one_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        sql.to_owned(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .unwrap_or_else(|| panic!("{sql}: no row"))
    .try_get_by_index(0)
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Logs at `warn` (or `RUST_LOG`) through the test writer, so passing tests stay quiet.
pub fn init_test_logging() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Test configuration: defaults, small pool, no migrations at start (the template has them).
pub fn test_config(url: &str) -> Config {
    let mut config = Config::defaults();
    config.database.url = Some(url.to_owned());
    config.database.min_connections = 0;
    config.database.max_connections = 5;
    config.database.acquire_timeout = Duration::from_secs(10);
    config.database.run_migrations = false;
    config.port = 0;
    config
}

/// The configuration of an application on `database` (direct URL `url`): [`test_config`],
/// and in the runs with `TITANBAY_TEST_POOLER=pgbouncer` the URL through PgBouncer with
/// `DB_POOLER=transaction` (the direct URL stays `DATABASE_LISTEN_URL`).
pub fn app_config(url: &str, database: &str) -> Config {
    let mut config = test_config(url);
    if pgbouncer::requested() {
        let admin: sea_orm::sqlx::postgres::PgConnectOptions =
            cluster().admin_url.parse().expect("admin URL");
        let bouncer = pgbouncer::bouncer(&cluster().admin_url);
        config.database.url = Some(bouncer.url(admin.get_username(), database));
        config.database.pooler = titanbay::config::PoolerMode::Transaction;
        config.database.listen_url = Some(url.to_owned());
    }
    config
}

/// An application on its own database, driven through the router.
pub struct TestApp {
    pub database: String,
    pub url: String,
    pub state: AppState,
    pub router: Router,
    /// The application's database handle (statement counters, the pool).
    pub db: Db,
    /// A separate connection for the tests' own SQL.
    pub sql_conn: DatabaseConnection,
}

/// A response: status, headers and parsed JSON body (Null when not JSON).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
}

impl TestResponse {
    /// `errors[i].extensions.code` of every error.
    pub fn codes(&self) -> Vec<String> {
        codes(&self.body)
    }
}

/// `errors[i].extensions.code` of every error of a GraphQL response body.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `errors[0].extensions.field`.
pub fn field(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .map(str::to_owned)
}

impl TestApp {
    /// A fresh migrated database and an app on it, with default settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// As [`TestApp::spawn`], with settings changed by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        init_test_logging();
        let cluster = cluster();
        let database = cluster.create_database().await;
        let url = cluster.url(&database);
        let mut config = app_config(&url, &database);
        adjust(&mut config);
        let app_url = config.database.url.clone().unwrap_or_else(|| url.clone());
        let db = Db::connect(&config.database, &app_url)
            .await
            .expect("connect to the test database");
        let state = build_state(db.clone(), config).await.expect("state");
        let router = http::router(state.clone());
        let sql_conn = test_connection(&url).await;
        TestApp {
            database,
            url,
            state,
            router,
            db,
            sql_conn,
        }
    }

    /// Another app on this same database, with settings changed by `adjust`.
    pub async fn sibling(&self, adjust: impl FnOnce(&mut Config)) -> Router {
        let mut config = app_config(&self.url, &self.database);
        adjust(&mut config);
        let app_url = config
            .database
            .url
            .clone()
            .unwrap_or_else(|| self.url.clone());
        let db = Db::connect(&config.database, &app_url)
            .await
            .expect("connect to the test database");
        http::router(build_state(db, config).await.expect("state"))
    }

    /// The database handle (statement counters, the pool).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Statements executed so far on this app's pool.
    pub fn statements(&self) -> u64 {
        self.db.stats().statements()
    }

    /// Sends any HTTP request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read body");
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            raw,
        }
    }

    /// POSTs a GraphQL request (JSON) and returns the whole response.
    pub async fn post(&self, query: &str, variables: Value) -> TestResponse {
        let body = json!({ "query": query, "variables": variables });
        self.send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
    }

    /// POSTs a GraphQL request and returns the response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.post(query, variables).await.body
    }

    /// POSTs a GraphQL request that must succeed, and returns `data`.
    pub async fn gql_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Runs raw SQL on this app's database (on the tests' own connection).
    pub async fn sql(&self, sql: &str) {
        self.sql_conn
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The text of the first column of `sql`'s first row, run through the application's own
    /// pool (its session settings apply).
    pub async fn pool_text(&self, sql: &str) -> String {
        let rows = self
            .db
            .fetch_all(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let row = rows.first().unwrap_or_else(|| panic!("{sql}: no row"));
        titanbay::db::rows::Columns::of(row, 0)
            .get::<String>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One scalar of a query on this app's database.
    pub async fn sql_scalar<T: sea_orm::TryGetable>(&self, sql: &str) -> T {
        let row = self
            .sql_conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: no row"));
        row.try_get_by_index(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        cluster().drop_database(std::mem::take(&mut self.database));
    }
}

/// GraphQL documents and helpers shared by the tests.
pub mod fixtures {
    use super::*;

    pub const CREATE_FUND: &str = "mutation($input: CreateFundInput!) { createFund(input: $input) { id name vintageYear targetSizeUsd status createdAt updatedAt } }";
    pub const UPDATE_FUND: &str = "mutation($input: UpdateFundInput!) { updateFund(input: $input) { id name vintageYear targetSizeUsd status createdAt updatedAt } }";
    pub const CREATE_INVESTOR: &str = "mutation($input: CreateInvestorInput!) { createInvestor(input: $input) { id name investorType email createdAt updatedAt } }";
    pub const CREATE_INVESTMENT: &str = "mutation($input: CreateInvestmentInput!) { createInvestment(input: $input) { id fundId investorId amountUsd investmentDate createdAt } }";

    /// Creates a fund and returns its id.
    pub async fn fund(app: &TestApp, name: &str, status: &str) -> String {
        let data = app
            .gql_ok(
                CREATE_FUND,
                json!({ "input": { "name": name, "vintageYear": 2024, "targetSizeUsd": "1000000.00", "status": status } }),
            )
            .await;
        data["createFund"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates an investor and returns its id.
    pub async fn investor(app: &TestApp, name: &str, email: &str) -> String {
        let data = app
            .gql_ok(
                CREATE_INVESTOR,
                json!({ "input": { "name": name, "investorType": "INSTITUTION", "email": email } }),
            )
            .await;
        data["createInvestor"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates an investment and returns its id.
    pub async fn investment(
        app: &TestApp,
        fund: &str,
        investor: &str,
        amount: &str,
        date: &str,
    ) -> String {
        let data = app
            .gql_ok(
                CREATE_INVESTMENT,
                json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": amount, "investmentDate": date } }),
            )
            .await;
        data["createInvestment"]["id"].as_str().unwrap().to_owned()
    }
}
