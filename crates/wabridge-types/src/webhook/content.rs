//! What an inbound message carries: one variant per message `type`, with the payload Meta puts under the key
//! of the same name (`"type": "text", "text": {...}`).

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::{Scalar, parse_typed, split_nulls, take_type, to_json};
use crate::ids::{MediaId, WaId, Wamid};

/// The content of an inbound message, chosen by its `type`.
///
/// A known type whose payload does not have the expected shape is kept as [`Unknown`](Self::Unknown) rather
/// than failing the whole webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    /// `text`.
    Text(Text),
    /// `image`.
    Image(Media),
    /// `video`.
    Video(Media),
    /// `document`.
    Document(Media),
    /// `audio` (a voice note has `voice: true`).
    Audio(Media),
    /// `sticker` (`animated` says whether it moves).
    Sticker(Media),
    /// `location`.
    Location(Location),
    /// `contacts`: shared contact cards.
    Contacts(Vec<SharedContact>),
    /// `interactive`: a reply to buttons, a list or a flow.
    Interactive(Interactive),
    /// `button`: a template's quick-reply button was pressed.
    Button(TemplateButton),
    /// `reaction` (or its removal: see [`Reaction::is_removal`]).
    Reaction(Reaction),
    /// `order`: a cart sent from a catalog.
    Order(Order),
    /// `system`: the user changed number or identity.
    System(System),
    /// `request_welcome`: the user opened the chat for the first time. No payload.
    RequestWelcome,
    /// `unsupported` or `unknown`: a message WhatsApp cannot pass on; the message's `errors` say why (131051).
    /// A payload under the type's key, if any, stays in the message's `extra`.
    Unsupported {
        /// `"unsupported"` or `"unknown"`, as sent.
        type_name: String,
    },
    /// Any other type, kept as sent: the type and the payload under its key, if any.
    Unknown {
        /// The `type` (empty when the message had no `type` and none could be inferred).
        type_name: String,
        /// The payload under the key named like the type.
        value: Option<Value>,
    },
}

/// The keys that name a message's content; used to infer the type of a message sent without `type` (Meta's
/// own contacts example has none).
pub(crate) const CONTENT_KEYS: &[&str] = &[
    "text",
    "image",
    "video",
    "document",
    "audio",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
];

impl MessageContent {
    /// The message `type` as it travels on the wire.
    #[must_use]
    pub fn type_name(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Audio(_) => "audio",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Contacts(_) => "contacts",
            Self::Interactive(_) => "interactive",
            Self::Button(_) => "button",
            Self::Reaction(_) => "reaction",
            Self::Order(_) => "order",
            Self::System(_) => "system",
            Self::RequestWelcome => "request_welcome",
            Self::Unsupported { type_name } | Self::Unknown { type_name, .. } => type_name,
        }
    }

    /// Whether the content comes with a payload under the key named like the type.
    pub(crate) fn takes_payload(type_name: &str) -> bool {
        !matches!(type_name, "request_welcome" | "unsupported" | "unknown")
    }

    /// Builds the content from the type and the payload found under its key.
    pub(crate) fn from_parts(type_name: String, payload: Option<Value>) -> Self {
        fn typed<T: for<'de> Deserialize<'de>>(payload: Option<&Value>) -> Option<T> {
            payload.and_then(parse_typed)
        }
        let p = payload.as_ref();
        let parsed = match type_name.as_str() {
            "text" => typed(p).map(Self::Text),
            "image" => typed(p).map(Self::Image),
            "video" => typed(p).map(Self::Video),
            "document" => typed(p).map(Self::Document),
            "audio" => typed(p).map(Self::Audio),
            "sticker" => typed(p).map(Self::Sticker),
            "location" => typed(p).map(Self::Location),
            "contacts" => typed(p).map(Self::Contacts),
            "interactive" => typed(p).map(Self::Interactive),
            "button" => typed(p).map(Self::Button),
            "reaction" => typed(p).map(Self::Reaction),
            "order" => typed(p).map(Self::Order),
            "system" => typed(p).map(Self::System),
            "request_welcome" => Some(Self::RequestWelcome),
            "unsupported" | "unknown" => Some(Self::Unsupported { type_name: type_name.clone() }),
            _ => None,
        };
        parsed.unwrap_or(Self::Unknown { type_name, value: payload })
    }

    /// The payload to write under the type's key, if the content has one.
    pub(crate) fn payload<E: serde::ser::Error>(&self) -> Result<Option<Value>, E> {
        let value = match self {
            Self::Text(p) => to_json(p)?,
            Self::Image(p) | Self::Video(p) | Self::Document(p) | Self::Audio(p) | Self::Sticker(p) => {
                to_json(p)?
            }
            Self::Location(p) => to_json(p)?,
            Self::Contacts(p) => to_json(p)?,
            Self::Interactive(p) => to_json(p)?,
            Self::Button(p) => to_json(p)?,
            Self::Reaction(p) => to_json(p)?,
            Self::Order(p) => to_json(p)?,
            Self::System(p) => to_json(p)?,
            Self::RequestWelcome | Self::Unsupported { .. } => return Ok(None),
            Self::Unknown { value, .. } => return Ok(value.clone()),
        };
        Ok(Some(value))
    }
}

/// `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Text {
    /// The text.
    pub body: String,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Text);

/// `image`, `video`, `document`, `audio`, `sticker`: media WhatsApp has stored for download by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Media {
    /// The media id, for `GET /{media-id}`.
    pub id: MediaId,
    /// E.g. `"image/jpeg"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// SHA-256 of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Caption (image, video, document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// File name (document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Download URL, in newer payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `true` for a voice note (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Whether a sticker is animated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Media);

