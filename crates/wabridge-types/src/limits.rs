//! Meta's documented limits as data, each with its source in `shared/reference/cloud-api.md`.
//!
//! Content limits are constants used by [`crate::send`] validation; throughput and pacing figures form
//! [`Limits`], whose defaults are Meta's and whose fields can be changed (tests shorten the windows, a
//! coexistence number is held at 20 msg/s, …).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `text.body` (§1).
pub const TEXT_BODY_MAX: usize = 4096;
/// `caption` of image, video and document messages (§1).
pub const CAPTION_MAX: usize = 1024;
/// Interactive `header.text` and `footer.text` (§1).
pub const INTERACTIVE_HEADER_TEXT_MAX: usize = 60;
/// Interactive `footer.text` (§1).
pub const INTERACTIVE_FOOTER_TEXT_MAX: usize = 60;
/// Interactive `body.text` (§1).
pub const INTERACTIVE_BODY_TEXT_MAX: usize = 1024;
/// Reply buttons per message (§1).
pub const REPLY_BUTTONS_MAX: usize = 3;
/// A reply button's `title` (§1).
pub const REPLY_BUTTON_TITLE_MAX: usize = 20;
/// A reply button's `id` (§1).
pub const REPLY_BUTTON_ID_MAX: usize = 256;
/// A list message's `action.button` label (§1).
pub const LIST_BUTTON_MAX: usize = 20;
/// Sections of a list message (§1): 1 to 10.
pub const LIST_SECTIONS_MAX: usize = 10;
/// Rows of a list message, all sections together (§1).
pub const LIST_ROWS_TOTAL_MAX: usize = 10;
/// A list section's `title` (§1).
pub const LIST_SECTION_TITLE_MAX: usize = 24;
/// A list row's `id` (§1).
pub const LIST_ROW_ID_MAX: usize = 200;
/// A list row's `title` (§1).
pub const LIST_ROW_TITLE_MAX: usize = 24;
/// A list row's `description` (§1).
pub const LIST_ROW_DESCRIPTION_MAX: usize = 72;
/// A CTA URL button's `display_text` (§1).
pub const CTA_DISPLAY_TEXT_MAX: usize = 20;
/// Sections of a multi-product message (§1).
pub const PRODUCT_SECTIONS_MAX: usize = 10;
/// Products of a multi-product message, all sections together (§1).
pub const PRODUCT_ITEMS_TOTAL_MAX: usize = 30;
/// A template header text parameter (§1, Postman limits).
pub const TEMPLATE_HEADER_PARAM_MAX: usize = 60;
/// A template body text parameter (§1; [R] one sample mentions 32,768 for a body-only template, we keep
/// 1,024 per parameter as the rule).
pub const TEMPLATE_BODY_PARAM_MAX: usize = 1024;
/// A template button's `index` (§1): 0 to 9.
pub const TEMPLATE_BUTTON_INDEX_MAX: u32 = 9;
/// `biz_opaque_callback_data`, in bytes (§1, [R]).
pub const CALLBACK_DATA_MAX_BYTES: usize = 512;
/// A wamid's length (§1).
pub const WAMID_MAX: usize = 128;
/// A webhook payload's size (§3, [L]).
pub const WEBHOOK_BODY_MAX_BYTES: usize = 3 * 1024 * 1024;

/// Business profile `about` (§6): 1 to 139 characters.
pub const PROFILE_ABOUT_MAX: usize = 139;
/// Business profile `address` (§6).
pub const PROFILE_ADDRESS_MAX: usize = 256;
/// Business profile `description` (§6).
pub const PROFILE_DESCRIPTION_MAX: usize = 512;
/// Business profile `email` (§6).
pub const PROFILE_EMAIL_MAX: usize = 128;
/// Business profile `websites` (§6): at most 2, each at most 256 characters.
pub const PROFILE_WEBSITES_MAX: usize = 2;
/// A business profile website (§6).
pub const PROFILE_WEBSITE_MAX: usize = 256;

const MB: u64 = 1024 * 1024;
const KB: u64 = 1024;

/// The largest media file of any kind Meta accepts: a 100 MB document (§4). A download larger than this is
/// not a WhatsApp media file, so a client can stop reading there.
pub const MEDIA_MAX_BYTES: u64 = 100 * MB;

/// The kinds of media Meta accepts, with their MIME types and size limits (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Document,
    Image,
    Sticker,
    Video,
}

impl MediaKind {
    /// Every kind, for iteration.
    pub const ALL: [MediaKind; 5] = [Self::Audio, Self::Document, Self::Image, Self::Sticker, Self::Video];

