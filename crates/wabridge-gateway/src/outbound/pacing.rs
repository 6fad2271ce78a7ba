//! Limits that span the numbers of a WhatsApp Business Account, shared by their schedulers: a WABA-wide
//! pause (80007), the WABA's hourly call quota, and the messaging-limit tier (unique users reached outside
//! their 24-hour window per rolling 24 hours).
//!
//! They hold across instances because one instance at a time sends for all the numbers of a WABA: the sending
//! lease is the WABA's (see `scheduler.rs`). The tier's users are also kept in the store (`waba_reached`) and
//! loaded when this instance takes the WABA ([`WabaPacing::join`]). The hourly quota is spread evenly (no
//! burst), so a limiter that starts afresh cannot add a second hour's calls: a rolling hour across a restart
//! holds at most the quota plus `2 + 2 × slack / interval` calls (35 at Meta's 11,880,000).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wabridge_cloud::limiter::{DEFAULT_SLACK, Gcra};

/// The messaging-limit tier's rolling window.
pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

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
    /// The schedulers of this instance that send for the WABA (hold its lease) now.
    holders: usize,
    /// Held while the first of them loads what the store knows of the WABA, so the others wait for it.
    gate: Arc<tokio::sync::Mutex<()>>,
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
            holders: 0,
            gate: Arc::default(),
        });
        f(state)
    }

    /// Serializes [`Self::join`]s of `waba`: hold it across the join and the load that follows a first one.
    pub(super) fn gate(&self, waba: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.with(waba, |s| s.gate.clone())
    }

    /// A scheduler of `waba` begins to send for its number (its instance holds the WABA's lease); true when
    /// it is the first of this instance's: what other instances did meanwhile must then be loaded
    /// ([`Self::restore_reached`]) before anyone sends.
    pub(super) fn join(&self, waba: &str) -> bool {
        self.with(waba, |s| {
            s.holders += 1;
            s.holders == 1
        })
    }

    /// A scheduler of `waba` stops sending for its number.
    pub(super) fn leave(&self, waba: &str) {
        self.with(waba, |s| s.holders = s.holders.saturating_sub(1));
    }

    /// Adds users `waba` reached (as the store knows them, with when) to those counted against its tier. A
    /// user known here already keeps the later of both times: counting too long only errs on the safe side.
    pub(super) fn restore_reached(&self, waba: &str, users: Vec<(String, Instant)>) {
        self.with(waba, |s| {
            for (user, at) in users {
                let at = s.reached.get(&user).map_or(at, |known| (*known).max(at));
                s.reached.insert(user, at);
            }
            let mut order: Vec<(Instant, String)> =
                s.reached.iter().map(|(u, at)| (*at, u.clone())).collect();
            order.sort();
            s.reached_order = order.into();
        });
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
    /// long until a slot frees. `Ok(true)`: the user takes a new slot (to be recorded in the store).
    ///
    /// # Errors
    /// The wait.
    pub fn admit_outside_window(&self, waba: &str, recipient: &str, now: Instant) -> Result<bool, Duration> {
        if self.messaging_limit == 0 {
            return Ok(false);
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
                return Ok(false);
            }
            if s.reached.len() < limit {
                s.reached.insert(recipient.to_owned(), now);
                s.reached_order.push_back((now, recipient.to_owned()));
                return Ok(true);
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

    const HOUR: Duration = Duration::from_secs(3600);

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
    fn restored_users_count_against_the_tier_until_a_day_after_they_were_reached() {
        let p = WabaPacing::new(1000, 2);
        let now = Instant::now() + DAY;
        assert!(p.join("w"), "the first scheduler of the WABA loads the store's users");
        assert!(!p.join("w"));
        // Reached by an earlier run: one 23 hours ago, one an hour ago.
        p.restore_reached("w", vec![("a".into(), now - DAY + HOUR), ("b".into(), now - HOUR)]);
        assert_eq!(p.admit_outside_window("w", "a", now), Ok(false));
        let wait = p.admit_outside_window("w", "c", now).unwrap_err();
        assert_eq!(wait, HOUR, "a new user waits until the oldest is a day old");
        assert_eq!(p.admit_outside_window("w", "c", now + HOUR), Ok(true));
        // Restoring again (another scheduler's term) changes nothing counted.
        p.restore_reached("w", vec![("b".into(), now - HOUR)]);
        assert!(p.admit_outside_window("w", "d", now + HOUR).is_err());
        p.leave("w");
        p.leave("w");
        assert!(p.join("w"), "after every scheduler left, the next one loads again");
    }

    /// Why the hourly quota is not loaded from the store: it is spread evenly (no burst), so a limiter that
    /// starts afresh at a restart admits at most `2 + 2 × slack / interval` calls more than the quota in any
    /// rolling hour, not a second hour's calls.
    #[test]
    fn a_fresh_hourly_limiter_after_a_restart_adds_no_second_hour() {
        let quota = 3_600;
        let start = Instant::now();
        let mut calls = Vec::new();
        // Saturated for half an hour, then a restart (a new limiter), then saturated again.
        for (from, to) in [(0, 1800), (1800, 3600 * 2)] {
            let p = WabaPacing::new(quota, 0);
            let mut t = start + Duration::from_secs(from);
            while t < start + Duration::from_secs(to) {
                match p.admit_call("w", t) {
                    Ok(()) => {
                        calls.push(t);
                        t += Duration::from_millis(1);
                    }
                    Err(wait) => t += wait,
                }
            }
        }
        let most = calls
            .iter()
            .enumerate()
            .map(|(i, at)| calls[i..].iter().take_while(|c| **c < *at + HOUR).count())
            .max()
            .unwrap();
        // The old limiter's schedule ran up to one interval and the slack ahead of the restart, and the new one
        // may run the slack ahead again: two calls and twice the slack's worth at most.
        let extra = 2 + (2 * DEFAULT_SLACK.as_nanos() * u128::from(quota) / HOUR.as_nanos()) as usize;
        assert!(most <= quota as usize + extra, "{most} calls in an hour");
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
