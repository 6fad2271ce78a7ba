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
    /// Part of a `messages` change of a business number.
    Messages {
        number: usize,
        contact: Option<Contact>,
        message: Option<InboundMessage>,
        status: Option<Status>,
    },
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
        if let Some((_, reorder, delay, seed)) = shared.chaos.webhook_settings() {
            if chance(seed, purpose::REORDER, event.key, reorder) {
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

/// Builds the envelope of a batch: one entry for the WABA; the events of each business number merged
/// into one `messages` change, other fields one change each.
fn envelope(shared: &Shared, events: &[Arc<Event>]) -> Envelope {
    let mut values: Vec<(usize, MessagesValue)> = Vec::new();
    let mut changes: Vec<Change> = Vec::new();
    let mut order: Vec<(bool, usize)> = Vec::new(); // (is messages, index) in first-seen order
    for event in events {
        match &event.body {
            EventBody::Messages { number, contact, message, status } => {
                let i = match values.iter().position(|(n, _)| n == number) {
                    Some(i) => i,
                    None => {
                        let metadata = shared.numbers[*number].metadata.clone();
                        values.push((*number, MessagesValue::new(metadata)));
                        order.push((true, values.len() - 1));
                        values.len() - 1
                    }
                };
                let value = &mut values[i].1;
                if let Some(contact) = contact {
                    let contacts = value.contacts.get_or_insert_with(Vec::new);
                    if !contacts.iter().any(|c| c.wa_id == contact.wa_id && c.user_id == contact.user_id) {
                        contacts.push(contact.clone());
                    }
                }
                if let Some(message) = message {
                    value.messages.get_or_insert_with(Vec::new).push(message.clone());
                }
                if let Some(status) = status {
                    value.statuses.get_or_insert_with(Vec::new).push(status.clone());
                }
            }
            EventBody::Change(value) => {
                changes.push(Change::new(value.clone()));
                order.push((false, changes.len() - 1));
            }
        }
    }
    let mut values: Vec<Option<MessagesValue>> = values.into_iter().map(|(_, v)| Some(v)).collect();
    let mut changes: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    let all: Vec<Change> = order
        .into_iter()
        .filter_map(|(is_messages, i)| {
            if is_messages {
                values[i].take().map(|v| Change::new(ChangeValue::Messages(v)))
            } else {
                changes[i].take()
            }
        })
        .collect();
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    Envelope::new(vec![Entry::new(shared.config.waba_id.as_str(), all).with_time(now)])
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
