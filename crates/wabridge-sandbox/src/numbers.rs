//! The business phone numbers: their throughput level, registration, profile and limiter state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use wabridge_types::limits::{Limits, ThroughputLevel};
use wabridge_types::response::BusinessProfile;
use wabridge_types::webhook::Metadata;

use crate::chaos::lock;
use crate::config::NumberConfig;
use crate::limits::AtomicGcra;

/// One business phone number and its state.
#[derive(Debug)]
pub(crate) struct Number {
    /// Position in the sandbox's list (part of per-number hash keys).
    pub index: usize,
    pub id: String,
    pub display: String,
    pub verified_name: String,
    /// The level `?fields=throughput` reports.
    level: Mutex<ThroughputLevel>,
    /// Messages per second enforced.
    mps: AtomicU32,
    /// The throughput limiter.
    pub gcra: AtomicGcra,
    /// While the clock is below this (ns), the number is in maintenance (131057). 0: never.
    maintenance_until: AtomicU64,
    pub registered: AtomicBool,
    pub pin: Mutex<Option<String>>,
    pub profile: Mutex<BusinessProfile>,
    /// `metadata` of this number's webhooks.
    pub metadata: Metadata,
    initial: NumberConfig,
}

impl Number {
    pub(crate) fn new(index: usize, config: &NumberConfig, limits: &Limits) -> Self {
        let mps = config.mps.unwrap_or_else(|| limits.mps_for(&config.level));
        Self {
            index,
            id: config.id.clone(),
            display: config.display_phone_number.clone(),
            verified_name: config.verified_name.clone(),
            level: Mutex::new(config.level.clone()),
            mps: AtomicU32::new(mps),
            gcra: AtomicGcra::default(),
            maintenance_until: AtomicU64::new(0),
            registered: AtomicBool::new(config.registered),
            pin: Mutex::new(config.pin.clone()),
            profile: Mutex::new(default_profile()),
            metadata: Metadata::new(config.display_phone_number.clone(), config.id.clone()),
            initial: config.clone(),
        }
    }

    /// The level reported by `?fields=throughput`.
    pub(crate) fn level(&self) -> ThroughputLevel {
        lock(&self.level).clone()
    }

    /// Messages per second enforced now.
    pub(crate) fn mps(&self) -> u32 {
        self.mps.load(Ordering::Relaxed)
    }

    /// Applies a level and rate at once.
    pub(crate) fn apply_level(&self, level: ThroughputLevel, mps: u32) {
        *lock(&self.level) = level;
        self.mps.store(mps.max(1), Ordering::Relaxed);
    }

    /// Puts the number in maintenance until `until_ns`.
    pub(crate) fn start_maintenance(&self, until_ns: u64) {
        self.maintenance_until.store(until_ns, Ordering::Relaxed);
    }

    /// Whether the number is in maintenance at `now_ns`.
    pub(crate) fn in_maintenance(&self, now_ns: u64) -> bool {
        now_ns < self.maintenance_until.load(Ordering::Relaxed)
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// Back to the configured state.
    pub(crate) fn reset(&self, limits: &Limits) {
        let mps = self.initial.mps.unwrap_or_else(|| limits.mps_for(&self.initial.level));
        self.apply_level(self.initial.level.clone(), mps);
        self.gcra.reset();
        self.maintenance_until.store(0, Ordering::Relaxed);
        self.registered.store(self.initial.registered, Ordering::Relaxed);
        *lock(&self.pin) = self.initial.pin.clone();
        *lock(&self.profile) = default_profile();
    }
}

fn default_profile() -> BusinessProfile {
    BusinessProfile {
        messaging_product: Some(wabridge_types::MESSAGING_PRODUCT.to_owned()),
        about: Some("Powered by the wabridge sandbox".to_owned()),
        vertical: Some("OTHER".to_owned()),
        ..BusinessProfile::default()
    }
}
