//! The Cloud-compatible media routes: `POST /{version}/{phone-number-id}/media` (multipart, as Meta's),
//! `GET /{version}/{media-id}` (its `url` points at this gateway's `/{version}/{media-id}/download`, since
//! Meta's URL needs Meta's token), `GET /{version}/{media-id}/download`, `DELETE /{version}/{media-id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Value, json};
use wabridge_types::ids::MediaId;

use super::{GraphApiError, GraphPrincipal, is_graph_version};
use crate::AppState;
use crate::auth::Scope;
use crate::media::{MediaError, Spool};

fn graph_media_error(e: &MediaError) -> GraphApiError {
    match e {
        MediaError::NoClient => {
            GraphApiError::new(2, "no Cloud API access token is configured on this gateway")
        }
        MediaError::Cloud(c) => GraphApiError::from_cloud(c),
        MediaError::Checksum => GraphApiError::new(131_052, "the downloaded media does not match its sha256"),
        MediaError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            GraphApiError::new(100, "no such media")
        }
        // The cache failed (a full disk, say): the gateway's problem, not the caller's request.
        MediaError::Io(io) => {
            tracing::error!(error = %io, "media cache failed");
            GraphApiError::new(131_000, "internal error; see the gateway's log")
        }
        MediaError::Store(e) => {
            tracing::error!(error = %e, "the store failed while serving media");
            GraphApiError::new(131_000, "internal error; see the gateway's log")
        }
    }
}

/// Graph's answer to a node that is not media (or does not exist): code 100, HTTP 400.
fn not_media(method: &str, id: &str) -> GraphApiError {
    GraphApiError::new(
        100,
        format!(
            "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
             permissions, or does not support this operation"
        ),
    )
}

fn check_version(version: &str) -> Result<(), GraphApiError> {
    if is_graph_version(version) {
        Ok(())
    } else {
        Err(GraphApiError::new(100, format!("Unknown path components: /{version}")))
    }
}

/// `POST /{version}/{phone-number-id}/media` (multipart `file`, `type`, `messaging_product`) → `{"id"}`. The
/// `file` field is spooled to disk as it arrives (see [`crate::media::spool`]) and streamed from there to
/// the Cloud API; its file is removed whatever the outcome.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    principal: GraphPrincipal,
    Path((version, number)): Path<(String, String)>,
    form: Multipart,
) -> Result<Json<Value>, GraphApiError> {
    principal.require(Scope::Send)?;
    check_version(&version)?;
    if !state.config.numbers.iter().any(|n| n.id == number) {
        return Err(GraphApiError::new(100, format!("Object with ID '{number}' does not exist")));
    }
    // The fields are read only with a turn (a bounded number of spool files, whatever the number of clients).
    let _turn = state.media.upload_turn().await;
    let mut file = None;
    let uploaded = receive_and_upload(&state, &number, form, &mut file).await;
    if let Some((spool, _, _)) = file {
        spool.remove().await;
    }
    let id = uploaded?;
    Ok(Json(json!({"id": id})))
}

/// The spooled `file` field of an upload: the spool, the field's Content-Type, its file name.
type SpooledFile = (Spool, Option<String>, String);

