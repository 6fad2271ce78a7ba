//! The axum router that receives Meta's webhooks (feature `axum`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use wabridge_types::limits::WEBHOOK_BODY_MAX_BYTES;
use wabridge_types::signature::{SIGNATURE_HEADER, constant_time_eq, verify};
use wabridge_types::webhook::Envelope;

use super::{Event, events};
use crate::token::AppSecret;

/// Why a [`WebhookConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    /// The verify token is empty: `hub.verify_token=` (which anyone can send) would match it.
    #[error("the webhook verify token is empty")]
    EmptyVerifyToken,
    /// An app secret is empty: anyone can sign a body with an empty HMAC key.
    #[error("a webhook app secret is empty")]
    EmptyAppSecret,
}

/// What the webhook router checks requests against.
#[derive(Clone)]
pub struct WebhookConfig {
    path: String,
    verify_token: AppSecret,
    app_secrets: Vec<AppSecret>,
    max_body_bytes: usize,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("path", &self.path)
            .field("verify_token", &"[redacted]")
            .field("app_secrets", &format_args!("[{} redacted]", self.app_secrets.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl WebhookConfig {
    /// Checks GET verifications against `verify_token` (the one entered in the App Dashboard) and POST
    /// signatures against `app_secret`. Served at `/webhook`, bodies up to 3 MB plus headroom.
    ///
    /// # Errors
    /// An empty verify token or app secret: either would let anyone through (an empty
    /// `hub.verify_token=`, a body signed with an empty key).
    pub fn new(
        verify_token: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Result<Self, WebhookConfigError> {
        let verify_token = verify_token.into();
        if verify_token.is_empty() {
            return Err(WebhookConfigError::EmptyVerifyToken);
        }
        let app_secret = app_secret.into();
        if app_secret.is_empty() {
            return Err(WebhookConfigError::EmptyAppSecret);
        }
        Ok(Self {
            path: "/webhook".to_owned(),
            verify_token: AppSecret::new(verify_token),
            app_secrets: vec![AppSecret::new(app_secret)],
            // Meta's payloads are at most 3 MB [L]; keep headroom rather than refuse a genuine one.
            max_body_bytes: WEBHOOK_BODY_MAX_BYTES * 2,
        })
    }

    /// Serves the webhook at `path` instead of `/webhook`.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Also accepts signatures made with another app secret (during a secret rotation).
    ///
    /// # Errors
    /// [`WebhookConfigError::EmptyAppSecret`] for an empty secret.
    pub fn also_accept_secret(mut self, app_secret: impl Into<String>) -> Result<Self, WebhookConfigError> {
        let app_secret = app_secret.into();
        if app_secret.is_empty() {
            return Err(WebhookConfigError::EmptyAppSecret);
        }
        self.app_secrets.push(AppSecret::new(app_secret));
        Ok(self)
    }

    /// The largest body accepted, in bytes.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// What the router calls with each event of a verified webhook. Any `async` closure
/// `Fn(Event) -> Future<Output = Result<(), E>>` is one.
///
/// The router answers Meta 200 only after every call for the webhook's events succeeded, and 500 when one
/// failed, so that Meta delivers the webhook again (Meta retries for up to 7 days; expect duplicates and
/// dedupe on [`super::EventContext::dedupe_key`]).
pub trait WebhookHandler: Send + Sync + 'static {
    /// Why handling failed; logged, never sent to Meta.
    type Error: fmt::Display + Send;

    /// Handles one event.
    fn handle(&self, event: Event) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<F, Fut, E> WebhookHandler for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: fmt::Display + Send,
{
    type Error = E;

    fn handle(&self, event: Event) -> impl Future<Output = Result<(), E>> + Send {
        self(event)
    }
}

struct Shared<H> {
    config: WebhookConfig,
    handler: H,
}

/// A router serving the webhook at the configured path (`/webhook`):
/// - `GET` answers Meta's verification: with `hub.mode=subscribe` and the right `hub.verify_token`, 200 with
///   the raw `hub.challenge`; otherwise 403;
/// - `POST` verifies `X-Hub-Signature-256` over the raw body bytes (401 when it does not match), parses the
///   envelope (400 when it is not one), calls `handler` with each [`Event`] in order, and answers 200 once
///   all succeeded, 500 otherwise.
///
/// Merge it into an application's router, or serve it alone.
pub fn router<H: WebhookHandler>(config: WebhookConfig, handler: H) -> Router {
    let path = config.path.clone();
    let limit = config.max_body_bytes;
    let shared = Arc::new(Shared { config, handler });
    Router::new()
        .route(&path, get(verify_subscription::<H>).post(receive::<H>))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

async fn verify_subscription<H: WebhookHandler>(
    State(shared): State<Arc<Shared<H>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mode_ok = query.get("hub.mode").is_some_and(|m| m == "subscribe");
    // An empty token never matches (the configuration refuses an empty one; this holds whatever it holds).
    let expected = shared.config.verify_token.expose().as_bytes();
    let token_ok = query
        .get("hub.verify_token")
        .is_some_and(|t| !t.is_empty() && !expected.is_empty() && constant_time_eq(t.as_bytes(), expected));
    match query.get("hub.challenge") {
        Some(challenge) if mode_ok && token_ok => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!(mode_ok, token_ok, "webhook verification refused");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

async fn receive<H: WebhookHandler>(
    State(shared): State<Arc<Shared<H>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) =
        verify(signature, &body, &shared.config.app_secrets.iter().map(|s| s.expose()).collect::<Vec<_>>())
    {
        tracing::warn!(error = %e, "webhook signature refused");
        return StatusCode::UNAUTHORIZED;
    }
    let envelope = match Envelope::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e, "signed webhook is not an envelope");
            return StatusCode::BAD_REQUEST;
        }
    };
    for event in events(&envelope) {
        if let Err(e) = shared.handler.handle(event).await {
            tracing::warn!(error = %e, "webhook handler failed; answering 500 so that Meta retries");
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    StatusCode::OK
}
