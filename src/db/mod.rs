//! The one road to PostgreSQL. Every statement the server runs goes through [`Db`]: reads,
//! single-statement writes and transactions, with the same pool, bounds, timeouts, failure
//! classification and counters. Services build statements (with SeaORM's query builder or as
//! fixed text) and hand them here; nothing else holds a connection.

mod health;
pub mod numeric;
pub mod pool;
pub mod rows;
pub mod temporal;

pub use health::DbHealth;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{PoolError, QueueMode, Timeouts};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr, Statement,
    Values,
    sqlx::{
        self, Connection, Executor, PgConnection,
        postgres::{PgConnectOptions, PgRow},
    },
};
use tokio::time::Instant;

use self::pool::{Checkout, PgManager, Pool, Suspicion, breaks_connection};
use crate::{
    config::DatabaseConfig,
    error::{AppError, DbErrorClass, classify_db_error},
    slots::ExecutionSlots,
};

/// Statement counters. Tests read them to prove how many statements a request costs.
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

/// How the pool's connections are used right now, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Of those, idle in the pool.
    pub idle: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max: usize,
}

/// The application's handle on PostgreSQL (cheap to clone).
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    suspicion: Arc<Suspicion>,
    stats: DbStats,
    health: Arc<DbHealth>,
    /// Turns for reads (`DB_MAX_CONCURRENT_READS`).
    reads: ExecutionSlots,
    /// Turns for writes (`DB_MAX_CONCURRENT_WRITES`): writes queued on one row lock cannot
    /// take every connection and stall the reads.
    writes: ExecutionSlots,
    /// Behind a pooler in transaction mode (`DB_POOLER=transaction`): no statement stays
    /// prepared, and every statement runs inside a transaction of its own (see
    /// [`Db::run`]).
    pooled: bool,
    /// What opens a transaction: `BEGIN`, and behind a pooler also the session settings as
    /// `SET LOCAL` (they cannot be set per connection there), in one round trip.
    begin_sql: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool_status())
            .finish_non_exhaustive()
    }
}

/// A handle on the [`Db`] that does not keep it open (for background tasks that should stop
/// with the server).
#[derive(Clone)]
pub struct WeakDb(std::sync::Weak<Inner>);

impl WeakDb {
    /// The database, while some [`Db`] handle still holds it.
    pub fn upgrade(&self) -> Option<Db> {
        self.0.upgrade().map(|inner| Db { inner })
    }
}

/// An error that is not a statement's: the pool could not give a connection (`why` goes to
/// the log, the client sees the code's generic message).
fn unavailable(why: &str) -> AppError {
    tracing::debug!(why, "database unavailable");
    AppError::ServiceUnavailable(Some(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)))
}

/// A statement error as SeaORM's driver would report it (callers classify `DbErr`s).
fn query_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err.into()))
}

/// What a failed read means: the database went away (retry later), ran out of time, or
/// something else.
fn read_error(err: sqlx::Error) -> AppError {
    AppError::from_db(query_error(err))
}

/// What a failed write statement means for its outcome. A connection that breaks while the
/// statement may have reached PostgreSQL leaves the outcome unknown, except when the server
/// answered the statement with a session-ending error (`57P01` admin shutdown, `57P03` cannot
/// connect now, a connection exception): PostgreSQL ends a session at a point where its
/// transaction is not committed, so such a write certainly did not commit. A write that
/// failed before reaching the server (a broken pipe on send) did not commit either.
fn write_error(err: sqlx::Error) -> AppError {
    let not_sent = match &err {
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::BrokenPipe,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c == "57P01" || c == "57P03" || c.starts_with("08")),
        _ => false,
    };
    let db_err = query_error(err);
    match classify_db_error(&db_err) {
        DbErrorClass::Unavailable if not_sent => AppError::ServiceUnavailable(Some(db_err)),
        DbErrorClass::Unavailable => AppError::CommitOutcomeUnknown(db_err),
        DbErrorClass::Timeout => AppError::Timeout,
        DbErrorClass::Other => AppError::Database(db_err),
    }
}

