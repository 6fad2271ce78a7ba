//! The event log's readers: `GET /v1/events`, the feed that fans new events out to WebSocket subscribers,
//! and the hook an embedding program uses to inspect, modify or suppress events before anyone sees them.
//!
//! Every path out of the log — the feed (live), a subscriber catching up from the store, the page API and
//! the callback dispatcher — passes each event through the same [`Hooks::apply`], so every consumer sees
//! the same thing.

mod api;
mod feed;
mod subscription;
mod ws;

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

pub use api::{EventPage, EventsQuery, WireEvent};
pub use feed::{EventFeed, FeedBatch};
pub use subscription::{Subscription, SubscriptionError};

use crate::store::{EventFilter, StoredEvent};

/// What a hook decided about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    /// Hand the (possibly modified) event to the consumers.
    Deliver,
    /// Nobody sees this event (it stays in the log).
    Suppress,
}

/// A hook for programs embedding the gateway: called for every event before fan-out, on every path (live
/// and catch-up, WebSocket, `/v1/events` and callbacks). It may modify the event in place (its `seq` is
/// restored afterwards: the position in the log is not the hook's to change). It must be quick and must not
/// block: it runs on the paths that read the log. A hook that panics is caught: the event is delivered as it
/// stands (so a bug in a hook loses nothing and stops no path) and the panic is logged as an error.
pub trait EventHook: Send + Sync + 'static {
    /// Inspects (and may modify) `event`; says whether consumers see it.
    fn on_event(&self, event: &mut StoredEvent) -> HookAction;
}

/// The installed hook, if any.
#[derive(Clone, Default)]
pub struct Hooks(Option<Arc<dyn EventHook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Hooks(installed)" } else { "Hooks(none)" })
    }
}

impl Hooks {
    /// Hooks running `hook`.
    #[must_use]
    pub fn new(hook: Option<Arc<dyn EventHook>>) -> Self {
        Self(hook)
    }

    /// The event as consumers see it, or `None` when the hook suppresses it.
    #[must_use]
    pub fn apply(&self, mut event: StoredEvent) -> Option<StoredEvent> {
        let Some(hook) = &self.0 else { return Some(event) };
        let seq = event.seq;
        let action = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook.on_event(&mut event)))
            .unwrap_or_else(|_| {
                tracing::error!(seq, "an event hook panicked; the event is delivered as it stands");
                HookAction::Deliver
            });
        event.seq = seq;
        (action == HookAction::Deliver).then_some(event)
    }
}

/// An event ready for subscribers: its routing fields and its JSON frame, serialized once for all of them.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Its position in the log.
    pub seq: i64,
    /// Its kind (for filters).
    pub kind: String,
    /// Its business number (for filters).
    pub phone_number_id: Option<String>,
    /// Its contact (for filters).
    pub contact: Option<String>,
    /// The text frame subscribers receive (see `docs/events.md`).
    pub frame: Utf8Bytes,
}

impl FeedEvent {
    /// The frame of `event` (already through the hook).
    #[must_use]
    pub fn new(event: &StoredEvent) -> Self {
        Self {
            seq: event.seq,
            kind: event.kind.clone(),
            phone_number_id: event.phone_number_id.clone(),
            contact: event.contact.clone(),
            frame: Utf8Bytes::from(frame_json(event)),
        }
    }

    /// Whether `filter` lets it through.
    #[must_use]
    pub fn matches(&self, filter: &EventFilter) -> bool {
        filter.phone_number_id.as_ref().is_none_or(|p| self.phone_number_id.as_ref() == Some(p))
            && filter.contact.as_ref().is_none_or(|c| self.contact.as_ref() == Some(c))
            && (filter.kinds.is_empty() || filter.kinds.contains(&self.kind))
    }
}

/// The JSON of an event, as framed on WebSockets and listed by `/v1/events`.
#[derive(Debug, Serialize)]
struct Frame<'a> {
    seq: i64,
    kind: &'a str,
    field: &'a str,
    waba_id: &'a str,
    phone_number_id: Option<&'a str>,
    contact: Option<&'a str>,
    payload: &'a RawValue,
    created_at: i64,
}

/// The payload as raw JSON; a hook that left invalid JSON gets it sent as a JSON string.
fn payload_json(payload: &str) -> Box<RawValue> {
    RawValue::from_string(payload.to_owned()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(payload).unwrap_or_else(|_| "null".to_owned());
        RawValue::from_string(quoted).unwrap_or_else(|_| unreachable!("a JSON string is valid JSON"))
    })
}

/// The frame text of one event.
#[must_use]
pub fn frame_json(event: &StoredEvent) -> String {
    let payload = payload_json(&event.payload);
    let frame = Frame {
        seq: event.seq,
        kind: &event.kind,
        field: &event.field,
        waba_id: &event.waba_id,
        phone_number_id: event.phone_number_id.as_deref(),
        contact: event.contact.as_deref(),
        payload: &payload,
        created_at: crate::store::to_millis(event.created_at),
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

/// The routes of the event log: `GET /v1/events` and `GET /v1/events/ws`.
pub fn routes() -> Vec<crate::api::registry::Route> {
    use crate::api::registry::{Access, Body, Route, Verb};
    let events = Access::Bearer(crate::auth::Scope::Events);
    vec![
        Route::new(
            Verb::Get,
            "/v1/events",
            "Read the event log after a cursor",
            events,
            Body::None,
            api::list,
        ),
        Route::new(
            Verb::Get,
            "/v1/events/ws",
            "Subscribe to the event log (WebSocket)",
            events,
            Body::None,
            ws::upgrade,
        ),
    ]
}

#[cfg(test)]
mod hook_tests {
    use super::*;

    struct Panicking;

    impl EventHook for Panicking {
        fn on_event(&self, event: &mut StoredEvent) -> HookAction {
            assert!(event.contact.as_deref() != Some("boom"), "a bug in an embedder's hook");
            HookAction::Suppress
        }
    }

    fn event(contact: &str) -> StoredEvent {
        StoredEvent {
            seq: 7,
            dedupe_key: "k".into(),
            kind: "message".into(),
            field: "messages".into(),
            waba_id: "w".into(),
            phone_number_id: None,
            contact: Some(contact.into()),
            payload: "{}".into(),
            raw_id: 1,
            created_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_panicking_hook_delivers_the_event_and_stops_nothing() {
        let hooks = Hooks::new(Some(Arc::new(Panicking)));
        let delivered = hooks.apply(event("boom")).expect("delivered as it stands");
        assert_eq!((delivered.seq, delivered.contact.as_deref()), (7, Some("boom")));
        // The hook keeps working for the next event.
        assert!(hooks.apply(event("calm")).is_none());
    }
}
