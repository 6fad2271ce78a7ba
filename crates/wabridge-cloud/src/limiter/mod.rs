//! Throttling within Meta's limits, usable on its own: per-number throughput and the per-recipient pair
//! limit, both GCRA ([`Gcra`]), plus "freeze until" for a number or a recipient.
//!
//! Everything is pure: time is the `now` passed to each call (from [`crate::time::Clock`] in a program, made
//! up in tests), nothing sleeps, and a refusal says how long to wait. Wrap a limiter in a mutex to share it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wabridge_cloud::limiter::RateLimiter;
//! use wabridge_types::{PhoneNumberId, limits::Limits};
//!
//! let mut limiter = RateLimiter::new(Limits::default());
//! let number = PhoneNumberId::new("106540352242922");
//! let now = Instant::now();
//! assert!(limiter.check(&number, "16505551234", now).is_ok());
//! limiter.freeze_recipient_until(&number, "16505551234", now + Duration::from_secs(6));
//! let wait = limiter.check(&number, "16505551234", now).unwrap_err();
//! assert_eq!(wait, Duration::from_secs(6));
//! ```

mod gcra;
mod number;
mod pair;

use std::time::{Duration, Instant};

pub use gcra::{DEFAULT_SLACK, Gcra, window_interval};
pub use number::NumberLimiter;
pub use pair::PairLimiter;
use wabridge_types::error::{ErrorClass, PauseScope};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::limits::{Limits, ThroughputLevel};

use crate::error::CloudError;

/// The two limits a send must pass: its number's throughput and the pair limit to its recipient. A send is
/// counted against both only when both admit it.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    numbers: NumberLimiter,
    pairs: PairLimiter,
}

impl RateLimiter {
    /// Limits from `limits` (80 / 1,000 / 20 messages per second, pair limit 1 per 6 s with bursts of 45).
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        let pairs = PairLimiter::from_limits(&limits);
        Self { numbers: NumberLimiter::new(limits), pairs }
    }

    /// The per-number limiter.
    #[must_use]
    pub fn numbers(&self) -> &NumberLimiter {
        &self.numbers
    }

    /// The per-number limiter, to change levels.
    pub fn numbers_mut(&mut self) -> &mut NumberLimiter {
        &mut self.numbers
    }

    /// The pair limiter.
    #[must_use]
    pub fn pairs(&self) -> &PairLimiter {
        &self.pairs
    }

    /// The pair limiter, to prune it.
    pub fn pairs_mut(&mut self) -> &mut PairLimiter {
        &mut self.pairs
    }

    /// Admits a send from `number` to `recipient` at `now`, or says how long to wait (the longer of the
    /// two limits' waits; nothing is counted then).
    ///
    /// # Errors
    /// How long to wait.
    pub fn check(&mut self, number: &PhoneNumberId, recipient: &str, now: Instant) -> Result<(), Duration> {
        let by_number = self.numbers.peek(number, now);
        let by_pair = self.pairs.peek(number, recipient, now);
        match (by_number, by_pair) {
            (Ok(()), Ok(())) => {
                self.numbers.commit(number, now);
                self.pairs.commit(number, recipient, now);
                Ok(())
            }
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
        }
    }

    /// Counts an inbound message against the number's level (Meta counts inbound and outbound together).
    pub fn record_inbound(&mut self, number: &PhoneNumberId, now: Instant) {
        self.numbers.record_inbound(number, now);
    }

    /// Records the level Meta reported for the number.
    pub fn set_level(&mut self, number: &PhoneNumberId, level: &ThroughputLevel) {
        self.numbers.set_level(number, level);
    }

    /// Pins the number's level in messages per second (or removes the pin).
    pub fn set_override(&mut self, number: &PhoneNumberId, mps: Option<u32>) {
        self.numbers.set_override(number, mps);
    }

    /// Sends nothing from the number before `until`.
    pub fn freeze_number_until(&mut self, number: &PhoneNumberId, until: Instant) {
        self.numbers.freeze_until(number, until);
    }

    /// Sends nothing from the number to `recipient` before `until`.
    pub fn freeze_recipient_until(&mut self, number: &PhoneNumberId, recipient: &str, until: Instant) {
        self.pairs.freeze_until(number, recipient, until);
    }

    /// Applies what an error says about pacing: a throughput error (130429) or maintenance (131057) freezes
    /// the number for the class's delay, a pair-limit error (131056) freezes the recipient and uses up its
    /// burst ([`PairLimiter::exhaust_until`]): after the freeze, one message per pair interval. Returns
    /// whether anything was frozen. WABA-wide pauses (80007) and pauses that need an operator (tokens,
    /// accounts) are the caller's business: they span more than one number. The freeze lasts the class's
    /// delay, or the answer's `Retry-After` when that is longer.
    pub fn apply_error(
        &mut self,
        number: &PhoneNumberId,
        recipient: &str,
        error: &CloudError,
        now: Instant,
    ) -> bool {
        let c = error.classification();
        let Some(delay) = error.retry_after() else { return false };
        // `Retry-After` is capped where it is read; a deadline past what `Instant` holds is not one anyway.
        let Some(until) = now.checked_add(delay) else { return false };
        match (c.class, c.pause) {
            (ErrorClass::PairLimit, _) | (_, Some(PauseScope::Recipient)) => {
                self.pairs.exhaust_until(number, recipient, until);
                true
            }
            (ErrorClass::Throughput | ErrorClass::Maintenance, _) => {
                self.freeze_number_until(number, until);
                true
            }
            _ => false,
        }
    }
}
