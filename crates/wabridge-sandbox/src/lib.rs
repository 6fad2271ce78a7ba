//! A faithful local emulator of Meta's WhatsApp Business Cloud API.
//!
//! The sandbox answers the Graph routes wabridge and its users call (`/{vNN.0}/{phone-number-id}/messages`,
//! media, templates, phone numbers, business profile, `subscribed_apps`) with Meta's validation, error
//! codes and HTTP statuses, enforces Meta's limits with its own limiters (per-number throughput, pair
//! limit, the WABA's hourly calls, the 24-hour window, the messaging-limit tier), and delivers signed
//! webhooks — status lifecycles, inbound messages from simulated users, template reviews — with batching
//! and retries. A control API under `/_sandbox` (and [`Control`] in process) injects inbound messages,
//! shows what was sent, changes levels and sets faults; [`chaos`] adds duplicates, reordering, errors
//! and latency, deterministic under a seed.
//!
//! ## Control API
//!
//! JSON under `/_sandbox`, open unless `control_token` is configured (then `Authorization: Bearer
//! <control_token>`); [`Control`] does the same in process.
//!
//! | route | does |
//! |---|---|
//! | `GET /_sandbox` | base URL, WABA id, numbers with their levels, token, callback URLs |
//! | `POST /_sandbox/inbound` | inject an inbound message ([`Inbound`]) → `{"id": wamid}` |
//! | `GET /_sandbox/messages?phone_number_id=&to=&limit=` | sent messages with their statuses ([`SentRecord`]) |
//! | `GET /_sandbox/messages/{wamid}` | one sent message |
//! | `GET /_sandbox/counters` | [`Counters`]: accepted, rejected by code, failed by code, webhooks |
//! | `POST /_sandbox/reset` | back to the state at start |
//! | `POST /_sandbox/numbers/{id}/level` | change a number's level ([`LevelChange`]) |
//! | `PUT` / `DELETE /_sandbox/faults` | set / clear an injected error code ([`FaultInjection`]) |
//! | `GET` / `PUT /_sandbox/chaos` | read / replace the [`ChaosConfig`] |
//! | `GET` / `POST` / `DELETE /_sandbox/callbacks` | list / add (`{"url", "verify": true}`, after the GET handshake) / remove (`?url=`) |
//! | `POST /_sandbox/templates/{id}/status` | `{"status": "PAUSED"}`, announced by webhook |
//! | `POST /_sandbox/users/{wa_id}` | `{"unreachable": true}`: sends to that user fail with 131026 |
//!
//! Each Graph request is logged on one INFO line under the target [`REQUEST_LOG_TARGET`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), wabridge_sandbox::SandboxError> {
//! use wabridge_sandbox::{Sandbox, SandboxConfig};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let sandbox = Sandbox::start(SandboxConfig::for_tests(), listener).await?;
//! println!("Graph API at {}/v23.0, token {}", sandbox.base_url(), sandbox.access_token());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod chaos;
pub mod cli;
mod config;
mod control;
mod counters;
mod error;
mod inbound;
mod interactive;
mod lifecycle;
mod limits;
mod media;
mod numbers;
mod routes;
mod send_media;
mod sent;
mod state;
mod templates;
mod users;
mod webhooks;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use chaos::{ChaosConfig, FaultInjection, FaultScope};
pub use config::{
    AutoReply, MediaConfig, NumberConfig, SandboxConfig, ScriptedReply, StatusConfig, TemplateConfig,
    UsersConfig, WebhookConfig, WebhookShape,
};
pub use control::{Control, LevelChange};
pub use counters::Counters;
pub use error::{ApiError, SandboxError};
pub use inbound::Inbound;
pub use routes::{REQUEST_LOG_TARGET, router};
pub use sent::{SentFilter, SentRecord, StatusEntry};
pub use state::SandboxState;

/// How long [`Sandbox::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running sandbox: an HTTP server on its listener plus its background tasks.
#[derive(Debug)]
pub struct Sandbox {
    state: SandboxState,
    server: JoinHandle<std::io::Result<()>>,
}

impl Sandbox {
    /// Starts serving on `listener`. Callback URLs of the configuration get the verification handshake
    /// first when `webhooks.verify_at_start` is set.
    ///
    /// # Errors
    /// When the configuration cannot work, the listener has no local address, or a callback fails its
    /// handshake.
    pub async fn start(config: SandboxConfig, listener: TcpListener) -> Result<Sandbox, SandboxError> {
        let addr = listener.local_addr()?;
        let verify = config.webhooks.verify_at_start.then(|| config.webhooks.callback_urls.clone());
        let state = SandboxState::start(config, format!("http://{addr}"))?;
        for url in verify.into_iter().flatten() {
            let token = state.0.config.webhooks.verify_token.clone();
            if let Err(e) = webhooks::verify_callback(&state.0, &url, &token).await {
                state.shutdown().await;
                return Err(e);
            }
        }
        let app = router(state.clone());
        let cancel = state.0.cancel.clone();
        // No Nagle, as the gateway: answers leave at once.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await
        });
        Ok(Sandbox { state, server })
    }

    /// Where clients reach it: `http://127.0.0.1:PORT` (or the configured public URL).
    #[must_use]
    pub fn base_url(&self) -> String {
        self.state.0.base_url.clone()
    }

    /// The WABA id.
    #[must_use]
    pub fn waba_id(&self) -> &str {
        &self.state.0.config.waba_id
    }

    /// The phone number ids, in configuration order.
    #[must_use]
    pub fn phone_number_ids(&self) -> Vec<String> {
        self.state.0.number_ids.clone()
    }

    /// The (first) access token to call the Graph routes with.
    #[must_use]
    pub fn access_token(&self) -> &str {
        self.state.0.config.access_tokens.first().map_or("", String::as_str)
    }

    /// The app secret that signs webhooks, if any.
    #[must_use]
    pub fn app_secret(&self) -> Option<&str> {
        self.state.0.config.app_secret.as_deref()
    }

    /// The in-process control handle.
    #[must_use]
    pub fn control(&self) -> Control {
        Control { shared: self.state.0.clone() }
    }

    /// The state, e.g. to build a second [`router`] on it.
    #[must_use]
    pub fn state(&self) -> SandboxState {
        self.state.clone()
    }

    /// Stops accepting requests, lets open ones finish (a few seconds at most) and stops every
    /// background task; pending webhooks are dropped.
    pub async fn shutdown(self) {
        self.state.0.cancel.cancel();
        let mut server = self.server;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
            server.abort();
        }
        self.state.shutdown().await;
    }
}
