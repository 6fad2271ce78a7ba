//! The webhook envelope Meta posts to a business, and every kind of change it carries.
//!
//! Meta batches: one POST holds an [`Envelope`] with one or more [`Entry`]s (one per WABA), each with one or
//! more [`Change`]s, and a `messages` change can hold many inbound messages, statuses and errors at once
//! (`cloud-api.md` §3). [`Envelope::events`] splits all of that into single [`WebhookEvent`]s, each with a
//! dedupe key, which is what the gateway's event log stores.
//!
//! Both the older shape and the current one (`cloud-api.md` §8: `contacts` in status webhooks, business-scoped
//! user ids, usernames, per-message pricing) parse into the same types.
//!
//! Everything here is forward compatible: unknown keys land in `extra` maps, unknown enum values in `Other`
//! variants, unknown message types and change fields in `Unknown`/`Other` variants, and a key sent as an explicit
//! `null` is remembered. Parsing and serializing again gives JSON equal to what Meta sent.
//!
//! ```
//! use wabridge_types::webhook::{ChangeValue, Envelope, MessageContent};
//!
//! let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[
//!   {"field":"messages","value":{"messaging_product":"whatsapp",
//!     "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
//!     "contacts":[{"profile":{"name":"Ana"},"wa_id":"16505551234"}],
//!     "messages":[{"from":"16505551234","id":"wamid.A1","timestamp":"1749416383","type":"text",
//!                  "text":{"body":"hi"}}]}}]}]}"#;
//! let envelope = Envelope::from_slice(body).unwrap();
//! let ChangeValue::Messages(value) = &envelope.entry[0].changes[0].value else { panic!() };
//! assert!(matches!(&value.messages()[0].content, MessageContent::Text(t) if t.body == "hi"));
//!
//! let events = envelope.events();
//! assert_eq!(events[0].dedupe_key, "msg:wamid.A1");
//! assert_eq!(events[0].contact.as_deref(), Some("16505551234"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::WabaId;

/// Implements `Serialize`/`Deserialize` for a struct derived with `#[serde(remote = "Self")]` that has an
/// `extra` map, so that keys sent as an explicit `null` are kept: they are moved into `extra` before the
/// derived code runs (where an `Option` field would turn them into `None` and lose them), and serialized
/// back from there.
macro_rules! keep_nulls {
    ($ty:ident) => {
        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let (map, nulls) = $crate::webhook::wire::split_nulls(deserializer)?;
                let mut parsed = $ty::deserialize(::serde_json::Value::Object(map))
                    .map_err(<D::Error as ::serde::de::Error>::custom)?;
                parsed.extra.extend(nulls);
                Ok(parsed)
            }
        }
    };
}

/// Declares a string-valued wire enum: known values as variants, anything else kept in `Other`.
macro_rules! wire_enum {
    (
        $(#[$doc:meta])*
        $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this crate does not know yet, kept as sent.
            Other(String),
        }

        impl $name {
            /// The value as it travels on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(wire: &str) -> Self {
                match wire {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let wire = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from(wire.as_str()))
            }
        }
    };
}

mod change;
mod content;
mod event;
mod fields;
mod message;
mod status;
mod value;
mod wire;

pub use change::{Change, ChangeValue};
pub use content::{
    ButtonReply, Interactive, InteractiveReply, ListReply, Location, Media, MessageContent, NfmReply, Order,
    ProductItem, Reaction, SharedContact, SharedContactName, SharedContactPhone, System, SystemKind,
    TemplateButton, Text,
};
pub use event::{EventKind, WebhookEvent, status_dedupe_key, status_dedupe_range};
pub use fields::{
    AccountAlert, AccountReviewUpdate, AccountUpdate, AlertInfo, BusinessCapabilityUpdate,
    PhoneNumberNameUpdate, PhoneNumberQualityUpdate, QualityEvent, RestrictionInfo, SecurityUpdate,
    TemplateButtonInfo, TemplateCategoryUpdate, TemplateComponentsUpdate, TemplateQualityUpdate,
    TemplateStatusUpdate,
};
pub use message::{Identity, InboundMessage, MessageContext, Referral, ReferredProduct};
pub use status::{
    Conversation, ConversationOrigin, Pricing, PricingModel, Status, StatusKind, moves_forward,
};
pub use value::{Contact, ErrorData, MessagesValue, Metadata, Profile, UserPreference, WebhookError};
pub use wire::Scalar;

/// The `object` of every WhatsApp Business webhook.
pub const WHATSAPP_BUSINESS_ACCOUNT: &str = "whatsapp_business_account";

/// One webhook POST body: `{"object": "whatsapp_business_account", "entry": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Envelope {
    /// Always `"whatsapp_business_account"` for WhatsApp.
    pub object: String,
    /// One entry per WABA the changes belong to.
    pub entry: Vec<Entry>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Envelope);

/// The changes of one WhatsApp Business Account in an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Entry {
    /// The WABA id.
    pub id: WabaId,
    /// When Meta produced the entry (unix seconds), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Scalar>,
    /// What changed.
    pub changes: Vec<Change>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Entry);

impl Envelope {
    /// Parses a webhook body (the raw bytes whose signature was checked).
    ///
    /// # Errors
    /// When the body is not JSON or not an envelope. A change whose value does not fit its typed variant
    /// does not fail the parse: it is kept as [`ChangeValue::Other`].
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// An envelope with the given entries.
    #[must_use]
    pub fn new(entry: Vec<Entry>) -> Self {
        Self { object: WHATSAPP_BUSINESS_ACCOUNT.to_owned(), entry, extra: Map::new() }
    }

    /// An envelope with one entry holding one change: what a sender of webhooks (the sandbox, a test)
    /// usually needs.
    #[must_use]
    pub fn single(waba_id: impl Into<WabaId>, value: ChangeValue) -> Self {
        Self::new(vec![Entry::new(waba_id, vec![Change::new(value)])])
    }

    /// An envelope with one `messages` change: inbound messages, statuses or errors of one business number.
    #[must_use]
    pub fn messages(waba_id: impl Into<WabaId>, value: MessagesValue) -> Self {
        Self::single(waba_id, ChangeValue::Messages(value))
    }

    /// Serializes the envelope to the bytes to post (and sign), as Meta sends them: every non-ASCII
    /// character escaped (`\u00e1`; a surrogate pair above U+FFFF), so a receiver that checks the signature
    /// on anything but the exact bytes received fails here as it would against Meta.
    ///
    /// # Errors
    /// Only if a kept value cannot be serialized, which JSON-born values always can.
    pub fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiEscaped);
        serde::Serialize::serialize(self, &mut serializer)?;
        Ok(out)
    }
}

/// A compact JSON formatter that escapes every non-ASCII character as `\uXXXX` (UTF-16 units).
struct AsciiEscaped;

impl serde_json::ser::Formatter for AsciiEscaped {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0_u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

impl Entry {
    /// An entry for a WABA, without `time`.
    #[must_use]
    pub fn new(waba_id: impl Into<WabaId>, changes: Vec<Change>) -> Self {
        Self { id: waba_id.into(), time: None, changes, extra: Map::new() }
    }

    /// Sets `time` (unix seconds, sent as a number as Meta does).
    #[must_use]
    pub fn with_time(mut self, unix_seconds: i64) -> Self {
        self.time = Some(Scalar::Number(unix_seconds.into()));
        self
    }
}
