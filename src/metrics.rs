//! Prometheus metrics, served as text at `GET /metrics`, with the `metrics` crate and its
//! Prometheus exporter: requests by operation and outcome, latency histograms, loader batch
//! sizes, and gauges read at scrape time (the database pool, statements, the bounds on
//! requests, reads and writes, the caches).
//!
//! The recorder belongs to the application (it is not installed globally), so several servers
//! in one process (the tests) keep their own numbers. Labels taken from requests are bounded:
//! an operation name becomes a label only when it is a valid GraphQL name of at most
//! [`MAX_OPERATION_LABEL_CHARS`] characters and fewer than `METRICS_MAX_OPERATIONS` distinct
//! names were seen; anything else is counted as `other`.

use std::{
    collections::HashSet,
    sync::Arc,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the loader batch-size histogram buckets.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// Longest operation name kept as a label.
pub const MAX_OPERATION_LABEL_CHARS: usize = 64;

/// Every series this server exports, with its help text.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "titanbay_uptime_seconds",
        "Seconds since the server started.",
    ),
    (
        "titanbay_http_requests_total",
        "HTTP requests by route and status.",
    ),
    (
        "titanbay_graphql_requests_total",
        "GraphQL operations by operation name and outcome (ok or the first error code).",
    ),
    (
        "titanbay_graphql_request_duration_seconds",
        "Time to answer a GraphQL operation.",
    ),
    (
        "titanbay_loader_batch_size",
        "Keys per batched load, by relation.",
    ),
    (
        "titanbay_db_pool_connections",
        "Pooled PostgreSQL connections by state.",
    ),
    (
        "titanbay_db_pool_waiting",
        "Requests waiting for a pooled connection.",
    ),
    (
        "titanbay_db_pool_max_connections",
        "Most connections the pool opens.",
    ),
    (
        "titanbay_db_reads_running",
        "Read statements running (DB_MAX_CONCURRENT_READS).",
    ),
    ("titanbay_db_reads_waiting", "Reads waiting for their turn."),
    (
        "titanbay_db_writes_running",
        "Writes and transactions holding a connection (DB_MAX_CONCURRENT_WRITES).",
    ),
    (
        "titanbay_db_writes_waiting",
        "Writes waiting for their turn.",
    ),
    (
        "titanbay_db_reachable",
        "1 when the last probe reached PostgreSQL.",
    ),
    (
        "titanbay_db_statements_total",
        "SQL statements executed (failed ones included).",
    ),
    (
        "titanbay_db_statement_errors_total",
        "SQL statements that returned an error.",
    ),
    (
        "titanbay_graphql_requests_running",
        "GraphQL requests running now.",
    ),
    (
        "titanbay_graphql_requests_waiting",
        "GraphQL requests waiting for a free slot.",
    ),
    (
        "titanbay_graphql_max_concurrent_requests",
        "The bound on running requests (0: none).",
    ),
    (
        "titanbay_document_cache_bytes",
        "Bytes of parsed documents kept (DOCUMENT_CACHE_BYTES).",
    ),
    (
        "titanbay_apq_cache_bytes",
        "Bytes of automatic persisted queries kept (APQ_CACHE_BYTES).",
    ),
];

/// Values read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Connections in use.
    pub pool_in_use: usize,
    /// Connections idle.
    pub pool_idle: usize,
    /// Tasks waiting for a connection.
    pub pool_waiting: usize,
    /// The pool's size limit.
    pub pool_max: usize,
    /// Reads running and waiting.
    pub reads: (usize, u64),
    /// Writes running and waiting.
    pub writes: (usize, u64),
    /// Whether PostgreSQL answered the last probe.
    pub reachable: bool,
    /// Statements run and failed since start.
    pub statements: (u64, u64),
    /// GraphQL requests running and waiting, and their bound.
    pub requests: (usize, u64, usize),
    /// Bytes of parsed documents and of APQ documents kept.
    pub caches: (usize, usize),
}

