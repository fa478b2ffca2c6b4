//! The `titanbay` binary: `serve` (default), `migrate`, `seed`, `schema`, `postgres`,
//! `check-totals` and `token`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use titanbay::{
    auth::{self, Scope, TokenRequest},
    config::Config,
    db, graphql, seed, service,
    startup::{Application, resolve_database, shutdown_signal},
    telemetry,
};

/// mimalloc: measurably faster than the system allocator for the many small, short-lived
/// allocations of parsing, resolving and serialising requests (see bench/README.md). Its v2
/// (the `v2` feature) returns freed memory to the system after 10 ms where v3 waits a
/// second: 8–11 MiB less resident memory under load, at the same speed when measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The environment variables `--help` names (the README's configuration table has them all,
/// with their defaults).
const ENVIRONMENT: &str = "\
Configuration comes from environment variables (every one has a default; README.md lists all):
  DATABASE_URL        PostgreSQL URL (unset: a server-owned PostgreSQL in LOCAL_PG_DIR)
  LOCAL_PG_DIR        data folder of the server-owned PostgreSQL (default .titanbay)
  PG_BIN_DIR          folder with initdb and postgres (default: the newest installed)
  HOST, PORT          address to serve on (default 127.0.0.1:8000)
  APP_ENV             development (default) or production
  AUTH_HS256_SECRET   HS256 key (or AUTH_JWKS_FILE / AUTH_JWKS_URL), with AUTH_ISSUER and
                      AUTH_AUDIENCE: turns bearer-token authentication on
  LOG_LEVEL           e.g. info or titanbay=debug (RUST_LOG wins); LOG_FORMAT text or json
  GRAPHIQL            serve the playground on GET /graphql (default on, off in production)
  MAX_QUERY_DEPTH, MAX_QUERY_COMPLEXITY, MAX_PAGE_SIZE, MAX_BODY_BYTES, …: request limits";

/// Titanbay private-markets GraphQL API.
#[derive(Debug, Parser)]
#[command(version, about, after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending migrations (or roll back with `--down`) and exit.
    Migrate {
        /// Roll back this many migrations instead of applying.
        #[arg(long, value_name = "STEPS")]
        down: Option<u32>,
    },
    /// Insert the demo data set (idempotent) and exit.
    Seed,
    /// Print the GraphQL schema (SDL) to stdout: `titanbay schema > schema.graphql`.
    Schema,
    /// Run only the server-owned PostgreSQL (for psql, benchmarks or other tools), print its
    /// URL, and stop it on Ctrl-C or SIGTERM.
    Postgres,
    /// Recount every kept total (per fund, per investor, per fund and investor) from the rows
    /// and list the differences; exits with status 1 when there are any.
    CheckTotals {
        /// Rewrite the totals from the rows (after a bulk load made outside the API); writes
        /// of investments wait meanwhile, reads do not.
        #[arg(long)]
        repair: bool,
    },
    /// Convert `investments` to hash partitions by `fund_id`, in one transaction that holds
    /// the table locked (a maintenance window: reads and writes of investments wait), checking
    /// that every row arrived; does nothing when it is partitioned already.
    PartitionInvestments {
        /// How many hash partitions.
        #[arg(long, default_value_t = service::partition::DEFAULT_PARTITIONS)]
        partitions: u32,
    },
    /// Mint a development bearer token (HS256) from `AUTH_HS256_SECRET`, `AUTH_ISSUER` and
    /// `AUTH_AUDIENCE`, and print it to stdout.
    Token {
        /// Scopes, separated by spaces or commas (default: every scope).
        #[arg(long)]
        scopes: Option<String>,
        /// The token's subject (recorded in the audit trail).
        #[arg(long, default_value = "developer")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// Runs the command; an error is printed as one line of causes (never a backtrace) and the
/// process exits with status 1.
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    let config = Config::from_env()?;
    if let Some(Command::Token {
        scopes,
        subject,
        ttl,
    }) = &cli.command
    {
        let scopes = match scopes {
            Some(list) => auth::parse_scopes(list).map_err(anyhow::Error::msg)?,
            None => Scope::ALL.to_vec(),
        };
        let (Some(secret), Some(issuer), Some(audience)) = (
            &config.auth.hs256_secret,
            &config.auth.issuer,
            &config.auth.audience,
        ) else {
            anyhow::bail!("set AUTH_HS256_SECRET, AUTH_ISSUER and AUTH_AUDIENCE to mint a token");
        };
        let token = auth::mint_hs256(
            secret,
            &TokenRequest {
                issuer,
                audience,
                subject,
                scopes: &scopes,
                ttl: std::time::Duration::from_secs(*ttl),
            },
        )
        .map_err(anyhow::Error::msg)?;
        println!("{token}");
        return Ok(());
    }
    let _log_guard = telemetry::init(&config.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate { down } => {
            let target = resolve_database(&config).await?;
            db::wait_until_reachable(&config.database, &target.url).await?;
            let conn = db::tool_connection(config.database.direct_url(&target.url)).await?;
            let result = match down {
                Some(steps) => Migrator::down(&conn, Some(steps)).await,
                None => Migrator::up(&conn, None).await,
            };
            let _ = conn.close().await;
            target.stop().await;
            result.context("running migrations")?;
            tracing::info!("migrations done");
            Ok(())
        }
        Command::Seed => {
            let target = resolve_database(&config).await?;
            db::wait_until_reachable(&config.database, &target.url).await?;
            let conn = db::tool_connection(config.database.direct_url(&target.url)).await?;
            let result = async {
                Migrator::up(&conn, None).await?;
                seed::seed(&conn).await
            }
            .await;
            let _ = conn.close().await;
            target.stop().await;
            let report = result.context("seeding")?;
            tracing::info!(
                funds = report.funds,
                investors = report.investors,
                investments = report.investments,
                "demo data inserted (rows already present were kept)"
            );
            Ok(())
        }
        Command::PartitionInvestments { partitions } => {
            let target = resolve_database(&config).await?;
            db::wait_until_reachable(&config.database, &target.url).await?;
            let result = partition_investments(&config, &target.url, partitions).await;
            target.stop().await;
            result
        }
        Command::CheckTotals { repair } => {
            let target = resolve_database(&config).await?;
            db::wait_until_reachable(&config.database, &target.url).await?;
            let result = check_totals(&config, &target.url, repair).await;
            target.stop().await;
            result
        }
        Command::Postgres => {
            let mut config = config;
            config.database.url = None;
            let target = resolve_database(&config).await?;
            println!("{}", target.url);
            tracing::info!(url = %target.url, "PostgreSQL is running; Ctrl-C stops it");
            shutdown_signal().await;
            target.stop().await;
            Ok(())
        }
        Command::Schema | Command::Token { .. } => Ok(()),
    }
}

