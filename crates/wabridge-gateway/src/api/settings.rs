//! `GET|PATCH|DELETE /v1/settings/application` (see `settings.rs` for what each setting does) and
//! `GET|POST /v1/settings/business/profile` (through to the Cloud API).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::response::BusinessProfile;

use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};
use crate::settings::{APPLICATION, CALLBACK_ID, defaults, merge, over_defaults};
use crate::store::CallbackRecord;

/// The stored application settings over the defaults.
async fn current(state: &AppState) -> Result<Value, ApiError> {
    Ok(stored(state).await?.1)
}

/// The stored application settings as stored (`None`: never set, or reset) and as a document (over the
/// defaults).
async fn stored(state: &AppState) -> Result<(Option<String>, Value), ApiError> {
    let text = state.store.api_setting(APPLICATION).await?;
    let sent_status = state.config.outbound.sent_status;
    let doc = text
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .map_or_else(|| defaults(sent_status), |stored| over_defaults(stored, sent_status));
    Ok((text, doc))
}

/// The settings document as answered: with `wa_id`, the business number's WhatsApp id (the digits of its
/// display number), when exactly one number is configured — as an On-Premises deployment served one number.
/// Computed, never stored: a PATCH naming it (a document read with GET and sent back) leaves it out.
fn answer(state: &AppState, mut doc: Value) -> Json<Value> {
    if let [only] = state.config.numbers.as_slice()
        && let Some(display) = &only.display_phone_number
        && let Some(map) = doc.as_object_mut()
    {
        let digits: String = display.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            map.insert("wa_id".to_owned(), Value::String(digits));
        }
    }
    Json(json!({"settings": {"application": doc}, "meta": meta()}))
}

/// `GET /v1/settings/application`.
pub async fn get_application(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(answer(&state, current(&state).await?))
}

