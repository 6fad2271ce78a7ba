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

/// Two-digit country calling codes (ITU-T E.164 assignments); `1` and `7` are the one-digit ones, every
/// other code has three digits.
const TWO_DIGIT_COUNTRY_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
    "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
    "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// A number (digits only, as configured and as webhooks' `metadata` carry it) as Graph's phone-number
/// objects show `display_phone_number` (`cloud-api.md` §6: `"+1 631-555-5555"`).
///
/// Our formatting, deterministic and simple [R]: `+`, the country calling code, a space, then the national
/// number — for North America (`1` and ten digits) `NPA-NXX-XXXX` as in Meta's example; elsewhere groups of
/// three digits separated by spaces, the last group taking the remaining two to four. Meta formats per
/// country; no client should parse this field (the digits are in webhooks and `wa_id`s).
#[must_use]
pub(crate) fn display_format(digits: &str) -> String {
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.to_owned();
    }
    let cc_len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT_COUNTRY_CODES.contains(&&digits[..2]) {
        2
    } else {
        3
    };
    let (cc, national) = digits.split_at(cc_len);
    if cc == "1" && national.len() == 10 {
        return format!("+1 {}-{}-{}", &national[..3], &national[3..6], &national[6..]);
    }
    let mut groups: Vec<&str> = Vec::new();
    let mut rest = national;
    while rest.len() > 4 {
        let (group, tail) = rest.split_at(3);
        groups.push(group);
        rest = tail;
    }
    if !rest.is_empty() {
        groups.push(rest);
    }
    format!("+{cc} {}", groups.join(" "))
}

fn default_profile() -> BusinessProfile {
    BusinessProfile {
        messaging_product: Some(wabridge_types::MESSAGING_PRODUCT.to_owned()),
        about: Some("Powered by the wabridge sandbox".to_owned()),
        vertical: Some("OTHER".to_owned()),
        ..BusinessProfile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::display_format;

    #[test]
    fn display_numbers_are_formatted_with_country_code_and_groups() {
        assert_eq!(display_format("16315555555"), "+1 631-555-5555");
        assert_eq!(display_format("15550783881"), "+1 555-078-3881");
        assert_eq!(display_format("447700900123"), "+44 770 090 0123");
        assert_eq!(display_format("5511970719679"), "+55 119 707 196 79");
        assert_eq!(display_format("79161234567"), "+7 916 123 4567");
        assert_eq!(display_format("353851234567"), "+353 851 234 567");
        assert_eq!(display_format("2348031234567"), "+234 803 123 4567");
        // Not digits, or too short to split: as configured.
        assert_eq!(display_format("123"), "123");
        assert_eq!(display_format("+1 631-555-5555"), "+1 631-555-5555");
    }
}
