//! Whether the gateway is ready, and whether the Cloud API answers: what `GET /v1/health` reports.
//!
//! The gateway is `uninitialized` from its start until the migrations ran, the outbound queue was recovered
//! (backlogs counted, schedulers started) and the template cache was loaded; sends meanwhile answer 503
//! with 1011 "Service not ready", as the On-Premises API did while its core application loaded. After
//! that it is `connected` when a cheap Cloud API call (the first number's node) succeeds, `connecting`
//! when it does not; the answer is cached for [`PROBE_TTL`] so health checks do not spend Meta's quota.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use wabridge_cloud::Client;
use wabridge_types::ids::PhoneNumberId;

use crate::api_error::ApiError;

/// How long a Cloud API probe's answer is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(5);
/// How long a probe may take before it counts as "no answer".
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The gateway's `gateway_status` in `/v1/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayStatus {
    /// Starting: migrations, queue recovery or the template cache are not done.
    Uninitialized,
    /// Ready, but the Cloud API does not answer (or no access token is configured).
    Connecting,
    /// Ready, and the Cloud API answers.
    Connected,
}

impl GatewayStatus {
    /// The On-Premises name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uninitialized => "uninitialized",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
        }
    }
}

/// Start-up progress and the cached Cloud API probe.
#[derive(Debug)]
pub struct Readiness {
    started: Instant,
    ready_after: OnceLock<Duration>,
    client: Option<Client>,
    probe_number: Option<String>,
    last_probe: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// Readiness of a gateway that started at `started`, probing the Cloud API through `client` by
    /// reading `probe_number`'s node.
    #[must_use]
    pub fn new(started: Instant, client: Option<Client>, probe_number: Option<String>) -> Self {
        Self {
            started,
            ready_after: OnceLock::new(),
            client,
            probe_number,
            last_probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Marks the gateway ready and logs the time it took since start; returns that time.
    pub fn mark_ready(&self) -> Duration {
        let took = self.started.elapsed();
        if self.ready_after.set(took).is_ok() {
            tracing::info!(ready_after_ms = took.as_millis(), "gateway ready");
        }
        self.ready_after.get().copied().unwrap_or(took)
    }

    /// The time from start to ready, once ready.
    #[must_use]
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after.get().copied()
    }

    /// Whether start-up is done.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready_after.get().is_some()
    }

    /// A 503 with 1011 "Service not ready" while starting.
    ///
    /// # Errors
    /// While the gateway is not ready.
    pub fn require_ready(&self) -> Result<(), ApiError> {
        if self.is_ready() {
            return Ok(());
        }
        Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: 1011,
            title: "Service not ready",
            details:
                "the gateway is starting (recovering the queue, loading templates); try again in a moment"
                    .into(),
        })
    }

    /// The current status, probing the Cloud API when the cached answer is older than [`PROBE_TTL`].
    pub async fn status(&self) -> GatewayStatus {
        if !self.is_ready() {
            return GatewayStatus::Uninitialized;
        }
        if self.cloud_answers().await { GatewayStatus::Connected } else { GatewayStatus::Connecting }
    }

    async fn cloud_answers(&self) -> bool {
        let (Some(client), Some(number)) = (&self.client, &self.probe_number) else { return false };
        let mut last = self.last_probe.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < PROBE_TTL
        {
            return ok;
        }
        let number = PhoneNumberId::new(number.as_str());
        let probe = client.phone_number(&number);
        let ok = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the Cloud API probe failed");
                false
            }
            Err(_) => {
                tracing::warn!("the Cloud API probe timed out");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        ok
    }
}
