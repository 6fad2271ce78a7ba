//! The `/v1` routes of sending and access: users (login, logout), API keys, messages, health.
//! Every route but `/v1/health` requires a credential (see `auth.rs` and `accounts.rs`).

pub mod messages;
pub mod users;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::AppState;
use crate::api_error::meta;

/// The routes of this module.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/users/login", post(users::login))
        .route("/v1/users/logout", post(users::logout))
        .route("/v1/keys", post(users::create_key).get(users::list_keys))
        .route("/v1/keys/{id}", delete(users::revoke_key))
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/{id}", get(messages::get).delete(messages::cancel))
}

/// `GET /v1/health` (no credential): `connected` when every configured number has a sender.
async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let status = if state.config.meta.access_token.is_some() && !state.outbound.numbers().is_empty() {
        "connected"
    } else {
        "uninitialized"
    };
    Json(json!({"health": {"gateway_status": status}, "meta": meta()}))
}
