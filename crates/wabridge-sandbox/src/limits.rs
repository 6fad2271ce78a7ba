//! The sandbox's own limiters: per-number throughput, the pair limit, the WABA's call quota and the
//! messaging-limit tier. Written independently of the SDK's limiter on purpose: a bug shared by both
//! would hide in every test that drives one against the other.
//!
//! The rate limiters are GCRAs (generic cell rate algorithm): a "theoretical arrival time" (TAT) per
//! key; a call at `now` conforms when `TAT - now <= tolerance`, and then moves the TAT one emission
//! interval past `max(TAT, now)`. The per-number one is a single atomic, so the hot path takes no lock;
//! per-recipient state lives in a sharded map. The WABA's hourly quota is a count over a rolling window
//! ([`RollingQuota`]), not a rate: a GCRA with a whole window of tolerance lets nearly twice the quota
//! through in one rolling hour after a burst.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::chaos::lock;

/// Nanoseconds since the sandbox started: the time base of every limiter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self { start: Instant::now() }
    }

    /// Nanoseconds since start.
    pub(crate) fn now_ns(&self) -> u64 {
        nanos(self.start.elapsed())
    }

    /// The instant `ns` nanoseconds after start.
    pub(crate) fn instant_at(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }
}

/// A duration in whole nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The emission interval of a rate of `per_period` events per `period`, in nanoseconds (at least 1).
pub(crate) fn interval_ns(period: Duration, per_period: u64) -> u64 {
    (nanos(period) / per_period.max(1)).max(1)
}

/// A lock-free GCRA over one atomic TAT.
#[derive(Debug, Default)]
pub(crate) struct AtomicGcra {
    tat: AtomicU64,
}

