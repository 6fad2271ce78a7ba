//! The `/v1` routes of sending and access: users (login, logout), API keys, messages, health.
//! Every route but `/v1/health` requires a credential (see `auth.rs` and `accounts.rs`).

pub mod contacts;
pub mod health;
pub mod messages;
pub mod receipts;
pub mod registry;
pub mod settings;
pub mod templates;
pub mod users;
pub mod webhooks;

use registry::{Access, Body, Route, Verb};

use crate::auth::Scope;

/// Whether `text` holds the NUL character (U+0000), which the API refuses in anything the gateway stores or
/// looks up by: PostgreSQL's `text` cannot hold it, so the statement holding such a value fails, and with it
/// every other request sharing that statement (a group commit). Refused on SQLite too, so both backends
/// answer a request alike.
#[must_use]
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The routes of this module (see [`registry`]).
pub fn routes() -> Vec<Route> {
    use Access::{Basic, Bearer, Public};
    use Verb::{Delete, Get, Patch, Post, Put};
    vec![
        Route::new(Get, "/v1/health", "Gateway status and alerts", Public, Body::None, health::health),
        Route::new(
            Get,
            "/v1/openapi.json",
            "This API's OpenAPI document",
            Public,
            Body::None,
            registry::document,
        ),
        Route::new(
            Post,
            "/v1/users/login",
            "Log in (Basic auth) for a 7-day token",
            Basic,
            Body::None,
            users::login,
        ),
        Route::new(
            Post,
            "/v1/users/logout",
            "Revoke the login token",
            Bearer(Scope::Admin),
            Body::None,
            users::logout,
        ),
        Route::new(
            Post,
            "/v1/keys",
            "Create an API key",
            Bearer(Scope::Admin),
            Body::Json,
            users::create_key,
        )
        .created(),
        Route::new(Get, "/v1/keys", "List API keys", Bearer(Scope::Admin), Body::None, users::list_keys),
        Route::new(
            Delete,
            "/v1/keys/{id}",
            "Revoke an API key",
            Bearer(Scope::Admin),
            Body::None,
            users::revoke_key,
        ),
        Route::new(Post, "/v1/messages", "Queue a message", Bearer(Scope::Send), Body::Json, messages::send)
            .created(),
        Route::new(
            Get,
            "/v1/messages/{id}",
            "A message's state and statuses",
            Bearer(Scope::Send),
            Body::None,
            messages::get,
        ),
        Route::new(
            Delete,
            "/v1/messages/{id}",
            "Cancel a queued message",
            Bearer(Scope::Send),
            Body::None,
            messages::cancel,
        ),
        Route::new(
            Post,
            "/v1/media",
            "Upload media (raw bytes + Content-Type)",
            Bearer(Scope::Send),
            Body::Binary,
            crate::media::api::upload,
        )
        .created(),
        Route::new(
            Get,
            "/v1/media/{id}",
            "Download media (cached)",
            Bearer(Scope::Send),
            Body::None,
            crate::media::api::download,
        ),
        Route::new(
            Delete,
            "/v1/media/{id}",
            "Delete media",
            Bearer(Scope::Send),
            Body::None,
            crate::media::api::delete,
        ),
        Route::new(
            Put,
            "/v1/messages/{id}",
            "Mark a received message as read",
            Bearer(Scope::Send),
            Body::Json,
            receipts::mark_read,
        ),
        Route::new(
            Get,
            "/v1/templates",
            "The template cache",
            Bearer(Scope::Send),
            Body::None,
            templates::list,
        ),
        Route::new(
            Post,
            "/v1/contacts",
            "Check and normalize numbers",
            Bearer(Scope::Send),
            Body::Json,
            contacts::check,
        ),
        Route::new(
            Post,
            "/v1/account",
            "Register a number (Cloud register)",
            Bearer(Scope::Admin),
            Body::Json,
            contacts::register,
        )
        .created(),
        Route::new(
            Get,
            "/v1/settings/application",
            "Application settings",
            Bearer(Scope::Admin),
            Body::None,
            settings::get_application,
        ),
        Route::new(
            Patch,
            "/v1/settings/application",
            "Change application settings",
            Bearer(Scope::Admin),
            Body::Json,
            settings::patch_application,
        ),
        Route::new(
            Delete,
            "/v1/settings/application",
            "Reset application settings",
            Bearer(Scope::Admin),
            Body::None,
            settings::delete_application,
        ),
        Route::new(
            Get,
            "/v1/settings/business/profile",
            "The business profile (Cloud API)",
            Bearer(Scope::Admin),
            Body::None,
            settings::get_profile,
        ),
        Route::new(
            Post,
            "/v1/settings/business/profile",
            "Update the business profile (Cloud API)",
            Bearer(Scope::Admin),
            Body::Json,
            settings::set_profile,
        ),
        Route::new(
            Get,
            "/v1/settings/profile/about",
            "The profile's about text (Cloud API business profile)",
            Bearer(Scope::Admin),
            Body::None,
            settings::get_about,
        ),
        Route::new(
            Patch,
            "/v1/settings/profile/about",
            "Set the profile's about text",
            Bearer(Scope::Admin),
            Body::Json,
            settings::set_about,
        ),
        Route::new(
            Post,
            "/v1/webhooks/reprocess",
            "Read rejected webhooks again and store those now understood",
            Bearer(Scope::Admin),
            Body::None,
            webhooks::reprocess,
        ),
    ]
}
