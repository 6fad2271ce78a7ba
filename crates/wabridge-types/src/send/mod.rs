//! Send requests: the body of `POST /{phone-number-id}/messages` (`cloud-api.md` §1) for every kind of
//! message, the read receipt that shares the endpoint, and the checks of Meta's documented limits.
//!
//! Build the common cases in one line and check them before anything leaves:
//!
//! ```
//! use wabridge_types::send::{Interactive, MediaSource, OutboundMessage, ReplyButton, Template};
//!
//! let text = OutboundMessage::text("16505551234", "See https://example.com").preview_url(true);
//! let image = OutboundMessage::image("16505551234", MediaSource::link("https://example.com/a.jpg"));
//! let template = OutboundMessage::template(
//!     "16505551234",
//!     Template::new("order_shipped", "en_US").body_text(["Ada", "#1042"]),
//! );
//! let buttons = OutboundMessage::interactive(
//!     "16505551234",
//!     Interactive::buttons("Still interested?", [ReplyButton::new("yes", "Yes"), ReplyButton::new("no", "No")]),
//! )
//! .reply_to("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3");
//! for msg in [text, image, template, buttons] {
//!     msg.validate().expect("within Meta's limits");
//! }
//! ```
//!
//! Parsing keeps everything: unknown members land in `extra`, unknown message, interactive, header and
//! parameter types in `Unknown` variants, and explicit `null`s are remembered, so parse → serialize gives
//! back the same JSON.

mod contacts;
mod interactive;
mod mark_read;
mod media;
mod template;
pub(crate) mod wire;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use contacts::{
    Contact, ContactAddress, ContactEmail, ContactName, ContactOrg, ContactPhone, ContactUrl,
};
pub use interactive::{
    ButtonAction, ButtonReply, CatalogMessageAction, CatalogParameters, CtaUrlAction, CtaUrlParameters,
    FlowAction, FlowActionPayload, FlowParameters, Header, HeaderContent, Interactive, InteractiveAction,
    ListAction, ListRow, ListSection, LocationRequestAction, ProductAction, ProductItem, ProductListAction,
    ProductSection, ReplyButton, TextObject,
};
pub use mark_read::{MarkRead, TypingIndicator};
pub use media::{Coordinate, Location, Media, MediaSource, Reaction, Text};
pub use template::{
    ButtonIndex, ButtonSubType, Component, ComponentKind, Currency, DateTime, Language, Parameter,
    ParameterAction, ParameterValue, Template,
};
pub use wire::JsonMap;

use crate::ids::Wamid;
use crate::limits::{CALLBACK_DATA_MAX_BYTES, MediaKind};
use crate::validate::ValidationError;
use wire::{
    MapWire, Tagged, WireNotes, payload, put_opt, put_tagged, restore_nulls, strip_nulls, take_opt,
    take_required, take_tagged, to_payload,
};

/// The body of `POST /{phone-number-id}/messages`: who receives it, what it replies to, and the content.
///
/// Build one with the constructors ([`OutboundMessage::text`], [`OutboundMessage::image`], …), or parse
/// one from JSON (Cloud API bodies, and On-Premises `/v1/messages` bodies that omit `messaging_product`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// `whatsapp`. Constructors set it; `None` means the parsed body had none (On-Premises style).
    pub messaging_product: Option<String>,
    /// `individual` (the default) or `group`.
    pub recipient_type: Option<RecipientType>,
    /// The recipient: a phone number in international form or a WhatsApp id.
    pub to: String,
    /// The message this one replies to.
    pub context: Option<Context>,
    /// At most 512 bytes, echoed in this message's status webhooks.
    pub biz_opaque_callback_data: Option<String>,
    /// What is sent; decides `type`.
    pub content: Content,
    /// Top-level members this crate does not know, kept as sent.
    pub extra: JsonMap,
    /// How the parsed body looked beyond its content (omitted `type`, explicit `null`s).
    wire: WireNotes,
}

/// `recipient_type` of a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    /// One user (the default).
    Individual,
    /// A group (Groups API).
    Group,
    /// Any other value, kept as sent.
    #[serde(untagged)]
    Other(String),
}

