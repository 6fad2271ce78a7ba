//! `POST /v1/messages`, `GET /v1/messages/{id}`, `DELETE /v1/messages/{id}`.
//!
//! The body is the On-Premises one (the Cloud API's without `messaging_product`, accepted with it too) plus
//! wabridge's own fields: `from` (phone number id), `send_at` (Unix seconds or RFC 3339), `ttl` (seconds),
//! `force` (send a free-form message although the contact's 24-hour window is closed).
//! `biz_opaque_callback_data` is the application's own: kept and given back; the gateway sends its id there.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use wabridge_types::send::OutboundMessage;
use wabridge_types::validate::ValidationError;

use crate::AppState;
use crate::accounts::{days_from_civil, onprem_time};
use crate::api::has_nul;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};
use crate::outbound::WriteError;
use crate::store::{CancelOutcome, Enqueued, NewQueued, now_millis};

fn error(status: StatusCode, code: u32, title: &'static str, details: impl Into<String>) -> ApiError {
    ApiError { status, code, title, details: details.into() }
}

/// The checks a message passes now or not (its template, the 24-hour window at the time it is to be sent,
/// the number's backlog): a retry of a request queued earlier is answered as the first time even when they
/// fail.
async fn admit(
    state: &AppState,
    number: &str,
    to: &str,
    message: &OutboundMessage,
    force: bool,
    send_at: Option<i64>,
) -> Result<(), ApiError> {
    check_template(state, number, message).await?;
    if message.kind() != "template" && !force {
        check_window(state, number, to, send_at).await?;
    }
    let limit = state.outbound.config().max_backlog_per_number;
    if state.outbound.backlog(number) >= limit {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            1016,
            "System overloaded",
            format!("the backlog of number {number} is full ({limit} messages not yet sent); retry later"),
        ));
    }
    Ok(())
}

fn idempotency_conflict(key: &str) -> ApiError {
    ApiError::conflict(format!("Idempotency-Key {key:?} was used with a different request body"))
}

