//! Webhooks as Meta delivers them: events (inbound messages, statuses, other fields) go to every
//! callback URL, batched into envelopes, signed with `X-Hub-Signature-256`, retried with exponential
//! backoff while the receiver fails, up to a maximum age.
//!
//! Each callback URL has its own queue and worker task ([`delivery`]), so a slow or failing receiver
//! never holds up another, and nothing of this runs on the request path.

mod delivery;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wabridge_types::webhook::{
    Change, ChangeValue, Contact, Entry, Envelope, InboundMessage, MessagesValue, Status,
};

use crate::chaos::{chance, lock, purpose};
use crate::error::SandboxError;
use crate::state::{Shared, unix_now};

/// One event to deliver.
#[derive(Debug)]
pub(crate) struct Event {
    /// Identifies the event for chaos decisions (a hash of its wamid and status, …).
    pub key: u64,
    pub body: EventBody,
}

/// What an event carries. Events live behind an `Arc` once emitted, so the variants' sizes matter little.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum EventBody {
    /// An inbound message to a business number, with its sender for `contacts`.
    Message { number: usize, contact: Contact, message: InboundMessage },
    /// A status of an outbound message of a business number, with its recipient for `contacts` (current
    /// shape only).
    Status { number: usize, contact: Option<Contact>, status: Status },
    /// A change of another field (template status, phone number quality, …).
    Change(ChangeValue),
}

impl Event {
    pub(crate) fn new(key: u64, body: EventBody) -> Self {
        Self { key, body }
    }
}

/// An event waiting in a target's queue.
#[derive(Debug, Clone)]
struct Pending {
    event: Arc<Event>,
    /// When it was produced (sandbox clock, ns): its age decides when it is given up.
    created: u64,
}

/// A callback URL and its queue.
#[derive(Debug)]
pub(crate) struct Target {
    pub url: String,
    queue: Mutex<VecDeque<Pending>>,
    notify: Notify,
    /// Consecutive failed POSTs.
    failures: AtomicU32,
    /// No POST before this time (sandbox clock, ns).
    backoff_until: AtomicU64,
    /// Events taken from the queue whose POST (and chaos duplicate) has not finished: still pending.
    in_flight: AtomicUsize,
    cancel: CancellationToken,
}

/// The callback URLs and their queues.
#[derive(Debug, Default)]
pub(crate) struct WebhookHub {
    targets: RwLock<Vec<Arc<Target>>>,
}

impl WebhookHub {
    /// Adds a callback URL and starts its worker; `false` if it was there already.
    pub(crate) fn add_target(&self, shared: &Arc<Shared>, url: &str) -> bool {
        let Ok(mut targets) = self.targets.write() else { return false };
        if targets.iter().any(|t| t.url == url) {
            return false;
        }
        let target = Arc::new(Target {
            url: url.to_owned(),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            failures: AtomicU32::new(0),
            backoff_until: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            cancel: shared.cancel.child_token(),
        });
        targets.push(target.clone());
        delivery::spawn_worker(shared.clone(), target);
        true
    }

    /// Removes a callback URL (its pending events are dropped); `false` if it was not there.
    pub(crate) fn remove_target(&self, url: &str) -> bool {
        let Ok(mut targets) = self.targets.write() else { return false };
        let before = targets.len();
        targets.retain(|t| {
            let keep = t.url != url;
            if !keep {
                t.cancel.cancel();
            }
            keep
        });
        targets.len() != before
    }

