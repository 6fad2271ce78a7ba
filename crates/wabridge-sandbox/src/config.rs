//! The sandbox's configuration: every figure and duration it uses, with Meta's values as defaults.
//!
//! Durations are written in milliseconds when (de)serialized, so `{"statuses":{"sent_delay":5}}` means
//! five milliseconds. [`SandboxConfig::for_tests`] shortens every delay so tests run in milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wabridge_types::limits::{Limits, ThroughputLevel, duration_ms};
use wabridge_types::template::TemplateDefinition;

use crate::chaos::ChaosConfig;

/// Everything the sandbox can be told. `Default` gives Meta's figures (`cloud-api.md` §7) and
/// production-like delays; every field can be changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// The WhatsApp Business Account id the sandbox pretends to be.
    pub waba_id: String,
    /// The business phone numbers of the WABA.
    pub numbers: Vec<NumberConfig>,
    /// Bearer tokens accepted on the Graph routes; any other token is answered with 190 (HTTP 401).
    pub access_tokens: Vec<String>,
    /// The app secret: signs webhooks (`X-Hub-Signature-256`) and checks `appsecret_proof`: a proof a
    /// client sends must match it (code 100), whether or not proofs are required.
    pub app_secret: Option<String>,
    /// Refuse Graph calls without an `appsecret_proof` (code 100), as an app with "Require App Secret"
    /// does. Needs `app_secret`.
    pub require_appsecret_proof: bool,
    /// Bearer token for the control API under `/_sandbox`; `None` leaves it open (it listens on a local
    /// address in every intended use).
    pub control_token: Option<String>,
    /// The URL clients reach the sandbox at, used in media URLs and paging links; `None`: the address
    /// it listens on.
    pub public_url: Option<String>,
    /// Throughput, pair, WABA and window limits (Meta's documented figures by default).
    pub limits: Limits,
    /// Burst tolerance of the per-number throughput limiter, as time: 100 ms, i.e. one tenth of a
    /// second's worth of messages at the number's level. Meta documents no burst allowance; this
    /// figure is our reading [R].
    #[serde(with = "duration_ms")]
    pub throughput_burst: Duration,
    /// The window over which `limits.waba_calls_per_hour` is counted (one hour; shorten for tests).
    #[serde(with = "duration_ms")]
    pub waba_calls_window: Duration,
    /// How and when outbound messages move through sent → delivered → read.
    pub statuses: StatusConfig,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Media storage.
    pub media: MediaConfig,
    /// Message templates.
    pub templates: TemplateConfig,
    /// Simulated users.
    pub users: UsersConfig,
    /// Fault injection; all off by default.
    pub chaos: ChaosConfig,
    /// How many sent messages are kept for inspection through the control API (oldest dropped first).
    pub history_limit: usize,
}

/// A business phone number of the sandbox's WABA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberConfig {
    /// The Graph id of the number (`phone_number_id`).
    pub id: String,
    /// The number itself, digits only, as webhooks' `metadata.display_phone_number` carry it; Graph's
    /// phone-number objects show it formatted (`15550783881` → `+1 555-078-3881`).
    pub display_phone_number: String,
    /// The verified business name.
    pub verified_name: String,
    /// The throughput level reported by `?fields=throughput`.
    pub level: ThroughputLevel,
    /// Messages per second enforced instead of the level's figure: 20 for a coexistence number, a
    /// large figure to lift the limit for benchmarks.
    pub mps: Option<u32>,
    /// Whether the number starts registered (an unregistered number answers 133010 to sends).
    pub registered: bool,
    /// The two-step verification PIN, when one is set (`register` then checks it: 133005).
    pub pin: Option<String>,
}

/// The status lifecycle of accepted messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusConfig {
    /// Time from acceptance to the `sent` (or `failed`) status.
    #[serde(with = "duration_ms")]
    pub sent_delay: Duration,
    /// Time from acceptance to `delivered`.
    #[serde(with = "duration_ms")]
    pub delivered_delay: Duration,
    /// Time from acceptance to `read`.
    #[serde(with = "duration_ms")]
    pub read_delay: Duration,
    /// Probability that a sent message is delivered (0.0–1.0).
    pub delivered_probability: f64,
    /// Probability that a delivered message is read (0.0–1.0).
    pub read_probability: f64,
}

/// The shape of webhook payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookShape {
    /// `cloud-api.md` §8: `contacts` in status webhooks, business-scoped user ids, usernames, PMP.
    #[default]
    Current,
    /// The shape before business-scoped ids: no `contacts` in statuses, no user ids, CBP pricing.
    Legacy,
}

/// Webhook delivery to the callback URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Where webhooks go (more can be added at run time through the control API).
    pub callback_urls: Vec<String>,
    /// The `hub.verify_token` sent in the GET verification handshake.
    pub verify_token: String,
    /// Perform the GET verification handshake for the URLs configured here at start.
    pub verify_at_start: bool,
    /// Payload shape.
    pub shape: WebhookShape,
    /// At most this many events (messages, statuses, changes) in one POST: events that piled up while
    /// a delivery was in flight or being retried are sent together.
    pub batch_max: usize,
    /// Concurrent POSTs per callback URL.
    pub max_in_flight: usize,
    /// Events waiting per callback URL beyond which the oldest are dropped.
    pub max_pending: usize,
    /// Timeout of one POST; a slower receiver counts as failed.
    #[serde(with = "duration_ms")]
    pub request_timeout: Duration,
    /// First retry delay after a failed delivery; doubled after each consecutive failure [R].
    #[serde(with = "duration_ms")]
    pub retry_initial: Duration,
    /// The longest delay between retries [R].
    #[serde(with = "duration_ms")]
    pub retry_max_interval: Duration,
    /// Events not delivered within this age are dropped: 7 days, as Meta (§3).
    #[serde(with = "duration_ms")]
    pub max_age: Duration,
}

