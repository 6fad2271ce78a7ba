//! `POST /{version}/{phone-number-id}/messages`, as the Cloud API's.
//!
//! A message is checked (Meta's limits, the template cache), durably queued, and sent by the number's
//! scheduler like any other; the request waits for the outcome and answers what Meta answered: the
//! wamid on success, Meta's Graph error on failure. A read receipt (`"status":"read"`) is passed straight
//! through. If the send has not completed after [`SEND_WAIT`] (limits are holding it back), the answer is
//! 200 with the gateway's own id and `"message_status":"queued"`: the message stays queued and will be
//! sent; retrying would send it twice.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::send::{MarkRead, OutboundMessage};
use wabridge_types::validate::ValidationError;

use super::{GraphApiError, GraphPrincipal, is_graph_version};
use crate::AppState;
use crate::api::messages::normalize_to;
use crate::auth::Scope;
use crate::outbound::{Completion, WriteError};
use crate::store::{Enqueued, NewQueued};

/// How long a Cloud-compatible send waits for Meta's answer before answering `queued`.
pub const SEND_WAIT: Duration = Duration::from_secs(30);

/// When a send has no outcome from this instance after this long, the store is asked (another instance may
/// be sending it)…
const STORE_POLL_AFTER: Duration = Duration::from_millis(500);
/// …this often (every this many polls while this instance sends for the number itself).
const STORE_POLL: Duration = Duration::from_millis(250);
const STORE_POLL_OWNER_EVERY: u32 = 8;

/// The outcome the store holds for message `id`, once it has one.
async fn stored_outcome(state: &AppState, id: &str) -> Option<Completion> {
    let detail = state.store.outbound_detail(id).await.ok()??;
    match detail.state.as_str() {
        "sent" | "delivered" | "read" => detail.wamid.map(Completion::Sent),
        "failed" => Some(Completion::Failed(detail.last_error.unwrap_or_default())),
        "expired" | "cancelled" => Some(Completion::Expired),
        _ => None,
    }
}

