//! An inbound message (`messages[]`): the fields every message has, and its content.

use serde::de::Deserializer;
use serde::ser::{Error as _, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::{CONTENT_KEYS, MessageContent};
use super::value::WebhookError;
use super::wire::{Scalar, split_nulls, take_type};
use crate::ids::{WaId, Wamid};

/// An inbound message from a WhatsApp user.
///
/// The content is chosen by `type`; when a message comes without `type` (as in Meta's own example of a
/// shared contact), the type is inferred from the content key present and `type_omitted` remembers that, so
/// serializing again does not add a `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct InboundMessage {
    /// The sender's WhatsApp id.
    pub from: WaId,
    /// The sender's business-scoped user id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// The sender's parent business-scoped user id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_parent_user_id: Option<String>,
    /// The message's wamid.
    pub id: Wamid,
    /// When the user sent it, in unix seconds (a string in Meta's payloads; kept as sent).
    pub timestamp: Scalar,
    /// The message this one replies to or was forwarded from, or the product asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    /// The ad or post the user came from (click-to-WhatsApp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// The sender's identity, when security notifications are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Why the message could not be passed on (with `unsupported`/`unknown` content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
    /// What the message carries.
    #[serde(skip, default = "placeholder_content")]
    pub content: MessageContent,
    /// `true` when the message had no `type` key and its type was inferred from the content.
    #[serde(skip)]
    pub type_omitted: bool,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn placeholder_content() -> MessageContent {
    MessageContent::RequestWelcome
}

/// `messages[].context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct MessageContext {
    /// Who sent the message replied to (the business number, or the user for orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The wamid of the message replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Wamid>,
    /// The message was forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// The message was forwarded many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    /// The product the user asks about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<ReferredProduct>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(MessageContext);

/// `context.referred_product`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ReferredProduct {
    /// The catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// The product's SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ReferredProduct);

/// `messages[].referral`: the ad or post that brought the user (click-to-WhatsApp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Referral {
    /// URL of the ad or post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Id of the ad or post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// The ad's headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// The ad's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `image` or `video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The ad's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// The ad's video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    /// The video's thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Click id of the click-to-WhatsApp ad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Referral);

/// `messages[].identity`: the sender's identity key, with `show_security_notifications` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Identity {
    /// Whether the business acknowledged the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<bool>,
    /// When the identity was created (milliseconds, a number in Meta's example; kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<Scalar>,
    /// Identity hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Identity);

/// Keys of the common part of a message: a message `type` with one of these names cannot have its payload
/// under that key.
const COMMON_KEYS: &[&str] = &[
    "from",
    "from_user_id",
    "from_parent_user_id",
    "id",
    "timestamp",
    "context",
    "referral",
    "identity",
    "errors",
];

impl InboundMessage {
    /// A message with the given content, in the older shape (set `from_user_id` for the current one).
    #[must_use]
    pub fn new(
        from: impl Into<WaId>,
        id: impl Into<Wamid>,
        timestamp: impl Into<Scalar>,
        content: MessageContent,
    ) -> Self {
        Self {
            from: from.into(),
            from_user_id: None,
            from_parent_user_id: None,
            id: id.into(),
            timestamp: timestamp.into(),
            context: None,
            referral: None,
            identity: None,
            errors: None,
            content,
            type_omitted: false,
            extra: Map::new(),
        }
    }

    /// Sets the sender's business-scoped user id (current shape, §8).
    #[must_use]
    pub fn with_from_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.from_user_id = Some(user_id.into());
        self
    }

    /// The message `type` (inferred when it was omitted).
    #[must_use]
    pub fn type_name(&self) -> &str {
        self.content.type_name()
    }

    /// The errors (empty when absent).
    #[must_use]
    pub fn errors(&self) -> &[WebhookError] {
        self.errors.as_deref().unwrap_or_default()
    }
}

impl Serialize for InboundMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let common = Self::serialize(self, serde_json::value::Serializer).map_err(S::Error::custom)?;
        let Value::Object(mut map) = common else {
            return Err(S::Error::custom("a message serializes to an object"));
        };
        let type_name = self.content.type_name();
        if !self.type_omitted && !type_name.is_empty() {
            map.insert("type".to_owned(), Value::String(type_name.to_owned()));
        }
        if let Some(payload) = self.content.payload::<S::Error>()? {
            map.insert(type_name.to_owned(), payload);
        }
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InboundMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut map, nulls) = split_nulls(deserializer)?;
        let (type_name, type_omitted) = match take_type(&mut map) {
            Some(type_name) => (type_name, false),
            None => {
                let inferred = CONTENT_KEYS.iter().find(|key| map.contains_key(**key));
                (inferred.map(|key| (*key).to_owned()).unwrap_or_default(), true)
            }
        };
        let payload = if type_name.is_empty()
            || COMMON_KEYS.contains(&type_name.as_str())
            || !MessageContent::takes_payload(&type_name)
        {
            None
        } else {
            map.remove(&type_name)
        };
        let content = MessageContent::from_parts(type_name, payload);
        let mut message =
            Self::deserialize(Value::Object(map)).map_err(<D::Error as serde::de::Error>::custom)?;
        message.content = content;
        message.type_omitted = type_omitted;
        message.extra.extend(nulls);
        Ok(message)
    }
}
