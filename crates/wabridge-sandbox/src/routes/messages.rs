//! `POST /{phone-number-id}/messages`: validation as Meta does it, the limits, and acceptance.
//!
//! Order of checks: the request itself (100 / 131008 / 131009 / 131051, with [`crate::interactive`]),
//! the recipient (131021), the number's state (133010 unregistered, 131057 maintenance), the template
//! (1320xx), the media ids it names ([`crate::send_media`]: 100), then the limits (130429 throughput,
//! 131056 pair). A message that passes is answered with a wamid; a message Meta would accept and then
//! fail (131026, 131047, 131064, 131053) is accepted too and fails in a status webhook.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use wabridge_types::ValidationError;
use wabridge_types::response::{SendContact, SendResponse, SentMessage};
use wabridge_types::send::{Content, MarkRead, OutboundMessage};

use super::graph::success;
use crate::chaos::hash_bytes;
use crate::config::AutoReply;
use crate::error::ApiError;
use crate::lifecycle::{Facts, Failure, Job};
use crate::limits::{interval_ns, nanos};
use crate::numbers::Number;
use crate::sent::NewSent;
use crate::state::{Shared, unix_now};
use crate::users::{normalize_recipient, pair_key};

/// Message types the Cloud API sends.
const KNOWN_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
];

/// Handles a send or a read receipt.
pub(super) fn post(shared: &Shared, number: &Arc<Number>, body: Bytes) -> Result<Response, ApiError> {
    // Fast path: a well-formed send parses straight from the bytes. Anything else (read receipts,
    // malformed bodies) takes the slower path below, which finds the precise error.
    if let Ok(message) = serde_json::from_slice::<OutboundMessage>(&body) {
        let well_formed = message.messaging_product.as_deref() == Some(wabridge_types::MESSAGING_PRODUCT)
            && !matches!(message.content, Content::Unknown { .. });
        if well_formed {
            check_request(&message)?;
            return accept(shared, number, &message, body);
        }
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(100, format!("Invalid parameter: the body is not JSON ({e})")))?;
    let Value::Object(map) = &value else {
        return Err(ApiError::new(100, "Invalid parameter: the body must be a JSON object"));
    };
    if is_receipt(&value) {
        return mark_read(&value);
    }
    check_envelope(map)?;
    let message = OutboundMessage::deserialize(&value).map_err(|e| parse_error(&e.to_string()))?;
    check_request(&message)?;
    accept(shared, number, &message, body)
}

/// `PUT /{phone-number-id}/messages`: the legacy read receipt (Meta's Postman collection), nothing else —
/// sends go by `POST`.
pub(super) fn put(body: &[u8]) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(100, format!("Invalid parameter: the body is not JSON ({e})")))?;
    if is_receipt(&value) {
        return mark_read(&value);
    }
    Err(ApiError::new(
        100,
        "Unsupported put request: PUT on messages only marks a message as read \
         ({\"messaging_product\":\"whatsapp\",\"status\":\"read\",\"message_id\":…}); send messages with POST",
    ))
}

/// A read receipt: a `status` and neither `to` nor `type`.
fn is_receipt(value: &Value) -> bool {
    value.get("status").is_some() && value.get("to").is_none() && value.get("type").is_none()
}

/// The checks of the request itself: the documented limits (`wabridge-types`), then what Meta checks
/// beyond them.
fn check_request(message: &OutboundMessage) -> Result<(), ApiError> {
    message.validate().map_err(validation_error)?;
    if let Content::Interactive(interactive) = &message.content {
        crate::interactive::check(interactive).map_err(validation_error)?;
    }
    Ok(())
}

/// The checks Meta makes before parsing the content, with its codes.
fn check_envelope(map: &Map<String, Value>) -> Result<(), ApiError> {
    match map.get("messaging_product") {
        None => return Err(ApiError::new(131_008, "The parameter messaging_product is required.")),
        Some(Value::String(p)) if p == wabridge_types::MESSAGING_PRODUCT => {}
        Some(_) => return Err(ApiError::new(100, "Param messaging_product must be 'whatsapp'")),
    }
    if !map.contains_key("to") {
        return Err(ApiError::new(131_008, "The parameter to is required."));
    }
    let kind = match map.get("type") {
        None => "text",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(ApiError::new(100, "Param type must be a string")),
    };
    if !KNOWN_TYPES.contains(&kind) {
        return Err(ApiError::new(131_051, format!("Unsupported message type: {kind}")));
    }
    if !map.contains_key(kind) {
        return Err(ApiError::new(131_008, format!("The parameter {kind} is required.")));
    }
    Ok(())
}

/// A body that does not parse: a missing member is 131008, anything else 131009; the details name the
/// member as the parser reported it.
fn parse_error(e: &str) -> ApiError {
    if e.contains("missing field") {
        ApiError::new(131_008, format!("Required parameter is missing: {e}"))
    } else {
        ApiError::new(131_009, format!("Parameter value is not valid: {e}"))
    }
}

/// A documented limit broken: missing → 131008; lengths and counts → 100 (as Meta answers an
/// over-long text body); other invalid values → 131009.
fn validation_error(e: ValidationError) -> ApiError {
    let code = match &e {
        ValidationError::Missing { .. } => 131_008,
        ValidationError::TooLong { .. }
        | ValidationError::TooManyBytes { .. }
        | ValidationError::TooMany { .. }
        | ValidationError::TooFew { .. } => 100,
        _ => 131_009,
    };
    ApiError::new(code, format!("Param {e}"))
}

