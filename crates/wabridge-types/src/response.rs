//! Responses of the Cloud API's calls, and the small request bodies that go with them (registration,
//! business profile). Unknown fields are kept in `extra`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ids::{MediaId, PhoneNumberId, WaId, Wamid};
use crate::limits::{
    PROFILE_ABOUT_MAX, PROFILE_ADDRESS_MAX, PROFILE_DESCRIPTION_MAX, PROFILE_EMAIL_MAX, PROFILE_WEBSITE_MAX,
    PROFILE_WEBSITES_MAX, ThroughputLevel,
};
use crate::validate::{ValidationError, count_between, max_chars};

/// The answer to `POST /{phone-number-id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResponse {
    #[serde(default = "whatsapp")]
    pub messaging_product: String,
    #[serde(default)]
    pub contacts: Vec<SendContact>,
    #[serde(default)]
    pub messages: Vec<SentMessage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn whatsapp() -> String {
    crate::MESSAGING_PRODUCT.to_owned()
}

impl SendResponse {
    /// The wamid of the (first) accepted message.
    #[must_use]
    pub fn message_id(&self) -> Option<&Wamid> {
        self.messages.first().map(|m| &m.id)
    }
}

/// `contacts[]` of a send response: what was sent as `to`, and the user's WhatsApp id.
///
/// Every field is optional when read: an accepted send must never read as an error because of the
/// `contacts` entry (only `messages[].id` is required), or a message Meta took would be held as of unknown
/// outcome and possibly sent twice. A send to a business-scoped user id (`US.…`) may name the user by
/// `user_id` rather than `wa_id` (webhook contacts already come without `wa_id` in that case) [R].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// The user's business-scoped id, when Meta gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `messages[]` of a send response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub id: Wamid,
    /// Only for template sends: `accepted`, `held_for_quality_assessment` or `paused` [R].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"success": true}`. Some of Meta's older samples send the string `"true"`; both parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    #[serde(deserialize_with = "bool_or_string")]
    pub success: bool,
}

impl Success {
    /// `{"success": true}`.
    pub const TRUE: Success = Success { success: true };
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(serde::de::Error::custom(format!("expected a boolean, found {other}"))),
    }
}

/// The answer to a media upload: `{"id": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaUploadResponse {
    pub id: MediaId,
}

/// `GET /{media-id}`: where to download a media object for the next five minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    #[serde(default = "whatsapp")]
    pub messaging_product: String,
    pub url: String,
    pub mime_type: String,
    /// Hex in media-info responses; inbound webhooks carry base64 — compare with care.
    pub sha256: String,
    /// A string in Meta's sample, a number in some libraries: both parse; written back as it came.
    pub file_size: FileSize,
    pub id: MediaId,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A byte count Meta sends either as a JSON string or as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSize {
    pub bytes: u64,
    /// Whether it travelled as a string (Meta's sample does).
    pub as_string: bool,
}

impl Serialize for FileSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.as_string { s.serialize_str(&self.bytes.to_string()) } else { s.serialize_u64(self.bytes) }
    }
}

impl<'de> Deserialize<'de> for FileSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .map(|bytes| FileSize { bytes, as_string: false })
                .ok_or_else(|| serde::de::Error::custom("file_size is not a whole number")),
            Value::String(s) => s
                .parse()
                .map(|bytes| FileSize { bytes, as_string: true })
                .map_err(|_| serde::de::Error::custom("file_size is not a whole number")),
            other => Err(serde::de::Error::custom(format!("expected a file size, found {other}"))),
        }
    }
}

/// A page of a Graph list: `{"data": [...], "paging": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<T> Page<T> {
    /// The cursor of the next page, when there is one (Meta sends `next` only when more data exists).
    #[must_use]
    pub fn next_cursor(&self) -> Option<&str> {
        let paging = self.paging.as_ref()?;
        paging.next.as_ref()?;
        paging.cursors.as_ref()?.after.as_deref()
    }
}

/// `paging` of a Graph list.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursors: Option<Cursors>,
    /// A full URL to the next page; present only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// `paging.cursors`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cursors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A business phone number as listed by `GET /{waba-id}/phone_numbers` or read by `GET /{phone-id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub id: PhoneNumberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` or `NA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_rating: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verification_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `throughput` of a phone number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub level: ThroughputLevel,
}

/// `GET /{phone-id}?fields=throughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputResponse {
    pub throughput: Throughput,
    pub id: PhoneNumberId,
}

/// `POST /{phone-id}/register`. Its `Debug` output leaves the PIN out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub messaging_product: String,
    /// The six-digit two-step verification PIN.
    pub pin: String,
    /// Present when migrating from the On-Premises API (`{data, password}`: redacted in `Debug` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Value>,
}

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("messaging_product", &self.messaging_product)
            .field("pin", &"[redacted]")
            .field("backup", &self.backup.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl RegisterRequest {
    /// A registration with the given PIN.
    #[must_use]
    pub fn new(pin: impl Into<String>) -> Self {
        Self { messaging_product: whatsapp(), pin: pin.into(), backup: None }
    }

    /// Meta requires a six-digit PIN.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.pin.len() != 6 || !self.pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::Invalid {
                field: "pin".into(),
                reason: "expected six digits".into(),
            });
        }
        Ok(())
    }
}

/// A business profile, as read by `GET /{phone-id}/whatsapp_business_profile` and, with
/// `profile_picture_handle` instead of the URL, written by `POST`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BusinessProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_url: Option<String>,
    /// Only when updating: a handle from a resumable upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websites: Option<Vec<String>>,
    /// For example `RETAIL`, `EDU`, `OTHER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BusinessProfile {
    /// Checks the documented limits (§6): about 1–139, address ≤ 256, description ≤ 512, email ≤ 128,
    /// at most 2 websites of ≤ 256 characters.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(about) = &self.about {
            if about.trim().is_empty() {
                return Err(ValidationError::TooFew { field: "about".into(), found: 0, limit: 1 });
            }
            max_chars(|| "about".into(), about, PROFILE_ABOUT_MAX)?;
        }
        if let Some(v) = &self.address {
            max_chars(|| "address".into(), v, PROFILE_ADDRESS_MAX)?;
        }
        if let Some(v) = &self.description {
            max_chars(|| "description".into(), v, PROFILE_DESCRIPTION_MAX)?;
        }
        if let Some(v) = &self.email {
            max_chars(|| "email".into(), v, PROFILE_EMAIL_MAX)?;
            if !v.is_empty() && !v.contains('@') {
                return Err(ValidationError::Invalid {
                    field: "email".into(),
                    reason: "expected an e-mail address".into(),
                });
            }
        }
        if let Some(sites) = &self.websites {
            count_between(|| "websites".into(), sites.len(), 0, PROFILE_WEBSITES_MAX)?;
            for (i, site) in sites.iter().enumerate() {
                max_chars(|| format!("websites[{i}]"), site, PROFILE_WEBSITE_MAX)?;
            }
        }
        Ok(())
    }
}

/// `GET /{waba-id}/subscribed_apps`: `{"data":[{"whatsapp_business_api_data":{…}}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribedApp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_business_api_data: Option<SubscribedAppData>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The app of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribedAppData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /{waba-id}/subscribed_apps` with an optional callback override. Its `Debug` output leaves the
/// verify token out.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubscribeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_callback_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

impl fmt::Debug for SubscribeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeRequest")
            .field("override_callback_uri", &self.override_callback_uri)
            .field("verify_token", &self.verify_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}
