//! What the sandbox counts: accepted sends, refusals by error code, inbound messages, webhooks.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::chaos::lock;

/// A snapshot of the counters, as `GET /_sandbox/counters` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Messages accepted by `POST /{phone-number-id}/messages` (answered with a wamid).
    pub accepted: u64,
    /// Graph calls refused, by error code.
    pub rejected: BTreeMap<i64, u64>,
    /// Accepted messages that later failed (in a `failed` status), by error code.
    pub failed: BTreeMap<i64, u64>,
    /// Inbound messages injected from simulated users.
    pub inbound: u64,
    /// Status events generated.
    pub statuses: u64,
    /// Webhook POSTs answered with 2xx.
    pub webhook_posts_ok: u64,
    /// Webhook POSTs that failed (error status, timeout, connection refused).
    pub webhook_posts_failed: u64,
    /// Events delivered (one POST carries one or more).
    pub webhook_events_delivered: u64,
    /// Events dropped: older than the maximum age, or over the pending limit.
    pub webhook_events_dropped: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub accepted: AtomicU64,
    rejected: Mutex<BTreeMap<i64, u64>>,
    failed: Mutex<BTreeMap<i64, u64>>,
    pub inbound: AtomicU64,
    pub statuses: AtomicU64,
    pub webhook_posts_ok: AtomicU64,
    pub webhook_posts_failed: AtomicU64,
    pub webhook_events_delivered: AtomicU64,
    pub webhook_events_dropped: AtomicU64,
}

impl LiveCounters {
    pub(crate) fn rejected(&self, code: i64) {
        *lock(&self.rejected).entry(code).or_default() += 1;
    }

    pub(crate) fn failed(&self, code: i64) {
        *lock(&self.failed).entry(code).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            accepted: get(&self.accepted),
            rejected: lock(&self.rejected).clone(),
            failed: lock(&self.failed).clone(),
            inbound: get(&self.inbound),
            statuses: get(&self.statuses),
            webhook_posts_ok: get(&self.webhook_posts_ok),
            webhook_posts_failed: get(&self.webhook_posts_failed),
            webhook_events_delivered: get(&self.webhook_events_delivered),
            webhook_events_dropped: get(&self.webhook_events_dropped),
        }
    }

    pub(crate) fn reset(&self) {
        for c in [
            &self.accepted,
            &self.inbound,
            &self.statuses,
            &self.webhook_posts_ok,
            &self.webhook_posts_failed,
            &self.webhook_events_delivered,
            &self.webhook_events_dropped,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        lock(&self.rejected).clear();
        lock(&self.failed).clear();
    }
}
