//! Whether Meta answers for a number. Errors that describe the number or the way to Meta rather than the
//! message — transport errors, HTTP 5xx, codes 1, 2, 4, 131000, 131016 — say nothing about the message that
//! happened to meet them: during an outage every message meets one. So they are charged to a message (one
//! of its `outbound.max_attempts`) only when the number was shown to work since that message last failed;
//! otherwise the number as a whole backs off and then probes, one send at a time, until Meta answers again.
//! An outage of any length then fails nothing, while a message that keeps failing as its neighbours go
//! through still ends `failed`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use wabridge_types::error::{Classification, ErrorClass};

use crate::config::OutboundConfig;

/// Whether an error so classified is about the number or the connection rather than the message: Meta's
/// side failing or overloaded (1, 2, 131000, 131016, transport errors, 5xx without a known code) and the
/// app's call quota (4). Errors that pause a recipient, the number or the WABA have their own handling.
#[must_use]
pub(super) fn about_the_number(c: &Classification) -> bool {
    matches!(c.class, ErrorClass::TransientServer | ErrorClass::CallQuota) && c.pause.is_none()
}

/// A backoff in milliseconds: `outbound.retry_base_ms` doubled `exponent` times, at most
/// `outbound.retry_max_ms`, at least `floor` (the error's own delay or `Retry-After`), ±20 % jitter.
#[must_use]
pub(super) fn backoff_ms(cfg: &OutboundConfig, exponent: u32, floor: Option<Duration>) -> u64 {
    let exp = cfg.retry_base_ms.saturating_mul(1u64 << exponent.min(20));
    let base = exp.min(cfg.retry_max_ms).max(floor.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)));
    let jitter: f64 = rand::rng().random_range(0.8..1.2);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_sign_loss)]
    let ms = (base as f64 * jitter) as u64;
    ms.max(1)
}

/// One number's outage state, kept by its scheduler.
#[derive(Debug, Default)]
pub(super) struct Outage {
    /// Sends of the number Meta accepted so far: the clock against which failures are dated.
    accepted: u64,
    /// Per message that met an error about the number: `accepted` when it did.
    failed_at: HashMap<String, u64>,
    /// Backoff rounds since the number last got a message through (0: Meta answers).
    rounds: u32,
    /// When the current round began, and until when the number waits.
    round: Option<(Instant, Instant)>,
}

impl Outage {
    /// The clock to give a send when it is dispatched.
    #[must_use]
    pub(super) fn stamp(&self) -> u64 {
        self.accepted
    }

    /// Meta accepted a send: the number works. Returns whether an outage ended.
    pub(super) fn accepted(&mut self, id: &str) -> bool {
        self.accepted += 1;
        self.failed_at.remove(id);
        let ended = self.rounds > 0;
        self.rounds = 0;
        self.round = None;
        ended
    }

    /// Message `id`, dispatched at `stamp`, failed with an error about the number. Whether the failure is
    /// charged to it: only when another send of the number was accepted since the message last failed
    /// (since it was dispatched, for its first such failure here) — the number worked, this message did not.
    pub(super) fn charge(&mut self, id: &str, stamp: u64) -> bool {
        let since = self.failed_at.insert(id.to_owned(), self.accepted).unwrap_or(stamp);
        self.accepted > since
    }

    /// Message `id` left the scheduler (sent, failed, expired, of unknown outcome).
    pub(super) fn forget(&mut self, id: &str) {
        self.failed_at.remove(id);
    }

    /// A send dispatched at `dispatched` met an error about the number that was not charged to its message:
    /// the number waits, the next round of a growing backoff, unless the current round already accounts for
    /// it (a send that left before the round began). Returns the wait when a round begins.
    pub(super) fn back_off(
        &mut self,
        cfg: &OutboundConfig,
        dispatched: Instant,
        floor: Option<Duration>,
    ) -> Option<Duration> {
        let now = Instant::now();
        if let Some((began, until)) = self.round
            && (until > now || dispatched < began)
        {
            return None;
        }
        self.rounds = self.rounds.saturating_add(1);
        let wait = Duration::from_millis(backoff_ms(cfg, self.rounds - 1, floor));
        self.round = Some((now, now + wait));
        Some(wait)
    }

    /// Until when the number waits, if it does at `now`.
    #[must_use]
    pub(super) fn waiting(&self, now: Instant) -> Option<Instant> {
        self.round.map(|(_, until)| until).filter(|until| *until > now)
    }

    /// Whether the number is in an outage: it sends one probe at a time until one is accepted.
    #[must_use]
    pub(super) fn probing(&self) -> bool {
        self.rounds > 0
    }

    /// Rounds so far (0: Meta answers).
    #[must_use]
    pub(super) fn rounds(&self) -> u32 {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutboundConfig {
        OutboundConfig { retry_base_ms: 100, retry_max_ms: 1_000, ..OutboundConfig::default() }
    }

    /// During an outage nothing is accepted, so no failure is charged however often messages meet one.
    #[test]
    fn failures_during_an_outage_are_not_charged() {
        let mut o = Outage::default();
        let stamp = o.stamp();
        for _ in 0..100 {
            assert!(!o.charge("a", stamp));
            assert!(!o.charge("b", stamp));
        }
    }

    /// A message that fails while others go through is charged each time.
    #[test]
    fn a_message_failing_between_successes_is_charged() {
        let mut o = Outage::default();
        let stamp = o.stamp();
        // Its first failure, nothing accepted while it was on its way: not charged.
        assert!(!o.charge("poison", stamp));
        for i in 0..5 {
            assert!(!o.accepted(&format!("ok-{i}")), "no outage to end");
            let stamp = o.stamp();
            assert!(o.charge("poison", stamp), "round {i}");
        }
        o.forget("poison");
        assert!(o.failed_at.is_empty());
    }

    /// A send accepted while another was on its way shows the number works: that other's failure counts.
    #[test]
    fn success_while_in_flight_charges_the_failure() {
        let mut o = Outage::default();
        let stamp = o.stamp();
        o.accepted("other");
        assert!(o.charge("m", stamp));
    }

    #[test]
    fn backoff_grows_per_round_and_caps() {
        let c = cfg();
        let mut o = Outage::default();
        let before = Instant::now();
        let first = o.back_off(&c, before, None).unwrap();
        assert!((80..=120).contains(&first.as_millis()), "{first:?}");
        // Failures of the same round (sends already out) do not start another.
        assert!(o.back_off(&c, before, None).is_none());
        assert!(o.waiting(Instant::now()).is_some());
        assert!(o.probing());
        let mut last = first;
        for _ in 0..10 {
            // The round is over; the probe (dispatched after it began) fails.
            o.round = o.round.map(|(began, _)| (began, Instant::now()));
            last = o.back_off(&c, Instant::now(), None).unwrap();
        }
        assert!((800..=1_200).contains(&last.as_millis()), "capped at retry_max_ms: {last:?}");
        assert_eq!(o.rounds(), 11);
        assert!(o.accepted("probe"), "an accepted send ends the outage");
        assert!(!o.probing() && o.waiting(Instant::now()).is_none());
    }
}
