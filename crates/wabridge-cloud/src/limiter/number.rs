//! Per business number throughput: a [`Gcra`] at the number's level, inbound messages counted too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wabridge_types::ids::PhoneNumberId;
use wabridge_types::limits::{Limits, ThroughputLevel};

use super::gcra::{DEFAULT_SLACK, Gcra, window_interval};

/// The throughput limit of every business number: at most the number's level (messages per second,
/// inbound and outbound together, `cloud-api.md` §7) in any one-second window.
///
/// A number's level is the standard one (80/s) until [`set_level`](Self::set_level) records what
/// `?fields=throughput` reported (`HIGH` → 1,000/s) or [`set_override`](Self::set_override) pins it (a
/// coexistence number at 20/s, which nothing in the API reports). An override wins over the reported level.
#[derive(Debug, Clone)]
pub struct NumberLimiter {
    limits: Limits,
    window: Duration,
    slack: Duration,
    /// How far ahead of its schedule a number may be admitted; `None`: the slack.
    tolerance: Option<Duration>,
    numbers: HashMap<PhoneNumberId, NumberState>,
}

#[derive(Debug, Clone)]
struct NumberState {
    reported: u32,
    pinned: Option<u32>,
    gcra: Gcra,
    frozen_until: Option<Instant>,
}

impl NumberState {
    fn level(&self) -> u32 {
        self.pinned.unwrap_or(self.reported)
    }
}

impl NumberLimiter {
    /// A limiter with Meta's levels from `limits`, a one-second window and [`DEFAULT_SLACK`].
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            window: Duration::from_secs(1),
            slack: DEFAULT_SLACK,
            tolerance: None,
            numbers: HashMap::new(),
        }
    }

    /// Sets how far ahead of its schedule a number may be admitted (the [`Gcra`] tolerance; by default the
    /// slack, which keeps every one-second window at or under the level). A larger tolerance lets a caller
    /// that was late to ask (a busy task) catch up the sends it missed, in a burst: only for callers that
    /// space the requests themselves at `1 / level` on the way out, as the gateway does. Numbers already known
    /// keep theirs until their level changes.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// Sets the tolerance of every number's [`Gcra`] (see [`Gcra::per_window`]); numbers already known keep
    /// theirs until their level changes.
    #[must_use]
    pub fn with_slack(mut self, slack: Duration) -> Self {
        self.slack = slack;
        self
    }

    /// The limits the levels come from.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The tolerance every number's [`Gcra`] gets: the one set, or the slack.
    fn tolerance(&self) -> Duration {
        self.tolerance.unwrap_or(self.slack)
    }

    fn state(&mut self, number: &PhoneNumberId) -> &mut NumberState {
        let (standard, window, slack) = (self.limits.standard_mps, self.window, self.slack);
        let tolerance = self.tolerance();
        self.numbers.entry(number.clone()).or_insert_with(|| {
            let mut gcra = Gcra::per_window(standard, window, slack);
            gcra.reconfigure(gcra.interval(), tolerance);
            NumberState { reported: standard, pinned: None, gcra, frozen_until: None }
        })
    }

    fn apply_level(&mut self, number: &PhoneNumberId) {
        let (window, slack, tolerance) = (self.window, self.slack, self.tolerance());
        let state = self.state(number);
        let level = state.level();
        state.gcra.reconfigure(window_interval(level, window, slack), tolerance);
    }

    /// Records the level Meta reported for the number (`?fields=throughput`).
    pub fn set_level(&mut self, number: &PhoneNumberId, level: &ThroughputLevel) {
        let mps = self.limits.mps_for(level);
        self.set_mps(number, mps);
    }

    /// Sets the number's reported level in messages per second directly.
    pub fn set_mps(&mut self, number: &PhoneNumberId, mps: u32) {
        self.state(number).reported = mps;
        self.apply_level(number);
    }

    /// Pins the number's level (messages per second) whatever Meta reports, or removes the pin with `None`.
    pub fn set_override(&mut self, number: &PhoneNumberId, mps: Option<u32>) {
        self.state(number).pinned = mps;
        self.apply_level(number);
    }

    /// Pins the number at the coexistence level (20/s by default): it is also used in the WhatsApp Business
    /// app.
    pub fn set_coexistence(&mut self, number: &PhoneNumberId) {
        let mps = self.limits.coexistence_mps;
        self.set_override(number, Some(mps));
    }

    /// The number's level in messages per second.
    #[must_use]
    pub fn level(&self, number: &PhoneNumberId) -> u32 {
        self.numbers.get(number).map_or(self.limits.standard_mps, NumberState::level)
    }

    /// Whether a message could be sent from the number at `now`, without counting it.
    ///
    /// # Errors
    /// How long to wait (the longer of the rate limit and a freeze).
    pub fn peek(&self, number: &PhoneNumberId, now: Instant) -> Result<(), Duration> {
        let Some(state) = self.numbers.get(number) else { return Ok(()) };
        let frozen = state.frozen_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        match state.gcra.peek(now) {
            Err(wait) => Err(wait.max(frozen)),
            Ok(()) if !frozen.is_zero() => Err(frozen),
            Ok(()) => Ok(()),
        }
    }

    /// Admits a message from the number at `now`, or says how long to wait (nothing is counted then).
    ///
    /// # Errors
    /// How long to wait.
    pub fn check(&mut self, number: &PhoneNumberId, now: Instant) -> Result<(), Duration> {
        self.peek(number, now)?;
        self.state(number).gcra.record(now);
        Ok(())
    }

    /// Counts an admitted message without checking (the second half of a [`peek`](Self::peek)).
    pub(crate) fn commit(&mut self, number: &PhoneNumberId, now: Instant) {
        self.state(number).gcra.record(now);
    }

    /// Counts an inbound message to the number: Meta counts inbound and outbound together against the
    /// level, so outbound messages wait for the room it took.
    ///
    /// Meta counts them within its one-second window, so their effect is capped there: however many arrive
    /// at `now` (a thousand in one second at level 80 would otherwise block sends for over 12 s), sends wait
    /// at most one window after the last of them, when every one has left the window. The window guarantee
    /// holds still (see [`Gcra::record_within`]).
    pub fn record_inbound(&mut self, number: &PhoneNumberId, now: Instant) {
        let window = self.window;
        let gcra = &mut self.state(number).gcra;
        let horizon = window + gcra.tolerance();
        gcra.record_within(now, horizon);
    }

    /// Sends nothing from the number before `until` (after 130429, or 131057 during a throughput upgrade).
    /// A later freeze extends an earlier one; an earlier one does not shorten it.
    pub fn freeze_until(&mut self, number: &PhoneNumberId, until: Instant) {
        let state = self.state(number);
        state.frozen_until = Some(state.frozen_until.map_or(until, |f| f.max(until)));
    }

    /// Lifts a freeze at once.
    pub fn unfreeze(&mut self, number: &PhoneNumberId) {
        if let Some(state) = self.numbers.get_mut(number) {
            state.frozen_until = None;
        }
    }

    /// Until when the number is frozen, if it is.
    #[must_use]
    pub fn frozen_until(&self, number: &PhoneNumberId) -> Option<Instant> {
        self.numbers.get(number).and_then(|s| s.frozen_until)
    }
}