/// The upload of `POST /{version}/{phone-number-id}/media`: the form's fields, the `file` into a spool left
/// in `file` (for the caller to remove), then the spooled file to Meta.
async fn receive_and_upload(
    state: &AppState,
    number: &str,
    mut form: Multipart,
    file: &mut Option<SpooledFile>,
) -> Result<String, GraphApiError> {
    let mut declared_type = None;
    while let Some(mut field) = form.next_field().await.map_err(|e| GraphApiError::new(100, e.body_text()))? {
        match field.name() {
            Some("file") => {
                let mime = field.content_type().map(str::to_owned);
                let name = field.file_name().unwrap_or("upload").to_owned();
                // A second `file` field replaces the first (as before): its spool goes now.
                if let Some((earlier, _, _)) = file.take() {
                    earlier.remove().await;
                }
                // The type may come after the file: the whole field is written (the form's limit bounds it).
                let spool = state.media.spool(u64::MAX).await.map_err(|e| graph_media_error(&e.into()))?;
                let (spool, _, _) = file.insert((spool, mime, name));
                while let Some(chunk) =
                    field.chunk().await.map_err(|e| GraphApiError::new(100, e.body_text()))?
                {
                    spool.push(&chunk).await.map_err(|e| graph_media_error(&e.into()))?;
                }
            }
            Some("type") => declared_type = field.text().await.ok(),
            _ => {}
        }
    }
    let Some((spool, mime, name)) = file.as_mut() else {
        return Err(GraphApiError::new(100, "The parameter file is required"));
    };
    let mime = declared_type
        .or_else(|| mime.clone())
        .ok_or_else(|| GraphApiError::new(100, "The parameter type is required"))?;
    state.media.upload_spooled(number, spool, &mime, name).await.map_err(|e| graph_media_error(&e))
}

/// `GET /{version}/{media-id}` → Meta's answer, with `url` pointing at this gateway.
pub async fn info(
    State(state): State<Arc<AppState>>,
    principal: GraphPrincipal,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphApiError> {
    principal.require(Scope::Send)?;
    check_version(&version)?;
    // Only media is read through this route: a configured number or WABA is not asked at Meta, and any
    // other node answers something that does not read as media info.
    let configured = state.config.numbers.iter().any(|n| n.id == id || n.waba_id == id);
    if !crate::media::is_media_id(&id) || configured {
        return Err(not_media("get", &id));
    }
    let client = state.cloud.as_ref().ok_or_else(|| graph_media_error(&MediaError::NoClient))?;
    let info = client.media_info(&MediaId::new(id.as_str())).await.map_err(|e| match e {
        wabridge_cloud::CloudError::Decode { .. } => not_media("get", &id),
        e => GraphApiError::from_cloud(&e),
    })?;
    let mut body = serde_json::to_value(info).map_err(|e| GraphApiError::new(131_000, e.to_string()))?;
    // Behind a proxy that terminates HTTPS, the configured public URL is the one clients can use (the SDK
    // refuses an http:// download URL); without one, the address the request came to.
    let base = match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            let scheme = if state.config.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{host}")
        }
    };
    body["url"] = json!(format!("{base}/{version}/{id}/download"));
    Ok(Json(body))
}

/// `GET /{version}/{media-id}/download` → the file (from the cache, or fetched and cached).
pub async fn download(
    State(state): State<Arc<AppState>>,
    principal: GraphPrincipal,
    Path((version, id)): Path<(String, String)>,
) -> Result<Response, GraphApiError> {
    principal.require(Scope::Send)?;
    check_version(&version)?;
    let file = state.media.get(&id, None).await.map_err(|e| graph_media_error(&e))?;
    Ok(file.into_response())
}

/// `DELETE /{version}/{media-id}` → `{"success":true}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: GraphPrincipal,
    Path((version, id)): Path<(String, String)>,
) -> Result<Json<Value>, GraphApiError> {
    principal.require(Scope::Send)?;
    check_version(&version)?;
    state.media.delete(&id).await.map_err(|e| graph_media_error(&e))?;
    Ok(Json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a cache file that is not there is "no such media"; any other cache failure (a full disk) is the
    /// gateway's, answered 131000 / HTTP 500.
    #[test]
    fn only_a_missing_file_is_no_such_media() {
        let missing = graph_media_error(&MediaError::Io(std::io::ErrorKind::NotFound.into()));
        assert_eq!((missing.0.code, missing.0.http_status()), (100, 400));
        let full = graph_media_error(&MediaError::Io(std::io::Error::other("No space left on device")));
        assert_eq!((full.0.code, full.0.http_status()), (131_000, 500));
    }
}