/// A read receipt, with or without a typing indicator: `messaging_product` is required as in a send
/// (131008 missing, 100 another product), `typing_indicator.type` can only be `text` (131009).
fn mark_read(value: &Value) -> Result<Response, ApiError> {
    match value.get("messaging_product") {
        None => return Err(ApiError::new(131_008, "The parameter messaging_product is required.")),
        Some(Value::String(p)) if p == wabridge_types::MESSAGING_PRODUCT => {}
        Some(_) => return Err(ApiError::new(100, "Param messaging_product must be 'whatsapp'")),
    }
    let receipt = MarkRead::deserialize(value).map_err(|e| parse_error(&e.to_string()))?;
    receipt.validate().map_err(validation_error)?;
    if let Some(indicator) = &receipt.typing_indicator
        && indicator.kind != "text"
    {
        return Err(ApiError::new(
            131_009,
            format!("Param typing_indicator.type must be \"text\", found {:?}", indicator.kind),
        ));
    }
    Ok(success())
}

fn accept(
    shared: &Shared,
    number: &Number,
    message: &OutboundMessage,
    body: Bytes,
) -> Result<Response, ApiError> {
    let wa_id = normalize_recipient(&message.to)
        .ok_or_else(|| ApiError::new(100, "Invalid parameter: to is not a valid WhatsApp phone number"))?;
    if wa_id == number.display {
        return Err(ApiError::new(131_021, "Recipient cannot be sender: to is the business phone number"));
    }
    if !number.is_registered() {
        return Err(ApiError::new(133_010, "Phone number Not Registered"));
    }
    let now = shared.clock.now_ns();
    if number.in_maintenance(now) {
        return Err(ApiError::new(
            131_057,
            "The phone number is in maintenance mode during a throughput upgrade.",
        ));
    }
    let template_category = match &message.content {
        Content::Template(t) => Some(crate::templates::check_send(&shared.templates, t)?),
        _ => None,
    };
    let media_misfit = crate::send_media::check(shared, &message.content, now)?;
    check_limits(shared, number, &wa_id, now)?;

    let limits = &shared.config.limits;
    let window_open = shared.users.window_open(number.index, &wa_id, now, nanos(limits.service_window));
    let failure = if shared.users.is_unreachable(&wa_id) {
        Some(Failure::code(131_026))
    } else if template_category.is_none() && !window_open {
        Some(Failure::code(131_047))
    } else if template_category.is_some() && !window_open && !within_tier(shared, &wa_id, now) {
        // Beyond the messaging-limit tier the send is accepted and fails in a status webhook, like the
        // other per-recipient failures; the code (131064) and the asynchronous delivery are our reading [R].
        Some(Failure::code(131_064))
    } else {
        media_misfit.map(|details| Failure { code: 131_053, details: Some(details) })
    };
    let (category, billable, pricing_type) = match &template_category {
        None => ("service".to_owned(), false, "free_customer_service"),
        Some(c) if window_open && c == "utility" => (c.clone(), false, "free_customer_service"),
        Some(c) => (c.clone(), true, "regular"),
    };
    let wamid = shared.ids.wamid(&wa_id);
    shared.sent.insert(NewSent {
        wamid: &wamid,
        number: number.index,
        to: &wa_id,
        kind: message.kind(),
        body,
        callback: message.biz_opaque_callback_data.as_deref(),
        accepted_at: unix_now(),
    });
    let text = match (&message.content, &shared.config.users.auto_reply) {
        (_, AutoReply::Off) => None,
        (Content::Text(t), _) => Some(t.body.clone()),
        _ => None,
    };
    let facts = Facts {
        wamid: wamid.clone(),
        number: number.index,
        wa_id: wa_id.clone(),
        callback: message.biz_opaque_callback_data.clone(),
        category,
        billable,
        pricing_type,
        failure,
        text,
        accepted_at: now,
    };
    // The lifecycle task only ends at shutdown; a send racing it has nothing left to notify.
    let _ = shared.jobs.send(Job::Message(Arc::new(facts)));
    shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let response = SendResponse {
        messaging_product: wabridge_types::MESSAGING_PRODUCT.to_owned(),
        contacts: vec![SendContact {
            input: Some(message.to.clone()),
            wa_id: Some(wa_id.into()),
            user_id: None,
            extra: Map::new(),
        }],
        messages: vec![SentMessage {
            id: wamid.into(),
            message_status: template_category.map(|_| "accepted".to_owned()),
            extra: Map::new(),
        }],
        extra: Map::new(),
    };
    Ok(Json(response).into_response())
}

/// The number's throughput (130429) and the pair limit (131056).
fn check_limits(shared: &Shared, number: &Number, wa_id: &str, now: u64) -> Result<(), ApiError> {
    let interval = interval_ns(Duration::from_secs(1), u64::from(number.mps()));
    if number.gcra.acquire(now, interval, nanos(shared.config.throughput_burst)).is_err() {
        return Err(ApiError::new(
            130_429,
            format!(
                "Message failed to send because there were too many messages sent from this phone number \
                 ({} messages per second).",
                number.mps()
            ),
        ));
    }
    let limits = &shared.config.limits;
    let pair = nanos(limits.pair_interval).max(1);
    if shared.pair.acquire(pair_key(number.index, wa_id), now, pair, limits.pair_burst).is_err() {
        return Err(ApiError::new(
            131_056,
            "Message failed to send because there were too many messages sent from this phone number to the \
             same phone number in a short period of time.",
        ));
    }
    Ok(())
}

/// The messaging-limit tier: unique users contacted outside the window per rolling 24 hours.
fn within_tier(shared: &Shared, wa_id: &str, now: u64) -> bool {
    match shared.config.limits.messaging_limit {
        None => true,
        Some(limit) => {
            shared.tier.admit(hash_bytes(wa_id.as_bytes()), now, nanos(Duration::from_secs(24 * 3600)), limit)
        }
    }
}