/// `POST /v1/messages` → 201 `{"messages":[{"id"}]}` once the message is durably queued.
pub async fn send(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Send)?;
    state.readiness.require_ready()?;
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(ApiError::invalid("the body must be a JSON object (a message, as the Cloud API's)"));
    };
    if let Some(at) = nul_field(&fields) {
        return Err(ApiError::invalid(nul_details(&at)));
    }
    let canonical = Value::Object(fields.clone()).to_string();
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| ApiError::invalid("Idempotency-Key: 1 to 255 visible ASCII characters"))?
                .to_owned(),
        ),
        None => None,
    };
    let request_sha256 = idempotency_key.as_ref().map(|_| hex::encode(Sha256::digest(canonical.as_bytes())));
    let from = take_string(&mut fields, "from")?;
    let force = match fields.remove("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::invalid("force: must be true or false")),
    };
    let now = now_millis();
    let not_before = match fields.remove("send_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(&v).ok_or_else(|| {
            ApiError::invalid("send_at: Unix seconds or an RFC 3339 time such as 2026-05-01T09:30:00Z")
        })?),
    };
    let expires_at = match fields.remove("ttl") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|t| t > 0) => {
            let ttl_ms = i64::try_from(n.as_u64().unwrap_or(0).saturating_mul(1000)).unwrap_or(i64::MAX);
            Some(not_before.unwrap_or(now).saturating_add(ttl_ms))
        }
        Some(_) => return Err(ApiError::invalid("ttl: a positive number of seconds")),
    };
    let callback_data = take_string(&mut fields, "biz_opaque_callback_data")?;
    match fields.get("messaging_product") {
        None => {
            fields.insert("messaging_product".into(), Value::String("whatsapp".into()));
        }
        Some(Value::String(p)) if p == "whatsapp" => {}
        Some(_) => return Err(ApiError::invalid("messaging_product: only \"whatsapp\"")),
    }
    // The On-Premises API took `preview_url` beside `text`; the Cloud API reads it inside (`text.preview_url`).
    if let Some(preview) = fields.remove("preview_url")
        && let Some(Value::Object(text)) = fields.get_mut("text")
    {
        text.entry("preview_url").or_insert(preview);
    }
    let raw_to = match fields.get("to") {
        Some(Value::String(to)) => to.clone(),
        Some(_) => {
            return Err(ApiError::invalid("to: a phone number (E.164, e.g. +1 631-555-1234) or wa_id"));
        }
        None => return Err(ApiError::missing("to: the recipient's phone number or wa_id")),
    };
    let to = normalize_to(&raw_to).ok_or_else(|| {
        ApiError::invalid(format!(
            "to: {raw_to:?} is not a phone number in E.164 form (+ country code and number, e.g. +1 631-555-1234) \
             nor a wa_id (digits only)"
        ))
    })?;
    fields.insert("to".into(), Value::String(to.clone()));
    let message: OutboundMessage = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::invalid(format!("the message does not parse: {e}")))?;
    message.validate().map_err(validation_error)?;
    let number = resolve_number(&state, from)?;
    let kind = message.kind().to_owned();
    if let Err(refused) = admit(&state, &number, &to, &message, force, not_before).await {
        // A retry of a request that was queued gets the same answer, whatever changed since (the 24-hour
        // window closed, the backlog filled): the first answer may have been lost on its way.
        if let Some(key) = &idempotency_key
            && let Some((id, earlier)) = state.store.outbound_by_idempotency_key(key).await?
        {
            return if earlier == request_sha256 {
                Ok((StatusCode::CREATED, Json(json!({"messages": [{"id": id}], "meta": meta()}))))
            } else {
                Err(idempotency_conflict(key))
            };
        }
        return Err(refused);
    }
    let body = serde_json::to_string(&message).map_err(|e| ApiError::internal(&e))?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let queued = NewQueued {
        id: id.clone(),
        phone_number_id: number,
        recipient: to,
        kind,
        body,
        callback_data,
        not_before,
        expires_at,
        idempotency_key: idempotency_key.clone(),
        request_sha256: request_sha256.clone(),
    };
    let id = match state.outbound.enqueue(queued).await {
        Ok(Enqueued::Inserted) => id,
        Ok(Enqueued::Existing { id, request_sha256: earlier }) if earlier == request_sha256 => id,
        Ok(Enqueued::Existing { .. }) => {
            return Err(idempotency_conflict(&idempotency_key.unwrap_or_default()));
        }
        Err(WriteError::Stopped) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                1011,
                "Service not ready",
                "the gateway is stopping",
            ));
        }
        Err(e @ WriteError::Store(_)) => return Err(ApiError::internal(&e)),
    };
    Ok((StatusCode::CREATED, Json(json!({"messages": [{"id": id}], "meta": meta()}))))
}

/// `GET /v1/messages/{id}`: state, wamid, status timeline, errors.
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    if has_nul(&id) {
        return Err(no_message(&id));
    }
    let d = state.store.outbound_detail(&id).await?.ok_or_else(|| no_message(&id))?;
    let statuses: Vec<Value> = d
        .statuses
        .iter()
        .map(|(status, ts, errors)| {
            json!({"status": status, "timestamp": ts.to_string(),
                   "errors": errors.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok())})
        })
        .collect();
    let errors = d.last_error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok());
    let message = json!({
        "id": d.id, "wamid": d.wamid, "from": d.phone_number_id, "to": d.recipient, "type": d.kind,
        "state": d.state, "biz_opaque_callback_data": d.callback_data,
        "created_at": onprem_time(d.created_at), "updated_at": onprem_time(d.updated_at),
        "send_at": d.not_before.map(onprem_time), "expires_at": d.expires_at.map(onprem_time),
        "attempts": d.attempts, "possibly_duplicated": d.possibly_duplicated, "reconciled": d.reconciled,
        "statuses": statuses, "errors": errors,
    });
    Ok(Json(json!({"messages": [message], "meta": meta()})))
}

