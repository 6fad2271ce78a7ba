//! `GET /v1/events?after=SEQ&phone_number_id=&kind=&contact=&limit=`: a page of the log.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};
use crate::store::EventFilter;

/// The default page size of `GET /v1/events`.
const DEFAULT_LIMIT: u32 = 100;

/// The query of `GET /v1/events` and `GET /v1/events/ws`; values are checked by hand so that a bad one
/// gets a 1009 error naming it.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Only events with a higher seq. Default: 0 for the page API, "from now on" for the WebSocket.
    pub after: Option<String>,
    /// Only events of this business number.
    pub phone_number_id: Option<String>,
    /// Only events of these kinds, comma-separated (`message,status`).
    pub kind: Option<String>,
    /// Only events about this user (`wa_id`).
    pub contact: Option<String>,
    /// Page size (page API only).
    pub limit: Option<String>,
    /// A credential for browsers' WebSockets; read by the authenticator.
    pub access_token: Option<String>,
}

impl EventsQuery {
    /// `after`, checked.
    pub fn after(&self) -> Result<Option<i64>, ApiError> {
        match self.after.as_deref() {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(Some(n)),
                _ => {
                    Err(ApiError::invalid(format!("after must be a sequence number (0 or more), not {v:?}")))
                }
            },
        }
    }

    /// The filter, checked.
    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        let non_empty = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).cloned();
        let kinds: Vec<String> = self
            .kind
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = kinds.iter().find(|k| !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) {
            return Err(ApiError::invalid(format!("kind: {bad:?} is not an event kind")));
        }
        Ok(EventFilter {
            phone_number_id: non_empty(&self.phone_number_id),
            kinds,
            contact: non_empty(&self.contact),
        })
    }

    fn limit(&self, max: u32) -> Result<u32, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(DEFAULT_LIMIT.min(max)),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!("limit must be between 1 and {max}, not {v:?}"))),
            },
        }
    }
}

/// One event as listed by the API and framed on WebSockets (see `docs/events.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// Its position in the log.
    pub seq: i64,
    /// `message`, `status`, `payment`, `error`, `change`…
    pub kind: String,
    /// The change's field, e.g. `messages`.
    pub field: String,
    /// The WhatsApp Business Account.
    pub waba_id: String,
    /// The business number, when the event concerns one.
    pub phone_number_id: Option<String>,
    /// The user (`wa_id`), when the event concerns one.
    pub contact: Option<String>,
    /// The event's `value` object.
    pub payload: serde_json::Value,
    /// When it was committed, Unix epoch milliseconds.
    pub created_at: i64,
}

/// The answer of `GET /v1/events`.
#[derive(Debug, Serialize)]
pub struct EventPage {
    /// The events, in seq order (each a JSON object as in [`WireEvent`]).
    pub events: Vec<Box<RawValue>>,
    /// The `after` of the next page: the last seq of this one, or the request's `after` when empty.
    pub next_after: i64,
    /// The highest seq retention has pruned (0 when none): a reader whose `after` is below it may have
    /// missed events.
    pub pruned_through: i64,
    /// The On-Premises `meta` object.
    pub meta: serde_json::Value,
}

/// `GET /v1/events`.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    principal.require(Scope::Events)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let after = query.after()?.unwrap_or(0);
    let filter = query.filter()?;
    let limit = query.limit(state.config.events.max_page_size.max(1))?;
    let found = state.store.events_after(after, &filter, limit).await?;
    let next_after = found.last().map_or(after, |e| e.seq);
    let events = found
        .into_iter()
        .filter_map(|e| state.hooks.apply(e))
        .filter_map(|e| RawValue::from_string(super::frame_json(&e)).ok())
        .collect();
    let pruned_through = crate::retention::pruned_through(&state.store).await?;
    Ok(Json(EventPage { events, next_after, pruned_through, meta: meta() }))
}
