//! Configuration: built-in defaults, then `wabridge.toml`, then `WABRIDGE_*` environment variables.
//!
//! Every field is documented in `docs/configuration.md` with its unit and default. Nested fields are
//! reached from the environment with a double underscore: `WABRIDGE_META__ACCESS_TOKEN` sets
//! `meta.access_token`, `WABRIDGE_LISTEN` sets `listen`. Secrets are [`SecretString`]s: redacted in
//! `Debug`, never logged.
//!
//! Loading takes the environment as an input ([`Config::load`]), so tests never touch the process
//! environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map as FigMap, Value as FigValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The prefix of the environment variables wabridge reads.
pub const ENV_PREFIX: &str = "WABRIDGE_";

/// The whole configuration of `wabridge serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The URL Meta and applications reach this gateway at, printed at start. Default: derived from
    /// `listen` (`http://` or `https://` with TLS).
    pub public_url: Option<String>,
    /// Directory for the SQLite database and the media cache. Created when missing. Default `./data`.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    /// HTTPS from a certificate and key in PEM files. Absent: plain HTTP (local use, or behind a proxy).
    pub tls: Option<TlsConfig>,
    pub meta: MetaConfig,
    /// The business phone numbers this gateway serves.
    pub numbers: Vec<NumberConfig>,
    pub http: HttpConfig,
    pub webhook: WebhookConfig,
    pub intake: IntakeConfig,
    pub retention: RetentionConfig,
    pub api: ApiConfig,
    pub events: EventsConfig,
    pub delivery: DeliveryConfig,
    /// Application callbacks defined here (more can be added through `POST /v1/callbacks`).
    pub callbacks: Vec<CallbackConfig>,
    pub admin: AdminConfig,
    pub outbound: OutboundConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database: DatabaseConfig::default(),
            tls: None,
            meta: MetaConfig::default(),
            numbers: Vec::new(),
            http: HttpConfig::default(),
            webhook: WebhookConfig::default(),
            intake: IntakeConfig::default(),
            retention: RetentionConfig::default(),
            api: ApiConfig::default(),
            events: EventsConfig::default(),
            delivery: DeliveryConfig::default(),
            callbacks: Vec::new(),
            admin: AdminConfig::default(),
            outbound: OutboundConfig::default(),
        }
    }
}

/// Where events and messages are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host/db` for PostgreSQL; `sqlite://path` or absent for SQLite at
    /// `<data_dir>/wabridge.db`.
    pub url: Option<SecretString>,
    /// SQLite `synchronous` mode: `full` (default: durable against power loss) or `normal`.
    pub sqlite_synchronous: String,
    /// PostgreSQL `synchronous_commit`: `on` (default) or `off`, `local`, `remote_write`.
    pub postgres_synchronous_commit: String,
    /// PostgreSQL pool size, at least 1. Default 16.
    pub max_connections: u32,
    /// PostgreSQL schema holding wabridge's tables (`search_path`); absent: the server's default. Letters,
    /// digits and `_` only.
    pub postgres_schema: Option<String>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            sqlite_synchronous: "full".into(),
            postgres_synchronous_commit: "on".into(),
            max_connections: 16,
            postgres_schema: None,
        }
    }
}

/// Which backend a [`DatabaseConfig`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// The backend and its location.
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.database.url.as_ref().map(|u| u.expose_secret().trim().to_owned()) {
            Some(url) => match url_scheme(&url).as_deref() {
                Some("postgres" | "postgresql") => Backend::Postgres(url),
                // `sqlite://path`, sqlx's `sqlite:path`, or a plain path (`check_database_url` refused others).
                Some("sqlite") => {
                    let path = &url["sqlite:".len()..];
                    Backend::Sqlite(PathBuf::from(path.strip_prefix("//").unwrap_or(path)))
                }
                _ => Backend::Sqlite(PathBuf::from(url)),
            },
            None => Backend::Sqlite(self.data_dir.join("wabridge.db")),
        }
    }

    /// A database URL must say which backend it means: a mistyped scheme (`postgress://…`) must not quietly
    /// become a SQLite file, with several instances each writing to a database of its own.
    fn check_database_url(&self) -> Result<(), ConfigError> {
        let Some(url) = self.database.url.as_ref().map(|u| u.expose_secret().trim().to_owned()) else {
            return Ok(());
        };
        let refuse =
            |why: String| Err(ConfigError(Box::new(figment::Error::from(format!("database.url: {why}")))));
        if url.is_empty() {
            return refuse("empty; leave it out for SQLite under data_dir".to_owned());
        }
        match (url_scheme(&url), url.contains("://")) {
            (Some(s), _) if matches!(s.as_str(), "postgres" | "postgresql" | "sqlite") => Ok(()),
            (None, false) => Ok(()),
            // The scheme alone: the rest may hold a password.
            (Some(s), _) => refuse(format!(
                "unknown scheme {s:?}: postgres://…, postgresql://…, sqlite://path or a file path"
            )),
            (None, true) => {
                refuse("not a URL this gateway reads: postgres://…, sqlite://path or a file path".to_owned())
            }
        }
    }

    /// The URL printed at start and used in examples.
    #[must_use]
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{bound}")
    }
}

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Credentials and endpoints of Meta's Cloud API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    /// The system-user access token used to send. Absent: the built-in sandbox runs in-process.
    pub access_token: Option<SecretString>,
    /// App secrets that sign Meta's webhooks (`X-Hub-Signature-256`). Several during a rotation; the first
    /// is the current one (it makes the `appsecret_proof`).
    pub app_secrets: Vec<SecretString>,
    /// Send `appsecret_proof` (HMAC-SHA256 of the access token keyed with the first of `app_secrets`) with
    /// every Graph call, as an app with "Require App Secret" turned on demands (`cloud-api.md` §0); needs
    /// `app_secrets`. Default false.
    pub appsecret_proof: bool,
    /// The token Meta echoes in the webhook verification handshake.
    pub verify_token: Option<SecretString>,
    /// Graph API version. Default `v23.0`.
    pub api_version: String,
    /// Graph API base URL. Default `https://graph.facebook.com`.
    pub graph_url: String,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            access_token: None,
            app_secrets: Vec::new(),
            appsecret_proof: false,
            verify_token: None,
            api_version: "v23.0".into(),
            graph_url: "https://graph.facebook.com".into(),
        }
    }
}

/// One business phone number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    /// Meta's phone number id (not the number itself).
    pub id: String,
    /// The WhatsApp Business Account the number belongs to.
    pub waba_id: String,
    /// The number as shown to users, e.g. `+1 555 078 3881`. Optional.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// Messages per second to hold this number to, instead of the level Meta reports (e.g. 20 for a
    /// number shared with the WhatsApp Business app); at least 1. Optional.
    #[serde(default)]
    pub level_mps: Option<u32>,
}

