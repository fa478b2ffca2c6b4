//! Closed-loop load driver: `--concurrency` connections each send the next request as soon as
//! the previous answer arrives, for `--warmup` then `--duration`, and report throughput,
//! latency percentiles (HDR histogram), errors and the peak RSS of a process.
//!
//! A request body is a template: `{{FUND}}` and `{{INVESTOR}}` are replaced by random lines of
//! `--funds` / `--investors`, `{{UUID}}` by a fresh UUIDv7. A response counts as an error
//! unless it is HTTP 200 without an `"errors"` key.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Closed-loop GraphQL load driver.
#[derive(Debug, Parser, Clone)]
struct Args {
    /// Endpoint, e.g. http://127.0.0.1:8000/graphql.
    #[arg(long)]
    url: String,
    /// File with the JSON body template.
    #[arg(long)]
    body: String,
    /// File with one fund id per line (for `{{FUND}}`).
    #[arg(long)]
    funds: Option<String>,
    /// File with one investor id per line (for `{{INVESTOR}}`).
    #[arg(long)]
    investors: Option<String>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of warm-up (not recorded).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds recorded.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Process whose resident memory is sampled during the recorded period.
    #[arg(long)]
    pid: Option<u32>,
    /// Driver threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Bearer token sent as `Authorization: Bearer <token>` (for a server with auth on).
    #[arg(long)]
    token: Option<String>,
    /// Send a fresh `Idempotency-Key` with every request (what a retry-safe client does).
    #[arg(long)]
    idempotency_keys: bool,
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    Ok(Target {
        host: host.to_owned(),
        port: port.parse()?,
        path: format!("/{path}"),
    })
}

