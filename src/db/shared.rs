//! Identical reads that wait for their turn at the same time share one execution.
//!
//! Under load, reads queue for a turn ([`super::Db::limit_reads`]); when several requests
//! wait to run the very same statement with the very same values (many clients on the same
//! fund's page), the first to arrive runs it once its turn comes and every request that joined
//! it while it waited gets the same rows. A read joins only a group whose statement has not
//! started yet: its rows come from an execution that started after the read was asked for, so
//! they are exactly as fresh as running it alone would give (a client that has just written
//! sees its write). Once a group's statement starts, the next identical read starts a new
//! group. This is the query deduplication of GraphQL gateways (Apollo Router's
//! `deduplicate_query`) made safe for reads that follow a write: gateways also join requests
//! already in flight.
//!
//! Requests that would share differ in nothing that can change the rows: the statement text
//! and its values decide them (every pooled connection has the same session settings, and
//! permissions are checked per field before and after, never in SQL).

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::{DbErr, Statement, sqlx::postgres::PgRow};
use tokio::sync::oneshot;

/// The rows of one read, shared by every request that asked for them at once.
pub type Rows = Arc<Vec<PgRow>>;

/// What one execution hands to everyone waiting on it.
pub(super) type Outcome = Result<Rows, DbErr>;

/// One statement waiting for its turn, with the requests that joined it.
struct Group {
    id: u64,
    stmt: Statement,
    followers: Vec<oneshot::Sender<Outcome>>,
}

/// The groups waiting now.
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

/// What a read does, once it has looked for an identical one waiting.
pub(super) enum Role<'a> {
    /// The first to ask: it waits for a turn and runs the statement for the group.
    Leader(Ticket<'a>),
    /// It joined a waiting group and waits for its rows. An error from the channel means the
    /// leader went away before running it (its request was dropped): ask again with the
    /// statement given back.
    Follower(oneshot::Receiver<Outcome>, Statement),
}

/// A leader's place in the waiting groups. Dropped without [`Ticket::start`] (the leader's
/// request went away while waiting), its group is removed and its followers ask again.
pub(super) struct Ticket<'a> {
    sharing: &'a Sharing,
    id: u64,
}

/// The requests that joined a group, waiting for its rows.
pub(super) struct Followers(Vec<oneshot::Sender<Outcome>>);

impl Sharing {
    /// Joins the waiting group of an identical statement, or starts one.
    pub(super) fn join(&self, stmt: Statement) -> Role<'_> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups
            .iter_mut()
            .find(|g| g.stmt.sql == stmt.sql && g.stmt.values == stmt.values)
        {
            let (tx, rx) = oneshot::channel();
            group.followers.push(tx);
            return Role::Follower(rx, stmt);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        groups.push(Group {
            id,
            stmt,
            followers: Vec::new(),
        });
        Role::Leader(Ticket { sharing: self, id })
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
    /// Closes the group just before its statement starts: later reads start a new one.
    /// `None` only if the group is gone, which nothing but this ticket does.
    pub(super) fn start(self) -> Option<(Statement, Followers)> {
        let group = self.sharing.remove(self.id);
        std::mem::forget(self);
        group.map(|g| (g.stmt, Followers(g.followers)))
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
