//! Logging: a `tracing` subscriber with an `EnvFilter`, as text or one JSON object per line,
//! written to stderr by a background thread (`tracing-appender`): stdout stays free for command
//! output such as `titanbay schema`, and a request never waits for a log write.
//!
//! Every request logs one line when it finishes (`request finished`, or `slow request` as a
//! warning over `SLOW_REQUEST_MS`) carrying the request span's `request_id`, `method`, `path`
//! and `operation` and the event's `status`, `duration_ms` and `error_code`.

use std::{io, time::Duration};

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

/// Lines waiting for the writer thread at most; past them, logging waits (nothing is dropped).
/// At about 300 bytes a line, a few MiB.
const LINES_WAITING: usize = 16 * 1024;

/// How long the writer thread lets lines gather after writing a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Bytes gathered before they are written even within a batch.
const BATCH_BYTES: usize = 64 * 1024;

/// The writer behind `tracing-appender`'s thread: it gathers the lines of a batch and writes
/// them with one `write`, then waits [`BATCH_WINDOW`] before the thread takes the next batch.
///
/// `tracing-appender`'s thread writes every line it receives and flushes when the channel is
/// empty, and a line sent while the thread waits on the channel wakes it. Under load that was
/// a wake-up, a context switch and a `write` for nearly every request, on the cores PostgreSQL
/// shares: measured, the request log cost about 10 % of the requests per second of a
/// one-statement read and 0.5 ms of its p99 (bench/README.md). Waiting here after each batch
/// lets lines gather in the channel without waking anyone; a line is written at most
/// [`BATCH_WINDOW`] after it is logged (plus the batch's own write).
struct Batched<W: io::Write> {
    out: W,
    buffer: Vec<u8>,
}

impl<W: io::Write> io::Write for Batched<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= BATCH_BYTES {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(bytes.len())
    }

    /// Called by the thread once the channel is empty: writes the batch, then waits.
    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return self.out.flush();
        }
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        self.out.flush()?;
        std::thread::sleep(BATCH_WINDOW);
        Ok(())
    }
}

/// Installs the global subscriber, writing to stderr through `tracing-appender`'s
/// non-blocking writer: a request never waits for a log write, lines are never dropped (the
/// writer is not lossy: past [`LINES_WAITING`] lines, logging waits), they are written in
/// batches ([`Batched`]), and dropping the guard writes what is waiting. `RUST_LOG`, when set,
/// wins over `LOG_LEVEL`. Calling it twice keeps the first subscriber. Keep the returned guard
/// until the program ends.
pub fn init(cfg: &LogConfig) -> Option<WorkerGuard> {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LINES_WAITING)
        .finish(Batched {
            out: io::stderr(),
            buffer: Vec::with_capacity(BATCH_BYTES),
        });
    tracing::subscriber::set_global_default(subscriber(cfg, writer))
        .ok()
        .map(|()| guard)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Counts the writes that reach it.
    #[derive(Default)]
    struct Counting {
        writes: usize,
        bytes: Vec<u8>,
    }

    impl io::Write for Counting {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_of_lines_is_one_write_and_a_full_buffer_is_written_at_once() -> io::Result<()> {
        let mut batched = Batched {
            out: Counting::default(),
            buffer: Vec::new(),
        };
        for n in 0..100 {
            batched.write_all(format!("line {n}\n").as_bytes())?;
        }
        assert_eq!(batched.out.writes, 0);
        let started = std::time::Instant::now();
        batched.flush()?;
        assert!(started.elapsed() >= BATCH_WINDOW);
        assert_eq!(batched.out.writes, 1);
        assert!(batched.out.bytes.starts_with(b"line 0\nline 1\n"));
        assert!(batched.out.bytes.ends_with(b"line 99\n"));

        let line = vec![b'x'; 1024];
        for _ in 0..(BATCH_BYTES / line.len()) {
            batched.write_all(&line)?;
        }
        assert_eq!(batched.out.writes, 2, "written once the buffer is full");
        assert!(batched.buffer.is_empty());
        Ok(())
    }
}
