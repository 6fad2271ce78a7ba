//! The control API under `/_sandbox` (documented on the crate): JSON in and out, guarded by `control_token` when one is
//! configured (`Authorization: Bearer <control_token>`), open otherwise.
//!
//! | route | does |
//! |---|---|
//! | `GET /_sandbox` | base URL, WABA id, numbers with levels, token, callbacks |
//! | `POST /_sandbox/inbound` | inject an inbound message ([`crate::Inbound`]) → `{"id": wamid}` |
//! | `GET /_sandbox/messages?phone_number_id=&to=&limit=` | sent messages with statuses |
//! | `GET /_sandbox/messages/{wamid}` | one sent message |
//! | `GET /_sandbox/counters` | [`crate::Counters`] |
//! | `POST /_sandbox/reset` | back to the state at start |
//! | `POST /_sandbox/numbers/{id}/level` | [`crate::LevelChange`] |
//! | `PUT` / `DELETE /_sandbox/faults` | set / clear a [`crate::FaultInjection`] |
//! | `GET` / `PUT /_sandbox/chaos` | read / replace the [`crate::ChaosConfig`] |
//! | `GET` / `POST` / `DELETE /_sandbox/callbacks` | list / add (`{"url", "verify"}`) / remove (`?url=`) |
//! | `POST /_sandbox/templates/{id}/status` | `{"status": "PAUSED"}` |
//! | `POST /_sandbox/users/{wa_id}` | `{"unreachable": true}` |

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use wabridge_types::template::TemplateStatus;

use crate::chaos::{ChaosConfig, FaultInjection};
use crate::control::{Control, LevelChange};
use crate::error::SandboxError;
use crate::inbound::Inbound;
use crate::sent::SentFilter;
use crate::state::Shared;

type Shr = State<Arc<Shared>>;

pub(super) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(info))
        .route("/inbound", post(inbound))
        .route("/messages", get(messages))
        .route("/messages/{wamid}", get(message))
        .route("/counters", get(counters))
        .route("/reset", post(reset))
        .route("/numbers/{id}/level", post(level))
        .route("/faults", axum::routing::put(set_fault).delete(clear_fault))
        .route("/chaos", get(get_chaos).put(set_chaos))
        .route("/callbacks", get(callbacks).post(add_callback).delete(remove_callback))
        .route("/templates/{id}/status", post(template_status))
        .route("/users/{wa_id}", post(user))
        // Without a fallback of its own, an unknown `/_sandbox/…` path that no Graph route matches either
        // (one segment, or four and more) would reach the Graph fallback and ask for a Graph access token;
        // the control API answers in its own shape instead.
        .fallback(|| async { control_error(StatusCode::NOT_FOUND, "no such control route") })
        .layer(middleware::from_fn_with_state(shared, guard))
}

async fn guard(State(shared): Shr, request: Request, next: Next) -> Response {
    let auth = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    if !shared.control_allowed(auth) {
        return control_error(StatusCode::UNAUTHORIZED, "the control API needs the control token");
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(target: super::REQUEST_LOG_TARGET, method = %method, path, status = response.status().as_u16(), "control request");
    response
}

fn control(shared: &Arc<Shared>) -> Control {
    Control { shared: shared.clone() }
}

fn control_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message } }))).into_response()
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Verification { .. } => StatusCode::BAD_GATEWAY,
            Self::Invalid(_) | Self::Config(_) => StatusCode::BAD_REQUEST,
            Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        control_error(status, &self.to_string())
    }
}

async fn info(State(shared): Shr) -> Response {
    let numbers: Vec<_> = shared
        .numbers
        .iter()
        .map(|n| json!({"id": n.id, "display_phone_number": n.display, "level": n.level(), "mps": n.mps(), "registered": n.is_registered()}))
        .collect();
    Json(json!({
        "base_url": shared.base_url,
        "waba_id": shared.config.waba_id,
        "phone_numbers": numbers,
        "access_token": shared.config.access_tokens.first(),
        "callbacks": shared.hub.urls(),
    }))
    .into_response()
}

async fn inbound(State(shared): Shr, Json(inbound): Json<Inbound>) -> Result<Response, SandboxError> {
    let id = control(&shared).inject_inbound(inbound)?;
    Ok(Json(json!({ "id": id })).into_response())
}

async fn messages(State(shared): Shr, Query(filter): Query<SentFilter>) -> Response {
    Json(json!({ "data": control(&shared).sent(&filter) })).into_response()
}

async fn message(State(shared): Shr, Path(wamid): Path<String>) -> Result<Response, SandboxError> {
    let record = control(&shared)
        .sent_message(&wamid)
        .ok_or_else(|| SandboxError::NotFound(format!("message {wamid}")))?;
    Ok(Json(record).into_response())
}

async fn counters(State(shared): Shr) -> Response {
    Json(control(&shared).counters()).into_response()
}

async fn reset(State(shared): Shr) -> Response {
    control(&shared).reset();
    Json(json!({ "success": true })).into_response()
}

async fn level(
    State(shared): Shr,
    Path(id): Path<String>,
    Json(change): Json<LevelChange>,
) -> Result<Response, SandboxError> {
    control(&shared).set_level(&id, change)?;
    Ok(Json(json!({ "success": true })).into_response())
}

async fn set_fault(State(shared): Shr, Json(fault): Json<FaultInjection>) -> Response {
    control(&shared).set_fault(Some(fault));
    Json(json!({ "success": true })).into_response()
}

async fn clear_fault(State(shared): Shr) -> Response {
    control(&shared).set_fault(None);
    Json(json!({ "success": true })).into_response()
}

async fn get_chaos(State(shared): Shr) -> Response {
    Json(control(&shared).chaos()).into_response()
}

async fn set_chaos(State(shared): Shr, Json(chaos): Json<ChaosConfig>) -> Response {
    control(&shared).set_chaos(chaos);
    Json(json!({ "success": true })).into_response()
}

async fn callbacks(State(shared): Shr) -> Response {
    Json(json!({ "data": control(&shared).callbacks() })).into_response()
}

#[derive(Deserialize)]
struct AddCallback {
    url: String,
    /// Perform the GET verification handshake first (default true).
    #[serde(default = "yes")]
    verify: bool,
}

fn yes() -> bool {
    true
}

async fn add_callback(State(shared): Shr, Json(add): Json<AddCallback>) -> Result<Response, SandboxError> {
    let control = control(&shared);
    if add.verify {
        control.add_callback(&add.url).await?;
    } else {
        control.add_callback_unverified(&add.url);
    }
    Ok(Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
struct UrlParam {
    url: String,
}

async fn remove_callback(State(shared): Shr, Query(p): Query<UrlParam>) -> Result<Response, SandboxError> {
    if control(&shared).remove_callback(&p.url) {
        Ok(Json(json!({ "success": true })).into_response())
    } else {
        Err(SandboxError::NotFound(format!("callback {}", p.url)))
    }
}

#[derive(Deserialize)]
struct StatusBody {
    status: TemplateStatus,
}

async fn template_status(
    State(shared): Shr,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> Result<Response, SandboxError> {
    control(&shared).set_template_status(&id, body.status)?;
    Ok(Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
struct UserBody {
    unreachable: bool,
}

async fn user(State(shared): Shr, Path(wa_id): Path<String>, Json(body): Json<UserBody>) -> Response {
    control(&shared).set_unreachable(&wa_id, body.unreachable);
    Json(json!({ "success": true })).into_response()
}
