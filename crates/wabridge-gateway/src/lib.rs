//! The wabridge gateway as a library: `Gateway::start(config, listener)` or [`run`].
//!
//! What runs today: durable webhook intake (signature check on the raw bytes, group commit, dedupe,
//! statuses moving outbound messages forward, the 24-hour window per contact), `/metrics`, retention, TLS
//! and graceful shutdown; the event log's readers (`/v1/events`, WebSocket subscribers with resume, the
//! embedding [`events::EventHook`]) and application callbacks (`/v1/callbacks`).

pub mod accounts;
pub mod api;
pub mod api_error;
pub mod auth;
pub mod body_deadline;
pub mod callbacks;
pub mod client_address;
pub mod cloud_compat;
pub mod config;
pub mod events;
pub mod intake;
pub mod media;
pub mod metrics;
pub mod news;
pub mod outbound;
pub mod readiness;
pub mod reload;
pub mod retention;
pub mod settings;
pub mod store;
pub mod templates;
pub mod tls;

/// How long start-up waits for the template cache before the gateway reports ready anyway.
const TEMPLATES_LOAD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Checks the `/v1` credentials.
    pub auth: auth::Authenticator,
    /// The embedding program's event hook, applied on every path out of the log.
    pub hooks: events::Hooks,
    /// The feed every WebSocket subscriber follows.
    pub feed: Arc<events::EventFeed>,
    /// The application callbacks' dispatcher.
    pub callbacks: callbacks::Dispatcher,
    /// Fires when the gateway shuts down (WebSocket subscribers close on it).
    pub shutdown: CancellationToken,
    /// Users, login tokens and API keys.
    pub accounts: accounts::Accounts,
    /// The outbound queue and its schedulers.
    pub outbound: outbound::Outbound,
    /// The admin password generated at this start, until it was printed once.
    pub generated_admin_password: std::sync::Mutex<Option<secrecy::SecretString>>,
    /// Start-up progress and the Cloud API probe (`/v1/health`).
    pub readiness: Arc<readiness::Readiness>,
    /// The configured WABAs' message templates.
    pub templates: Arc<templates::TemplateCache>,
    /// The Cloud API client (none without an access token).
    pub cloud: Option<wabridge_cloud::Client>,
    /// Uploaded and downloaded media, cached on disk.
    pub media: Arc<media::MediaCache>,
    /// The live `sent_status` application setting.
    pub sent_status: settings::SentStatus,
    /// App secrets and the access token, reloadable.
    pub secrets: Arc<reload::Secrets>,
    /// The TLS certificate in use, reloadable.
    pub tls: Option<tls::TlsSlot>,
}

impl AppState {
    /// Applies what can change without a restart from `fresh`: API tokens, app secrets, the access token
    /// and (when the gateway serves TLS) the certificate. Other changes need a restart.
    ///
    /// # Errors
    /// When the new certificate cannot be loaded (nothing is changed then).
    pub fn reload(&self, fresh: &Config) -> Result<(), GatewayError> {
        let acceptor = match (&self.tls, &fresh.tls) {
            (Some(_), Some(t)) => Some(tls::acceptor(&t.cert, &t.key)?),
            _ => None,
        };
        if let (Some(slot), Some(acceptor)) = (&self.tls, acceptor) {
            slot.replace(acceptor);
        }
        self.auth.replace(fresh.api.tokens.clone());
        self.secrets.replace(fresh);
        tracing::info!(
            api_tokens = fresh.api.tokens.len(),
            app_secrets = fresh.meta.app_secrets.len(),
            access_token = fresh.meta.access_token.is_some(),
            tls = self.tls.is_some() && fresh.tls.is_some(),
            "configuration reloaded"
        );
        Ok(())
    }
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
    /// The gateway stopped itself: it could not go on safely (the reason is logged too).
    #[error("stopped: {0}")]
    Fatal(String),
}

/// How often the gateway checks that its store can still make commits durable.
const STORE_WATCH_EVERY: Duration = Duration::from_secs(1);

/// Stops the gateway (`shutdown`) once the store can no longer make commits durable, noting why in `fatal`:
/// every webhook would be answered 500 until a restart, which a supervisor does only for a process that
/// exits — a liveness probe on `/v1/health` would not see it.
fn watch_store(
    store: Store,
    shutdown: CancellationToken,
    fatal: Arc<std::sync::Mutex<Option<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(STORE_WATCH_EVERY) => {}
            }
            if store.cannot_commit() {
                let why = "a flush of the SQLite WAL failed; nothing can be acknowledged until a restart"
                    .to_owned();
                tracing::error!(reason = %why, "stopping the gateway so that it is restarted");
                *fatal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                shutdown.cancel();
                return;
            }
        }
    })
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

