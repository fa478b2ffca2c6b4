//! A bound on how many things run at once: GraphQL requests (`MAX_CONCURRENT_REQUESTS`) and
//! read statements (`DB_MAX_CONCURRENT_READS`).
//!
//! Past the point where the CPU and the database pool are busy, running more requests at the
//! same time only adds memory (every running request holds its rows and its response) and
//! contention, not throughput. Requests beyond the bound wait their turn, in arrival order,
//! until their own deadline; nothing is refused while a slot can still come free in time.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The execution slots of one server.
#[derive(Debug)]
pub struct ExecutionSlots {
    /// `None` when unlimited.
    semaphore: Option<Semaphore>,
    limit: usize,
    waiting: AtomicU64,
}

/// A slot held by one request; dropping it lets the next waiting request run.
#[derive(Debug)]
pub struct Slot<'a> {
    _permit: Option<SemaphorePermit<'a>>,
}

/// Counts one waiter for as long as it exists (also when the waiting future is dropped, e.g.
/// because the client went away).
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ExecutionSlots {
    /// At most `limit` requests at once; 0 means no limit.
    pub fn new(limit: usize) -> Self {
        ExecutionSlots {
            semaphore: (limit > 0).then(|| Semaphore::new(limit)),
            limit,
            waiting: AtomicU64::new(0),
        }
    }

    /// Waits for a slot until `deadline`; `None` when the deadline passed first.
    pub async fn acquire(&self, deadline: Option<tokio::time::Instant>) -> Option<Slot<'_>> {
        if let Some(slot) = self.try_acquire() {
            return Some(slot);
        }
        let semaphore = self.semaphore.as_ref()?;
        let _waiting = Waiting::new(&self.waiting);
        let permit = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, semaphore.acquire())
                .await
                .ok()?
                .ok()?,
            None => semaphore.acquire().await.ok()?,
        };
        Some(Slot {
            _permit: Some(permit),
        })
    }

    /// A slot now, without waiting; `None` when every slot is taken (never when unlimited).
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let Some(semaphore) = &self.semaphore else {
            return Some(Slot { _permit: None });
        };
        semaphore.try_acquire().ok().map(|permit| Slot {
            _permit: Some(permit),
        })
    }

    /// The configured bound (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests running now.
    pub fn running(&self) -> usize {
        self.semaphore
            .as_ref()
            .map_or(0, |s| self.limit.saturating_sub(s.available_permits()))
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_request_waits_for_a_free_slot_and_gives_up_at_its_deadline() {
        let slots = ExecutionSlots::new(1);
        let held = slots.acquire(None).await;
        assert!(held.is_some());
        assert_eq!(slots.running(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        assert!(slots.acquire(Some(deadline)).await.is_none());
        assert_eq!(slots.waiting(), 0);
        drop(held);
        assert_eq!(slots.running(), 0);
        assert!(slots.acquire(Some(deadline)).await.is_some());
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let slots = ExecutionSlots::new(0);
        let a = slots.acquire(None).await;
        let b = slots.acquire(None).await;
        assert!(a.is_some() && b.is_some());
        assert_eq!(slots.limit(), 0);
    }
}
