//! Typed configuration, read once from the environment at start and passed down.
//!
//! Every setting has a documented default (the README's configuration table lists them), so
//! `cargo run` needs none. Parsing goes through a lookup function so tests can build a config
//! without touching the process environment.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

/// Deployment mode: development is permissive and chatty, production is locked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local development (the default).
    Development,
    /// Production: introspection and GraphiQL default to off.
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `development` (default) or `production`.
    pub app_env: AppEnv,
    /// `HOST`: address to bind (default `127.0.0.1`).
    pub host: IpAddr,
    /// `PORT`: port to bind (default `8000`; `0` picks a free one).
    pub port: u16,
    /// Database settings.
    pub database: DatabaseConfig,
    /// Settings of the server-owned PostgreSQL used when `DATABASE_URL` is unset.
    pub local_pg: LocalPgConfig,
    /// Logging.
    pub log: LogConfig,
    /// Request limits.
    pub limits: Limits,
    /// Connection limits.
    pub http: HttpLimits,
    /// `GRAPHIQL`: serve the GraphiQL playground on `GET /graphql` (default on, off in
    /// production).
    pub graphiql: bool,
    /// `GRAPHQL_INTROSPECTION`: answer introspection queries (default on, off in production).
    pub introspection: bool,
    /// Authentication.
    pub auth: AuthConfig,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins browsers may call from (default none).
    pub cors_allowed_origins: Vec<String>,
    /// `APQ`: automatic persisted queries (default on).
    pub apq: bool,
    /// `TRUSTED_DOCUMENTS`: a JSON file of trusted documents (`{"id": "document"}` or an Apollo
    /// persisted-query manifest), runnable by `documentId`.
    pub trusted_documents: Option<PathBuf>,
    /// `TRUSTED_DOCUMENTS_ONLY`: run nothing but the trusted documents (default off).
    pub trusted_documents_only: bool,
    /// `METRICS`: serve Prometheus metrics at `GET /metrics` (default on).
    pub metrics: bool,
    /// `METRICS_MAX_OPERATIONS`: distinct operation names kept as metric labels; others are
    /// counted as `other` (default 200).
    pub metrics_max_operations: usize,
    /// `GRAPHQL_FAST_PATH`: build list items and objects looked up by id whose fields are all
    /// in memory without going through one resolver per field (default on; off is for
    /// comparison and troubleshooting).
    pub graphql_fast_path: bool,
}

/// Database connection and pool settings (the design guide's pool values by default).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: a PostgreSQL URL; unset means "start a server-owned local PostgreSQL".
    pub url: Option<String>,
    /// `DB_MIN_CONNECTIONS`: connections kept open (default 10).
    pub min_connections: u32,
    /// `DB_MAX_CONNECTIONS`: most connections, for bursts (default 30).
    pub max_connections: u32,
    /// `DB_MAX_CONCURRENT_READS`: read statements of the hot path (pages, lists, lookups by
    /// id) running on PostgreSQL at once; more wait their turn (default 3 per CPU core; 0: no
    /// limit). Writes are not counted: they mostly wait for their commit's flush.
    pub max_concurrent_reads: usize,
    /// `DB_MAX_CONCURRENT_WRITES`: write statements and transactions holding a connection at
    /// once; more wait their turn (default: the pool size minus the reads' share, so writes
    /// queued on one row lock never take every connection).
    pub max_concurrent_writes: Option<usize>,
    /// `DB_ACQUIRE_TIMEOUT_SECS`: longest wait for a free pooled connection (default 30).
    pub acquire_timeout: Duration,
    /// `DB_CONNECT_TIMEOUT_SECS`: longest wait to open one connection (default 3).
    pub connect_timeout: Duration,
    /// `DB_MAX_LIFETIME_SECS`: connections are recycled after this (default 1800).
    pub max_lifetime: Duration,
    /// `DB_IDLE_TIMEOUT_SECS`: connections beyond the minimum idle this long are closed
    /// (default 600).
    pub idle_timeout: Duration,
    /// `DB_PING_IDLE_SECS`: a pooled connection idle at least this long is pinged before reuse
    /// (default 1; `0` pings on every checkout).
    pub ping_idle_after: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: PostgreSQL `statement_timeout` on every connection (default
    /// 5000; `0` disables it).
    pub statement_timeout: Duration,
    /// `DB_STARTUP_RETRY_SECS`: how long to retry connecting at start (default 60).
    pub startup_retry: Duration,
    /// `RUN_MIGRATIONS`: apply pending migrations at start (default true).
    pub run_migrations: bool,
    /// `DB_POOLER`: `none` (default) or `transaction`, for a connection pooler such as
    /// PgBouncer in transaction mode in front of PostgreSQL.
    pub pooler: PoolerMode,
    /// `DATABASE_LISTEN_URL`: a direct connection to PostgreSQL, past any pooler (default
    /// `DATABASE_URL`). Migrations and the command-line tools use it, and so will `LISTEN`,
    /// which a pooler in transaction mode cannot carry.
    pub listen_url: Option<String>,
}

