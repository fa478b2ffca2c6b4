//! The rate a bare sqlx client reaches on one workload's raw statement: no HTTP, no GraphQL,
//! only N tokio tasks running the statement on an N-connection pool, prepared, with the same
//! session setting as titanbay's connections. Set beside pgbench's rate for the same script, it
//! shows how much of the raw-SQL ceiling any server on this stack (tokio, sqlx) leaves to
//! itself on a small machine.
//!
//! ```sh
//! target/release/sqlx-ceiling --url "$URL" --sql bench/pgbench/w1.sql --param "$FUND_ID"
//! ```
//!
//! Prints one JSON object: statements per second, and this process's CPU per statement.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[derive(Parser)]
struct Args {
    /// PostgreSQL URL (the benchmark database).
    #[arg(long)]
    url: String,
    /// A pgbench script of one statement with one `:name` parameter (comments and the final
    /// semicolon are dropped); the parameter is bound as a UUID.
    #[arg(long)]
    sql: std::path::PathBuf,
    /// The UUID bound to the statement's parameter.
    #[arg(long)]
    param: uuid::Uuid,
    /// Tasks, and connections in the pool.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Seconds before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5)]
    duration: u64,
}

/// The statement of a pgbench script, with its one `:name` variable as `$1`.
fn statement(script: &str) -> anyhow::Result<String> {
    let text: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let text = text.join("\n");
    let text = text.trim().trim_end_matches(';');
    let Some(start) = text.find(':') else {
        bail!("the script has no :parameter");
    };
    let end = text[start + 1..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(text.len(), |e| start + 1 + e);
    Ok(format!("{}$1{}", &text[..start], &text[end..]))
}

/// This process's user + system CPU time.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .context("malformed /proc/self/stat")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // The kernel's USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sql: &'static str =
        Box::leak(statement(&std::fs::read_to_string(&args.sql)?)?.into_boxed_str());
    let options =
        PgConnectOptions::from_str(&args.url)?.options([("plan_cache_mode", "force_generic_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(args.concurrency)
        .min_connections(args.concurrency)
        .connect_with(options)
        .await?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (pool, count, stop) = (pool.clone(), Arc::clone(&count), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(args.param)
                    .fetch_all(&pool)
                    .await?;
                if rows.is_empty() {
                    bail!("the statement returned no row");
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (start, cpu_start, count_start) =
        (Instant::now(), cpu_time()?, count.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let (elapsed, cpu, done) = (
        start.elapsed(),
        cpu_time()? - cpu_start,
        count.load(Ordering::Relaxed) - count_start,
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let done = done.max(1);
    println!(
        "{}",
        serde_json::json!({
            "statements_per_s": (done as f64 / elapsed.as_secs_f64()).round(),
            "client_cpu_us_per_statement": (cpu.as_secs_f64() * 1e6 / done as f64).round(),
        })
    );
    Ok(())
}
