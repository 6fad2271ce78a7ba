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
    pub webhook: WebhookConfig,
    pub intake: IntakeConfig,
    pub retention: RetentionConfig,
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
            webhook: WebhookConfig::default(),
            intake: IntakeConfig::default(),
            retention: RetentionConfig::default(),
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
    /// PostgreSQL pool size. Default 16.
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
        match self.database.url.as_ref().map(|u| u.expose_secret().to_owned()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Backend::Postgres(url)
            }
            Some(url) => {
                let path = url.strip_prefix("sqlite://").unwrap_or(&url);
                Backend::Sqlite(PathBuf::from(path))
            }
            None => Backend::Sqlite(self.data_dir.join("wabridge.db")),
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
    /// App secrets that sign Meta's webhooks (`X-Hub-Signature-256`). Several during a rotation.
    pub app_secrets: Vec<SecretString>,
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
    /// number shared with the WhatsApp Business app). Optional.
    #[serde(default)]
    pub level_mps: Option<u32>,
}

/// The webhook endpoint Meta calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Path of the webhook endpoint. Default `/webhook`.
    pub path: String,
    /// Largest accepted body in bytes; larger → 413. Default 3 MiB (Meta's payloads are at most 3 MB).
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
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { max_batch: 1024, queue_capacity: 8192 }
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
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { max_age_secs: 30 * 24 * 3600, prune_interval_secs: 3600 }
    }
}

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
        figment.extract().map_err(|e| ConfigError(Box::new(e)))
    }
}

/// `WABRIDGE_*` variables as a figment provider, from a given list rather than the process environment.
#[derive(Debug, Default)]
struct EnvVars(Vec<(String, String)>);

impl FromIterator<(String, String)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.len() > ENV_PREFIX.len())
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
            // Values parse as TOML-ish scalars or arrays ("true", "80", "[\"a\",\"b\"]"), else stay strings.
            let value: FigValue = raw.parse().unwrap_or_else(|_| FigValue::from(raw.clone()));
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
    fn unknown_field_is_an_error_naming_it() {
        let err = Config::load(None, env(&[("WABRIDGE_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::load(None, env(&[("WABRIDGE_LISTEN", "not an address")])).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }
}
