//! `POST /v1/media` (raw bytes with their Content-Type → id), `GET /v1/media/{id}` (the file, from the
//! cache or the Cloud API), `DELETE /v1/media/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::MediaError;
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
    }
}

/// `POST /v1/media` → 201 `{"media":[{"id"}]}`.
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
    // The body is read only with a turn (memory for a few uploads at once, whatever the number of clients).
    let _turn = state.media.upload_turn().await;
    let body: Bytes = axum::body::to_bytes(body, crate::MEDIA_BODY_LIMIT).await.map_err(|e| {
        // `to_bytes` says "length limit exceeded" (http-body-util's error) when the body is over the limit.
        let mut chain: Option<&dyn std::error::Error> = Some(&e);
        let mut too_large = false;
        while let Some(err) = chain {
            too_large |= err.to_string().contains("length limit exceeded");
            chain = err.source();
        }
        if too_large {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: 1009,
                title: "Parameter value is not valid",
                details: format!("the media is larger than {} bytes", crate::MEDIA_BODY_LIMIT),
            }
        } else {
            ApiError::invalid(format!("the body could not be read: {e}"))
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::missing("the body: the media's bytes"));
    }
    let (_, number) = client_and_number(&state, q.phone_number_id())?;
    let id =
        state.media.upload(number.as_str(), body, &mime, "upload").await.map_err(|e| upload_error(&e))?;
    Ok((StatusCode::CREATED, Json(json!({"media": [{"id": id}], "meta": meta()}))))
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
