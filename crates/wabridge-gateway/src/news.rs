//! What new webhook events tell the rest of the gateway: inbound messages (counted against their number's
//! level, opening the contact's window in the sending scheduler), throughput upgrades (the numbers of the
//! WABA read their level again) and template status changes (the template cache).
//!
//! How the news travels depends on the store:
//! - SQLite: one instance owns the database, so the instance that received the webhook is the one sending
//!   for its numbers; the intake tells it directly, right after the commit ([`News::of_item`]).
//! - PostgreSQL: several instances may share the database, and the one that received a webhook (whichever
//!   the load balancer picked) is often not the one holding the number's sending lease. So no instance acts
//!   on what it received itself; every instance follows the event log instead ([`follow`]) and takes the news
//!   of every event committed by any instance, its own included, within [`POLL`] of the commit. The scheduler
//!   of a number this instance does not send for drops what it does not need. The follower cannot tell the
//!   events of bodies read again (`POST /v1/webhooks/reprocess`) from new ones, which the intake keeps
//!   quiet on SQLite: on PostgreSQL their inbound messages younger than 24 hours count and open windows
//!   (their windows are still open), and an old template status sets the cache back only until the read of
//!   Meta's templates it schedules (a couple of seconds).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::store::{EventFilter, IntakeBatchItem, Store, StoreError, StoredEvent};

/// How often the log is read for news on PostgreSQL (one read of the log's end when nothing is new; the
/// events after the position, by primary-key range, otherwise).
pub const POLL: Duration = Duration::from_millis(100);
/// Events read per query.
const PAGE: u32 = 1000;
/// An inbound message older than this (by Meta's timestamp) tells nothing when it is found in the log: its
/// 24-hour window is closed and it no longer counts against a level. (Bodies read again by
/// `POST /v1/webhooks/reprocess` add old messages to the log.)
const WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether the intake leaves the news to [`follow`] (PostgreSQL) instead of telling it itself (SQLite).
#[must_use]
pub fn follows_log(store: &Store) -> bool {
    store.backend_name() == "postgres"
}

/// The news of some events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct News {
    /// (business number, contact) of each inbound message.
    pub inbound: Vec<(String, String)>,
    /// WABAs whose throughput was upgraded.
    pub upgraded_wabas: Vec<String>,
    /// (WABA, payload) of each template status change.
    pub template_updates: Vec<(String, String)>,
}

fn is_upgrade(field: &str, payload: &str) -> bool {
    field == "phone_number_quality_update" && payload.contains("THROUGHPUT_UPGRADE")
}

const TEMPLATE_STATUS: &str = "message_template_status_update";

impl News {
    /// The news of a webhook the intake has just committed (its new events).
    #[must_use]
    pub fn of_item(item: &IntakeBatchItem) -> Self {
        Self {
            inbound: item.inbound.iter().map(|t| (t.phone_number_id.clone(), t.wa_id.clone())).collect(),
            upgraded_wabas: item
                .events
                .iter()
                .filter(|e| is_upgrade(&e.field, &e.payload))
                .map(|e| e.waba_id.clone())
                .collect(),
            template_updates: item
                .events
                .iter()
                .filter(|e| e.field == TEMPLATE_STATUS)
                .map(|e| (e.waba_id.clone(), e.payload.clone()))
                .collect(),
        }
    }

    /// The news of events read from the log; inbound messages older than the window at `now` are left out.
    #[must_use]
    pub fn of_stored(events: &[StoredEvent], now: SystemTime) -> Self {
        let mut news = Self::default();
        for e in events {
            match e.kind.as_str() {
                "message" => {
                    if let (Some(number), Some(contact)) = (&e.phone_number_id, &e.contact)
                        && recent(&e.payload, now)
                    {
                        news.inbound.push((number.clone(), contact.clone()));
                    }
                }
                _ if is_upgrade(&e.field, &e.payload) => news.upgraded_wabas.push(e.waba_id.clone()),
                _ if e.field == TEMPLATE_STATUS => {
                    news.template_updates.push((e.waba_id.clone(), e.payload.clone()));
                }
                _ => {}
            }
        }
        news
    }