/// Completes when `deadline` passes; never when there is none.
pub async fn expiry(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A transaction in progress, from [`Db::begin`]: statements run on its one connection until
/// [`Tx::finish`] commits (or rolls back). Dropped unfinished (the request went away, its
/// deadline passed), its connection is closed, which rolls the transaction back.
pub struct Tx<'d> {
    db: &'d Db,
    checkout: Checkout,
    _turn: crate::slots::Slot<'d>,
}

impl Tx<'_> {
    /// The rows of one statement inside the transaction.
    pub async fn fetch_all(&mut self, stmt: Statement) -> Result<Vec<PgRow>, AppError> {
        let Some(conn) = self.checkout.conn() else {
            return Err(unavailable("the transaction's connection is gone"));
        };
        let Statement { sql, values, .. } = stmt;
        let started = std::time::Instant::now();
        let result = sqlx::query_with(sqlx::AssertSqlSafe(sql.clone()), sql_values(values))
            .persistent(!self.db.inner.pooled)
            .fetch_all(conn)
            .await;
        self.db
            .inner
            .stats
            .record(&sql, started.elapsed(), result.is_err());
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => {
                if breaks_connection(&e) {
                    self.checkout.discard();
                    self.db.inner.health.suspect();
                }
                // Nothing commits before COMMIT: a failure here is never an unknown outcome.
                Err(read_error(e))
            }
        }
    }

    /// The first row of one statement inside the transaction, if any.
    pub async fn fetch_optional(&mut self, stmt: Statement) -> Result<Option<PgRow>, AppError> {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Runs one statement inside the transaction for its effect.
    pub async fn execute(&mut self, stmt: Statement) -> Result<(), AppError> {
        self.fetch_all(stmt).await.map(|_| ())
    }

    /// Ends the transaction with `result`: commits when it is `Ok` (then returns it), rolls
    /// back otherwise (and returns the error). A commit that fails leaves the outcome
    /// unknown, which is reported as such (`INTERNAL_SERVER_ERROR`), except when the commit
    /// certainly did not reach the server.
    pub async fn finish<T>(mut self, result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(e) = &result
            && matches!(
                e.code(),
                crate::error::ErrorCode::ServiceUnavailable
                    | crate::error::ErrorCode::RequestTimeout
            )
        {
            // The work was abandoned (perhaps mid-statement): the connection is closed when
            // `self` is dropped, which rolls the transaction back.
            return result;
        }
        let command = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let Some(conn) = self.checkout.conn() else {
            return result.and(Err(unavailable("the transaction's connection is gone")));
        };
        let started = std::time::Instant::now();
        let ended = conn
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(command)))
            .await
            .map(|_| ());
        self.db
            .inner
            .stats
            .record(command, started.elapsed(), ended.is_err());
        self.checkout.finished(&ended);
        let value = result?;
        ended.map_err(|e| {
            self.db.inner.health.suspect();
            match write_error(e) {
                AppError::Database(err) => AppError::CommitOutcomeUnknown(err),
                other => other,
            }
        })?;
        Ok(value)
    }
}

fn sql_values(values: Option<Values>) -> sea_query_sqlx::SqlxValues {
    sea_query_sqlx::SqlxValues(values.unwrap_or(Values(Vec::new())))
}

