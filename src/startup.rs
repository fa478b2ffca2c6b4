//! Start-up: database (given or server-owned) → migrations → schema → router → serve, and a
//! graceful stop on Ctrl-C or SIGTERM.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use local_pg::{LocalPgOptions, LocalPostgres};
use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;

use crate::{
    auth::{Authenticator, JwksTiming, JwtVerifier, KeySource},
    config::{AppEnv, Config},
    db::{self, Db},
    graphql::{self, pipeline::DocumentCache},
    http::{self, AppState, persisted::PersistedDocuments},
    metrics::Metrics,
    slots::ExecutionSlots,
};

/// Distinct documents kept parsed (clients send a handful of documents over and over).
const DOCUMENT_CACHE_SIZE: usize = 512;

/// Name of the application database inside a server-owned PostgreSQL.
pub const LOCAL_DATABASE: &str = "titanbay";

/// A database to use: its URL, and the server-owned instance when we started one.
pub struct DatabaseTarget {
    /// Connection URL.
    pub url: String,
    /// The local PostgreSQL: one we own, stopped when this is dropped or stopped, or one
    /// another process owns, which we leave running.
    pub local: Option<LocalPostgres>,
}

impl DatabaseTarget {
    /// Stops the server-owned PostgreSQL, if we own one, after the pool is closed.
    pub async fn stop(mut self) {
        if let Some(mut pg) = self.local.take() {
            if !pg.is_owner() {
                tracing::info!(
                    owner = pg.owner_pid(),
                    "leaving the local PostgreSQL running for the process that owns it"
                );
                return;
            }
            let result =
                tokio::task::spawn_blocking(move || pg.stop(Duration::from_secs(15))).await;
            match result {
                Ok(Ok(())) => tracing::info!("local PostgreSQL stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "local PostgreSQL did not stop cleanly"),
                Err(e) => tracing::warn!(error = %e, "stopping local PostgreSQL failed"),
            }
        }
    }
}

/// `DATABASE_URL` when set; otherwise starts (and owns) a local PostgreSQL and creates the
/// application database in it. Logs which database is in use.
pub async fn resolve_database(config: &Config) -> anyhow::Result<DatabaseTarget> {
    if let Some(url) = &config.database.url {
        tracing::info!(database = %db::describe_url(url), "using PostgreSQL from DATABASE_URL");
        return Ok(DatabaseTarget {
            url: url.clone(),
            local: None,
        });
    }
    let base_dir = match &config.local_pg.dir {
        Some(dir) => dir.clone(),
        None => local_pg::default_base_dir(
            &std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        ),
    };
    let options = LocalPgOptions {
        base_dir,
        bin_dir: config.local_pg.bin_dir.clone(),
        ephemeral: false,
        remove_on_exit: false,
    };
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::start(&options))
        .await
        .context("the task starting PostgreSQL failed")??;
    if pg.is_owner() {
        tracing::info!(
            version = pg.major_version(),
            data = %pg.base_dir().display(),
            socket = %pg.socket_dir().display(),
            "DATABASE_URL is not set: using a server-owned local PostgreSQL (Unix socket only)"
        );
    } else {
        tracing::info!(
            version = pg.major_version(),
            data = %pg.base_dir().display(),
            socket = %pg.socket_dir().display(),
            owner = pg.owner_pid(),
            "DATABASE_URL is not set: using the local PostgreSQL of another process (it keeps \
             running when we exit)"
        );
    }
    db::ensure_database(&pg.url("postgres"), LOCAL_DATABASE)
        .await
        .context("creating the application database")?;
    Ok(DatabaseTarget {
        url: pg.url(LOCAL_DATABASE),
        local: Some(pg),
    })
}

/// A built application, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    database: DatabaseTarget,
}