/// Media storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// How long a URL from `GET /{media-id}` can be downloaded: 5 minutes (§4).
    #[serde(with = "duration_ms")]
    pub url_ttl: Duration,
    /// How long an uploaded media id lives: 30 days (§4).
    #[serde(with = "duration_ms")]
    pub retention: Duration,
}

/// Message templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateConfig {
    /// Templates present at start (by default `hello_world` and a few others, all approved).
    pub initial: Vec<TemplateDefinition>,
    /// Time from creation (PENDING) to the review's outcome.
    #[serde(with = "duration_ms")]
    pub review_delay: Duration,
    /// A created template whose name contains one of these is REJECTED; others are APPROVED.
    pub reject_names_containing: Vec<String>,
}

/// What simulated users do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsersConfig {
    /// Recipients that are not on WhatsApp: messages to them fail with 131026.
    pub unreachable: Vec<String>,
    /// Automatic replies of simulated users to messages they read, for demos.
    pub auto_reply: AutoReply,
}

/// How simulated users answer the business.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum AutoReply {
    /// Users never answer on their own.
    #[default]
    Off,
    /// Users answer every text they receive with `echo: <text>`.
    Echo,
    /// Users answer texts containing `contains` with `reply` (first matching rule wins).
    Scripted {
        /// The rules.
        rules: Vec<ScriptedReply>,
    },
}

/// One rule of [`AutoReply::Scripted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedReply {
    /// Text (case-insensitive) the business's message must contain.
    pub contains: String,
    /// What the user answers.
    pub reply: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            waba_id: "102290129340398".to_owned(),
            numbers: vec![NumberConfig::default()],
            access_tokens: vec!["sandbox-token".to_owned()],
            app_secret: Some("sandbox-secret".to_owned()),
            require_appsecret_proof: false,
            control_token: None,
            public_url: None,
            limits: Limits::default(),
            throughput_burst: Duration::from_millis(100),
            waba_calls_window: Duration::from_secs(3600),
            statuses: StatusConfig::default(),
            webhooks: WebhookConfig::default(),
            media: MediaConfig::default(),
            templates: TemplateConfig::default(),
            users: UsersConfig::default(),
            chaos: ChaosConfig::default(),
            history_limit: 100_000,
        }
    }
}

impl Default for NumberConfig {
    fn default() -> Self {
        Self {
            id: "106540352242922".to_owned(),
            display_phone_number: "15550783881".to_owned(),
            verified_name: "Sandbox Business".to_owned(),
            level: ThroughputLevel::Standard,
            mps: None,
            registered: true,
            pin: None,
        }
    }
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            sent_delay: Duration::from_millis(300),
            delivered_delay: Duration::from_secs(1),
            read_delay: Duration::from_secs(3),
            delivered_probability: 1.0,
            read_probability: 0.8,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            callback_urls: Vec::new(),
            verify_token: "sandbox-verify-token".to_owned(),
            verify_at_start: false,
            shape: WebhookShape::Current,
            batch_max: 50,
            max_in_flight: 4,
            max_pending: 1_000_000,
            request_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max_interval: Duration::from_secs(3600),
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self { url_ttl: Duration::from_secs(300), retention: Duration::from_secs(30 * 24 * 3600) }
    }
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            initial: crate::templates::builtin(),
            review_delay: Duration::from_secs(5),
            reject_names_containing: vec!["reject".to_owned()],
        }
    }
}

impl Default for UsersConfig {
    fn default() -> Self {
        Self { unreachable: vec!["15550000000".to_owned()], auto_reply: AutoReply::Off }
    }
}

impl SandboxConfig {
    /// A configuration for tests: one WABA, two numbers, token `sandbox-token`, app secret
    /// `sandbox-secret`, every delay a few milliseconds, every status reached (no randomness).
    #[must_use]
    pub fn for_tests() -> Self {
        let second = NumberConfig {
            id: "106540352242923".to_owned(),
            display_phone_number: "15550783882".to_owned(),
            verified_name: "Sandbox Business Two".to_owned(),
            ..NumberConfig::default()
        };
        let limits = Limits { upgrade_pause: Duration::from_millis(50), ..Limits::default() };
        Self {
            numbers: vec![NumberConfig::default(), second],
            limits,
            statuses: StatusConfig {
                sent_delay: Duration::from_millis(5),
                delivered_delay: Duration::from_millis(10),
                read_delay: Duration::from_millis(15),
                delivered_probability: 1.0,
                read_probability: 1.0,
            },
            webhooks: WebhookConfig {
                request_timeout: Duration::from_secs(2),
                retry_initial: Duration::from_millis(10),
                retry_max_interval: Duration::from_millis(100),
                ..WebhookConfig::default()
            },
            templates: TemplateConfig {
                review_delay: Duration::from_millis(20),
                ..TemplateConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks what the sandbox cannot run without.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.numbers.is_empty() {
            return Err("at least one phone number is required".into());
        }
        if self.access_tokens.is_empty() {
            return Err("at least one access token is required".into());
        }
        if self.require_appsecret_proof && self.app_secret.is_none() {
            return Err("require_appsecret_proof needs an app secret".into());
        }
        let mut ids: Vec<&str> = self.numbers.iter().map(|n| n.id.as_str()).collect();
        ids.push(&self.waba_id);
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("phone number ids and the WABA id must all differ".into());
        }
        if self.webhooks.batch_max == 0 || self.webhooks.max_in_flight == 0 {
            return Err("webhooks.batch_max and webhooks.max_in_flight must be at least 1".into());
        }
        Ok(())
    }
}
