//! The connection pool: options from the configuration, connecting with back-off at start,
//! creating the application database on a fresh server, counting statements, and failing fast
//! while the database is unreachable.

mod health;
pub mod numeric;
mod shared;
pub mod temporal;

pub use health::DbHealth;
use shared::{Role, Sharing};
pub use shared::{Rows, fresh_since};

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use std::future::Future;

use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseConnectionType, DatabaseTransaction, DbErr, RuntimeErr, Statement, TransactionTrait,
    sqlx::{
        self, Connection, PgConnection, PgPool,
        postgres::{PgConnectOptions, PgRow},
    },
};
use tokio::time::Instant;

use crate::{
    config::DatabaseConfig,
    error::{AppError, ErrorCode},
    slots::ExecutionSlots,
};

/// Statement counters fed by SeaORM's metric callback (every statement, pooled or in a
/// transaction). Tests read them to prove how many statements a request costs.
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
    failed: AtomicU64,
}

impl DbStats {
    /// Counts one statement (and logs it at debug level, with its timing, under the
    /// `titanbay::sql` target: `LOG_LEVEL=titanbay::sql=debug` shows every statement).
    fn record(&self, sql: &str, elapsed: Duration, failed: bool) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            target: "titanbay::sql",
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            failed,
            sql,
            "statement"
        );
    }

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
    /// The same pool as sqlx's, for [`Db::fetch_all`] (always there for PostgreSQL).
    pool: Option<PgPool>,
    stats: Arc<DbStats>,
    health: Arc<DbHealth>,
    /// Turns for read statements ([`Db::limit_reads`]; unlimited by default).
    reads: Arc<ExecutionSlots>,
    /// Identical reads waiting at once share one execution ([`Db::share_identical_reads`]).
    sharing: Option<Arc<Sharing>>,
}

/// The error of a read whose turn cannot come (the bound's semaphore closed; never in
/// practice), as SeaORM reports a pool that is closed.
fn closed() -> DbErr {
    DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)
}