/// What sits between the server and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerMode {
    /// A direct connection: statements stay prepared on their connection.
    None,
    /// A pooler in transaction mode: no state may outlive a transaction.
    Transaction,
}

impl DatabaseConfig {
    /// The direct URL to PostgreSQL: `DATABASE_LISTEN_URL`, or `url` (the server's).
    pub fn direct_url<'a>(&'a self, url: &'a str) -> &'a str {
        self.listen_url.as_deref().unwrap_or(url)
    }

    /// Whether statements may stay prepared on their connection between uses.
    pub fn persistent_statements(&self) -> bool {
        self.pooler == PoolerMode::None
    }
}

/// How callers are authenticated. With no key configured, development runs open and
/// production refuses to start.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `AUTH_HS256_SECRET`: shared secret for HS256 tokens (at least 32 characters).
    pub hs256_secret: Option<String>,
    /// `AUTH_JWKS_FILE`: a JWKS document with the RS256/ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// `AUTH_JWKS_URL`: where to fetch the JWKS document (cached, refreshed).
    pub jwks_url: Option<String>,
    /// `AUTH_ISSUER`: the required `iss` claim.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`: the required `aud` claim.
    pub audience: Option<String>,
    /// `AUTH_LEEWAY_SECS`: clock-skew allowance for `exp`/`nbf` (default 30).
    pub leeway: Duration,
    /// `AUTH_JWKS_REFRESH_SECS`: how long fetched keys are used before being fetched again
    /// (default 300; a token naming an unknown key fetches sooner, at most every 10 s).
    pub jwks_refresh: Duration,
}

impl AuthConfig {
    /// Whether any key is configured (then tokens are required).
    pub fn configured(&self) -> bool {
        self.hs256_secret.is_some() || self.jwks_file.is_some() || self.jwks_url.is_some()
    }
}

/// Where and how the server-owned PostgreSQL runs.
#[derive(Debug, Clone)]
pub struct LocalPgConfig {
    /// `LOCAL_PG_DIR`: folder for its data, socket and log (default `.titanbay/` under the
    /// working directory, or `/var/lib/titanbay/<hash>/` when running as root).
    pub dir: Option<PathBuf>,
    /// `PG_BIN_DIR`: folder with `initdb` and `postgres` (default: the newest installed).
    pub bin_dir: Option<PathBuf>,
    /// `LOCAL_PG_SETTINGS`: PostgreSQL settings as `name=value` pairs separated by spaces or
    /// commas, applied over the ones sized to the machine (`local_pg::recommended_settings`).
    pub settings: Vec<(String, String)>,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `titanbay=debug,info`
    /// (default `info`; `RUST_LOG` wins when set).
    pub level: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub format: LogFormat,
    /// `SLOW_REQUEST_MS`: requests slower than this are logged as warnings (default 1000).
    pub slow_request: Duration,
}