impl Application {
    /// Connects (with retries), migrates (unless turned off), builds the schema and router, and
    /// binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let database = resolve_database(&config).await?;
        let conn = db::connect_with_retry(&config.database, &database.url)
            .await
            .with_context(|| {
                format!(
                    "connecting to PostgreSQL at {}",
                    db::describe_url(&database.url)
                )
            })?;
        if config.database.run_migrations {
            Migrator::up(&conn, None)
                .await
                .context("running migrations")?;
            tracing::info!("migrations are up to date");
        }
        let db = Db::with_probe(conn, &database.url);
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let state = build_state(db, config).await?;
        Ok(Application {
            listener,
            state,
            database,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests use its database handle).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains requests, closes the pool and stops the
    /// server-owned PostgreSQL.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, graphiql = self.state.config.graphiql, "serving GraphQL at http://{addr}/graphql");
        let router = http::router(self.state.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("server stopped; closing the database pool");
        let _ = self.state.db.conn.clone().close().await;
        self.database.stop().await;
        served.context("serving HTTP")
    }
}

/// How requests are authenticated under `config`: bearer JWTs when a key is configured; open
/// (with a loud warning) in development without one; production refuses to start without one.
pub async fn build_authenticator(config: &Config) -> anyhow::Result<Authenticator> {
    let auth = &config.auth;
    if !auth.configured() {
        if config.app_env == AppEnv::Production {
            anyhow::bail!(
                "APP_ENV=production requires authentication: set AUTH_HS256_SECRET, \
                 AUTH_JWKS_FILE or AUTH_JWKS_URL, with AUTH_ISSUER and AUTH_AUDIENCE"
            );
        }
        tracing::warn!(
            "AUTHENTICATION IS OFF: no AUTH_* key is configured, so every request runs with every \
             scope. This is for local development only; APP_ENV=production refuses to start \
             like this."
        );
        return Ok(Authenticator::Open);
    }
    if auth.jwks_file.is_some() && auth.jwks_url.is_some() {
        anyhow::bail!("set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both");
    }
    let (Some(issuer), Some(audience)) = (&auth.issuer, &auth.audience) else {
        anyhow::bail!("AUTH_ISSUER and AUTH_AUDIENCE are required when authentication is on");
    };
    let source = match (&auth.jwks_file, &auth.jwks_url) {
        (Some(path), _) => Some(KeySource::File(path.clone())),
        (None, Some(url)) => Some(KeySource::Url(url.clone())),
        (None, None) => None,
    };
    let verifier = JwtVerifier::new(
        auth.hs256_secret.as_deref(),
        source,
        issuer,
        audience,
        auth.leeway,
        JwksTiming::every(auth.jwks_refresh),
    )
    .await
    .map_err(|e| anyhow::anyhow!("authentication configuration: {e}"))?;
    tracing::info!(?verifier, "bearer tokens required");
    Ok(Authenticator::Jwt(Box::new(verifier)))
}

/// The state handlers share: the schema over the database, the authenticator and the
/// configuration. Fails when the trusted-documents file or the auth keys cannot be loaded, or
/// production runs without auth.
pub async fn build_state(db: Db, config: Config) -> anyhow::Result<AppState> {
    let db = db
        .limit_reads(config.database.max_concurrent_reads)
        .share_identical_reads(config.database.share_identical_reads);
    let auth = build_authenticator(&config).await?;
    let schema = graphql::build_schema(db.clone(), &config);
    let revalidated_schema = config
        .graphql_validate_once
        .then(|| graphql::build_revalidated_schema(db.clone(), &config));
    let mut persisted = PersistedDocuments::new(config.apq);
    match &config.trusted_documents {
        Some(path) => {
            persisted = persisted
                .with_trusted(path, config.trusted_documents_only)
                .map_err(anyhow::Error::msg)?;
            tracing::info!(
                documents = persisted.trusted_len(),
                only = config.trusted_documents_only,
                "trusted documents loaded"
            );
        }
        None if config.trusted_documents_only => {
            anyhow::bail!("TRUSTED_DOCUMENTS_ONLY is set but TRUSTED_DOCUMENTS names no file")
        }
        None => {}
    }
    Ok(AppState {
        schema,
        revalidated_schema,
        db,
        slots: Arc::new(ExecutionSlots::new(config.limits.max_concurrent_requests)),
        config: Arc::new(config),
        documents: Arc::new(DocumentCache::new(DOCUMENT_CACHE_SIZE)),
        metrics: Arc::new(Metrics::default()),
        persisted: Arc::new(persisted),
        auth: Arc::new(auth),
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
