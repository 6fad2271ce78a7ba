//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! A few lock-free primitives are enough here, so there is no metrics dependency. Labels are a small
//! closed set (reason, kind); message bodies and phone numbers never become label values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one (never below zero).
    pub fn dec(&self) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters keyed by one label value from a small, closed set (a reason, an event kind).
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    /// Adds `n` to the counter of `label`.
    pub fn add(&self, label: &str, n: u64) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(label) {
            Some(v) => *v += n,
            None => {
                map.insert(label.to_owned(), n);
            }
        }
    }

    /// Adds one to the counter of `label`.
    pub fn inc(&self, label: &str) {
        self.add(label, 1);
    }

    /// The value of one label (0 when never counted).
    #[must_use]
    pub fn get(&self, label: &str) -> u64 {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(label).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Gauges keyed by one label value from a small, closed set (a configured business number's id).
#[derive(Debug, Default)]
pub struct LabeledGauge(Mutex<BTreeMap<String, u64>>);

impl LabeledGauge {
    /// Sets the gauge of `label`.
    pub fn set(&self, label: &str, v: u64) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(label.to_owned(), v);
    }

    /// The value of one label, if set.
    #[must_use]
    pub fn get(&self, label: &str) -> Option<u64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(label).copied()
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with the given upper bounds (ascending).
    #[must_use]
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        // The sum is kept in millionths so it fits an atomic integer.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.sum_micros.fetch_add((v * 1e6).max(0.0) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The mean of the observations (0 when there are none).
    #[must_use]
    pub fn mean(&self) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6 / count as f64;
        mean
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Every metric the gateway exposes.
#[derive(Debug)]
pub struct Metrics {
    /// Webhook POSTs answered 200 (stored).
    pub webhooks_received: Counter,
    /// Webhook POSTs refused or stored as rejected, by reason.
    pub webhooks_rejected: LabeledCounter,
    /// Events in committed webhooks, by kind (duplicates included; see `events_duplicate`).
    pub events_received: LabeledCounter,
    /// Events dropped as duplicates of stored ones.
    pub events_duplicate: Counter,
    /// Webhook bodies already stored (redeliveries).
    pub webhooks_duplicate: Counter,
    /// Rejected webhooks stored with their events after all (`POST /v1/webhooks/reprocess`).
    pub webhooks_reprocessed: Counter,
    /// Webhooks per commit.
    pub commit_batch_size: Histogram,
    /// Seconds from the start of a commit to its end.
    pub commit_seconds: Histogram,
    /// Seconds from receiving a webhook to answering it.
    pub intake_seconds: Histogram,
    /// Commits that failed (each failed webhook is answered 500, so Meta retries it).
    pub commit_failures: Counter,
    /// WebSocket subscribers connected now.
    pub ws_subscribers: Gauge,
    /// Events the feed published to subscribers (once each, whatever the number of subscribers).
    pub events_published: Counter,
    /// Event frames written to WebSocket subscribers (one per event per subscriber).
    pub events_fanned_out: Counter,
    /// Callback requests, by result (`ok`, `error`).
    pub callback_attempts: LabeledCounter,
    /// Events marked failed after their maximum age without a successful delivery.
    pub callback_failed: Counter,
    /// Events waiting for delivery, over every callback.
    pub callback_backlog: Gauge,
    /// Age in seconds of the oldest undelivered event, over every callback (0 when none).
    pub callback_oldest_age_seconds: Gauge,
    /// Messages accepted by `POST /v1/messages` (durably queued).
    pub outbound_accepted: Counter,
    /// Messages Meta accepted (answered with a wamid).
    pub outbound_sent: Counter,
    /// Messages failed by an error about the message itself.
    pub outbound_failed: Counter,
    /// Messages not sent before their time to live ran out.
    pub outbound_expired: Counter,
    /// Error answers of Meta to sends, by Graph error code.
    pub outbound_errors: LabeledCounter,
    /// Sends put back in the queue, by error class.
    pub outbound_retries: LabeledCounter,
    /// Pauses that need an operator (token, account, payment…), by error class.
    pub outbound_alerts: LabeledCounter,
    /// Messages queued or being sent, over every number.
    pub outbound_backlog: Gauge,
    /// Numbers paused now (error needing an operator, 131057, 80007).
    pub outbound_paused_numbers: Gauge,
    /// Messages per second each business number sends at (its level, or the configured override), by
    /// `phone_number_id` (Meta's id of a configured business number, not a user's phone number).
    pub outbound_level_mps: LabeledGauge,
    /// Inbound messages counted against each business number's level, by `phone_number_id`.
    pub outbound_inbound_counted: LabeledCounter,
    /// Sends whose outcome is unknown (awaiting reconciliation).
    pub outbound_in_doubt: Gauge,
    /// Sends of unknown outcome matched to their statuses.
    pub outbound_reconciled: Counter,
    /// Sends of unknown outcome sent again after the grace period (possibly duplicated).
    pub outbound_resent: Counter,
    /// Duration of a send request to Meta.
    pub outbound_send_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            webhooks_received: Counter::default(),
            webhooks_rejected: LabeledCounter::default(),
            events_received: LabeledCounter::default(),
            events_duplicate: Counter::default(),
            webhooks_duplicate: Counter::default(),
            webhooks_reprocessed: Counter::default(),
            commit_batch_size: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
            intake_seconds: Histogram::new(LATENCY_BUCKETS),
            commit_failures: Counter::default(),
            ws_subscribers: Gauge::default(),
            events_published: Counter::default(),
            events_fanned_out: Counter::default(),
            callback_attempts: LabeledCounter::default(),
            callback_failed: Counter::default(),
            callback_backlog: Gauge::default(),
            callback_oldest_age_seconds: Gauge::default(),
            outbound_accepted: Counter::default(),
            outbound_sent: Counter::default(),
            outbound_failed: Counter::default(),
            outbound_expired: Counter::default(),
            outbound_errors: LabeledCounter::default(),
            outbound_retries: LabeledCounter::default(),
            outbound_alerts: LabeledCounter::default(),
            outbound_backlog: Gauge::default(),
            outbound_paused_numbers: Gauge::default(),
            outbound_level_mps: LabeledGauge::default(),
            outbound_inbound_counted: LabeledCounter::default(),
            outbound_in_doubt: Gauge::default(),
            outbound_reconciled: Counter::default(),
            outbound_resent: Counter::default(),
            outbound_send_seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, c: &Counter) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", c.get());
}

fn gauge(out: &mut String, name: &str, help: &str, g: &Gauge) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {}", g.get());
}

