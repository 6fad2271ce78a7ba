//! `POST /v1/media` (raw bytes with their Content-Type → id), `GET /v1/media/{id}` (the file, from the
//! cache or the Cloud API), `DELETE /v1/media/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use wabridge_types::limits::MediaKind;

use super::{MediaError, Spool};
use crate::AppState;
use crate::api::settings::{NumberQuery, client_and_number, cloud_error};
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

/// A failure of a download or delete of media, for a `/v1` caller: Meta answering that it does not exist
/// (404 or code 100) is a 404 here.
pub(crate) fn media_error(e: &MediaError) -> ApiError {
    match e {
        MediaError::Cloud(c) if super::is_gone(c) => ApiError::not_found("no such media (or it expired)"),
        other => upload_error(other),
    }
}

/// A failure of an upload, for a `/v1` caller: Meta's code 100 is about the request (its type, its
/// parameters), answered with Meta's 4xx status, not as a missing resource.
pub(crate) fn upload_error(e: &MediaError) -> ApiError {
    match e {
        MediaError::NoClient => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: 1011,
            title: "Service not ready",
            details: "no Cloud API access token is configured (meta.access_token)".into(),
        },
        MediaError::Cloud(c) => cloud_error(c),
        MediaError::Checksum => ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: 1000,
            title: "Generic error",
            details: "the media downloaded from the Cloud API does not match its sha256".into(),
        },
        MediaError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            ApiError::not_found("no such media")
        }
        MediaError::Io(io) => ApiError::internal(io),
        MediaError::Store(e) => ApiError::internal(e),
    }
}

/// `POST /v1/media` → 201 `{"media":[{"id"}]}`. The body is spooled to disk as it arrives (see
/// [`super::spool`]) and streamed from there to the Cloud API; its file is removed whatever the outcome.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Send)?;
    let q = NumberQuery::parse(q)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::missing("Content-Type: the media's type, e.g. image/jpeg"))?;
    // The body is read only with a turn (a bounded number of spool files, whatever the number of clients).
    let _turn = state.media.upload_turn().await;
    // Beyond its type's limit an upload is only counted, not written: it is refused for its size (an
    // unknown type has no limit that passes, so nothing of it is written).
    let keep = MediaKind::from_mime(&mime).map_or(0, MediaKind::max_bytes);
    let mut spool = state.media.spool(keep).await.map_err(|e| ApiError::internal(&e))?;
    let uploaded = receive_and_upload(&state, &q, body, &mut spool, &mime).await;
    spool.remove().await;
    let id = uploaded?;
    Ok((StatusCode::CREATED, Json(json!({"media": [{"id": id}], "meta": meta()}))))
}

/// The upload of `POST /v1/media` once it has a spool: the body into it, then the spooled file to Meta.
async fn receive_and_upload(
    state: &AppState,
    q: &NumberQuery,
    body: axum::body::Body,
    spool: &mut Spool,
    mime: &str,
) -> Result<String, ApiError> {
    let limit = crate::MEDIA_BODY_LIMIT as u64;
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: 1009,
        title: "Parameter value is not valid",
        details: format!("the media is larger than {} bytes", crate::MEDIA_BODY_LIMIT),
    };
    // Which number, and whether there is a way to Meta at all, before reading up to the limit to disk.
    let (_, number) = client_and_number(state, q.phone_number_id())?;
    // A body announced larger than the limit is refused before any of it is read.
    if hyper::body::Body::size_hint(&body).lower() > limit {
        return Err(too_large());
    }
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("the body could not be read: {e}")))?;
        if spool.len() + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        spool.push(&chunk).await.map_err(|e| ApiError::internal(&e))?;
    }
    if spool.is_empty() {
        return Err(ApiError::missing("the body: the media's bytes"));
    }
    state.media.upload_spooled(number.as_str(), spool, mime, "upload").await.map_err(|e| upload_error(&e))
}

/// `GET /v1/media/{id}` → the file with its Content-Type.
pub async fn download(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Send)?;
    let file = state.media.get(&id, None).await.map_err(|e| media_error(&e))?;
    Ok(file.into_response())
}

/// `DELETE /v1/media/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    state.media.delete(&id).await.map_err(|e| media_error(&e))?;
    Ok(Json(json!({"meta": meta()})))
}