/// `context` of a send: the message being replied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The wamid of the earlier message.
    pub message_id: Wamid,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The content of a send: `"type":"<kind>"` and the member of the same name.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `text`.
    Text(Text),
    /// `image`, with an optional caption.
    Image(Media),
    /// `audio`.
    Audio(Media),
    /// `video`, with an optional caption.
    Video(Media),
    /// `document`, with an optional caption and file name.
    Document(Media),
    /// `sticker`.
    Sticker(Media),
    /// `location`.
    Location(Location),
    /// `contacts`: one or more contact cards.
    Contacts(Vec<Contact>),
    /// `reaction`.
    Reaction(Reaction),
    /// `interactive` (boxed: by far the largest payload).
    Interactive(Box<Interactive>),
    /// `template`.
    Template(Template),
    /// A message type this crate does not know, with the member named after it if there was one.
    Unknown {
        /// The `type` value as sent.
        kind: String,
        /// The member named after `kind`.
        value: Option<Value>,
    },
}

impl Content {
    /// The media kind of an image, audio, video, document or sticker message.
    #[must_use]
    pub fn media_kind(&self) -> Option<MediaKind> {
        match self {
            Self::Image(_) => Some(MediaKind::Image),
            Self::Audio(_) => Some(MediaKind::Audio),
            Self::Video(_) => Some(MediaKind::Video),
            Self::Document(_) => Some(MediaKind::Document),
            Self::Sticker(_) => Some(MediaKind::Sticker),
            _ => None,
        }
    }

    fn check(&self) -> Result<(), ValidationError> {
        match self {
            Self::Text(text) => text.check(),
            Self::Image(m) | Self::Audio(m) | Self::Video(m) | Self::Document(m) | Self::Sticker(m) => {
                match self.media_kind() {
                    Some(kind) => m.check_message(self.kind(), kind),
                    None => Ok(()),
                }
            }
            Self::Contacts(contacts) => contacts::check_contacts(contacts),
            Self::Reaction(reaction) => reaction.check(),
            Self::Interactive(interactive) => interactive.check(),
            Self::Template(template) => template.check(),
            Self::Location(_) | Self::Unknown { .. } => Ok(()),
        }
    }
}

impl Tagged for Content {
    fn kind(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Audio(_) => "audio",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Contacts(_) => "contacts",
            Self::Reaction(_) => "reaction",
            Self::Interactive(_) => "interactive",
            Self::Template(_) => "template",
            Self::Unknown { kind, .. } => kind,
        }
    }

    fn payload(&self) -> Result<Option<Value>, serde_json::Error> {
        match self {
            Self::Text(t) => to_payload(t),
            Self::Image(m) | Self::Audio(m) | Self::Video(m) | Self::Document(m) | Self::Sticker(m) => {
                to_payload(m)
            }
            Self::Location(l) => to_payload(l),
            Self::Contacts(c) => to_payload(c),
            Self::Reaction(r) => to_payload(r),
            Self::Interactive(i) => to_payload(i),
            Self::Template(t) => to_payload(t),
            Self::Unknown { value, .. } => Ok(value.clone()),
        }
    }

    fn from_parts(kind: String, value: Option<Value>) -> Result<Self, String> {
        Ok(match kind.as_str() {
            "text" => Self::Text(payload(&kind, value)?),
            "image" => Self::Image(payload(&kind, value)?),
            "audio" => Self::Audio(payload(&kind, value)?),
            "video" => Self::Video(payload(&kind, value)?),
            "document" => Self::Document(payload(&kind, value)?),
            "sticker" => Self::Sticker(payload(&kind, value)?),
            "location" => Self::Location(payload(&kind, value)?),
            "contacts" => Self::Contacts(payload(&kind, value)?),
            "reaction" => Self::Reaction(payload(&kind, value)?),
            "interactive" => Self::Interactive(payload(&kind, value)?),
            "template" => Self::Template(payload(&kind, value)?),
            _ => Self::Unknown { kind, value },
        })
    }
}

macro_rules! content_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl From<$ty> for Content {
            fn from(value: $ty) -> Self {
                Self::$variant(value)
            }
        }
    )*};
}
content_from!(
    Text => Text,
    Location => Location,
    Vec<Contact> => Contacts,
    Reaction => Reaction,
    Template => Template,
);

impl From<Interactive> for Content {
    fn from(value: Interactive) -> Self {
        Self::Interactive(Box::new(value))
    }
}

