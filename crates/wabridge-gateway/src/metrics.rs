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
    /// Webhooks per commit.
    pub commit_batch_size: Histogram,
    /// Seconds from the start of a commit to its end.
    pub commit_seconds: Histogram,
    /// Seconds from receiving a webhook to answering it.
    pub intake_seconds: Histogram,
    /// Commits that failed (each failed webhook is answered 500, so Meta retries it).
    pub commit_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            webhooks_received: Counter::default(),
            webhooks_rejected: LabeledCounter::default(),
            events_received: LabeledCounter::default(),
            events_duplicate: Counter::default(),
            webhooks_duplicate: Counter::default(),
            commit_batch_size: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
            intake_seconds: Histogram::new(LATENCY_BUCKETS),
            commit_failures: Counter::default(),
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

fn labeled(out: &mut String, name: &str, label: &str, help: &str, c: &LabeledCounter) {
    header(out, name, "counter", help);
    for (value, n) in c.snapshot() {
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
        histogram(&mut out, "wabridge_commit_seconds", "Duration of a group commit.", &self.commit_seconds);
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