    /// Tells the sending schedulers and the template cache.
    pub fn tell(self, state: &AppState) {
        for (number, contact) in self.inbound {
            state.outbound.inbound(&number, vec![contact]);
        }
        for waba in self.upgraded_wabas {
            state.outbound.throughput_upgrade(&waba);
        }
        crate::templates::apply_webhook_updates(&state.templates, self.template_updates);
    }
}

/// Whether an inbound message event (its payload the webhook `value` cut down to the message) was sent
/// within the window before `now`. A payload without a readable timestamp counts as recent.
fn recent(payload: &str, now: SystemTime) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(payload) else { return true };
    let Some(ts) = value.pointer("/messages/0/timestamp").and_then(|t| match t {
        Value::String(s) => s.parse::<u64>().ok(),
        other => other.as_u64(),
    }) else {
        return true;
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    now.saturating_sub(ts) <= WINDOW.as_secs()
}

/// Follows the event log from its current end and tells `state` the news of every new event, until
/// `shutdown`. Reads the end before returning, so nothing committed after this call is missed.
///
/// # Errors
/// When the log's end cannot be read.
pub async fn follow(state: Arc<AppState>, shutdown: CancellationToken) -> Result<JoinHandle<()>, StoreError> {
    let mut last = state.store.max_seq().await?;
    let filter =
        EventFilter { kinds: vec!["message".to_owned(), "change".to_owned()], ..EventFilter::default() };
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            loop {
                // The log's end before the read: every event up to it is committed (seqs are taken under the
                // event-log lock and committed while it is held), so a short page moves the position there
                // even when none of the events were news — the next read starts past the statuses in between
                // instead of scanning them again.
                let head = match state.store.max_seq().await {
                    Ok(head) => head,
                    Err(e) => {
                        tracing::warn!(error = %e, "the event log could not be read for news; retrying");
                        break;
                    }
                };
                if head <= last {
                    break;
                }
                let found = match state.store.events_after(last, &filter, PAGE).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, "the event log could not be read for news; retrying");
                        break;
                    }
                };
                let full = found.len() >= PAGE as usize;
                if let Some(newest) = found.last().map(|e| e.seq) {
                    last = newest;
                    News::of_stored(&found, SystemTime::now()).tell(&state);
                }
                if !full {
                    // Everything up to `head` that is news has been read.
                    last = last.max(head);
                    break;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, field: &str, payload: &str) -> StoredEvent {
        StoredEvent {
            seq: 1,
            dedupe_key: "k".into(),
            kind: kind.into(),
            field: field.into(),
            waba_id: "waba".into(),
            phone_number_id: Some("number".into()),
            contact: Some("16505551234".into()),
            payload: payload.into(),
            raw_id: 1,
            created_at: SystemTime::now(),
        }
    }

    #[test]
    fn stored_events_tell_what_the_intake_would() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let fresh = r#"{"messages":[{"from":"16505551234","timestamp":"1749999990","type":"text"}]}"#;
        let stale = r#"{"messages":[{"from":"16505551234","timestamp":"1749900000","type":"text"}]}"#;
        let events = vec![
            event("message", "messages", fresh),
            event("message", "messages", stale),
            event("status", "messages", r#"{"statuses":[{"status":"read"}]}"#),
            event("change", "phone_number_quality_update", r#"{"event":"THROUGHPUT_UPGRADE"}"#),
            event("change", "phone_number_quality_update", r#"{"event":"FLAGGED"}"#),
            event("change", TEMPLATE_STATUS, r#"{"event":"PAUSED","message_template_name":"t"}"#),
        ];
        let news = News::of_stored(&events, now);
        assert_eq!(news.inbound, vec![("number".to_owned(), "16505551234".to_owned())]);
        assert_eq!(news.upgraded_wabas, vec!["waba".to_owned()]);
        assert_eq!(news.template_updates.len(), 1);
        assert!(news.template_updates[0].1.contains("PAUSED"));
    }

    #[test]
    fn messages_without_a_readable_time_count_as_recent() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        assert!(recent(r#"{"messages":[{"type":"text"}]}"#, now));
        assert!(recent("not json", now));
        assert!(recent(r#"{"messages":[{"timestamp":1749999999}]}"#, now));
        assert!(!recent(r#"{"messages":[{"timestamp":"1000"}]}"#, now));
    }
}
