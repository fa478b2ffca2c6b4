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
    executor::{Executor, persisted::PersistedDocuments},
    graphql,
    http::{self, AppState},
    metrics::Metrics,
    slots::ExecutionSlots,
};

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
        settings: config.local_pg.settings.clone(),
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
    /// Checks the configuration, connects (with retries), migrates (unless turned off), builds
    /// the schema and router, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Refuse a configuration that cannot serve before touching any database.
        check_auth_config(&config)?;
        let database = resolve_database(&config).await?;
        db::wait_until_reachable(&config.database, &database.url)
            .await
            .with_context(|| {
                format!(
                    "connecting to PostgreSQL at {}",
                    db::describe_url(&database.url)
                )
            })?;
        if config.database.run_migrations {
            migrate(config.database.direct_url(&database.url)).await?;
        }
        let db = Db::connect(&config.database, &database.url).await?;
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

    /// The shared state.
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
        tracing::info!(%addr, playground = self.state.config.graphiql, "serving GraphQL at http://{addr}/graphql");
        let router = http::router(self.state.clone());
        let served =
            http::serve::serve(self.listener, router, &self.state.config.http, shutdown).await;
        tracing::info!("server stopped; closing the database pool");
        self.state.executor.close();
        self.database.stop().await;
        served.context("serving HTTP")
    }
}

/// Applies pending migrations on a connection of their own.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let conn = db::tool_connection(url)
        .await
        .context("connecting to run migrations")?;
    let result = Migrator::up(&conn, None).await;
    let _ = conn.close().await;
    result.context("running migrations")?;
    tracing::info!("migrations are up to date");
    Ok(())
}

/// Refuses an authentication configuration that cannot serve: production without a key, an
/// issuer or audience without a key (which would silently run without authentication), two
/// key sources, or a key without its issuer and audience.
pub fn check_auth_config(config: &Config) -> anyhow::Result<()> {
    let auth = &config.auth;
    if !auth.configured() {
        if config.app_env == AppEnv::Production {
            anyhow::bail!(
                "APP_ENV=production requires authentication: set AUTH_HS256_SECRET, \
                 AUTH_JWKS_FILE or AUTH_JWKS_URL, with AUTH_ISSUER and AUTH_AUDIENCE"
            );
        }
        if auth.issuer.is_some() || auth.audience.is_some() {
            anyhow::bail!(
                "AUTH_ISSUER or AUTH_AUDIENCE is set but no key is: set AUTH_HS256_SECRET, \
                 AUTH_JWKS_FILE or AUTH_JWKS_URL as well (without a key, authentication would be off)"
            );
        }
        return Ok(());
    }
    if auth.jwks_file.is_some() && auth.jwks_url.is_some() {
        anyhow::bail!("set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both");
    }
    if auth.issuer.is_none() || auth.audience.is_none() {
        anyhow::bail!("AUTH_ISSUER and AUTH_AUDIENCE are required when authentication is on");
    }
    Ok(())
}

/// How requests are authenticated under `config`: bearer JWTs when a key is configured; open
/// (with a loud warning) in development without one; production refuses to start without one.
pub async fn build_authenticator(config: &Config) -> anyhow::Result<Authenticator> {
    check_auth_config(config)?;
    let auth = &config.auth;
    if !auth.configured() {
        tracing::warn!(
            "AUTHENTICATION IS OFF: no AUTH_* key is configured, so every request runs with every \
             scope. This is for local development only; APP_ENV=production refuses to start \
             like this."
        );
        return Ok(Authenticator::Open);
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

/// The state handlers share: the executor over the schema and the database, the
/// authenticator and the configuration. Fails when the trusted-documents file or the auth keys
/// cannot be loaded, or production runs without auth.
pub async fn build_state(db: Db, config: Config) -> anyhow::Result<AppState> {
    let auth = build_authenticator(&config).await?;
    let schema = graphql::build_schema(db.clone(), &config);
    let limits = &config.limits;
    let mut persisted = PersistedDocuments::new(
        config.apq,
        limits.apq_cache_bytes,
        limits.max_document_bytes,
    );
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
    let metrics = Arc::new(Metrics::new(config.metrics_max_operations));
    let executor = Executor::new(
        schema,
        graphql::build_revalidating_schema(db.clone(), &config),
        db,
        persisted,
        config.limits.clone(),
        config.introspection,
        Arc::clone(&metrics),
    );
    Ok(AppState {
        executor: Arc::new(executor),
        slots: Arc::new(ExecutionSlots::new(config.limits.max_concurrent_requests)),
        config: Arc::new(config),
        metrics,
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
