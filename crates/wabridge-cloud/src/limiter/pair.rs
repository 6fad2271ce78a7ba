//! The pair rate limit: messages from one business number to one user.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wabridge_types::ids::PhoneNumberId;
use wabridge_types::limits::Limits;

use super::gcra::Gcra;

/// Meta's pair rate limit (`cloud-api.md` §7, \[L\]): one message per 6 s from a business number to the same
/// user, with bursts of up to 45 that borrow future quota; beyond it Meta answers 131056. One [`Gcra`] per
/// (number, recipient), created on first use; [`prune`](Self::prune) forgets idle pairs.
#[derive(Debug, Clone)]
pub struct PairLimiter {
    interval: Duration,
    burst: u32,
    pairs: HashMap<(PhoneNumberId, String), PairState>,
}

#[derive(Debug, Clone)]
struct PairState {
    gcra: Gcra,
    frozen_until: Option<Instant>,
}

impl PairLimiter {
    /// One message per `interval` to the same user, bursts of `burst`.
    #[must_use]
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self { interval, burst, pairs: HashMap::new() }
    }

    /// The pair limit of `limits` (6 s, burst 45 by default).
    #[must_use]
    pub fn from_limits(limits: &Limits) -> Self {
        Self::new(limits.pair_interval, limits.pair_burst)
    }

    /// The pair's key: a phone number by its digits, so that `+1 650-555-1234` and `16505551234` (one user to
    /// Meta) share one budget; any other recipient (a business-scoped id such as `US.1349…`) as given.
    fn key(number: &PhoneNumberId, recipient: &str) -> (PhoneNumberId, String) {
        let phone = recipient.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let user = if phone {
            recipient.chars().filter(char::is_ascii_digit).collect()
        } else {
            recipient.to_owned()
        };
        (number.clone(), user)
    }

    fn state(&mut self, number: &PhoneNumberId, recipient: &str) -> &mut PairState {
        let (interval, burst) = (self.interval, self.burst);
        self.pairs
            .entry(Self::key(number, recipient))
            .or_insert_with(|| PairState { gcra: Gcra::new(interval, burst), frozen_until: None })
    }

    /// Whether a message to `recipient` could be sent at `now`, without counting it.
    ///
    /// # Errors
    /// How long to wait (the longer of the pair limit and a freeze).
    pub fn peek(&self, number: &PhoneNumberId, recipient: &str, now: Instant) -> Result<(), Duration> {
        let Some(state) = self.pairs.get(&Self::key(number, recipient)) else { return Ok(()) };
        let frozen = state.frozen_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        match state.gcra.peek(now) {
            Err(wait) => Err(wait.max(frozen)),
            Ok(()) if !frozen.is_zero() => Err(frozen),
            Ok(()) => Ok(()),
        }
    }

    /// Admits a message to `recipient` at `now`, or says how long to wait.
    ///
    /// # Errors
    /// How long to wait.
    pub fn check(&mut self, number: &PhoneNumberId, recipient: &str, now: Instant) -> Result<(), Duration> {
        self.peek(number, recipient, now)?;
        self.commit(number, recipient, now);
        Ok(())
    }

    pub(crate) fn commit(&mut self, number: &PhoneNumberId, recipient: &str, now: Instant) {
        self.state(number, recipient).gcra.record(now);
    }

    /// Sends nothing to `recipient` before `until` (after 131056). Never shortens a freeze.
    pub fn freeze_until(&mut self, number: &PhoneNumberId, recipient: &str, until: Instant) {
        let state = self.state(number, recipient);
        state.frozen_until = Some(state.frozen_until.map_or(until, |f| f.max(until)));
    }

    /// Sends nothing to `recipient` before `until`, then only one message per interval: the pair's burst
    /// is used up. What a 131056 calls for: Meta's count for the pair is at its limit whatever ours says,
    /// so a freeze that left our burst allowance would let a burst go at `until` and meet 131056 again.
    pub fn exhaust_until(&mut self, number: &PhoneNumberId, recipient: &str, until: Instant) {
        self.freeze_until(number, recipient, until);
        self.state(number, recipient).gcra.exhaust_until(until);
    }

    /// Until when the pair is frozen, if it is.
    #[must_use]
    pub fn frozen_until(&self, number: &PhoneNumberId, recipient: &str) -> Option<Instant> {
        self.pairs.get(&Self::key(number, recipient)).and_then(|s| s.frozen_until)
    }

    /// Forgets pairs that are idle at `now` (a fresh limiter would behave the same), so memory follows the
    /// active conversations rather than every user ever written to.
    pub fn prune(&mut self, now: Instant) {
        self.pairs.retain(|_, s| !s.gcra.is_idle(now) || s.frozen_until.is_some_and(|f| f > now));
    }

    /// How many pairs are tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}