/// Limits of the HTTP listener, against clients that hold connections or memory (the webhook endpoint faces
/// the internet).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections open at once; past it, new ones wait in the listen backlog until one closes. Keep it
    /// under the process's file-descriptor limit (`ulimit -n`), with room for the database and callbacks.
    /// Default 4,096.
    pub max_connections: usize,
    /// Seconds a request's whole body may take to arrive, counted from its headers; a slower body is
    /// refused (400) and its connection closed. From 1 to 86,400 (a day). Default 60 (a 100 MB media upload
    /// needs ~1.7 MB/s).
    pub body_read_timeout_secs: u64,
    /// Largest JSON body of an API route (`/v1`, Cloud-compatible), in bytes; larger → 413. Media uploads
    /// take up to 101 MiB (Meta's largest document plus a multipart envelope). Default 1 MiB.
    pub max_json_body_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or CIDR ranges, such as
    /// `"127.0.0.1"` or `"10.0.0.0/8"`); see [`crate::client_address`]. What is counted per client (the
    /// login's failure budget) then counts per real client instead of per proxy. Default: none (the
    /// header is ignored).
    pub trusted_proxies: Vec<crate::client_address::IpRange>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            body_read_timeout_secs: 60,
            max_json_body_bytes: 1024 * 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The webhook endpoint Meta calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Path of the webhook endpoint. Default `/webhook`.
    pub path: String,
    /// Largest accepted body in bytes, at least 1; larger → 413. Default 3 MiB (Meta's payloads are at most 3 MB).
    pub max_body_bytes: usize,
    /// Accept webhooks without checking their signature. Never in production; warned about at every start.
    pub insecure_skip_signature: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            path: "/webhook".into(),
            max_body_bytes: wabridge_types::limits::WEBHOOK_BODY_MAX_BYTES,
            insecure_skip_signature: false,
        }
    }
}

/// The durable intake path.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Most webhooks written in one commit (group commit). Default 1,024.
    pub max_batch: usize,
    /// Webhooks waiting for a commit before new ones wait for room (backpressure). Default 8,192.
    pub queue_capacity: usize,
    /// PostgreSQL only: intake transactions in flight at once (SQLite has exactly one writer). Default 2.
    pub pg_committers: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { max_batch: 1024, queue_capacity: 8192, pg_committers: 2 }
    }
}

/// Pruning of old data.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw webhook bodies and events older than this many seconds are pruned, except those a pending
    /// delivery still needs. Default 2,592,000 (30 days).
    pub max_age_secs: u64,
    /// Seconds between two pruning passes. Default 3,600.
    pub prune_interval_secs: u64,
    /// Rejected bodies (signed, but not an envelope this version reads) not re-processed yet are pruned
    /// after this many seconds, with a warning: they are what `POST /v1/webhooks/reprocess` reads after an
    /// upgrade, and nothing else holds their content. Default 7,776,000 (90 days: a quarter to notice the
    /// `invalid_envelope` count and upgrade).
    pub rejected_max_age_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age_secs: 30 * 24 * 3600,
            prune_interval_secs: 3600,
            rejected_max_age_secs: 90 * 24 * 3600,
        }
    }
}

/// Access to the `/v1` API (interim: static tokens until users and API keys arrive).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens accepted on `/v1` (`Authorization: Bearer …`, or `?access_token=` for WebSockets). Each
    /// grants every scope. Empty (the default): the `/v1` routes answer 401.
    pub tokens: Vec<SecretString>,
}

/// The event log's readers: `GET /v1/events` and WebSocket subscribers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Milliseconds between two pings the server sends a WebSocket subscriber, at least 1. Default 15,000.
    pub ping_interval_ms: u64,
    /// Milliseconds without a frame from a subscriber (nor progress writing to it) after which it is
    /// considered dead and closed; longer than `ping_interval_ms` (a quiet subscriber is heard from when it answers
    /// a ping). Default 45,000.
    pub idle_timeout_ms: u64,
    /// Milliseconds between two reads of the log by the feed when no local commit woke it (picks up other
    /// instances' commits on PostgreSQL). Default 200.
    pub poll_interval_ms: u64,
    /// Events per store read of the feed and of a catching-up subscriber. Default 500.
    pub page_size: u32,
    /// Batches the feed keeps for subscribers that fall behind before they must catch up from the store.
    /// Default 256.
    pub broadcast_capacity: usize,
    /// Largest `limit` of `GET /v1/events`. Default 1,000 (the default page is 100).
    pub max_page_size: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            poll_interval_ms: 200,
            page_size: 500,
            broadcast_capacity: 256,
            max_page_size: 1_000,
        }
    }
}

/// How application callbacks are delivered and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Milliseconds before the first retry of a failed request, at least 1; doubles at each attempt (with
    /// jitter). Default 1,000.
    pub initial_backoff_ms: u64,
    /// Longest wait between two attempts, in milliseconds; not under `initial_backoff_ms`. Default 600,000
    /// (10 minutes).
    pub max_backoff_ms: u64,
    /// Milliseconds after its commit (or replay) after which an undelivered event is marked failed at its next
    /// failed attempt (replayable). Default 604,800,000 (7 days).
    pub max_age_ms: u64,
    /// Milliseconds a callback request may take before it counts as failed, at least 1. Default 10,000.
    pub request_timeout_ms: u64,
    /// Milliseconds between two checks for due retries when nothing else wakes the dispatcher. Default 1,000.
    pub poll_interval_ms: u64,
    /// Events per callback taken from the log into its delivery queue ahead of delivery; those held back
    /// behind their contact's retried event do not count, up to sixteen windows pending in all. Default 1,000.
    pub window: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 600_000,
            max_age_ms: 7 * 24 * 3_600_000,
            request_timeout_ms: 10_000,
            poll_interval_ms: 1_000,
            window: 1_000,
        }
    }
}

/// The body shape of an application callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackShape {
    /// Meta's envelope `{"object":"whatsapp_business_account","entry":[…]}`, also signed with
    /// `X-Hub-Signature-256`.
    #[default]
    Cloud,
    /// The On-Premises API's flat shape: `{"contacts":[…],"messages":[…]}`, `{"statuses":[…]}`, `{"errors":[…]}`.
    Onprem,
}

