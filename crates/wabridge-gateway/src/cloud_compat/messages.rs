//! `POST /{version}/{phone-number-id}/messages`, as the Cloud API's.
//!
//! A message is checked (Meta's limits, the template cache), durably queued, and sent by the number's
//! scheduler like any other; the request waits for the outcome and answers what Meta answered: the
//! wamid on success, Meta's Graph error on failure. A read receipt (`"status":"read"`) is passed straight
//! through. If the send has not completed `outbound.cloud_send_wait_ms` (default 20 s) after the request
//! arrived (limits are holding it back), the answer is 200 with the gateway's own id and
//! `"message_status":"queued"`: the message stays queued and will be sent; retrying would send it twice. The
//! wait ends before the caller's own timeout (30 s in common clients, counted from before the request):
//! a caller that timed out would see a retryable error and send the message again.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use serde_json::{Value, json};
use wabridge_types::error::GraphError;
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::send::{MarkRead, OutboundMessage};
use wabridge_types::validate::ValidationError;

use super::{Arrived, GraphApiError, GraphPrincipal, is_graph_version};
use crate::AppState;
use crate::api::messages::{normalize_to, nul_details, nul_field};
use crate::auth::Scope;
use crate::outbound::{Completion, WriteError};
use crate::store::{Enqueued, NewQueued};

/// When a send has no outcome from this instance after this long, the store is asked (another instance may
/// be sending it)…
const STORE_POLL_AFTER: Duration = Duration::from_millis(500);
/// …this often (every this many polls while this instance sends for the number itself).
const STORE_POLL: Duration = Duration::from_millis(250);
const STORE_POLL_OWNER_EVERY: u32 = 8;

/// How a waited-for send ended: what this instance's scheduler tells, or what the store holds.
enum Outcome {
    Done(Completion),
    /// Cancelled through `DELETE /v1/messages/{id}` before it was sent.
    Cancelled,
}

/// The outcome the store holds for message `id`, once it has one.
async fn stored_outcome(state: &AppState, id: &str) -> Option<Outcome> {
    let detail = state.store.outbound_detail(id).await.ok()??;
    let done = match detail.state.as_str() {
        "sent" | "delivered" | "read" => Completion::Sent(detail.wamid?),
        "failed" => Completion::Failed(detail.last_error.unwrap_or_default()),
        "expired" => Completion::Expired,
        "cancelled" => return Some(Outcome::Cancelled),
        _ => return None,
    };
    Some(Outcome::Done(done))
}

/// Forgets the waiter of a send when the request ends, however it ends — also when the client goes away
/// and the handler's future is dropped mid-wait (the waiter would stay in the map for good otherwise).
struct Watching<'a> {
    state: &'a AppState,
    id: &'a str,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.state.outbound.forget(self.id);
    }
}

