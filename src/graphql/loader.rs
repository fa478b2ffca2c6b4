//! Batched loading. One [`DbLoader`] serves every relation of a request; each key type is one
//! relation, and each batch of keys costs one SQL statement (per distinct page shape for
//! nested pages, which is one in practice).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    db::Db,
    entity::{fund, investor},
    error::AppError,
    metrics::Metrics,
    service::{
        self,
        investment::{Include, InvestmentWith, PageQuery, Parent, Totals},
        page::Page,
    },
};

/// Errors are shared between all the fields waiting on one batch.
pub type LoadError = Arc<AppError>;

/// Whether the request's resolvers are still running, to know when a batch is complete.
///
/// async-graphql's loader sends a batch a fixed delay after its first key, so siblings that
/// take longer than that to register their keys (a slow build, a busy CPU, the thread being
/// preempted) are split into several statements, and every nested level pays the delay. Here a
/// batch goes out exactly when the request has nothing left to do but wait: its future
/// returned `Pending` and nothing has woken it since. No timer, no split.
#[derive(Debug, Default)]
pub struct Quiescence {
    polling: AtomicBool,
    woken: AtomicBool,
    finished: AtomicBool,
    changed: Notify,
}

impl Quiescence {
    fn is_quiet(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
            || (!self.polling.load(Ordering::SeqCst) && !self.woken.load(Ordering::SeqCst))
    }

    async fn until_quiet(&self) {
        loop {
            let changed = self.changed.notified();
            if self.is_quiet() {
                return;
            }
            changed.await;
        }
    }
}

/// Wraps the request's waker: a wake-up means the request has work again.
struct FlagWaker {
    inner: Waker,
    quiescence: Arc<Quiescence>,
}

impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.quiescence.woken.store(true, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

pin_project! {
    /// A request's execution, reporting to its loader when it is quiet.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        quiescence: Arc<Quiescence>,
        // The executor's waker and ours around it, rebuilt only when the executor's changes.
        wakers: Option<(Waker, Waker)>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            // A request dropped mid-flight must not leave batches waiting forever.
            this.quiescence.finished.store(true, Ordering::SeqCst);
            this.quiescence.changed.notify_waiters();
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let quiescence = Arc::clone(this.quiescence);
        quiescence.polling.store(true, Ordering::SeqCst);
        quiescence.woken.store(false, Ordering::SeqCst);
        let stale = !matches!(this.wakers, Some((outer, _)) if outer.will_wake(cx.waker()));
        if stale {
            let ours = Waker::from(Arc::new(FlagWaker {
                inner: cx.waker().clone(),
                quiescence: Arc::clone(&quiescence),
            }));
            *this.wakers = Some((cx.waker().clone(), ours));
        }
        let Some((_, waker)) = this.wakers.as_ref() else {
            return Poll::Pending;
        };
        let result = this.inner.poll(&mut Context::from_waker(waker));
        quiescence.polling.store(false, Ordering::SeqCst);
        if result.is_ready() {
            quiescence.finished.store(true, Ordering::SeqCst);
        }
        quiescence.changed.notify_waiters();
        result
    }
}

/// The per-request loader (a fresh one per request, so nothing is cached across requests).
pub struct Loaders {
    inner: DataLoader<DbLoader>,
    /// Pages fetched ahead, with their parent's row (see [`Loaders::prime_page`]).
    primed: Mutex<Vec<(PageKey, Arc<Page<InvestmentWith>>)>>,
    metrics: Arc<Metrics>,
}

impl Loaders {
    /// Records a page already fetched for `key` (with its parent's row, in the parent's own
    /// statement), so that the field asking for it does not fetch it again.
    pub fn prime_page(&self, key: PageKey, page: Page<InvestmentWith>) {
        self.metrics.record_batch("investment_pages", 1);
        if let Ok(mut primed) = self.primed.lock() {
            primed.push((key, Arc::new(page)));
        }
    }

    /// The page for `key`: primed, or loaded in the current batch.
    pub async fn load_page(
        &self,
        key: PageKey,
    ) -> Result<Option<Arc<Page<InvestmentWith>>>, LoadError> {
        let primed = self.primed.lock().ok().and_then(|primed| {
            primed
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, page)| Arc::clone(page))
        });
        match primed {
            Some(page) => Ok(Some(page)),
            None => self.inner.load_one(key).await,
        }
    }

    /// The pages for `keys`, in one batch with every other page asked for in the same pass
    /// (the fast path's pages of a whole list; a list's pages are never primed).
    pub async fn load_pages(
        &self,
        keys: Vec<PageKey>,
    ) -> Result<HashMap<PageKey, Arc<Page<InvestmentWith>>>, LoadError> {
        self.inner.load_many(keys).await
    }

    /// Loads one key, batched with every other key of its type asked for in the same pass.
    pub async fn load_one<K>(
        &self,
        key: K,
    ) -> Result<Option<<DbLoader as Loader<K>>::Value>, LoadError>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = LoadError>,
    {
        self.inner.load_one(key).await
    }
}

