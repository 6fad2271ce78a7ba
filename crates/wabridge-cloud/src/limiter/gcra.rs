//! The generic cell rate algorithm (GCRA), the building block of every limiter here.

use std::time::{Duration, Instant};

/// The slack [`Gcra::per_second`] gives: 5 ms, enough to absorb a scheduler waking a little early and,
/// since it lengthens the emission interval by 0.5 %, still admitting 99.5 % of the level under saturation.
pub const DEFAULT_SLACK: Duration = Duration::from_millis(5);

/// A GCRA limiter for one stream of events (one business number, or one number–recipient pair).
///
/// Each admission pushes the *theoretical arrival time* (TAT) forward by the emission interval `T`; an event
/// at `now` is admitted when `TAT − now ≤ τ`, the tolerance. A limiter that was idle admits `1 + ⌊τ / T⌋`
/// events back to back (its burst), then one per `T`.
///
/// Two ways to choose `T` and `τ`:
/// - [`Gcra::new`]`(interval, burst)`: `T = interval`, `τ = (burst − 1)·T`. This is Meta's pair limit: one
///   message per 6 s, bursts of 45 borrowing future quota.
/// - [`Gcra::per_window`]`(limit, window, slack)`: *never more than `limit` admissions in any window of
///   length `window`*, which is how Meta states throughput (80 messages in a second, not 80 on average).
///   With `τ = slack` and `T = (window + slack) / limit` (rounded up): if `k` events are admitted at
///   `t₁ ≤ … ≤ tₖ` with `tₖ − t₁ < window`, the TAT before the `k`-th is at least `t₁ + (k − 1)·T`, and
///   admitting it needs `t₁ + (k − 1)·T − tₖ ≤ τ`, so `(k − 1)·T < window + τ`, so `k − 1 < limit`:
///   `k ≤ limit`. The slack is subtracted from the rate: under saturation `window / T = limit · window /
///   (window + slack)` events per window are admitted, 99.5 % of the limit for a 5 ms slack in 1 s. A
///   larger burst would break the window guarantee; a zero slack would lose the time between a refusal's
///   advised wait and the caller's actual return.
///
/// Time is passed in (`now`), so the limiter is pure and deterministic; events must be presented with
/// non-decreasing `now` for the guarantees above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Gcra {
    /// One event per `interval`, with bursts of up to `burst` events (at least 1).
    #[must_use]
    pub fn new(interval: Duration, burst: u32) -> Self {
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        Self { interval, tolerance, tat: None }
    }

    /// At most `limit` events (at least 1) in any window of length `window`, with `slack` of tolerance for
    /// callers that come back slightly late or early. See the type's documentation for the proof.
    #[must_use]
    pub fn per_window(limit: u32, window: Duration, slack: Duration) -> Self {
        Self { interval: window_interval(limit, window, slack), tolerance: slack, tat: None }
    }

    /// At most `level` events in any one-second window, with [`DEFAULT_SLACK`].
    #[must_use]
    pub fn per_second(level: u32) -> Self {
        Self::per_window(level, Duration::from_secs(1), DEFAULT_SLACK)
    }

    /// The emission interval `T`.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The tolerance `τ`.
    #[must_use]
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// How many events an idle limiter admits back to back.
    #[must_use]
    pub fn burst(&self) -> u64 {
        if self.interval.is_zero() {
            return u64::MAX;
        }
        let extra = self.tolerance.as_nanos() / self.interval.as_nanos();
        u64::try_from(extra).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Changes `T` and `τ` (a new level), keeping the TAT so that what was admitted still counts.
    pub fn reconfigure(&mut self, interval: Duration, tolerance: Duration) {
        self.interval = interval;
        self.tolerance = tolerance;
    }

    /// Whether an event at `now` would be admitted, without admitting it: `Err` carries how long to wait.
    ///
    /// # Errors
    /// The wait until the event would be admitted.
    pub fn peek(&self, now: Instant) -> Result<(), Duration> {
        let Some(tat) = self.tat else { return Ok(()) };
        let ahead = tat.saturating_duration_since(now);
        if ahead <= self.tolerance { Ok(()) } else { Err(ahead - self.tolerance) }
    }

    /// Admits an event at `now` if it fits, or says how long to wait (nothing is counted then).
    ///
    /// # Errors
    /// The wait until the event would be admitted.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.peek(now)?;
        self.record(now);
        Ok(())
    }

    /// Counts an event at `now` whether or not it fits (an inbound message: it happened, and Meta counts
    /// it). Later events wait longer accordingly.
    pub fn record(&mut self, now: Instant) {
        let base = self.tat.map_or(now, |tat| tat.max(now));
        self.tat = Some(base + self.interval);
    }

    /// Counts an event at `now` like [`record`](Self::record), but never moves the TAT beyond
    /// `now + horizon` (nor back from where it is). For events that happen whatever the limiter says
    /// (inbound messages): counted one interval each, a burst of them would otherwise delay later events
    /// long after they stopped mattering.
    ///
    /// With `horizon = window + tolerance`, the window guarantee of [`Gcra::per_window`] still holds: after
    /// a capped record at `c`, the next admission is at `c + window` at the earliest, so no event at or
    /// before `c` shares a window with it, and every event after `c` is counted in full.
    pub fn record_within(&mut self, now: Instant, horizon: Duration) {
        let cap = now + horizon;
        let base = self.tat.map_or(now, |tat| tat.max(now));
        if base < cap {
            self.tat = Some((base + self.interval).min(cap));
        }
    }

    /// Uses up the burst as of `at`: nothing is admitted before `at`, then one event per interval, as if a
    /// full burst had just been spent. Never loosens the limiter.
    pub fn exhaust_until(&mut self, at: Instant) {
        let spent = at + self.tolerance;
        self.tat = Some(self.tat.map_or(spent, |tat| tat.max(spent)));
    }

    /// Whether the limiter is back to its idle state at `now` (it can be forgotten).
    #[must_use]
    pub fn is_idle(&self, now: Instant) -> bool {
        self.tat.is_none_or(|tat| tat <= now)
    }
}

/// `(window + slack) / limit`, rounded up to the nanosecond so rounding never admits one event too many.
#[must_use]
pub fn window_interval(limit: u32, window: Duration, slack: Duration) -> Duration {
    let total = window.saturating_add(slack).as_nanos();
    let per = total.div_ceil(u128::from(limit.max(1)));
    Duration::from_nanos(u64::try_from(per).unwrap_or(u64::MAX))
}