/// Runs `change` as the only change of the settings in progress on the database (the store's settings lock:
/// several instances may share a PostgreSQL database), in a task of its own, so that a request dropped
/// mid-change (its client gone) does not leave the change half-made; the lock is released when it ends, also
/// on an error, and closes with its connection if the task dies. `change` reads the stored settings itself,
/// under the lock: what another instance stored just before is merged into, not overwritten.
async fn one_change<F, Fut>(state: Arc<AppState>, change: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(Arc<AppState>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let task = tokio::spawn(async move {
        let lock = state.store.lock_settings().await?;
        let changed = change(Arc::clone(&state)).await;
        lock.release().await;
        changed.map(|doc| answer(&state, doc))
    });
    task.await.map_err(|e| ApiError::internal(&e))?
}

/// `PATCH /v1/settings/application`: merges the body into the settings, stores them, then applies them. A
/// failed store changes nothing; if applying fails (each change of the callback is one transaction, so the
/// callback is as it was), the settings stored before are put back: what is live is what is stored, and the
/// callback's undelivered events and cursor are kept.
pub async fn patch_application(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let mut patch: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
    // `wa_id` is answered but not a setting: a document read with GET and sent back is taken without it.
    if let Some(map) = patch.as_object_mut() {
        map.remove("wa_id");
    }
    one_change(state, move |state| async move {
        let (before, stored) = stored(&state).await?;
        let mut doc = stored.clone();
        merge(&mut doc, &patch)?;
        settle_secret(&mut doc);
        // Stored first: putting a document back loses nothing, whereas undoing a new `webhooks.url` cannot bring
        // back the old receiver's deliveries (replacing the callback drops them).
        state.store.set_api_setting(APPLICATION, &doc.to_string()).await?;
        if let Err(e) = apply_callback(&state, &doc).await {
            put_back(&state, before.as_deref()).await;
            return Err(e);
        }
        state.sent_status.set(doc.get("sent_status").and_then(Value::as_bool).unwrap_or(true));
        Ok(doc)
    })
    .await
}

/// `DELETE /v1/settings/application`: back to the defaults. The stored settings are deleted first, then the
/// `webhooks.url` callback (in one transaction); if that fails, the settings are put back, and the callback
/// and its undelivered events are as they were.
pub async fn delete_application(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    one_change(state, |state| async move {
        let (before, _) = stored(&state).await?;
        state.store.delete_api_setting(APPLICATION).await?;
        if let Err(e) = state.callbacks.remove(CALLBACK_ID).await {
            put_back(&state, before.as_deref()).await;
            return Err(e.into());
        }
        state.sent_status.set(state.config.outbound.sent_status);
        Ok(defaults(state.config.outbound.sent_status))
    })
    .await
}

/// After a change was stored but could not be applied: the settings stored before (`None`: none) go back, so
/// that the stored settings say what is live (logged if that fails too; the next change of the settings
/// applies what it stores).
async fn put_back(state: &AppState, before: Option<&str>) {
    let restored = match before {
        Some(text) => state.store.set_api_setting(APPLICATION, text).await,
        None => state.store.delete_api_setting(APPLICATION).await,
    };
    if let Err(e) = restored {
        tracing::error!(error = %e, "the application settings could not be put back after a failed change; \
            they say what the failed change asked for until the next change");
    }
}

/// A `webhooks.url` signs its requests with `webhooks.secret`: one is made up when none is given; without a
/// URL there is none.
fn settle_secret(doc: &mut Value) {
    let url_set = doc.pointer("/webhooks/url").and_then(Value::as_str).is_some_and(|u| !u.is_empty());
    let Some(webhooks) = doc.get_mut("webhooks").and_then(Value::as_object_mut) else { return };
    if !url_set {
        webhooks.remove("secret");
    } else if webhooks.get("secret").and_then(Value::as_str).is_none() {
        webhooks.insert("secret".into(), Value::String(uuid::Uuid::new_v4().simple().to_string()));
    }
}

/// `webhooks.url` is the `application` callback (On-Premises body shape); brings it in line with `doc`.
async fn apply_callback(state: &AppState, doc: &Value) -> Result<(), ApiError> {
    let url = doc.pointer("/webhooks/url").and_then(Value::as_str).unwrap_or_default().to_owned();
    let max_concurrent =
        doc.pointer("/webhooks/max_concurrent_requests").and_then(Value::as_u64).unwrap_or(6);
    // The id is reserved for this setting (the callbacks API and the configuration refuse it), so the
    // callback there is this setting's. The same URL keeps its cursor and pending deliveries; another URL
    // (or none) replaces it, and a new one starts at the log's head. Each change below is one transaction: on
    // an error the callback is as it was.
    let existing = state.store.callback(CALLBACK_ID).await?;
    if url.is_empty() {
        if existing.is_some() {
            state.callbacks.remove(CALLBACK_ID).await?;
        }
        return Ok(());
    }
    let secret = doc.pointer("/webhooks/secret").and_then(Value::as_str).unwrap_or_default().to_owned();
    let record = CallbackRecord {
        id: CALLBACK_ID.to_owned(),
        url,
        secret,
        shape: "onprem".to_owned(),
        max_concurrent: u32::try_from(max_concurrent).unwrap_or(6),
        // What the On-Premises API sent to its webhook; the gateway's own kinds (alerts, template and
        // account changes) go to callbacks that ask for them.
        kinds: ["message", "status", "payment", "error"].map(str::to_owned).to_vec(),
        phone_number_id: None,
        source: "api".to_owned(),
        scan_seq: 0,
        created_at: SystemTime::now(),
    };
    match existing {
        // Another receiver: it starts at the log's head, and the old one's undelivered events go with it.
        Some(current) if current.url != record.url => state.callbacks.replace(record).await?,
        // Settings changed under the same URL (its concurrency, say) take effect now.
        Some(current)
            if current.secret != record.secret
                || current.max_concurrent != record.max_concurrent
                || current.shape != record.shape
                || current.kinds != record.kinds =>
        {
            state.callbacks.update(record).await?;
        }
        Some(_) => {}
        // None yet, or it was deleted meanwhile (`DELETE /v1/callbacks/application`).
        None => {
            if !state.callbacks.add(record.clone()).await? {
                // There after all (created since it was read): take the new settings.
                state.callbacks.update(record).await?;
            }
        }
    }
    Ok(())
}

/// `?phone_number_id=` of the business-profile routes (needed when several numbers are configured).
#[derive(Debug, Deserialize)]
pub struct NumberQuery {
    phone_number_id: Option<String>,
}

impl NumberQuery {
    /// The query, or a bad one in the On-Premises error shape (axum's own rejection is plain text).
    pub(crate) fn parse(q: Result<Query<Self>, QueryRejection>) -> Result<Self, ApiError> {
        q.map(|Query(q)| q).map_err(|e| ApiError::invalid(e.body_text()))
    }

    /// The number asked for, if any.
    #[must_use]
    pub fn phone_number_id(&self) -> Option<String> {
        self.phone_number_id.clone()
    }
}

/// The Cloud API client and the number a request is about.
pub(crate) fn client_and_number(
    state: &AppState,
    asked: Option<String>,
) -> Result<(&wabridge_cloud::Client, PhoneNumberId), ApiError> {
    let client = state.cloud.as_ref().ok_or_else(|| ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: 1011,
        title: "Service not ready",
        details: "no Cloud API access token is configured (meta.access_token)".into(),
    })?;
    let ids: Vec<&str> = state.config.numbers.iter().map(|n| n.id.as_str()).collect();
    let id = match asked {
        Some(a) if ids.contains(&a.as_str()) => a,
        Some(a) => return Err(ApiError::invalid(format!("phone_number_id: {a:?} is not configured here"))),
        None if ids.len() == 1 => ids[0].to_owned(),
        None => return Err(ApiError::missing("phone_number_id: name the number (several are configured)")),
    };
    Ok((client, PhoneNumberId::new(id)))
}