/// `titanbay check-totals [--repair]`: the differences, one per line on stdout (the first
/// [`DIFFERENCES_SHOWN`]), and an error when any remain.
/// `titanbay partition-investments`: on the direct URL, one connection.
async fn partition_investments(config: &Config, url: &str, partitions: u32) -> anyhow::Result<()> {
    let mut database = config.database.clone();
    database.min_connections = 1;
    database.max_connections = 1;
    database.pooler = titanbay::config::PoolerMode::None;
    let db = db::Db::connect(&database, config.database.direct_url(url))
        .await
        .context("connecting to PostgreSQL")?;
    let started = std::time::Instant::now();
    match service::partition::partition_investments(&db, partitions)
        .await
        .context("partitioning investments (nothing was changed)")?
    {
        service::partition::Converted::Now { rows, partitions } => tracing::info!(
            rows,
            partitions,
            seconds = started.elapsed().as_secs_f64(),
            "investments are hash-partitioned by fund_id; every row was checked"
        ),
        service::partition::Converted::Already => {
            tracing::info!("investments are partitioned already; nothing changed")
        }
    }
    db.close();
    Ok(())
}

async fn check_totals(config: &Config, url: &str, repair: bool) -> anyhow::Result<()> {
    let mut database = config.database.clone();
    database.min_connections = 1;
    database.max_connections = 2;
    let db = db::Db::connect(&database, url)
        .await
        .context("connecting to PostgreSQL")?;
    let differences = service::totals::check(&db)
        .await
        .context("recounting the totals")?;
    for difference in differences.iter().take(DIFFERENCES_SHOWN) {
        println!("{difference}");
    }
    if differences.len() > DIFFERENCES_SHOWN {
        println!("… and {} more", differences.len() - DIFFERENCES_SHOWN);
    }
    if differences.is_empty() {
        tracing::info!("every kept total equals the rows");
        return Ok(());
    }
    if !repair {
        anyhow::bail!(
            "{} kept totals differ from the rows (`titanbay check-totals --repair` rewrites them)",
            differences.len()
        );
    }
    service::totals::repair(&db)
        .await
        .context("rewriting the totals")?;
    let left = service::totals::check(&db)
        .await
        .context("recounting the totals")?;
    if !left.is_empty() {
        anyhow::bail!("{} kept totals still differ after the repair", left.len());
    }
    tracing::info!(
        repaired = differences.len(),
        "the kept totals were rewritten from the rows"
    );
    Ok(())
}

/// How many differences `check-totals` prints.
const DIFFERENCES_SHOWN: usize = 100;