/// One application callback.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Its id in the API. Default: derived from the URL.
    #[serde(default)]
    pub id: Option<String>,
    /// Where events are POSTed.
    pub url: String,
    /// The secret that signs each request (`X-Wabridge-Signature`, and `X-Hub-Signature-256` for `cloud`).
    pub secret: SecretString,
    /// `cloud` (default) or `onprem`.
    #[serde(default)]
    pub shape: CallbackShape,
    /// Requests in flight at once at most, from 1 to 256. Default 6.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Only events of these kinds ([`crate::callbacks::EVENT_KINDS`]: `message`, `status`, `payment`, `error`,
    /// `change`, `alert`); any other is refused. Empty: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events of this business number. Absent: all.
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

fn default_max_concurrent() -> u32 {
    6
}

/// The administrator of the `/v1` API (`POST /v1/users/login`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin user's name. Default `admin`.
    pub user: String,
    /// The admin password; set at every start when given. Absent (the default): the first start generates
    /// one, stores its argon2 hash and prints it once.
    pub password: Option<SecretString>,
    /// Seconds a login token is valid (`expires_after`), at least 1. Default 604,800 (7 days, as the On-Premises
    /// API).
    pub token_ttl_secs: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { user: "admin".into(), password: None, token_ttl_secs: 7 * 24 * 3600 }
    }
}

/// Sending: the durable queue and the per-number scheduler (see `docs/sending.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Messages not yet sent (queued or sending) per number beyond which `POST /v1/messages` answers 1016
    /// "System overloaded"; at least 1. Default 100,000.
    pub max_backlog_per_number: i64,
    /// Milliseconds between two reads of the backlog counts from the store (each instance counts its own
    /// sends in between; with several instances, the others' show at the next read). Default 2,000.
    pub backlog_refresh_ms: u64,
    /// Sends in flight at once per number (requests to Meta awaiting an answer). Default 64.
    pub in_flight: usize,
    /// Milliseconds between a send's admission by the limiters and its request to Meta. The durable
    /// "sending" mark is committed in between; leaving at admission + this lag keeps the requests exactly as
    /// far apart as the limiters admitted them (Meta counts requests as they arrive), whatever the commit's
    /// jitter. Must exceed the usual mark commit time; at most 60,000. Default 100.
    pub departure_lag_ms: u64,
    /// Queued messages a scheduler loads from the store at a time. Default 2,000.
    pub load_batch: i64,
    /// Most inserts or state changes written in one commit (group commit). Default 1,024.
    pub max_commit_batch: usize,
    /// Milliseconds a number's sending lease lasts (renewed at a third of it). Default 15,000.
    pub lease_ms: u64,
    /// Milliseconds between two looks at the store for messages queued by other instances. Default 1,000.
    pub poll_interval_ms: u64,
    /// Milliseconds without any status after which a message whose send outcome is unknown (the gateway
    /// stopped during the request) is sent again, flagged `possibly_duplicated`. Default 60,000.
    pub unknown_outcome_grace_ms: u64,
    /// First backoff of a retryable error, in milliseconds, at least 1; doubles per attempt, ±20 % jitter.
    /// Default 1,000.
    pub retry_base_ms: u64,
    /// Longest backoff, in milliseconds; from `retry_base_ms` to 86,400,000 (a day). Default 300,000.
    pub retry_max_ms: u64,
    /// Attempts after which a message failing with retryable errors fails, at least 1. Default 10.
    pub max_attempts: i64,
    /// Milliseconds a number pauses after an error that needs an operator (token, account, payment) before
    /// it tries one message again. Default 60,000.
    pub operator_pause_ms: u64,
    /// The pair limit: one message per this many milliseconds to the same user. Default 6,000 (Meta).
    pub pair_interval_ms: u64,
    /// Messages to the same user in a burst before the pair limit applies. Default 45 (Meta).
    pub pair_burst: u32,
    /// API calls per WABA per rolling hour, at least 1. Default 11,880,000 (Meta).
    pub waba_calls_per_hour: u64,
    /// Unique users reached outside their 24-hour window per rolling 24 h (the messaging-limit tier);
    /// 0 = unlimited. Default 250 (a new business; set your tier).
    pub messaging_limit: u32,
    /// Seconds of the customer-service window after a user's last message. Default 86,400.
    pub service_window_secs: u64,
    /// On-Premises `sent_status`: whether `sent` statuses reach applications (events, callbacks).
    /// Default true.
    pub sent_status: bool,
    /// Milliseconds a Cloud-compatible send (`POST /{version}/{phone-number-id}/messages`) waits for Meta's
    /// answer, counted from the request's arrival, before answering `"message_status":"queued"` with the
    /// gateway's id. It must end before the caller's own timeout: a caller that times out first sees a
    /// retryable transport error, and its retry sends the message twice. Default 20,000, well under the
    /// 30 s of common HTTP clients (the `wabridge-cloud` SDK's default among them).
    pub cloud_send_wait_ms: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            max_backlog_per_number: 100_000,
            backlog_refresh_ms: 2_000,
            in_flight: 64,
            departure_lag_ms: 100,
            load_batch: 2_000,
            max_commit_batch: 1_024,
            lease_ms: 15_000,
            poll_interval_ms: 1_000,
            unknown_outcome_grace_ms: 60_000,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            max_attempts: 10,
            operator_pause_ms: 60_000,
            pair_interval_ms: 6_000,
            pair_burst: 45,
            waba_calls_per_hour: 11_880_000,
            messaging_limit: 250,
            service_window_secs: 24 * 3600,
            sent_status: true,
            cloud_send_wait_ms: DEFAULT_CLOUD_SEND_WAIT_MS,
        }
    }
}

/// The default of `outbound.cloud_send_wait_ms`: 20 s, leaving 10 s of the 30 s timeout of common HTTP
/// clients ([`wabridge_cloud::DEFAULT_REQUEST_TIMEOUT`]) for the request to arrive, be authenticated and
/// queued, and for the answer to travel back on a loaded host.
pub const DEFAULT_CLOUD_SEND_WAIT_MS: u64 = 20_000;

