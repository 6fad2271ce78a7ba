//! What goes into the store and what comes out of it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A webhook body as received, to be stored once per distinct body.
#[derive(Clone)]
pub struct NewRawWebhook {
    received_at: SystemTime,
    body: Bytes,
    body_sha256: [u8; 32],
    signature_ok: bool,
    reject_reason: Option<String>,
}

impl NewRawWebhook {
    /// A body whose events were extracted (they travel in the same [`IntakeBatchItem`]).
    #[must_use]
    pub fn accepted(body: impl Into<Bytes>, signature_ok: bool) -> Self {
        Self::new(body.into(), signature_ok, None)
    }

    /// A body kept for later re-processing, e.g. a correctly signed body that is not a valid envelope.
    /// `reason` is a short machine-friendly text, never the body.
    #[must_use]
    pub fn rejected(body: impl Into<Bytes>, signature_ok: bool, reason: impl Into<String>) -> Self {
        Self::new(body.into(), signature_ok, Some(reason.into()))
    }

    fn new(body: Bytes, signature_ok: bool, reject_reason: Option<String>) -> Self {
        let body_sha256 = Sha256::digest(&body).into();
        Self { received_at: SystemTime::now(), body, body_sha256, signature_ok, reject_reason }
    }

    /// Sets whether the signature was checked and correct (`false` when checking is turned off).
    #[must_use]
    pub fn with_signature_ok(mut self, signature_ok: bool) -> Self {
        self.signature_ok = signature_ok;
        self
    }

    /// Sets the time of receipt (default: when it was built).
    #[must_use]
    pub fn with_received_at(mut self, received_at: SystemTime) -> Self {
        self.received_at = received_at;
        self
    }

    /// The body, byte for byte.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// SHA-256 of the body: its identity in the store.
    #[must_use]
    pub fn body_sha256(&self) -> &[u8; 32] {
        &self.body_sha256
    }

    /// When it was received.
    #[must_use]
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// Whether `X-Hub-Signature-256` was checked and correct.
    #[must_use]
    pub fn signature_ok(&self) -> bool {
        self.signature_ok
    }

    /// Why it was rejected; `None` when accepted.
    #[must_use]
    pub fn reject_reason(&self) -> Option<&str> {
        self.reject_reason.as_deref()
    }

    pub(crate) fn status(&self) -> &'static str {
        if self.reject_reason.is_some() { "rejected" } else { "accepted" }
    }
}

impl fmt::Debug for NewRawWebhook {
    // The body may hold message texts and phone numbers: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRawWebhook")
            .field("received_at", &self.received_at)
            .field("body_len", &self.body.len())
            .field("body_sha256", &hex::encode(self.body_sha256))
            .field("signature_ok", &self.signature_ok)
            .field("reject_reason", &self.reject_reason)
            .finish()
    }
}

/// One event extracted from a webhook: an entry's change, a message, a status…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique per event, the same on every redelivery (message id; status id + status; field + content hash).
    pub dedupe_key: String,
    /// What it is, e.g. `message`, `status`, `template_status_update`; unknown kinds are kept as they come.
    pub kind: String,
    /// The change's `field`, e.g. `messages`.
    pub field: String,
    /// The entry's id: the WhatsApp Business Account.
    pub waba_id: String,
    /// The business number it concerns, when it concerns one.
    pub phone_number_id: Option<String>,
    /// The user's `wa_id` it concerns, when it concerns one.
    pub contact: Option<String>,
    /// The event as JSON text, kept byte for byte.
    pub payload: String,
}

/// An inbound message from `wa_id` to `phone_number_id` at `at`: opens or extends the 24-hour window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTouch {
    /// The business number written to.
    pub phone_number_id: String,
    /// The user who wrote.
    pub wa_id: String,
    /// When the user wrote (the message's timestamp).
    pub at: SystemTime,
}

/// A `statuses[]` entry of a webhook, applied to the outbound message with that `wamid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// Meta's message id.
    pub wamid: String,
    /// `sent`, `delivered`, `read`, `played`, `failed`, `deleted`, `payment`… as received.
    pub status: String,
    /// Meta's timestamp, Unix epoch seconds.
    pub timestamp: i64,
    /// The `errors` array as JSON text, when present.
    pub errors: Option<String>,
}