impl AtomicGcra {
    /// Takes one cell if it conforms (`interval` and `tolerance` in ns); on refusal returns how long
    /// until it would.
    pub(crate) fn acquire(&self, now: u64, interval: u64, tolerance: u64) -> Result<(), u64> {
        let mut current = self.tat.load(Ordering::Relaxed);
        loop {
            let tat = current.max(now);
            if tat - now > tolerance {
                return Err(tat - now - tolerance);
            }
            match self.tat.compare_exchange_weak(current, tat + interval, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Takes one cell whether or not it conforms (inbound messages: the user has sent them already,
    /// but they use the number's capacity).
    pub(crate) fn force(&self, now: u64, interval: u64) {
        let mut current = self.tat.load(Ordering::Relaxed);
        loop {
            let next = current.max(now) + interval;
            match self.tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Forgets all history.
    pub(crate) fn reset(&self) {
        self.tat.store(0, Ordering::Relaxed);
    }
}

/// How many buckets a [`RollingQuota`] splits its window into.
const QUOTA_BUCKETS: u64 = 60;

/// A quota of calls per rolling window (the WABA's API calls per rolling hour, 80007), counted in
/// buckets of 1/[`QUOTA_BUCKETS`] of the window.
///
/// A call is admitted while the calls of its own bucket and of the [`QUOTA_BUCKETS`] buckets before it
/// number fewer than the limit. Every rolling window of the configured length lies inside those buckets,
/// so no rolling window ever holds more than `limit` admitted calls. The price of bucketing: calls are
/// forgotten up to one bucket (a minute of an hour) after they leave the window, never before.
#[derive(Debug, Default)]
pub(crate) struct RollingQuota {
    state: Mutex<QuotaState>,
}

#[derive(Debug, Default)]
struct QuotaState {
    /// (bucket number, calls admitted in it), oldest first: only buckets still counted.
    buckets: VecDeque<(u64, u64)>,
    /// The sum of the counts in `buckets`.
    total: u64,
}

impl RollingQuota {
    /// Takes one call at `now` (ns) from a quota of `limit` calls per `window` (ns); `false` when the
    /// quota is used up.
    pub(crate) fn acquire(&self, now: u64, window: u64, limit: u64) -> bool {
        let width = window.div_ceil(QUOTA_BUCKETS).max(1);
        let bucket = now / width;
        // `window <= QUOTA_BUCKETS * width`, so a call inside the window ending now is in one of these.
        let oldest = bucket.saturating_sub(QUOTA_BUCKETS);
        let mut state = lock(&self.state);
        while let Some(&(b, n)) = state.buckets.front() {
            if b >= oldest {
                break;
            }
            state.total -= n;
            state.buckets.pop_front();
        }
        if state.total >= limit {
            return false;
        }
        state.total += 1;
        match state.buckets.back_mut() {
            // A caller whose `now` was read just before another's may come second: count it in the
            // newer bucket, which only keeps it longer.
            Some((b, n)) if *b >= bucket => *n += 1,
            _ => state.buckets.push_back((bucket, 1)),
        }
        true
    }

    /// Forgets all calls.
    pub(crate) fn reset(&self) {
        *lock(&self.state) = QuotaState::default();
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

const SHARDS: usize = 64;

/// A map keyed by 64-bit hashes, split into shards with a short lock each.
#[derive(Debug)]
pub(crate) struct ShardedMap<V> {
    shards: Vec<Mutex<HashKeyed<V>>>,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashKeyed::default())).collect() }
    }
}

impl<V> ShardedMap<V> {
    /// Runs `f` on the shard holding `key`, with the shard locked.
    pub(crate) fn with<R>(&self, key: u64, f: impl FnOnce(&mut HashKeyed<V>) -> R) -> R {
        // The low bits pick the shard; the map uses the whole key.
        let shard = &self.shards[(key as usize) % SHARDS];
        f(&mut lock(shard))
    }

    /// Empties every shard.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
    }
}

/// The pair rate limit per (business number, recipient): one message per interval, with a burst
/// (`cloud-api.md` §7, [L]).
#[derive(Debug, Default)]
pub(crate) struct PairLimiter {
    tats: ShardedMap<u64>,
}

impl PairLimiter {
    /// Takes a cell for `key` (a hash of number and recipient).
    pub(crate) fn acquire(&self, key: u64, now: u64, interval: u64, burst: u32) -> Result<(), u64> {
        let tolerance = interval.saturating_mul(u64::from(burst.max(1) - 1));
        self.tats.with(key, |map| {
            // Entries whose TAT has passed behave as absent: drop them now and then to bound memory.
            if map.len() > 4096 {
                map.retain(|_, tat| *tat > now);
            }
            let tat = map.get(&key).copied().unwrap_or(0).max(now);
            if tat - now > tolerance {
                return Err(tat - now - tolerance);
            }
            map.insert(key, tat + interval);
            Ok(())
        })
    }

    pub(crate) fn reset(&self) {
        self.tats.clear();
    }
}

/// The messaging-limit tier: unique users a business may start conversations with (outside the
/// customer-service window) per rolling 24 hours.
#[derive(Debug, Default)]
pub(crate) struct TierTracker {
    contacted: Mutex<HashKeyed<u64>>,
}

impl TierTracker {
    /// Whether `user` may be contacted at `now`: yes if contacted within `window` already, or if fewer
    /// than `limit` users were. Records the contact when allowed.
    pub(crate) fn admit(&self, user: u64, now: u64, window: u64, limit: u32) -> bool {
        let mut map = lock(&self.contacted);
        let since = now.saturating_sub(window);
        if let Some(at) = map.get_mut(&user)
            && *at >= since
        {
            *at = now;
            return true;
        }
        if map.len() >= limit as usize {
            map.retain(|_, at| *at >= since);
        }
        if map.len() >= limit as usize {
            return false;
        }
        map.insert(user, now);
        true
    }

    pub(crate) fn reset(&self) {
        lock(&self.contacted).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_burst_then_spaces() {
        let g = AtomicGcra::default();
        let interval = 100;
        let tolerance = 200; // burst of 3
        assert!(g.acquire(1000, interval, tolerance).is_ok());
        assert!(g.acquire(1000, interval, tolerance).is_ok());
        assert!(g.acquire(1000, interval, tolerance).is_ok());
        assert_eq!(g.acquire(1000, interval, tolerance), Err(100));
        assert!(g.acquire(1100, interval, tolerance).is_ok());
        assert!(g.acquire(1100, interval, tolerance).is_err());
    }

    /// Admitted calls as (time) in order: the largest number inside any rolling window of `window` ns.
    fn most_in_any_window(admitted: &[u64], window: u64) -> usize {
        admitted
            .iter()
            .enumerate()
            .map(|(i, end)| admitted[..=i].iter().filter(|start| **start + window > *end).count())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn rolling_quota_never_admits_more_than_the_limit_in_any_rolling_window() {
        let quota = RollingQuota::default();
        let (window, limit) = (3_600_000_u64, 100_u64);
        let mut admitted = Vec::new();
        // A burst that uses the whole quota at once, then a steady stream of attempts (four per quota
        // share of the window) for three windows.
        for _ in 0..2 * limit {
            if quota.acquire(5, window, limit) {
                admitted.push(5);
            }
        }
        assert_eq!(admitted.len() as u64, limit);
        let step = window / (4 * limit);
        let mut now = 5;
        while now < 3 * window {
            now += step;
            if quota.acquire(now, window, limit) {
                admitted.push(now);
            }
        }
        assert!(most_in_any_window(&admitted, window) <= limit as usize, "{admitted:?}");
        // The quota comes back as calls leave the window: three windows admit close to three quotas.
        assert!(admitted.len() as u64 >= 2 * limit + limit / 2, "{}", admitted.len());
        // After a reset the whole quota is there again.
        quota.reset();
        assert!((0..limit).all(|_| quota.acquire(now, window, limit)));
        assert!(!quota.acquire(now, window, limit));
    }

    #[test]
    fn rolling_quota_with_a_window_shorter_than_its_buckets() {
        // 30 ns of window: buckets of 1 ns; the bound still holds.
        let quota = RollingQuota::default();
        let admitted: Vec<u64> = (0..200).filter(|t| quota.acquire(*t / 2, 30, 3)).map(|t| t / 2).collect();
        assert!(most_in_any_window(&admitted, 30) <= 3, "{admitted:?}");
        assert!(admitted.len() >= 6);
    }

    #[test]
    fn pair_limiter_burst() {
        let p = PairLimiter::default();
        assert!(p.acquire(7, 0, 1000, 2).is_ok());
        assert!(p.acquire(7, 0, 1000, 2).is_ok());
        assert!(p.acquire(7, 0, 1000, 2).is_err());
        assert!(p.acquire(8, 0, 1000, 2).is_ok());
        assert!(p.acquire(7, 1000, 1000, 2).is_ok());
    }

    #[test]
    fn tier_counts_unique_users() {
        let t = TierTracker::default();
        assert!(t.admit(1, 10, 100, 2));
        assert!(t.admit(2, 10, 100, 2));
        assert!(t.admit(1, 20, 100, 2));
        assert!(!t.admit(3, 20, 100, 2));
        assert!(t.admit(3, 200, 100, 2));
    }
}