fn read_lines(path: &Option<String>) -> anyhow::Result<Vec<String>> {
    match path {
        None => Ok(Vec::new()),
        Some(p) => Ok(std::fs::read_to_string(p)
            .with_context(|| format!("reading {p}"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
    }
}

fn render(template: &str, funds: &[String], investors: &[String]) -> String {
    let mut body = template.to_owned();
    if body.contains("{{FUND}}") && !funds.is_empty() {
        body = body.replace("{{FUND}}", &funds[fastrand::usize(..funds.len())]);
    }
    if body.contains("{{INVESTOR}}") && !investors.is_empty() {
        body = body.replace(
            "{{INVESTOR}}",
            &investors[fastrand::usize(..investors.len())],
        );
    }
    if body.contains("{{UUID}}") {
        body = body.replace("{{UUID}}", &uuid::Uuid::now_v7().to_string());
    }
    body
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

struct Shared {
    recording: AtomicBool,
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    /// Unique to this run (idempotency keys must not repeat across runs).
    run_id: u128,
    /// Idempotency keys handed out.
    keys: AtomicU64,
}

/// The request's bytes: HTTP/1.1 head and body, written with one `write_all`.
fn request_bytes(
    target: &Target,
    authorization: Option<&str>,
    key: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {}:{}\r\ncontent-type: application/json\r\naccept: application/json\r\ncontent-length: {}\r\n",
        target.path,
        target.host,
        target.port,
        body.len()
    );
    if let Some(authorization) = authorization {
        head.push_str("authorization: ");
        head.push_str(authorization);
        head.push_str("\r\n");
    }
    if let Some(key) = key {
        head.push_str("idempotency-key: ");
        head.push_str(key);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// One parsed response: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (`content-length` or `chunked` body) from `stream`, keeping
/// bytes of a following response in `buf`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Answer> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    buf.drain(..head_end);
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                fill(stream, buf).await?;
            };
            let size = std::str::from_utf8(&buf[..line_end])?
                .split(';')
                .next()
                .map(str::trim)
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .context("bad chunk size")?;
            while buf.len() < line_end + 2 + size + 2 {
                fill(stream, buf).await?;
            }
            body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let length = length.context("response without content-length")?;
        while buf.len() < length {
            fill(stream, buf).await?;
        }
        buf.drain(..length).collect()
    };
    Ok(Answer { status, body })
}

/// Appends what the socket has to `buf`; an error at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(16 * 1024);
    if stream.read_buf(buf).await? == 0 {
        anyhow::bail!("connection closed by the server");
    }
    Ok(())
}

/// One client: a keep-alive connection sending its next request when the answer arrives.
///
/// HTTP/1.1 is written and parsed by hand (as `wrk` does) so that the driver, which shares the
/// machine with the systems it measures, costs as little CPU per request as possible.
async fn user(
    args: Arc<Args>,
    target: Arc<Target>,
    template: Arc<String>,
    funds: Arc<Vec<String>>,
    investors: Arc<Vec<String>>,
    shared: Arc<Shared>,
) -> anyhow::Result<Histogram<u64>> {
    let authorization = args.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    stream.set_nodelay(true)?;
    let templated = template.contains("{{") || args.idempotency_keys;
    let fixed = request_bytes(&target, authorization.as_deref(), None, &template);
    let mut buf = Vec::with_capacity(64 * 1024);
    while !shared.stop.load(Ordering::Relaxed) {
        let rendered;
        let request = if templated {
            let key = args.idempotency_keys.then(|| {
                format!(
                    "bench-{}-{}",
                    shared.run_id,
                    shared.keys.fetch_add(1, Ordering::Relaxed)
                )
            });
            rendered = request_bytes(
                &target,
                authorization.as_deref(),
                key.as_deref(),
                &render(&template, &funds, &investors),
            );
            &rendered
        } else {
            &fixed
        };
        let started = Instant::now();
        stream.write_all(request).await?;
        let answer = read_response(&mut stream, &mut buf).await?;
        let elapsed = started.elapsed();
        if shared.recording.load(Ordering::Relaxed) {
            histogram.saturating_record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            let failed = answer.status != 200 || answer.body.windows(8).any(|w| w == b"\"errors\"");
            if failed {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = shared
                    .first_error
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?;
                if first.is_none() {
                    *first = Some(format!(
                        "{}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                    ));
                }
            }
        }
    }
    Ok(histogram)
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    // One thread by default: every client is a task on it, as cheap as a load generator gets.
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Arc<Args>) -> anyhow::Result<()> {
    let target = Arc::new(parse_url(&args.url)?);
    let template = Arc::new(
        std::fs::read_to_string(&args.body).with_context(|| format!("reading {}", args.body))?,
    );
    let funds = Arc::new(read_lines(&args.funds)?);
    let investors = Arc::new(read_lines(&args.investors)?);
    let shared = Arc::new(Shared {
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
        run_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        keys: AtomicU64::new(0),
    });
    let users: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(user(
                Arc::clone(&args),
                Arc::clone(&target),
                Arc::clone(&template),
                Arc::clone(&funds),
                Arc::clone(&investors),
                Arc::clone(&shared),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    shared.recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before = (args.pid.and_then(process_cpu_ticks), machine_cpu_ticks());
    let driver_before = process_cpu_ticks(std::process::id());
    let mut peak_rss = 0u64;
    let end = started + Duration::from_secs_f64(args.duration);
    while Instant::now() < end {
        if let Some(pid) = args.pid {
            peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
        }
        tokio::time::sleep(
            Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    shared.recording.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = (args.pid.and_then(process_cpu_ticks), machine_cpu_ticks());
    let driver_after = process_cpu_ticks(std::process::id());
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failures = Vec::new();
    for u in users {
        match u.await? {
            Ok(h) => total.add(h)?,
            Err(e) => failures.push(e.to_string()),
        }
    }
    let requests = total.len();
    // CPU the server used per request, and its share of all the CPU the machine was busy with
    // (server, PostgreSQL, this driver): how much of the box the server itself costs.
    let (server_cpu_us, server_share) = match (cpu_before, cpu_after) {
        ((Some(p0), Some((busy0, _))), (Some(p1), Some((busy1, _)))) if requests > 0 => {
            let server = p1.saturating_sub(p0) as f64;
            let busy = busy1.saturating_sub(busy0).max(1) as f64;
            (
                Some(server * 1e6 / CLOCK_TICKS_PER_SEC / requests as f64),
                Some(server / busy),
            )
        }
        _ => (None, None),
    };
    let machine_busy = match (cpu_before.1, cpu_after.1) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    };
    // The driver's own CPU per request: what it takes from the systems it measures.
    let driver_cpu_us = match (driver_before, driver_after) {
        (Some(d0), Some(d1)) if requests > 0 => {
            Some(d1.saturating_sub(d0) as f64 * 1e6 / CLOCK_TICKS_PER_SEC / requests as f64)
        }
        _ => None,
    };
    let errors = shared.errors.load(Ordering::Relaxed) + failures.len() as u64;
    let report = serde_json::json!({
        "requests": requests,
        "errors": errors,
        "rps": requests as f64 / elapsed,
        "p50_ms": total.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_ms": total.value_at_quantile(0.99) as f64 / 1000.0,
        "max_ms": total.max() as f64 / 1000.0,
        "peak_rss_kib": peak_rss,
        "server_cpu_us_per_req": server_cpu_us,
        "server_cpu_share": server_share,
        "machine_busy": machine_busy,
        "driver_cpu_us_per_req": driver_cpu_us,
        "first_error": shared.first_error.lock().ok().and_then(|e| e.clone()).or_else(|| failures.first().cloned()),
    });
    println!("{report}");
    Ok(())
}

/// Linux's `USER_HZ` (the unit of `/proc` CPU times) on every mainstream architecture.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU time of a process, in clock ticks.
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's busy and total CPU time, in clock ticks (from `/proc/stat`).
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}
