//! The connection pool: options from the configuration, connecting with back-off at start,
//! creating the application database on a fresh server, and counting statements.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement,
    sqlx::{self, Connection, PgConnection, postgres::PgConnectOptions},
};

use crate::config::DatabaseConfig;

/// Statement counters fed by SeaORM's metric callback (every statement, pooled or in a
/// transaction). Tests read them to prove how many statements a request costs.
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
    failed: AtomicU64,
}

impl DbStats {
    /// Statements executed so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Statements that returned an error so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The application's handle on PostgreSQL.
#[derive(Debug, Clone)]
pub struct Db {
    /// The SeaORM pool.
    pub conn: DatabaseConnection,
    stats: Arc<DbStats>,
}

impl Db {
    /// Wraps a pool, hooking the statement counters into it.
    pub fn new(mut conn: DatabaseConnection) -> Db {
        let stats = Arc::new(DbStats::default());
        let counter = Arc::clone(&stats);
        conn.set_metric_callback(move |info| {
            counter.statements.fetch_add(1, Ordering::Relaxed);
            if info.failed {
                counter.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        Db { conn, stats }
    }

    /// The statement counters.
    pub fn stats(&self) -> &DbStats {
        &self.stats
    }
}

/// Pool options from the configuration (the design guide's values by default).
pub fn connect_options(cfg: &DatabaseConfig, url: &str) -> ConnectOptions {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(cfg.max_connections.max(1))
        .min_connections(cfg.min_connections.min(cfg.max_connections))
        .acquire_timeout(cfg.acquire_timeout)
        .connect_timeout(cfg.connect_timeout)
        .max_lifetime(cfg.max_lifetime)
        .idle_timeout(Duration::from_secs(600))
        .set_application_name("titanbay")
        .sqlx_logging(false);
    if cfg.ping_idle_after.is_zero() {
        opt.test_before_acquire(true);
    } else {
        // A connection used within the last second is known to be alive; pinging it on every
        // checkout would double the round trips of a point lookup.
        opt.test_before_acquire_if_idle_for(cfg.ping_idle_after);
    }
    if !cfg.statement_timeout.is_zero() {
        opt.statement_timeout(cfg.statement_timeout);
    }
    opt
}

/// `host/database` of a URL, for logs: never the password.
pub fn describe_url(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(o) => format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "(unparsable DATABASE_URL)".to_owned(),
    }
}

/// Opens one connection, bounded by the connect timeout (the pool's own first connect would
/// instead wait for its acquire timeout).
async fn probe(cfg: &DatabaseConfig, url: &str) -> Result<(), String> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
    match tokio::time::timeout(cfg.connect_timeout, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", cfg.connect_timeout)),
    }
}

/// Connects, retrying with exponential back-off (0.5 s doubling to 8 s) for up to
/// `cfg.startup_retry`, logging each failed attempt; then opens the pool.
pub async fn connect_with_retry(
    cfg: &DatabaseConfig,
    url: &str,
) -> Result<DatabaseConnection, DbErr> {
    let target = describe_url(url);
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1u32;
    loop {
        match probe(cfg, url).await {
            Ok(()) => break,
            Err(err) => {
                if started.elapsed() + delay > cfg.startup_retry {
                    tracing::error!(%target, attempt, error = %err, "giving up connecting to PostgreSQL");
                    return Err(DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
                        "PostgreSQL at {target} is unreachable after {attempt} attempts: {err}"
                    ))));
                }
                tracing::warn!(%target, attempt, retry_in = ?delay, error = %err, "PostgreSQL is not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
                attempt += 1;
            }
        }
    }
    Database::connect(connect_options(cfg, url)).await
}

/// Creates database `name` through `admin_url` unless it exists.
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), DbErr> {
    let mut opt = ConnectOptions::new(admin_url.to_owned());
    opt.max_connections(1).sqlx_logging(false);
    let admin = Database::connect(opt).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await?;
    }
    admin.close().await
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
