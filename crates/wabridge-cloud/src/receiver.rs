//! A client of the wabridge gateway's event stream, `GET /v1/events/ws` (feature `receiver`).
//!
//! It connects with a token, hands each event, typed, to your async handler, and advances its cursor only
//! once the handler returned `Ok` — so after a disconnect, a gateway restart or a handler error it
//! reconnects by itself (exponential backoff with jitter) and resumes right after the last event the
//! program HANDLED: nothing is skipped, and an event is handled twice only if the handler failed on it (or
//! the program stopped in the middle of it). It stops when the cancellation token fires.
//!
//! ```no_run
//! use wabridge_cloud::receiver::{Receiver, ReceiverConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), wabridge_cloud::receiver::ReceiverError> {
//! let config = ReceiverConfig::new("http://127.0.0.1:8080", "my-api-token").after(0);
//! let stop = CancellationToken::new();
//! let last = Receiver::new(config)
//!     .run(
//!         |event| async move {
//!             if let Some(message) = event.message() {
//!                 println!("{} wrote {:?}", message.from, message.type_name());
//!             }
//!             Ok::<(), std::convert::Infallible>(())
//!         },
//!         stop,
//!     )
//!     .await?;
//! println!("handled everything up to {last}");
//! # Ok(())
//! # }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use wabridge_types::webhook::{InboundMessage, Status};

/// One event of the gateway's log, as framed on the WebSocket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReceivedEvent {
    /// Its position in the log: strictly increasing; resume after it.
    pub seq: i64,
    /// `message`, `status`, `payment`, `error`, `change`, …
    pub kind: String,
    /// The webhook change's field, e.g. `messages`.
    pub field: String,
    /// The WhatsApp Business Account.
    #[serde(default)]
    pub waba_id: Option<String>,
    /// The business number, when the event concerns one.
    pub phone_number_id: Option<String>,
    /// The user's `wa_id`, when the event concerns one.
    pub contact: Option<String>,
    /// The change's `value`: for messages and statuses, the metadata, the contact and that one item.
    pub payload: Value,
    /// When the gateway committed it, Unix epoch milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
}

impl ReceivedEvent {
    /// The inbound message, for a `message` event.
    #[must_use]
    pub fn message(&self) -> Option<InboundMessage> {
        (self.kind == "message").then(|| self.first("messages")).flatten()
    }

    /// The status (or payment update), for a `status` or `payment` event.
    #[must_use]
    pub fn status(&self) -> Option<Status> {
        matches!(self.kind.as_str(), "status" | "payment").then(|| self.first("statuses")).flatten()
    }