/// `location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Location {
    /// Latitude (a number; kept as sent).
    pub latitude: Scalar,
    /// Longitude (a number; kept as sent).
    pub longitude: Scalar,
    /// Name of the place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address of the place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Website of the place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Location);

/// A shared contact card. Name and phones are typed; addresses, emails, org, urls and birthday stay in
/// `extra` as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SharedContact {
    /// The contact's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<SharedContactName>,
    /// The contact's phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<SharedContactPhone>>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(SharedContact);

/// A shared contact's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SharedContactName {
    /// The full name as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(SharedContactName);

/// A shared contact's phone number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SharedContactPhone {
    /// The number as written on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The number's WhatsApp id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// `HOME`, `WORK`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(SharedContactPhone);

/// `interactive`: `{"type": "button_reply", "button_reply": {...}}` and the like.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactive {
    /// The reply, chosen by the interactive `type`.
    pub reply: InteractiveReply,
    /// Keys this crate does not know, kept as sent.
    pub extra: Map<String, Value>,
}

/// The reply inside an `interactive` message.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractiveReply {
    /// A reply button was pressed.
    ButtonReply(ButtonReply),
    /// A list row was chosen.
    ListReply(ListReply),
    /// A flow was completed.
    NfmReply(NfmReply),
    /// Any other interactive type, kept as sent (an empty `type_name` means `type` was absent).
    Unknown {
        /// The interactive `type`.
        type_name: String,
        /// The payload under the key named like the type.
        value: Option<Value>,
    },
}

/// `interactive.button_reply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ButtonReply {
    /// The button id the business chose.
    pub id: String,
    /// The button's title.
    pub title: String,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ButtonReply);

/// `interactive.list_reply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ListReply {
    /// The row id the business chose.
    pub id: String,
    /// The row's title.
    pub title: String,
    /// The row's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ListReply);

/// `interactive.nfm_reply`: a completed flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct NfmReply {
    /// The flow's answers: JSON inside a string (see [`response`](Self::response)).
    pub response_json: String,
    /// Usually `"Sent"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Usually `"flow"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(NfmReply);

/// `button`: a template's quick-reply button was pressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateButton {
    /// The payload the business set on the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The button's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateButton);

/// `reaction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Reaction {
    /// The message reacted to. (Optional: Meta's own example misspells the key, which then stays in `extra`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Wamid>,
    /// The emoji; absent or empty when the user removed their reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Reaction);

/// `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Order {
    /// The catalog the products are from.
    pub catalog_id: String,
    /// Text the user sent with the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The products.
    pub product_items: Vec<ProductItem>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Order);

/// An item of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ProductItem {
    /// The product's SKU.
    pub product_retailer_id: String,
    /// How many (a number; kept as sent).
    pub quantity: Scalar,
    /// Unit price (a number; kept as sent).
    pub item_price: Scalar,
    /// ISO 4217 currency.
    pub currency: String,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ProductItem);

wire_enum! {
    /// `system.type`.
    SystemKind {
        /// The user moved to a new phone number (`new_wa_id` / `wa_id`).
        UserChangedNumber = "user_changed_number",
        /// The user's identity (security code) changed.
        CustomerIdentityChanged = "customer_identity_changed",
    }
}

/// `system`: something happened to the user's account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct System {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The user's new WhatsApp id (current name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// The user's new WhatsApp id (older name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_wa_id: Option<WaId>,
    /// What happened.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SystemKind>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(System);

impl Text {
    /// A text payload.
    #[must_use]
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), extra: Map::new() }
    }
}

impl Reaction {
    /// Whether this removes the user's reaction: `emoji` absent or empty.
    #[must_use]
    pub fn is_removal(&self) -> bool {
        self.emoji.as_deref().is_none_or(str::is_empty)
    }
}

impl NfmReply {
    /// The flow's answers, parsed from `response_json`.
    ///
    /// # Errors
    /// When `response_json` is not JSON.
    pub fn response(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.response_json)
    }
}

impl InteractiveReply {
    /// The interactive `type` as it travels on the wire.
    #[must_use]
    pub fn type_name(&self) -> &str {
        match self {
            Self::ButtonReply(_) => "button_reply",
            Self::ListReply(_) => "list_reply",
            Self::NfmReply(_) => "nfm_reply",
            Self::Unknown { type_name, .. } => type_name,
        }
    }
}

impl Serialize for Interactive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let type_name = self.reply.type_name();
        let payload = match &self.reply {
            InteractiveReply::ButtonReply(p) => Some(to_json(p)?),
            InteractiveReply::ListReply(p) => Some(to_json(p)?),
            InteractiveReply::NfmReply(p) => Some(to_json(p)?),
            InteractiveReply::Unknown { value, .. } => value.clone(),
        };
        let mut map = serializer.serialize_map(None)?;
        if !type_name.is_empty() {
            map.serialize_entry("type", type_name)?;
            if let Some(payload) = &payload {
                map.serialize_entry(type_name, payload)?;
            }
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Interactive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut map, nulls) = split_nulls(deserializer)?;
        let type_name = take_type(&mut map).unwrap_or_default();
        let payload = if type_name.is_empty() { None } else { map.remove(&type_name) };
        let typed = payload.as_ref().and_then(|p| match type_name.as_str() {
            "button_reply" => parse_typed(p).map(InteractiveReply::ButtonReply),
            "list_reply" => parse_typed(p).map(InteractiveReply::ListReply),
            "nfm_reply" => parse_typed(p).map(InteractiveReply::NfmReply),
            _ => None,
        });
        let reply = typed.unwrap_or(InteractiveReply::Unknown { type_name, value: payload });
        map.extend(nulls);
        Ok(Self { reply, extra: map })
    }
}
