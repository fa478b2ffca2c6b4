//! Identical reads at the same time share one execution.
//!
//! When several requests run the very same statement with the very same values at the same
//! time (many clients on the same fund's page), one execution answers them all: a read joins
//! an identical statement that is waiting for its turn ([`super::Db::limit_reads`]), or one
//! already running that **started after the read's operation began**. Its rows therefore come
//! from an execution that started after the client sent the operation, which is exactly as
//! fresh as running the statement alone: every write the client saw acknowledged before it
//! sent the operation is visible. Reads of a mutation (which may follow its own write) and
//! reads outside an operation never join a running statement, only a waiting one.
//!
//! This is the query deduplication of GraphQL gateways (Apollo Router's `deduplicate_query`),
//! made safe for reads that follow a write: gateways join any identical request in flight.
//!
//! Requests that share differ in nothing that can change the rows: the statement text and
//! its values decide them (every pooled connection has the same session settings, and
//! permissions are checked per field before and after, never in SQL).

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::{DbErr, Statement, sqlx::postgres::PgRow};
use tokio::{sync::oneshot, time::Instant};

tokio::task_local! {
    /// When the running operation began, for a read-only operation: its reads may join an
    /// identical statement that started at or after that instant.
    static FRESH_SINCE: Option<Instant>;
}

/// Runs `work` (one read-only operation) letting its reads share identical statements that
/// started at or after `since`; `None` for an operation that writes.
pub async fn fresh_since<F: std::future::Future>(since: Option<Instant>, work: F) -> F::Output {
    FRESH_SINCE.scope(since, work).await
}

/// The instant the current operation's reads may share from ([`fresh_since`]).
pub(super) fn current_floor() -> Option<Instant> {
    FRESH_SINCE.try_with(|since| *since).ok().flatten()
}

/// The rows of one read, shared by every request that asked for them at once.
pub type Rows = Arc<Vec<PgRow>>;

/// What one execution hands to everyone waiting on it.
pub(super) type Outcome = Result<Rows, DbErr>;

/// One statement waiting for its turn or running, with the requests that joined it.
struct Group {
    id: u64,
    /// The statement, to compare with (the leader runs its own copy).
    stmt: Statement,
    /// When it started running (`None`: still waiting for its turn).
    started: Option<Instant>,
    followers: Vec<oneshot::Sender<Outcome>>,
}

impl Group {
    /// Whether a read of `stmt` whose operation began at `floor` may take this group's rows.
    fn answers(&self, stmt: &Statement, floor: Option<Instant>) -> bool {
        let fresh = match self.started {
            None => true,
            Some(started) => floor.is_some_and(|floor| started >= floor),
        };
        fresh && self.stmt.sql == stmt.sql && self.stmt.values == stmt.values
    }
}

/// The groups waiting for their turn or running now.
#[derive(Default)]
pub(super) struct Sharing {
    groups: Mutex<Vec<Group>>,
    next_id: AtomicU64,
    /// Reads answered by another request's execution, since start.
    shared: AtomicU64,
}

impl std::fmt::Debug for Sharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharing")
            .field("shared", &self.shared())
            .finish_non_exhaustive()
    }
}

/// What a read does, once it has looked for an identical one to join.
pub(super) enum Role<'a> {
    /// No group to join: it starts one, runs the statement and hands the rows to the group.
    Leader(Ticket<'a>, Statement),
    /// It joined a group and waits for its rows, holding no turn. An error from the channel
    /// means the leader went away before the rows were in (its request was dropped): ask
    /// again with the statement given back.
    Follower(oneshot::Receiver<Outcome>, Statement),
}

/// A leader's group. Dropped before [`Ticket::finish`] (the leader's request went away), the
/// group is removed and its followers ask again.
pub(super) struct Ticket<'a> {
    sharing: &'a Sharing,
    id: u64,
}

/// The requests that joined a group, waiting for its rows.
pub(super) struct Followers(Vec<oneshot::Sender<Outcome>>);

impl Sharing {
    /// Joins the group of an identical statement that may answer a read whose operation
    /// began at `floor`, or starts a group, waiting until its leader has a turn.
    pub(super) fn join(&self, stmt: Statement, floor: Option<Instant>) -> Role<'_> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.iter_mut().find(|g| g.answers(&stmt, floor)) {
            let (tx, rx) = oneshot::channel();
            group.followers.push(tx);
            return Role::Follower(rx, stmt);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        groups.push(Group {
            id,
            stmt: stmt.clone(),
            started: None,
            followers: Vec::new(),
        });
        Role::Leader(Ticket { sharing: self, id }, stmt)
    }

    fn remove(&self, id: u64) -> Option<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let at = groups.iter().position(|g| g.id == id)?;
        Some(groups.swap_remove(at))
    }

    /// Reads waiting now for the execution of a group they joined.
    pub(super) fn joined(&self) -> u64 {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.iter().map(|g| g.followers.len() as u64).sum()
    }

    /// Counts a read answered by another's execution.
    pub(super) fn record_shared(&self) {
        self.shared.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads answered by another request's execution, since start.
    pub(super) fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }
}

impl Ticket<'_> {
    /// Marks the group as running, just before its statement starts: from now on only reads
    /// whose operation began at or before this instant join it.
    pub(super) fn start(&self) {
        let mut groups = self
            .sharing
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.iter_mut().find(|g| g.id == self.id) {
            group.started = Some(Instant::now());
        }
    }

    /// Closes the group once its statement has its rows: later reads start a new one.
    pub(super) fn finish(self) -> Followers {
        let group = self.sharing.remove(self.id);
        std::mem::forget(self);
        Followers(group.map(|g| g.followers).unwrap_or_default())
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // Dropping the group drops its senders: every follower asks again.
        drop(self.sharing.remove(self.id));
    }
}

impl Followers {
    /// Hands the rows (or the error) to every follower still waiting.
    pub(super) fn send(self, outcome: &Outcome) {
        for follower in self.0 {
            let _ = follower.send(outcome.clone());
        }
    }
}
