//! `POST /v1/users/login`, `POST /v1/users/logout` and API keys (`/v1/keys`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::{LoginError, onprem_time, parse_scopes, scope_name};
use crate::api::has_nul;
use crate::api::messages::nul_details;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

/// `POST /v1/users/login` with `Authorization: Basic base64(user:password)`, and optionally a JSON body
/// `{"new_password": "…"}` (the On-Premises API's first login) to change the password.
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let trusted = &state.config.http.trusted_proxies;
    let client = client.map(|axum::Extension(axum::extract::ConnectInfo(peer))| {
        crate::client_address::client_address(peer.ip(), &headers, trusted)
    });
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Basic base64(user:password)"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::unauthorized("the Basic credentials are not valid base64 of user:password")
        })?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("Basic credentials must be user:password"))?;
    let change: LoginBody = if body.iter().all(u8::is_ascii_whitespace) {
        LoginBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the login body: {e}")))?
    };
    let login = match state.accounts.login(user, password, change.new_password.as_deref(), client).await {
        Ok(login) => login,
        Err(LoginError::Refused) => {
            tracing::info!("login refused");
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
        Err(e @ LoginError::Busy) => return Err(ApiError::too_many_requests(e.to_string())),
        Err(e @ LoginError::NewPassword(_)) => return Err(ApiError::invalid(e.to_string())),
        Err(LoginError::Store(e)) => return Err(e.into()),
    };
    Ok(Json(json!({
        "users": [{"token": login.token.expose_secret(), "expires_after": onprem_time(login.expires_at)}],
        "meta": meta(),
    })))
}

/// The optional body of `POST /v1/users/login`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    new_password: Option<String>,
}

/// `POST /v1/users/logout`: revokes the bearer token of the request.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    _principal: Principal,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| SecretString::from(t.trim().to_owned()))
        .ok_or_else(|| ApiError::missing("logout revokes the token of the Authorization: Bearer header"))?;
    if !state.accounts.logout(&token).await? {
        return Err(ApiError::invalid(
            "logout ends a login session; an API key is revoked with DELETE /v1/keys/{id}",
        ));
    }
    Ok(Json(json!({"meta": meta()})))
}

/// The body of `POST /v1/keys`.
#[derive(Debug, Deserialize)]
pub struct NewKeyBody {
    /// What the key is for, e.g. the application's name.
    name: Option<String>,
    /// `send`, `events`, `admin`; default `["send", "events"]`.
    scopes: Option<Vec<String>>,
}

/// `POST /v1/keys` (admin): a new API key, shown once.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        NewKeyBody { name: None, scopes: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the body does not parse: {e}")))?
    };
    let names = body.scopes.unwrap_or_else(|| vec!["send".into(), "events".into()]);
    let scopes = parse_scopes(&names.join(",")).map_err(|bad| {
        ApiError::invalid(format!("scopes: unknown scope {bad:?}; use send, events or admin"))
    })?;
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes: at least one of send, events, admin"));
    }
    let name = body.name.unwrap_or_else(|| "api key".into());
    if has_nul(&name) {
        return Err(ApiError::invalid(nul_details("name")));
    }
    let key = state.accounts.create_key(&name, &scopes).await?;
    let scopes: Vec<&str> = scopes.iter().map(|s| scope_name(*s)).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "keys": [{"id": key.id, "key": key.key.expose_secret(), "name": name, "scopes": scopes,
                      "created_at": onprem_time(key.created_at)}],
            "meta": meta(),
        })),
    ))
}

/// `GET /v1/keys` (admin): every key, without secrets.
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let keys: Vec<Value> = state
        .store
        .api_keys()
        .await?
        .into_iter()
        .map(|k| {
            json!({"id": k.id, "name": k.name, "scopes": k.scopes.split(',').collect::<Vec<_>>(),
                   "created_at": onprem_time(k.created_at), "revoked_at": k.revoked_at.map(onprem_time)})
        })
        .collect();
    Ok(Json(json!({"keys": keys, "meta": meta()})))
}

/// `DELETE /v1/keys/{id}` (admin): revokes a key.
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    // No key has an id with a NUL character (ids are made by the gateway), and PostgreSQL could not even
    // look one up: unknown, as any other id no key has.
    if has_nul(&id) || !state.accounts.revoke_key(&id).await? {
        return Err(ApiError::not_found(format!("no live API key with id {id:?}")));
    }
    Ok(Json(json!({"meta": meta()})))
}
