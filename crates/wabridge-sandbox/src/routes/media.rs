//! Media: multipart upload with Meta's type and size limits, media info with a download URL that
//! needs the bearer token and expires, download, delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Map;
use wabridge_types::limits::MediaKind;
use wabridge_types::response::{FileSize, MediaInfo, MediaUploadResponse};

use crate::error::ApiError;
use crate::limits::nanos;
use crate::media::{MediaObject, sticker_max_bytes};
use crate::numbers::Number;
use crate::state::Shared;

/// `POST /{phone-number-id}/media`.
pub(super) async fn upload(
    shared: &Shared,
    _number: &Number,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let mut product: Option<String> = None;
    let mut declared: Option<String> = None;
    let mut file: Option<(Bytes, Option<String>)> = None;
    while let Some(field) =
        form.next_field().await.map_err(|e| ApiError::new(100, format!("Invalid multipart body: {e}")))?
    {
        match field.name().unwrap_or_default() {
            "messaging_product" => product = Some(field.text().await.unwrap_or_default()),
            "type" => declared = Some(field.text().await.unwrap_or_default()),
            "file" => {
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| {
                    ApiError::new(131_053, format!("Media upload error: could not read the file ({e})"))
                })?;
                file = Some((bytes, content_type));
            }
            _ => {}
        }
    }
    match product.as_deref() {
        None => return Err(ApiError::new(131_008, "The parameter messaging_product is required.")),
        Some(p) if p.trim() != wabridge_types::MESSAGING_PRODUCT => {
            return Err(ApiError::new(100, "Param messaging_product must be 'whatsapp'"));
        }
        Some(_) => {}
    }
    let Some((bytes, part_type)) = file else {
        return Err(ApiError::new(131_008, "The parameter file is required."));
    };
    let Some(mime) = declared.or(part_type).map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()) else {
        return Err(ApiError::new(131_008, "The parameter type is required."));
    };
    // Unsupported types and sizes are answered with 131053 naming the limit [R: Meta's exact code for an
    // upload refused on type or size is not documented].
    let Some(kind) = MediaKind::from_mime(&mime) else {
        let accepted: Vec<&str> =
            MediaKind::ALL.iter().flat_map(|k| k.mime_types().iter().copied()).collect();
        return Err(ApiError::new(
            131_053,
            format!(
                "Param file must be a file with one of the following types: {}. Found {mime}",
                accepted.join(", ")
            ),
        ));
    };
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(ApiError::new(131_053, "The file is empty"));
    }
    let expires = shared.clock.now_ns().saturating_add(nanos(shared.config.media.retention));
    let object = MediaObject::new(bytes, mime, expires);
    // Stickers: 100 KB static, 500 KB animated (§1, §4), told apart by the WebP header. Checked here, at
    // upload, with the other limits: `image/webp` is accepted only as sticker media, so a WebP upload is a
    // sticker upload and its limit is known now [R: Meta documents the limits, not when it applies them].
    // A file that is not a WebP at all is held to the static limit here and fails when sent as a sticker.
    let limit = match kind {
        MediaKind::Sticker => sticker_max_bytes(object.animated_webp == Some(true)),
        _ => kind.max_bytes(),
    };
    if size > limit {
        let what = match (kind, object.animated_webp) {
            (MediaKind::Sticker, Some(true)) => "an animated sticker",
            (MediaKind::Sticker, _) => "a static sticker",
            _ => object.mime_type.as_str(),
        };
        return Err(ApiError::new(
            131_053,
            format!("File is {size} bytes; at most {limit} bytes allowed for {what}"),
        ));
    }
    let id = shared.ids.numeric();
    shared.media.insert(id.clone(), object);
    Ok(Json(MediaUploadResponse { id: id.into() }).into_response())
}

/// `GET /{media-id}`: `None` when no such media exists.
pub(super) fn info(shared: &Shared, id: &str) -> Option<Response> {
    let now = shared.clock.now_ns();
    let object = shared.media.get(id, now)?;
    let key = shared.ids.token();
    shared.media.issue_download(key.clone(), id, now.saturating_add(nanos(shared.config.media.url_ttl)), now);
    let url = format!("{}{}?mid={id}&key={key}", shared.base_url, super::DOWNLOAD_PATH);
    let info = MediaInfo {
        messaging_product: wabridge_types::MESSAGING_PRODUCT.to_owned(),
        url,
        mime_type: object.mime_type.clone(),
        sha256: object.sha256_hex.clone(),
        file_size: FileSize { bytes: object.bytes.len() as u64, as_string: true },
        id: id.to_owned().into(),
        extra: Map::new(),
    };
    Some(Json(info).into_response())
}

/// The download URL: the bytes while the key is valid (the bearer token was checked by the gate),
/// else 404.
pub(super) async fn download(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let now = shared.clock.now_ns();
    let found = params.get("key").and_then(|key| shared.media.download(key, now));
    match found {
        Some(object) => {
            ([(header::CONTENT_TYPE, object.mime_type.clone())], object.bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
