//! Logging: a `tracing` subscriber with an `EnvFilter`, as text or one JSON object per line,
//! written to stderr by a background thread (`tracing-appender`): stdout stays free for command
//! output such as `titanbay schema`, and a request never waits for a log write.
//!
//! Every request logs one line when it finishes (`request finished`, or `slow request` as a
//! warning over `SLOW_REQUEST_MS`) carrying the request span's `request_id`, `method`, `path`
//! and `operation` and the event's `status`, `duration_ms` and `error_code`.

use std::io;

use tracing::Subscriber;
pub use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::{LogConfig, LogFormat};

fn filter(cfg: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // PostgreSQL's notices ("relation … already exists, skipping" from the migrator's
        // bookkeeping) are not the operator's business.
        .add_directive(
            "sqlx::postgres::notice=warn"
                .parse()
                .unwrap_or_else(|_| tracing::Level::WARN.into()),
        )
}

/// The subscriber for `cfg`, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(cfg: &LogConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter(cfg));
    match cfg.format {
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Text => Box::new(
            registry.with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        ),
    }
}

/// Installs the global subscriber, writing to stderr through `tracing-appender`'s
/// non-blocking writer: a request never waits for a log write, lines are never dropped (the
/// writer is not lossy: past its buffer of lines, logging waits), and dropping the guard writes
/// what is waiting. `RUST_LOG`, when set, wins over `LOG_LEVEL`. Calling it twice keeps the
/// first subscriber. Keep the returned guard until the program ends.
pub fn init(cfg: &LogConfig) -> Option<WorkerGuard> {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(io::stderr());
    tracing::subscriber::set_global_default(subscriber(cfg, writer))
        .ok()
        .map(|()| guard)
}