/// Everything one webhook request brings, written in the same transaction.
#[derive(Debug, Clone)]
pub struct IntakeBatchItem {
    /// The body as received.
    pub raw: NewRawWebhook,
    /// Its events (none for a rejected body).
    pub events: Vec<NewEvent>,
    /// Inbound messages, for the 24-hour window.
    pub inbound: Vec<InboundTouch>,
    /// Message statuses, for the outbound messages' states, each with its status event in `events` (dedupe
    /// key `status:{wamid}:{status}`), as [`intake::batch_item`](crate::intake::batch_item) builds them. On
    /// SQLite a status joins the timeline (and may move its message) only with its event, when that is new: a
    /// known event is a status already applied; a status without its event is left out.
    pub statuses: Vec<StatusUpdate>,
}

/// What [`Store::commit_intake`](super::Store::commit_intake) did with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemOutcome {
    /// The raw body's row: a new one, or the existing one when the body was seen before.
    pub raw_id: i64,
    /// The body was seen before (same SHA-256): no second raw row.
    pub raw_duplicate: bool,
    /// Events newly added to the log.
    pub events_inserted: usize,
    /// Events dropped because their `dedupe_key` was already in the log (or earlier in the batch).
    pub events_duplicate: usize,
    /// The highest `seq` given to this item's new events.
    pub last_seq: Option<i64>,
}

/// An event from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the log: strictly increasing in the order readers see.
    pub seq: i64,
    /// See [`NewEvent::dedupe_key`].
    pub dedupe_key: String,
    /// See [`NewEvent::kind`].
    pub kind: String,
    /// See [`NewEvent::field`].
    pub field: String,
    /// See [`NewEvent::waba_id`].
    pub waba_id: String,
    /// See [`NewEvent::phone_number_id`].
    pub phone_number_id: Option<String>,
    /// See [`NewEvent::contact`].
    pub contact: Option<String>,
    /// See [`NewEvent::payload`].
    pub payload: String,
    /// The raw webhook it came from.
    pub raw_id: i64,
    /// When it was committed.
    pub created_at: SystemTime,
}

/// Which events a reader wants; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this business number.
    pub phone_number_id: Option<String>,
    /// Only events of these kinds (empty: all kinds).
    pub kinds: Vec<String>,
    /// Only events about this user.
    pub contact: Option<String>,
}

/// A stored webhook body.
#[derive(Clone, PartialEq, Eq)]
pub struct RawWebhook {
    /// Its row id.
    pub id: i64,
    /// When it was received.
    pub received_at: SystemTime,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// Whether the signature was checked and correct.
    pub signature_ok: bool,
    /// Why it was rejected, if it was.
    pub reject_reason: Option<String>,
    /// When its events were extracted, if they were.
    pub processed_at: Option<SystemTime>,
}

impl fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawWebhook")
            .field("id", &self.id)
            .field("received_at", &self.received_at)
            .field("body_len", &self.body.len())
            .field("signature_ok", &self.signature_ok)
            .field("reject_reason", &self.reject_reason)
            .field("processed_at", &self.processed_at)
            .finish()
    }
}

/// What [`Store::prune`](super::Store::prune) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Events deleted.
    pub events: u64,
    /// Raw webhook bodies deleted.
    pub raw_webhooks: u64,
}

/// Where an outbound message stands. Statuses from Meta only move it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundState {
    /// Waiting for its turn.
    Queued,
    /// Handed to the Cloud API, answer pending.
    Sending,
    /// Meta sent it.
    Sent,
    /// It reached the user's device.
    Delivered,
    /// The user read it (or played it).
    Read,
    /// Terminal: Meta or the gateway gave up on it.
    Failed,
    /// Terminal: it waited longer than its time to live.
    Expired,
    /// Terminal: cancelled before it was sent.
    Cancelled,
}

impl OutboundState {
    /// Its name in the store and the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OutboundState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboundState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return Err(()),
        })
    }
}

/// A message to insert in the outbound table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboundMessage {
    /// The gateway's own id.
    pub id: String,
    /// The business number sending it.
    pub phone_number_id: String,
    /// The user's `wa_id`.
    pub recipient: String,
    /// Meta's id, when already known.
    pub wamid: Option<String>,
    /// The send request as JSON text.
    pub body: String,
}

/// An outbound message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The gateway's own id.
    pub id: String,
    /// The business number sending it.
    pub phone_number_id: String,
    /// The user's `wa_id`.
    pub recipient: String,
    /// Meta's id, once the send succeeded.
    pub wamid: Option<String>,
    /// Where it stands.
    pub state: OutboundState,
    /// The send request as JSON text.
    pub body: String,
    /// When it was queued.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
    /// The last error as JSON text (e.g. the `errors` of a `failed` status).
    pub last_error: Option<String>,
}

