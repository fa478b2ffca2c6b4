//! Logging: a `tracing` subscriber with an `EnvFilter`, as text or one JSON object per line,
//! written to stderr in batches by a background thread (stdout stays free for command output
//! such as `titanbay schema`, and a request never waits for a log write).
//!
//! Every request logs one line when it finishes (`request finished`, or `slow request` as a
//! warning over `SLOW_REQUEST_MS`) carrying the request span's `request_id`, `method`, `path`
//! and `operation` and the event's `status`, `duration_ms` and `error_code`.

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// How long a line may wait in memory before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Waiting lines are written as soon as there are this many bytes of them.
const FLUSH_BYTES: usize = 64 * 1024;
/// Past this many waiting bytes (stderr not keeping up), the logging thread writes them itself:
/// lines are never dropped, and memory stays bounded.
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// Keeps the log writer thread alive; dropping it writes what is waiting.
pub struct LogGuard {
    writer: Option<(Arc<Batch>, JoinHandle<()>)>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((batch, thread)) = self.writer.take() {
            batch.lock_lines().closed = true;
            batch.wake.notify_one();
            let _ = thread.join();
        }
    }
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
    let (writer, guard) = batched(io::stderr());
    match tracing::subscriber::set_global_default(subscriber(cfg, writer)) {
        Ok(()) => guard,
        Err(_) => LogGuard { writer: None },
    }
}

/// A writer for [`subscriber`] that batches lines on their way to `output`, and the guard
/// that keeps its thread (dropping the guard writes what is waiting and ends the thread).
pub fn batched(output: impl Write + Send + 'static) -> (BatchWriter, LogGuard) {
    let batch = Arc::new(Batch {
        lines: Mutex::default(),
        wake: Condvar::new(),
        output: Mutex::new(Box::new(output)),
    });
    let worker = batch.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || worker.run())
        .ok();
    // Without the thread, lines pile up to `MAX_BYTES` and are then written by the threads
    // that log them: slower, but nothing is lost.
    let guard = LogGuard {
        writer: thread.map(|thread| (batch.clone(), thread)),
    };
    (BatchWriter(batch), guard)
}

/// Log lines waiting to be written to stderr.
///
/// `tracing-appender`'s non-blocking writer, used before, hands every line to its thread
/// through a channel and so wakes that thread for nearly every line under load: a system call
/// to wake it, a context switch, and a `write` per request, on a machine whose cores the
/// database shares. Here lines are appended to one buffer under a mutex and the thread writes
/// them every `FLUSH_INTERVAL` (or at `FLUSH_BYTES`), in one `write` for many lines.
struct Batch {
    lines: Mutex<Lines>,
    wake: Condvar,
    /// Locked while a batch is taken and written, so that batches go out in order.
    output: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// The writer thread sleeps until the next line (nothing waiting).
    idle: bool,
    closed: bool,
}

impl Batch {
    fn lock_lines(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) {
        let mut lines = self.lock_lines();
        let before = lines.buf.len();
        lines.buf.extend_from_slice(line);
        let after = lines.buf.len();
        let wake =
            std::mem::take(&mut lines.idle) || (before < FLUSH_BYTES && after >= FLUSH_BYTES);
        drop(lines);
        if wake {
            self.wake.notify_one();
        }
        if after >= MAX_BYTES {
            self.write_out();
        }
    }

    /// Writes everything waiting, in one `write` where the system allows.
    fn write_out(&self) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut self.lock_lines().buf);
        if !batch.is_empty() {
            // A failed write has nowhere to be reported but the log itself.
            let _ = output.write_all(&batch);
            let _ = output.flush();
        }
    }

    /// The writer thread: sleeps while nothing waits; once a line arrives, lets more gather for
    /// up to `FLUSH_INTERVAL` and writes them all.
    fn run(&self) {
        let mut lines = self.lock_lines();
        while !lines.closed {
            if lines.buf.is_empty() {
                lines.idle = true;
                lines = self
                    .wake
                    .wait(lines)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if lines.buf.len() < FLUSH_BYTES {
                lines = self
                    .wake
                    .wait_timeout(lines, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(lines);
            self.write_out();
            lines = self.lock_lines();
        }
        drop(lines);
        self.write_out();
    }
}

/// The `MakeWriter` handed to the subscriber: every formatted line goes to the batch.
pub struct BatchWriter(Arc<Batch>);

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> LineSink<'a> {
        LineSink(&self.0)
    }
}

/// One formatted line (the subscriber writes each line with one `write_all`).
#[doc(hidden)]
pub struct LineSink<'a>(&'a Batch);

impl Write for LineSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.append(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An output the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_when_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        let writer = Arc::new(writer);
        // 4 × 20,000 lines of about 60 bytes: several times `MAX_BYTES`, so the logging
        // threads also write batches themselves.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!("thread {t} line {i:>6} {}\n", "x".repeat(32));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.len(), 5, "a whole line: {line}");
            let (t, i): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (writer, _guard) = batched(sink.clone());
        writer.make_writer().write_all(b"alone\n").unwrap();
        // The writer thread writes it on its own, guard still held; polled for up to 10 s.
        for _ in 0..1_000 {
            if sink.0.lock().unwrap().as_slice() == b"alone\n" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the line was not written");
    }
}