/// Creates the loader of one request, and the quiescence tracker its execution must be
/// wrapped in (see [`track`]).
pub fn new_loaders(db: Db, metrics: Arc<Metrics>) -> (Loaders, Arc<Quiescence>) {
    let quiescence = Arc::new(Quiescence::default());
    let waiting = Arc::clone(&quiescence);
    // Batches run in their own tasks; keep them in the request's span (request id in logs).
    let span = tracing::Span::current();
    let inner = DataLoader::new(
        DbLoader {
            db,
            metrics: Arc::clone(&metrics),
        },
        move |batch: BoxFuture<'static, ()>| {
            let waiting = Arc::clone(&waiting);
            tokio::spawn(
                async move {
                    waiting.until_quiet().await;
                    batch.await;
                }
                .instrument(span.clone()),
            )
        },
    )
    .delay(Duration::ZERO);
    (
        Loaders {
            inner,
            primed: Mutex::default(),
            metrics,
        },
        quiescence,
    )
}

/// Wraps a request's execution so its loader knows when the request is quiet.
pub fn track<F: Future>(quiescence: Arc<Quiescence>, execution: F) -> Tracked<F> {
    Tracked {
        inner: execution,
        quiescence,
        wakers: None,
    }
}

/// Loads from PostgreSQL in batches.
#[derive(Debug, Clone)]
pub struct DbLoader {
    db: Db,
    metrics: Arc<Metrics>,
}

/// `Investment.fund`: a fund by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FundKey(pub Uuid);

/// `Investment.investor`: an investor by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvestorKey(pub Uuid);

/// `Fund.investments` / `Investor.investments`: one parent's page, the page arguments and the
/// related rows to fetch with it included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    /// Fund or investor.
    pub parent: Parent,
    /// Related rows (and their columns) the client selected, fetched in the same statement.
    pub include: Include,
    /// Parent id and window.
    pub query: PageQuery,
}

/// Hashes the parent id alone: the keys of one request differ by parent almost always, and
/// the loader hashes every key several times (equality still compares every field).
impl std::hash::Hash for PageKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.query.parent_id.as_u128());
    }
}

/// The totals of a fund or an investor: `totalCount` of its investments connection,
/// `totalCommittedUsd` and `Fund.investorCount`, all answered by one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotalsKey {
    /// Fund or investor.
    pub parent: Parent,
    /// Parent id.
    pub id: Uuid,
}

/// Groups keys by a part of them, so each group is one statement.
fn group_by<K: Clone, G: std::hash::Hash + Eq>(
    keys: &[K],
    group: impl Fn(&K) -> G,
) -> HashMap<G, Vec<K>> {
    let mut groups: HashMap<G, Vec<K>> = HashMap::new();
    for key in keys {
        groups.entry(group(key)).or_default().push(key.clone());
    }
    groups
}

impl Loader<FundKey> for DbLoader {
    type Value = fund::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[FundKey]) -> Result<HashMap<FundKey, fund::Model>, LoadError> {
        self.db.ensure_reachable()?;
        self.metrics.record_batch("fund", keys.len());
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let found = service::fund::funds_by_ids(&self.db, &ids).await?;
        Ok(found.into_iter().map(|(id, f)| (FundKey(id), f)).collect())
    }
}

impl Loader<InvestorKey> for DbLoader {
    type Value = investor::Model;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[InvestorKey],
    ) -> Result<HashMap<InvestorKey, investor::Model>, LoadError> {
        self.db.ensure_reachable()?;
        self.metrics.record_batch("investor", keys.len());
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let found = service::investor::investors_by_ids(&self.db, &ids).await?;
        Ok(found
            .into_iter()
            .map(|(id, i)| (InvestorKey(id), i))
            .collect())
    }
}

impl Loader<PageKey> for DbLoader {
    /// Shared: the loader hands each waiting field a clone of its value, and a page of rows
    /// with their related rows is not cheap to clone.
    type Value = Arc<Page<InvestmentWith>>;
    type Error = LoadError;

    async fn load(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Self::Value>, LoadError> {
        self.db.ensure_reachable()?;
        self.metrics.record_batch("investment_pages", keys.len());
        let mut out = HashMap::with_capacity(keys.len());
        for (parent, group) in group_by(keys, |k| k.parent) {
            // Siblings selecting different related fields share one statement fetching what
            // any of them selects.
            let include = group
                .iter()
                .fold(Include::default(), |all, k| all.union(k.include));
            let queries: Vec<PageQuery> = group.iter().map(|k| k.query.clone()).collect();
            let pages =
                service::investment::investment_pages(&self.db, parent, include, &queries).await?;
            out.extend(group.into_iter().zip(pages.into_iter().map(Arc::new)));
        }
        Ok(out)
    }
}

impl Loader<TotalsKey> for DbLoader {
    type Value = Totals;
    type Error = LoadError;

    async fn load(&self, keys: &[TotalsKey]) -> Result<HashMap<TotalsKey, Totals>, LoadError> {
        self.db.ensure_reachable()?;
        self.metrics.record_batch("totals", keys.len());
        let mut out = HashMap::with_capacity(keys.len());
        for (parent, group) in group_by(keys, |k| k.parent) {
            let ids: Vec<Uuid> = group.iter().map(|k| k.id).collect();
            let totals = service::investment::totals_by_parent(&self.db, parent, &ids).await?;
            out.extend(
                totals
                    .into_iter()
                    .map(|(id, t)| (TotalsKey { parent, id }, t)),
            );
        }
        Ok(out)
    }
}
