//! `GET /v1/health` (no credential): `uninitialized` while starting, then `connected` or `connecting`
//! (whether the Cloud API answers), with alerts an operator should act on.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::api_error::meta;

/// `GET /v1/health` → `{"health":{"gateway_status","alerts":[…],"ready_after_ms"},"meta":{…}}`.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let status = state.readiness.status().await;
    let mut alerts: Vec<Value> = state
        .outbound
        .paused_numbers()
        .into_iter()
        .map(|n| {
            json!({"type": "sending_paused", "phone_number_id": n,
                   "details": "sending is paused after a token, account or payment error; see the alert event"})
        })
        .collect();
    if state.cloud.is_some() && state.readiness.is_ready() {
        alerts.extend(state.templates.unknown_wabas().into_iter().map(|w| {
            json!({"type": "templates_not_loaded", "waba_id": w,
                   "details": "the templates could not be read; template sends are not checked"})
        }));
    }
    let ready_after_ms =
        state.readiness.ready_after().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Json(json!({
        "health": {"gateway_status": status.as_str(), "alerts": alerts, "ready_after_ms": ready_after_ms},
        "meta": meta(),
    }))
}