    /// The callback URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.targets.read().map(|t| t.iter().map(|t| t.url.clone()).collect()).unwrap_or_default()
    }

    /// Whether events are delivered at all: a callback URL exists and the app is subscribed.
    pub(crate) fn delivers(&self) -> bool {
        self.targets.read().is_ok_and(|t| !t.is_empty())
    }

    /// Events not yet delivered, over all targets: queued, or being posted (a chaos duplicate included).
    pub(crate) fn pending(&self) -> usize {
        self.targets
            .read()
            .map(|t| t.iter().map(|t| lock(&t.queue).len() + t.in_flight.load(Ordering::Acquire)).sum())
            .unwrap_or(0)
    }

    /// Drops every pending event.
    pub(crate) fn clear(&self) {
        if let Ok(targets) = self.targets.read() {
            for t in targets.iter() {
                lock(&t.queue).clear();
                t.failures.store(0, Ordering::Relaxed);
                t.backoff_until.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Queues an event for every callback URL (held back first when chaos reorders it).
    pub(crate) fn emit(&self, shared: &Shared, event: Event) {
        if !shared.subscribed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(targets) = self.targets.read() else { return };
        if targets.is_empty() {
            return;
        }
        let targets: Vec<Arc<Target>> = targets.iter().cloned().collect();
        let event = Arc::new(event);
        if let Some((_, reorder, delay, seed)) = shared.chaos.webhook_settings()
            && chance(seed, purpose::REORDER, event.key, reorder)
        {
            let clock = shared.clock;
            let max_pending = shared.config.webhooks.max_pending;
            let cancel = shared.cancel.clone();
            shared.tasks.spawn(async move {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                let created = clock.now_ns();
                for t in &targets {
                    t.push(Pending { event: event.clone(), created }, max_pending);
                }
            });
            return;
        }
        let created = shared.clock.now_ns();
        let max_pending = shared.config.webhooks.max_pending;
        for t in &targets {
            if t.push(Pending { event: event.clone(), created }, max_pending) {
                shared.counters.webhook_events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Target {
    /// Queues an event; returns whether an old one had to be dropped to make room.
    fn push(&self, pending: Pending, max_pending: usize) -> bool {
        let mut queue = lock(&self.queue);
        let dropped = queue.len() >= max_pending.max(1);
        if dropped {
            queue.pop_front();
        }
        queue.push_back(pending);
        drop(queue);
        self.notify.notify_one();
        dropped
    }
}

/// What the `value` of a `messages` change holds: Meta's payloads carry inbound messages, or statuses
/// (or errors), never several of them in one value (`cloud-api.md` §3, `meta-examples/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// `messages[]` with their senders in `contacts[]`.
    Messages,
    /// `statuses[]` with their recipients in `contacts[]`.
    Statuses,
}

/// Where a change of the envelope comes from, in first-seen order.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The `messages` value at this index.
    Value(usize),
    /// The other change at this index.
    Other(usize),
}

/// Builds the envelope of a batch: one entry for the WABA; the events of each business number grouped
/// into one `messages` change per kind (inbound messages, statuses), other fields one change each; the
/// changes in the order their first event came.
fn envelope(shared: &Shared, events: &[Arc<Event>]) -> Envelope {
    let mut values: Vec<(usize, ValueKind, MessagesValue)> = Vec::new();
    let mut others: Vec<Change> = Vec::new();
    let mut order: Vec<Slot> = Vec::new();
    for event in events {
        match &event.body {
            EventBody::Message { number, contact, message } => {
                let value = value_for(shared, &mut values, &mut order, *number, ValueKind::Messages);
                add_contact(value, contact);
                value.messages.get_or_insert_with(Vec::new).push(message.clone());
            }
            EventBody::Status { number, contact, status } => {
                let value = value_for(shared, &mut values, &mut order, *number, ValueKind::Statuses);
                if let Some(contact) = contact {
                    add_contact(value, contact);
                }
                value.statuses.get_or_insert_with(Vec::new).push(status.clone());
            }
            EventBody::Change(value) => {
                others.push(Change::new(value.clone()));
                order.push(Slot::Other(others.len() - 1));
            }
        }
    }
    let mut values: Vec<Option<MessagesValue>> = values.into_iter().map(|(_, _, v)| Some(v)).collect();
    let mut others: Vec<Option<Change>> = others.into_iter().map(Some).collect();
    let all: Vec<Change> = order
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Value(i) => values[i].take().map(|v| Change::new(ChangeValue::Messages(v))),
            Slot::Other(i) => others[i].take(),
        })
        .collect();
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    Envelope::new(vec![Entry::new(shared.config.waba_id.as_str(), all).with_time(now)])
}

/// The `messages` value of `number` for `kind` in this envelope, made (and placed after the changes
/// seen so far) when it is the first of its kind.
fn value_for<'v>(
    shared: &Shared,
    values: &'v mut Vec<(usize, ValueKind, MessagesValue)>,
    order: &mut Vec<Slot>,
    number: usize,
    kind: ValueKind,
) -> &'v mut MessagesValue {
    let i = match values.iter().position(|(n, k, _)| *n == number && *k == kind) {
        Some(i) => i,
        None => {
            values.push((number, kind, MessagesValue::new(shared.numbers[number].metadata.clone())));
            order.push(Slot::Value(values.len() - 1));
            values.len() - 1
        }
    };
    &mut values[i].2
}