impl Db {
    /// Opens the pool on `url` with the configuration's settings and opens its
    /// `DB_MIN_CONNECTIONS` connections; starts the health probe and the pool's upkeep (both
    /// stop when the last handle is dropped). Needs a Tokio runtime.
    pub async fn connect(cfg: &DatabaseConfig, url: &str) -> Result<Db, DbErr> {
        let options = connect_options(cfg, url)?;
        let suspicion = Arc::new(Suspicion::default());
        let manager = PgManager::new(
            options.clone(),
            cfg.ping_idle_after,
            cfg.max_lifetime,
            Arc::clone(&suspicion),
        );
        let max = cfg.max_connections.max(1) as usize;
        let pool = Pool::builder(manager)
            .max_size(max)
            .queue_mode(QueueMode::Lifo)
            .timeouts(Timeouts {
                wait: Some(cfg.acquire_timeout),
                create: Some(cfg.connect_timeout),
                recycle: Some(cfg.connect_timeout),
            })
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbErr::Custom(format!("building the connection pool: {e}")))?;
        let reads = cfg.max_concurrent_reads;
        let writes = cfg.max_concurrent_writes.unwrap_or_else(|| {
            // The rest of the pool, leaving the reads their share (a fifth of the pool when
            // reads are not bounded), so writes queued on one row lock never hold every
            // connection.
            let share = if reads == 0 { max / 5 } else { reads.min(max) };
            max.saturating_sub(share.max(1)).max(1)
        });
        let db = Db {
            inner: Arc::new(Inner {
                pool,
                suspicion,
                stats: DbStats::default(),
                health: Arc::new(DbHealth::default()),
                reads: ExecutionSlots::new(reads),
                writes: ExecutionSlots::new(writes),
                pooled: !cfg.persistent_statements(),
                begin_sql: begin_sql(cfg),
            }),
        };
        db.fill_to(cfg.min_connections.min(cfg.max_connections) as usize)
            .await;
        health::spawn_probe(
            &db.inner.health,
            options.application_name("titanbay-probe"),
            Arc::clone(&db.inner.suspicion),
            db.inner.pool.weak(),
        );
        spawn_upkeep(&db, cfg);
        Ok(db)
    }

    /// Opens connections until the pool holds `min` (or one fails), for the warm start and the
    /// upkeep's top-up.
    async fn fill_to(&self, min: usize) {
        let missing = min.saturating_sub(self.inner.pool.status().size);
        if missing == 0 {
            return;
        }
        let mut held = Vec::with_capacity(missing);
        for _ in 0..missing {
            match self
                .inner
                .pool
                .timeout_get(&no_wait(&self.inner.pool))
                .await
            {
                Ok(conn) => held.push(conn),
                Err(_) => break,
            }
        }
    }

    /// A handle that does not keep the pool open.
    pub fn downgrade(&self) -> WeakDb {
        WeakDb(Arc::downgrade(&self.inner))
    }

    /// Reachability as last probed.
    pub fn health(&self) -> &DbHealth {
        &self.inner.health
    }

    /// The statement counters.
    pub fn stats(&self) -> &DbStats {
        &self.inner.stats
    }

    /// The pool's connections now.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.inner.pool.status();
        PoolStatus {
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
            max: status.max_size,
        }
    }

    /// Read statements running now under their bound, and waiting for a turn.
    pub fn reads_in_progress(&self) -> (usize, u64) {
        (self.inner.reads.running(), self.inner.reads.waiting())
    }

    /// Write statements and transactions running now under their bound, and waiting.
    pub fn writes_in_progress(&self) -> (usize, u64) {
        (self.inner.writes.running(), self.inner.writes.waiting())
    }

    /// `SERVICE_UNAVAILABLE` at once while the database is known to be unreachable.
    pub fn ensure_reachable(&self) -> Result<(), AppError> {
        if self.inner.health.is_healthy() {
            Ok(())
        } else {
            Err(AppError::ServiceUnavailable(None))
        }
    }

    /// A connection from the pool (`SERVICE_UNAVAILABLE` when none can be had in time).
    async fn checkout(&self) -> Result<Checkout, AppError> {
        // Boxed: the acquiring future (which may open a connection) is large, and would
        // otherwise make every future awaiting this one as large.
        match Box::pin(self.inner.pool.get()).await {
            Ok(object) => Ok(Checkout::new(object, Arc::clone(&self.inner.suspicion))),
            Err(PoolError::Backend(e)) => {
                self.inner.health.suspect();
                Err(AppError::ServiceUnavailable(Some(query_error(e))))
            }
            Err(PoolError::Timeout(_)) => {
                self.inner.health.suspect();
                Err(unavailable("no connection became free in time"))
            }
            Err(_) => Err(unavailable("the pool is closed")),
        }
    }

    /// Runs one statement on a checked-out connection, counting it.
    ///
    /// Behind a pooler in transaction mode the statement runs inside `BEGIN … COMMIT`: sqlx
    /// sends an unnamed statement's `Parse` and its `Bind` in two round trips, and a pooler
    /// hands the server connection to another client between them unless a transaction holds
    /// it. Only the statement itself is counted.
    async fn run(
        &self,
        checkout: &mut Checkout,
        stmt: &Statement,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let Some(conn) = checkout.start() else {
            return Err(sqlx::Error::PoolClosed);
        };
        let started = std::time::Instant::now();
        let result = if self.inner.pooled {
            run_in_transaction(conn, &self.inner.begin_sql, stmt).await
        } else {
            sqlx::query_with(
                sqlx::AssertSqlSafe(stmt.sql.clone()),
                sql_values(stmt.values.clone()),
            )
            .persistent(true)
            .fetch_all(conn)
            .await
        };
        checkout.finished(&result);
        self.inner
            .stats
            .record(&stmt.sql, started.elapsed(), result.is_err());
        result
    }

    /// The rows of one read statement. Reads wait their turn under `DB_MAX_CONCURRENT_READS`.
    /// A read whose connection turns out to be broken (a restarted database, a terminated
    /// backend) is run once more on another connection: reads change nothing, so the client
    /// only sees the error when the database is really gone.
    pub async fn fetch_all(&self, stmt: Statement) -> Result<Vec<PgRow>, AppError> {
        self.ensure_reachable()?;
        let Some(_turn) = self.inner.reads.acquire(None).await else {
            return Err(unavailable("the read turns are closed"));
        };
        let mut retried = false;
        loop {
            let mut checkout = self.checkout().await?;
            match self.run(&mut checkout, &stmt).await {
                Ok(rows) => return Ok(rows),
                Err(e) if breaks_connection(&e) && !retried => {
                    tracing::info!(error = %e, "a pooled connection was broken; reading again on another");
                    self.inner.health.suspect();
                    retried = true;
                }
                Err(e) => {
                    if breaks_connection(&e) {
                        self.inner.health.suspect();
                    }
                    return Err(read_error(e));
                }
            }
        }
    }

    /// The first row of one read statement, if any.
    pub async fn fetch_optional(&self, stmt: Statement) -> Result<Option<PgRow>, AppError> {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Runs `work` unless the database becomes unreachable or `deadline` passes first; then
    /// the work is dropped with `SERVICE_UNAVAILABLE` or `REQUEST_TIMEOUT` (for a transaction:
    /// before its commit was sent, so nothing was committed).
    pub async fn guard<T>(
        &self,
        deadline: Option<Instant>,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        self.ensure_reachable()?;
        tokio::select! {
            result = work => result,
            () = self.inner.health.unreachable() => Err(AppError::ServiceUnavailable(None)),
            () = expiry(deadline) => Err(AppError::Timeout),
        }
    }

    /// Runs one autocommit write statement (it commits on its own) and returns its rows.
    ///
    /// While the database is known to be unreachable nothing is sent (`SERVICE_UNAVAILABLE`).
    /// Once the statement may have been sent it is never abandoned: its answer always says
    /// whether it committed, or that the outcome is unknown (`INTERNAL_SERVER_ERROR`), never
    /// success for a failure nor `SERVICE_UNAVAILABLE` for a write that may have committed.
    pub async fn write(
        &self,
        deadline: Option<Instant>,
        stmt: Statement,
    ) -> Result<Vec<PgRow>, AppError> {
        self.ensure_reachable()?;
        if self.inner.pooled {
            // Its own transaction: the commit's outcome is then told apart from the
            // statement's (see `Tx::finish`).
            let mut tx = self.begin(deadline).await?;
            let rows = tx.fetch_all(stmt).await;
            return tx.finish(rows).await;
        }
        let Some(_turn) = self.inner.writes.acquire(deadline).await else {
            return Err(AppError::Timeout);
        };
        let mut checkout = self.guard(deadline, self.checkout()).await?;
        let result = self.run(&mut checkout, &stmt).await;
        result.map_err(|e| {
            if breaks_connection(&e) {
                self.inner.health.suspect();
            }
            write_error(e)
        })
    }

    /// Begins a transaction on a connection of its own (waiting for a write turn under
    /// `DB_MAX_CONCURRENT_WRITES`, until `deadline`). Run its statements inside
    /// [`Db::guard`], then end it with [`Tx::finish`].
    pub async fn begin(&self, deadline: Option<Instant>) -> Result<Tx<'_>, AppError> {
        self.ensure_reachable()?;
        let Some(turn) = self.inner.writes.acquire(deadline).await else {
            return Err(AppError::Timeout);
        };
        let mut checkout = self.guard(deadline, self.checkout()).await?;
        let began = match checkout.start() {
            Some(conn) => conn
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(
                    self.inner.begin_sql.clone(),
                )))
                .await
                .map(|_| ()),
            None => return Err(unavailable("the pool is closed")),
        };
        if let Err(e) = began {
            if breaks_connection(&e) {
                checkout.discard();
                self.inner.health.suspect();
            }
            return Err(read_error(e));
        }
        // Held in flight until COMMIT or ROLLBACK has been answered: dropped before, the
        // connection is closed (and the transaction rolled back by the server).
        Ok(Tx {
            db: self,
            checkout,
            _turn: turn,
        })
    }

    /// Runs SQL text with the simple query protocol (several statements allowed, no
    /// parameters): for administration and tests, never for request data.
    pub async fn execute_script(&self, sql: &str) -> Result<(), AppError> {
        let mut checkout = self.checkout().await?;
        let Some(conn) = checkout.start() else {
            return Err(unavailable("the pool is closed"));
        };
        let result = conn
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
            .await
            .map(|_| ());
        checkout.finished(&result);
        result.map_err(read_error)
    }

    /// Closes every connection (at shutdown).
    pub fn close(&self) {
        self.inner.pool.close();
    }
}