impl OutboundMessage {
    /// A message to `to` with any content; the specific constructors below are shorter.
    #[must_use]
    pub fn new(to: impl Into<String>, content: impl Into<Content>) -> Self {
        Self {
            messaging_product: Some(crate::MESSAGING_PRODUCT.to_owned()),
            recipient_type: Some(RecipientType::Individual),
            to: to.into(),
            context: None,
            biz_opaque_callback_data: None,
            content: content.into(),
            extra: JsonMap::new(),
            wire: WireNotes::default(),
        }
    }

    /// A text message (at most 4,096 characters).
    #[must_use]
    pub fn text(to: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(to, Text::new(body))
    }

    /// An image (JPEG or PNG, 5 MB), by id or link; pass a [`Media`] to add a caption.
    #[must_use]
    pub fn image(to: impl Into<String>, media: impl Into<Media>) -> Self {
        Self::new(to, Content::Image(media.into()))
    }

    /// An audio file or voice note (16 MB).
    #[must_use]
    pub fn audio(to: impl Into<String>, media: impl Into<Media>) -> Self {
        Self::new(to, Content::Audio(media.into()))
    }

    /// A video (MP4 or 3GPP, 16 MB); pass a [`Media`] to add a caption.
    #[must_use]
    pub fn video(to: impl Into<String>, media: impl Into<Media>) -> Self {
        Self::new(to, Content::Video(media.into()))
    }

    /// A document (100 MB); pass a [`Media`] to add a caption or file name.
    #[must_use]
    pub fn document(to: impl Into<String>, media: impl Into<Media>) -> Self {
        Self::new(to, Content::Document(media.into()))
    }

    /// A sticker (WebP, 512×512).
    #[must_use]
    pub fn sticker(to: impl Into<String>, media: impl Into<Media>) -> Self {
        Self::new(to, Content::Sticker(media.into()))
    }

    /// A location pin.
    #[must_use]
    pub fn location(to: impl Into<String>, location: Location) -> Self {
        Self::new(to, location)
    }

    /// Contact cards.
    #[must_use]
    pub fn contacts(to: impl Into<String>, contacts: impl IntoIterator<Item = Contact>) -> Self {
        Self::new(to, Content::Contacts(contacts.into_iter().collect()))
    }

    /// A reaction with `emoji` to the message `message_id`.
    #[must_use]
    pub fn reaction(to: impl Into<String>, message_id: impl Into<Wamid>, emoji: impl Into<String>) -> Self {
        Self::new(to, Reaction::new(message_id, emoji))
    }

    /// Removes an earlier reaction to `message_id` (a reaction with an empty emoji).
    #[must_use]
    pub fn remove_reaction(to: impl Into<String>, message_id: impl Into<Wamid>) -> Self {
        Self::reaction(to, message_id, "")
    }

    /// An interactive message (buttons, list, CTA URL, flow, products, …).
    #[must_use]
    pub fn interactive(to: impl Into<String>, interactive: Interactive) -> Self {
        Self::new(to, interactive)
    }

    /// A template message.
    #[must_use]
    pub fn template(to: impl Into<String>, template: Template) -> Self {
        Self::new(to, template)
    }

    /// Makes this message a reply to `message_id` (shown quoted above it).
    #[must_use]
    pub fn reply_to(mut self, message_id: impl Into<Wamid>) -> Self {
        self.context = Some(Context { message_id: message_id.into(), extra: JsonMap::new() });
        self
    }

    /// Sets `biz_opaque_callback_data`, echoed in this message's status webhooks (at most 512 bytes).
    #[must_use]
    pub fn with_callback_data(mut self, data: impl Into<String>) -> Self {
        self.biz_opaque_callback_data = Some(data.into());
        self
    }

    /// Turns the link preview of a text message on or off; other kinds of message are left unchanged.
    #[must_use]
    pub fn preview_url(mut self, preview: bool) -> Self {
        if let Content::Text(text) = &mut self.content {
            text.preview_url = Some(preview);
        }
        self
    }

    /// The `type` of this message (`text`, `image`, …, or the unknown type as sent).
    #[must_use]
    pub fn kind(&self) -> &str {
        self.content.kind()
    }