/// `POST /{version}/{phone-number-id}/messages`.
pub async fn send(
    State(state): State<Arc<AppState>>,
    arrived: Option<Extension<Arrived>>,
    principal: GraphPrincipal,
    Path((version, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, GraphApiError> {
    // Counted from the request's arrival, as the caller's timeout runs from before it sent it.
    let arrived = arrived.map_or_else(tokio::time::Instant::now, |Extension(Arrived(at))| at);
    let answer_by = arrived + Duration::from_millis(state.outbound.config().cloud_send_wait_ms);
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
    // A read receipt above is passed to Meta as it is; what is queued is stored, so it must be storable.
    if let Some(at) = nul_field(&fields) {
        return Err(GraphApiError::new(131_009, nul_details(&at)));
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
            .check_send_fresh(&waba, template)
            .await
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
    let _watching = Watching { state: &state, id: &id };
    match state.outbound.enqueue(queued).await {
        Ok(Enqueued::Inserted | Enqueued::Existing { .. }) => {}
        Err(WriteError::Stopped) => {
            return Err(GraphApiError::new(2, "the gateway is stopping"));
        }
        Err(e @ WriteError::Store(_)) => {
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
                done = &mut outcome => return done.ok().map(Outcome::Done),
                _ = poll.tick() => {
                    ticks += 1;
                    if state.outbound.sends_here(&number) && !ticks.is_multiple_of(STORE_POLL_OWNER_EVERY) {
                        continue;
                    }
                    if let Some(done) = stored_outcome(&state, &id).await {
                        return Some(done);
                    }
                }
            }
        }
    };
    match tokio::time::timeout_at(answer_by, waited).await {
        Ok(Some(Outcome::Done(Completion::Sent(wamid)))) => Ok(Json(json!({
            "messaging_product": "whatsapp", "contacts": contacts, "messages": [{"id": wamid}],
        }))),
        Ok(Some(Outcome::Done(Completion::Failed(errors)))) => Err(stored_error(&errors)),
        Ok(Some(Outcome::Done(Completion::Expired))) => {
            Err(GraphApiError::new(131_000, "the message expired before it could be sent"))
        }
        Ok(Some(Outcome::Cancelled)) => Err(cancelled(&id)),
        Ok(None) | Err(_) => Ok(Json(json!({
            "messaging_product": "whatsapp", "contacts": contacts,
            "messages": [{"id": id, "message_status": "queued"}],
        }))),
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

/// The answer to a send cancelled through `DELETE /v1/messages/{id}` while it waited: Graph code 100
/// (HTTP 400, not transient) — it will not be sent, and sending it again is the caller's decision, not a
/// retry to make.
fn cancelled(id: &str) -> GraphApiError {
    let mut error = GraphError::new(
        100,
        format!(
            "message {id} was cancelled (DELETE /v1/messages/{id}) before it was sent; it will not be sent"
        ),
    );
    error.message = "(#100) The message was cancelled before it was sent".to_owned();
    error.is_transient = Some(false);
    GraphApiError(Box::new(error))
}

/// The Graph error of a failed send, from the error JSON the scheduler stored.
///
/// Codes 0 and 190 are never handed on: a caller's SDK reads them as its own access token refused, while
/// 0 was stored by earlier versions for failures without a Graph error (→ 131000), and 190 is Meta refusing
/// the gateway's token (→ 2, as [`GraphApiError::from_cloud`] answers it). Nor is Meta's 100 refusing the
/// gateway's `appsecret_proof` (→ 2): the caller's request was not at fault.
fn stored_error(errors: &str) -> GraphApiError {
    let first =
        serde_json::from_str::<Value>(errors).ok().and_then(|v| v.get(0).cloned()).unwrap_or_default();
    let code = first.get("code").and_then(Value::as_i64).unwrap_or(131_000);
    let message = first.get("message").and_then(Value::as_str).filter(|m| !m.is_empty());
    let details =
        first.pointer("/error_data/details").and_then(Value::as_str).or(message).unwrap_or("the send failed");
    match code {
        0 => {
            let details = match message {
                Some(m) if m != details => format!("{m}: {details}"),
                _ => details.to_owned(),
            };
            return GraphApiError::new(131_000, details);
        }
        190 => {
            return GraphApiError::new(
                2,
                format!("the gateway's Cloud API access token was refused: {details}"),
            );
        }
        _ => {}
    }
    let mut error = GraphError::new(code, details);
    if let Some(message) = message {
        message.clone_into(&mut error.message);
    }
    if wabridge_cloud::is_appsecret_proof_refusal(&error) {
        return GraphApiError::appsecret_proof_refused(details);
    }
    GraphApiError(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(errors: &Value) -> (i64, u16) {
        let e = stored_error(&errors.to_string());
        (e.0.code, e.0.http_status())
    }

    /// A stored failure never reaches a Cloud-compatible caller as an auth error (401, "invalid token").
    #[test]
    fn stored_errors_are_never_auth_errors() {
        // Stored by earlier versions for failures without a Graph error.
        let legacy = json!([{"code": 0, "title": "HTTP transport error", "message": "HTTP transport error"}]);
        assert_eq!(answer(&legacy), (131_000, 500));
        let token = json!([{"code": 190, "message": "(#190) Access token has expired"}]);
        assert_eq!(answer(&token), (2, 503));
        let unavailable = json!([{"code": 131_016, "title": "Service unavailable", "message": "Service unavailable",
            "error_data": {"details": "HTTP 503 without a Graph error body"}}]);
        assert_eq!(answer(&unavailable), (131_016, 500));
        // Meta's own errors pass as they were.
        let meta = json!([{"code": 131_051, "message": "(#131051) Unsupported message type",
            "error_data": {"details": "no"}}]);
        let e = stored_error(&meta.to_string());
        assert_eq!(
            (e.0.code, e.0.message.as_str(), e.0.details()),
            (131_051, "(#131051) Unsupported message type", Some("no"))
        );
        assert_eq!(answer(&json!("not an array")), (131_000, 500));
        // Meta refusing the gateway's appsecret_proof is the gateway's configuration, not the caller's 100.
        let proof = json!([{"code": 100,
            "message": "API calls from the server require an appsecret_proof argument"}]);
        let e = stored_error(&proof.to_string());
        assert_eq!((e.0.code, e.0.http_status()), (2, 503));
        assert!(e.0.details().unwrap().contains("meta.appsecret_proof"), "{e:?}");
    }

    #[test]
    fn a_cancelled_send_answers_a_permanent_error_of_its_own() {
        let e = cancelled("abc");
        assert_eq!((e.0.code, e.0.http_status(), e.0.is_transient), (100, 400, Some(false)));
        assert!(e.0.details().unwrap().contains("cancelled"));
    }
}
