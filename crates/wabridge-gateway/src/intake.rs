//! Webhook intake: Meta's verification handshake, and `POST /webhook` — check the signature on the raw
//! bytes, split the envelope into events, commit body and events together (group commit), and only then
//! answer 200.
//!
//! Outcomes, and why:
//! - bad or missing signature → 401 and a logged reason (never the body): Meta retries, and a forged body
//!   is not stored;
//! - body over the limit → 413 (axum's body limit);
//! - correctly signed but not a valid envelope → stored once as rejected, counted, answered 200 so Meta does
//!   not retry it for a week; `POST /v1/webhooks/reprocess` reads it again later (for example after an
//!   upgrade that understands it; `api/webhooks.rs`);
//! - the commit failed → 500, so Meta delivers it again: nothing acknowledged is ever lost.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use wabridge_types::signature::{self, SIGNATURE_HEADER, SignatureError};
use wabridge_types::webhook::{Envelope, EventKind, Scalar, WebhookError, WebhookEvent};

use crate::AppState;
use crate::news::News;
use crate::store::{InboundTouch, IntakeBatchItem, NewEvent, NewRawWebhook, StatusUpdate};

/// The query of Meta's verification handshake.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /webhook`: answers the raw challenge when the mode is `subscribe` and the token matches.
pub async fn verify(State(state): State<Arc<AppState>>, Query(q): Query<VerifyQuery>) -> Response {
    let expected = state.config.meta.verify_token.as_ref();
    let ok = q.mode.as_deref() == Some("subscribe")
        && match (expected, q.verify_token.as_deref()) {
            (Some(expected), Some(given)) => {
                signature::constant_time_eq(expected.expose_secret().as_bytes(), given.as_bytes())
            }
            _ => false,
        };
    match (ok, q.challenge) {
        (true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        _ => {
            tracing::warn!("webhook verification refused: wrong mode, token or no verify token configured");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

/// `POST /webhook`.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let metrics = &state.metrics;
    let body = match body {
        Ok(body) => body,
        // Too large (413), or not read in time (`http.body_read_timeout_secs`) or cut off: counted with the
        // other refusals, then answered as axum would.
        Err(rejection) => {
            let reason = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "body_unreadable"
            };
            metrics.webhooks_rejected.inc(reason);
            tracing::warn!(reason, "webhook refused");
            return rejection.into_response();
        }
    };
    if !state.config.webhook.insecure_skip_signature {
        let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        let current = state.secrets.app_secrets();
        let secrets: Vec<&[u8]> = current.iter().map(|s| s.expose_secret().as_bytes()).collect();
        if let Err(e) = signature::verify(header, &body, &secrets) {
            let reason = match e {
                SignatureError::Missing => "signature_missing",
                SignatureError::Malformed(_) => "signature_malformed",
                SignatureError::Mismatch => "signature_mismatch",
                SignatureError::NoSecret => "no_app_secret",
            };
            metrics.webhooks_rejected.inc(reason);
            tracing::warn!(reason, error = %e, bytes = body.len(), "webhook refused");
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    // Recorded with the body: whether its signature was checked (and so correct) or checking is turned off.
    let signature_ok = !state.config.webhook.insecure_skip_signature;
    let (item, inbound_media) = match parse(&body, signature_ok) {
        Ok(parsed) => parsed,
        Err(reason) => {
            metrics.webhooks_rejected.inc("invalid_envelope");
            // serde quotes the offending value ("invalid type: string \"…\""), which may be a message's text
            // or a phone number: the log gets the reason without quoted values (the stored row keeps it all).
            tracing::warn!(error = %without_quoted_values(&reason), bytes = body.len(),
                "signed webhook is not a valid envelope; stored as rejected");
            (rejected_item(&body, signature_ok, &reason), Vec::new())
        }
    };
    let kinds: Vec<&'static str> = item.events.iter().map(|e| kind_label(&e.kind)).collect();
    match commit(&state, item, inbound_media, true).await {
        Ok(outcome) => {
            metrics.webhooks_received.inc();
            if outcome.item.raw_duplicate {
                metrics.webhooks_duplicate.inc();
            }
            metrics.events_duplicate.add(outcome.item.events_duplicate as u64);
            for kind in kinds {
                metrics.events_received.inc(kind);
            }
            if outcome.first_in_batch {
                #[allow(clippy::cast_precision_loss)]
                metrics.commit_batch_size.observe(outcome.batch.items as f64);
                metrics.commit_seconds.observe(outcome.batch.commit_latency.as_secs_f64());
            }
            metrics.intake_seconds.observe(started.elapsed().as_secs_f64());
            StatusCode::OK.into_response()
        }
        Err(e) => {
            metrics.commit_failures.inc();
            tracing::error!(error = %e, "webhook could not be stored; answering 500 so Meta retries");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Media ids (and their SHA-256 when given) of a webhook's inbound media messages, for prefetching.
pub(crate) type InboundMedia = Vec<(String, Option<String>)>;

/// Reads a correctly signed (or unchecked) body into the item that stores it with its events, or says why it
/// is not a valid envelope. The reason never holds the body's text beyond what the parser quotes.
pub(crate) fn parse(body: &Bytes, signature_ok: bool) -> Result<(IntakeBatchItem, InboundMedia), String> {
    let events = Envelope::events_from_slice(body).map_err(|e| format!("invalid envelope: {e}"))?;
    // Ids are keys in the store, and PostgreSQL's text cannot hold a NUL character: such an envelope is not
    // one Meta sends, and is kept as rejected rather than failing the commit it would share with others.
    if events.iter().any(holds_nul) {
        return Err("invalid envelope: an id or field name holds a NUL character".to_owned());
    }
    let inbound_media = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Message { .. }))
        .filter_map(|e| crate::media::inbound_media(&e.payload))
        .collect();
    let mut item = batch_item(body, events);
    item.raw = item.raw.with_signature_ok(signature_ok);
    Ok((item, inbound_media))
}

fn holds_nul(event: &WebhookEvent) -> bool {
    let nul = |s: &str| s.contains('\0');
    nul(&event.dedupe_key)
        || nul(&event.field)
        || nul(event.waba_id.as_str())
        || event.phone_number_id.as_ref().is_some_and(|p| nul(p.as_str()))
        || event.contact.as_deref().is_some_and(nul)
        || matches!(&event.kind, EventKind::Status { status } if nul(status))
}

/// The item storing a body that is not a valid envelope: the body alone, once by its hash, as rejected.
pub(crate) fn rejected_item(body: &Bytes, signature_ok: bool, reason: &str) -> IntakeBatchItem {
    IntakeBatchItem {
        raw: NewRawWebhook::rejected(body.clone(), signature_ok, reason.replace('\0', "\u{fffd}")),
        events: Vec::new(),
        inbound: Vec::new(),
        statuses: Vec::new(),
    }
}

/// Commits a parsed item through the intake (group commit; answered once durable), then, with `news`, tells
/// the rest of the gateway what its new events mean (on SQLite; on PostgreSQL every instance follows the log
/// for that, `news::follow`). Bodies read again later (`POST /v1/webhooks/reprocess`) come without news: their
/// messages are old, and must not open windows, count against a level now, move a template's status back, or
/// fetch media (on PostgreSQL, see `news` for what the follower makes of them).
pub(crate) async fn commit(
    state: &AppState,
    mut item: IntakeBatchItem,
    inbound_media: InboundMedia,
    news: bool,
) -> Result<crate::store::IntakeOutcome, crate::store::StoreError> {
    crate::outbound::echo::attach_application_data(&state.store, &mut item).await?;
    // On PostgreSQL every instance takes the news from the log instead (`news::follow`).
    let news_here = (news && !crate::news::follows_log(&state.store)).then(|| News::of_item(&item));
    let outcome = state.intake.submit(item).await?;
    // What a webhook tells the rest of the gateway, only if it brought new events: a redelivery, or Meta
    // re-batching events already stored, must not count inbound messages against the level twice, fetch
    // their media again, or move a template back to an older status. (A body that mixes new and known
    // events tells all of its own.)
    if news && outcome.item.raw_duplicate && outcome.item.events_inserted > 0 {
        // A body stored before as rejected that this version reads (Meta delivered it again after an
        // upgrade): its events now link to that row, which is no longer a rejected one waiting for
        // re-processing. (A failure leaves it for `POST /v1/webhooks/reprocess`, which adds nothing twice.)
        if let Err(e) = state.store.mark_reprocessed(outcome.item.raw_id).await {
            tracing::warn!(error = %e, "a re-delivered rejected body could not be marked accepted");
        }
    }
    if news && outcome.item.events_inserted > 0 {
        if let Some(news) = news_here {
            news.tell(state);
        }
        crate::media::prefetch(&state.media, inbound_media);
    }
    Ok(outcome)
}

/// The label of an event kind in metrics (a closed set).
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "message" => "message",
        "status" => "status",
        "payment" => "payment",
        "error" => "error",
        _ => "change",
    }
}

/// The store's name for an event kind.
fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message { .. } => "message",
        EventKind::Status { .. } => "status",
        EventKind::Payment { .. } => "payment",
        EventKind::Error { .. } => "error",
        EventKind::Change => "change",
    }
}

/// Everything one webhook adds to the store: its raw body, one event per item (from
/// [`Envelope::events_from_slice`] or [`Envelope::events`]), the contacts' last inbound time and the
/// statuses of outbound messages.
#[must_use]
pub fn batch_item(body: &Bytes, events: Vec<WebhookEvent>) -> IntakeBatchItem {
    let mut inbound = Vec::new();
    let mut statuses = Vec::new();
    for event in &events {
        match &event.kind {
            EventKind::Message { .. } => {
                if let (Some(number), Some(contact)) = (&event.phone_number_id, &event.contact) {
                    let at = event_time(event).unwrap_or_else(SystemTime::now);
                    inbound.push(InboundTouch {
                        phone_number_id: number.to_string(),
                        wa_id: contact.clone(),
                        at,
                    });
                }
            }
            EventKind::Status { status } => {
                if let Some(update) = status_update(event, status) {
                    statuses.push(update);
                }
            }
            _ => {}
        }
    }
    let events = events.into_iter().map(new_event).collect();
    IntakeBatchItem { raw: NewRawWebhook::accepted(body.clone(), true), events, inbound, statuses }
}

/// The item of a single-item event's payload (`messages[0]`, `statuses[0]`).
fn single<'a>(event: &'a WebhookEvent, key: &str) -> Option<&'a serde_json::Value> {
    event.payload.get(key)?.get(0)
}

