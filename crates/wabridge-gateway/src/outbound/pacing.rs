//! Limits that span the numbers of a WhatsApp Business Account, shared by their schedulers: a WABA-wide
//! pause (80007), the WABA's hourly call quota, and the messaging-limit tier (unique users reached outside
//! their 24-hour window per rolling 24 hours).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wabridge_cloud::limiter::{DEFAULT_SLACK, Gcra};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The shared WABA limits.
#[derive(Debug)]
pub struct WabaPacing {
    calls_per_hour: u32,
    messaging_limit: u32,
    wabas: Mutex<HashMap<String, WabaState>>,
}

#[derive(Debug)]
struct WabaState {
    paused_until: Option<Instant>,
    hourly: Gcra,
    /// Users reached outside their window in the last 24 hours, with when they were first reached.
    reached: HashMap<String, Instant>,
    /// The same, oldest first: expiring them costs one look at the front per call, not a scan of every user
    /// (a tier holds up to 100,000).
    reached_order: VecDeque<(Instant, String)>,
}

impl WabaPacing {
    /// `calls_per_hour` per WABA (at least 1), `messaging_limit` users outside the window per 24 h (0 =
    /// unlimited).
    #[must_use]
    pub fn new(calls_per_hour: u64, messaging_limit: u32) -> Self {
        Self {
            calls_per_hour: u32::try_from(calls_per_hour.max(1)).unwrap_or(u32::MAX),
            messaging_limit,
            wabas: Mutex::default(),
        }
    }

    fn with<T>(&self, waba: &str, f: impl FnOnce(&mut WabaState) -> T) -> T {
        let mut map = self.wabas.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = map.entry(waba.to_owned()).or_insert_with(|| WabaState {
            paused_until: None,
            hourly: Gcra::per_window(self.calls_per_hour, Duration::from_secs(3600), DEFAULT_SLACK),
            reached: HashMap::new(),
            reached_order: VecDeque::new(),
        });
        f(state)
    }

    /// Pauses every number of `waba` until `until` (never shortens a pause).
    pub fn pause(&self, waba: &str, until: Instant) {
        self.with(waba, |s| s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until))));
    }

    /// Until when `waba` is paused, if it is at `now`.
    #[must_use]
    pub fn paused_until(&self, waba: &str, now: Instant) -> Option<Instant> {
        self.with(waba, |s| s.paused_until.filter(|p| *p > now))
    }

    /// Counts one call against the hourly quota, or says how long to wait.
    ///
    /// # Errors
    /// The wait.
    pub fn admit_call(&self, waba: &str, now: Instant) -> Result<(), Duration> {
        self.with(waba, |s| s.hourly.check(now))
    }

    /// Admits a message to `recipient` whose window is closed under the messaging-limit tier, or says how
    /// long until a slot frees.
    ///
    /// # Errors
    /// The wait.
    pub fn admit_outside_window(&self, waba: &str, recipient: &str, now: Instant) -> Result<(), Duration> {
        if self.messaging_limit == 0 {
            return Ok(());
        }
        let limit = self.messaging_limit as usize;
        self.with(waba, |s| {
            while let Some((at, user)) = s.reached_order.front() {
                if now.saturating_duration_since(*at) < DAY {
                    break;
                }
                if s.reached.get(user) == Some(at) {
                    s.reached.remove(user);
                }
                s.reached_order.pop_front();
            }
            if s.reached.contains_key(recipient) {
                return Ok(());
            }
            if s.reached.len() < limit {
                s.reached.insert(recipient.to_owned(), now);
                s.reached_order.push_back((now, recipient.to_owned()));
                return Ok(());
            }
            let oldest = s.reached_order.front().map_or(now, |(at, _)| *at);
            Err((oldest + DAY).saturating_duration_since(now).max(Duration::from_millis(1)))
        })
    }
}

/// The contacts of one number whose 24-hour customer-service window is open (they wrote in the last 24 hours,
/// as far as this process saw), so that a template to them does not count against the messaging-limit tier.
/// Entries expire after 24 hours; expired ones are dropped in passes whose cost is amortized over the
/// insertions, so the map holds about the contacts of the last day, not every contact ever seen.
#[derive(Debug, Default)]
pub struct Windows {
    opened: HashMap<String, Instant>,
    prune_at: usize,
}

impl Windows {
    /// `contact` wrote at `now`.
    pub fn open(&mut self, contact: String, now: Instant) {
        if self.opened.len() >= self.prune_at {
            self.opened.retain(|_, at| now.saturating_duration_since(*at) < DAY);
            self.prune_at = (self.opened.len() * 2).max(1024);
        }
        self.opened.insert(contact, now);
    }

    /// Whether `contact`'s window is open at `now`.
    #[must_use]
    pub fn is_open(&self, contact: &str, now: Instant) -> bool {
        self.opened.get(contact).is_some_and(|at| now.saturating_duration_since(*at) < DAY)
    }

    /// Contacts held (open or expired but not dropped yet).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.opened.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_counts_unique_users() {
        let p = WabaPacing::new(1000, 2);
        let now = Instant::now();
        assert!(p.admit_outside_window("w", "a", now).is_ok());
        assert!(p.admit_outside_window("w", "b", now).is_ok());
        assert!(p.admit_outside_window("w", "a", now).is_ok());
        assert!(p.admit_outside_window("w", "c", now).is_err());
        assert!(p.admit_outside_window("w", "c", now + DAY).is_ok());
        // Only a and b expired: c holds a slot, so one more fits and then none.
        assert!(p.admit_outside_window("w", "d", now + DAY).is_ok());
        assert!(p.admit_outside_window("w", "e", now + DAY).is_err());
        // The wait is until the oldest of them (c, d) is a day old.
        let wait = p.admit_outside_window("w", "e", now + DAY + Duration::from_secs(3600)).unwrap_err();
        assert_eq!(wait, DAY - Duration::from_secs(3600));
        p.pause("w", now + Duration::from_secs(5));
        assert!(p.paused_until("w", now).is_some());
        assert!(p.paused_until("w", now + Duration::from_secs(6)).is_none());
    }

    #[test]
    fn windows_close_after_a_day_and_are_dropped() {
        let mut w = Windows::default();
        let start = Instant::now();
        w.open("a".into(), start);
        assert!(w.is_open("a", start + DAY - Duration::from_secs(1)));
        assert!(!w.is_open("a", start + DAY));
        assert!(!w.is_open("b", start));
        // Contacts of many days: the map keeps about the last day's, not all of them.
        for day in 0..10_u32 {
            let at = start + DAY * day;
            for n in 0..2000 {
                w.open(format!("{day}-{n}"), at);
            }
        }
        assert!(w.len() <= 2 * 2000 + 1024, "{} held", w.len());
        assert!(w.is_open("9-1999", start + DAY * 9));
        assert!(!w.is_open("8-0", start + DAY * 9));
    }
}
