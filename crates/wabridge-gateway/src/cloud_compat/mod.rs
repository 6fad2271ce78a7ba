//! The Cloud-compatible routes: an application written for the Cloud API works through wabridge by
//! changing only its base URL (and using a wabridge API key as its access token).
//!
//! `POST /{version}/{phone-number-id}/messages` goes through the same durable queue, scheduler and limits
//! as `/v1/messages`, but answers like Meta: it waits until the message was sent and returns Meta's wamid
//! (see [`messages`]). The media routes go to the Cloud API ([`media`]). Errors are in the Graph shape `{"error":{message,type,code,error_data,fbtrace_id}}`.

pub mod media;
pub mod messages;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use wabridge_cloud::{AppSecret, AppSecretProvider, Client, CloudError};
use wabridge_types::error::GraphError;

use crate::AppState;
use crate::auth::{Principal, Scope};
use crate::config::Config;

/// The routes of this module.
pub fn routes() -> Router<Arc<AppState>> {
    // One parameter name per position: axum's router requires it of overlapping paths.
    // Each path also with one trailing slash, which Graph takes (Meta's own "Delete Media" example has one).
    let upload = || post(media::upload).layer(axum::extract::DefaultBodyLimit::max(crate::MEDIA_BODY_LIMIT));
    let messages = || post(messages::send).put(read_receipt_by_put);
    Router::new()
        .route("/{version}/{node}/messages", messages())
        .route("/{version}/{node}/messages/", messages())
        .route("/{version}/{node}/media", upload())
        .route("/{version}/{node}/media/", upload())
        .route("/{version}/{node}/download", get(media::download))
        .route("/{version}/{node}/download/", get(media::download))
        .route("/{version}/{node}", get(media::info).delete(media::delete))
        .route("/{version}/{node}/", get(media::info).delete(media::delete))
}

/// `PUT /{version}/{phone-number-id}/messages`: the older form of a read receipt, as in Meta's "Mark Message
/// As Read" example. Only a read receipt is taken this way; anything else is refused as Graph refuses it.
async fn read_receipt_by_put(
    state: axum::extract::State<Arc<AppState>>,
    arrived: Option<axum::extract::Extension<Arrived>>,
    principal: GraphPrincipal,
    path: axum::extract::Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, GraphApiError> {
    let receipt = serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|v| v.get("status").and_then(serde_json::Value::as_str) == Some("read"));
    if !receipt {
        return Err(GraphApiError::new(
            100,
            "Unsupported put request: PUT on messages only marks a message as read (\"status\": \"read\")",
        ));
    }
    messages::send(state, arrived, principal, path, body).await
}

/// The Cloud API client of the gateway (`meta.graph_url`, `meta.api_version`, the current access token of
/// `secrets`); `None` without an access token at start. It is the one client of every Graph call the
/// gateway makes — sends, read receipts, media, templates, the health probe — so with
/// `meta.appsecret_proof` each of them carries the proof, made with the current first app secret (a reload
/// takes effect at the next call).
#[must_use]
pub fn cloud_client(config: &Config, secrets: &Arc<crate::reload::Secrets>) -> Option<Client> {
    config.meta.access_token.as_ref()?;
    let mut builder = Client::builder()
        .base_url(config.meta.graph_url.clone())
        .api_version(config.meta.api_version.clone())
        .token_provider(crate::reload::ReloadableToken(secrets.clone()));
    if config.meta.appsecret_proof {
        builder = builder.app_secret_provider(ProofSecret(secrets.clone()));
    }
    builder.build().map_err(|e| tracing::error!(error = %e, "cannot build the Cloud API client")).ok()
}

/// The app secret of the `appsecret_proof`: the first of the current `meta.app_secrets` (during a rotation,
/// list the secret Meta now holds first; the others still verify webhooks).
#[derive(Debug, Clone)]
struct ProofSecret(Arc<crate::reload::Secrets>);

impl AppSecretProvider for ProofSecret {
    fn app_secret(&self) -> Option<AppSecret> {
        let first = self.0.app_secrets().into_iter().next();
        if first.is_none() {
            tracing::error!(
                "meta.appsecret_proof is on but no app secret is configured; calls go without a proof"
            );
        }
        first.map(|s| AppSecret::new(s.expose_secret().to_owned()))
    }
}

/// When a Cloud-compatible request arrived (its headers were read): what its waits are measured from, as the
/// caller's own timeout runs from before it sent the request.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub tokio::time::Instant);

/// An error of a Cloud-compatible route, answered in the Graph shape with Meta's HTTP status for its code.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphApiError(pub Box<GraphError>);

