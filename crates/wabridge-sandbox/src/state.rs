//! The shared state of a running sandbox, and the ids it hands out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chaos::{Chaos, mix};
use crate::config::SandboxConfig;
use crate::counters::LiveCounters;
use crate::error::SandboxError;
use crate::lifecycle::Job;
use crate::limits::{Clock, PairLimiter, RollingQuota, TierTracker, nanos};
use crate::media::MediaStore;
use crate::numbers::Number;
use crate::sent::SentLog;
use crate::templates::TemplateStore;
use crate::users::Users;
use crate::webhooks::WebhookHub;

/// A handle on a sandbox's state: what [`crate::router`] serves. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SandboxState(pub(crate) Arc<Shared>);

/// Everything the routes and background tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub base_url: String,
    pub clock: Clock,
    pub numbers: Vec<Arc<Number>>,
    pub number_ids: Vec<String>,
    by_id: HashMap<String, usize>,
    pub waba_calls: RollingQuota,
    pub pair: PairLimiter,
    pub tier: TierTracker,
    pub users: Users,
    pub media: MediaStore,
    pub templates: TemplateStore,
    pub sent: SentLog,
    pub counters: LiveCounters,
    pub chaos: Chaos,
    pub hub: WebhookHub,
    pub jobs: mpsc::UnboundedSender<Job>,
    pub ids: IdGen,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
    /// Whether the app is subscribed to the WABA's webhooks (`subscribed_apps`).
    pub subscribed: AtomicBool,
    pub http: reqwest::Client,
}

impl SandboxState {
    /// Builds the state and starts its background tasks (status lifecycle, webhook delivery). Must be
    /// called inside a Tokio runtime. `base_url` is where clients reach the sandbox.
    ///
    /// # Errors
    /// When the configuration cannot work.
    pub fn start(config: SandboxConfig, base_url: String) -> Result<Self, SandboxError> {
        config.check().map_err(SandboxError::Config)?;
        let base_url = config.public_url.clone().unwrap_or(base_url).trim_end_matches('/').to_owned();
        let numbers: Vec<Arc<Number>> = config
            .numbers
            .iter()
            .enumerate()
            .map(|(i, n)| Arc::new(Number::new(i, n, &config.limits)))
            .collect();
        let number_ids: Vec<String> = numbers.iter().map(|n| n.id.clone()).collect();
        let by_id = number_ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        let http = reqwest::Client::builder()
            .timeout(config.webhooks.request_timeout)
            .build()
            .map_err(|e| SandboxError::Config(format!("HTTP client: {e}")))?;
        let (jobs, job_rx) = mpsc::unbounded_channel();
        let seed = config.chaos.seed;
        let shared = Arc::new(Shared {
            base_url,
            clock: Clock::new(),
            numbers,
            number_ids,
            by_id,
            waba_calls: RollingQuota::default(),
            pair: PairLimiter::default(),
            tier: TierTracker::default(),
            users: Users::new(&config.waba_id, &config.users.unreachable),
            media: MediaStore::default(),
            templates: TemplateStore::new(&config.templates.initial),
            sent: SentLog::new(config.history_limit),
            counters: LiveCounters::default(),
            chaos: Chaos::new(config.chaos.clone()),
            hub: WebhookHub::default(),
            jobs,
            ids: IdGen::new(seed),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            subscribed: AtomicBool::new(true),
            http,
            config,
        });
        crate::lifecycle::spawn(&shared, job_rx);
        for url in &shared.config.webhooks.callback_urls {
            shared.hub.add_target(&shared, url);
        }
        Ok(Self(shared))
    }

    /// Stops the background tasks and waits for them to finish.
    pub async fn shutdown(&self) {
        self.0.cancel.cancel();
        self.0.tasks.close();
        self.0.tasks.wait().await;
    }
}

impl Shared {
    /// The number with this Graph id.
    pub(crate) fn number(&self, id: &str) -> Option<&Arc<Number>> {
        self.by_id.get(id).map(|i| &self.numbers[*i])
    }

    /// Takes one call from the WABA's quota per rolling hour (80007 when exhausted).
    pub(crate) fn take_waba_call(&self) -> bool {
        let limit = self.config.limits.waba_calls_per_hour.max(1);
        let window = nanos(self.config.waba_calls_window);
        self.waba_calls.acquire(self.clock.now_ns(), window, limit)
    }

    /// Whether the control API accepts this `Authorization` header value.
    pub(crate) fn control_allowed(&self, authorization: Option<&str>) -> bool {
        match &self.config.control_token {
            None => true,
            Some(token) => authorization.and_then(|h| h.strip_prefix("Bearer ")).is_some_and(|t| {
                wabridge_types::signature::constant_time_eq(t.trim().as_bytes(), token.as_bytes())
            }),
        }
    }
}

/// Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Hands out wamids and numeric ids: unique per sandbox, reproducible under a chaos seed.
#[derive(Debug)]
pub(crate) struct IdGen {
    nonce: u64,
    seq: AtomicU64,
}

impl IdGen {
    fn new(seed: u64) -> Self {
        let nonce = if seed == 0 { rand::random::<u64>() } else { mix(seed) };
        Self { nonce, seq: AtomicU64::new(0) }
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A message id in Meta's style: `wamid.` and base64 of an opaque value naming the user (well
    /// under the 128-character limit).
    pub(crate) fn wamid(&self, wa_id: &str) -> String {
        let n = self.next();
        let mut raw = Vec::with_capacity(48);
        raw.extend_from_slice(b"\x15\x02\x00\x11\x18\x0c");
        raw.extend_from_slice(wa_id.as_bytes());
        raw.extend_from_slice(&self.nonce.to_be_bytes());
        raw.extend_from_slice(&n.to_be_bytes());
        let mut id = String::with_capacity(80);
        id.push_str("wamid.");
        // URL-safe alphabet, so a wamid can stand in a URL path (the control API's) as it is.
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw, &mut id);
        id
    }

    /// A numeric Graph id (media, templates, conversations): 16 digits, unique per sandbox.
    pub(crate) fn numeric(&self) -> String {
        let n = self.next();
        format!("{}{:07}", 100_000_000 + self.nonce % 900_000_000, n % 10_000_000)
    }

    /// A random-looking token (download keys).
    pub(crate) fn token(&self) -> String {
        let n = self.next();
        let a = mix(self.nonce ^ n);
        let b = mix(a ^ 0x5bd1_e995);
        format!("{a:016x}{b:016x}")
    }
}
