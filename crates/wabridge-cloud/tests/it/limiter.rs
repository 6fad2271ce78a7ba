//! The rate limiter: unit behaviour and the two properties of issue 3 — never more than the level in any
//! one-second window, and at least 99 % of the level admitted under saturation.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::json;
use wabridge_cloud::CloudError;
use wabridge_cloud::limiter::{DEFAULT_SLACK, Gcra, NumberLimiter, PairLimiter, RateLimiter};
use wabridge_types::PhoneNumberId;
use wabridge_types::limits::{Limits, ThroughputLevel};

const SECOND: Duration = Duration::from_secs(1);

fn number() -> PhoneNumberId {
    PhoneNumberId::new("106540352242922")
}

/// Asserts that before each admitted send, the events (sends and inbound) of the trailing second number at
/// most `level`. `events` is (time, is_admitted_send) in time order.
fn assert_window(events: &[(Instant, bool)], level: u32) -> Result<(), TestCaseError> {
    let mut window: VecDeque<Instant> = VecDeque::new();
    for &(t, admitted_send) in events {
        window.push_back(t);
        while window.front().is_some_and(|&f| t.duration_since(f) >= SECOND) {
            window.pop_front();
        }
        if admitted_send {
            prop_assert!(
                window.len() <= level as usize,
                "{} events in one second at level {level}",
                window.len()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random arrivals (bursts, gaps, inbound messages mixed in) at a random level: whenever a send is
    /// admitted, the trailing second holds at most `level` events.
    #[test]
    fn never_more_than_the_level_in_any_second(
        level in prop_oneof![Just(20u32), Just(80u32), Just(1000u32), 1u32..200],
        arrivals in prop::collection::vec((0u64..40_000, any::<bool>(), 0u8..10), 1..1500),
    ) {
        let mut limiter = NumberLimiter::new(Limits::default());
        limiter.set_mps(&number(), level);
        let start = Instant::now();
        let mut now = start;
        let mut events = Vec::new();
        for (gap_us, burst, inbound_roll) in arrivals {
            // Bursts arrive at the same instant; other arrivals after up to 40 ms.
            if !burst {
                now += Duration::from_micros(gap_us);
            }
            if inbound_roll == 0 {
                limiter.record_inbound(&number(), now);
                events.push((now, false));
            } else if limiter.check(&number(), now).is_ok() {
                events.push((now, true));
            }
        }
        assert_window(&events, level)?;
    }

    /// A saturating sender that comes back when told (a little late, within the slack): at least 99 % of
    /// the level is admitted over several seconds, and the window bound still holds.
    /// Bursts of inbound messages (up to 300 at one instant) mixed with sends: the window bound holds, and
    /// no send is ever told to wait longer than one window plus the slack, however many came in.
    #[test]
    fn inbound_bursts_keep_the_window_and_block_one_window_at_most(
        level in prop_oneof![Just(20u32), Just(80u32), Just(1000u32), 2u32..200],
        steps in prop::collection::vec((0u64..300_000, 0u32..300, any::<bool>()), 1..300),
    ) {
        let mut limiter = NumberLimiter::new(Limits::default());
        limiter.set_mps(&number(), level);
        let mut now = Instant::now();
        let mut events = Vec::new();
        for (gap_us, inbound, send) in steps {
            now += Duration::from_micros(gap_us);
            for _ in 0..inbound {
                limiter.record_inbound(&number(), now);
                events.push((now, false));
            }
            if send {
                match limiter.check(&number(), now) {
                    Ok(()) => events.push((now, true)),
                    Err(wait) => prop_assert!(wait <= SECOND + DEFAULT_SLACK, "told to wait {wait:?}"),
                }
            }
        }
        assert_window(&events, level)?;
    }

    #[test]
    fn saturation_admits_at_least_99_percent(level in 1u32..=1000, seconds in 3u64..8, seed in any::<u64>()) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut limiter = NumberLimiter::new(Limits::default());
        limiter.set_mps(&number(), level);
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut now = start;
        let mut events = Vec::new();
        while now < end {
            match limiter.check(&number(), now) {
                Ok(()) => events.push((now, true)),
                Err(wait) => {
                    let late = Duration::from_nanos(rng.random_range(0..=DEFAULT_SLACK.as_nanos() as u64));
                    now += wait + late;
                }
            }
        }
        let admitted = events.len() as f64;
        let target = f64::from(level) * seconds as f64;
        prop_assert!(admitted >= 0.99 * target, "{admitted} admitted of {target}");
        assert_window(&events, level)?;
    }

    /// Random dense arrivals saturate the limiter too. "Dense" is relative to the level: gaps of at most a
    /// quarter of the emission interval (and at most the 5 ms slack), so that at every level arrivals come
    /// far faster than admissions — the saturation the property is about.
    #[test]
    fn dense_random_arrivals_admit_at_least_99_percent(level in prop_oneof![Just(20u32), Just(80u32), 1u32..300],
                                                       seed in any::<u64>()) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut gcra = Gcra::per_second(level);
        let start = Instant::now();
        let end = start + Duration::from_secs(4);
        let max_gap_us = (250_000 / u64::from(level)).clamp(1, 5_000);
        let mut now = start;
        let mut events = Vec::new();
        while now < end {
            if gcra.check(now).is_ok() {
                events.push((now, true));
            }
            now += Duration::from_micros(rng.random_range(0..=max_gap_us));
        }
        prop_assert!(events.len() as f64 >= 0.99 * f64::from(level) * 4.0, "{} admitted", events.len());
        assert_window(&events, level)?;
    }
}

#[test]
fn levels_come_from_limits_and_overrides_win() {
    let mut limiter = NumberLimiter::new(Limits::default());
    let n = number();
    assert_eq!(limiter.level(&n), 80);
    limiter.set_level(&n, &ThroughputLevel::High);
    assert_eq!(limiter.level(&n), 1000);
    limiter.set_coexistence(&n);
    assert_eq!(limiter.level(&n), 20);
    limiter.set_level(&n, &ThroughputLevel::Standard);
    assert_eq!(limiter.level(&n), 20, "the override wins over what Meta reports");
    limiter.set_override(&n, None);
    assert_eq!(limiter.level(&n), 80);
}

/// Admissions at one instant, at most `max`.
fn burst_at(limiter: &mut NumberLimiter, n: &PhoneNumberId, at: Instant, max: usize) -> usize {
    (0..max).take_while(|_| limiter.check(n, at).is_ok()).count()
}

#[test]
fn a_larger_tolerance_lets_a_late_caller_catch_up_without_raising_the_rate() {
    let n = number();
    let t0 = Instant::now();
    let mut strict = NumberLimiter::new(Limits::default());
    strict.set_mps(&n, 1000);
    // The default tolerance is the slack: 5 ms at 1,000 msg/s.
    assert_eq!(burst_at(&mut strict, &n, t0, 100), 5);
    let mut tolerant = NumberLimiter::new(Limits::default()).with_tolerance(Duration::from_millis(20));
    tolerant.set_mps(&n, 1000);
    assert_eq!(burst_at(&mut tolerant, &n, t0, 100), 20);
    // A caller that comes back 15 ms late gets those 15 ms of sends at once (the strict one only 5).
    let late = t0 + Duration::from_millis(40);
    assert!(burst_at(&mut strict, &n, late, 100) <= 6 + 1);
    assert!(burst_at(&mut tolerant, &n, late, 100) >= 15);
    // Over a second of asking every millisecond, both admit the level less the slack plus their one burst
    // after idling, never more.
    for limiter in [&mut strict, &mut tolerant] {
        let start = t0 + Duration::from_secs(10);
        let admitted: usize =
            (0..1000).map(|ms| burst_at(limiter, &n, start + Duration::from_millis(ms), 100)).sum();
        assert!((990..=1020).contains(&admitted), "{admitted}");
    }
    // The tolerance survives a level change.
    tolerant.set_mps(&n, 80);
    let later = t0 + Duration::from_secs(60);
    assert_eq!(burst_at(&mut tolerant, &n, later, 100), 2, "20 ms at 80 msg/s is one interval and a bit");
}

#[test]
fn inbound_messages_take_room_from_sends() {
    let mut limiter = NumberLimiter::new(Limits::default());
    let n = number();
    limiter.set_mps(&n, 2);
    let t = Instant::now();
    limiter.record_inbound(&n, t);
    limiter.record_inbound(&n, t);
    let wait = limiter.check(&n, t).unwrap_err();
    assert!(wait > Duration::from_millis(900), "{wait:?}");
    assert!(limiter.check(&n, t + wait).is_ok());
}

/// Meta counts inbound messages within its one-second window: a thousand of them at once at level 80 hold
/// sends back for that window, not for the 12.5 s a thousand send intervals would make.
#[test]
fn a_burst_of_inbound_messages_blocks_sends_one_window_at_most() {
    let mut limiter = RateLimiter::new(Limits::default());
    let n = number();
    let t = Instant::now();
    for _ in 0..1000 {
        limiter.record_inbound(&n, t);
    }
    let wait = limiter.check(&n, "16505551234", t).unwrap_err();
    assert!(wait <= SECOND, "{wait:?}");
    assert!(wait >= SECOND - DEFAULT_SLACK, "the window is still full: {wait:?}");
    assert!(limiter.check(&n, "16505551234", t + SECOND).is_ok());
    // From there, the level again: one send per interval, no burst.
    assert!(limiter.check(&n, "16505550000", t + SECOND).is_err());
}

/// After a 131056, the pair's burst is used up: when the freeze ends, one message goes, the next waits a
/// full pair interval (not the 44 more a fresh pair could send at once).
#[test]
fn after_a_pair_limit_error_the_pair_has_no_burst_left() {
    let mut limiter = RateLimiter::new(Limits::default());
    let t = Instant::now();
    let pair_limit = CloudError::Graph {
        status: 400,
        error: Box::new(wabridge_types::GraphError::new(131056, "pair")),
        retry_after_header: None,
    };
    // Only one message was sent to the user as far as this limiter knows; Meta says the pair is at its limit.
    assert!(limiter.check(&number(), "u1", t).is_ok());
    assert!(limiter.apply_error(&number(), "u1", &pair_limit, t));
    let thawed = t + Duration::from_secs(6);
    assert_eq!(limiter.check(&number(), "u1", t), Err(Duration::from_secs(6)));
    assert!(limiter.check(&number(), "u1", thawed).is_ok());
    assert_eq!(limiter.check(&number(), "u1", thawed), Err(Duration::from_secs(6)));
    let interval = Limits::default().pair_interval;
    assert!(limiter.check(&number(), "u1", thawed + interval).is_ok());
    // Other users keep their burst.
    for _ in 0..10 {
        assert!(limiter.pairs_mut().check(&number(), "u2", thawed).is_ok());
    }
}

#[test]
fn freezing_a_number() {
    let mut limiter = RateLimiter::new(Limits::default());
    let n = number();
    let t = Instant::now();
    limiter.freeze_number_until(&n, t + Duration::from_secs(60));
    assert_eq!(limiter.check(&n, "1", t), Err(Duration::from_secs(60)));
    assert_eq!(limiter.check(&n, "2", t + Duration::from_secs(59)), Err(Duration::from_secs(1)));
    // An earlier freeze does not shorten it.
    limiter.freeze_number_until(&n, t + Duration::from_secs(1));
    assert!(limiter.check(&n, "1", t + Duration::from_secs(30)).is_err());
    assert!(limiter.check(&n, "1", t + Duration::from_secs(60)).is_ok());
}

#[test]
fn pair_limit_bursts_45_then_one_per_6_seconds() {
    let mut pairs = PairLimiter::from_limits(&Limits::default());
    let n = number();
    let t = Instant::now();
    for i in 0..45 {
        assert!(pairs.check(&n, "16505551234", t).is_ok(), "message {i} of the burst");
    }
    let wait = pairs.check(&n, "16505551234", t).unwrap_err();
    assert_eq!(wait, Duration::from_secs(6));
    assert!(pairs.check(&n, "16505550000", t).is_ok(), "another user is not limited");
    assert!(pairs.check(&n, "16505551234", t + Duration::from_secs(6)).is_ok());
    assert!(pairs.check(&n, "16505551234", t + Duration::from_secs(7)).is_err());
    assert!(pairs.check(&n, "16505551234", t + Duration::from_secs(12)).is_ok());
}

#[test]
fn pair_limit_is_configurable_and_prunable() {
    let mut pairs = PairLimiter::new(Duration::from_millis(100), 2);
    let n = number();
    let t = Instant::now();
    assert!(pairs.check(&n, "a", t).is_ok());
    assert!(pairs.check(&n, "a", t).is_ok());
    assert_eq!(pairs.check(&n, "a", t), Err(Duration::from_millis(100)));
    pairs.freeze_until(&n, "b", t + Duration::from_secs(6));
    assert_eq!(pairs.frozen_until(&n, "b"), Some(t + Duration::from_secs(6)));
    assert_eq!(pairs.len(), 2);
    pairs.prune(t + Duration::from_secs(1));
    assert_eq!(pairs.len(), 1, "only the frozen pair is kept");
    pairs.prune(t + Duration::from_secs(7));
    assert!(pairs.is_empty());
}

#[test]
fn a_send_counts_only_when_both_limits_admit_it() {
    let limits = Limits { pair_burst: 1, ..Limits::default() };
    let mut limiter = RateLimiter::new(limits);
    limiter.set_override(&number(), Some(1));
    let t = Instant::now();
    assert!(limiter.check(&number(), "a", t).is_ok());
    // Refused by the number limit: the pair limit of "b" must not be charged.
    assert!(limiter.check(&number(), "b", t).is_err());
    assert!(limiter.pairs().peek(&number(), "b", t).is_ok());
}

#[test]
fn errors_freeze_what_they_are_about() {
    let mut limiter = RateLimiter::new(Limits::default());
    let t = Instant::now();
    let graph = |code| CloudError::Graph {
        status: 400,
        error: Box::new(serde_json::from_value(json!({"code": code, "message": "x"})).unwrap()),
        retry_after_header: None,
    };
    assert!(limiter.apply_error(&number(), "u1", &graph(131056), t));
    assert_eq!(limiter.pairs().frozen_until(&number(), "u1"), Some(t + Duration::from_secs(6)));
    assert!(limiter.check(&number(), "u2", t).is_ok());
    assert!(limiter.apply_error(&number(), "u1", &graph(130429), t));
    assert_eq!(limiter.numbers().frozen_until(&number()), Some(t + Duration::from_secs(1)));
    assert!(!limiter.apply_error(&number(), "u1", &graph(100), t));
}

#[test]
fn gcra_parameters() {
    let g = Gcra::per_second(80);
    assert_eq!(g.tolerance(), DEFAULT_SLACK);
    assert_eq!(g.interval(), Duration::from_nanos(12_562_500));
    assert_eq!(g.burst(), 1);
    let pair = Gcra::new(Duration::from_secs(6), 45);
    assert_eq!(pair.burst(), 45);
    assert_eq!(pair.tolerance(), Duration::from_secs(264));
}

#[test]
fn one_user_written_two_ways_shares_one_pair_budget() {
    let mut pairs = PairLimiter::new(Duration::from_secs(6), 1);
    let n = number();
    let t = Instant::now();
    assert!(pairs.check(&n, "+1 (650) 555-1234", t).is_ok());
    assert!(pairs.check(&n, "16505551234", t).is_err(), "the same user to Meta");
    assert!(pairs.check(&n, "16505551235", t).is_ok());
    // A business-scoped id is its own key, as given.
    assert!(pairs.check(&n, "US.13491208655302741918", t).is_ok());
    assert!(pairs.check(&n, "US.13491208655302741918", t).is_err());
    assert!(pairs.check(&n, "13491208655302741918", t).is_ok());
}