/// An error of the Cloud API, for a `/v1` caller: Meta's code and text in the details.
pub(crate) fn cloud_error(e: &wabridge_cloud::CloudError) -> ApiError {
    // Refused before any call (a limit Meta documents, a media type or size it takes not): the caller's
    // request is at fault and will never succeed as it is.
    match e {
        wabridge_cloud::CloudError::Invalid(v) => return ApiError::invalid(v.to_string()),
        wabridge_cloud::CloudError::Media(m) => return ApiError::invalid(m.to_string()),
        _ => {}
    }
    let status = e.status().and_then(|s| axum::http::StatusCode::from_u16(s).ok());
    // Meta refusing the gateway's own access token (401/403) is not the caller's credential failing: an
    // On-Premises client reads 401 as "log in again", so it is answered as the upstream failure it is.
    let status = status
        .filter(|s| s.is_client_error() && !matches!(s.as_u16(), 401 | 403))
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let details = match e.graph_error() {
        Some(g) => format!("the Cloud API answered {}: {}", g.message, g.details().unwrap_or_default()),
        None => format!("the Cloud API could not be reached: {e}"),
    };
    ApiError { status, code: 1000, title: "Generic error", details }
}

/// The profile routes are an admin's; their query names the number (checked in that order).
fn admin_query(
    principal: &Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
) -> Result<NumberQuery, ApiError> {
    principal.require(Scope::Admin)?;
    NumberQuery::parse(q)
}

/// The business profile of the number a request names (or the only one), read through the Cloud API.
async fn read_profile(
    state: &AppState,
    principal: &Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
) -> Result<BusinessProfile, ApiError> {
    let q = admin_query(principal, q)?;
    let (client, number) = client_and_number(state, q.phone_number_id)?;
    client.business_profile(&number).await.map_err(|e| cloud_error(&e))
}

/// Writes the members of `profile` that are set (Meta keeps the others) to the number a request names.
async fn write_profile(
    state: &AppState,
    q: NumberQuery,
    profile: &BusinessProfile,
) -> Result<Json<Value>, ApiError> {
    let (client, number) = client_and_number(state, q.phone_number_id)?;
    client.update_business_profile(&number, profile).await.map_err(|e| cloud_error(&e))?;
    Ok(Json(json!({"meta": meta()})))
}

/// `GET /v1/settings/business/profile` → `{"settings":{"business":{"profile":{…}}}}`.
pub async fn get_profile(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let profile = read_profile(&state, &principal, q).await?;
    let profile = serde_json::to_value(profile).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({"settings": {"business": {"profile": profile}}, "meta": meta()})))
}

/// `POST /v1/settings/business/profile` `{address, description, email, vertical, websites, about}`.
pub async fn set_profile(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let q = admin_query(&principal, q)?;
    let profile: BusinessProfile = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the profile does not parse: {e}")))?;
    write_profile(&state, q, &profile).await
}

/// `GET /v1/settings/profile/about` → `{"settings":{"profile":{"about":{"text":…}}}}` (the On-Premises shape),
/// read from the business profile's `about`.
pub async fn get_about(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let text = read_profile(&state, &principal, q).await?.about.unwrap_or_default();
    Ok(Json(json!({"settings": {"profile": {"about": {"text": text}}}, "meta": meta()})))
}

/// The body of `PATCH /v1/settings/profile/about`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AboutBody {
    text: String,
}

/// `PATCH /v1/settings/profile/about` `{"text"}`: sets the business profile's `about` (1 to 139 characters,
/// Meta's limit).
pub async fn set_about(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    q: Result<Query<NumberQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let q = admin_query(&principal, q)?;
    let about: AboutBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the body does not parse: {e}")))?;
    let chars = about.text.chars().count();
    if !(1..=139).contains(&chars) {
        return Err(ApiError::invalid(format!("text: 1 to 139 characters (this one has {chars})")));
    }
    write_profile(&state, q, &BusinessProfile { about: Some(about.text), ..BusinessProfile::default() }).await
}
