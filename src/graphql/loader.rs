//! Batched loading. One [`DbLoader`] serves every relation of a request; each key type is one
//! relation, and each batch of keys costs one SQL statement (per distinct page shape for
//! nested pages, which is one in practice).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::future::BoxFuture;
use tracing::Instrument;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    db::Db,
    entity::{fund, investor},
    error::AppError,
    service::{
        self,
        investment::{Aggregate, PageQuery, Parent},
        page::Page,
    },
};

/// Errors are shared between all the fields waiting on one batch.
pub type LoadError = Arc<AppError>;

/// When the request last asked for a key, to know when a batch is complete.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    last_nanos: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_nanos.store(nanos, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Waits until the request has asked for no new key for `quiet`, then runs the batch.
///
/// async-graphql's loader waits a fixed delay after the first key, so a page whose siblings
/// take longer than that to register their keys (a slow build, a busy CPU) is split into two
/// statements. Waiting for a quiet period instead keeps the whole page in one batch.
async fn debounced(activity: Arc<Activity>, quiet: Duration, batch: BoxFuture<'static, ()>) {
    loop {
        let idle = activity.idle();
        if idle >= quiet {
            break;
        }
        tokio::time::sleep(quiet - idle).await;
    }
    batch.await;
}

/// The per-request loader (a fresh one per request, so nothing is cached across requests).
pub struct Loaders {
    inner: DataLoader<DbLoader>,
    activity: Arc<Activity>,
}

impl Loaders {
    /// Loads one key, batched with every other key of its type asked for around the same time.
    pub async fn load_one<K>(
        &self,
        key: K,
    ) -> Result<Option<<DbLoader as Loader<K>>::Value>, LoadError>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = LoadError>,
    {
        self.activity.touch();
        self.inner.load_one(key).await
    }
}

/// Creates the loader of one request: a batch goes out once no new key arrived for `quiet`.
pub fn new_loaders(db: Db, quiet: Duration) -> Loaders {
    let activity = Arc::new(Activity {
        origin: Instant::now(),
        last_nanos: AtomicU64::new(0),
    });
    let spawn_activity = Arc::clone(&activity);
    // Batches run in their own tasks; keep them in the request's span (request id in logs).
    let span = tracing::Span::current();
    let inner = DataLoader::new(DbLoader { db }, move |batch: BoxFuture<'static, ()>| {
        tokio::spawn(debounced(Arc::clone(&spawn_activity), quiet, batch).instrument(span.clone()))
    })
    .delay(Duration::ZERO);
    Loaders { inner, activity }
}

/// Loads from PostgreSQL in batches.
#[derive(Debug, Clone)]
pub struct DbLoader {
    db: Db,
}

/// `Investment.fund`: a fund by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FundKey(pub Uuid);

/// `Investment.investor`: an investor by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvestorKey(pub Uuid);

/// `Fund.investments` / `Investor.investments`: one parent's page, the page arguments included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// Fund or investor.
    pub parent: Parent,
    /// Parent id and window.
    pub query: PageQuery,
}

/// `totalCount` of a nested connection and `Fund.investorCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountKey {
    /// Fund or investor.
    pub parent: Parent,
    /// What to count.
    pub aggregate: Aggregate,
    /// Parent id.
    pub id: Uuid,
}

/// `Fund.totalCommittedUsd` / `Investor.totalCommittedUsd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotalKey {
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
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let found = service::fund::funds_by_ids(&self.db.conn, &ids).await?;
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
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let found = service::investor::investors_by_ids(&self.db.conn, &ids).await?;
        Ok(found
            .into_iter()
            .map(|(id, i)| (InvestorKey(id), i))
            .collect())
    }
}

impl Loader<PageKey> for DbLoader {
    type Value = Page<crate::entity::investment::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Self::Value>, LoadError> {
        self.db.ensure_reachable()?;
        let mut out = HashMap::with_capacity(keys.len());
        for (parent, group) in group_by(keys, |k| k.parent) {
            let queries: Vec<PageQuery> = group.iter().map(|k| k.query.clone()).collect();
            let pages =
                service::investment::investment_pages(&self.db.conn, parent, &queries).await?;
            out.extend(group.into_iter().zip(pages));
        }
        Ok(out)
    }
}

impl Loader<CountKey> for DbLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[CountKey]) -> Result<HashMap<CountKey, i64>, LoadError> {
        self.db.ensure_reachable()?;
        let mut out = HashMap::with_capacity(keys.len());
        for ((parent, aggregate), group) in group_by(keys, |k| (k.parent, k.aggregate)) {
            let ids: Vec<Uuid> = group.iter().map(|k| k.id).collect();
            let counts =
                service::investment::count_by_parent(&self.db.conn, parent, aggregate, &ids)
                    .await?;
            out.extend(counts.into_iter().map(|(id, n)| {
                (
                    CountKey {
                        parent,
                        aggregate,
                        id,
                    },
                    n,
                )
            }));
        }
        Ok(out)
    }
}

impl Loader<TotalKey> for DbLoader {
    type Value = Decimal;
    type Error = LoadError;

    async fn load(&self, keys: &[TotalKey]) -> Result<HashMap<TotalKey, Decimal>, LoadError> {
        self.db.ensure_reachable()?;
        let mut out = HashMap::with_capacity(keys.len());
        for (parent, group) in group_by(keys, |k| k.parent) {
            let ids: Vec<Uuid> = group.iter().map(|k| k.id).collect();
            let totals =
                service::investment::total_committed_by_parent(&self.db.conn, parent, &ids).await?;
            out.extend(
                totals
                    .into_iter()
                    .map(|(id, t)| (TotalKey { parent, id }, t)),
            );
        }
        Ok(out)
    }
}
