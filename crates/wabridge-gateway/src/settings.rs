//! The On-Premises application settings (`/v1/settings/application`), persisted in the store.
//!
//! What each setting does here:
//! - `sent_status` (bool): live — with it off, `sent` statuses stay in the log and move messages forward
//!   but no application sees them (events, WebSockets, callbacks).
//! - `webhooks.url` (+ `webhooks.max_concurrent_requests`): live — an application callback with id
//!   `application`, On-Premises body shape, signed with a secret generated for it (shown as
//!   `webhooks.secret`); an empty URL removes it.
//! - `callback_backoff_delay_ms`, `max_callback_backoff_delay_ms`, `heartbeat_interval`,
//!   `unhealthy_interval`, `callback_persist`, `garbagecollector_enable`, `db_garbagecollector_enable`
//!   (retention does that work here), `media.auto_download`, `pass_through`,
//!   `notify_user_change_number`, `show_security_notifications`, `webhooks.message.*`: accepted (ranges
//!   checked), stored and returned, but informational — callbacks retry by the `[delivery]` configuration and
//!   always persist their queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

use crate::api_error::ApiError;
use crate::events::{EventHook, HookAction, Hooks};
use crate::store::StoredEvent;

/// The name the settings are stored under.
pub const APPLICATION: &str = "application";
/// The id of the callback that `webhooks.url` creates.
pub const CALLBACK_ID: &str = "application";

/// The defaults (the On-Premises API's), with `sent_status` from the configuration.
#[must_use]
pub fn defaults(sent_status: bool) -> Value {
    json!({
        "callback_backoff_delay_ms": 3000,
        "callback_persist": true,
        "db_garbagecollector_enable": true,
        "garbagecollector_enable": true,
        "heartbeat_interval": 5,
        "max_callback_backoff_delay_ms": 900_000,
        // What the gateway does: inbound media of every kind is fetched at once.
        "media": {"auto_download": ["image", "video", "voice", "sticker", "audio", "document"]},
        "notify_user_change_number": true,
        "pass_through": false,
        "sent_status": sent_status,
        "show_security_notifications": true,
        "unhealthy_interval": 30,
        "webhooks": {"url": "", "max_concurrent_requests": 6,
                     "message": {"sent": true, "delivered": true, "read": true}},
    })
}

/// A stored document over the [`defaults`]: what it holds wins, member by member in objects, and a setting
/// it lacks comes from the defaults. A document stored by an earlier version lacks the settings added since,
/// which could then be neither read nor changed.
#[must_use]
pub fn over_defaults(stored: Value, sent_status: bool) -> Value {
    fn overlay(base: &mut Value, top: Value) {
        match (base, top) {
            (Value::Object(base), Value::Object(top)) => {
                for (key, value) in top {
                    match base.get_mut(&key) {
                        Some(slot) => overlay(slot, value),
                        None => {
                            base.insert(key, value);
                        }
                    }
                }
            }
            (slot, top) => *slot = top,
        }
    }
    let mut doc = defaults(sent_status);
    overlay(&mut doc, stored);
    doc
}

/// Merges `patch` into `current` (objects member by member), checking every member's name and range.
///
/// # Errors
/// 1009 naming the first member that is unknown or out of range.
pub fn merge(current: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else { return Err(ApiError::invalid("the body must be a JSON object")) };
    merge_object(current, patch, "")
}

/// The generated secret of `webhooks.url`'s callback: answered by GET, so a document read and sent back
/// holds it; taken when unchanged, refused when it differs (the gateway makes it, nobody sets it).
const SECRET: &str = "webhooks.secret";

fn merge_object(current: &mut Value, patch: &Map<String, Value>, prefix: &str) -> Result<(), ApiError> {
    for (key, value) in patch {
        let path = format!("{prefix}{key}");
        let slot = current.get_mut(key);
        if path == SECRET {
            if slot.is_some_and(|s| s == value) {
                continue;
            }
            return Err(ApiError::invalid(format!(
                "{path}: made by the gateway for webhooks.url and not settable; leave it out or send the \
                 current one back"
            )));
        }
        let Some(slot) = slot else {
            return Err(ApiError::invalid(format!("{path}: not an application setting")));
        };
        match (&mut *slot, value) {
            (Value::Object(_), Value::Object(inner)) => merge_object(slot, inner, &format!("{path}."))?,
            (Value::Object(_), _) => return Err(ApiError::invalid(format!("{path}: must be an object"))),
            _ => {
                check(&path, value)?;
                *slot = value.clone();
            }
        }
    }
    Ok(())
}

