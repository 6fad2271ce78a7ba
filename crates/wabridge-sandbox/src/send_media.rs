//! The media a send refers to by id (`cloud-api.md` §1, §2, §4): a media message's own object, an
//! interactive message's media header, a template's media parameters.
//!
//! When the media will not do, the sandbox answers as clients see Meta answer [L]:
//! - an id that names no media (never uploaded, deleted, expired) is refused at once, code 100 with
//!   "Param image['id'] is not a valid whatsapp business account media attachment ID";
//! - media that exists but cannot be sent as the message's type (a PNG sent as audio or as a sticker, a
//!   sticker that is not a WebP or is over its size limit) is accepted with a wamid and then fails in a
//!   `failed` status with 131053 (media upload error, e.g. "Sticker file could not be processed"): Meta
//!   processes media after answering, and §2 lists 131053 among the codes that arrive asynchronously.
//!
//! Media given by `link` is not fetched: a link is accepted as it is.

use wabridge_types::limits::MediaKind;
use wabridge_types::send::{ComponentKind, Content, HeaderContent, Media, ParameterValue};

use crate::error::ApiError;
use crate::media::{MediaObject, sticker_max_bytes};
use crate::state::Shared;

/// Checks every media id of a send. `Err` (code 100) for an id that names no media; `Ok(Some(details))`
/// when the send is to fail with 131053, and why.
pub(crate) fn check(shared: &Shared, content: &Content, now: u64) -> Result<Option<String>, ApiError> {
    let mut misfit: Option<String> = None;
    for (path, media, kind) in references(content) {
        let Some(id) = media.id.as_ref().map(|id| id.as_str().trim()).filter(|id| !id.is_empty()) else {
            continue;
        };
        let Some(object) = shared.media.get(id, now) else {
            return Err(ApiError::new(
                100,
                format!("Param {path}['id'] is not a valid whatsapp business account media attachment ID"),
            ));
        };
        if misfit.is_none() {
            misfit = fit(&object, kind);
        }
    }
    Ok(misfit)
}

/// Why `object` cannot be sent as `kind`, if it cannot.
fn fit(object: &MediaObject, kind: MediaKind) -> Option<String> {
    let name = kind_name(kind);
    if MediaKind::from_mime(&object.mime_type) != Some(kind) {
        return Some(format!(
            "Media upload error: the media is {}, which cannot be sent as {name} (accepted: {})",
            object.mime_type,
            kind.mime_types().join(", ")
        ));
    }
    if kind != MediaKind::Sticker {
        return None;
    }
    let Some(animated) = object.animated_webp else {
        return Some("Sticker file could not be processed: it is not a WebP file.".to_owned());
    };
    let (size, limit) = (object.bytes.len() as u64, sticker_max_bytes(animated));
    (size > limit).then(|| {
        let what = if animated { "an animated" } else { "a static" };
        format!("Sticker file could not be processed: {size} bytes; at most {limit} for {what} sticker.")
    })
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Image => "image",
        MediaKind::Sticker => "sticker",
        MediaKind::Video => "video",
    }
}

/// The media objects of a send with their path (Meta's bracket notation) and the kind they must be.
fn references(content: &Content) -> Vec<(String, &Media, MediaKind)> {
    let mut found = Vec::new();
    match content {
        Content::Image(m)
        | Content::Audio(m)
        | Content::Video(m)
        | Content::Document(m)
        | Content::Sticker(m) => {
            if let Some(kind) = content.media_kind() {
                found.push((kind_name(kind).to_owned(), m, kind));
            }
        }
        Content::Interactive(interactive) => {
            if let Some(header) = &interactive.header {
                let media = match &header.content {
                    HeaderContent::Image(m) => Some((m, MediaKind::Image)),
                    HeaderContent::Video(m) => Some((m, MediaKind::Video)),
                    HeaderContent::Document(m) => Some((m, MediaKind::Document)),
                    HeaderContent::Text(_) | HeaderContent::Unknown { .. } => None,
                };
                if let Some((m, kind)) = media {
                    found.push((format!("interactive['header']['{}']", kind_name(kind)), m, kind));
                }
            }
        }
        Content::Template(template) => {
            for (i, component) in template.components.iter().flatten().enumerate() {
                if matches!(component.kind, ComponentKind::Other(_)) {
                    continue;
                }
                for (j, parameter) in component.parameters.iter().flatten().enumerate() {
                    let media = match &parameter.value {
                        ParameterValue::Image(m) => Some((m, MediaKind::Image)),
                        ParameterValue::Video(m) => Some((m, MediaKind::Video)),
                        ParameterValue::Document(m) => Some((m, MediaKind::Document)),
                        _ => None,
                    };
                    if let Some((m, kind)) = media {
                        let path =
                            format!("template['components'][{i}]['parameters'][{j}]['{}']", kind_name(kind));
                        found.push((path, m, kind));
                    }
                }
            }
        }
        Content::Text(_)
        | Content::Location(_)
        | Content::Contacts(_)
        | Content::Reaction(_)
        | Content::Unknown { .. } => {}
    }
    found
}
