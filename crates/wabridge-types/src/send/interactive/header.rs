//! The header, body and footer of an interactive message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::send::media::Media;
use crate::send::wire::{JsonMap, MapWire, Tagged, map_serde, payload, put_tagged, take_tagged, to_payload};

/// `{"text": …}`, the shape of an interactive body and footer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextObject {
    /// The text.
    pub text: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl TextObject {
    /// A body or footer with this text.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), extra: JsonMap::new() }
    }
}

/// An interactive header: `{"type":"text","text":…}` or `{"type":"image","image":{…}}` and so on.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The header's type and content.
    pub content: HeaderContent,
    /// Members this crate does not know, kept as sent.
    pub extra: JsonMap,
}

/// What an interactive header shows.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderContent {
    /// Text, at most 60 characters.
    Text(String),
    /// An image.
    Image(Media),
    /// A video.
    Video(Media),
    /// A document.
    Document(Media),
    /// A header type this crate does not know, with the member named after it if there was one.
    Unknown {
        /// The `type` value as sent.
        kind: String,
        /// The member named after `kind`.
        value: Option<Value>,
    },
}

impl Tagged for HeaderContent {
    fn kind(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Unknown { kind, .. } => kind,
        }
    }

    fn payload(&self) -> Result<Option<Value>, serde_json::Error> {
        match self {
            Self::Text(t) => to_payload(t),
            Self::Image(m) | Self::Video(m) | Self::Document(m) => to_payload(m),
            Self::Unknown { value, .. } => Ok(value.clone()),
        }
    }

    fn from_parts(kind: String, value: Option<Value>) -> Result<Self, String> {
        Ok(match kind.as_str() {
            "text" => Self::Text(payload(&kind, value)?),
            "image" => Self::Image(payload(&kind, value)?),
            "video" => Self::Video(payload(&kind, value)?),
            "document" => Self::Document(payload(&kind, value)?),
            _ => Self::Unknown { kind, value },
        })
    }
}

impl MapWire for Header {
    fn to_map(&self) -> Result<JsonMap, serde_json::Error> {
        let mut map = self.extra.clone();
        put_tagged(&mut map, &self.content)?;
        Ok(map)
    }

    fn from_map(mut map: JsonMap) -> Result<Self, String> {
        let content = take_tagged(&mut map)?;
        Ok(Self { content, extra: map })
    }
}
map_serde!(Header);

impl Header {
    /// A text header.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self { content: HeaderContent::Text(text.into()), extra: JsonMap::new() }
    }

    /// An image header.
    #[must_use]
    pub fn image(media: impl Into<Media>) -> Self {
        Self { content: HeaderContent::Image(media.into()), extra: JsonMap::new() }
    }

    /// A video header.
    #[must_use]
    pub fn video(media: impl Into<Media>) -> Self {
        Self { content: HeaderContent::Video(media.into()), extra: JsonMap::new() }
    }

    /// A document header.
    #[must_use]
    pub fn document(media: impl Into<Media>) -> Self {
        Self { content: HeaderContent::Document(media.into()), extra: JsonMap::new() }
    }
}