/// Timeouts for taking a connection without waiting for one to come free.
fn no_wait(pool: &Pool) -> Timeouts {
    Timeouts {
        wait: Some(Duration::ZERO),
        ..pool.timeouts()
    }
}

/// `BEGIN`, with the session settings as `SET LOCAL` behind a pooler (one round trip: a
/// simple query may hold several statements).
fn begin_sql(cfg: &DatabaseConfig) -> String {
    if cfg.persistent_statements() || cfg.statement_timeout.is_zero() {
        "BEGIN".to_owned()
    } else {
        format!(
            "BEGIN; SET LOCAL statement_timeout = {}",
            cfg.statement_timeout.as_millis()
        )
    }
}

/// One statement in a transaction of its own, without a prepared statement surviving it
/// (behind a pooler in transaction mode). A failed statement is rolled back.
async fn run_in_transaction(
    conn: &mut PgConnection,
    begin: &str,
    stmt: &Statement,
) -> Result<Vec<PgRow>, sqlx::Error> {
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(begin.to_owned())))
        .await?;
    let result = sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.clone()),
        sql_values(stmt.values.clone()),
    )
    .persistent(false)
    .fetch_all(&mut *conn)
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(end))).await;
    let rows = result?;
    ended?;
    Ok(rows)
}

/// How often the pool's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Closes connections idle longer than `idle_timeout` beyond the minimum and those past their
/// lifetime, and opens connections up to the minimum while the database is reachable.
fn spawn_upkeep(db: &Db, cfg: &DatabaseConfig) {
    let weak = Arc::downgrade(&db.inner);
    let min = cfg.min_connections.min(cfg.max_connections) as usize;
    let (idle_timeout, max_lifetime) = (cfg.idle_timeout, cfg.max_lifetime);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            let Some(inner) = weak.upgrade() else { return };
            let db = Db { inner };
            let mut spare = db.inner.pool.status().size.saturating_sub(min);
            db.inner.pool.retain(|_, metrics| {
                let idle_too_long = metrics.last_used() >= idle_timeout && spare > 0;
                let keep = metrics.age() < max_lifetime && !idle_too_long;
                if !keep {
                    spare = spare.saturating_sub(1);
                }
                keep
            });
            if db.inner.health.is_healthy() {
                db.fill_to(min).await;
            }
        }
    });
}

