//! Logging: a `tracing` subscriber with an `EnvFilter`, as text or one JSON object per line,
//! written to stderr by a background thread (stdout stays free for command output such as
//! `titanbay schema`, and a request never waits for a log write).
//!
//! Every request logs one line when it finishes (`request finished`, or `slow request` as a
//! warning over `SLOW_REQUEST_MS`) carrying the request span's `request_id`, `method`, `path`
//! and `operation` and the event's `status`, `duration_ms` and `error_code`.

use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// Keeps the log writer thread alive; dropping it flushes what is buffered.
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

fn filter(cfg: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
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

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `LOG_LEVEL`. Calling it
/// twice keeps the first subscriber. Keep the returned guard until the program ends.
pub fn init(cfg: &LogConfig) -> LogGuard {
    // Never drop lines: when the buffer is full, the writer waits instead. The writer thread
    // flushes whenever it has written every line waiting for it, so a line reaches stderr as
    // soon as it is alone; under load, the lines waiting go out in one write system call
    // instead of one each (stderr itself is unbuffered).
    let (writer, guard) =
        NonBlockingBuilder::default()
            .lossy(false)
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stderr(),
            ));
    let installed = tracing::subscriber::set_global_default(subscriber(cfg, writer));
    LogGuard {
        _writer: installed.ok().map(|()| guard),
    }
}