/// Adds a user to a value's `contacts`, once.
fn add_contact(value: &mut MessagesValue, contact: &Contact) {
    let contacts = value.contacts.get_or_insert_with(Vec::new);
    if !contacts.iter().any(|c| c.wa_id == contact.wa_id && c.user_id == contact.user_id) {
        contacts.push(contact.clone());
    }
}

/// Performs Meta's GET verification handshake against a callback URL: the receiver must answer 200
/// with the challenge as the body.
pub(crate) async fn verify_callback(
    shared: &Shared,
    url: &str,
    verify_token: &str,
) -> Result<(), SandboxError> {
    let challenge = shared.ids.numeric();
    let failed = |reason: String| SandboxError::Verification { url: url.to_owned(), reason };
    let response = shared
        .http
        .get(url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", verify_token),
        ])
        .send()
        .await
        .map_err(|e| failed(format!("request failed: {e}")))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| failed(format!("reading the answer: {e}")))?;
    if !status.is_success() {
        return Err(failed(format!("answered HTTP {status}")));
    }
    if body.trim() != challenge {
        return Err(failed("the answer is not the challenge".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use wabridge_types::webhook::{Scalar, StatusKind};

    use super::*;
    use crate::SandboxConfig;
    use crate::state::SandboxState;

    /// A change as (phone number id or field, message ids, status ids, contacts' wa_ids).
    type Summary<'a> = (String, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);

    fn inbound(number: usize, from: &str, id: &str) -> Arc<Event> {
        let message: InboundMessage = serde_json::from_value(serde_json::json!({
            "from": from, "id": id, "timestamp": "1750000000", "type": "text", "text": {"body": "hi"}
        }))
        .unwrap();
        let contact = Contact::new(from, "Ana");
        Arc::new(Event::new(0, EventBody::Message { number, contact, message }))
    }

    fn status(number: usize, to: &str, id: &str) -> Arc<Event> {
        let status = Status::new(id, StatusKind::Sent, Scalar::unix(1_750_000_000), to);
        let contact = Some(Contact::new(to, "Bo"));
        Arc::new(Event::new(0, EventBody::Status { number, contact, status }))
    }

    #[tokio::test]
    async fn a_batch_keeps_inbound_messages_and_statuses_in_separate_values() {
        let state = SandboxState::start(SandboxConfig::for_tests(), "http://127.0.0.1:9".to_owned()).unwrap();
        let template = ChangeValue::from_parts(
            "message_template_status_update".to_owned(),
            serde_json::json!({"event": "APPROVED", "message_template_id": 1, "message_template_name": "t",
                               "message_template_language": "en_US", "reason": "NONE"}),
        );
        let events = vec![
            status(0, "16505550001", "wamid.S1"),
            inbound(0, "16505550002", "wamid.M1"),
            status(1, "16505550003", "wamid.S2"),
            Arc::new(Event::new(0, EventBody::Change(template))),
            status(0, "16505550001", "wamid.S3"),
            inbound(0, "16505550004", "wamid.M2"),
        ];
        let envelope = envelope(&state.0, &events);
        let changes = &envelope.entry[0].changes;
        let summary: Vec<Summary<'_>> = changes
            .iter()
            .map(|c| match c.value.as_messages() {
                Some(v) => (
                    v.metadata.phone_number_id.as_str().to_owned(),
                    v.messages().iter().map(|m| m.id.as_str()).collect(),
                    v.statuses().iter().map(|s| s.id.as_str()).collect(),
                    v.contacts().iter().map(|c| c.wa_id.as_ref().unwrap().as_str()).collect(),
                ),
                None => (c.field().to_owned(), vec![], vec![], vec![]),
            })
            .collect();
        let (first, second) = ("106540352242922".to_owned(), "106540352242923".to_owned());
        assert_eq!(
            summary,
            vec![
                (first.clone(), vec![], vec!["wamid.S1", "wamid.S3"], vec!["16505550001"]),
                (first, vec!["wamid.M1", "wamid.M2"], vec![], vec!["16505550002", "16505550004"]),
                (second, vec![], vec!["wamid.S2"], vec!["16505550003"]),
                ("message_template_status_update".to_owned(), vec![], vec![], vec![]),
            ]
        );
        state.shutdown().await;
    }
}