    /// MIME types accepted for this kind (§4).
    #[must_use]
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            Self::Audio => &["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"],
            Self::Document => &[
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ],
            Self::Image => &["image/jpeg", "image/png"],
            Self::Sticker => &["image/webp"],
            Self::Video => &["video/mp4", "video/3gpp"],
        }
    }

    /// The largest file Meta accepts for this kind, in bytes (§4). Stickers: the animated limit
    /// (500 KB); a static sticker is limited to 100 KB, which only the file's content tells apart.
    #[must_use]
    pub fn max_bytes(self) -> u64 {
        match self {
            Self::Audio | Self::Video => 16 * MB,
            Self::Document => 100 * MB,
            Self::Image => 5 * MB,
            Self::Sticker => 500 * KB,
        }
    }

    /// The kind a MIME type belongs to. `image/webp` is a sticker; parameters such as `; codecs=opus`
    /// are ignored.
    #[must_use]
    pub fn from_mime(mime: &str) -> Option<Self> {
        let base = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| k.mime_types().contains(&base.as_str()))
    }
}

/// A number's throughput level as Meta reports it in `?fields=throughput` (§6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThroughputLevel {
    /// 80 messages/s.
    Standard,
    /// 1,000 messages/s after the automatic upgrade.
    High,
    /// Meta reports no level (for example an unregistered number).
    NotApplicable,
    /// A level this crate does not know; kept as sent.
    #[serde(untagged)]
    Other(String),
}

/// Throughput and pacing limits. Defaults are Meta's documented figures (`cloud-api.md` §7 and the
/// overview at its top); the mapping from [`ThroughputLevel`] to messages per second is our reading [R].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Messages per second (inbound + outbound) for a `STANDARD` number: 80 [M].
    pub standard_mps: u32,
    /// Messages per second after the throughput upgrade (`HIGH`): 1,000 [M].
    pub high_mps: u32,
    /// Messages per second of a number shared with the WhatsApp Business app (coexistence): 20 [M].
    /// Nothing in the API reports this, so it is applied through a per-number override.
    pub coexistence_mps: u32,
    /// The pair rate limit: one message to the same user per this interval (6 s) [L].
    #[serde(with = "duration_ms")]
    pub pair_interval: Duration,
    /// How many messages to the same user may be sent in a burst before the pair limit applies (45) [L].
    pub pair_burst: u32,
    /// API calls per WABA per rolling hour: 11,880,000 → 80007 [M, older overview text].
    pub waba_calls_per_hour: u64,
    /// The customer-service window after a user's last inbound message: 24 hours [M].
    #[serde(with = "duration_ms")]
    pub service_window: Duration,
    /// Unique users contacted outside the window per rolling 24 h (messaging-limit tier); 250 for a new
    /// business [M]. `None` means unlimited.
    pub messaging_limit: Option<u32>,
    /// How long a throughput upgrade makes the number unusable (131057): up to a minute [M].
    #[serde(with = "duration_ms")]
    pub upgrade_pause: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            standard_mps: 80,
            high_mps: 1000,
            coexistence_mps: 20,
            pair_interval: Duration::from_secs(6),
            pair_burst: 45,
            waba_calls_per_hour: 11_880_000,
            service_window: Duration::from_secs(24 * 3600),
            messaging_limit: Some(250),
            upgrade_pause: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Messages per second for a reported level ([R]: STANDARD → 80, HIGH → 1,000; anything else →
    /// the standard level, the safe choice).
    #[must_use]
    pub fn mps_for(&self, level: &ThroughputLevel) -> u32 {
        match level {
            ThroughputLevel::High => self.high_mps,
            _ => self.standard_mps,
        }
    }
}

/// Serializes a [`Duration`] as whole milliseconds.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads milliseconds into a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_max_is_the_largest_kind() {
        let largest = MediaKind::ALL.iter().map(|k| k.max_bytes()).max();
        assert_eq!(largest, Some(MEDIA_MAX_BYTES));
    }

    #[test]
    fn media_kind_from_mime() {
        assert_eq!(MediaKind::from_mime("image/jpeg"), Some(MediaKind::Image));
        assert_eq!(MediaKind::from_mime("audio/ogg; codecs=opus"), Some(MediaKind::Audio));
        assert_eq!(MediaKind::from_mime("image/webp"), Some(MediaKind::Sticker));
        assert_eq!(MediaKind::from_mime("image/gif"), None);
        assert_eq!(MediaKind::Image.max_bytes(), 5 * 1024 * 1024);
    }

    #[test]
    fn levels_map_to_documented_rates() {
        let l = Limits::default();
        assert_eq!(l.mps_for(&ThroughputLevel::Standard), 80);
        assert_eq!(l.mps_for(&ThroughputLevel::High), 1000);
        assert_eq!(l.mps_for(&ThroughputLevel::Other("NEW".into())), 80);
        let parsed: ThroughputLevel = serde_json::from_str("\"NOT_APPLICABLE\"").unwrap();
        assert_eq!(parsed, ThroughputLevel::NotApplicable);
        let other: ThroughputLevel = serde_json::from_str("\"TURBO\"").unwrap();
        assert_eq!(other, ThroughputLevel::Other("TURBO".into()));
    }
}
