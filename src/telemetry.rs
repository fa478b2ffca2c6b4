//! Logging: a `tracing` subscriber with an `EnvFilter`, as text or one JSON object per line,
//! written to stderr by a background thread (stdout stays free for command output such as
//! `titanbay schema`, and a request never waits for a log write).

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

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

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `LOG_LEVEL`. Calling it
/// twice keeps the first subscriber. Keep the returned guard until the program ends.
pub fn init(cfg: &LogConfig) -> LogGuard {
    // Never drop lines: when the buffer is full, the writer waits instead.
    let (writer, guard): (NonBlocking, WorkerGuard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter(cfg));
    let installed = match cfg.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .try_init(),
    };
    LogGuard {
        _writer: installed.ok().map(|()| guard),
    }
}