    /// Checks every limit Meta documents for this kind of message (§1), so a request that Meta would
    /// reject is refused before it is queued. The error names the field as a JSON path.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(product) = &self.messaging_product
            && product != crate::MESSAGING_PRODUCT
        {
            return Err(ValidationError::Invalid {
                field: "messaging_product".to_owned(),
                reason: format!("must be \"{}\"", crate::MESSAGING_PRODUCT),
            });
        }
        if self.to.trim().is_empty() {
            return Err(ValidationError::Missing { field: "to".to_owned() });
        }
        if let Some(context) = &self.context {
            media::check_wamid(|| "context.message_id".to_owned(), &context.message_id)?;
        }
        if let Some(data) = &self.biz_opaque_callback_data
            && data.len() > CALLBACK_DATA_MAX_BYTES
        {
            return Err(ValidationError::TooManyBytes {
                field: "biz_opaque_callback_data".to_owned(),
                found: data.len(),
                limit: CALLBACK_DATA_MAX_BYTES,
            });
        }
        self.content.check()
    }
}

impl MapWire for OutboundMessage {
    fn to_map(&self) -> Result<JsonMap, serde_json::Error> {
        let mut map = self.extra.clone();
        put_opt(&mut map, "messaging_product", self.messaging_product.as_ref())?;
        put_opt(&mut map, "recipient_type", self.recipient_type.as_ref())?;
        map.insert("to".to_owned(), Value::String(self.to.clone()));
        put_opt(&mut map, "context", self.context.as_ref())?;
        put_opt(&mut map, "biz_opaque_callback_data", self.biz_opaque_callback_data.as_ref())?;
        put_tagged(&mut map, &self.content)?;
        if self.wire.type_omitted && matches!(self.content, Content::Text(_)) {
            map.remove("type");
        }
        Ok(map)
    }

    fn from_map(mut map: JsonMap) -> Result<Self, String> {
        let messaging_product = take_opt(&mut map, "messaging_product")?;
        let recipient_type = take_opt(&mut map, "recipient_type")?;
        let to = take_required(&mut map, "to")?;
        let context = take_opt(&mut map, "context")?;
        let biz_opaque_callback_data = take_opt(&mut map, "biz_opaque_callback_data")?;
        // `type` defaults to text (§1).
        let type_omitted = !map.contains_key("type");
        let content = if type_omitted {
            Content::Text(take_required(&mut map, "text")?)
        } else {
            take_tagged(&mut map)?
        };
        Ok(Self {
            messaging_product,
            recipient_type,
            to,
            context,
            biz_opaque_callback_data,
            content,
            extra: map,
            wire: WireNotes { type_omitted, nulls: Vec::new() },
        })
    }
}

impl Serialize for OutboundMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut value = Value::Object(self.to_map().map_err(S::Error::custom)?);
        restore_nulls(&mut value, &self.wire.nulls);
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OutboundMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut value = Value::deserialize(d)?;
        let nulls = strip_nulls(&mut value);
        let Value::Object(map) = value else {
            return Err(D::Error::custom("a message must be a JSON object"));
        };
        let mut message = Self::from_map(map).map_err(D::Error::custom)?;
        message.wire.nulls = nulls;
        Ok(message)
    }
}

/// Anything posted to `/{phone-number-id}/messages`: a message, or a read receipt (which has a
/// `status` and neither `type` nor `to`).
#[derive(Debug, Clone, PartialEq)]
pub enum MessagesRequest {
    /// A message to send.
    Send(Box<OutboundMessage>),
    /// Marks a received message as read.
    MarkRead(MarkRead),
}

impl MessagesRequest {
    /// Checks the request against Meta's documented limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Send(message) => message.validate(),
            Self::MarkRead(receipt) => receipt.validate(),
        }
    }
}

impl Serialize for MessagesRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Send(message) => message.serialize(s),
            Self::MarkRead(receipt) => receipt.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MessagesRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(d)?;
        let is_receipt =
            value.get("status").is_some() && value.get("type").is_none() && value.get("to").is_none();
        if is_receipt {
            serde_json::from_value(value).map(Self::MarkRead).map_err(D::Error::custom)
        } else {
            serde_json::from_value(value).map(|m| Self::Send(Box::new(m))).map_err(D::Error::custom)
        }
    }
}
