//! The outbound queue in the store: enqueueing (with idempotency keys), claiming a number's queued messages
//! for its scheduler, the scheduler's state changes in group commits, number leases, and what reconciliation
//! and `GET /v1/messages/{id}` read.
//!
//! Queue order is SQLite's rowid (one writer: insert order is commit order) and PostgreSQL's `queue_key`.
//!
//! This module holds the types; `queue` puts messages in and takes them out (enqueue, claim, cancel, leases),
//! `ops` applies the schedulers' state changes, `reads` answers reconciliation, the API and reports.

mod ops;
mod queue;
mod reached;
mod reads;

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewQueued {
    /// The gateway's id.
    pub id: String,
    /// The business number sending it.
    pub phone_number_id: String,
    /// The recipient's `wa_id` (digits).
    pub recipient: String,
    /// The message's type (`text`, `template`…).
    pub kind: String,
    /// The Cloud API request body as JSON text, without `biz_opaque_callback_data`.
    pub body: String,
    /// The application's own callback data.
    pub callback_data: Option<String>,
    /// Not sent before this (Unix ms); `None`: at once.
    pub not_before: Option<i64>,
    /// Not sent after this (Unix ms).
    pub expires_at: Option<i64>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request, compared when the key comes again.
    pub request_sha256: Option<String>,
}

/// What enqueueing one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new queued row.
    Inserted,
    /// The idempotency key was known: the earlier message's id and request hash.
    Existing { id: String, request_sha256: Option<String> },
}

/// A queued message as its scheduler holds it.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// The gateway's id.
    pub id: String,
    /// The recipient.
    pub recipient: String,
    /// The message type.
    pub kind: String,
    /// The request body.
    pub body: String,
    /// Not before (Unix ms).
    pub not_before: Option<i64>,
    /// Not after (Unix ms).
    pub expires_at: Option<i64>,
    /// Failures so far that count toward `outbound.max_attempts` (the store's `retries`; not every send, as
    /// `attempts` of [`OutboundDetail`] is).
    pub attempts: i64,
    /// Whether it is resent after an unknown outcome.
    pub possibly_duplicated: bool,
}

/// A state change made by a scheduler; many go into one commit.
#[derive(Debug, Clone)]
pub enum OutboundOp {
    /// It goes to Meta now: outcome unknown until the answer.
    MarkSending { id: String },
    /// Meta accepted it with this wamid.
    Sent { id: String, wamid: String },
    /// Back to the queue, not before `not_before` (a retry), with the error that caused it; `counts`: the
    /// failure counts toward `outbound.max_attempts` (`retries`), as waits for a rate limit do not.
    Requeue { id: String, not_before: Option<i64>, error: Option<String>, counts: bool },
    /// Terminal failure with Meta's (or the gateway's) error as JSON text.
    Fail { id: String, error: String },
    /// Its time to live passed before it could be sent.
    Expire { id: String },
    /// A message whose outcome was unknown, matched to this wamid from its statuses.
    Reconciled { id: String, wamid: String },
    /// Marked `sending` but stopped before it left (a graceful stop): back to `queued`, and the attempt the
    /// mark counted is taken back.
    Unmark { id: String },
    /// A message whose outcome stayed unknown past the grace period, to be sent again: back in the queue,
    /// held by no scheduler (so that one loads it again), marked possibly duplicated.
    Resend { id: String },
    /// The scheduler admitted a template to `recipient` outside the user's 24-hour window, the first in 24
    /// hours: the user counts against `waba`'s messaging-limit tier (`waba_reached`), also for the instance
    /// that takes the WABA's lease next.
    Reached { waba: String, recipient: String },
}

/// A message whose send outcome is unknown (it was `sending` when its sender stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDoubt {
    /// The gateway's id.
    pub id: String,
    /// When it went to Meta (Unix ms).
    pub sending_since: i64,
    /// From when its grace period counts (Unix ms): `sending_since` as read from the store; a scheduler
    /// that takes the number over counts from then, so that statuses Meta retries after a downtime can
    /// still reconcile it before it is sent again.
    pub grace_from: i64,
}

/// Everything `GET /v1/messages/{id}` shows.
#[derive(Debug, Clone)]
pub struct OutboundDetail {
    pub id: String,
    pub phone_number_id: String,
    pub recipient: String,
    pub wamid: Option<String>,
    pub state: String,
    pub kind: String,
    pub callback_data: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub possibly_duplicated: bool,
    pub reconciled: bool,
    /// `(status, Meta's timestamp in seconds, errors JSON)` in order of arrival.
    pub statuses: Vec<(String, i64, Option<String>)>,
}

/// What `DELETE /v1/messages/{id}` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    /// Too late: its state.
    NotCancellable(String),
}
