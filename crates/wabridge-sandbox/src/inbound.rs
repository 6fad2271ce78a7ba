//! Messages from simulated users: injected through the control API (or as automatic replies), they
//! open the user's 24-hour window, use the number's throughput and arrive as a `messages` webhook.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wabridge_types::limits::MediaKind;
use wabridge_types::webhook::InboundMessage;

use crate::config::WebhookShape;
use crate::error::SandboxError;
use crate::limits::interval_ns;
use crate::media::MediaObject;
use crate::state::{Shared, unix_now};
use crate::users::normalize_recipient;
use crate::webhooks::{Event, EventBody};

/// An inbound message from a simulated user, as `POST /_sandbox/inbound` takes it:
/// `{"from":"16505551234","name":"Ana","type":"text","text":{"body":"hi"}}`. Everything besides the
/// routing fields is the message as it appears in the webhook's `messages[]`; `id`, `timestamp` and
/// the user-id fields are filled in. Media without an `id` get a generated media object that can be
/// downloaded like any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The business number receiving it (default: the first number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// The user's phone number / WhatsApp id.
    pub from: String,
    /// The user's profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's WhatsApp username (current shape only), e.g. `@ana`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The message: `type` and its payload, and optionally `context`, `referral`, ….
    #[serde(flatten)]
    pub message: Map<String, Value>,
}

impl Inbound {
    /// A text message from `from`.
    #[must_use]
    pub fn text(from: impl Into<String>, body: impl Into<String>) -> Self {
        let mut message = Map::new();
        message.insert("type".into(), Value::String("text".into()));
        message.insert("text".into(), json!({ "body": body.into() }));
        Self { phone_number_id: None, from: from.into(), name: None, username: None, message }
    }

    /// Any message type: `kind` and its payload (`{"body":…}` for text, `{"caption":…}` for an image, …).
    #[must_use]
    pub fn of_type(from: impl Into<String>, kind: &str, payload: Value) -> Self {
        let mut message = Map::new();
        message.insert("type".into(), Value::String(kind.to_owned()));
        message.insert(kind.to_owned(), payload);
        Self { phone_number_id: None, from: from.into(), name: None, username: None, message }
    }

    /// Sets the receiving business number.
    #[must_use]
    pub fn to_number(mut self, phone_number_id: impl Into<String>) -> Self {
        self.phone_number_id = Some(phone_number_id.into());
        self
    }

    /// Sets the user's profile name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the message a reply to an earlier message (`context.id`).
    #[must_use]
    pub fn replying_to(mut self, wamid: impl Into<String>) -> Self {
        self.message.insert("context".into(), json!({ "id": wamid.into() }));
        self
    }
}

/// Delivers an inbound message; returns its wamid.
pub(crate) fn inject(
    shared: &Shared,
    number: Option<usize>,
    inbound: Inbound,
) -> Result<String, SandboxError> {
    let index = match (number, inbound.phone_number_id.as_deref()) {
        (Some(i), _) => i,
        (None, Some(id)) => shared
            .number(id)
            .map(|n| n.index)
            .ok_or_else(|| SandboxError::NotFound(format!("phone number {id}")))?,
        (None, None) => 0,
    };
    let number = &shared.numbers[index];
    let wa_id = normalize_recipient(&inbound.from)
        .ok_or_else(|| SandboxError::Invalid(format!("`from` is not a phone number: {}", inbound.from)))?;
    let current = shared.config.webhooks.shape == WebhookShape::Current;
    let now_ns = shared.clock.now_ns();
    let mut message = inbound.message;
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("text").to_owned();
    if let Some(Value::Object(context)) = message.get_mut("context") {
        context.entry("from").or_insert_with(|| Value::String(number.display.clone()));
    }
    if let Some(media_kind) = media_kind_of(&kind) {
        fill_media(shared, &mut message, &kind, media_kind, now_ns);
    }
    let wamid = shared.ids.wamid(&wa_id);
    message.insert("from".into(), Value::String(wa_id.clone()));
    message.insert("id".into(), Value::String(wamid.clone()));
    message.insert("timestamp".into(), Value::String(unix_now().to_string()));
    message.entry("type").or_insert_with(|| Value::String(kind.clone()));
    if current {
        message.insert("from_user_id".into(), Value::String(shared.users.user_id(&wa_id)));
    }
    let parsed: InboundMessage = serde_json::from_value(Value::Object(message))
        .map_err(|e| SandboxError::Invalid(format!("not an inbound message: {e}")))?;
    // Inbound messages use the number's throughput as outbound ones do (§7); they arrive regardless.
    number.gcra.force(now_ns, interval_ns(std::time::Duration::from_secs(1), u64::from(number.mps())));
    shared.users.record_inbound(index, &wa_id, now_ns, inbound.name.as_deref(), inbound.username.as_deref());
    shared.counters.inbound.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let contact = shared.users.contact(index, &wa_id, current);
    let key = crate::chaos::hash_bytes(wamid.as_bytes());
    shared.hub.emit(shared, Event::new(key, EventBody::Message { number: index, contact, message: parsed }));
    Ok(wamid)
}

fn media_kind_of(kind: &str) -> Option<MediaKind> {
    match kind {
        "image" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "audio" | "voice" => Some(MediaKind::Audio),
        "document" => Some(MediaKind::Document),
        "sticker" => Some(MediaKind::Sticker),
        _ => None,
    }
}

/// Gives an inbound media message a stored media object when it names none: the bytes of `data`
/// (base64) if given, else a few placeholder bytes.
fn fill_media(
    shared: &Shared,
    message: &mut Map<String, Value>,
    kind: &str,
    media_kind: MediaKind,
    now: u64,
) {
    let payload = message.entry(kind.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(payload) = payload else { return };
    if payload.contains_key("id") {
        return;
    }
    let mime = payload
        .get("mime_type")
        .and_then(Value::as_str)
        .map_or_else(|| media_kind.mime_types()[0].to_owned(), str::to_owned);
    let bytes = payload
        .remove("data")
        .and_then(|d| d.as_str().map(str::to_owned))
        .and_then(|d| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(d).ok()
        })
        .unwrap_or_else(|| format!("sandbox {kind} media").into_bytes());
    // Media received in webhooks lives 7 days (§4).
    let expires = now.saturating_add(7 * 24 * 3600 * 1_000_000_000);
    let object = MediaObject::new(Bytes::from(bytes), mime.clone(), expires);
    let id = shared.ids.numeric();
    payload.insert("id".into(), Value::String(id.clone()));
    payload.insert("mime_type".into(), Value::String(mime));
    payload.insert("sha256".into(), Value::String(object.sha256_b64.clone()));
    shared.media.insert(id, object);
}