/// `DELETE /v1/messages/{id}`: cancels a message not sent yet.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    if has_nul(&id) {
        return Err(no_message(&id));
    }
    let number = state.store.outbound_detail(&id).await?.map(|d| (d.phone_number_id, d.recipient));
    match state.store.cancel_outbound(&id).await? {
        CancelOutcome::Cancelled => {
            if let Some((n, recipient)) = number {
                state.outbound.cancelled(&n, &recipient, &id);
            }
            Ok(Json(json!({"messages": [{"id": id, "state": "cancelled"}], "meta": meta()})))
        }
        CancelOutcome::NotFound => Err(no_message(&id)),
        CancelOutcome::NotCancellable(s) => {
            Err(ApiError::conflict(format!("message {id:?} is {s}: only a queued message can be cancelled")))
        }
    }
}

/// 404 for an unknown message id — also for one with a NUL character, which no stored message has (and
/// which PostgreSQL could not even compare).
fn no_message(id: &str) -> ApiError {
    ApiError::not_found(format!("no message {id:?}"))
}

/// Where the first NUL character (U+0000) of a request is: `biz_opaque_callback_data`,
/// `template.components[0].parameters[1].text`, or a field name. The whole request is checked, once, not a
/// list of the fields the gateway stores: the message is stored whole, with the fields this version does not
/// know kept as they came, so a list would always miss some. The parsed value is checked, not the raw bytes:
/// JSON carries a NUL only as the escape `\u0000`, while the same six characters after an escaped backslash
/// (`\\u0000`) are harmless text. serde_json bounds how deep what it parses nests, so the walk is bounded.
#[must_use]
pub fn nul_field(fields: &Map<String, Value>) -> Option<String> {
    nul_in_object(fields, "")
}

/// The details of a request refused for a NUL character at `at` (see [`nul_field`]).
#[must_use]
pub fn nul_details(at: &str) -> String {
    format!("{at}: text must not contain the NUL character (\\u0000)")
}

fn nul_in(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => has_nul(s).then(|| at.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_in(v, &format!("{at}[{i}]"))),
        Value::Object(fields) => nul_in_object(fields, at),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn nul_in_object(fields: &Map<String, Value>, at: &str) -> Option<String> {
    fields.iter().find_map(|(name, value)| {
        let field = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
        if has_nul(name) { Some(field.replace('\0', "\\u0000")) } else { nul_in(value, &field) }
    })
}

/// A template send is checked against the template cache at once (On-Premises template errors 2000–2012).
async fn check_template(state: &AppState, number: &str, message: &OutboundMessage) -> Result<(), ApiError> {
    let Some(waba) = state.config.numbers.iter().find(|n| n.id == number).map(|n| n.waba_id.as_str()) else {
        return Ok(());
    };
    let body = serde_json::to_value(message).map_err(|e| ApiError::internal(&e))?;
    let Some(template) = body.get("template") else { return Ok(()) };
    state.templates.check_send_fresh(waba, template).await.map_err(|p| {
        let (code, title) = p.onprem();
        error(StatusCode::BAD_REQUEST, code, title, p.details())
    })
}

fn take_string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(format!("{name}: must be a string"))),
    }
}

fn resolve_number(state: &AppState, from: Option<String>) -> Result<String, ApiError> {
    let numbers = state.outbound.numbers();
    match from {
        Some(f) if numbers.contains(&f) => Ok(f),
        Some(f) => Err(ApiError::invalid(format!(
            "from: {f:?} is not a phone number id configured on this gateway ({})",
            numbers.join(", ")
        ))),
        None if numbers.len() == 1 => Ok(numbers[0].clone()),
        None if numbers.is_empty() => Err(ApiError::invalid("no phone number is configured on this gateway")),
        None => Err(ApiError::missing(format!(
            "from: several numbers are configured; name the phone number id to send from ({})",
            numbers.join(", ")
        ))),
    }
}

