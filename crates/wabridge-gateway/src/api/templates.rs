//! `GET /v1/templates`: the template cache (loaded at start, kept current by template webhooks).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

/// `GET /v1/templates` → `{"templates":[{waba_id, id, name, language, status, category, components…}]}`.
pub async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Send)?;
    let templates: Vec<Value> = state
        .templates
        .list()
        .into_iter()
        .map(|(waba, t)| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            if let Value::Object(o) = &mut v {
                o.insert("waba_id".into(), Value::String(waba));
            }
            v
        })
        .collect();
    Ok(Json(json!({"templates": templates, "meta": meta()})))
}
