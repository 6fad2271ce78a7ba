//! `POST /v1/contacts` and `POST /v1/account`: the On-Premises contact check and registration.
//!
//! Contacts: the Cloud API has no contact check (a send to a number without WhatsApp fails later with
//! 131026), so, like the On-Premises API since v2.43, every well-formed number is `valid` with its wa_id
//! (the digits of the E.164 number) and anything else is `invalid`. `blocking` and `force_check` are
//! accepted and change nothing.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::normalize_to;
use super::settings::{client_and_number, cloud_error};
use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

#[derive(Debug, Deserialize)]
struct ContactsRequest {
    contacts: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    blocking: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    force_check: Option<bool>,
}

/// `POST /v1/contacts` → `{"contacts":[{"input","status":"valid","wa_id"}|{"input","status":"invalid"}]}`.
pub async fn check(
    State(_state): State<Arc<AppState>>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    let request: ContactsRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!("expected {{\"contacts\": [\"+1 631 555 1001\", …]}}: {e}"))
    })?;
    let contacts: Vec<Value> = request
        .contacts
        .into_iter()
        .map(|input| match normalize_to(&input) {
            Some(wa_id) => json!({"input": input, "status": "valid", "wa_id": wa_id}),
            None => json!({"input": input, "status": "invalid"}),
        })
        .collect();
    Ok(Json(json!({"contacts": contacts, "meta": meta()})))
}

#[derive(Debug, Deserialize)]
struct AccountRequest {
    cc: String,
    phone_number: String,
    #[serde(default)]
    pin: Option<String>,
}

/// `POST /v1/account {"cc","phone_number","pin"}` → Cloud `POST /{phone-number-id}/register` with the
/// two-step PIN; 201 when registered. The number must be configured here (matched by its display number).
/// `method` and `cert` (On-Premises verification) are not needed by the Cloud API and are ignored.
pub async fn register(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let request: AccountRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("expected {{\"cc\", \"phone_number\", \"pin\"}}: {e}")))?;
    let wanted = format!("{}{}", request.cc, request.phone_number);
    let wanted =
        normalize_to(&wanted).ok_or_else(|| ApiError::invalid("cc + phone_number is not a phone number"))?;
    let id = state
        .config
        .numbers
        .iter()
        .find(|n| n.display_phone_number.as_deref().and_then(normalize_to).as_deref() == Some(wanted.as_str()))
        .map(|n| n.id.clone())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "+{wanted} is not a configured number (numbers[].display_phone_number); add it with its phone number id"
            ))
        })?;
    let pin =
        request.pin.filter(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
            ApiError::missing(
                "pin: the Cloud API registers a number with its 6-digit two-step verification PIN",
            )
        })?;
    let (client, number) = client_and_number(&state, Some(id))?;
    client.register(&number, &pin).await.map_err(|e| cloud_error(&e))?;
    Ok((StatusCode::CREATED, Json(json!({"meta": meta()}))))
}
