//! Phone numbers, the WABA node, registration, the business profile and `subscribed_apps`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use wabridge_types::response::{
    BusinessProfile, Cursors, Page, Paging, PhoneNumber, RegisterRequest, SubscribeRequest, Throughput,
};

use super::graph::{parse_json, success};
use crate::chaos::lock;
use crate::error::ApiError;
use crate::numbers::Number;
use crate::state::Shared;

fn phone_number(n: &Number) -> PhoneNumber {
    PhoneNumber {
        id: n.id.clone().into(),
        // Formatted for people here; webhooks' `metadata` keep the digits.
        display_phone_number: Some(crate::numbers::display_format(&n.display)),
        verified_name: Some(n.verified_name.clone()),
        quality_rating: Some("GREEN".to_owned()),
        code_verification_status: Some("VERIFIED".to_owned()),
        platform_type: Some(if n.is_registered() { "CLOUD_API" } else { "NOT_APPLICABLE" }.to_owned()),
        throughput: Some(Throughput { level: n.level() }),
        extra: Map::new(),
    }
}

/// Keeps only the requested `fields` (comma-separated; `id` always stays).
fn select_fields(value: Value, fields: Option<&str>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &value) else { return value };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    if wanted.is_empty() {
        return value;
    }
    let selected: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| k.as_str() == "id" || wanted.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(selected)
}

/// `GET /{phone-number-id}` (with `?fields=throughput`, …).
pub(super) fn get_number(n: &Number, fields: Option<&str>) -> Response {
    let value = serde_json::to_value(phone_number(n)).unwrap_or(Value::Null);
    Json(select_fields(value, fields)).into_response()
}

/// `GET /{waba-id}`.
pub(super) fn get_waba(shared: &Shared, fields: Option<&str>) -> Response {
    let value = json!({
        "id": shared.config.waba_id,
        "name": "wabridge sandbox",
        "currency": "USD",
        "timezone_id": "1",
        "message_template_namespace": "sandbox_namespace",
    });
    Json(select_fields(value, fields)).into_response()
}

/// `GET /{waba-id}/phone_numbers`.
pub(super) fn list_numbers(shared: &Shared) -> Response {
    let data: Vec<PhoneNumber> = shared.numbers.iter().map(|n| phone_number(n)).collect();
    let cursors = Cursors { before: Some("QVFIUk".to_owned()), after: Some("QVFIUl".to_owned()) };
    Json(Page {
        data,
        paging: Some(Paging { cursors: Some(cursors), next: None, previous: None }),
        extra: Map::new(),
    })
    .into_response()
}

/// `POST /{phone-number-id}/register`.
pub(super) fn register(n: &Number, body: &[u8]) -> Result<Response, ApiError> {
    let value: Value = parse_json(body)?;
    if value.get("messaging_product").is_none() {
        return Err(ApiError::new(131_008, "The parameter messaging_product is required."));
    }
    if value.get("pin").is_none() {
        return Err(ApiError::new(131_008, "The parameter pin is required."));
    }
    let request: RegisterRequest =
        serde_json::from_value(value).map_err(|e| ApiError::new(100, format!("Invalid parameter: {e}")))?;
    request.validate().map_err(|e| ApiError::new(100, format!("Param {e}")))?;
    let mut pin = lock(&n.pin);
    if pin.as_deref().is_some_and(|p| p != request.pin) {
        return Err(ApiError::new(133_005, "Two step verification PIN Mismatch"));
    }
    *pin = Some(request.pin);
    n.registered.store(true, Ordering::Relaxed);
    Ok(success())
}

/// `POST /{phone-number-id}/deregister`.
pub(super) fn deregister(n: &Number) -> Response {
    n.registered.store(false, Ordering::Relaxed);
    success()
}

/// `POST /{phone-number-id}` with `{"pin": "123456"}`: sets the two-step verification PIN.
pub(super) fn set_pin(n: &Number, body: &[u8]) -> Result<Response, ApiError> {
    let value: Value = parse_json(body)?;
    let Some(pin) = value.get("pin").and_then(Value::as_str) else {
        return Err(ApiError::new(131_008, "The parameter pin is required."));
    };
    RegisterRequest::new(pin).validate().map_err(|e| ApiError::new(100, format!("Param {e}")))?;
    *lock(&n.pin) = Some(pin.to_owned());
    Ok(success())
}

/// `GET /{phone-number-id}/whatsapp_business_profile`.
pub(super) fn get_profile(n: &Number) -> Response {
    let profile = lock(&n.profile).clone();
    Json(json!({ "data": [profile] })).into_response()
}

/// `POST /{phone-number-id}/whatsapp_business_profile`: the given fields replace the stored ones.
pub(super) fn set_profile(n: &Number, body: &[u8]) -> Result<Response, ApiError> {
    let update: BusinessProfile = parse_json(body)?;
    if update.messaging_product.is_none() {
        return Err(ApiError::new(131_008, "The parameter messaging_product is required."));
    }
    update.validate().map_err(|e| ApiError::new(100, format!("Param {e}")))?;
    let mut profile = lock(&n.profile);
    macro_rules! take {
        ($($field:ident),*) => { $(if update.$field.is_some() { profile.$field = update.$field.clone(); })* };
    }
    take!(about, address, description, email, websites, vertical);
    if let Some(handle) = &update.profile_picture_handle {
        profile.profile_picture_url = Some(format!("https://sandbox.invalid/profile/{handle}"));
    }
    Ok(success())
}

/// `GET /{waba-id}/subscribed_apps`.
pub(super) fn subscribed_apps(shared: &Shared) -> Response {
    let data = if shared.subscribed.load(Ordering::Relaxed) {
        vec![json!({"whatsapp_business_api_data": {
            "id": "100000000000001",
            "link": "https://sandbox.invalid/app",
            "name": "wabridge sandbox app",
        }})]
    } else {
        Vec::new()
    };
    Json(json!({ "data": data })).into_response()
}

/// `POST /{waba-id}/subscribed_apps`, optionally overriding the callback URL (after the verification
/// handshake, as Meta does).
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut request: SubscribeRequest = parse_json(body)?;
    if request.override_callback_uri.is_none() {
        request.override_callback_uri = params.get("override_callback_uri").cloned();
        request.verify_token = request.verify_token.or_else(|| params.get("verify_token").cloned());
    }
    if let Some(url) = &request.override_callback_uri {
        let Some(token) = &request.verify_token else {
            return Err(ApiError::new(
                131_008,
                "The parameter verify_token is required with override_callback_uri.",
            ));
        };
        crate::webhooks::verify_callback(shared, url, token)
            .await
            .map_err(|e| ApiError::new(100, format!("Callback verification failed: {e}")))?;
        shared.hub.add_target(shared, url);
    }
    shared.subscribed.store(true, Ordering::Relaxed);
    Ok(success())
}

/// `DELETE /{waba-id}/subscribed_apps`: no more webhooks until subscribed again.
pub(super) fn unsubscribe(shared: &Shared) -> Response {
    shared.subscribed.store(false, Ordering::Relaxed);
    success()
}
