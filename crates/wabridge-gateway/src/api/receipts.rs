//! `PUT /v1/messages/{id} {"status":"read"}`: the On-Premises read receipt of a received message, sent to
//! the Cloud API as `POST /{phone-number-id}/messages {"status":"read","message_id"}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use wabridge_types::send::MarkRead;

use super::settings::{client_and_number, cloud_error};
use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

#[derive(Debug, Deserialize)]
struct ReceiptRequest {
    status: String,
    /// The business number that received the message (needed when several are configured).
    #[serde(default)]
    from: Option<String>,
}

/// `PUT /v1/messages/{id}` with `{"status":"read"}` (and `from` when several numbers are configured).
pub async fn mark_read(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    let request: ReceiptRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("expected {{\"status\": \"read\"}}: {e}")))?;
    if request.status != "read" {
        return Err(ApiError::invalid("status: only \"read\""));
    }
    let (client, number) = client_and_number(&state, request.from)?;
    let receipt: MarkRead =
        serde_json::from_value(json!({"messaging_product": "whatsapp", "status": "read", "message_id": id}))
            .map_err(|e| ApiError::invalid(format!("message id: {e}")))?;
    client.mark_read(&number, &receipt).await.map_err(|e| cloud_error(&e))?;
    Ok(Json(json!({"meta": meta()})))
}
