//! `/v1/callbacks`: list, create, inspect (with delivery status), delete, replay failed events.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{check_definition, shape_name};
use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};
use crate::config::CallbackShape;
use crate::store::{CallbackRecord, to_millis};

/// The routes of `/v1/callbacks`.
pub fn routes() -> Vec<crate::api::registry::Route> {
    use crate::api::registry::{Access, Body, Route, Verb};
    let events = Access::Bearer(Scope::Events);
    // Creating and deleting callbacks is an admin's: a callback makes the gateway POST every event, signed,
    // to any address its network reaches, and deleting one drops another application's undelivered events.
    let admin = Access::Bearer(Scope::Admin);
    vec![
        Route::new(Verb::Get, "/v1/callbacks", "List application callbacks", events, Body::None, list),
        Route::new(Verb::Post, "/v1/callbacks", "Create an application callback", admin, Body::Json, create)
            .created(),
        Route::new(
            Verb::Get,
            "/v1/callbacks/{id}",
            "A callback and its delivery status",
            events,
            Body::None,
            show,
        ),
        Route::new(Verb::Delete, "/v1/callbacks/{id}", "Delete a callback", admin, Body::None, remove),
        Route::new(
            Verb::Get,
            "/v1/callbacks/{id}/status",
            "A callback's delivery status",
            events,
            Body::None,
            show,
        ),
        Route::new(
            Verb::Post,
            "/v1/callbacks/{id}/replay",
            "Replay a callback's failed events",
            events,
            Body::None,
            replay,
        ),
    ]
}

/// The body of `POST /v1/callbacks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCallback {
    id: Option<String>,
    url: String,
    secret: String,
    #[serde(default)]
    shape: CallbackShape,
    max_concurrent: Option<u32>,
    #[serde(default)]
    events: Vec<String>,
    phone_number_id: Option<String>,
}

/// A callback as the API shows it. Its URL may carry a credential of the receiver (`https://user:pw@…`,
/// `?token=…`, or a path that is itself the secret, as chat services' incoming webhooks are): whole for
/// admins, who set it; to the other readers (an `events` key lists callbacks to watch their progress, not to
/// learn the receiver's secrets) only its scheme, host and port, the rest replaced.
fn describe(c: &CallbackRecord, principal: &Principal) -> Value {
    let url = if principal.require(Scope::Admin).is_ok() { c.url.clone() } else { redacted_url(&c.url) };
    json!({
        "id": c.id,
        "url": url,
        "shape": c.shape,
        "max_concurrent": c.max_concurrent,
        "events": c.kinds,
        "phone_number_id": c.phone_number_id,
        "source": c.source,
        "created_at": to_millis(c.created_at),
    })
}

/// `url` with everything but its scheme, host and port replaced by `REDACTED` (a URL that does not parse:
/// replaced whole).
fn redacted_url(url: &str) -> String {
    const HIDDEN: &str = "REDACTED";
    let Ok(parsed) = reqwest::Url::parse(url) else { return HIDDEN.to_owned() };
    let Some(host) = parsed.host_str() else { return HIDDEN.to_owned() };
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let user = if parsed.username().is_empty() && parsed.password().is_none() { "" } else { "REDACTED@" };
    let rest = if parsed.path() == "/" && parsed.query().is_none() { "/" } else { "/REDACTED" };
    format!("{}://{user}{host}{port}{rest}", parsed.scheme())
}

async fn list(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Events)?;
    let callbacks: Vec<Value> =
        state.store.callbacks().await?.iter().map(|c| describe(c, &principal)).collect();
    Ok(Json(json!({"callbacks": callbacks, "meta": meta()})))
}

async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<NewCallback>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let Json(new) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let max_concurrent = new.max_concurrent.unwrap_or(6);
    // The same checks as a callback of the configuration, before anything is stored.
    check_definition(&new.url, max_concurrent, &new.events).map_err(|e| ApiError::invalid(e.to_string()))?;
    if new.secret.is_empty() {
        return Err(ApiError::missing("secret: every callback signs its requests with a secret of its own"));
    }
    let id = new.id.filter(|i| !i.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::invalid("id: letters, digits, - and _ only, 64 at most"));
    }
    if id == crate::settings::CALLBACK_ID {
        return Err(ApiError::invalid(
            "id: \"application\" is the webhooks.url application setting (PATCH /v1/settings/application)",
        ));
    }
    let record = CallbackRecord {
        id,
        url: new.url,
        secret: new.secret,
        shape: shape_name(new.shape).to_owned(),
        max_concurrent,
        kinds: new.events,
        phone_number_id: new.phone_number_id,
        source: "api".to_owned(),
        scan_seq: 0,
        created_at: SystemTime::now(),
    };
    if !state.callbacks.add(record.clone()).await? {
        return Err(ApiError::conflict(format!("a callback with id {:?} exists", record.id)));
    }
    Ok((StatusCode::CREATED, Json(json!({"callbacks": [describe(&record, &principal)], "meta": meta()}))))
}

async fn show(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Events)?;
    let Some(record) = state.store.callback(&id).await? else {
        return Err(ApiError::not_found(format!("no callback {id:?}")));
    };
    let stats = state.store.delivery_stats(&id).await?;
    let head = state.callbacks.head();
    let oldest_age_ms = stats
        .oldest_pending_at
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut callback = describe(&record, &principal);
    callback["status"] = json!({
        "pending": stats.pending,
        "retrying": stats.retrying,
        "held_back": stats.held_back,
        "failed": stats.failed,
        "not_yet_queued": (head - record.scan_seq).max(0),
        "backlog": stats.pending + u64::try_from((head - record.scan_seq).max(0)).unwrap_or(0),
        "oldest_undelivered_age_ms": oldest_age_ms,
        "queued_through_seq": record.scan_seq,
        "log_head_seq": head,
    });
    Ok(Json(json!({"callbacks": [callback], "meta": meta()})))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    match state.store.callback(&id).await? {
        None => return Err(ApiError::not_found(format!("no callback {id:?}"))),
        Some(c) if c.source == "config" => {
            return Err(ApiError::invalid(format!(
                "callback {id:?} is defined in the configuration; remove it there"
            )));
        }
        Some(_) => {}
    }
    state.callbacks.remove(&id).await?;
    Ok(Json(json!({"meta": meta()})))
}

async fn replay(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Events)?;
    if state.store.callback(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no callback {id:?}")));
    }
    let requeued = state.callbacks.replay(&id).await?;
    Ok(Json(json!({"requeued": requeued, "meta": meta()})))
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn receivers_credentials_are_hidden() {
        for (url, shown) in [
            ("https://u:pw@example.com/hook?token=abc&x=1", "https://REDACTED@example.com/REDACTED"),
            ("https://TOKEN@example.com/", "https://REDACTED@example.com/"),
            (
                "https://hooks.example.com:8443/services/T1/B2/secret",
                "https://hooks.example.com:8443/REDACTED",
            ),
            ("http://10.0.0.5:9000/", "http://10.0.0.5:9000/"),
            ("not a url", "REDACTED"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
}