/// A configuration that could not be loaded; the message names the field and the source.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Loads defaults, then the TOML file at `path` (if given and present), then the `WABRIDGE_*`
    /// variables among `env`. Pass `std::env::vars()` in the binary and a fixed list in tests.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(EnvVars::from_iter(env));
        // Lossy: a variable's text reads as a number or a boolean where the field is one, and stays text
        // where the field is text (an all-digit verify token or password).
        let config: Config = figment.extract_lossy().map_err(|e| ConfigError(Box::new(redact_secrets(e))))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses what parses but would not work: empty secrets, a webhook path taken by another route, callbacks
    /// the gateway cannot serve as defined, numeric settings outside the range they work in, and the like.
    /// [`Config::load`] calls it; a program that builds its `Config` otherwise can too.
    ///
    /// # Errors
    /// The first problem found, naming its setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.refuse_empty_secrets()?;
        self.check_webhook_path()?;
        self.check_callbacks()?;
        self.check_ranges()?;
        self.check_database_url()?;
        self.check_appsecret_proof()?;
        self.check_numbers()?;
        Ok(())
    }

    /// Every number needs its id and its WABA's (the sending lease and the WABA-wide limits are the WABA's:
    /// numbers with an empty WABA id would share one), and a number is configured once.
    fn check_numbers(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for n in &self.numbers {
            let blank = |s: &str| s.trim().is_empty() || s.trim() != s;
            let problem = if blank(&n.id) {
                Some("an id without spaces is required".to_owned())
            } else if blank(&n.waba_id) {
                Some(format!("number {}: a waba_id without spaces is required", n.id))
            } else if !seen.insert(n.id.as_str()) {
                Some(format!("number {} is configured twice", n.id))
            } else if n.level_mps == Some(0) {
                // The limiter would hold it to one message a second, not to Meta's level nor to no limit.
                Some(format!("number {}: level_mps must be at least 1 (leave it out for Meta's level)", n.id))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError(Box::new(figment::Error::from(format!("numbers: {problem}")))));
            }
        }
        Ok(())
    }

    /// A proof needs an app secret to be made with.
    fn check_appsecret_proof(&self) -> Result<(), ConfigError> {
        if self.meta.appsecret_proof && self.meta.app_secrets.is_empty() {
            return Err(ConfigError(Box::new(figment::Error::from(
                "meta.appsecret_proof is on but meta.app_secrets is empty: the proof is made with the first \
                 app secret"
                    .to_owned(),
            ))));
        }
        Ok(())
    }

    /// The webhook path must be a path of its own: not relative, not one of the gateway's other routes.
    fn check_webhook_path(&self) -> Result<(), ConfigError> {
        let path = self.webhook.path.as_str();
        let taken = path == "/" || path == "/metrics" || path == "/v1" || path.starts_with("/v1/");
        if path.starts_with('/') && !taken && !path.contains(['{', '}', '*', '?', '#']) {
            return Ok(());
        }
        Err(ConfigError(Box::new(figment::Error::from(format!(
            "webhook.path {path:?}: a path such as \"/webhook\", starting with \"/\", outside \"/v1/\" and \"/metrics\""
        )))))
    }

    /// Numeric settings that parse but break the gateway at run time (a zero that is taken for "off" or
    /// "unlimited" and means neither, a wait that never grows, an instant past what the clock holds): each
    /// refused with its name, its value and why.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        const ANY: i128 = i128::MAX;
        const DAY_SECS: i128 = 86_400;
        const DAY_MS: i128 = DAY_SECS * 1_000;
        let (e, d, o) = (&self.events, &self.delivery, &self.outbound);
        let bounds = [
            Bounded::new(
                "database.max_connections",
                self.database.max_connections,
                1..=ANY,
                "a pool of none never gives a query a connection",
            ),
            Bounded::new(
                "http.max_connections",
                self.http.max_connections,
                1..=ANY,
                "none refuses every request",
            ),
            Bounded::new(
                "http.body_read_timeout_secs",
                self.http.body_read_timeout_secs,
                1..=DAY_SECS,
                "0 refuses every body, and a body that has not arrived within a day is not arriving (a deadline \
                 far enough off does not fit the clock)",
            ),
            Bounded::new(
                "http.max_json_body_bytes",
                self.http.max_json_body_bytes,
                1..=ANY,
                "0 refuses every JSON body",
            ),
            Bounded::new(
                "webhook.max_body_bytes",
                self.webhook.max_body_bytes,
                1..=ANY,
                "0 refuses every webhook (413), and Meta gives up on a webhook refused long enough",
            ),
            Bounded::new(
                "events.ping_interval_ms",
                e.ping_interval_ms,
                1..=ANY,
                "0 pings every WebSocket subscriber every millisecond",
            ),
            Bounded::new(
                "events.idle_timeout_ms",
                e.idle_timeout_ms,
                i128::from(e.ping_interval_ms) + 1..=ANY,
                "it must be longer than events.ping_interval_ms: a quiet subscriber is heard from when it \
                 answers a ping, so a shorter timeout closes it at the next ping",
            ),
            // Doubling from any positive start backs off (from 1 ms, past a second within ten retries); from 0
            // it stays at the floor of a millisecond for good.
            Bounded::new(
                "delivery.initial_backoff_ms",
                d.initial_backoff_ms,
                1..=ANY,
                "the wait doubles from it, and from 0 every retry would follow the last within a millisecond",
            ),
            Bounded::new(
                "delivery.max_backoff_ms",
                d.max_backoff_ms,
                i128::from(d.initial_backoff_ms)..=ANY,
                "it caps the wait from the first retry, so it must not be under delivery.initial_backoff_ms (at \
                 0 every retry would follow the last within a millisecond)",
            ),
            Bounded::new(
                "delivery.request_timeout_ms",
                d.request_timeout_ms,
                1..=ANY,
                "0 is not \"no timeout\": every request would time out at once, and no event be delivered",
            ),
            Bounded::new(
                "admin.token_ttl_secs",
                self.admin.token_ttl_secs,
                1..=ANY,
                "a login token would have expired when issued",
            ),
            Bounded::new(
                "outbound.max_backlog_per_number",
                o.max_backlog_per_number,
                1..=ANY,
                "a limit of 0 or less refuses every send",
            ),
            Bounded::new(
                "outbound.max_attempts",
                o.max_attempts,
                1..=ANY,
                "0 or less does not mean unlimited: every message would fail at its first retryable error",
            ),
            Bounded::new(
                "outbound.retry_base_ms",
                o.retry_base_ms,
                1..=ANY,
                "the backoff doubles from it, and from 0 every retry would follow the last within a millisecond, \
                 through a whole outage of Meta's",
            ),
            Bounded::new(
                "outbound.retry_max_ms",
                o.retry_max_ms,
                i128::from(o.retry_base_ms)..=DAY_MS,
                "it caps the backoff from the first retry, so it must not be under outbound.retry_base_ms (at 0 \
                 every retry would follow the last within a millisecond); and a message is not kept waiting more \
                 than a day between two attempts (far longer waits overflow the retry's timestamp)",
            ),
            Bounded::new(
                "outbound.departure_lag_ms",
                o.departure_lag_ms,
                0..=60_000,
                "every send waits this long before its request: it covers a commit's jitter, and a lag past a \
                 minute would hold every message back (or, far enough, never send one)",
            ),
            Bounded::new(
                "outbound.waba_calls_per_hour",
                o.waba_calls_per_hour,
                1..=ANY,
                "0 does not mean unlimited (as outbound.messaging_limit's does): it would allow one call an hour",
            ),
        ];
        match bounds.into_iter().find(|b| !b.range.contains(&b.value)) {
            None => Ok(()),
            Some(b) => Err(ConfigError(Box::new(figment::Error::from(b.refusal())))),
        }
    }

    /// Configured callbacks are checked as the API checks a new one ([`crate::callbacks::check_definition`]), and
    /// the id `application` belongs to the settings' `webhooks.url` callback (`PATCH /v1/settings/application`).
    fn check_callbacks(&self) -> Result<(), ConfigError> {
        for (i, c) in self.callbacks.iter().enumerate() {
            // Named by position and id: the URL may hold the receiver's credentials.
            let which = match &c.id {
                Some(id) => format!("callbacks[{i}] (id {id:?})"),
                None => format!("callbacks[{i}]"),
            };
            let problem = if c.id.as_deref() == Some(crate::settings::CALLBACK_ID) {
                format!(
                    "the id {:?} is reserved for the webhooks.url application setting",
                    crate::settings::CALLBACK_ID
                )
            } else if let Err(e) = crate::callbacks::check_definition(&c.url, c.max_concurrent, &c.events) {
                e.to_string()
            } else {
                continue;
            };
            return Err(ConfigError(Box::new(figment::Error::from(format!("{which}: {problem}")))));
        }
        Ok(())
    }

    /// An empty secret would let anyone in: an API token `""` matches an empty `Bearer`, an app secret `""`
    /// is an HMAC key anyone has. (An unset variable in a deployment template is the usual cause.)
    fn refuse_empty_secrets(&self) -> Result<(), ConfigError> {
        let empty = |list: &[SecretString]| list.iter().any(|s| s.expose_secret().is_empty());
        let field = if empty(&self.api.tokens) {
            "api.tokens"
        } else if empty(&self.meta.app_secrets) {
            "meta.app_secrets"
        } else if self.meta.verify_token.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
            "meta.verify_token"
        } else if self.meta.access_token.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
            "meta.access_token"
        } else if self.admin.password.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
            // An empty admin password would log anyone in with `Basic admin:`.
            "admin.password"
        } else if self.callbacks.iter().any(|c| c.secret.expose_secret().is_empty()) {
            "callbacks[].secret"
        } else {
            return Ok(());
        };
        Err(ConfigError(Box::new(figment::Error::from(format!(
            "{field} holds an empty secret: remove it, or give it a value"
        )))))
    }
}

