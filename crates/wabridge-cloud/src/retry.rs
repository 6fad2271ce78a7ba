//! The retry policy: which failures are tried again, how often, and how long to wait between tries.
//!
//! Opt-in ([`crate::ClientBuilder::retry`]). Only errors whose class is retryable are retried
//! ([`CloudError::is_retryable`]: throughput 130429, pair limit 131056, transient server errors and 5xx,
//! transport failures and timeouts…); an invalid parameter (100) or an undeliverable message (131026) is
//! returned at once. The wait grows exponentially with jitter and is never shorter than the class's own
//! delay (131056 waits at least the 6-second pair interval) nor than the answer's `Retry-After` header.
//!
//! How the wait grows, after `n` failed attempts (jitter aside, and never beyond [`RetryPolicy::max_delay`]):
//! - most errors: `start · 2^(n−1)`, where `start` is the class's delay or [`RetryPolicy::base`], whichever
//!   is longer: 130429 waits 1, 2, 4 s…, a 5xx 5, 10, 20 s…, a transport error 0.5, 1, 2 s…;
//! - the pair limit (131056): `max(6 s, 4^n s)` = 6, 16, 64, 256 s…. The reference gives Meta's advice as
//!   "retry after 4^x seconds" (x counting the failures) and the pair interval as 6 s: Meta's sequence, with
//!   its terms under the 6-s interval (1 and 4 s) lifted to it. Counting x from the first failure rather
//!   than from 0 only drops a repeated 6 s, so each wait is longer than the one before.
//!
//! Calls that are not idempotent (POST: a send, an upload, a template created) are retried only when Meta
//! refused them (a Graph error) or the connection could not be made. When the outcome is unknown — a timeout
//! after the request went out, a 2xx that does not parse, a bare 502/504 ([`CloudError::outcome_unknown`]) —
//! the error is returned: sending again could reach the user twice. Reconcile such sends from their status
//! webhooks (`biz_opaque_callback_data` carries your id), as the gateway does. Reads (GET) and deletes are
//! retried on any retryable error.

use std::time::Duration;

use wabridge_types::error::ErrorClass;

use crate::error::CloudError;

/// How a failed call is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry). At least 1.
    pub max_attempts: u32,
    /// The shortest wait after the first failure; doubled after each further failure (see the module's
    /// documentation for how the class's delay and 131056 change it).
    pub base: Duration,
    /// The longest wait between two attempts. An error whose class asks for a longer wait (80007: 5 min,
    /// 131048: an hour) is not retried in place: it is returned, for a scheduler to park the work.
    pub max_delay: Duration,
    /// How much of the exponential wait is random, from 0.0 (none) to 1.0 (anything between 0 and the
    /// full wait), so that many clients failing together do not retry together.
    pub jitter: f64,
    /// The longest time spent retrying one call, measured on the client's clock; `None` for no limit.
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// Four attempts, 500 ms doubling, at most 60 s between attempts, 20 % jitter, no overall limit.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// Sets the number of attempts (the first included).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the first wait.
    #[must_use]
    pub fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the longest wait between attempts.
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Sets the random share of the wait (clamped to 0.0–1.0).
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the longest time spent retrying one call.
    #[must_use]
    pub fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// The wait before the next attempt after `failed_attempts` attempts failed, the last with `error`, or
    /// `None` when the call must not be tried again. `random` is a number in `[0, 1)` (the jitter draw),
    /// passed in so this stays a pure function.
    ///
    /// The wait grows exponentially from the class's delay (see the module's documentation), loses up to
    /// [`jitter`](Self::jitter) of itself at random, and is then never shorter than the class's delay nor the
    /// answer's `Retry-After`, nor longer than [`max_delay`](Self::max_delay). When the class's delay or
    /// `Retry-After` alone is longer than `max_delay`, the call is not retried in place (`None`).
    #[must_use]
    pub fn delay_for(&self, failed_attempts: u32, error: &CloudError, random: f64) -> Option<Duration> {
        if failed_attempts >= self.max_attempts.max(1) || !error.is_retryable() {
            return None;
        }
        // The class's delay and Retry-After: a lower bound whatever the jitter draws.
        let floor = error.retry_after().unwrap_or(Duration::ZERO);
        if floor > self.max_delay {
            return None;
        }
        let classification = error.classification();
        let class_delay = classification.delay.unwrap_or(Duration::ZERO);
        let failures = failed_attempts.max(1);
        let backoff = if classification.class == ErrorClass::PairLimit {
            // Meta's 4^x seconds, x = the failures so far, never under the class's 6 s.
            let exponent = failures.min(15);
            Duration::from_secs(4u64.pow(exponent)).max(class_delay)
        } else {
            let exponent = (failures - 1).min(30);
            self.base.max(class_delay).saturating_mul(1u32 << exponent)
        };
        let backoff = backoff.min(self.max_delay);
        let jitter = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.0 };
        let jittered = backoff.mul_f64(1.0 - jitter * random);
        Some(jittered.max(floor).min(self.max_delay))
    }
}
