//! The `/v1` routes of sending and access: users (login, logout), API keys, messages, health.
//! Every route but `/v1/health` requires a credential (see `auth.rs` and `accounts.rs`).

pub mod health;
pub mod messages;
pub mod templates;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/health", get(health::health))
        .route("/v1/templates", get(templates::list))
        .route("/v1/users/login", post(users::login))
        .route("/v1/users/logout", post(users::logout))
        .route("/v1/keys", post(users::create_key).get(users::list_keys))
        .route("/v1/keys/{id}", delete(users::revoke_key))
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/{id}", get(messages::get).delete(messages::cancel))
}