/// A free-form message must reach the user inside their customer-service window — at the time it is to be
/// sent (`send_at`, when later than now), not only now: a message scheduled past the window's end would be
/// accepted and then fail with Meta's 131047.
async fn check_window(
    state: &AppState,
    number: &str,
    to: &str,
    send_at: Option<i64>,
) -> Result<(), ApiError> {
    let window_ms =
        i64::try_from(state.outbound.config().service_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let last = state.store.contact_last_inbound(number, to).await?;
    let closes = last.map(|t| {
        let last_ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        last_ms.saturating_add(window_ms)
    });
    let now = now_millis();
    let at = send_at.map_or(now, |t| t.max(now));
    if closes.is_some_and(|closes| at < closes) {
        return Ok(());
    }
    let details = match closes {
        Some(closes) if closes > now => format!(
            "the 24-hour customer service window with {to} closes at {}, before the message's send_at ({}): \
             only a template message can reach them then (On-Premises status error 470, Cloud API 131047). \
             Send a template, send it earlier, or add \"force\": true to send anyway",
            onprem_time(closes),
            onprem_time(at)
        ),
        _ => format!(
            "the 24-hour customer service window with {to} is closed ({}): only a template message can reach \
             them (On-Premises status error 470, Cloud API 131047). Send a template, or add \"force\": true to \
             send anyway",
            if last.is_some() { "their last message is older than 24 hours" } else { "they never wrote" }
        ),
    };
    Err(error(StatusCode::BAD_REQUEST, 1026, "Receiver Incapable", details))
}

/// A phone number in E.164 form (`+1 631-555-1234`) or a wa_id, as the digits of the wa_id.
#[must_use]
pub fn normalize_to(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if !rest.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.')) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    ((7..=15).contains(&digits.len()) && !digits.starts_with('0')).then_some(digits)
}

fn validation_error(e: ValidationError) -> ApiError {
    match &e {
        ValidationError::Missing { .. } => ApiError::missing(e.to_string()),
        ValidationError::TooLong { field, .. } if field.ends_with("text.body") => {
            error(StatusCode::BAD_REQUEST, 1001, "Message too long", e.to_string())
        }
        _ => ApiError::invalid(e.to_string()),
    }
}

/// Unix seconds (number) or RFC 3339 (`2026-05-01T09:30:00Z`, `…+02:00`) → Unix ms.
fn parse_time(v: &Value) -> Option<i64> {
    if let Some(secs) = v.as_i64() {
        return secs.checked_mul(1000);
    }
    let s = v.as_str()?;
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) =
        (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6
            && o.is_ascii()
            && (o.starts_with('+') || o.starts_with('-'))
            && o.as_bytes()[3] == b':' =>
        {
            let mins = o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?;
            if o.starts_with('-') { -mins } else { mins }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset * 60;
    secs.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_normalized() {
        assert_eq!(normalize_to("+1 631-555-1234").as_deref(), Some("16315551234"));
        assert_eq!(normalize_to("16315551234").as_deref(), Some("16315551234"));
        assert_eq!(normalize_to("+1 (631) 555.1234").as_deref(), Some("16315551234"));
        assert!(normalize_to("hello").is_none());
        assert!(normalize_to("+12").is_none());
        assert!(normalize_to("0612345678").is_none());
    }

    #[test]
    fn nul_characters_are_found_anywhere_with_their_place() {
        let fields = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(nul_field(&fields(json!({"to": "1", "text": {"body": "fine \\u0000 text"}}))), None);
        assert_eq!(
            nul_field(&fields(json!({"biz_opaque_callback_data": "x\u{0}"}))).unwrap(),
            "biz_opaque_callback_data"
        );
        let deep = json!({"template": {"components": [{"parameters": [{"text": "a"}, {"text": "\u{0}"}]}]}});
        assert_eq!(nul_field(&fields(deep)).unwrap(), "template.components[0].parameters[1].text");
        assert_eq!(nul_field(&fields(json!({"text": {"a\u{0}b": 1}}))).unwrap(), "text.a\\u0000b");
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time(&json!(1_700_000_000)), Some(1_700_000_000_000));
        assert_eq!(parse_time(&json!("2018-03-01T15:29:26Z")), Some(1_519_918_166_000));
        assert_eq!(parse_time(&json!("2018-03-01T17:29:26.5+02:00")), Some(1_519_918_166_000));
        assert!(parse_time(&json!("tomorrow")).is_none());
        // Not ASCII where the offset is: refused, not a panic on a character boundary.
        assert!(parse_time(&json!("2026-05-01T09:30:00+1é00")).is_none());
        assert!(parse_time(&json!("2026-05-01T09:30:00+é:00")).is_none());
        assert!(parse_time(&json!("2026-05-01T09:30:00+01;00")).is_none());
    }
}