fn labeled(out: &mut String, name: &str, label: &str, help: &str, c: &LabeledCounter) {
    header(out, name, "counter", help);
    for (value, n) in c.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(&value));
    }
}

fn labeled_gauge(out: &mut String, name: &str, label: &str, help: &str, g: &LabeledGauge) {
    header(out, name, "gauge", help);
    for (value, n) in g.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(&value));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, "histogram", help);
    h.render(out, name);
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        counter(
            &mut out,
            "wabridge_webhooks_received_total",
            "Webhooks stored and acknowledged.",
            &self.webhooks_received,
        );
        labeled(
            &mut out,
            "wabridge_webhooks_rejected_total",
            "reason",
            "Webhooks refused or stored as rejected, by reason.",
            &self.webhooks_rejected,
        );
        counter(
            &mut out,
            "wabridge_webhooks_duplicate_total",
            "Webhook bodies received again (redeliveries).",
            &self.webhooks_duplicate,
        );
        counter(
            &mut out,
            "wabridge_webhooks_reprocessed_total",
            "Rejected webhooks stored with their events after all (re-processed).",
            &self.webhooks_reprocessed,
        );
        labeled(
            &mut out,
            "wabridge_events_received_total",
            "kind",
            "Events in committed webhooks, by kind (duplicates included).",
            &self.events_received,
        );
        counter(
            &mut out,
            "wabridge_events_duplicate_total",
            "Events dropped as duplicates.",
            &self.events_duplicate,
        );
        histogram(&mut out, "wabridge_commit_batch_size", "Webhooks per commit.", &self.commit_batch_size);
        histogram(
            &mut out,
            "wabridge_commit_seconds",
            "Duration of a group commit's transaction (SQLite's WAL flush for durability full follows it; \
             wabridge_intake_seconds covers the whole way to the answer).",
            &self.commit_seconds,
        );
        histogram(
            &mut out,
            "wabridge_intake_seconds",
            "Time from receiving a webhook to acknowledging it.",
            &self.intake_seconds,
        );
        counter(
            &mut out,
            "wabridge_commit_failures_total",
            "Group commits that failed.",
            &self.commit_failures,
        );
        gauge(&mut out, "wabridge_ws_subscribers", "WebSocket subscribers connected.", &self.ws_subscribers);
        counter(
            &mut out,
            "wabridge_events_published_total",
            "Events the feed published to subscribers.",
            &self.events_published,
        );
        counter(
            &mut out,
            "wabridge_events_fanned_out_total",
            "Event frames written to WebSocket subscribers.",
            &self.events_fanned_out,
        );
        labeled(
            &mut out,
            "wabridge_callback_attempts_total",
            "result",
            "Callback requests, by result.",
            &self.callback_attempts,
        );
        counter(
            &mut out,
            "wabridge_callback_failed_total",
            "Events marked failed after their maximum age.",
            &self.callback_failed,
        );
        gauge(&mut out, "wabridge_callback_backlog", "Events waiting for delivery.", &self.callback_backlog);
        gauge(
            &mut out,
            "wabridge_callback_oldest_age_seconds",
            "Age of the oldest undelivered event.",
            &self.callback_oldest_age_seconds,
        );
        counter(
            &mut out,
            "wabridge_outbound_accepted_total",
            "Messages accepted by `POST /v1/messages` (durably queued).",
            &self.outbound_accepted,
        );
        counter(
            &mut out,
            "wabridge_outbound_sent_total",
            "Messages Meta accepted (answered with a wamid).",
            &self.outbound_sent,
        );
        counter(
            &mut out,
            "wabridge_outbound_failed_total",
            "Messages failed by an error about the message itself.",
            &self.outbound_failed,
        );
        counter(
            &mut out,
            "wabridge_outbound_expired_total",
            "Messages not sent before their time to live ran out.",
            &self.outbound_expired,
        );
        labeled(
            &mut out,
            "wabridge_outbound_errors_total",
            "code",
            "Error answers of Meta to sends, by Graph error code.",
            &self.outbound_errors,
        );
        labeled(
            &mut out,
            "wabridge_outbound_retries_total",
            "class",
            "Sends put back in the queue, by error class.",
            &self.outbound_retries,
        );
        labeled(
            &mut out,
            "wabridge_outbound_alerts_total",
            "class",
            "Pauses that need an operator (token, account, payment…), by error class.",
            &self.outbound_alerts,
        );
        gauge(
            &mut out,
            "wabridge_outbound_backlog",
            "Messages queued or being sent, over every number.",
            &self.outbound_backlog,
        );
        gauge(
            &mut out,
            "wabridge_outbound_paused_numbers",
            "Numbers paused now (error needing an operator, 131057, 80007).",
            &self.outbound_paused_numbers,
        );
        labeled_gauge(
            &mut out,
            "wabridge_outbound_level_mps",
            "phone_number_id",
            "Messages per second each business number sends at: its throughput level or the override.",
            &self.outbound_level_mps,
        );
        labeled(
            &mut out,
            "wabridge_outbound_inbound_counted_total",
            "phone_number_id",
            "Inbound messages counted against each business number's level.",
            &self.outbound_inbound_counted,
        );
        gauge(
            &mut out,
            "wabridge_outbound_in_doubt",
            "Sends whose outcome is unknown (awaiting reconciliation).",
            &self.outbound_in_doubt,
        );
        counter(
            &mut out,
            "wabridge_outbound_reconciled_total",
            "Sends of unknown outcome matched to their statuses.",
            &self.outbound_reconciled,
        );
        counter(
            &mut out,
            "wabridge_outbound_resent_total",
            "Sends of unknown outcome sent again after the grace period (possibly duplicated).",
            &self.outbound_resent,
        );
        histogram(
            &mut out,
            "wabridge_outbound_send_seconds",
            "Duration of a send request to Meta.",
            &self.outbound_send_seconds,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.webhooks_received.add(3);
        m.webhooks_rejected.inc("bad_signature");
        m.events_received.add("message", 2);
        m.commit_batch_size.observe(3.0);
        m.commit_seconds.observe(0.004);
        let text = m.render();
        assert!(text.contains("wabridge_webhooks_received_total 3"));
        assert!(text.contains("wabridge_webhooks_rejected_total{reason=\"bad_signature\"} 1"));
        assert!(text.contains("wabridge_events_received_total{kind=\"message\"} 2"));
        assert!(text.contains("wabridge_commit_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("wabridge_commit_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("wabridge_commit_seconds_count 1"));
    }
}
