//! Is the database reachable? A background probe answers on its own connection, so that when
//! PostgreSQL is down requests fail fast with `SERVICE_UNAVAILABLE` instead of waiting out the
//! pool's 30-second acquire timeout, and the server serves again by itself when it is back.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};
use tokio::sync::{Notify, watch};

use super::pool::{PgManager, Suspicion};

/// The pool, as the probe sees it: it empties the idle connections when the database goes
/// away (they are dead, or about to be).
type WeakPool = deadpool::managed::WeakPool<PgManager>;

/// How often the probe runs while the database answers.
const PROBE_EVERY_HEALTHY: Duration = Duration::from_secs(1);
/// How often the probe runs while it does not (recovery is noticed within this).
const PROBE_EVERY_UNHEALTHY: Duration = Duration::from_millis(250);
/// Longest a single probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared reachability state.
#[derive(Debug)]
pub struct DbHealth {
    healthy: AtomicBool,
    changes: watch::Sender<bool>,
    wake: Notify,
}

impl Default for DbHealth {
    fn default() -> Self {
        DbHealth {
            healthy: AtomicBool::new(true),
            changes: watch::Sender::new(true),
            wake: Notify::new(),
        }
    }
}

impl DbHealth {
    /// Whether the last probe reached the database.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn set(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!("PostgreSQL is reachable again; serving normally");
            } else {
                tracing::error!(
                    "PostgreSQL is unreachable; requests needing it fail fast with SERVICE_UNAVAILABLE"
                );
            }
            self.changes.send_replace(healthy);
        }
    }

    /// Asks the probe to check now (a request just saw a connection failure).
    pub fn suspect(&self) {
        self.wake.notify_one();
    }

    /// Completes once the database is (or becomes) unreachable.
    pub async fn unreachable(&self) {
        let mut rx = self.changes.subscribe();
        // `wait_for` only errs when the sender is gone, which outlives every request.
        let _ = rx.wait_for(|healthy| !*healthy).await;
    }
}

/// Starts the probe for `health` against `options`; it ends when `health` is dropped. When
/// the database becomes unreachable the pool's idle connections are closed, and whenever its
/// reachability changes the pool checks every connection before reusing it.
pub fn spawn_probe(
    health: &Arc<DbHealth>,
    options: PgConnectOptions,
    suspicion: Arc<Suspicion>,
    pool: WeakPool,
) {
    let weak = Arc::downgrade(health);
    tokio::spawn(probe_loop(weak, options, suspicion, pool));
}

async fn probe_once(conn: &mut Option<PgConnection>, options: &PgConnectOptions) -> bool {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(PgConnection::connect_with(options).await?);
        }
        match conn.as_mut() {
            Some(c) => c.execute("SELECT 1").await.map(|_| ()),
            None => Ok(()),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => true,
        _ => {
            *conn = None;
            false
        }
    }
}

async fn probe_loop(
    health: Weak<DbHealth>,
    options: PgConnectOptions,
    suspicion: Arc<Suspicion>,
    pool: WeakPool,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        {
            let Some(state) = health.upgrade() else {
                return;
            };
            let every = if state.is_healthy() {
                PROBE_EVERY_HEALTHY
            } else {
                PROBE_EVERY_UNHEALTHY
            };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = state.wake.notified() => {}
            }
        }
        let ok = probe_once(&mut conn, &options).await;
        let Some(state) = health.upgrade() else {
            return;
        };
        if state.is_healthy() != ok {
            suspicion.raise();
            if !ok && let Some(pool) = pool.upgrade() {
                pool.retain(|_, _| false);
            }
        }
        state.set(ok);
    }
}
