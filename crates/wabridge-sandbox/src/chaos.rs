//! Fault injection: duplicated and reordered webhooks, server errors, latency and chosen error codes on
//! the Graph routes. Everything is off by default.
//!
//! Every decision is a pure function of the seed and of what it is about (a request's sequence number,
//! an event's key), not of a shared random generator, so a run with the same seed and the same traffic
//! makes the same decisions whatever the timing of concurrent tasks.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wabridge_types::limits::duration_ms;

/// Fault injection settings. Probabilities are between 0.0 and 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChaosConfig {
    /// Seed of every decision (also makes wamids and user ids reproducible).
    pub seed: u64,
    /// Probability that a webhook POST is delivered twice.
    pub duplicate_probability: f64,
    /// Probability that an event is held back by `reorder_delay`, so later events overtake it.
    pub reorder_probability: f64,
    /// How long a reordered event is held back.
    #[serde(with = "duration_ms")]
    pub reorder_delay: Duration,
    /// Probability that a Graph call is answered with HTTP 500 (code 131000) without being processed.
    pub error_5xx_probability: f64,
    /// Latency added to every Graph call.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    /// A chosen error code answered instead of processing calls.
    pub fault: Option<FaultInjection>,
}

/// Answer `code` instead of processing calls: for the next `next_n` calls, or every `every_nth` call
/// (both may be set; neither means every call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultInjection {
    /// The Graph error code to answer, with its documented HTTP status.
    pub code: i64,
    /// Only the next N calls in scope.
    #[serde(default)]
    pub next_n: Option<u64>,
    /// Only every Nth call in scope (the Nth, 2Nth, …).
    #[serde(default)]
    pub every_nth: Option<u64>,
    /// Which calls the fault applies to.
    #[serde(default)]
    pub scope: FaultScope,
}

/// The calls a [`FaultInjection`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    /// `POST /{phone-number-id}/messages` only.
    #[default]
    Messages,
    /// Every Graph call.
    All,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            duplicate_probability: 0.0,
            reorder_probability: 0.0,
            reorder_delay: Duration::from_millis(500),
            error_5xx_probability: 0.0,
            latency: Duration::ZERO,
            fault: None,
        }
    }
}

impl ChaosConfig {
    /// Whether anything on the Graph routes is turned on.
    #[must_use]
    pub fn affects_graph(&self) -> bool {
        self.error_5xx_probability > 0.0 || !self.latency.is_zero() || self.fault.is_some()
    }
}

/// SplitMix64: a small, well-mixed hash of one 64-bit value.
#[must_use]
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable 64-bit hash of bytes (FNV-1a, then mixed); the same on every run and platform.
#[must_use]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix(h)
}

/// A decision that is true with probability `p`, drawn from `seed`, a purpose tag and a key.
#[must_use]
pub(crate) fn chance(seed: u64, purpose: u64, key: u64, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    let draw = mix(seed ^ mix(purpose ^ mix(key)));
    // 53 random bits as a fraction in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
    unit < p
}

/// Purpose tags, so one key gives independent draws for different decisions.
pub(crate) mod purpose {
    pub const DUPLICATE: u64 = 1;
    pub const REORDER: u64 = 2;
    pub const ERROR_5XX: u64 = 3;
    pub const DELIVERED: u64 = 4;
    pub const READ: u64 = 5;
}

/// What the chaos layer decided for one Graph call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphFault {
    /// Answer with this error code.
    Code(i64),
}

/// The chaos settings in force, changeable at run time. Reading them costs one atomic load while
/// nothing on the Graph routes is on.
#[derive(Debug)]
pub(crate) struct Chaos {
    config: Mutex<ChaosConfig>,
    graph_active: AtomicBool,
    webhook_active: AtomicBool,
    /// Graph calls seen (the key of per-call decisions).
    calls: AtomicU64,
    /// Calls in the fault's scope since the fault was set.
    fault_calls: AtomicU64,
}

impl Chaos {
    pub(crate) fn new(config: ChaosConfig) -> Self {
        let chaos = Self {
            config: Mutex::new(ChaosConfig::default()),
            graph_active: AtomicBool::new(false),
            webhook_active: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            fault_calls: AtomicU64::new(0),
        };
        chaos.set(config);
        chaos
    }

