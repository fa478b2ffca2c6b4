//! Prometheus metrics, served as text at `GET /metrics`: requests by operation and outcome,
//! latency histograms, the database pool (in use, idle, waiting), read statements (running,
//! waiting for a turn), reachability, statements and loader batch sizes.
//!
//! A small hand-written registry (atomics and a mutex per family) rather than a metrics
//! framework: the set of series is fixed and small, and recording stays a few nanoseconds.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::db::Db;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the loader batch-size histogram buckets.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
/// Distinct operation names kept as labels; the rest are counted as `other`.
const MAX_OPERATIONS: usize = 200;

/// A cumulative histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1_000_000.0) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The application's metrics.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// (operation, outcome) → count.
    graphql_requests: Mutex<HashMap<(String, String), u64>>,
    /// operation → latency.
    graphql_latency: Mutex<HashMap<String, std::sync::Arc<Histogram>>>,
    /// (path, status) → count, for every HTTP request.
    http_requests: Mutex<HashMap<(String, u16), u64>>,
    /// relation → batch sizes.
    loader_batches: Mutex<HashMap<&'static str, std::sync::Arc<Histogram>>>,
    /// GraphQL executions validated in full, and those that reused their document's earlier
    /// validation (see `graphql::revalidate`).
    validations_full: AtomicU64,
    validations_reused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            graphql_requests: Mutex::default(),
            graphql_latency: Mutex::default(),
            http_requests: Mutex::default(),
            loader_batches: Mutex::default(),
            validations_full: AtomicU64::new(0),
            validations_reused: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one HTTP request.
    pub fn record_http(&self, path: &str, status: u16) {
        // Only known routes become labels; anything else is one series.
        let path = match path {
            "/graphql" | "/healthz" | "/readyz" | "/metrics" => path,
            _ => "other",
        };
        if let Ok(mut map) = self.http_requests.lock() {
            *map.entry((path.to_owned(), status)).or_default() += 1;
        }
    }

    /// Records one GraphQL operation: its name (`anonymous` when none), outcome (`ok` or the
    /// first error code) and duration.
    pub fn record_graphql(&self, operation: Option<&str>, outcome: &str, duration: Duration) {
        let mut operation = operation
            .filter(|o| !o.is_empty())
            .unwrap_or("anonymous")
            .to_owned();
        let latency = {
            let Ok(mut map) = self.graphql_latency.lock() else {
                return;
            };
            if !map.contains_key(&operation) && map.len() >= MAX_OPERATIONS {
                operation = "other".to_owned();
            }
            std::sync::Arc::clone(
                map.entry(operation.clone())
                    .or_insert_with(|| std::sync::Arc::new(Histogram::new(&LATENCY_BUCKETS))),
            )
        };
        latency.observe(duration.as_secs_f64());
        if let Ok(mut map) = self.graphql_requests.lock() {
            *map.entry((operation, outcome.to_owned())).or_default() += 1;
        }
    }

    /// Records how one GraphQL execution was validated: in full, or reusing its document's
    /// earlier validation (its variables checked only).
    pub fn record_validation(&self, reused: bool) {
        let counter = if reused {
            &self.validations_reused
        } else {
            &self.validations_full
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the size of one loader batch for `relation`.
    pub fn record_batch(&self, relation: &'static str, size: usize) {
        let histogram = match self.loader_batches.lock() {
            Ok(mut map) => std::sync::Arc::clone(
                map.entry(relation)
                    .or_insert_with(|| std::sync::Arc::new(Histogram::new(&BATCH_BUCKETS))),
            ),
            Err(_) => return,
        };
        histogram.observe(size as f64);
    }

    /// The text exposition of every series.
    pub fn render(&self, db: &Db, max_connections: u32) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP titanbay_uptime_seconds Seconds since the server started.\n");
        out.push_str("# TYPE titanbay_uptime_seconds gauge\n");
        let _ = writeln!(
            out,
            "titanbay_uptime_seconds {}",
            self.started.elapsed().as_secs_f64()
        );

        out.push_str("# HELP titanbay_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE titanbay_http_requests_total counter\n");
        if let Ok(map) = self.http_requests.lock() {
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort();
            for ((path, status), count) in rows {
                let _ = writeln!(
                    out,
                    "titanbay_http_requests_total{{path=\"{path}\",status=\"{status}\"}} {count}"
                );
            }
        }

        out.push_str("# HELP titanbay_graphql_validations_total GraphQL executions by validation: full, or reused (the document had passed in full before; only its variables were checked).\n");
        out.push_str("# TYPE titanbay_graphql_validations_total counter\n");
        let _ = writeln!(
            out,
            "titanbay_graphql_validations_total{{mode=\"full\"}} {}",
            self.validations_full.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "titanbay_graphql_validations_total{{mode=\"reused\"}} {}",
            self.validations_reused.load(Ordering::Relaxed)
        );

        out.push_str("# HELP titanbay_graphql_requests_total GraphQL operations by operation name and outcome (ok or the first error code).\n");
        out.push_str("# TYPE titanbay_graphql_requests_total counter\n");
        if let Ok(map) = self.graphql_requests.lock() {
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort();
            for ((operation, outcome), count) in rows {
                let _ = writeln!(
                    out,
                    "titanbay_graphql_requests_total{{operation=\"{}\",outcome=\"{}\"}} {count}",
                    escape(operation),
                    escape(outcome)
                );
            }
        }

        out.push_str("# HELP titanbay_graphql_request_duration_seconds Time to answer a GraphQL operation.\n");
        out.push_str("# TYPE titanbay_graphql_request_duration_seconds histogram\n");
        if let Ok(map) = self.graphql_latency.lock() {
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (operation, histogram) in rows {
                histogram.write(
                    &mut out,
                    "titanbay_graphql_request_duration_seconds",
                    &format!("operation=\"{}\"", escape(operation)),
                );
            }
        }

        out.push_str("# HELP titanbay_loader_batch_size Keys per batched load, by relation.\n");
        out.push_str("# TYPE titanbay_loader_batch_size histogram\n");
        if let Ok(map) = self.loader_batches.lock() {
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (relation, histogram) in rows {
                histogram.write(
                    &mut out,
                    "titanbay_loader_batch_size",
                    &format!("relation=\"{relation}\""),
                );
            }
        }

        let pool = db.conn.get_postgres_connection_pool();
        let size = pool.size() as usize;
        let idle = pool.num_idle();
        out.push_str(
            "# HELP titanbay_db_pool_connections Pooled PostgreSQL connections by state.\n",
        );
        out.push_str("# TYPE titanbay_db_pool_connections gauge\n");
        let _ = writeln!(
            out,
            "titanbay_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        let _ = writeln!(out, "titanbay_db_pool_connections{{state=\"idle\"}} {idle}");
        out.push_str("# HELP titanbay_db_pool_waiting Requests waiting for a pooled connection.\n");
        out.push_str("# TYPE titanbay_db_pool_waiting gauge\n");
        let _ = writeln!(out, "titanbay_db_pool_waiting {}", pool.num_waiting());
        out.push_str("# HELP titanbay_db_pool_max_connections Most connections the pool opens.\n");
        out.push_str("# TYPE titanbay_db_pool_max_connections gauge\n");
        let _ = writeln!(out, "titanbay_db_pool_max_connections {max_connections}");
        out.push_str(
            "# HELP titanbay_db_reads_running Read statements running (DB_MAX_CONCURRENT_READS).\n",
        );
        out.push_str("# TYPE titanbay_db_reads_running gauge\n");
        let _ = writeln!(out, "titanbay_db_reads_running {}", db.reads_running());
        out.push_str(
            "# HELP titanbay_db_reads_waiting Reads waiting for their turn or for an identical read's execution.\n",
        );
        out.push_str("# TYPE titanbay_db_reads_waiting gauge\n");
        let _ = writeln!(out, "titanbay_db_reads_waiting {}", db.reads_waiting());
        out.push_str(
            "# HELP titanbay_db_reads_shared_total Reads answered by an identical read's execution \
             (DB_SHARE_IDENTICAL_READS).\n",
        );
        out.push_str("# TYPE titanbay_db_reads_shared_total counter\n");
        let _ = writeln!(out, "titanbay_db_reads_shared_total {}", db.reads_shared());
        out.push_str("# HELP titanbay_db_reachable 1 when the last probe reached PostgreSQL.\n");
        out.push_str("# TYPE titanbay_db_reachable gauge\n");
        let _ = writeln!(
            out,
            "titanbay_db_reachable {}",
            u8::from(db.health().is_healthy())
        );
        out.push_str(
            "# HELP titanbay_db_statements_total SQL statements executed (failed ones included).\n",
        );
        out.push_str("# TYPE titanbay_db_statements_total counter\n");
        let _ = writeln!(
            out,
            "titanbay_db_statements_total {}",
            db.stats().statements()
        );
        out.push_str(
            "# HELP titanbay_db_statement_errors_total SQL statements that returned an error.\n",
        );
        out.push_str("# TYPE titanbay_db_statement_errors_total counter\n");
        let _ = writeln!(
            out,
            "titanbay_db_statement_errors_total {}",
            db.stats().failed()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_count_everything() {
        let h = Histogram::new(&LATENCY_BUCKETS);
        h.observe(0.0004);
        h.observe(0.003);
        h.observe(20.0);
        let mut out = String::new();
        h.write(&mut out, "x", "operation=\"a\"");
        assert!(
            out.contains("x_bucket{operation=\"a\",le=\"0.0005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{operation=\"a\",le=\"0.005\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{operation=\"a\",le=\"+Inf\"} 3"),
            "{out}"
        );
        assert!(out.contains("x_count{operation=\"a\"} 3"), "{out}");
    }

    #[test]
    fn operation_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..(MAX_OPERATIONS + 10) {
            m.record_graphql(Some(&format!("Op{i}")), "ok", Duration::from_millis(1));
        }
        let map = m.graphql_latency.lock().map(|m| m.len()).unwrap_or(0);
        assert_eq!(map, MAX_OPERATIONS + 1, "the cap plus `other`");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