/// A numeric setting, its value and the values it works with, for [`Config::check_ranges`]. Values of every
/// integer type are held as `i128`, which holds them all.
struct Bounded {
    setting: &'static str,
    value: i128,
    range: std::ops::RangeInclusive<i128>,
    /// Why a value outside `range` is refused.
    why: &'static str,
}

impl Bounded {
    fn new(
        setting: &'static str,
        value: impl TryInto<i128>,
        range: std::ops::RangeInclusive<i128>,
        why: &'static str,
    ) -> Self {
        Self { setting, value: value.try_into().unwrap_or(i128::MAX), range, why }
    }

    fn refusal(&self) -> String {
        let (low, high) = (*self.range.start(), *self.range.end());
        let wanted =
            if high == i128::MAX { format!("at least {low}") } else { format!("between {low} and {high}") };
        format!("{} is {}, and must be {wanted}: {}", self.setting, self.value, self.why)
    }
}

/// Fields whose values are secrets: an error about one never shows the value it found.
const SECRET_FIELDS: &[&str] =
    &["app_secrets", "tokens", "verify_token", "access_token", "password", "secret"];

/// `error` with the values of secret fields left out (a value of the wrong type, say a token list given
/// without its brackets, would otherwise be quoted in the message).
fn redact_secrets(error: figment::Error) -> figment::Error {
    use figment::error::{Actual, Kind};
    let hidden = || Actual::Other("[REDACTED]".to_owned());
    let errors: Vec<figment::Error> = error
        .into_iter()
        .map(|mut e| {
            if e.path.iter().any(|p| SECRET_FIELDS.contains(&p.as_str())) {
                e.kind = match e.kind {
                    Kind::InvalidType(_, expected) => Kind::InvalidType(hidden(), expected),
                    Kind::InvalidValue(_, expected) => Kind::InvalidValue(hidden(), expected),
                    Kind::Message(_) => Kind::Message("invalid value ([REDACTED])".to_owned()),
                    other => other,
                };
            } else if let Kind::Message(text) = &e.kind {
                // A syntax error in the file names no field, and the TOML parser quotes the offending line of
                // the source, which may be `access_token = "…` with its closing quote missing: the position
                // and the parser's reason stay, the quoted source goes.
                e.kind = Kind::Message(without_source_excerpt(text));
            }
            e
        })
        .collect();
    errors
        .into_iter()
        .rev()
        .reduce(|acc, e| acc.chain(e))
        .unwrap_or_else(|| figment::Error::from("invalid configuration".to_owned()))
}

/// The scheme of a URL (`postgres` of `postgres://…`, `sqlite` of `sqlite:data.db`), lowercase, if it has one
/// (a Windows drive letter, `C:`, is not one).
fn url_scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// Whether a `WABRIDGE_*` variable (the part after the prefix) is one Kubernetes sets for a Service named
/// `wabridge` or `wabridge-…` (`WABRIDGE_SERVICE_HOST`, `WABRIDGE_PORT`, `WABRIDGE_PORT_8080_TCP_ADDR`,
/// `WABRIDGE_POSTGRESQL_SERVICE_PORT`, …), not a setting: refusing them as unknown fields would keep the
/// gateway from starting in such a cluster. Settings never look like these: a nested one has `__`, and no
/// top-level field holds `SERVICE_HOST`, `SERVICE_PORT` or a `PORT` word.
fn is_service_link(name: &str) -> bool {
    if name.contains("__") {
        return false;
    }
    let words: Vec<&str> = name.split('_').collect();
    let service = words.windows(2).any(|w| w[0] == "SERVICE" && matches!(w[1], "HOST" | "PORT"));
    let port = words.iter().enumerate().any(|(i, w)| {
        *w == "PORT"
            && (i + 1 == words.len()
                || (words.get(i + 1).is_some_and(|n| n.parse::<u16>().is_ok())
                    && words.get(i + 2).is_some_and(|p| matches!(*p, "TCP" | "UDP" | "SCTP"))))
    });
    service || port
}

/// A parser's message without the lines that quote the source (`7 | token = "…`, `  |     ^`).
fn without_source_excerpt(text: &str) -> String {
    let quotes_source = |line: &str| {
        let rest = line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit());
        rest.trim_start().starts_with('|')
    };
    text.lines().filter(|line| !quotes_source(line)).collect::<Vec<_>>().join("\n")
}

