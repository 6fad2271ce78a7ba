//! Marking a received message as read, optionally showing a typing indicator (§1, same endpoint as
//! sends).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::media::check_wamid;
use super::wire::{JsonMap, restore_nulls, strip_nulls};
use crate::ids::Wamid;
use crate::validate::ValidationError;

/// `{"messaging_product":"whatsapp","status":"read","message_id":"wamid…"}`, with an optional
/// `typing_indicator` that shows "typing…" to the user until the reply is sent (or 25 s pass).
#[derive(Debug, Clone, PartialEq)]
pub struct MarkRead {
    /// `whatsapp`; absent only in bodies written for the On-Premises API.
    pub messaging_product: Option<String>,
    /// Always `read`.
    pub status: String,
    /// The received message to mark as read.
    pub message_id: Wamid,
    /// Shows a typing indicator as well.
    pub typing_indicator: Option<TypingIndicator>,
    /// Members this crate does not know, kept as sent.
    pub extra: JsonMap,
    /// Members that were explicitly `null`, restored on serialization.
    nulls: Vec<String>,
}

/// `typing_indicator` of a read receipt: `{"type":"text"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypingIndicator {
    /// `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl MarkRead {
    /// Marks `message_id` as read.
    #[must_use]
    pub fn new(message_id: impl Into<Wamid>) -> Self {
        Self {
            messaging_product: Some(crate::MESSAGING_PRODUCT.to_owned()),
            status: "read".to_owned(),
            message_id: message_id.into(),
            typing_indicator: None,
            extra: JsonMap::new(),
            nulls: Vec::new(),
        }
    }

    /// Also shows a typing indicator to the user.
    #[must_use]
    pub fn with_typing_indicator(mut self) -> Self {
        self.typing_indicator = Some(TypingIndicator { kind: "text".to_owned(), extra: JsonMap::new() });
        self
    }

    /// Checks the request before it is sent: `status` must be `read`, the message id a wamid.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(product) = &self.messaging_product
            && product != crate::MESSAGING_PRODUCT
        {
            return Err(ValidationError::Invalid {
                field: "messaging_product".to_owned(),
                reason: format!("must be \"{}\"", crate::MESSAGING_PRODUCT),
            });
        }
        if self.status != "read" {
            return Err(ValidationError::Invalid {
                field: "status".to_owned(),
                reason: "must be \"read\"".to_owned(),
            });
        }
        check_wamid(|| "message_id".to_owned(), &self.message_id)
    }
}

/// The wire form, derived; [`MarkRead`] adds the explicit-`null` bookkeeping around it.
#[derive(Serialize, Deserialize)]
struct MarkReadWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    messaging_product: Option<String>,
    status: String,
    message_id: Wamid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typing_indicator: Option<TypingIndicator>,
    #[serde(flatten)]
    extra: JsonMap,
}

impl Serialize for MarkRead {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let wire = MarkReadWire {
            messaging_product: self.messaging_product.clone(),
            status: self.status.clone(),
            message_id: self.message_id.clone(),
            typing_indicator: self.typing_indicator.clone(),
            extra: self.extra.clone(),
        };
        let mut value = serde_json::to_value(wire).map_err(S::Error::custom)?;
        restore_nulls(&mut value, &self.nulls);
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MarkRead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut value = Value::deserialize(d)?;
        let nulls = strip_nulls(&mut value);
        let wire: MarkReadWire = serde_json::from_value(value).map_err(D::Error::custom)?;
        Ok(Self {
            messaging_product: wire.messaging_product,
            status: wire.status,
            message_id: wire.message_id,
            typing_indicator: wire.typing_indicator,
            extra: wire.extra,
            nulls,
        })
    }
}
