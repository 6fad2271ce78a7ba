//! The wabridge gateway as a library: `Gateway::start(config, listener)` or [`run`].
//!
//! What runs today: durable webhook intake (signature check on the raw bytes, group commit, dedupe,
//! statuses moving outbound messages forward, the 24-hour window per contact), `/metrics`, retention, TLS
//! and graceful shutdown. The event log's subscribers, sending and the `/v1` API come with later issues.

pub mod config;
pub mod intake;
pub mod metrics;
pub mod retention;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Config};
use crate::metrics::Metrics;
use crate::store::{
    IntakeConfig as WriterConfig, IntakeSender, IntakeWriter, PgOptions, SqliteOptions, SqliteSynchronous,
    Store, StoreError, SynchronousCommit,
};

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub intake: IntakeSender,
    /// The highest sequence number committed by this instance's intake writer.
    pub committed_seq: tokio::sync::watch::Receiver<i64>,
    pub metrics: Arc<Metrics>,
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("creating the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("invalid setting {field} = {value:?}: {expected}")]
    InvalidSetting { field: &'static str, value: String, expected: &'static str },
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the configured store (creating SQLite's directory) and applies the migrations.
pub async fn open_store(config: &Config) -> Result<Store, GatewayError> {
    let store = match config.backend() {
        Backend::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| GatewayError::DataDir { path: dir.display().to_string(), source })?;
            }
            let synchronous = match config.database.sqlite_synchronous.to_ascii_lowercase().as_str() {
                "full" => SqliteSynchronous::Full,
                "normal" => SqliteSynchronous::Normal,
                other => {
                    return Err(GatewayError::InvalidSetting {
                        field: "database.sqlite_synchronous",
                        value: other.to_owned(),
                        expected: "full or normal",
                    });
                }
            };
            let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
            Store::open_sqlite(&path, options).await?
        }
        Backend::Postgres(url) => {
            let synchronous_commit =
                match config.database.postgres_synchronous_commit.to_ascii_lowercase().as_str() {
                    "on" => SynchronousCommit::On,
                    "off" => SynchronousCommit::Off,
                    "local" => SynchronousCommit::Local,
                    "remote_write" => SynchronousCommit::RemoteWrite,
                    "remote_apply" => SynchronousCommit::RemoteApply,
                    other => {
                        return Err(GatewayError::InvalidSetting {
                            field: "database.postgres_synchronous_commit",
                            value: other.to_owned(),
                            expected: "on, off, local, remote_write or remote_apply",
                        });
                    }
                };
            let options = PgOptions {
                max_connections: config.database.max_connections,
                synchronous_commit,
                search_path: config.database.postgres_schema.clone(),
                ..PgOptions::default()
            };
            Store::connect_postgres(&url, options).await?
        }
    };
    store.migrate().await?;
    Ok(store)
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), GatewayError>>,
}

impl Gateway {
    /// Opens the store, starts the intake writer and background tasks, and serves on `listener`.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Gateway, GatewayError> {
        let config = Arc::new(config);
        let acceptor = match &config.tls {
            Some(t) => Some(tls::acceptor(&t.cert, &t.key)?),
            None => None,
        };
        let store = open_store(&config).await?;
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let writer_config = WriterConfig {
            queue_capacity: config.intake.queue_capacity,
            max_batch: config.intake.max_batch,
            ..WriterConfig::default()
        };
        // The writer has its own token: it must outlive the HTTP server, to commit what requests queued.
        let writer_stop = CancellationToken::new();
        let (intake, committed_seq, writer) =
            IntakeWriter::spawn(store.clone(), writer_config, writer_stop.clone()).await?;
        let state = Arc::new(AppState {
            config: config.clone(),
            store: store.clone(),
            intake,
            committed_seq,
            metrics,
        });
        let addr = listener.local_addr()?;
        let pruner = retention::spawn(store.clone(), config.retention.clone(), shutdown.clone());
        let router = router(state.clone());
        let server_shutdown = shutdown.clone();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            let served =
                tls::serve(listener, router, acceptor, server_shutdown, Duration::from_secs(30)).await;
            // Requests have finished; let the writer commit what is queued, then stop.
            writer_stop.cancel();
            if let Err(e) = writer.await {
                tracing::error!(error = %e, "the intake writer panicked");
            }
            pruner.abort();
            server_state.store.close().await;
            served.map_err(GatewayError::from)
        });
        Ok(Gateway { addr, state, shutdown, server })
    }

    /// The address the gateway listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL applications and Meta reach the gateway at.
    #[must_use]
    pub fn url(&self) -> String {
        self.state.config.public_url(self.addr)
    }

    /// The handlers' shared state (store, metrics).
    #[must_use]
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// A token that stops the gateway when cancelled.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the gateway has stopped (after the shutdown token fired).
    pub async fn wait(self) -> Result<(), GatewayError> {
        match self.server.await {
            Ok(r) => r,
            Err(e) => Err(GatewayError::Io(std::io::Error::other(e))),
        }
    }

    /// Stops accepting connections, finishes the requests and commits in flight, and closes the store.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Runs the gateway until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let gateway = Gateway::start(config, listener).await?;
    let token = gateway.shutdown_token();
    tokio::select! {
        () = shutdown.cancelled() => token.cancel(),
        () = token.cancelled() => {}
    }
    gateway.wait().await
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    let webhook_path = state.config.webhook.path.clone();
    let body_limit = state.config.webhook.max_body_bytes;
    Router::new()
        .route(&webhook_path, get(intake::verify).post(intake::receive))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Lines describing what is configured and what is not, printed by `wabridge serve` at start.
#[must_use]
pub fn startup_report(config: &Config, url: &str, store: &Store) -> Vec<String> {
    let mut lines = vec![
        format!("wabridge gateway listening on {url}"),
        format!("  webhook (give this to Meta): {url}{}", config.webhook.path),
        format!("  metrics:                     {url}/metrics"),
        format!("  store: {} ({})", store.backend_name(), store.durability()),
    ];
    if config.meta.app_secrets.is_empty() && !config.webhook.insecure_skip_signature {
        lines.push(
            "  app secret: NOT configured — every webhook will be refused (401) until one is set \
                    (meta.app_secrets / WABRIDGE_META__APP_SECRETS)"
                .into(),
        );
    } else if !config.meta.app_secrets.is_empty() {
        lines.push(format!("  app secrets: {} configured", config.meta.app_secrets.len()));
    }
    if config.webhook.insecure_skip_signature {
        lines.push(
            "  WARNING: webhook signature checking is OFF (webhook.insecure_skip_signature); \
                    anyone can forge events. Never run like this in production."
                .into(),
        );
    }
    lines.push(match config.meta.verify_token {
        Some(_) => "  verify token: configured".into(),
        None => "  verify token: NOT configured — Meta's verification handshake will be refused".into(),
    });
    lines.push(match config.meta.access_token {
        Some(_) => {
            "  access token: configured (sending arrives with a later release; receiving only for now)".into()
        }
        None => "  access token: not configured — receiving and storing webhooks only, no sending".into(),
    });
    if config.numbers.is_empty() {
        lines.push("  phone numbers: none configured".into());
    } else {
        lines.push(format!("  phone numbers: {}", config.numbers.len()));
    }
    lines.push(match &config.tls {
        Some(_) => "  TLS: on".into(),
        None => "  TLS: off (plain HTTP; put it behind an HTTPS proxy for Meta)".into(),
    });
    lines
}
