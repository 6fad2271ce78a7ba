//! The life of an accepted message after the API answered: sent → delivered → read on the configured
//! delays and probabilities, or a single `failed` status for messages Meta would accept and then fail
//! (131026 unreachable user, 131047 window closed, 131064 messaging limit, 131053 media that cannot be
//! sent as the message's type). Runs in one task with a timer heap, off the request path.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::mpsc;
use wabridge_types::error::code_info;
use wabridge_types::webhook::{
    Conversation, ConversationOrigin, Pricing, PricingModel, Scalar, Status, StatusKind, WebhookError,
};

use crate::chaos::{chance, hash_bytes, purpose};
use crate::config::{AutoReply, WebhookShape};
use crate::limits::nanos;
use crate::state::{Shared, unix_now};
use crate::webhooks::{Event, EventBody};

/// What the lifecycle needs to know about an accepted message.
#[derive(Debug)]
pub(crate) struct Facts {
    pub wamid: String,
    pub number: usize,
    pub wa_id: String,
    pub callback: Option<String>,
    /// Pricing category: `service` for free-form messages, the template's category otherwise.
    pub category: String,
    /// Whether Meta charges for it under PMP (the current shape); the legacy CBP shape bills every
    /// conversation the sandbox opens (see `pricing`).
    pub billable: bool,
    /// PMP pricing type: `regular` or `free_customer_service`.
    pub pricing_type: &'static str,
    /// The `failed` status this message ends with, instead of being delivered.
    pub failure: Option<Failure>,
    /// The text the user received, for automatic replies.
    pub text: Option<String>,
    /// When it was accepted (sandbox clock, ns).
    pub accepted_at: u64,
}

/// Why an accepted message fails: the code of its `failed` status, and details when the code's usual
/// wording does not say enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: i64,
    pub details: Option<String>,
}

impl Failure {
    /// A failure described by its code alone.
    pub(crate) fn code(code: i64) -> Self {
        Self { code, details: None }
    }
}