impl GraphApiError {
    /// An error with `code` (its title from Meta's table) and `details`.
    #[must_use]
    pub fn new(code: i64, details: impl Into<String>) -> Self {
        Self(Box::new(GraphError::new(code, details)))
    }

    /// Meta refused the `appsecret_proof` of the gateway's own Graph calls (missing or wrong): code 2, as
    /// for a refused gateway token — a 100 would tell the caller its own request was at fault.
    #[must_use]
    pub fn appsecret_proof_refused(meta_says: &str) -> Self {
        tracing::warn!(
            "Meta refused the gateway's appsecret_proof: set meta.appsecret_proof = true, with the app's \
             current secret first in meta.app_secrets"
        );
        Self::new(
            2,
            format!(
                "Meta refused the gateway's Cloud API call for its appsecret_proof ({meta_says}): the app \
                 requires one; set meta.appsecret_proof = true, with the app's current secret first in \
                 meta.app_secrets"
            ),
        )
    }

    /// What the Cloud API answered, or 131000 for a failure without a Graph error (transport).
    #[must_use]
    pub fn from_cloud(e: &CloudError) -> Self {
        match e.graph_error() {
            // Meta refusing the gateway's own access token: the caller's (wabridge) token is fine, and a
            // 190 would make its SDK throw away a good credential.
            Some(g) if matches!(g.code, 0 | 190) => {
                tracing::warn!(error = %e, "Meta refused the gateway's access token (meta.access_token)");
                Self::new(2, format!("the gateway's Cloud API access token was refused: {}", g.message))
            }
            // Meta refusing the gateway's proof: the caller's own call had nothing to prove.
            Some(g) if wabridge_cloud::is_appsecret_proof_refusal(g) => {
                Self::appsecret_proof_refused(g.details().unwrap_or(&g.message))
            }
            Some(g) => Self(Box::new(g.clone())),
            // Refused by the SDK before any call: the request breaks a documented limit (parameter error).
            None if matches!(e, CloudError::Invalid(_)) => Self::new(100, format!("{e}: {}", source_text(e))),
            None if matches!(e, CloudError::Media(_)) => Self::new(131_053, e.to_string()),
            None => {
                tracing::warn!(error = %e, "Cloud API call failed");
                Self::new(131_000, "the Cloud API could not be reached; retry later")
            }
        }
    }
}

/// Middleware of the Cloud-compatible routes: every error answer is a Graph error, also those axum makes
/// before a handler runs (a form that does not parse, a body over the limit); the HTTP status stays. It also
/// notes when the request arrived ([`Arrived`]).
pub(crate) async fn graph_errors(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    request.extensions_mut().insert(Arrived(tokio::time::Instant::now()));
    let (status, details) = match crate::api_error::plain_error(next.run(request).await).await {
        Ok(plain) => plain,
        Err(response) => return response,
    };
    let code = match status.as_u16() {
        401 => 190,
        403 => 10,
        500..=599 => 131_000,
        _ => 100,
    };
    let mut response = GraphApiError::new(code, details).into_response();
    *response.status_mut() = status;
    response
}

/// The text of an error's source (the field and limit of a validation error).
fn source_text(e: &CloudError) -> String {
    std::error::Error::source(e).map(ToString::to_string).unwrap_or_default()
}

impl IntoResponse for GraphApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = *self.0;
        if error.fbtrace_id.is_none() {
            error.fbtrace_id = Some(format!("wabridge-{}", uuid::Uuid::new_v4().simple()));
        }
        (status, Json(error.into_envelope())).into_response()
    }
}

/// A caller of a Cloud-compatible route: a wabridge API key (or login token, or configured token) used as
/// the bearer access token. Refusals are Graph errors: 190 (401) for a bad token, 10 (403) for a missing
/// scope.
#[derive(Debug, Clone)]
pub struct GraphPrincipal(pub Principal);

impl GraphPrincipal {
    /// Succeeds when the caller holds `scope`.
    ///
    /// # Errors
    /// Graph error 10 (permission denied) otherwise.
    pub fn require(&self, scope: Scope) -> Result<(), GraphApiError> {
        self.0.require(scope).map_err(|e| GraphApiError::new(10, e.details))
    }
}

impl FromRequestParts<Arc<AppState>> for GraphPrincipal {
    type Rejection = GraphApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, GraphApiError> {
        match crate::auth::principal_of(parts, state).await {
            Ok(p) => Ok(Self(p)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                Err(GraphApiError::new(190, format!("Invalid OAuth access token: {}", e.details)))
            }
            Err(e) => Err(GraphApiError::new(131_000, e.details)),
        }
    }
}

/// Whether `version` looks like a Graph API version (`v23.0`).
#[must_use]
pub fn is_graph_version(version: &str) -> bool {
    version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    })
}