/// `POST /{version}/{phone-number-id}/messages`.
pub async fn send(
    State(state): State<Arc<AppState>>,
    principal: GraphPrincipal,
    Path((version, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, GraphApiError> {
    principal.require(Scope::Send)?;
    if !is_graph_version(&version) {
        return Err(GraphApiError::new(
            100,
            format!("Unknown path components: /{version}/{number}/messages"),
        ));
    }
    let Some(waba) = state.config.numbers.iter().find(|n| n.id == number).map(|n| n.waba_id.clone()) else {
        return Err(GraphApiError::new(
            100,
            format!(
                "Unsupported post request. Object with ID '{number}' does not exist, cannot be loaded due to \
                 missing permissions, or does not support this operation"
            ),
        ));
    };
    if !state.readiness.is_ready() {
        return Err(GraphApiError::new(2, "the gateway is starting; try again in a moment"));
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(GraphApiError::new(100, "the body must be a JSON object"));
    };
    if fields.get("status").and_then(Value::as_str) == Some("read") {
        return mark_read(&state, &number, Value::Object(fields)).await;
    }
    let callback_data = match fields.remove("biz_opaque_callback_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(GraphApiError::new(131_009, "biz_opaque_callback_data must be a string")),
    };
    let raw_to = fields.get("to").and_then(Value::as_str).unwrap_or_default().to_owned();
    let to = normalize_to(&raw_to).ok_or_else(|| {
        GraphApiError::new(131_009, format!("to: {raw_to:?} is not a phone number or wa_id"))
    })?;
    fields.insert("to".into(), Value::String(to.clone()));
    let message: OutboundMessage = serde_json::from_value(Value::Object(fields))
        .map_err(|e| GraphApiError::new(100, format!("the message does not parse: {e}")))?;
    message.validate().map_err(|e| match e {
        ValidationError::Missing { .. } => GraphApiError::new(131_008, e.to_string()),
        other => GraphApiError::new(131_009, other.to_string()),
    })?;
    let body = serde_json::to_value(&message).map_err(|e| GraphApiError::new(131_000, e.to_string()))?;
    if let Some(template) = body.get("template") {
        state
            .templates
            .check_send(&waba, template)
            .map_err(|p| GraphApiError::new(p.graph_code(), p.details()))?;
    }
    let limit = state.outbound.config().max_backlog_per_number;
    if state.outbound.backlog(&number) >= limit {
        return Err(GraphApiError::new(
            131_016,
            format!("the gateway's backlog for this number is full ({limit})"),
        ));
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let queued = NewQueued {
        id: id.clone(),
        phone_number_id: number.clone(),
        recipient: to.clone(),
        kind: message.kind().to_owned(),
        body: body.to_string(),
        callback_data,
        not_before: None,
        expires_at: None,
        idempotency_key: None,
        request_sha256: None,
    };
    let outcome = state.outbound.watch(&id);
    match state.outbound.enqueue(queued).await {
        Ok(Enqueued::Inserted | Enqueued::Existing { .. }) => {}
        Err(WriteError::Stopped) => {
            state.outbound.forget(&id);
            return Err(GraphApiError::new(2, "the gateway is stopping"));
        }
        Err(e @ WriteError::Store(_)) => {
            state.outbound.forget(&id);
            tracing::error!(error = %e, "queueing a Cloud-compatible send failed");
            return Err(GraphApiError::new(131_000, "internal error; see the gateway's log"));
        }
    }
    let contacts = json!([{"input": raw_to, "wa_id": to}]);
    // This instance's scheduler tells its outcome at once; when another instance holds the number's lease
    // (several instances on one database), the outcome is read from the store — and now and then also while
    // this one holds it, as the lease may have moved (the other instance then sent the message).
    let waited = async {
        let mut outcome = std::pin::pin!(outcome);
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + STORE_POLL_AFTER, STORE_POLL);
        let mut ticks: u32 = 0;
        loop {
            tokio::select! {
                done = &mut outcome => return done.ok(),
                _ = poll.tick() => {
                    ticks += 1;
                    if state.outbound.sends_here(&number) && ticks % STORE_POLL_OWNER_EVERY != 0 {
                        continue;
                    }
                    if let Some(done) = stored_outcome(&state, &id).await {
                        return Some(done);
                    }
                }
            }
        }
    };
    match tokio::time::timeout(SEND_WAIT, waited).await {
        Ok(Some(Completion::Sent(wamid))) => {
            state.outbound.forget(&id);
            Ok(Json(json!({
                "messaging_product": "whatsapp", "contacts": contacts, "messages": [{"id": wamid}],
            })))
        }
        Ok(Some(Completion::Failed(errors))) => {
            state.outbound.forget(&id);
            Err(stored_error(&errors))
        }
        Ok(Some(Completion::Expired)) => {
            state.outbound.forget(&id);
            Err(GraphApiError::new(131_000, "the message expired before it could be sent"))
        }
        Ok(None) | Err(_) => {
            state.outbound.forget(&id);
            Ok(Json(json!({
                "messaging_product": "whatsapp", "contacts": contacts,
                "messages": [{"id": id, "message_status": "queued"}],
            })))
        }
    }
}

async fn mark_read(state: &AppState, number: &str, body: Value) -> Result<Json<Value>, GraphApiError> {
    let receipt: MarkRead = serde_json::from_value(body)
        .map_err(|e| GraphApiError::new(100, format!("invalid read receipt: {e}")))?;
    let Some(client) = &state.cloud else {
        return Err(GraphApiError::new(2, "no Cloud API access token is configured on this gateway"));
    };
    client
        .mark_read(&PhoneNumberId::new(number), &receipt)
        .await
        .map_err(|e| GraphApiError::from_cloud(&e))?;
    Ok(Json(json!({"success": true})))
}

/// The Graph error of a failed send, from the error JSON the scheduler stored.
fn stored_error(errors: &str) -> GraphApiError {
    let first =
        serde_json::from_str::<Value>(errors).ok().and_then(|v| v.get(0).cloned()).unwrap_or_default();
    let code = first.get("code").and_then(Value::as_i64).unwrap_or(131_000);
    let details = first
        .pointer("/error_data/details")
        .and_then(Value::as_str)
        .or_else(|| first.get("message").and_then(Value::as_str))
        .unwrap_or("the send failed");
    let mut error = wabridge_types::error::GraphError::new(code, details);
    if let Some(message) = first.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
        message.clone_into(&mut error.message);
    }
    GraphApiError(Box::new(error))
}
