//! Dispatch of Graph paths to the handler of what the node id names.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use wabridge_types::response::Success;

use super::{media, messages, numbers, templates};
use crate::error::ApiError;
use crate::state::Shared;

type Params = Query<HashMap<String, String>>;

/// Largest JSON body accepted on the Graph routes.
const JSON_BODY_MAX: usize = 4 * 1024 * 1024;
/// Largest multipart upload accepted (documents: 100 MB, plus the form's overhead); applied to the
/// Graph routes as their `DefaultBodyLimit`, while JSON bodies are read with [`JSON_BODY_MAX`].
pub(super) const UPLOAD_BODY_MAX: usize = 101 * 1024 * 1024;

/// What a node id names.
enum Node<'a> {
    Number(&'a Arc<crate::numbers::Number>),
    Waba,
    Other,
}

fn node<'a>(shared: &'a Shared, id: &str) -> Node<'a> {
    if let Some(n) = shared.number(id) {
        Node::Number(n)
    } else if id == shared.config.waba_id {
        Node::Waba
    } else {
        Node::Other
    }
}

fn check_version(version: &str) -> Result<(), ApiError> {
    let ok = version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && (major.bytes().chain(minor.bytes())).all(|b| b.is_ascii_digit())
    });
    if ok { Ok(()) } else { Err(ApiError::new(100, format!("Unknown path components: /{version}"))) }
}

/// Reads a JSON body (an empty body reads as `{}`); malformed JSON is code 100.
pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::new(100, format!("Invalid parameter: {e}")))
}

async fn body_bytes(request: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), JSON_BODY_MAX)
        .await
        .map_err(|e| ApiError::new(100, format!("Could not read the request body: {e}")))
}

/// `{"success": true}`.
pub(super) fn success() -> Response {
    Json(Success::TRUE).into_response()
}

pub(super) async fn node_get(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    match node(&shared, &id) {
        Node::Number(n) => Ok(numbers::get_number(n, params.get("fields").map(String::as_str))),
        Node::Waba => Ok(numbers::get_waba(&shared, params.get("fields").map(String::as_str))),
        Node::Other => {
            if let Some(response) = media::info(&shared, &id) {
                return Ok(response);
            }
            if let Some(t) = shared.templates.get(&id) {
                return Ok(Json(&*t).into_response());
            }
            Err(ApiError::unknown_object(&id, "get"))
        }
    }
}

pub(super) async fn node_post(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    let body = body_bytes(request).await?;
    match node(&shared, &id) {
        Node::Number(n) => numbers::set_pin(n, &body),
        _ if shared.templates.get(&id).is_some() => templates::edit(&shared, &id, &body),
        _ => Err(ApiError::unknown_object(&id, "post")),
    }
}

pub(super) async fn node_delete(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    if shared.media.remove(&id) { Ok(success()) } else { Err(ApiError::unknown_object(&id, "delete")) }
}

pub(super) async fn edge_get(
    State(shared): State<Arc<Shared>>,
    Path((version, id, edge)): Path<(String, String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    match (node(&shared, &id), edge.as_str()) {
        (Node::Waba, "phone_numbers") => Ok(numbers::list_numbers(&shared)),
        (Node::Waba, "message_templates") => templates::list(&shared, &version, &params),
        (Node::Waba, "subscribed_apps") => Ok(numbers::subscribed_apps(&shared)),
        (Node::Number(n), "whatsapp_business_profile") => Ok(numbers::get_profile(n)),
        _ => Err(ApiError::unknown_object(&format!("{id}/{edge}"), "get")),
    }
}

pub(super) async fn edge_post(
    State(shared): State<Arc<Shared>>,
    Path((version, id, edge)): Path<(String, String, String)>,
    Query(params): Params,
    request: Request,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    match (node(&shared, &id), edge.as_str()) {
        (Node::Number(n), "media") => {
            let multipart = Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::new(100, format!("Expected a multipart/form-data upload: {e}")))?;
            media::upload(&shared, n, multipart).await
        }
        (Node::Number(n), "messages") => messages::post(&shared, n, body_bytes(request).await?),
        (Node::Number(n), "register") => numbers::register(n, &body_bytes(request).await?),
        (Node::Number(n), "deregister") => Ok(numbers::deregister(n)),
        (Node::Number(_), "request_code" | "verify_code") => Ok(success()),
        (Node::Number(n), "whatsapp_business_profile") => {
            numbers::set_profile(n, &body_bytes(request).await?)
        }
        (Node::Waba, "message_templates") => templates::create(&shared, &body_bytes(request).await?),
        (Node::Waba, "subscribed_apps") => {
            numbers::subscribe(&shared, &params, &body_bytes(request).await?).await
        }
        _ => Err(ApiError::unknown_object(&format!("{id}/{edge}"), "post")),
    }
}

/// Legacy read receipts used `PUT /{phone-number-id}/messages`; only they are accepted there.
pub(super) async fn edge_put(
    State(shared): State<Arc<Shared>>,
    Path((version, id, edge)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    match (node(&shared, &id), edge.as_str()) {
        (Node::Number(_), "messages") => messages::put(&body_bytes(request).await?),
        _ => Err(ApiError::unknown_object(&format!("{id}/{edge}"), "put")),
    }
}

pub(super) async fn edge_delete(
    State(shared): State<Arc<Shared>>,
    Path((version, id, edge)): Path<(String, String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    match (node(&shared, &id), edge.as_str()) {
        (Node::Waba, "message_templates") => templates::delete(&shared, &params),
        (Node::Waba, "subscribed_apps") => Ok(numbers::unsubscribe(&shared)),
        _ => Err(ApiError::unknown_object(&format!("{id}/{edge}"), "delete")),
    }
}

/// A path no route matches (`/v23.0/a/b/c`, `/v23.0`, `/anything`): Graph's code 100, HTTP 400, naming the
/// components it could not place — those after `/{version}/{node}/{edge}`, or the whole path when it does
/// not even start with a node.
pub(super) async fn unknown_path(uri: Uri) -> ApiError {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let unknown = if segments.len() > 3 { &segments[3..] } else { &segments[..] };
    ApiError::new(100, format!("Unknown path components: /{}", unknown.join("/")))
}

/// A known path with a method Graph has no operation for there (`PATCH /{phone-number-id}`): Graph's
/// "Unsupported … request" code 100, as for an object that does not support the operation.
pub(super) async fn unsupported_method(method: Method, uri: Uri) -> ApiError {
    let path = uri.path().trim_matches('/');
    let object = path.split_once('/').map_or(path, |(_, rest)| rest);
    ApiError::unknown_object(object, &method.as_str().to_ascii_lowercase())
}