/// Builds a gateway with optional parts for programs that embed it (an [`EventHook`](events::EventHook)).
#[derive(Debug)]
pub struct GatewayBuilder {
    config: Config,
    hooks: events::Hooks,
}

impl GatewayBuilder {
    /// A builder for `config`.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self { config, hooks: events::Hooks::default() }
    }

    /// Installs `hook`: it sees (and may modify or suppress) every event before any consumer does.
    #[must_use]
    pub fn event_hook(mut self, hook: impl events::EventHook) -> Self {
        self.hooks = events::Hooks::new(Some(Arc::new(hook)));
        self
    }

    /// Starts the gateway on `listener`; see [`Gateway::start`].
    pub async fn start(self, listener: TcpListener) -> Result<Gateway, GatewayError> {
        Gateway::start_with(self.config, listener, self.hooks).await
    }
}

impl Gateway {
    /// Opens the store, starts the intake writer and background tasks, and serves on `listener`.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Gateway, GatewayError> {
        Self::start_with(config, listener, events::Hooks::default()).await
    }

    async fn start_with(
        config: Config,
        listener: TcpListener,
        hooks: events::Hooks,
    ) -> Result<Gateway, GatewayError> {
        let started = std::time::Instant::now();
        let sent_status = settings::SentStatus::new(config.outbound.sent_status);
        let hooks = sent_status.hooks(hooks);
        let config = Arc::new(config);
        let acceptor: Option<tls::TlsSlot> = match &config.tls {
            Some(t) => Some(tls::TlsSlot::new(tls::acceptor(&t.cert, &t.key)?)),
            None => None,
        };
        let secrets = Arc::new(reload::Secrets::new(&config));
        let store = open_store(&config).await?;
        settings::refresh(&store, &sent_status, config.outbound.sent_status).await?;
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let writer_config = WriterConfig {
            queue_capacity: config.intake.queue_capacity,
            max_batch: config.intake.max_batch,
            pg_committers: config.intake.pg_committers,
        };
        // The writer has its own token: it must outlive the HTTP server, to commit what requests queued.
        let writer_stop = CancellationToken::new();
        let (intake, committed_seq, writer) =
            IntakeWriter::spawn(store.clone(), writer_config, writer_stop.clone()).await?;
        let (feed, feed_task) = events::EventFeed::spawn(
            store.clone(),
            committed_seq.clone(),
            hooks.clone(),
            &config.events,
            metrics.clone(),
            shutdown.clone(),
        )
        .await?;
        let callbacks = callbacks::Dispatcher::start(
            &config,
            store.clone(),
            feed.clone(),
            hooks.clone(),
            metrics.clone(),
        )
        .await?;
        let (accounts, generated_admin_password) =
            accounts::Accounts::start(store.clone(), config.admin.clone()).await?;
        let cloud = cloud_compat::cloud_client(&config, &secrets);
        let outbound = outbound::Outbound::start_with_client(
            &config,
            store.clone(),
            metrics.clone(),
            intake.clone(),
            cloud.clone(),
        )
        .await?;
        let readiness = Arc::new(readiness::Readiness::new(
            started,
            cloud.clone(),
            config.numbers.first().map(|n| n.id.clone()),
        ));
        let template_cache = Arc::new(templates::TemplateCache::new(
            cloud.clone(),
            config.numbers.iter().map(|n| n.waba_id.clone()),
        ));
        let state = Arc::new(AppState {
            config: config.clone(),
            store: store.clone(),
            intake,
            committed_seq,
            metrics,
            auth: auth::Authenticator::new(config.api.tokens.clone()),
            hooks,
            feed,
            callbacks: callbacks.clone(),
            shutdown: shutdown.clone(),
            accounts,
            outbound: outbound.clone(),
            generated_admin_password: std::sync::Mutex::new(generated_admin_password),
            readiness: readiness.clone(),
            templates: template_cache.clone(),
            media: Arc::new(
                media::MediaCache::new(
                    config.data_dir.join("media"),
                    media::DEFAULT_LIMIT_BYTES,
                    cloud.clone(),
                )
                .with_deletions(store.clone()),
            ),
            cloud,
            sent_status,
            secrets,
            tls: acceptor.clone(),
        });
        let addr = listener.local_addr()?;
        let pruner = retention::spawn(
            store.clone(),
            config.retention.clone(),
            Duration::from_secs(config.outbound.service_window_secs),
            shutdown.clone(),
        );
        let _media_sweeper = media::spawn_sweeper(
            Arc::clone(&state.media),
            Duration::from_secs(config.retention.max_age_secs),
            shutdown.clone(),
        );
        let _settings_refresh = settings::spawn_refresh(
            store.clone(),
            state.sent_status.clone(),
            config.outbound.sent_status,
            shutdown.clone(),
        );
        // Before the server starts: the news of every webhook it commits is found from here on.
        let news_task = if news::follows_log(&store) {
            Some(news::follow(state.clone(), shutdown.clone()).await?)
        } else {
            None
        };
        let router = router(state.clone());
        let limits = tls::Limits { max_connections: config.http.max_connections, ..tls::Limits::default() };
        let server_shutdown = shutdown.clone();
        let server_state = state.clone();
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let _watch = watch_store(store.clone(), shutdown.clone(), fatal.clone());
        let server = tokio::spawn(async move {
            let served =
                tls::serve(listener, router, acceptor, server_shutdown, Duration::from_secs(30), limits)
                    .await;
            // Requests have finished; stop sending (unanswered sends are reconciled at the next start).
            outbound.stop().await;
            // Let the writer commit what is queued, then stop.
            writer_stop.cancel();
            if let Err(e) = writer.await {
                tracing::error!(error = %e, "the intake writer panicked");
                fatal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| "the intake writer panicked".to_owned());
            }
            pruner.abort();
            if let Some(task) = news_task {
                let _ = task.await;
            }
            let _ = feed_task.await;
            callbacks.stop().await;
            server_state.store.close().await;
            served.map_err(GatewayError::from)?;
            match fatal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                Some(why) => Err(GatewayError::Fatal(why)),
                None => Ok(()),
            }
        });
        // Serving already (`/v1/health` answers `uninitialized`); ready once the templates are loaded, or
        // after `TEMPLATES_LOAD_DEADLINE` (a Cloud API that does not answer must not hold the gateway back:
        // the WABAs not read yet are not checked, and are tried again in the background).
        let loaded = tokio::select! {
            n = tokio::time::timeout(TEMPLATES_LOAD_DEADLINE, template_cache.load_all()) => n.unwrap_or_else(|_| {
                tracing::warn!("the templates were not all read in time; the rest are tried again in the background");
                0
            }),
            () = shutdown.cancelled() => 0,
        };
        let _upkeep = template_cache.spawn_upkeep(shutdown.clone());
        let took = readiness.mark_ready();
        tracing::info!(templates = loaded, ready_after_ms = took.as_millis(), "start-up done");
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

    /// The admin password generated at this start (first start, none configured), once: later calls
    /// answer `None`. `wabridge serve` prints it.
    #[must_use]
    pub fn take_generated_admin_password(&self) -> Option<secrecy::SecretString> {
        self.state.generated_admin_password.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Applies what can change without a restart (see [`AppState::reload`]).
    ///
    /// # Errors
    /// When the new certificate cannot be loaded (nothing is changed then).
    pub fn reload(&self, fresh: &Config) -> Result<(), GatewayError> {
        self.state.reload(fresh)
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

/// The largest body of a media upload (`POST /v1/media`, the Cloud-compatible `/{version}/{node}/media`): the
/// largest media Meta takes (documents, 100 MB), with room for a multipart envelope. Every other API route
/// takes JSON up to `http.max_json_body_bytes`. Bodies are read only after the caller is authenticated.
pub const MEDIA_BODY_LIMIT: usize = 101 * 1024 * 1024;

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    let webhook_path = state.config.webhook.path.clone();
    let webhook_limit = state.config.webhook.max_body_bytes;
    let json_limit = state.config.http.max_json_body_bytes;
    let body_deadline = Duration::from_secs(state.config.http.body_read_timeout_secs);
    Router::new()
        .route(
            &webhook_path,
            get(intake::verify).post(intake::receive).layer(DefaultBodyLimit::max(webhook_limit)),
        )
        .route("/metrics", get(metrics_text))
        .merge(api::registry::router().layer(axum::middleware::from_fn(api_error::onprem_errors)))
        .merge(cloud_compat::routes().layer(axum::middleware::from_fn(cloud_compat::graph_errors)))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::map_request(move |request: axum::extract::Request| async move {
            body_deadline::limit(request, body_deadline)
        }))
        .with_state(state)
}