/// `WABRIDGE_*` variables as a figment provider, from a given list rather than the process environment.
#[derive(Debug, Default)]
struct EnvVars(Vec<(String, String)>);

impl FromIterator<(String, String)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.len() > ENV_PREFIX.len())
                // `wabridge sandbox`'s own variables, which may share a shell or an env file with `serve`.
                .filter(|(k, _)| !k.starts_with("WABRIDGE_SANDBOX_"))
                .filter(|(k, _)| !is_service_link(&k[ENV_PREFIX.len()..]))
                .collect(),
        )
    }
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("WABRIDGE_* environment variable")
    }

    fn data(&self) -> Result<FigMap<figment::Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (key, raw) in &self.0 {
            let path: Vec<String> =
                key[ENV_PREFIX.len()..].split("__").map(|p| p.to_ascii_lowercase()).collect();
            // Arrays and tables parse as TOML-ish values ("[\"a\",\"b\"]"); anything else stays text, read as a
            // number or boolean only where the field is one (see `Config::load`). Parsing scalars here would
            // turn a secret made of digits into a number, which a text field refuses, in an error that
            // prints it.
            let trimmed = raw.trim_start();
            let value: FigValue = if trimmed.starts_with('[') || trimmed.starts_with('{') {
                raw.parse().unwrap_or_else(|_| FigValue::from(raw.clone()))
            } else {
                FigValue::from(raw.clone())
            };
            insert_path(&mut root, &path, value);
        }
        let mut map = FigMap::new();
        map.insert(figment::Profile::Default, root);
        Ok(map)
    }
}