/// Limits that keep one request from costing too much.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `MAX_QUERY_DEPTH` (default 10).
    pub max_depth: usize,
    /// `MAX_QUERY_COMPLEXITY` (default 10000).
    pub max_complexity: usize,
    /// `MAX_PAGE_SIZE`: largest `first`/`last` (default 100).
    pub max_page_size: u32,
    /// `MAX_BODY_BYTES`: largest request body (default 1 MiB).
    pub max_body_bytes: usize,
    /// `MAX_BATCH_SIZE`: most operations in one batched request (default 10; 0 turns
    /// batching off).
    pub max_batch_size: usize,
    /// `MAX_FIELDS`: most fields (aliases included) one operation selects, fragments expanded
    /// (default 1000).
    pub max_fields: usize,
    /// `REQUEST_TIMEOUT_SECS`: a request running longer is cut off (default 30).
    pub request_timeout: Duration,
    /// `MAX_CONCURRENT_REQUESTS`: GraphQL requests that run at once; more wait their turn
    /// until their deadline (default 16 per CPU core; 0: no limit).
    pub max_concurrent_requests: usize,
    /// `MAX_DOCUMENT_BYTES`: longest GraphQL document, checked before it is parsed (default
    /// 32 KiB).
    pub max_document_bytes: usize,
    /// `MAX_DOCUMENT_TOKENS`: most lexical tokens in a document, counted before it is parsed
    /// (default 5000).
    pub max_document_tokens: usize,
    /// `MAX_FILTER_TEXT_CHARS`: longest text of a filter argument such as `nameContains`
    /// (default 200 characters).
    pub max_filter_text_chars: usize,
    /// `MAX_ERRORS`: most errors in one response; the rest are summed up in one last error
    /// (default 20).
    pub max_errors: usize,
    /// `MAX_ERROR_MESSAGE_CHARS`: longest error message (longer ones are cut, default 500).
    pub max_error_message_chars: usize,
    /// `DOCUMENT_CACHE_BYTES`: parsed documents kept, in document bytes (default 8 MiB).
    pub document_cache_bytes: usize,
    /// `APQ_CACHE_BYTES`: automatic persisted queries kept, in document bytes (default 8 MiB).
    pub apq_cache_bytes: usize,
    /// `IDEMPOTENCY_RETENTION_SECS`: how long an `Idempotency-Key` and its answer are kept
    /// (default 86400, a day); then the key may be used afresh, and it is pruned.
    pub idempotency_retention: Duration,
    /// `IDEMPOTENCY_LEASE_SECS`: how long a request's claim on its key holds while it has not
    /// finished (default 60, twice the request timeout). A retry within it is refused as in
    /// progress; after it (the first attempt's server died), a retry runs, answering what was
    /// committed from the record.
    pub idempotency_lease: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 10,
            max_complexity: 10_000,
            max_page_size: 100,
            max_body_bytes: 1024 * 1024,
            max_batch_size: 10,
            max_fields: 1000,
            request_timeout: Duration::from_secs(30),
            // 16 per core: a mutation spends most of its time waiting for its commit to reach
            // the disk, and more of them at once share each flush (W5 did 2–63 % more requests/s
            // than with 8 per core in six interleaved pairs, reads no worse).
            max_concurrent_requests: 16
                * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            // The stock introspection queries (graphql-js, GraphiQL, Apollo, gql) are 2–4 KiB
            // and about 600 tokens; application documents are smaller still.
            max_document_bytes: 32 * 1024,
            max_document_tokens: 5000,
            max_filter_text_chars: 200,
            max_errors: 20,
            max_error_message_chars: 500,
            document_cache_bytes: 8 * 1024 * 1024,
            apq_cache_bytes: 8 * 1024 * 1024,
            idempotency_retention: Duration::from_secs(24 * 3600),
            idempotency_lease: Duration::from_secs(60),
        }
    }
}