    fn first<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        T::deserialize(self.payload.get(key)?.get(0)?).ok()
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ReceiverConfig {
    base_url: String,
    token: String,
    after: i64,
    phone_number_id: Option<String>,
    kinds: Vec<String>,
    backoff_initial: Duration,
    backoff_max: Duration,
    idle_timeout: Duration,
    /// For `wss://`: the trust anchors, when more than the public web roots (see
    /// [`root_certificates_pem`](ReceiverConfig::root_certificates_pem)).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("base_url", &self.base_url)
            .field("token", &"[REDACTED]")
            .field("after", &self.after)
            .field("phone_number_id", &self.phone_number_id)
            .field("kinds", &self.kinds)
            .field("private_roots", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ReceiverConfig {
    /// The gateway at `base_url` (`http://…`, `https://…`, `ws://…` or `wss://…`), with an API token.
    /// Starts after seq 0 (the whole log) unless [`after`](Self::after) says otherwise.
    #[must_use]
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            after: 0,
            phone_number_id: None,
            kinds: Vec::new(),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            tls: None,
        }
    }

    /// Resume after `seq`: the last sequence number the program handled (0: from the start of the log).
    #[must_use]
    pub fn after(mut self, seq: i64) -> Self {
        self.after = seq;
        self
    }

    /// Only events of this business number.
    #[must_use]
    pub fn phone_number_id(mut self, id: impl Into<String>) -> Self {
        self.phone_number_id = Some(id.into());
        self
    }

    /// Only events of these kinds.
    #[must_use]
    pub fn kinds<I: IntoIterator<Item = S>, S: Into<String>>(mut self, kinds: I) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    /// The first wait before reconnecting (doubling up to `max`, with jitter). Default 250 ms and 30 s.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Reconnect when nothing (not even a ping) came from the gateway for this long. Default 60 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Also trusts the certificates in `pem` for `wss://` and `https://` gateways — a certificate from a
    /// private CA, or a self-signed one. Without it, the public web roots (Mozilla's, built in) are trusted.
    ///
    /// # Errors
    /// [`ReceiverError::Config`] when `pem` holds no certificate or one rustls does not accept.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, ReceiverError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| ReceiverError::Config(format!("unreadable PEM: {e}")))?;
            roots.add(cert).map_err(|e| ReceiverError::Config(format!("certificate refused: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ReceiverError::Config("no certificate in the PEM data".into()));
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        self.tls = Some(Arc::new(config));
        Ok(self)
    }

    fn ws_url(&self, after: i64) -> String {
        let base = if let Some(rest) = self.base_url.strip_prefix("http") {
            format!("ws{rest}")
        } else {
            self.base_url.clone()
        };
        let mut url = format!("{base}/v1/events/ws?after={after}");
        if let Some(p) = &self.phone_number_id {
            url.push_str("&phone_number_id=");
            url.push_str(&encode(p));
        }
        if !self.kinds.is_empty() {
            url.push_str("&kind=");
            url.push_str(&encode(&self.kinds.join(",")));
        }
        url
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Why the receiver stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The gateway refused the token (401/403): retrying would not help.
    #[error("the gateway refused the credential (HTTP {0})")]
    Refused(u16),
    /// The URL or token cannot form a request.
    #[error("invalid receiver configuration: {0}")]
    Config(String),
}

/// The receiver; see the [module docs](self).
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    cursor: watch::Sender<i64>,
}

/// How one connection ended.
enum Ended {
    Cancelled,
    /// Reconnect; `progress` when events were handled on it (the backoff starts over).
    Retry {
        progress: bool,
    },
}

impl Receiver {
    /// A receiver for `config`.
    #[must_use]
    pub fn new(config: ReceiverConfig) -> Self {
        let (cursor, _) = watch::channel(config.after);
        Self { config, cursor }
    }

    /// The last seq handled, live (for a program that persists its cursor, or a test that waits on it).
    #[must_use]
    pub fn cursor(&self) -> watch::Receiver<i64> {
        self.cursor.subscribe()
    }

    /// Receives until `cancel` fires; returns the last seq handled. `handler` is called for one event at a
    /// time, in seq order; when it returns `Err`, the receiver reconnects and the event comes again.
    pub async fn run<H, Fut, E>(
        &self,
        mut handler: H,
        cancel: CancellationToken,
    ) -> Result<i64, ReceiverError>
    where
        H: FnMut(ReceivedEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let mut failures = 0_u32;
        loop {
            match self.connection(&mut handler, &cancel).await? {
                Ended::Cancelled => return Ok(*self.cursor.borrow()),
                Ended::Retry { progress } => {
                    failures = if progress { 0 } else { failures.saturating_add(1) };
                }
            }
            let wait = self.backoff(failures);
            tokio::select! {
                () = cancel.cancelled() => return Ok(*self.cursor.borrow()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let initial = self.config.backoff_initial.as_millis().max(1);
        let full = (initial << failures.min(20)).min(self.config.backoff_max.as_millis().max(1));
        let full = u64::try_from(full).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(full / 2..=full))
    }

    async fn connection<H, Fut, E>(
        &self,
        handler: &mut H,
        cancel: &CancellationToken,
    ) -> Result<Ended, ReceiverError>
    where
        H: FnMut(ReceivedEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let after = *self.cursor.borrow();
        let mut request = self
            .config
            .ws_url(after)
            .into_client_request()
            .map_err(|e| ReceiverError::Config(e.to_string()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.config.token))
            .map_err(|_| ReceiverError::Config("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        let connected = tokio::select! {
            () = cancel.cancelled() => return Ok(Ended::Cancelled),
            c = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(socket_config()),
                true,
                self.config.tls.clone().map(tokio_tungstenite::Connector::Rustls),
            ) => c,
        };
        let mut socket = match connected {
            Ok((socket, response)) => {
                // The gateway says how far retention deleted; above our cursor, events were lost to it.
                let pruned = response
                    .headers()
                    .get("x-wabridge-pruned-through")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i64>().ok());
                if let Some(pruned) = pruned.filter(|p| after > 0 && *p > after) {
                    tracing::warn!(
                        after,
                        pruned_through = pruned,
                        "event stream: events after our cursor were deleted by the gateway's retention before we \
                         read them; resuming with the oldest kept"
                    );
                }
                socket
            }
            Err(WsError::Http(response))
                if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) =>
            {
                return Err(ReceiverError::Refused(response.status().as_u16()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "event stream: connecting failed; will retry");
                return Ok(Ended::Retry { progress: false });
            }
        };
        tracing::debug!(after, "event stream connected");
        let mut progress = false;
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ok(Ended::Cancelled);
                }
                f = tokio::time::timeout(self.config.idle_timeout, socket.next()) => f,
            };
            let text = match frame {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return Ok(Ended::Retry { progress }),
                Ok(Some(Ok(_))) => continue,
                Err(_) => {
                    tracing::debug!("event stream: nothing heard within the idle timeout; reconnecting");
                    return Ok(Ended::Retry { progress });
                }
            };
            let event: ReceivedEvent = match serde_json::from_str(text.as_str()) {
                Ok(event) => event,
                Err(e) => {
                    // Never skipped: the next event would move the cursor past it. Read again after a
                    // reconnect (a gateway of another version may send what this client cannot read: the
                    // warning says so until one of them is upgraded).
                    tracing::warn!(error = %e, "event stream: a frame is not an event this client reads; reconnecting");
                    let _ = socket.close(None).await;
                    return Ok(Ended::Retry { progress });
                }
            };
            if event.seq <= *self.cursor.borrow() {
                continue;
            }
            let seq = event.seq;
            if let Err(e) = handler(event).await {
                tracing::warn!(seq, error = %e, "event handler failed; reconnecting to get the event again");
                let _ = socket.close(None).await;
                return Ok(Ended::Retry { progress });
            }
            self.cursor.send_replace(seq);
            progress = true;
        }
    }
}

/// The receiver's socket settings: tungstenite zero-fills its whole read buffer size before each read attempt
/// (128 KiB by default); 16 KiB still takes dozens of event frames per read.
fn socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024)
}