fn insert_path(dict: &mut Dict, path: &[String], value: FigValue) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict.entry(first.clone()).or_insert_with(|| FigValue::from(Dict::new()));
            if let FigValue::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = FigValue::from(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.backend(), Backend::Sqlite(PathBuf::from("data/wabridge.db")));
        assert_eq!(c.webhook.max_body_bytes, 3 * 1024 * 1024);
        assert!(!c.webhook.insecure_skip_signature);
        assert_eq!(c.retention.max_age_secs, 2_592_000);
    }

    #[test]
    fn database_urls_name_their_backend() {
        let backend =
            |url: &str| Config::load(None, env(&[("WABRIDGE_DATABASE__URL", url)])).map(|c| c.backend());
        assert_eq!(backend("POSTGRES://u@h/db").unwrap(), Backend::Postgres("POSTGRES://u@h/db".into()));
        assert_eq!(backend("postgresql://h/db").unwrap(), Backend::Postgres("postgresql://h/db".into()));
        assert_eq!(backend("sqlite://data/x.db").unwrap(), Backend::Sqlite(PathBuf::from("data/x.db")));
        assert_eq!(backend("sqlite:///var/x.db").unwrap(), Backend::Sqlite(PathBuf::from("/var/x.db")));
        assert_eq!(backend("sqlite:x.db").unwrap(), Backend::Sqlite(PathBuf::from("x.db")));
        assert_eq!(
            backend("/var/lib/wabridge.db").unwrap(),
            Backend::Sqlite(PathBuf::from("/var/lib/wabridge.db"))
        );
        assert_eq!(backend(" postgres://h/db ").unwrap(), Backend::Postgres("postgres://h/db".into()));
        for bad in ["postgress://u:pw-secret@h/db", "mysql://u:pw-secret@h/db", "://pw-secret", "  "] {
            let err = backend(bad).unwrap_err().to_string();
            assert!(err.contains("database.url") && !err.contains("pw-secret"), "{bad}: {err}");
        }
    }

    #[test]
    fn numbers_need_their_ids_and_appear_once() {
        let dir = std::env::temp_dir().join(format!("wabridge-cfg-numbers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |numbers: &str| {
            let file = dir.join("wabridge.toml");
            std::fs::write(&file, numbers).unwrap();
            Config::load(Some(&file), Vec::new())
        };
        let good = "[[numbers]]\nid = \"1\"\nwaba_id = \"10\"\n[[numbers]]\nid = \"2\"\nwaba_id = \"10\"\n";
        assert_eq!(load(good).unwrap().numbers.len(), 2);
        let no_waba = "[[numbers]]\nid = \"1\"\nwaba_id = \"\"\n";
        assert!(load(no_waba).unwrap_err().to_string().contains("waba_id"));
        let no_id = "[[numbers]]\nid = \" \"\nwaba_id = \"10\"\n";
        assert!(load(no_id).unwrap_err().to_string().contains("id"));
        let twice = "[[numbers]]\nid = \"1\"\nwaba_id = \"10\"\n[[numbers]]\nid = \"1\"\nwaba_id = \"11\"\n";
        assert!(load(twice).unwrap_err().to_string().contains("twice"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("wabridge-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wabridge.toml");
        std::fs::write(
            &file,
            r#"
listen = "0.0.0.0:9000"
[meta]
access_token = "from-file"
app_secrets = ["s1"]
[[numbers]]
id = "106540352242922"
waba_id = "102290129340398"
level_mps = 20
"#,
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("WABRIDGE_META__ACCESS_TOKEN", "from-env"),
                ("WABRIDGE_WEBHOOK__MAX_BODY_BYTES", "1000"),
                ("WABRIDGE_DATABASE__URL", "postgres://u@h/db"),
                ("OTHER_VAR", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.meta.access_token.as_ref().unwrap().expose_secret(), "from-env");
        assert_eq!(c.meta.app_secrets.len(), 1);
        assert_eq!(c.webhook.max_body_bytes, 1000);
        assert_eq!(c.numbers[0].level_mps, Some(20));
        assert_eq!(c.backend(), Backend::Postgres("postgres://u@h/db".into()));
        // Secrets never show in Debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("from-env") && !debug.contains("s1\"") && !debug.contains("u@h"), "{debug}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn secrets_made_of_digits_stay_text_and_numbers_still_read() {
        let c = Config::load(
            None,
            env(&[
                ("WABRIDGE_META__VERIFY_TOKEN", "839201748392"),
                ("WABRIDGE_ADMIN__PASSWORD", "0012345"),
                ("WABRIDGE_API__TOKENS", r#"["000111", "abc"]"#),
                ("WABRIDGE_WEBHOOK__INSECURE_SKIP_SIGNATURE", "true"),
                ("WABRIDGE_INTAKE__PG_COMMITTERS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.meta.verify_token.as_ref().unwrap().expose_secret(), "839201748392");
        assert_eq!(c.admin.password.as_ref().unwrap().expose_secret(), "0012345");
        let tokens: Vec<&str> = c.api.tokens.iter().map(ExposeSecret::expose_secret).collect();
        assert_eq!(tokens, ["000111", "abc"]);
        assert!(c.webhook.insecure_skip_signature);
        assert_eq!(c.intake.pg_committers, 3);
        // A number where a number is wanted is still checked, naming the field.
        let err = Config::load(None, env(&[("WABRIDGE_INTAKE__PG_COMMITTERS", "three")])).unwrap_err();
        assert!(err.to_string().contains("pg_committers"), "{err}");
    }

    #[test]
    fn the_webhook_path_is_checked() {
        for bad in ["webhook", "/metrics", "/v1/health", "/{x}"] {
            let err = Config::load(None, env(&[("WABRIDGE_WEBHOOK__PATH", bad)])).unwrap_err();
            assert!(err.to_string().contains("webhook.path"), "{bad}: {err}");
        }
        let c = Config::load(None, env(&[("WABRIDGE_WEBHOOK__PATH", "/hooks/meta")])).unwrap();
        assert_eq!(c.webhook.path, "/hooks/meta");
    }

    #[test]
    fn kubernetes_service_links_are_not_settings() {
        let c = Config::load(
            None,
            env(&[
                ("WABRIDGE_PORT", "tcp://10.0.0.7:8080"),
                ("WABRIDGE_PORT_8080_TCP_ADDR", "10.0.0.7"),
                ("WABRIDGE_SERVICE_HOST", "10.0.0.7"),
                ("WABRIDGE_SERVICE_PORT_HTTP", "8080"),
                ("WABRIDGE_POSTGRESQL_SERVICE_HOST", "10.0.0.8"),
                ("WABRIDGE_POSTGRESQL_PORT", "tcp://10.0.0.8:5432"),
                ("WABRIDGE_POSTGRESQL_PORT_5432_TCP_PROTO", "tcp"),
                ("WABRIDGE_LISTEN", "0.0.0.0:8080"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        // A real setting that is not one still names itself.
        let err = Config::load(None, env(&[("WABRIDGE_LISTN", "0.0.0.0:1")])).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let var = "WABRIDGE_HTTP__TRUSTED_PROXIES";
        let c = Config::load(None, env(&[(var, r#"["127.0.0.1", "10.0.0.0/8"]"#)])).unwrap();
        assert_eq!(c.http.trusted_proxies.len(), 2);
        assert!(c.http.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
        assert!(Config::load(None, env(&[])).unwrap().http.trusted_proxies.is_empty());
        let err = Config::load(None, env(&[(var, r#"["10.0.0.0/99"]"#)])).unwrap_err().to_string();
        assert!(err.contains("trusted_proxies") && err.contains("CIDR"), "{err}");
    }

    #[test]
    fn empty_secrets_are_refused() {
        for (var, value) in [
            ("WABRIDGE_API__TOKENS", r#"["good", ""]"#),
            ("WABRIDGE_META__APP_SECRETS", r#"[""]"#),
            ("WABRIDGE_META__VERIFY_TOKEN", ""),
            ("WABRIDGE_META__ACCESS_TOKEN", ""),
            ("WABRIDGE_ADMIN__PASSWORD", ""),
            ("WABRIDGE_CALLBACKS", r#"[{url = "http://127.0.0.1:9/x", secret = ""}]"#),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains("empty secret"), "{var}: {err}");
        }
    }

    #[test]
    fn a_syntax_error_in_the_file_does_not_quote_its_line() {
        let dir = std::env::temp_dir().join(format!("wabridge-config-syntax-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wabridge.toml");
        for text in [
            "[meta]\naccess_token = \"EAAGsecretvalue123\nverify_token = \"x\"\n",
            "[meta]\napp_secrets = [\"abc\\qsecretvalue123\"]\n",
            "[meta]\naccess_token = \"EAAGsecretvalue123\"\naccess_token = \"EAAGsecretvalue123\"\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
            assert!(!err.contains("secretvalue123"), "{err}");
            assert!(err.contains("line"), "the position stays: {err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted_in_the_error() {
        for (var, value) in [
            ("WABRIDGE_META__APP_SECRETS", "my-app-secret-value"),
            ("WABRIDGE_API__TOKENS", "my-api-token-value"),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(!err.contains(value), "{var}: {err}");
            assert!(err.contains("REDACTED"), "{var}: {err}");
        }
    }

    #[test]
    fn appsecret_proof_is_off_by_default_and_needs_an_app_secret() {
        assert!(!Config::load(None, env(&[])).unwrap().meta.appsecret_proof);
        let c = Config::load(
            None,
            env(&[
                ("WABRIDGE_META__APPSECRET_PROOF", "true"),
                ("WABRIDGE_META__APP_SECRETS", r#"["current", "previous"]"#),
            ]),
        )
        .unwrap();
        assert!(c.meta.appsecret_proof);
        let err = Config::load(None, env(&[("WABRIDGE_META__APPSECRET_PROOF", "true")])).unwrap_err();
        assert!(err.to_string().contains("meta.app_secrets"), "{err}");
    }

    /// A Cloud-compatible send answers `queued` before the caller's own timeout: the default wait ends well
    /// within the SDK's default request timeout (which counts from before the request is sent).
    #[test]
    fn the_cloud_send_wait_ends_before_the_sdks_timeout() {
        let c = Config::load(None, env(&[])).unwrap();
        let wait = std::time::Duration::from_millis(c.outbound.cloud_send_wait_ms);
        assert_eq!(wait, std::time::Duration::from_secs(20));
        assert!(wait + std::time::Duration::from_secs(5) <= wabridge_cloud::DEFAULT_REQUEST_TIMEOUT);
        let c = Config::load(None, env(&[("WABRIDGE_OUTBOUND__CLOUD_SEND_WAIT_MS", "1500")])).unwrap();
        assert_eq!(c.outbound.cloud_send_wait_ms, 1500);
    }

    /// Each numeric setting that would parse and then break the gateway at run time is refused at load, with
    /// its name in the error.
    #[test]
    fn numeric_settings_outside_their_range_are_refused_naming_them() {
        for (var, value, setting) in [
            ("WABRIDGE_DATABASE__MAX_CONNECTIONS", "0", "database.max_connections"),
            ("WABRIDGE_HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
            ("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "0", "http.body_read_timeout_secs"),
            ("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "86401", "http.body_read_timeout_secs"),
            ("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "18446744073709551615", "http.body_read_timeout_secs"),
            ("WABRIDGE_HTTP__MAX_JSON_BODY_BYTES", "0", "http.max_json_body_bytes"),
            ("WABRIDGE_WEBHOOK__MAX_BODY_BYTES", "0", "webhook.max_body_bytes"),
            ("WABRIDGE_EVENTS__PING_INTERVAL_MS", "0", "events.ping_interval_ms"),
            ("WABRIDGE_EVENTS__IDLE_TIMEOUT_MS", "0", "events.idle_timeout_ms"),
            ("WABRIDGE_EVENTS__IDLE_TIMEOUT_MS", "15000", "events.idle_timeout_ms"),
            ("WABRIDGE_DELIVERY__INITIAL_BACKOFF_MS", "0", "delivery.initial_backoff_ms"),
            ("WABRIDGE_DELIVERY__MAX_BACKOFF_MS", "0", "delivery.max_backoff_ms"),
            ("WABRIDGE_DELIVERY__MAX_BACKOFF_MS", "999", "delivery.max_backoff_ms"),
            ("WABRIDGE_DELIVERY__REQUEST_TIMEOUT_MS", "0", "delivery.request_timeout_ms"),
            ("WABRIDGE_ADMIN__TOKEN_TTL_SECS", "0", "admin.token_ttl_secs"),
            ("WABRIDGE_OUTBOUND__MAX_BACKLOG_PER_NUMBER", "0", "outbound.max_backlog_per_number"),
            ("WABRIDGE_OUTBOUND__MAX_BACKLOG_PER_NUMBER", "-5", "outbound.max_backlog_per_number"),
            ("WABRIDGE_OUTBOUND__MAX_ATTEMPTS", "0", "outbound.max_attempts"),
            ("WABRIDGE_OUTBOUND__MAX_ATTEMPTS", "-1", "outbound.max_attempts"),
            ("WABRIDGE_OUTBOUND__RETRY_BASE_MS", "0", "outbound.retry_base_ms"),
            ("WABRIDGE_OUTBOUND__RETRY_MAX_MS", "0", "outbound.retry_max_ms"),
            ("WABRIDGE_OUTBOUND__RETRY_MAX_MS", "86400001", "outbound.retry_max_ms"),
            ("WABRIDGE_OUTBOUND__DEPARTURE_LAG_MS", "60001", "outbound.departure_lag_ms"),
            ("WABRIDGE_OUTBOUND__WABA_CALLS_PER_HOUR", "0", "outbound.waba_calls_per_hour"),
            ("WABRIDGE_NUMBERS", r#"[{id = "1", waba_id = "10", level_mps = 0}]"#, "level_mps"),
        ] {
            let err = match Config::load(None, env(&[(var, value)])) {
                Ok(_) => panic!("{var}={value} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(setting), "{var}={value}: {err}");
        }
    }

    /// The defaults pass the checks, and so do the ends of each range.
    #[test]
    fn defaults_and_the_ends_of_the_ranges_load() {
        Config::default().validate().unwrap();
        for (var, value) in [
            ("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "86400"),
            ("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "1"),
            ("WABRIDGE_EVENTS__IDLE_TIMEOUT_MS", "15001"),
            ("WABRIDGE_DELIVERY__INITIAL_BACKOFF_MS", "1"),
            ("WABRIDGE_DELIVERY__MAX_BACKOFF_MS", "1000"),
            ("WABRIDGE_ADMIN__TOKEN_TTL_SECS", "1"),
            ("WABRIDGE_OUTBOUND__MAX_BACKLOG_PER_NUMBER", "1"),
            ("WABRIDGE_OUTBOUND__MAX_ATTEMPTS", "1"),
            ("WABRIDGE_OUTBOUND__RETRY_MAX_MS", "1000"),
            ("WABRIDGE_OUTBOUND__RETRY_MAX_MS", "86400000"),
            ("WABRIDGE_OUTBOUND__DEPARTURE_LAG_MS", "0"),
            ("WABRIDGE_OUTBOUND__DEPARTURE_LAG_MS", "60000"),
            ("WABRIDGE_OUTBOUND__MESSAGING_LIMIT", "0"),
        ] {
            if let Err(e) = Config::load(None, env(&[(var, value)])) {
                panic!("{var}={value} was refused: {e}");
            }
        }
        let c = Config::load(
            None,
            env(&[
                ("WABRIDGE_DELIVERY__INITIAL_BACKOFF_MS", "5"),
                ("WABRIDGE_DELIVERY__MAX_BACKOFF_MS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!((c.delivery.initial_backoff_ms, c.delivery.max_backoff_ms), (5, 5));
    }

    /// A configured callback is checked as `POST /v1/callbacks` checks one: a filter on a kind no event has
    /// (which would skip those events for good), a URL the gateway cannot POST to, a concurrency out of range.
    #[test]
    fn callbacks_of_the_configuration_are_checked_as_the_apis() {
        let load = |callbacks: &str| Config::load(None, env(&[("WABRIDGE_CALLBACKS", callbacks)]));
        for (callbacks, expected) in [
            (
                r#"[{url = "http://127.0.0.1:9/x", secret = "s", events = ["message", "statuses"]}]"#,
                &["callbacks[0]", "\"statuses\"", "message, status, payment, error, change, alert"][..],
            ),
            (
                r#"[{id = "app", url = "http://127.0.0.1:9/x", secret = "s", events = ["messages"]}]"#,
                &["callbacks[0] (id \"app\")", "\"messages\""][..],
            ),
            (
                r#"[{url = "ftp://u:pw-secret@h/x", secret = "s"}]"#,
                &["callbacks[0]", "url", "http or https"][..],
            ),
            (r#"[{url = "not a url", secret = "s"}]"#, &["callbacks[0]", "url"][..]),
            (
                r#"[{url = "http://h/a", secret = "s"}, {url = "http://h/b", secret = "s", max_concurrent = 0}]"#,
                &["callbacks[1]", "max_concurrent"][..],
            ),
            (r#"[{url = "http://h/a", secret = "s", max_concurrent = 257}]"#, &["max_concurrent"][..]),
        ] {
            let err = match load(callbacks) {
                Ok(_) => panic!("{callbacks} was accepted"),
                Err(e) => e.to_string(),
            };
            for part in expected {
                assert!(err.contains(part), "{callbacks}: {part:?} not in {err}");
            }
            assert!(!err.contains("pw-secret"), "the URL is never quoted: {err}");
        }
        let c = load(
            r#"[{url = "https://h/a", secret = "s", max_concurrent = 256, events = ["message", "alert"]}]"#,
        )
        .unwrap();
        assert_eq!(c.callbacks[0].events, ["message", "alert"]);
    }

    #[test]
    fn the_sandboxs_variables_are_not_the_gateways() {
        Config::load(None, env(&[("WABRIDGE_SANDBOX_SEED", "7")])).unwrap();
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let err = Config::load(None, env(&[("WABRIDGE_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::load(None, env(&[("WABRIDGE_LISTEN", "not an address")])).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }
}