/// A batch reduced to the rows to write: duplicates within the batch removed (first occurrence wins), rows
/// sorted where PostgreSQL takes row locks, so concurrent transactions lock in the same order.
pub(crate) struct IntakePlan<'a> {
    pub raws: Vec<&'a NewRawWebhook>,
    /// For each of `raws`: true when its item carries no events, so the body is deduplicated by its hash
    /// (a body with events is deduplicated by its events).
    pub raws_by_body: Vec<bool>,
    /// `(item index, event)`.
    pub events: Vec<(usize, &'a NewEvent)>,
    /// `(phone_number_id, wa_id, latest inbound ms)`.
    pub contacts: Vec<(&'a str, &'a str, i64)>,
    /// In arrival order: a new status event's timeline row is taken from the first status with its key.
    pub statuses: Vec<&'a StatusUpdate>,
    /// The distinct wamids of `statuses`, sorted.
    pub wamids: Vec<&'a str>,
}

impl<'a> IntakePlan<'a> {
    pub fn new(items: &'a [IntakeBatchItem]) -> Self {
        let mut seen_raw = HashSet::new();
        let mut bodies: Vec<(&NewRawWebhook, bool)> = items
            .iter()
            .filter(|i| seen_raw.insert(i.raw.body_sha256))
            .map(|i| (&i.raw, i.events.is_empty()))
            .collect();
        bodies.sort_by_key(|(r, _)| r.body_sha256);
        let (raws, raws_by_body) = bodies.into_iter().unzip();

        let mut seen_key = HashSet::new();
        let events = items
            .iter()
            .enumerate()
            .flat_map(|(n, item)| item.events.iter().map(move |e| (n, e)))
            .filter(|(_, e)| seen_key.insert(e.dedupe_key.as_str()))
            .collect();

        let mut latest: HashMap<(&str, &str), i64> = HashMap::new();
        for touch in items.iter().flat_map(|i| &i.inbound) {
            let at = super::to_millis(touch.at);
            let slot = latest.entry((touch.phone_number_id.as_str(), touch.wa_id.as_str())).or_insert(at);
            *slot = (*slot).max(at);
        }
        let mut contacts: Vec<_> = latest.into_iter().map(|((p, w), at)| (p, w, at)).collect();
        contacts.sort_unstable();

        let mut seen_status = HashSet::new();
        let statuses: Vec<&StatusUpdate> = items
            .iter()
            .flat_map(|i| &i.statuses)
            .filter(|s| seen_status.insert((s.wamid.as_str(), s.status.as_str(), s.timestamp)))
            .collect();
        let mut wamids: Vec<&str> = statuses.iter().map(|s| s.wamid.as_str()).collect();
        wamids.sort_unstable();
        wamids.dedup();

        Self { raws, raws_by_body, events, contacts, statuses, wamids }
    }

    /// Attributes what the database did to the items, in order: a raw row or an event counts as new for
    /// the first item that carried it, as a duplicate for the others.
    pub fn outcomes(
        items: &[IntakeBatchItem],
        inserted_raws: &HashSet<Vec<u8>>,
        raw_ids: &HashMap<Vec<u8>, i64>,
        inserted_events: &HashMap<String, i64>,
    ) -> Result<Vec<ItemOutcome>, super::StoreError> {
        let mut claimed_raws = HashSet::new();
        let mut claimed_events = HashSet::new();
        items
            .iter()
            .map(|item| {
                let hash = item.raw.body_sha256.as_slice();
                let raw_id =
                    *raw_ids.get(hash).ok_or(super::StoreError::Inconsistent("raw row not found"))?;
                let raw_new = inserted_raws.contains(hash) && claimed_raws.insert(hash);
                let mut outcome = ItemOutcome {
                    raw_id,
                    raw_duplicate: !raw_new,
                    events_inserted: 0,
                    events_duplicate: 0,
                    last_seq: None,
                };
                for event in &item.events {
                    let key = event.dedupe_key.as_str();
                    match inserted_events.get(key) {
                        Some(&seq) if claimed_events.insert(key) => {
                            outcome.events_inserted += 1;
                            outcome.last_seq = outcome.last_seq.max(Some(seq));
                        }
                        _ => outcome.events_duplicate += 1,
                    }
                }
                Ok(outcome)
            })
            .collect()
    }
}