/// Work for the lifecycle task.
#[derive(Debug)]
pub(crate) enum Job {
    /// A message was accepted.
    Message(Arc<Facts>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sent,
    Delivered,
    Read,
    Failed(i64),
}

#[derive(Debug)]
struct Due {
    at: u64,
    seq: u64,
    facts: Arc<Facts>,
    step: Step,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Starts the lifecycle task.
pub(crate) fn spawn(shared: &Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let shared = shared.clone();
    let tracker = shared.tasks.clone();
    tracker.spawn(async move {
        let mut heap: BinaryHeap<Due> = BinaryHeap::new();
        let mut seq = 0u64;
        loop {
            let next = heap.peek().map(|d| d.at);
            let wake = shared.clock.instant_at(next.unwrap_or(0));
            tokio::select! {
                () = shared.cancel.cancelled() => break,
                job = rx.recv() => match job {
                    Some(Job::Message(facts)) => plan(&shared, &mut heap, &mut seq, facts),
                    None => break,
                },
                () = tokio::time::sleep_until(wake), if next.is_some() => {
                    let now = shared.clock.now_ns();
                    while heap.peek().is_some_and(|d| d.at <= now) {
                        if let Some(due) = heap.pop() {
                            fire(&shared, &due.facts, due.step);
                        }
                    }
                }
            }
        }
    });
}

fn plan(shared: &Shared, heap: &mut BinaryHeap<Due>, seq: &mut u64, facts: Arc<Facts>) {
    let cfg = &shared.config.statuses;
    let at = |d| facts.accepted_at + nanos(d);
    let mut push = |at: u64, step: Step| {
        *seq += 1;
        heap.push(Due { at, seq: *seq, facts: facts.clone(), step });
    };
    if let Some(failure) = &facts.failure {
        push(at(cfg.sent_delay), Step::Failed(failure.code));
        return;
    }
    push(at(cfg.sent_delay), Step::Sent);
    let seed = shared.chaos.seed();
    let key = hash_bytes(facts.wamid.as_bytes());
    if chance(seed, purpose::DELIVERED, key, cfg.delivered_probability) {
        push(at(cfg.delivered_delay.max(cfg.sent_delay)), Step::Delivered);
        if chance(seed, purpose::READ, key, cfg.read_probability) {
            push(at(cfg.read_delay.max(cfg.delivered_delay).max(cfg.sent_delay)), Step::Read);
        }
    }
}

fn fire(shared: &Shared, facts: &Facts, step: Step) {
    let now = unix_now();
    let (kind, wire, error) = match step {
        Step::Sent => (StatusKind::Sent, "sent", None),
        Step::Delivered => (StatusKind::Delivered, "delivered", None),
        Step::Read => (StatusKind::Read, "read", None),
        Step::Failed(code) => (StatusKind::Failed, "failed", Some(code)),
    };
    shared.sent.record_status(&facts.wamid, wire, now, error);
    shared.counters.statuses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(code) = error {
        shared.counters.failed(code);
    }
    // Nobody to tell: skip building the payload.
    if shared.hub.delivers() {
        emit_status(shared, facts, step, kind, now);
    }
    if step == Step::Read {
        auto_reply(shared, facts);
    }
}

fn emit_status(shared: &Shared, facts: &Facts, step: Step, kind: StatusKind, now: u64) {
    let current = shared.config.webhooks.shape == WebhookShape::Current;
    let error = match step {
        Step::Failed(code) => Some(code),
        _ => None,
    };
    let wire = kind.as_str();
    let key = hash_bytes(format!("{}:{wire}", facts.wamid).as_bytes());
    let mut status = Status::new(facts.wamid.as_str(), kind, Scalar::unix(to_i64(now)), facts.wa_id.as_str());
    status.biz_opaque_callback_data.clone_from(&facts.callback);
    if current {
        status.recipient_user_id = Some(shared.users.user_id(&facts.wa_id));
    }
    if let Some(code) = error {
        let details = facts.failure.as_ref().and_then(|f| f.details.as_deref());
        status.errors = Some(vec![webhook_error(code, details)]);
    } else {
        status.pricing = Some(pricing(facts, current));
        status.conversation = Some(conversation(shared, facts, step == Step::Sent));
    }
    let contact = current.then(|| shared.users.contact(facts.number, &facts.wa_id, true));
    shared.hub.emit(shared, Event::new(key, EventBody::Status { number: facts.number, contact, status }));
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A webhook error for an asynchronous failure, in Meta's wording unless `details` are given.
pub(crate) fn webhook_error(code: i64, details: Option<&str>) -> WebhookError {
    let title = code_info(code).map_or("Unknown error", |i| i.title);
    let details = details.unwrap_or(match code {
        131_026 => "Message Undeliverable.",
        131_047 => {
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
        }
        131_064 => {
            "Message failed because the business reached its messaging limit for unique users in 24 hours."
        }
        _ => title,
    });
    let mut e = WebhookError::new(code, title, details);
    e.href = Some("https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/".to_owned());
    e
}

fn pricing(facts: &Facts, current: bool) -> Pricing {
    // Under conversation-based pricing (the legacy shape) every conversation was billable except one opened
    // from a free entry point (a click-to-WhatsApp ad or a Page's call-to-action, `origin.type`
    // `referral_conversion`), which the sandbox does not simulate. Meta's CBP examples show a user-initiated
    // (service) conversation as `"billable": true` ("Status: Message Sent - User Initiated"), so the
    // per-message `free_customer_service` reading of `facts.billable` only holds for PMP.
    let billable = if current { facts.billable } else { true };
    Pricing {
        billable: Some(billable),
        pricing_model: Some(if current { PricingModel::Pmp } else { PricingModel::Cbp }),
        kind: current.then(|| facts.pricing_type.to_owned()),
        category: Some(facts.category.clone()),
        extra: serde_json::Map::new(),
    }
}

fn conversation(shared: &Shared, facts: &Facts, first: bool) -> Conversation {
    // One conversation per (number, user, category), as conversation-based pricing counted them [R].
    let id = hash_bytes(format!("{}:{}:{}", facts.number, facts.wa_id, facts.category).as_bytes());
    let expiration = unix_now() + shared.config.limits.service_window.as_secs();
    Conversation {
        id: format!("{id:032x}"),
        expiration_timestamp: first.then(|| Scalar::unix(to_i64(expiration))),
        origin: Some(ConversationOrigin { kind: facts.category.clone(), extra: serde_json::Map::new() }),
        extra: serde_json::Map::new(),
    }
}

fn auto_reply(shared: &Shared, facts: &Facts) {
    let Some(text) = facts.text.as_deref() else { return };
    let reply = match &shared.config.users.auto_reply {
        AutoReply::Off => return,
        AutoReply::Echo => format!("echo: {text}"),
        AutoReply::Scripted { rules } => {
            let lower = text.to_lowercase();
            match rules.iter().find(|r| lower.contains(&r.contains.to_lowercase())) {
                Some(rule) => rule.reply.clone(),
                None => return,
            }
        }
    };
    let inbound = crate::inbound::Inbound::text(&facts.wa_id, reply).replying_to(&facts.wamid);
    if let Err(e) = crate::inbound::inject(shared, Some(facts.number), inbound) {
        tracing::debug!(error = %e, "automatic reply not injected");
    }
}