/// The connect options of `url` with the configuration's session settings.
pub fn connect_options(cfg: &DatabaseConfig, url: &str) -> Result<PgConnectOptions, DbErr> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| DbErr::Conn(RuntimeErr::Internal(e.to_string())))?;
    let options = options.application_name("titanbay");
    if !cfg.persistent_statements() {
        // A pooler in transaction mode keeps no session settings (PgBouncer refuses the
        // `options` and `extra_float_digits` startup parameters unless told to ignore them):
        // the settings are sent with each transaction instead (`begin_sql`), and
        // `plan_cache_mode` does not apply to unnamed statements.
        return Ok(options.extra_float_digits(None));
    }
    let mut settings = vec![
        // Every statement of this server is a prepared keyset seek whose best plan does not
        // depend on its parameters. PostgreSQL's default (`auto`) re-plans a prepared
        // statement for every execution whenever the custom plan looks cheaper than the
        // generic one, which is always the case for the `unnest($1)` batches: planning then
        // cost more than executing (W2's page: 0.3–0.5 ms of planning for 0.2 ms of work).
        // `tests/nested.rs` checks the generic plans for index seeks without a sort.
        (
            "plan_cache_mode".to_owned(),
            "force_generic_plan".to_owned(),
        ),
    ];
    if !cfg.statement_timeout.is_zero() {
        settings.push((
            "statement_timeout".to_owned(),
            cfg.statement_timeout.as_millis().to_string(),
        ));
    }
    Ok(options.options(settings))
}