/// A known path called with a method it does not take: 405 in the `/v1` error shape, or Graph's answer to
/// an unsupported request (code 100) elsewhere.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    let details = format!("{method} is not supported on {}", uri.path());
    if uri.path().starts_with("/v1/") {
        api_error::ApiError {
            status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
            code: 1000,
            title: "Generic error",
            details: format!("{details} (see GET /v1/openapi.json)"),
        }
        .into_response()
    } else {
        cloud_compat::GraphApiError::new(100, details).into_response()
    }
}

/// A path no route takes: 404 in the `/v1` error shape under `/v1`, or Graph's answer to a request it does
/// not support elsewhere (code 100, HTTP 400: `Unsupported get request. Object with ID '…' does not exist…`).
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    let path = uri.path();
    if path == "/v1" || path.starts_with("/v1/") {
        return api_error::ApiError::not_found(format!("no route {path} (see GET /v1/openapi.json)"))
            .into_response();
    }
    let method = method.as_str().to_ascii_lowercase();
    // `/{version}/{node}/…`: Graph names the node it cannot serve.
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let details = match (segments.next(), segments.next()) {
        (Some(version), Some(node)) if cloud_compat::is_graph_version(version) => format!(
            "Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded due to \
             missing permissions, or does not support this operation"
        ),
        _ => format!("Unsupported {method} request: unknown path {path}"),
    };
    cloud_compat::GraphApiError::new(100, details).into_response()
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
        format!(
            "  events:                      {url}/v1/events  (WebSocket: {}/v1/events/ws)",
            url.replacen("http", "ws", 1)
        ),
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
    // Deduplication lasts as long as the events do; Meta retries an unanswered webhook for up to 7 days.
    if config.retention.max_age_secs < 7 * 24 * 3600 {
        lines.push(
            "  WARNING: retention.max_age_secs is under 7 days: a webhook Meta redelivers after its events were \
             pruned is taken as new (applications see it twice)."
                .into(),
        );
    }
    lines.push(match config.meta.verify_token {
        Some(_) => "  verify token: configured".into(),
        None => "  verify token: NOT configured — Meta's verification handshake will be refused".into(),
    });
    lines.push(match config.meta.access_token {
        Some(_) => format!("  sending: to {} (POST {url}/v1/messages)", config.meta.graph_url),
        None => "  access token: not configured — messages are accepted and stay queued".into(),
    });
    if config.numbers.is_empty() {
        lines.push("  phone numbers: none configured".into());
    } else {
        lines.push(format!("  phone numbers: {}", config.numbers.len()));
    }
    lines.extend(auth_report(config, url));
    lines.push(format!("  application callbacks: {} configured", config.callbacks.len()));
    lines.push(match &config.tls {
        Some(_) => "  TLS: on".into(),
        None => "  TLS: off (plain HTTP; put it behind an HTTPS proxy for Meta)".into(),
    });
    lines
}