/// Limits on the HTTP connections themselves.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS`: a connection that does not send a whole request head within
    /// this is closed, also between the requests of a kept-alive connection (default 10).
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_SECS`: longest time to receive a request body (default 30).
    pub body_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: most client connections open at once; more wait in the
    /// kernel's accept queue (default 10,000, or the open-file limit minus a reserve).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
        }
    }
}

/// 10,000 connections, or fewer when the process may not open that many files (keeping 256
/// descriptors for the database pool, logs and the server-owned PostgreSQL).
fn default_max_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft.saturating_sub(256))
        .unwrap_or(usize::MAX)
        .clamp(16, 10_000)
}

/// A setting that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for {name}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// Reads typed values through a lookup function.
struct Reader<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                reason: e.to_string(),
                value,
            }),
        }
    }

    /// A comma-separated list of origins (`scheme://host[:port]`, no path; `*` is refused:
    /// an allow-list means naming the origins).
    fn origins(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.raw(name) else {
            return Ok(Vec::new());
        };
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid = rest.is_some_and(|host| {
                !host.is_empty()
                    && host.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            });
            if !valid {
                return Err(ConfigError {
                    name,
                    value: value.clone(),
                    reason: format!(
                        "`{origin}` is not an origin like https://app.example.com (no path, no `*`)"
                    ),
                });
            }
            origins.push(origin.to_owned());
        }
        Ok(origins)
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError {
                    name,
                    value,
                    reason: "expected true or false".to_owned(),
                }),
            },
        }
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default).map(Duration::from_secs)
    }

    /// `name=value` pairs separated by spaces or commas: names of letters, digits, `_` and
    /// `.`; values without spaces, commas or quotes.
    fn pg_settings(&self, name: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(text) = self.raw(name) else {
            return Ok(Vec::new());
        };
        let bad = |reason: &str| ConfigError {
            name,
            value: text.clone(),
            reason: reason.to_owned(),
        };
        text.split([' ', ','])
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (key, value) = item
                    .split_once('=')
                    .ok_or_else(|| bad("expected name=value pairs, e.g. shared_buffers=1GB"))?;
                let key_ok = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                let value_ok = !value.is_empty()
                    && !value
                        .chars()
                        .any(|c| c.is_whitespace() || "'\"\\".contains(c));
                if key_ok && value_ok {
                    Ok((key.to_owned(), value.to_owned()))
                } else {
                    Err(bad(
                        "a setting name is letters, digits, _ and .; a value has no quotes",
                    ))
                }
            })
            .collect()
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default).map(Duration::from_millis)
    }

    fn choice<T: Copy>(
        &self,
        name: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(value) = self.raw(name) else {
            return Ok(default);
        };
        let wanted = value.trim().to_ascii_lowercase();
        choices
            .iter()
            .find(|(k, _)| *k == wanted)
            .map(|(_, v)| *v)
            .ok_or_else(|| ConfigError {
                name,
                value,
                reason: format!(
                    "expected one of {}",
                    choices
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let r = Reader(lookup);
        let app_env = r.choice(
            "APP_ENV",
            AppEnv::Development,
            &[
                ("development", AppEnv::Development),
                ("dev", AppEnv::Development),
                ("production", AppEnv::Production),
                ("prod", AppEnv::Production),
            ],
        )?;
        let dev = app_env == AppEnv::Development;
        let defaults = Limits::default();
        Ok(Config {
            app_env,
            host: r.parse("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: r.parse("PORT", 8000)?,
            database: DatabaseConfig {
                url: r.raw("DATABASE_URL"),
                min_connections: r.parse("DB_MIN_CONNECTIONS", 10)?,
                max_connections: r.parse("DB_MAX_CONNECTIONS", 30)?,
                max_concurrent_reads: r.parse(
                    "DB_MAX_CONCURRENT_READS",
                    3 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
                )?,
                max_concurrent_writes: r
                    .raw("DB_MAX_CONCURRENT_WRITES")
                    .map_or(Ok(None), |_| {
                        r.parse("DB_MAX_CONCURRENT_WRITES", 0).map(Some)
                    })?,
                acquire_timeout: r.secs("DB_ACQUIRE_TIMEOUT_SECS", 30)?,
                connect_timeout: r.secs("DB_CONNECT_TIMEOUT_SECS", 3)?,
                max_lifetime: r.secs("DB_MAX_LIFETIME_SECS", 1800)?,
                idle_timeout: r.secs("DB_IDLE_TIMEOUT_SECS", 600)?,
                ping_idle_after: r.secs("DB_PING_IDLE_SECS", 1)?,
                statement_timeout: r.millis("DB_STATEMENT_TIMEOUT_MS", 5000)?,
                startup_retry: r.secs("DB_STARTUP_RETRY_SECS", 60)?,
                run_migrations: r.flag("RUN_MIGRATIONS", true)?,
                pooler: r.choice(
                    "DB_POOLER",
                    PoolerMode::None,
                    &[
                        ("none", PoolerMode::None),
                        ("transaction", PoolerMode::Transaction),
                    ],
                )?,
                listen_url: r.raw("DATABASE_LISTEN_URL"),
            },
            local_pg: LocalPgConfig {
                dir: r.raw("LOCAL_PG_DIR").map(PathBuf::from),
                bin_dir: r.raw("PG_BIN_DIR").map(PathBuf::from),
                settings: r.pg_settings("LOCAL_PG_SETTINGS")?,
            },
            log: LogConfig {
                level: r.raw("LOG_LEVEL").unwrap_or_else(|| "info".to_owned()),
                format: r.choice(
                    "LOG_FORMAT",
                    LogFormat::Text,
                    &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                )?,
                slow_request: r.millis("SLOW_REQUEST_MS", 1000)?,
            },
            limits: Limits {
                max_depth: r.parse("MAX_QUERY_DEPTH", defaults.max_depth)?,
                max_complexity: r.parse("MAX_QUERY_COMPLEXITY", defaults.max_complexity)?,
                max_page_size: r.parse("MAX_PAGE_SIZE", defaults.max_page_size)?,
                max_body_bytes: r.parse("MAX_BODY_BYTES", defaults.max_body_bytes)?,
                max_batch_size: r.parse("MAX_BATCH_SIZE", defaults.max_batch_size)?,
                max_fields: r.parse("MAX_FIELDS", defaults.max_fields)?,
                request_timeout: r
                    .secs("REQUEST_TIMEOUT_SECS", defaults.request_timeout.as_secs())?,
                max_concurrent_requests: r
                    .parse("MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests)?,
                max_document_bytes: r.parse("MAX_DOCUMENT_BYTES", defaults.max_document_bytes)?,
                max_document_tokens: r
                    .parse("MAX_DOCUMENT_TOKENS", defaults.max_document_tokens)?,
                max_filter_text_chars: r
                    .parse("MAX_FILTER_TEXT_CHARS", defaults.max_filter_text_chars)?,
                max_errors: r.parse("MAX_ERRORS", defaults.max_errors)?,
                max_error_message_chars: r
                    .parse("MAX_ERROR_MESSAGE_CHARS", defaults.max_error_message_chars)?,
                document_cache_bytes: r
                    .parse("DOCUMENT_CACHE_BYTES", defaults.document_cache_bytes)?,
                apq_cache_bytes: r.parse("APQ_CACHE_BYTES", defaults.apq_cache_bytes)?,
                idempotency_retention: r.secs(
                    "IDEMPOTENCY_RETENTION_SECS",
                    defaults.idempotency_retention.as_secs(),
                )?,
                idempotency_lease: r.secs(
                    "IDEMPOTENCY_LEASE_SECS",
                    defaults.idempotency_lease.as_secs(),
                )?,
            },
            http: {
                let d = HttpLimits::default();
                HttpLimits {
                    header_timeout: r
                        .secs("HTTP_HEADER_TIMEOUT_SECS", d.header_timeout.as_secs())?,
                    body_timeout: r.secs("HTTP_BODY_TIMEOUT_SECS", d.body_timeout.as_secs())?,
                    max_connections: r.parse("HTTP_MAX_CONNECTIONS", d.max_connections)?,
                }
            },
            graphiql: r.flag("GRAPHIQL", dev)?,
            introspection: r.flag("GRAPHQL_INTROSPECTION", dev)?,
            auth: AuthConfig {
                hs256_secret: r.raw("AUTH_HS256_SECRET"),
                jwks_file: r.raw("AUTH_JWKS_FILE").map(PathBuf::from),
                jwks_url: r.raw("AUTH_JWKS_URL"),
                issuer: r.raw("AUTH_ISSUER"),
                audience: r.raw("AUTH_AUDIENCE"),
                leeway: r.secs("AUTH_LEEWAY_SECS", 30)?,
                jwks_refresh: r.secs("AUTH_JWKS_REFRESH_SECS", 300)?,
            },
            cors_allowed_origins: r.origins("CORS_ALLOWED_ORIGINS")?,
            apq: r.flag("APQ", true)?,
            trusted_documents: r.raw("TRUSTED_DOCUMENTS").map(PathBuf::from),
            trusted_documents_only: r.flag("TRUSTED_DOCUMENTS_ONLY", false)?,
            metrics: r.flag("METRICS", true)?,
            metrics_max_operations: r.parse("METRICS_MAX_OPERATIONS", 200)?,
            graphql_fast_path: r.flag("GRAPHQL_FAST_PATH", true)?,
        })
    }

    /// The configuration with every default, for tests and tools.
    pub fn defaults() -> Config {
        match Config::from_lookup(|_| None) {
            Ok(config) => config,
            // Unreachable: every default above parses. Keep the type total anyway.
            Err(e) => unreachable!("defaults must parse: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design_guide() {
        let c = Config::defaults();
        assert_eq!(c.port, 8000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.database.min_connections, 10);
        assert_eq!(c.database.max_connections, 30);
        assert_eq!(c.database.acquire_timeout, Duration::from_secs(30));
        assert_eq!(c.database.max_lifetime, Duration::from_secs(1800));
        assert_eq!(c.limits.max_page_size, 100);
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
        assert!(c.graphiql && c.introspection);
    }

    #[test]
    fn production_turns_graphiql_and_introspection_off_unless_asked() {
        let c = from(&[("APP_ENV", "production")]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.graphiql && !c.introspection);
        let c = from(&[("APP_ENV", "production"), ("GRAPHIQL", "true")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.graphiql && !c.introspection);
    }

    #[test]
    fn local_pg_settings_are_name_value_pairs() -> Result<(), ConfigError> {
        let c = from(&[("LOCAL_PG_SETTINGS", "shared_buffers=1GB, work_mem=16MB")])?;
        assert_eq!(
            c.local_pg.settings,
            vec![
                ("shared_buffers".to_owned(), "1GB".to_owned()),
                ("work_mem".to_owned(), "16MB".to_owned())
            ]
        );
        for bad in ["shared_buffers", "a b=c", "x='1'", "=1"] {
            let err = from(&[("LOCAL_PG_SETTINGS", bad)]).err().map(|e| e.name);
            assert_eq!(err, Some("LOCAL_PG_SETTINGS"), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from(&[("PORT", "eighty")]).err().map(|e| e.name);
        assert_eq!(err, Some("PORT"));
        let err = from(&[("LOG_FORMAT", "xml")]).err().map(|e| e.name);
        assert_eq!(err, Some("LOG_FORMAT"));
    }

    #[test]
    fn cors_origins_are_an_explicit_allow_list() {
        let c = from(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        for bad in ["*", "app.example.com", "https://app.example.com/path"] {
            let err = from(&[("CORS_ALLOWED_ORIGINS", bad)]).err().map(|e| e.name);
            assert_eq!(err, Some("CORS_ALLOWED_ORIGINS"), "{bad}");
        }
    }
}