/// `host:port/database` of a URL, for logs: never the password.
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

/// Opens one connection, bounded by the connect timeout.
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

/// Waits for PostgreSQL at `url` to accept connections, retrying with exponential back-off
/// (0.5 s doubling to 8 s) for up to `cfg.startup_retry` and logging each failed attempt.
pub async fn wait_until_reachable(cfg: &DatabaseConfig, url: &str) -> Result<(), DbErr> {
    let target = describe_url(url);
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1u32;
    loop {
        match probe(cfg, url).await {
            Ok(()) => return Ok(()),
            Err(err) => {
                if started.elapsed() + delay > cfg.startup_retry {
                    tracing::error!(%target, attempt, error = %err, "giving up connecting to PostgreSQL");
                    return Err(DbErr::Conn(RuntimeErr::Internal(format!(
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
}

/// A single SeaORM connection to `url`, for running migrations and other tools (never used
/// for requests: those go through [`Db`]).
pub async fn tool_connection(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(1)
        .min_connections(0)
        .sqlx_logging(false)
        .set_application_name("titanbay-tool")
        // The migrator's `CREATE TABLE IF NOT EXISTS` bookkeeping would otherwise have
        // PostgreSQL send "relation … already exists, skipping" notices at every start.
        .map_sqlx_postgres_opts(|o| o.options([("client_min_messages", "warning")]));
    Database::connect(opt).await
}

/// Creates database `name` through `admin_url` unless it exists.
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    let admin = tool_connection(admin_url).await?;
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