/// A Unix time that Meta sends as a string or a number.
fn unix_seconds(value: Option<&serde_json::Value>) -> Option<i64> {
    Scalar::deserialize(value?).ok()?.as_i64()
}

/// The status update a status event brings, read from its payload (which was built from a parsed
/// [`Status`](wabridge_types::webhook::Status), so the id and timestamp are there).
fn status_update(event: &WebhookEvent, status: &str) -> Option<StatusUpdate> {
    let item = single(event, "statuses")?;
    let errors = match item.get("errors").filter(|errors| !errors.is_null()) {
        Some(errors) => Some(serde_json::to_string(&Vec::<WebhookError>::deserialize(errors).ok()?).ok()?),
        None => None,
    };
    Some(StatusUpdate {
        wamid: item.get("id")?.as_str()?.to_owned(),
        status: status.to_owned(),
        timestamp: unix_seconds(item.get("timestamp")).unwrap_or(0),
        errors,
    })
}

fn event_time(event: &WebhookEvent) -> Option<SystemTime> {
    let secs = unix_seconds(single(event, "messages")?.get("timestamp"))?;
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
}

fn new_event(event: WebhookEvent) -> NewEvent {
    NewEvent {
        dedupe_key: event.dedupe_key,
        kind: kind_name(&event.kind).to_owned(),
        field: event.field,
        waba_id: event.waba_id.to_string(),
        phone_number_id: event.phone_number_id.map(|p| p.to_string()),
        contact: event.contact,
        payload: event.payload.to_string(),
    }
}

/// `text` with every double-quoted part replaced by `"…"`: a parse error's shape and position without the
/// values it quotes. A quote escaped inside a quoted part (`\"`) does not end it.
fn without_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') => {
                quoted = true;
                out.push_str("\"…\"");
            }
            (false, c) => out.push(c),
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, _) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_stay_out_of_the_log() {
        let e = r#"invalid type: string "call me at +1 631 555 1234", expected u64 at line 1 column 80"#;
        assert_eq!(
            super::without_quoted_values(e),
            r#"invalid type: string "…", expected u64 at line 1 column 80"#
        );
        assert_eq!(super::without_quoted_values("missing field `entry`"), "missing field `entry`");
        let escaped = r#"invalid type: string "say \"hi\" to +1 631 555 1234", expected u64 at line 2"#;
        assert_eq!(
            super::without_quoted_values(escaped),
            r#"invalid type: string "…", expected u64 at line 2"#
        );
    }
}