    /// Replaces the settings (and restarts the fault's call count).
    pub(crate) fn set(&self, config: ChaosConfig) {
        let mut current = lock(&self.config);
        self.graph_active.store(config.affects_graph(), Ordering::Release);
        self.webhook_active
            .store(config.duplicate_probability > 0.0 || config.reorder_probability > 0.0, Ordering::Release);
        self.fault_calls.store(0, Ordering::Relaxed);
        *current = config;
    }

    /// Sets or clears only the injected fault.
    pub(crate) fn set_fault(&self, fault: Option<FaultInjection>) {
        let mut config = self.get();
        config.fault = fault;
        self.set(config);
    }

    /// The settings in force.
    pub(crate) fn get(&self) -> ChaosConfig {
        lock(&self.config).clone()
    }

    /// The seed (0 when chaos was never configured).
    pub(crate) fn seed(&self) -> u64 {
        lock(&self.config).seed
    }

    /// Webhook decisions: (duplicate probability, reorder probability, reorder delay, seed), or `None`
    /// when neither is on.
    pub(crate) fn webhook_settings(&self) -> Option<(f64, f64, Duration, u64)> {
        if !self.webhook_active.load(Ordering::Acquire) {
            return None;
        }
        let c = lock(&self.config);
        Some((c.duplicate_probability, c.reorder_probability, c.reorder_delay, c.seed))
    }

    /// Decides what happens to one Graph call: the latency to add and a fault to answer, if any.
    pub(crate) fn on_graph_call(&self, is_send: bool) -> (Duration, Option<GraphFault>) {
        if !self.graph_active.load(Ordering::Acquire) {
            return (Duration::ZERO, None);
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut config = lock(&self.config);
        let latency = config.latency;
        if let Some(fault) = &mut config.fault {
            let in_scope = is_send || fault.scope == FaultScope::All;
            if in_scope {
                let k = self.fault_calls.fetch_add(1, Ordering::Relaxed) + 1;
                let hit = fault.every_nth.is_none_or(|nth| nth > 0 && k.is_multiple_of(nth));
                if hit {
                    if let Some(left) = fault.next_n.as_mut() {
                        if *left > 0 {
                            *left -= 1;
                            return (latency, Some(GraphFault::Code(fault.code)));
                        }
                    } else {
                        return (latency, Some(GraphFault::Code(fault.code)));
                    }
                }
            }
        }
        if chance(config.seed, purpose::ERROR_5XX, n, config.error_5xx_probability) {
            return (latency, Some(GraphFault::Code(131_000)));
        }
        (latency, None)
    }
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it (every critical section
/// here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_is_deterministic_and_roughly_calibrated() {
        let hits = (0..10_000).filter(|k| chance(7, purpose::DUPLICATE, *k, 0.3)).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
        let a: Vec<bool> = (0..100).map(|k| chance(7, 1, k, 0.5)).collect();
        let b: Vec<bool> = (0..100).map(|k| chance(7, 1, k, 0.5)).collect();
        assert_eq!(a, b);
        let c: Vec<bool> = (0..100).map(|k| chance(8, 1, k, 0.5)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn fault_next_n_then_stops() {
        let chaos = Chaos::new(ChaosConfig {
            fault: Some(FaultInjection {
                code: 131_016,
                next_n: Some(2),
                every_nth: None,
                scope: FaultScope::Messages,
            }),
            ..ChaosConfig::default()
        });
        assert_eq!(chaos.on_graph_call(false).1, None);
        assert_eq!(chaos.on_graph_call(true).1, Some(GraphFault::Code(131_016)));
        assert_eq!(chaos.on_graph_call(true).1, Some(GraphFault::Code(131_016)));
        assert_eq!(chaos.on_graph_call(true).1, None);
    }

    #[test]
    fn fault_every_nth() {
        let chaos = Chaos::new(ChaosConfig {
            fault: Some(FaultInjection { code: 2, next_n: None, every_nth: Some(3), scope: FaultScope::All }),
            ..ChaosConfig::default()
        });
        let hits: Vec<bool> = (0..6).map(|_| chaos.on_graph_call(false).1.is_some()).collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
    }
}