/// Completes when `deadline` passes; never when there is none.
pub async fn expiry(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Db {
    /// Wraps a pool, hooking the statement counters into it. Without a probe the database is
    /// assumed reachable (command-line tools).
    pub fn new(mut conn: DatabaseConnection) -> Db {
        let stats = Arc::new(DbStats::default());
        let counter = Arc::clone(&stats);
        conn.set_metric_callback(move |info| {
            counter.record(&info.statement.sql, info.elapsed, info.failed);
        });
        // Matching the variant first: `get_postgres_connection_pool` panics on any other.
        let pool = matches!(
            conn.inner,
            DatabaseConnectionType::SqlxPostgresPoolConnection(_)
        )
        .then(|| conn.get_postgres_connection_pool().clone());
        Db {
            conn,
            pool,
            stats,
            health: Arc::new(DbHealth::default()),
            reads: Arc::new(ExecutionSlots::new(0)),
            sharing: None,
        }
    }

    /// At most `limit` read statements through [`Db::fetch_all`] at once (0: no limit); the
    /// others wait their turn, in arrival order, before taking a connection.
    ///
    /// PostgreSQL does the most work with a few active backends per core; past that they only
    /// compete for the cores, with each other and, when the server shares the machine, with
    /// the server's own threads (the well-known pool-sizing rule of thumb is about two active
    /// connections per core). The pool stays larger for writes, which mostly wait for their
    /// commit's flush and share it the more of them commit together. Measured in interleaved
    /// pairs with 6 on two cores against none, at 32 clients: the p99 was lower in 17 of 17
    /// pairs over the five benchmark workloads (`bench/README.md`).
    pub fn limit_reads(mut self, limit: usize) -> Db {
        self.reads = Arc::new(ExecutionSlots::new(limit));
        self
    }

    /// Whether identical reads at the same time share one execution (see `src/db/shared.rs`):
    /// a read joins an identical statement that waits for its turn, or, within a read-only
    /// operation ([`fresh_since`]), one that is running and started after the operation
    /// began, so that its rows are as fresh as its own execution's would be.
    pub fn share_identical_reads(mut self, on: bool) -> Db {
        self.sharing = on.then(|| Arc::new(Sharing::default()));
        self
    }

    /// Reads answered by an identical read's execution since start
    /// ([`Db::share_identical_reads`]).
    pub fn reads_shared(&self) -> u64 {
        self.sharing.as_ref().map_or(0, |s| s.shared())
    }

    /// Read statements running now under the bound (0 when reads are not limited).
    pub fn reads_running(&self) -> usize {
        self.reads.running()
    }

    /// Reads waiting now: for their turn, or for the execution of an identical read they
    /// joined ([`Db::share_identical_reads`]).
    pub fn reads_waiting(&self) -> u64 {
        self.reads.waiting() + self.sharing.as_ref().map_or(0, |s| s.joined())
    }

    /// As [`Db::new`], plus a background probe of `url` that keeps [`Db::health`] current.
    /// Needs a Tokio runtime; the probe stops when the last clone of the handle is dropped.
    pub fn with_probe(conn: DatabaseConnection, url: &str) -> Db {
        let db = Db::new(conn);
        match url.parse::<PgConnectOptions>() {
            Ok(options) => {
                let options = options.application_name("titanbay-probe");
                health::spawn_probe(&db.health, options);
            }
            Err(e) => tracing::warn!(error = %e, "cannot parse DATABASE_URL for the health probe"),
        }
        db
    }

    /// The rows of one statement (a read, or an autocommit write that returns rows), run on
    /// the pool straight through sqlx and counted like every other statement.
    ///
    /// The hot statements (a fund by id, pages of investments, `createInvestment`) go this
    /// way: SeaORM's `query_all_raw` for the same call moves boxed futures of about 15 KB
    /// three times and copies the values and the text once more (a fifth of W1's
    /// instructions, about 5 % of the server's cycles). Errors are SeaORM's, mapped as its own
    /// driver maps them, so callers classify them the same way.
    ///
    /// For reads: it waits for a turn when reads are limited ([`Db::limit_reads`]), and it
    /// shares the execution of an identical read when one may answer it
    /// ([`Db::share_identical_reads`]).
    pub async fn fetch_all(&self, mut stmt: Statement) -> Result<Rows, DbErr> {
        let Some(sharing) = &self.sharing else {
            // Held until the rows are in: the statement and its connection count as running.
            let _turn = self.reads.acquire(None).await.ok_or_else(closed)?;
            return self.run(stmt).await.map(Arc::new);
        };
        let floor = shared::current_floor();
        loop {
            let (ticket, stmt) = match sharing.join(stmt, floor) {
                Role::Leader(ticket, stmt) => (ticket, stmt),
                // A follower holds no turn while it waits: the leader it waits for may need
                // one.
                Role::Follower(rows, again) => match rows.await {
                    Ok(outcome) => {
                        sharing.record_shared();
                        return outcome;
                    }
                    // The leader's request went away before the rows were in.
                    Err(_) => {
                        stmt = again;
                        continue;
                    }
                },
            };
            // Dropped before it finishes (the request went away), the ticket sends its
            // followers to ask again.
            let _turn = self.reads.acquire(None).await.ok_or_else(closed)?;
            ticket.start();
            let outcome = self.run(stmt).await.map(Arc::new);
            ticket.finish().send(&outcome);
            return outcome;
        }
    }

    /// As [`Db::fetch_all`], for an autocommit write that returns rows: it never waits for a
    /// read's turn.
    pub async fn write_returning(&self, stmt: Statement) -> Result<Vec<PgRow>, DbErr> {
        self.run(stmt).await
    }

    async fn run(&self, stmt: Statement) -> Result<Vec<PgRow>, DbErr> {
        let Some(pool) = &self.pool else {
            return Err(DbErr::Custom(
                "statements need a PostgreSQL pool".to_owned(),
            ));
        };
        let Statement { sql, values, .. } = stmt;
        // The text moves into the query; it is kept for the debug log only when that is on.
        let logged =
            tracing::enabled!(target: "titanbay::sql", tracing::Level::DEBUG).then(|| sql.clone());
        let values = sea_query_sqlx::SqlxValues(values.unwrap_or(sea_orm::Values(Vec::new())));
        // As in SeaORM: a connection that cannot be had is not a statement run. The acquiring
        // future (which may open a connection) is large: boxed, it does not make every future
        // awaiting this one as large, to be moved along with them.
        let mut conn = Box::pin(pool.acquire()).await.map_err(acquire_error)?;
        let started = std::time::Instant::now();
        let result = sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e.into())));
        drop(conn);
        self.stats.record(
            logged.as_deref().unwrap_or_default(),
            started.elapsed(),
            result.is_err(),
        );
        result
    }

    /// The statement counters.
    pub fn stats(&self) -> &DbStats {
        &self.stats
    }

    /// Reachability as last probed.
    pub fn health(&self) -> &DbHealth {
        &self.health
    }

    /// `SERVICE_UNAVAILABLE` at once while the database is known to be unreachable.
    pub fn ensure_reachable(&self) -> Result<(), AppError> {
        if self.health.is_healthy() {
            Ok(())
        } else {
            Err(AppError::ServiceUnavailable(None))
        }
    }

    /// Runs `work` unless the database becomes unreachable or `deadline` passes first; then
    /// the work is dropped (for a transaction, before its commit: nothing was committed).
    pub async fn guard<T>(
        &self,
        deadline: Option<Instant>,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        self.ensure_reachable()?;
        let expiry = expiry(deadline);
        let result = tokio::select! {
            result = work => result,
            () = self.health.unreachable() => Err(AppError::ServiceUnavailable(None)),
            () = expiry => Err(AppError::Timeout),
        };
        if let Err(e) = &result
            && e.code() == ErrorCode::ServiceUnavailable
        {
            self.health.suspect();
        }
        result
    }

    /// Runs one autocommit write statement. While the database is known to be unreachable it is
    /// not sent (`SERVICE_UNAVAILABLE`); once it may have been sent, a database that becomes
    /// unreachable or a deadline that passes leaves the outcome unknown, which is reported as
    /// such (`INTERNAL_SERVER_ERROR`), never as success nor as `SERVICE_UNAVAILABLE`.
    pub async fn single_write<T>(
        &self,
        deadline: Option<Instant>,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        self.ensure_reachable()?;
        let expiry = expiry(deadline);
        let unknown = |why: &str| AppError::CommitOutcomeUnknown(DbErr::Custom(why.to_owned()));
        let result = tokio::select! {
            result = work => result,
            () = self.health.unreachable() => Err(unknown("the database became unreachable during a write")),
            () = expiry => Err(unknown("the request deadline passed during a write")),
        };
        if let Err(e) = &result
            && matches!(
                e.code(),
                ErrorCode::ServiceUnavailable | ErrorCode::InternalServerError
            )
        {
            self.health.suspect();
        }
        result
    }

    /// Classifies the error of an autocommit write: no connection → `SERVICE_UNAVAILABLE`
    /// (nothing was sent); cancelled by `statement_timeout` → `REQUEST_TIMEOUT` (rolled back);
    /// a connection lost after sending → outcome unknown.
    pub fn write_error(err: DbErr) -> AppError {
        if matches!(err, DbErr::ConnectionAcquire(_)) {
            return AppError::ServiceUnavailable(Some(err));
        }
        match crate::error::classify_db_error(&err) {
            crate::error::DbErrorClass::Unavailable => AppError::CommitOutcomeUnknown(err),
            crate::error::DbErrorClass::Timeout => AppError::Timeout,
            crate::error::DbErrorClass::Other => AppError::Database(err),
        }
    }

    /// Starts a transaction (guarded like [`Db::guard`]).
    pub async fn begin(&self, deadline: Option<Instant>) -> Result<DatabaseTransaction, AppError> {
        self.guard(deadline, async { Ok(self.conn.begin().await?) })
            .await
    }

    /// Commits. A failure here leaves the outcome unknown, which is never reported as success
    /// nor as `SERVICE_UNAVAILABLE`.
    pub async fn commit(&self, txn: DatabaseTransaction) -> Result<(), AppError> {
        txn.commit().await.map_err(|e| {
            self.health.suspect();
            AppError::CommitOutcomeUnknown(e)
        })
    }
}

/// A failure to get a connection from the pool, as SeaORM's driver reports it.
fn acquire_error(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(e.into())),
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
    // Every statement of this server is a prepared keyset seek whose best plan does not depend
    // on its parameters. PostgreSQL's default (`auto`) re-plans a prepared statement for every
    // execution whenever the custom plan looks cheaper than the generic one, which is always
    // the case for the `unnest($1)` batches (the custom plan sees the array's length): planning
    // then costs more than executing (W2's page: 0.3–0.5 ms of planning for 0.2 ms of work).
    // The generic plan is made once per connection and statement, and stays the same for every
    // parameter value, which `tests/nested.rs` checks for index seeks without a sort.
    opt.map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_generic_plan")]));
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
