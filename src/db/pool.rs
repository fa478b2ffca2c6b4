//! The pool of PostgreSQL connections: deadpool managing sqlx's `PgConnection`s.
//!
//! Why not sqlx's own pool (which SeaORM wraps): it pings every connection when it is returned
//! (a round trip per statement: a point lookup costs two instead of one) and hands idle
//! connections out oldest first, so every connection of the pool takes its turn and wakes a
//! PostgreSQL backend whose caches went cold. Patching both (as this project once did) also
//! removed the checks that dropped a dead connection, and the server could not survive a
//! PostgreSQL restart under steady traffic. deadpool (a well-kept generic pool) gives the
//! choices that fit a small, busy server as configuration: idle connections newest first
//! (`QueueMode::Lifo`), nothing on release, and a check on checkout that we decide:
//!
//! - a connection is pinged before it is handed out when it has been idle for
//!   `DB_PING_IDLE_SECS`, or when it was last known alive before the last sign of trouble
//!   (a connection that broke, the health probe losing the database): after a restart every
//!   old connection is checked once, and the dead ones are dropped instead of failing requests;
//! - a connection that fails at the connection level (I/O, protocol, a `FATAL` from the
//!   server) is dropped at once, and so is one whose statement was abandoned halfway (its
//!   protocol state is unknown);
//! - connections older than `DB_MAX_LIFETIME_SECS` are replaced at checkout.
//!
//! `bench/README.md` has the measurements behind these choices.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use sea_orm::sqlx::{self, Connection, PgConnection, postgres::PgConnectOptions};

/// Longest a liveness ping at checkout may take before the connection is given up.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One pooled connection and what the pool knows about it.
#[derive(Debug)]
pub struct Conn {
    /// The connection.
    pub raw: PgConnection,
    /// When it last proved alive (a statement completed or a ping answered).
    alive_at: Instant,
}

/// When connections last gave a sign of trouble; shared by the manager and the [`super::Db`].
#[derive(Debug, Default)]
pub struct Suspicion(Mutex<Option<Instant>>);

impl Suspicion {
    /// Records trouble now: connections not known alive since are checked before reuse.
    pub fn raise(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn since(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates and checks connections for deadpool.
#[derive(Debug)]
pub struct PgManager {
    options: PgConnectOptions,
    ping_idle_after: Duration,
    max_lifetime: Duration,
    suspicion: Arc<Suspicion>,
}

impl PgManager {
    /// A manager connecting with `options`.
    pub fn new(
        options: PgConnectOptions,
        ping_idle_after: Duration,
        max_lifetime: Duration,
        suspicion: Arc<Suspicion>,
    ) -> Self {
        PgManager {
            options,
            ping_idle_after,
            max_lifetime,
            suspicion,
        }
    }
}

impl managed::Manager for PgManager {
    type Type = Conn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn, sqlx::Error> {
        let raw = PgConnection::connect_with(&self.options).await?;
        Ok(Conn {
            raw,
            alive_at: Instant::now(),
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if metrics.age() >= self.max_lifetime {
            return Err(RecycleError::message("past its lifetime"));
        }
        let suspect = self.suspicion.since().is_some_and(|at| conn.alive_at < at);
        if suspect || conn.alive_at.elapsed() >= self.ping_idle_after {
            match tokio::time::timeout(PING_TIMEOUT, conn.raw.ping()).await {
                Ok(Ok(())) => conn.alive_at = Instant::now(),
                Ok(Err(e)) => return Err(RecycleError::Backend(e)),
                Err(_) => return Err(RecycleError::message("no answer to a ping")),
            }
        }
        Ok(())
    }
}

/// The pool type.
pub type Pool = managed::Pool<PgManager>;

/// Whether an error leaves the connection unusable (it is then dropped, not reused).
pub fn breaks_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Connection exceptions, and the server ending the session (shutdown, crash,
            // `pg_terminate_backend`, idle-session timeout).
            code.starts_with("08") || code.starts_with("57P")
        }),
        _ => false,
    }
}

/// A connection checked out for one statement or one transaction.
///
/// Returned to the pool when dropped, unless a statement on it broke the connection or was
/// abandoned before it finished (the future dropped mid-flight: its protocol state is unknown):
/// then it is closed instead, and the pool opens a fresh one when needed.
pub struct Checkout {
    object: Option<Object<PgManager>>,
    in_flight: bool,
    suspicion: Arc<Suspicion>,
}

impl Checkout {
    /// Wraps a connection from the pool.
    pub fn new(object: Object<PgManager>, suspicion: Arc<Suspicion>) -> Self {
        Checkout {
            object: Some(object),
            in_flight: false,
            suspicion,
        }
    }

    /// Whether the connection was known alive within `window` before it was handed out (a
    /// statement that fails on it then says something about the database, not the pool).
    pub fn proven_within(&self, window: Duration) -> bool {
        self.object
            .as_ref()
            .is_some_and(|o| o.alive_at.elapsed() < window)
    }

    /// The connection, as it is (a transaction's statements run on it while it stays marked
    /// in flight from `BEGIN` to `COMMIT`).
    pub fn conn(&mut self) -> Option<&mut PgConnection> {
        self.object.as_mut().map(|o| &mut o.raw)
    }

    /// The connection, marked as running a statement until [`Checkout::finished`].
    pub fn start(&mut self) -> Option<&mut PgConnection> {
        self.in_flight = true;
        self.object.as_mut().map(|o| &mut o.raw)
    }

    /// Records how the statement started with [`Checkout::start`] ended.
    pub fn finished<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.in_flight = false;
        match result {
            Ok(_) => {
                if let Some(o) = self.object.as_mut() {
                    o.alive_at = Instant::now();
                }
            }
            Err(e) if breaks_connection(e) => self.discard(),
            Err(_) => {}
        }
    }

    /// Closes the connection instead of returning it, and makes the pool check the others.
    pub fn discard(&mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
            self.suspicion.raise();
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.in_flight {
            // Abandoned mid-statement: unknown protocol state. Not a sign of trouble with the
            // database, so the other connections are not suspected.
            if let Some(object) = self.object.take() {
                drop(Object::take(object));
            }
        }
    }
}
