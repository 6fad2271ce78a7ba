//! The simple payloads of a send: text, media objects, location and reaction, with their checks.

use serde::{Deserialize, Serialize};

use super::wire::JsonMap;
use crate::ids::{MediaId, Wamid};
use crate::limits::{CAPTION_MAX, MediaKind, TEXT_BODY_MAX, WAMID_MAX};
use crate::validate::{ValidationError, max_chars, required_chars};

/// `text` of a text message (§1): the body and whether WhatsApp should render a link preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    /// At most 4,096 characters.
    pub body: String,
    /// Render a preview of the first `http(s)://` URL in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Text {
    /// A text payload without preview setting.
    #[must_use]
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), preview_url: None, extra: JsonMap::new() }
    }

    pub(crate) fn check(&self) -> Result<(), ValidationError> {
        required_chars(|| "text.body".to_owned(), &self.body, TEXT_BODY_MAX)
    }
}

/// Where a media object comes from: an uploaded media id (what Meta recommends) or a public link that
/// Meta downloads at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A media id from `POST /{phone-number-id}/media`.
    Id(MediaId),
    /// An `http(s)://` URL.
    Link(String),
}

impl MediaSource {
    /// Media uploaded beforehand, referred to by its id.
    #[must_use]
    pub fn id(id: impl Into<MediaId>) -> Self {
        Self::Id(id.into())
    }

    /// Media Meta fetches from a public `http(s)://` URL.
    #[must_use]
    pub fn link(url: impl Into<String>) -> Self {
        Self::Link(url.into())
    }
}

/// A media object (`image`, `audio`, `video`, `document`, `sticker`, and media headers and template
/// parameters): exactly one of `id` and `link`, plus a caption or file name where the kind allows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The uploaded media's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<MediaId>,
    /// A public `http(s)://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Image, video and document only; at most 1,024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document only: the file name the recipient sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Members this crate does not know (for example a link's `provider`), kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Media {
    /// Media by uploaded id.
    #[must_use]
    pub fn id(id: impl Into<MediaId>) -> Self {
        MediaSource::id(id).into()
    }

    /// Media by public link.
    #[must_use]
    pub fn link(url: impl Into<String>) -> Self {
        MediaSource::link(url).into()
    }

    /// Adds a caption (image, video and document only).
    #[must_use]
    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// Adds the file name shown for a document.
    #[must_use]
    pub fn with_filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }

    /// Checks a message's own media object (`path` is `image`, `document`, …): the source, and that
    /// caption and file name appear only where `kind` allows them.
    pub(crate) fn check_message(&self, path: &str, kind: MediaKind) -> Result<(), ValidationError> {
        self.check_source(path)?;
        if let Some(caption) = &self.caption {
            if !matches!(kind, MediaKind::Image | MediaKind::Video | MediaKind::Document) {
                return Err(ValidationError::Invalid {
                    field: format!("{path}.caption"),
                    reason: "only image, video and document messages take a caption".to_owned(),
                });
            }
            max_chars(|| format!("{path}.caption"), caption, CAPTION_MAX)?;
        }
        if self.filename.is_some() && kind != MediaKind::Document {
            return Err(ValidationError::Invalid {
                field: format!("{path}.filename"),
                reason: "only document messages take a filename".to_owned(),
            });
        }
        Ok(())
    }

    /// Checks that exactly one of `id` and `link` is set and that a link is `http(s)://`. A missing
    /// source is reported at `<path>.id`.
    pub(crate) fn check_source(&self, path: &str) -> Result<(), ValidationError> {
        let id = self.id.as_ref().filter(|id| !id.as_str().trim().is_empty());
        let link = self.link.as_deref().filter(|l| !l.trim().is_empty());
        match (id, link) {
            (Some(_), Some(_)) => {
                Err(ValidationError::Conflict { field: path.to_owned(), first: "id", second: "link" })
            }
            (None, None) => Err(ValidationError::Missing { field: format!("{path}.id") }),
            (Some(_), None) => Ok(()),
            (None, Some(link)) => check_url(|| format!("{path}.link"), link, false),
        }
    }
}

impl From<MediaSource> for Media {
    fn from(source: MediaSource) -> Self {
        match source {
            MediaSource::Id(id) => Self { id: Some(id), ..Self::default() },
            MediaSource::Link(link) => Self { link: Some(link), ..Self::default() },
        }
    }
}

/// Fails unless `url` is an absolute `https://` URL (or `http://` when `https_only` is false) with a
/// host.
pub(crate) fn check_url(
    field: impl FnOnce() -> String,
    url: &str,
    https_only: bool,
) -> Result<(), ValidationError> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| if https_only { None } else { lower.strip_prefix("http://") });
    let has_host = rest.is_some_and(|r| r.chars().next().is_some_and(|c| !matches!(c, '/' | '?' | '#')));
    if has_host && !url.trim().contains(char::is_whitespace) {
        return Ok(());
    }
    let expected = if https_only { "an https:// URL" } else { "an http:// or https:// URL" };
    Err(ValidationError::Invalid { field: field(), reason: format!("must be {expected} with a host") })
}

/// A latitude or longitude as it was sent: Meta accepts a JSON number or a numeric string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Coordinate {
    /// A JSON number.
    Number(serde_json::Number),
    /// A string such as `"37.48"`.
    Text(String),
}

impl Coordinate {
    /// The value in degrees, when it is a number or a string holding one.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            Self::Text(s) => s.trim().parse().ok(),
        }
    }
}

impl From<f64> for Coordinate {
    /// A finite value becomes a number; NaN and infinities (which JSON cannot hold) become text.
    fn from(degrees: f64) -> Self {
        serde_json::Number::from_f64(degrees).map_or_else(|| Self::Text(degrees.to_string()), Self::Number)
    }
}

/// `location` of a location message (§1). The address is shown only together with a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Degrees north.
    pub latitude: Coordinate,
    /// Degrees east.
    pub longitude: Coordinate,
    /// The place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The place's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Location {
    /// A pin at the given coordinates, in degrees.
    #[must_use]
    pub fn new(latitude: f64, longitude: f64) -> Self {
        Self {
            latitude: latitude.into(),
            longitude: longitude.into(),
            name: None,
            address: None,
            extra: JsonMap::new(),
        }
    }

    /// Names the place.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds the place's address (shown only with a name).
    #[must_use]
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }
}

/// `reaction` (§1): an emoji on an earlier message; an empty emoji removes the reaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    pub message_id: Wamid,
    /// One emoji, or `""` to remove the reaction.
    pub emoji: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Reaction {
    /// Reacts to `message_id` with `emoji` (`""` removes an earlier reaction).
    #[must_use]
    pub fn new(message_id: impl Into<Wamid>, emoji: impl Into<String>) -> Self {
        Self { message_id: message_id.into(), emoji: emoji.into(), extra: JsonMap::new() }
    }

    /// Whether this reaction removes an earlier one.
    #[must_use]
    pub fn is_removal(&self) -> bool {
        self.emoji.is_empty()
    }

    pub(crate) fn check(&self) -> Result<(), ValidationError> {
        check_wamid(|| "reaction.message_id".to_owned(), &self.message_id)
    }
}

/// Fails when a wamid is empty or longer than Meta's 128 characters.
pub(crate) fn check_wamid(field: impl Fn() -> String, id: &Wamid) -> Result<(), ValidationError> {
    required_chars(field, id.as_str(), WAMID_MAX)
}
