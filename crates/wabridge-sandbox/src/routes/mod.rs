//! The HTTP surface: Graph routes under `/{version}/…` (auth, `appsecret_proof`, the WABA's call
//! quota and chaos applied by one middleware), the media download URL, and the control API under
//! `/_sandbox`.
//!
//! Graph paths are `/{vNN.0}/{node}` and `/{vNN.0}/{node}/{edge}`, with or without one trailing slash; what
//! a node is (phone number, WABA, media, template) is decided by looking its id up, as Graph does. Any other
//! path or method is answered with Graph's code 100 in its error envelope.

mod control;
mod graph;
mod media;
mod messages;
mod numbers;
mod templates;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::chaos::GraphFault;
use crate::error::{ApiError, RefusedCode};
use crate::state::{SandboxState, Shared};

/// The log target of the one-line-per-request log (at INFO); filter it with
/// `RUST_LOG=info,wabridge_sandbox::request=warn` when it costs too much.
pub const REQUEST_LOG_TARGET: &str = "wabridge_sandbox::request";

/// The path of the media download URL handed out by `GET /{media-id}`.
pub(crate) const DOWNLOAD_PATH: &str = "/lookaside/whatsapp_business/attachments/";

/// The sandbox's routes, to serve or to mount in another server.
pub fn router(state: SandboxState) -> Router {
    let shared = state.0;
    let node = || get(graph::node_get).post(graph::node_post).delete(graph::node_delete);
    let edge = || get(graph::edge_get).post(graph::edge_post).put(graph::edge_put).delete(graph::edge_delete);
    // Graph ignores one trailing slash: Meta's own "Delete Media" example calls `DELETE /{media-id}/`. Both
    // spellings are routed (rather than the URI rewritten in front of the router) so that `router()` stays
    // a plain `Router` that other servers can mount and layer.
    let graph = Router::new()
        .route("/{version}/{node}", node())
        .route("/{version}/{node}/", node())
        .route("/{version}/{node}/{edge}", edge())
        .route("/{version}/{node}/{edge}/", edge())
        // Anything else answers in Graph's error envelope, as Meta does, never axum's empty 404 / 405: a
        // client reads the envelope to classify the error. Both fallbacks sit under `graph_gate`, so such
        // calls are authenticated, counted against the WABA's call quota and logged like any Graph call.
        .method_not_allowed_fallback(graph::unsupported_method)
        .fallback(graph::unknown_path)
        .layer(middleware::from_fn_with_state(shared.clone(), graph_gate))
        .layer(DefaultBodyLimit::max(graph::UPLOAD_BODY_MAX));
    // The media download URL is not a Graph call (`cloud-api.md`: fetched "with the same Bearer token"):
    // no `appsecret_proof`, no call quota, no injected Graph fault — only the token.
    let download = Router::new()
        .route(DOWNLOAD_PATH, get(media::download))
        .layer(middleware::from_fn_with_state(shared.clone(), download_gate));
    Router::new()
        .merge(graph)
        .merge(download)
        .nest("/_sandbox", control::router(shared.clone()))
        .with_state(shared)
}

/// The media download URL's only check: a valid access token.
async fn download_gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let token = bearer(request.headers()).or_else(|| query_param(request.uri().query(), "access_token"));
    if token.is_some_and(|t| shared.config.access_tokens.iter().any(|a| a == t)) {
        next.run(request).await
    } else {
        ApiError::new(190, "Invalid OAuth access token - Cannot parse access token").into_response()
    }
}

/// Authentication, `appsecret_proof`, the WABA's call quota, chaos, counting and the request log line.
async fn graph_gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = match admit(&shared, request.headers(), uri.query(), &method, uri.path()).await {
        Ok(()) => next.run(request).await,
        Err(e) => {
            // The request's body is read before it is refused, as Graph's front end does: a refusal sent while
            // a client is still writing a large upload, followed by the connection's close, reaches it as a
            // broken pipe — a transport error after the request went out, whose outcome a client cannot know
            // (and so must not retry for an upload or a send) — instead of the Graph error it is.
            let _ = axum::body::to_bytes(request.into_body(), graph::UPLOAD_BODY_MAX).await;
            e.into_response()
        }
    };
    let code = response.extensions().get::<RefusedCode>().map(|c| c.0);
    if let Some(code) = code {
        shared.counters.rejected(code);
    }
    if tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::INFO) {
        tracing::info!(
            target: REQUEST_LOG_TARGET,
            method = %method,
            path = uri.path(),
            status = response.status().as_u16(),
            code = code.unwrap_or(0),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "graph request"
        );
    }
    response
}

async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    method: &axum::http::Method,
    path: &str,
) -> Result<(), ApiError> {
    let token = bearer(headers).or_else(|| query_param(query, "access_token"));
    let Some(token) = token.filter(|t| shared.config.access_tokens.iter().any(|a| a == t)) else {
        return Err(ApiError::new(190, "Invalid OAuth access token - Cannot parse access token"));
    };
    check_appsecret_proof(shared, token, query_param(query, "appsecret_proof"))?;
    if !shared.take_waba_call() {
        return Err(ApiError::new(
            80007,
            "The WhatsApp Business Account has reached its rate limit: too many API calls in the last hour.",
        ));
    }
    let is_send = method == axum::http::Method::POST && path.ends_with("/messages");
    let (latency, fault) = shared.chaos.on_graph_call(is_send);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(GraphFault::Code(code)) => Err(ApiError::new(code, "Injected by the sandbox's fault settings")),
        None => Ok(()),
    }
}

/// `appsecret_proof` (`cloud-api.md` §0): with an app secret configured, any proof a client sends must be
/// the HMAC of its token, whether or not proofs are required (Graph checks a proof it is given); missing,
/// it is refused only when `require_appsecret_proof` is set. Code 100 either way.
fn check_appsecret_proof(shared: &Shared, token: &str, proof: Option<&str>) -> Result<(), ApiError> {
    let Some(secret) = shared.config.app_secret.as_deref() else { return Ok(()) };
    match proof {
        None if shared.config.require_appsecret_proof => {
            Err(ApiError::new(100, "API calls from the server require an appsecret_proof argument"))
        }
        None => Ok(()),
        Some(proof) => {
            let expected = wabridge_types::signature::appsecret_proof(secret, token);
            if wabridge_types::signature::constant_time_eq(proof.as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::new(100, "Invalid appsecret_proof provided in the API argument"))
            }
        }
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A query parameter's raw value (tokens and proofs need no decoding).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}