fn check(path: &str, value: &Value) -> Result<(), ApiError> {
    let range = |lo: u64, hi: u64| {
        value
            .as_u64()
            .filter(|v| (lo..=hi).contains(v))
            .map(|_| ())
            .ok_or_else(|| ApiError::invalid(format!("{path}: a whole number between {lo} and {hi}")))
    };
    match path {
        "callback_backoff_delay_ms" => range(3000, 15_000),
        "max_callback_backoff_delay_ms" => range(600_000, 3_600_000),
        "heartbeat_interval" | "unhealthy_interval" => range(1, 3600),
        "webhooks.max_concurrent_requests" => match value.as_u64() {
            Some(6 | 12 | 18 | 24) => Ok(()),
            _ => Err(ApiError::invalid(format!("{path}: 6, 12, 18 or 24"))),
        },
        "webhooks.url" => {
            let url = value.as_str().ok_or_else(|| ApiError::invalid(format!("{path}: a string")))?;
            if url.is_empty()
                || reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            {
                Ok(())
            } else {
                Err(ApiError::invalid(format!("{path}: an http or https URL (or \"\" to remove it)")))
            }
        }
        "media.auto_download" => match value.as_array() {
            Some(kinds) if kinds.iter().all(Value::is_string) => Ok(()),
            _ => Err(ApiError::invalid(format!("{path}: a list of media types"))),
        },
        _ if value.is_boolean() => Ok(()),
        _ => Err(ApiError::invalid(format!("{path}: true or false"))),
    }
}

/// The live `sent_status` switch.
#[derive(Debug, Clone)]
pub struct SentStatus(Arc<AtomicBool>);

impl SentStatus {
    /// A switch set to `on`.
    #[must_use]
    pub fn new(on: bool) -> Self {
        Self(Arc::new(AtomicBool::new(on)))
    }

    /// Turns `sent` statuses on or off for applications.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Wraps `hooks`: `sent` statuses are suppressed while the switch is off.
    #[must_use]
    pub fn hooks(&self, hooks: Hooks) -> Hooks {
        Hooks::new(Some(Arc::new(SentStatusHook { on: self.0.clone(), inner: hooks })))
    }
}

struct SentStatusHook {
    on: Arc<AtomicBool>,
    inner: Hooks,
}

impl EventHook for SentStatusHook {
    fn on_event(&self, event: &mut StoredEvent) -> HookAction {
        if !self.on.load(Ordering::Relaxed)
            && event.kind == "status"
            && serde_json::from_str::<Value>(&event.payload).is_ok_and(|p| {
                let status = p.get("status").or_else(|| p.pointer("/statuses/0/status"));
                status.and_then(Value::as_str) == Some("sent")
            })
        {
            return HookAction::Suppress;
        }
        match self.inner.apply(event.clone()) {
            Some(e) => {
                *event = e;
                HookAction::Deliver
            }
            None => HookAction::Suppress,
        }
    }
}

/// How often an instance reads the stored settings again (another instance's API may have changed them).
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Applies the stored `sent_status`, or `default` (the configuration's) when none is stored (reset): at
/// start, and every [`REFRESH_INTERVAL`] after (the `application` callback is in the callbacks' own table).
///
/// # Errors
/// When the store cannot be read.
pub async fn refresh(
    store: &crate::store::Store,
    sent_status: &SentStatus,
    default: bool,
) -> Result<(), crate::store::StoreError> {
    let stored = store
        .api_setting(APPLICATION)
        .await?
        .and_then(|doc| serde_json::from_str::<Value>(&doc).ok())
        .and_then(|d| d.get("sent_status")?.as_bool());
    sent_status.set(stored.unwrap_or(default));
    Ok(())
}

/// With several instances on one database, a setting changed through one instance's API reaches the others
/// within [`REFRESH_INTERVAL`] (one small read each time).
pub fn spawn_refresh(
    store: crate::store::Store,
    sent_status: SentStatus,
    default: bool,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(e) = refresh(&store, &sent_status, default).await {
                tracing::debug!(error = %e, "settings could not be read again");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret() -> Value {
        let mut doc = defaults(true);
        doc["webhooks"]["url"] = json!("https://app.example.com/hook");
        doc["webhooks"]["secret"] = json!("generated");
        doc
    }

    /// A document read with GET (it shows the generated secret) can be sent back; a different secret cannot
    /// be set.
    #[test]
    fn the_current_secret_is_taken_back_and_no_other() {
        let mut doc = with_secret();
        let read = doc.clone();
        merge(&mut doc, &read).unwrap();
        assert_eq!(doc, read);
        let other = json!({"webhooks": {"secret": "mine"}});
        assert_eq!(merge(&mut doc, &other).unwrap_err().code, 1009);
        assert_eq!(doc["webhooks"]["secret"], "generated");
        // Without a URL there is no secret to send back.
        let mut plain = defaults(true);
        assert_eq!(merge(&mut plain, &json!({"webhooks": {"secret": "generated"}})).unwrap_err().code, 1009);
    }
}