/// How to authenticate on `/v1`: the admin login, API keys made with it, and any configured tokens.
fn auth_report(config: &Config, url: &str) -> Vec<String> {
    let ttl = config.admin.token_ttl_secs;
    let valid =
        if ttl.is_multiple_of(86_400) { format!("{} days", ttl / 86_400) } else { format!("{ttl} s") };
    vec![
        "  auth: every /v1 route but /v1/health, /v1/openapi.json and the login needs Authorization: Bearer <login token or API key>".into(),
        format!(
            "    admin login: POST {url}/v1/users/login with Basic {}:<admin password> → a token valid {valid}",
            config.admin.user
        ),
        format!(
            "    API keys:    POST {url}/v1/keys as admin → a key per application (scopes send, events, admin)"
        ),
        if config.api.tokens.is_empty() {
            "    static tokens: none (api.tokens)".into()
        } else {
            format!("    static tokens: {} configured (api.tokens, every scope)", config.api.tokens.len())
        },
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A store that can no longer make commits durable stops the gateway, with the reason, so that the
    /// process exits non-zero and its supervisor restarts it.
    #[tokio::test]
    async fn a_store_that_cannot_commit_stops_the_gateway() {
        let dir = std::env::temp_dir().join(format!("wabridge-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open_sqlite(dir.join("w.db"), store::SqliteOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        // One commit, so that the WAL file exists.
        store
            .commit_intake(&[intake::rejected_item(&bytes::Bytes::from_static(b"x"), true, "test")])
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let watch = watch_store(store.clone(), shutdown.clone(), fatal.clone());
        assert!(!store.cannot_commit());
        let Store::Sqlite(sqlite) = &store else { unreachable!("a SQLite store") };
        sqlite.wal_sync().unwrap().fail_next_flush();
        assert!(store.cannot_commit());
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled()).await.unwrap();
        watch.await.unwrap();
        assert!(fatal.lock().unwrap().as_deref().unwrap().contains("flush"));
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
