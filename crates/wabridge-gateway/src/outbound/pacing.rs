//! Limits that span the numbers of a WhatsApp Business Account, shared by their schedulers: a WABA-wide
//! pause (80007), the WABA's hourly call quota, and the messaging-limit tier (unique users reached outside
//! their 24-hour window per rolling 24 hours).

use std::collections::HashMap;
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
    /// Users reached outside their window, with when they were first reached.
    reached: HashMap<String, Instant>,
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
            s.reached.retain(|_, at| now.saturating_duration_since(*at) < DAY);
            if s.reached.contains_key(recipient) {
                return Ok(());
            }
            if s.reached.len() < limit {
                s.reached.insert(recipient.to_owned(), now);
                return Ok(());
            }
            let oldest = s.reached.values().min().copied().unwrap_or(now);
            Err((oldest + DAY).saturating_duration_since(now).max(Duration::from_millis(1)))
        })
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
        p.pause("w", now + Duration::from_secs(5));
        assert!(p.paused_until("w", now).is_some());
        assert!(p.paused_until("w", now + Duration::from_secs(6)).is_none());
    }
}