/// The application's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Held while the metrics live: the upkeep task stops once it is gone.
    _alive: Arc<()>,
    started: Instant,
    operations: Mutex<HashSet<String>>,
    max_operations: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(200)
    }
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_EVERY`] until `alive` is gone.
/// The exporter keeps every sample recorded since the last upkeep, and the recorder used here
/// (not installed globally) runs none by itself: without it, memory grew with every request
/// between two scrapes of `/metrics` (about 3 MiB per 100,000 requests, measured) and without
/// bound when nothing scrapes. Outside a Tokio runtime (unit tests) the scrapes' own upkeep is
/// all there is.
fn spawn_upkeep(handle: PrometheusHandle, alive: std::sync::Weak<()>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            handle.run_upkeep();
        }
    });
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

/// Whether `name` may become a label value: a GraphQL name, not too long.
fn label_worthy(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_OPERATION_LABEL_CHARS
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Metrics {
    /// Metrics keeping at most `max_operations` distinct operation names as labels.
    pub fn new(max_operations: usize) -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("titanbay_graphql_request_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("titanbay_loader_batch_size".to_owned()),
                    &BATCH_BUCKETS,
                )
            });
        // Setting buckets fails only for an empty bucket list; ours are constants.
        let recorder = builder.unwrap_or_default().build_recorder();
        for (name, help) in DESCRIPTIONS {
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            recorder.describe_counter((*name).into(), unit, (*help).into());
        }
        let handle = recorder.handle();
        let alive = Arc::new(());
        spawn_upkeep(handle.clone(), Arc::downgrade(&alive));
        Metrics {
            recorder,
            handle,
            _alive: alive,
            started: Instant::now(),
            operations: Mutex::new(HashSet::new()),
            max_operations,
        }
    }

    /// Records one HTTP request.
    pub fn record_http(&self, path: &str, status: u16) {
        // Only known routes become labels; anything else is one series.
        let path = match path {
            "/graphql" | "/healthz" | "/readyz" | "/metrics" => path,
            p if p.starts_with("/graphql/") => "/graphql/playground",
            _ => "other",
        };
        self.recorder
            .register_counter(
                &key(
                    "titanbay_http_requests_total",
                    vec![
                        Label::new("path", path.to_owned()),
                        Label::new("status", status.to_string()),
                    ],
                ),
                &metadata(),
            )
            .increment(1);
    }

    /// The label for an operation name (see the module documentation).
    fn operation_label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation.filter(|o| !o.is_empty()) else {
            return "anonymous".to_owned();
        };
        if !label_worthy(name) {
            return "other".to_owned();
        }
        let mut seen = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() >= self.max_operations {
            return "other".to_owned();
        }
        seen.insert(name.to_owned());
        name.to_owned()
    }

    /// Records one GraphQL operation: its name, outcome (`ok` or the first error code) and
    /// duration.
    pub fn record_graphql(
        &self,
        operation: Option<&str>,
        outcome: &'static str,
        duration: Duration,
    ) {
        let operation = self.operation_label(operation);
        self.recorder
            .register_counter(
                &key(
                    "titanbay_graphql_requests_total",
                    vec![
                        Label::new("operation", operation.clone()),
                        Label::new("outcome", outcome),
                    ],
                ),
                &metadata(),
            )
            .increment(1);
        self.recorder
            .register_histogram(
                &key(
                    "titanbay_graphql_request_duration_seconds",
                    vec![Label::new("operation", operation)],
                ),
                &metadata(),
            )
            .record(duration.as_secs_f64());
    }

    /// Records the size of one loader batch for `relation`.
    pub fn record_batch(&self, relation: &'static str, size: usize) {
        self.recorder
            .register_histogram(
                &key(
                    "titanbay_loader_batch_size",
                    vec![Label::new("relation", relation)],
                ),
                &metadata(),
            )
            .record(size as f64);
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &metadata())
            .set(value);
    }

    fn counter_to(&self, name: &'static str, value: u64) {
        self.recorder
            .register_counter(&key(name, Vec::new()), &metadata())
            .absolute(value);
    }

    /// The text exposition of every series, with the gauges set to `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        self.gauge(
            "titanbay_uptime_seconds",
            Vec::new(),
            self.started.elapsed().as_secs_f64(),
        );
        let state = |s: &'static str| vec![Label::new("state", s)];
        self.gauge(
            "titanbay_db_pool_connections",
            state("in_use"),
            gauges.pool_in_use as f64,
        );
        self.gauge(
            "titanbay_db_pool_connections",
            state("idle"),
            gauges.pool_idle as f64,
        );
        self.gauge(
            "titanbay_db_pool_waiting",
            Vec::new(),
            gauges.pool_waiting as f64,
        );
        self.gauge(
            "titanbay_db_pool_max_connections",
            Vec::new(),
            gauges.pool_max as f64,
        );
        self.gauge(
            "titanbay_db_reads_running",
            Vec::new(),
            gauges.reads.0 as f64,
        );
        self.gauge(
            "titanbay_db_reads_waiting",
            Vec::new(),
            gauges.reads.1 as f64,
        );
        self.gauge(
            "titanbay_db_writes_running",
            Vec::new(),
            gauges.writes.0 as f64,
        );
        self.gauge(
            "titanbay_db_writes_waiting",
            Vec::new(),
            gauges.writes.1 as f64,
        );
        self.gauge(
            "titanbay_db_reachable",
            Vec::new(),
            f64::from(u8::from(gauges.reachable)),
        );
        self.counter_to("titanbay_db_statements_total", gauges.statements.0);
        self.counter_to("titanbay_db_statement_errors_total", gauges.statements.1);
        self.gauge(
            "titanbay_graphql_requests_running",
            Vec::new(),
            gauges.requests.0 as f64,
        );
        self.gauge(
            "titanbay_graphql_requests_waiting",
            Vec::new(),
            gauges.requests.1 as f64,
        );
        self.gauge(
            "titanbay_graphql_max_concurrent_requests",
            Vec::new(),
            gauges.requests.2 as f64,
        );
        self.gauge(
            "titanbay_document_cache_bytes",
            Vec::new(),
            gauges.caches.0 as f64,
        );
        self.gauge(
            "titanbay_apq_cache_bytes",
            Vec::new(),
            gauges.caches.1 as f64,
        );
        self.handle.run_upkeep();
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded_in_number_and_length() {
        let m = Metrics::new(5);
        for i in 0..20 {
            m.record_graphql(Some(&format!("Op{i}")), "ok", Duration::from_millis(1));
        }
        m.record_graphql(Some(&"A".repeat(500_000)), "ok", Duration::from_millis(1));
        m.record_graphql(Some("has space"), "ok", Duration::from_millis(1));
        let text = m.render(&Gauges::default());
        let labels: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("titanbay_graphql_requests_total{"))
            .filter_map(|l| l.split("operation=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(labels.len(), 6, "{labels:?}");
        assert!(labels.contains("other"));
        assert!(text.len() < 20_000, "{} bytes", text.len());
    }

    #[test]
    fn histograms_have_buckets() {
        let m = Metrics::default();
        m.record_graphql(Some("A"), "ok", Duration::from_micros(300));
        m.record_batch("investor", 3);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains(
                "titanbay_graphql_request_duration_seconds_bucket{operation=\"A\",le=\"0.0005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("titanbay_loader_batch_size_bucket{relation=\"investor\",le=\"5\"} 1"),
            "{text}"
        );
        assert!(text.contains("# HELP titanbay_db_reachable"), "{text}");
    }
}
