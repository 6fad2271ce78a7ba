//! The scheduler of one business number: it holds its WABA's sending lease, loads its queued messages, and sends
//! each when every limit admits it — the number's level (GCRA, inbound messages counted), the pair limit per
//! recipient, FIFO per recipient, a bounded in-flight window, the WABA's hourly quota and the
//! messaging-limit tier — then acts on the answer by error class. It sleeps until the next admission time,
//! a new message, an answer, or a lease renewal, whichever comes first. Messages loaded before their
//! `send_at` wait aside and join their recipient's FIFO when due; errors about the number rather than the
//! message back the whole number off (see [`super::outage`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use wabridge_cloud::limiter::{NumberLimiter, PairLimiter, RateLimiter};
use wabridge_types::error::{ErrorClass, PauseScope};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::limits::{Limits, ThroughputLevel};

use super::outage::{self, Outage};
use super::request::{SendFailure, departure_spacing, error_json, send};
use super::{ControlInbox, Shared};
use crate::store::{InDoubt, OutboundOp, QueuedMessage, now_millis};

/// What a send task reports back.
struct Done {
    message: QueuedMessage,
    outcome: Result<String, SendFailure>,
    /// The lease term it was sent in (see [`Scheduler::term`]).
    term: u64,
    /// When it was dispatched, and the number's [`Outage::stamp`] then.
    dispatched: Instant,
    stamp: u64,
}

/// What a load from the store brought (see [`Scheduler::start_load`]).
struct Loaded {
    limit: i64,
    /// The lease term it was started in: rows loaded for an earlier term are not held.
    term: u64,
    result: Result<Vec<QueuedMessage>, crate::store::StoreError>,
}

/// A message loaded before its `send_at`, waiting aside until then (by due time, then load order).
struct Scheduled {
    due: i64,
    seq: u64,
    message: QueuedMessage,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Ready,
    Waiting,
    InFlight,
}

/// One number's scheduler.
pub(super) struct Scheduler {
    shared: Arc<Shared>,
    number: PhoneNumberId,
    waba: String,
    /// The key of the sending lease: the WABA's, shared by all its numbers, so that one instance at a time
    /// sends for every number of a WABA and the WABA-wide limits ([`super::pacing`]) hold across instances.
    lease_key: String,
    /// Users this scheduler's admissions counted against the tier for the first time, not yet recorded in the
    /// store: the next send records them before its own mark.
    unrecorded: Vec<String>,
    level_override: Option<u32>,
    limiter: RateLimiter,
    queues: HashMap<String, VecDeque<QueuedMessage>>,
    turns: HashMap<String, Turn>,
    ready: VecDeque<String>,
    waiting: BinaryHeap<Reverse<(Instant, String)>>,
    /// Messages not tried yet whose `send_at` is ahead: outside their recipient's FIFO until due, so that
    /// they hold back no later message to the same user. (A message waiting for its retry keeps its place.)
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    scheduled_seq: u64,
    held: usize,
    /// Of `held`, the messages of recipients waiting for a limit or a time (`Turn::Waiting`) and the
    /// `scheduled` ones: they do not count against loading more, so that messages parked for long
    /// (templates past the tier, backoffs, `send_at`) do not keep later ones to other recipients in the store.
    parked: usize,
    in_flight: usize,
    /// The messages in `in_flight`: id → recipient. Sends of an earlier lease term included: their recipients
    /// stay in flight for the next term (see [`Self::forget_held`]).
    in_flight_ids: HashMap<String, String>,
    in_doubt: Vec<InDoubt>,
    windows: super::pacing::Windows,
    owner: bool,
    /// Lease terms taken so far: a term begins each time this instance takes the lease. What was
    /// held, loaded or sent in an earlier term is not this term's (another instance may have sent it since).
    term: u64,
    /// Who holds the rows this term loads (`held_by`): the instance and the term, so that a new term loads
    /// again the rows an earlier one held.
    holder: String,
    /// Until when the lease held by this instance is certainly still its own (from its last renewal).
    lease_until: Option<Instant>,
    more_in_store: bool,
    paused_until: Option<Instant>,
    /// After a pause for the operator: one send at a time (a probe) until one succeeds, so that a token or
    /// account still broken costs one refused request per pause, not a whole window.
    probing: bool,
    alerted: bool,
    /// Whether Meta answers for the number (errors about the number back it off as a whole).
    outage: Outage,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// Whether a load from the store is running (at most one at a time).
    loading: bool,
    loaded_tx: mpsc::Sender<Loaded>,
    loaded_rx: mpsc::Receiver<Loaded>,
    /// Reading the number's throughput level: whether a read runs, whether another was asked for meanwhile,
    /// reads failed in a row, and when to try again after a failure.
    level_reading: bool,
    level_again: bool,
    level_failures: u32,
    level_retry_at: Option<Instant>,
    level_tx: mpsc::Sender<Result<ThroughputLevel, String>>,
    level_rx: mpsc::Receiver<Result<ThroughputLevel, String>>,
    inbox: Arc<ControlInbox>,
    wake: Arc<tokio::sync::Notify>,
}

impl Scheduler {
    pub(super) fn new(
        shared: Arc<Shared>,
        number: &str,
        waba: &str,
        level_override: Option<u32>,
        inbox: Arc<ControlInbox>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        let cfg = &shared.config;
        let limits = Limits {
            pair_interval: Duration::from_millis(cfg.pair_interval_ms),
            pair_burst: cfg.pair_burst.max(1),
            ..Limits::default()
        };
        let mut limiter = RateLimiter::new(limits.clone());
        // Admission may run ahead of its schedule by a fifth of the departure lag (20 ms by default): a
        // scheduler task that was not polled for a while (it waited behind other tasks) admits the sends it
        // missed instead of losing that time for good, as it did with the limiter's own 5 ms (stalls of
        // 10-20 ms cost 1-2 % of the level at 1,000 msg/s). Requests still leave at least `1 / level` apart
        // (`Shared::departure`), so a burst of admissions reaches Meta spaced out. Half the lag (50 ms) was
        // measured too: the same rate, but up to 1,046 sends in one second at the sandbox against 1,016 at
        // 20 ms (docs/benchmarks.md).
        *limiter.numbers_mut() = NumberLimiter::new(limits).with_tolerance(super::run_ahead(cfg));
        *limiter.pairs_mut() =
            PairLimiter::new(Duration::from_millis(cfg.pair_interval_ms), cfg.pair_burst.max(1));
        let number = PhoneNumberId::from(number.to_owned());
        limiter.set_override(&number, level_override);
        shared.metrics.outbound_level_mps.set(number.as_str(), u64::from(limiter.numbers().level(&number)));
        let (done_tx, done_rx) = mpsc::channel(cfg.in_flight.max(1) * 2);
        let (loaded_tx, loaded_rx) = mpsc::channel(1);
        let (level_tx, level_rx) = mpsc::channel(1);
        let holder = format!("{}/0", shared.owner_id);
        Self {
            shared,
            number,
            waba: waba.to_owned(),
            lease_key: super::sending_lease_key(waba),
            unrecorded: Vec::new(),
            level_override,
            limiter,
            queues: HashMap::new(),
            turns: HashMap::new(),
            ready: VecDeque::new(),
            waiting: BinaryHeap::new(),
            scheduled: BinaryHeap::new(),
            scheduled_seq: 0,
            held: 0,
            parked: 0,
            in_flight: 0,
            in_flight_ids: HashMap::new(),
            in_doubt: Vec::new(),
            windows: super::pacing::Windows::default(),
            owner: false,
            term: 0,
            holder,
            lease_until: None,
            more_in_store: true,
            paused_until: None,
            probing: false,
            alerted: false,
            outage: Outage::default(),
            done_tx,
            done_rx,
            loading: false,
            loaded_tx,
            loaded_rx,
            level_reading: false,
            level_again: false,
            level_failures: 0,
            level_retry_at: None,
            level_tx,
            level_rx,
            inbox,
            wake,
        }
    }

    /// Runs until the shared cancellation token fires.
    pub(super) async fn run(mut self) {
        let cfg = self.shared.config.clone();
        let lease = Duration::from_millis(cfg.lease_ms.max(300));
        let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
        let grace = Duration::from_millis(cfg.unknown_outcome_grace_ms);
        let reconcile_every = (grace / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        let mut renew_at = Instant::now();
        let mut poll_at = Instant::now() + poll;
        let mut reconcile_at = Instant::now();
        let mut prune_at = Instant::now() + PAIR_PRUNE_EVERY;
        let mut reached_prune_at = Instant::now() + REACHED_PRUNE_EVERY;
        // Sends left `sending` without this scheduler tracking them (a state write that failed after its
        // commit, an instance that lost the number mid-send) are found again by a scan of the store.
        let rescan_every = grace.max(Duration::from_secs(1));
        let mut rescan_at = Instant::now() + rescan_every;
        // Messages held in memory at most, parked ones included.
        let max_held = usize::try_from(cfg.load_batch.max(1)).unwrap_or(1000).saturating_mul(10);
        let half_batch = usize::try_from(cfg.load_batch / 2).unwrap_or(1000);
        let inbox = self.inbox.clone();
        loop {
            let now = Instant::now();
            if now >= renew_at {
                self.renew_lease(lease).await;
                renew_at = now + lease / 3;
            }
            if self.owner {
                if now >= poll_at {
                    self.more_in_store = true;
                    poll_at = now + poll;
                    if self.shared.store.backend_name() == "postgres" {
                        self.drop_cancelled_elsewhere().await;
                    }
                }
                if self.more_in_store
                    && !self.loading
                    && self.held - self.parked.min(self.held) < half_batch
                    && self.held < max_held
                {
                    self.start_load();
                }
                if now >= prune_at {
                    // Pairs idle at `now` behave as fresh ones: forgetting them bounds the memory to the
                    // recipients written to lately.
                    self.limiter.pairs_mut().prune(now);
                    prune_at = now + PAIR_PRUNE_EVERY;
                }
                if now >= reached_prune_at {
                    self.prune_reached().await;
                    reached_prune_at = Instant::now() + REACHED_PRUNE_EVERY;
                }
                if now >= rescan_at {
                    self.rescan_in_doubt(grace).await;
                    rescan_at = Instant::now() + rescan_every;
                }
                if !self.in_doubt.is_empty() && now >= reconcile_at {
                    self.reconcile(grace).await;
                    reconcile_at = Instant::now() + reconcile_every;
                }
                if self.level_retry_at.is_some_and(|at| now >= at) {
                    self.start_level_read();
                }
            }
            // Only while the lease is certainly this instance's: a long reconciliation can outlast it, and the
            // next renewal (at the top of the loop) tells whether it still is.
            let leased = self.lease_until.is_some_and(|until| Instant::now() < until);
            let next = if self.owner && leased { self.admit() } else { None };
            let mut deadline = renew_at.min(if self.owner { poll_at } else { renew_at });
            if let Some(n) = next {
                deadline = deadline.min(n);
            }
            if !self.in_doubt.is_empty() {
                deadline = deadline.min(reconcile_at);
            }
            if self.owner
                && let Some(at) = self.level_retry_at
            {
                deadline = deadline.min(at);
            }
            tokio::select! {
                () = self.shared.cancel.cancelled() => break,
                Some(done) = self.done_rx.recv() => self.finish(done).await,
                Some(loaded) = self.loaded_rx.recv() => self.on_loaded(loaded),
                Some(level) = self.level_rx.recv() => self.on_level(level),
                () = inbox.notified() => self.on_control(),
                () = self.wake.notified() => self.more_in_store = true,
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        self.drain_in_flight().await;
    }

    /// At shutdown: the answers of sends already on their way are recorded (the writers commit them after the
    /// schedulers stop), so that a restart does not send them again as of unknown outcome. Sends still
    /// waiting to depart go back to the queue instead (see [`send`]).
    async fn drain_in_flight(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN_SENDS;
        while self.in_flight > 0 {
            tokio::select! {
                Some(done) = self.done_rx.recv() => self.finish(done).await,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(number = %self.number, sends = self.in_flight,
                        "stopping with sends unanswered; they are reconciled at the next start");
                    break;
                }
            }
        }
    }

    /// Adds the number's `sending` messages older than the grace period that nobody here tracks to the
    /// messages to reconcile.
    async fn rescan_in_doubt(&mut self, grace: Duration) {
        let list = match self.shared.store.outbound_in_doubt(self.number.as_str()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "reading sends of unknown outcome failed");
                return;
            }
        };
        // Older than the grace period and a minute more: a send this instance just finished may still be
        // `sending` in the store until its outcome's write commits, and must not be taken for a lost one.
        let age = grace.saturating_add(RESCAN_MARGIN);
        let cutoff = now_millis().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let known: HashSet<String> = self.in_doubt.iter().map(|d| d.id.clone()).collect();
        for d in list {
            if d.sending_since <= cutoff && !known.contains(&d.id) && !self.in_flight_ids.contains_key(&d.id)
            {
                tracing::warn!(number = %self.number, "a send of unknown outcome was untracked; reconciling it");
                self.in_doubt.push(d);
            }
        }
        self.publish_in_doubt();
    }

    /// Whether this instance sends for the number (it holds the lease); the API reads it too.
    /// Publishes this number's sends of unknown outcome: the gauge is the sum over every number, each
    /// scheduler writing only its own count (one number's empty list must not hide another's).
    fn publish_in_doubt(&self) {
        let numbers = &self.shared.numbers;
        if let Some(n) = numbers.get(self.number.as_str()) {
            n.in_doubt.store(self.in_doubt.len() as u64, Ordering::Relaxed);
        }
        let total = numbers.values().map(|n| n.in_doubt.load(Ordering::Relaxed)).sum();
        self.shared.metrics.outbound_in_doubt.set(total);
    }

    fn set_owner(&mut self, owner: bool) {
        if self.owner && !owner {
            self.shared.pacing.leave(&self.waba);
        }
        self.owner = owner;
        if let Some(n) = self.shared.numbers.get(self.number.as_str()) {
            n.owned.store(owner, Ordering::Relaxed);
        }
    }

    async fn renew_lease(&mut self, lease: Duration) {
        let asked_at = Instant::now();
        let until = now_millis().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let owner = &self.shared.owner_id;
        let renewed = self.shared.store.acquire_number_lease(&self.lease_key, owner, until).await;
        if let Ok(true) = renewed {
            self.lease_until = Some(asked_at + lease);
        }
        match renewed {
            Ok(true) if !self.owner => {
                if !self.join_waba().await {
                    return;
                }
                // A new term: nothing held from an earlier one (another instance may have sent or failed it
                // since) uses a place here; this term loads the number's queue afresh, rows held before
                // included.
                self.forget_held();
                self.term += 1;
                self.holder = format!("{}/{}", self.shared.owner_id, self.term);
                self.set_owner(true);
                self.start_level_read();
                match self.shared.store.outbound_in_doubt(self.number.as_str()).await {
                    Ok(mut list) => {
                        // A send of an earlier term still in flight here is not of unknown outcome: its answer
                        // comes (`finish_stale`), and reconciling it as well would send it again.
                        list.retain(|d| !self.in_flight_ids.contains_key(&d.id));
                        // Their grace counts from now: after a downtime, Meta's retried status webhooks
                        // still have time to reconcile them before any is sent again.
                        let now_ms = now_millis();
                        for d in &mut list {
                            d.grace_from = d.grace_from.max(now_ms);
                        }
                        self.in_doubt = list;
                        self.publish_in_doubt();
                    }
                    Err(e) => tracing::warn!(error = %e, "reading sends of unknown outcome failed"),
                }
                tracing::info!(number = %self.number, "this instance now sends for the number");
            }
            Ok(true) => {}
            Ok(false) => {
                if self.owner {
                    tracing::warn!(number = %self.number, "lost the WABA's lease; another instance sends for the number");
                    self.forget_held();
                }
                self.set_owner(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the WABA's lease failed");
                // Past the lease's end (with a margin for clocks), another instance may hold the number by
                // now: stop sending until a renewal succeeds, or both would send.
                let margin = lease / 6;
                if self.owner && self.lease_until.is_none_or(|end| Instant::now() + margin >= end) {
                    tracing::warn!(number = %self.number, "the WABA's lease may have run out; not sending until it is renewed");
                    self.forget_held();
                    self.set_owner(false);
                }
            }
        }
    }

    /// This scheduler begins to send for its number (its instance took the WABA's lease). The first of this
    /// instance's schedulers of the WABA loads the users the WABA reached outside their window in the last
    /// 24 hours, whoever sent to them (an earlier run, another instance), so that a restart or a failover does
    /// not grant a second tier within the day; the others wait for that load. False when it failed: the
    /// scheduler does not send yet, and its next renewal tries again.
    async fn join_waba(&self) -> bool {
        let pacing = &self.shared.pacing;
        let gate = pacing.gate(&self.waba);
        let _loading = gate.lock().await;
        if !pacing.join(&self.waba) || self.shared.config.messaging_limit == 0 {
            return true;
        }
        let now_ms = now_millis();
        let day_ms = i64::try_from(super::pacing::DAY.as_millis()).unwrap_or(i64::MAX);
        match self.shared.store.waba_reached(&self.waba, now_ms.saturating_sub(day_ms)).await {
            Ok(rows) => {
                let now = Instant::now();
                let users: Vec<(String, Instant)> = rows
                    .into_iter()
                    .map(|(user, at)| {
                        // A time ahead of this clock counts from now; one before this process's clock can
                        // go back, too: both only keep the user counted longer.
                        let age = Duration::from_millis(u64::try_from(now_ms - at).unwrap_or(0));
                        (user, now.checked_sub(age).unwrap_or(now))
                    })
                    .collect();
                tracing::info!(number = %self.number, users = users.len(),
                    "users reached outside their window in the last 24 hours loaded for the WABA");
                pacing.restore_reached(&self.waba, users);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "loading the users the WABA reached failed; not sending yet");
                pacing.leave(&self.waba);
                false
            }
        }
    }

    /// Deletes the WABA's reached users older than 24 hours from the store (they no longer count).
    async fn prune_reached(&self) {
        if self.shared.config.messaging_limit == 0 {
            return;
        }
        let day_ms = i64::try_from(super::pacing::DAY.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) =
            self.shared.store.prune_waba_reached(&self.waba, now_millis().saturating_sub(day_ms)).await
        {
            tracing::debug!(error = %e, "pruning the WABA's reached users failed; tried again later");
        }
    }

    /// Forgets every message held in memory (the lease was lost, or a new term begins): they are queued in
    /// the store, where whoever holds the number loads them. Sends in flight are still counted until their
    /// answers come (see [`Self::finish_stale`]), and their recipients stay in flight: a new term holds their
    /// next messages back until then (FIFO per recipient), as a send retried after such an answer goes first.
    fn forget_held(&mut self) {
        self.queues.clear();
        self.turns.clear();
        for r in self.in_flight_ids.values() {
            self.turns.insert(r.clone(), Turn::InFlight);
        }
        self.ready.clear();
        self.waiting.clear();
        self.scheduled.clear();
        self.held = 0;
        self.parked = 0;
        self.outage = Outage::default();
        self.more_in_store = true;
    }

    /// Reads the number's throughput level in a task of its own (bounded by [`LEVEL_READ_TIMEOUT`]), so that
    /// admission and lease renewals go on meanwhile; a read asked for while one runs follows it.
    fn start_level_read(&mut self) {
        if self.level_reading {
            self.level_again = true;
            return;
        }
        let Some(client) = self.shared.client.clone() else { return };
        self.level_reading = true;
        self.level_retry_at = None;
        let number = self.number.clone();
        let read = self.level_tx.clone();
        tokio::spawn(async move {
            let level = match tokio::time::timeout(LEVEL_READ_TIMEOUT, client.throughput(&number)).await {
                Ok(Ok(t)) => Ok(t.throughput.level),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {LEVEL_READ_TIMEOUT:?}")),
            };
            let _ = read.send(level).await;
        });
    }

    /// A read of the level ended. A failed one is tried again after a growing backoff
    /// (`outbound.retry_base_ms` doubling up to `outbound.retry_max_ms`); meanwhile the number sends at the
    /// level in force (the standard level, 80/s, until one read succeeds, or the configured override).
    fn on_level(&mut self, read: Result<ThroughputLevel, String>) {
        self.level_reading = false;
        match read {
            Ok(level) => {
                self.level_failures = 0;
                self.limiter.set_level(&self.number, &level);
                tracing::info!(number = %self.number, ?level,
                    mps = self.limiter.numbers().level(&self.number), "throughput level read");
            }
            Err(error) => {
                let wait = outage::backoff_ms(&self.shared.config, self.level_failures, None);
                self.level_failures = self.level_failures.saturating_add(1);
                self.level_retry_at = Some(Instant::now() + Duration::from_millis(wait));
                tracing::warn!(number = %self.number, %error, retry_in_ms = wait,
                    "reading the throughput level failed; sending at the level in force meanwhile");
            }
        }
        self.limiter.set_override(&self.number, self.level_override);
        let mps = self.limiter.numbers().level(&self.number);
        self.shared.metrics.outbound_level_mps.set(self.number.as_str(), u64::from(mps));
        if std::mem::take(&mut self.level_again) {
            self.start_level_read();
        }
    }

    /// Takes what webhooks told the number since the last look: inbound messages, open windows, upgrades.
    fn on_control(&mut self) {
        let news = self.inbox.take();
        if news.inbound > 0 {
            let now = Instant::now();
            for _ in 0..news.inbound {
                self.limiter.record_inbound(&self.number, now);
            }
            self.shared.metrics.outbound_inbound_counted.add(self.number.as_str(), news.inbound);
        }
        for (contact, at) in news.windows {
            self.windows.open(contact, at);
        }
        if news.reread_level {
            self.start_level_read();
        }
        if self.owner {
            for (recipient, id) in news.cancelled {
                self.drop_cancelled(&recipient, &id);
            }
        }
    }

    /// With several instances, a message may be cancelled through one that does not send for the number: at
    /// each poll, the heads that recipients wait for (a retry's backoff, a limit) are looked up in the store
    /// (up to [`WAITING_HEADS_CHECKED`] by primary key), and those no longer queued are forgotten.
    async fn drop_cancelled_elsewhere(&mut self) {
        let heads: Vec<(String, String)> = self
            .turns
            .iter()
            .filter(|(_, turn)| **turn == Turn::Waiting)
            .filter_map(|(r, _)| Some((r.clone(), self.queues.get(r)?.front()?.id.clone())))
            .take(WAITING_HEADS_CHECKED)
            .collect();
        if heads.is_empty() {
            return;
        }
        let ids: Vec<String> = heads.iter().map(|(_, id)| id.clone()).collect();
        match self.shared.store.outbound_not_queued(&ids).await {
            Ok(gone) if !gone.is_empty() => {
                let gone: HashSet<String> = gone.into_iter().collect();
                for (recipient, id) in heads.iter().filter(|(_, id)| gone.contains(id)) {
                    self.drop_cancelled(recipient, id);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "looking for cancelled messages failed; tried at the next poll")
            }
        }
    }

    /// Forgets cancelled message `id` to `recipient` if held. When it was the head its recipient waited for
    /// (a retry's backoff, a limit), the next message to the recipient gets its turn at once instead of after
    /// that wait. (A message not found is in flight, where marking it `sending` finds it cancelled, or not held.)
    fn drop_cancelled(&mut self, recipient: &str, id: &str) {
        let Some(queue) = self.queues.get_mut(recipient) else { return };
        let Some(pos) = queue.iter().position(|m| m.id == id) else { return };
        queue.remove(pos);
        let left = queue.len();
        self.held = self.held.saturating_sub(1);
        self.outage.forget(id);
        if self.turns.get(recipient) != Some(&Turn::Waiting) {
            return;
        }
        self.parked = self.parked.saturating_sub(1);
        if pos > 0 {
            return;
        }
        // Its entry in `waiting` stays; when it comes, it finds the recipient no longer waiting.
        self.parked = self.parked.saturating_sub(left);
        if left == 0 {
            self.queues.remove(recipient);
            self.turns.remove(recipient);
        } else {
            self.turns.insert(recipient.to_owned(), Turn::Ready);
            self.ready.push_back(recipient.to_owned());
        }
    }

    /// Claims the next messages from the store in a task of its own: the claim is a write that can wait
    /// tens of milliseconds for the store's write lock (measured 50-85 ms under a full sending load), and
    /// admission must not stop meanwhile (the number limiter's burst tolerance is a few milliseconds: a
    /// scheduler that stops longer loses that time for good). It starts while half a batch is still held, so
    /// the number keeps sending from what it holds.
    fn start_load(&mut self) {
        self.loading = true;
        // A wake while the load runs (a message enqueued after its query) sets this again.
        self.more_in_store = false;
        let store = self.shared.store.clone();
        let holder = self.holder.clone();
        let number = self.number.clone();
        let limit = self.shared.config.load_batch.max(1);
        let term = self.term;
        let loaded = self.loaded_tx.clone();
        tokio::spawn(async move {
            let result = store.claim_queued(number.as_str(), &holder, limit).await;
            let _ = loaded.send(Loaded { limit, term, result }).await;
        });
    }

    fn on_loaded(&mut self, loaded: Loaded) {
        self.loading = false;
        if loaded.term != self.term || !self.owner {
            // Loaded for a term that ended: the rows stay queued, held by that term, and the next load of
            // whoever holds the number takes them.
            self.more_in_store = true;
            return;
        }
        match loaded.result {
            Ok(rows) => {
                self.more_in_store |= i64::try_from(rows.len()).unwrap_or(0) >= loaded.limit;
                for m in rows {
                    // Held already: a send of an earlier term put back at the front of its recipient's FIFO
                    // (`finish_stale`), whose row is still marked held by that term, or sent from there.
                    if self.in_flight_ids.contains_key(&m.id)
                        || self.queues.get(&m.recipient).is_some_and(|q| q.iter().any(|h| h.id == m.id))
                    {
                        continue;
                    }
                    self.push_back(m);
                }
            }
            Err(e) => {
                // Tried again at the next poll.
                tracing::warn!(error = %e, "loading queued messages failed");
            }
        }
    }

    /// Holds a loaded message: at the back of its recipient's FIFO, or aside until its `send_at` when it
    /// was never tried and its time is ahead.
    fn push_back(&mut self, m: QueuedMessage) {
        if m.attempts == 0
            && let Some(due) = m.not_before.filter(|nb| *nb > now_millis())
        {
            self.scheduled_seq += 1;
            self.scheduled.push(Reverse(Scheduled { due, seq: self.scheduled_seq, message: m }));
            self.held += 1;
            self.parked += 1;
            return;
        }
        self.join_queue(m);
    }

    /// Puts a held message at the back of its recipient's FIFO.
    fn join_queue(&mut self, m: QueuedMessage) {
        let r = m.recipient.clone();
        self.queues.entry(r.clone()).or_default().push_back(m);
        self.held += 1;
        if self.turns.get(&r) == Some(&Turn::Waiting) {
            self.parked += 1;
        }
        if !self.turns.contains_key(&r) {
            self.turns.insert(r.clone(), Turn::Ready);
            self.ready.push_back(r);
        }
    }

    fn wait(&mut self, recipient: String, until: Instant) {
        self.parked += self.queues.get(&recipient).map_or(0, VecDeque::len);
        self.turns.insert(recipient.clone(), Turn::Waiting);
        self.waiting.push(Reverse((until, recipient)));
    }

    /// Sends what the limits admit now; returns when to look again.
    fn admit(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Scheduled messages whose time came join their recipients' FIFOs, in the order they became due.
        let due_by = now_millis();
        while self.scheduled.peek().is_some_and(|Reverse(s)| s.due <= due_by) {
            if let Some(Reverse(s)) = self.scheduled.pop() {
                self.held = self.held.saturating_sub(1);
                self.parked = self.parked.saturating_sub(1);
                self.join_queue(s.message);
            }
        }
        let next_scheduled = self
            .scheduled
            .peek()
            .map(|Reverse(s)| now + Duration::from_millis(u64::try_from(s.due - due_by).unwrap_or(0)));
        while let Some(Reverse((at, _))) = self.waiting.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, r))) = self.waiting.pop() {
                // Woken already (its head was cancelled): not queued for a turn twice.
                if self.turns.get(&r) != Some(&Turn::Waiting) {
                    continue;
                }
                let queued = self.queues.get(&r).map_or(0, VecDeque::len);
                self.parked = self.parked.saturating_sub(queued);
                self.turns.insert(r.clone(), Turn::Ready);
                self.ready.push_back(r);
            }
        }
        let next_waiting = sooner(self.waiting.peek().map(|Reverse((at, _))| *at), next_scheduled);
        let earliest = |t: Instant| sooner(next_waiting, Some(t));
        if let Some(p) = self.paused_until {
            if p > now {
                return earliest(p);
            }
            self.paused_until = None;
            self.shared.metrics.outbound_paused_numbers.dec();
            self.shared.set_paused(self.number.as_str(), false);
        }
        if let Some(p) = self.shared.pacing.paused_until(&self.waba, now) {
            return earliest(p);
        }
        if let Some(p) = self.outage.waiting(now) {
            return earliest(p);
        }
        // Sends wait out the departure lag before their request; those waiting are not yet requests to Meta,
        // so the window grows by what the lag holds at this number's level (otherwise `in_flight` / lag would
        // cap the rate: 64 / 100 ms = 640 msg/s).
        let level = u64::from(self.limiter.numbers().level(&self.number));
        let lagging =
            usize::try_from((level * self.shared.config.departure_lag_ms).div_ceil(1000)).unwrap_or(0);
        let window = if self.probing || self.outage.probing() {
            1
        } else {
            self.shared.config.in_flight.max(1) + lagging
        };
        while self.in_flight < window {
            if let Err(wait) = self.limiter.numbers().peek(&self.number, now) {
                return earliest(now + wait);
            }
            let Some(r) = self.ready.pop_front() else { break };
            let Some(head) = self.queues.get(&r).and_then(|q| q.front()).cloned() else {
                self.turns.remove(&r);
                self.queues.remove(&r);
                continue;
            };
            let now_ms = now_millis();
            if head.expires_at.is_some_and(|e| e <= now_ms) {
                self.pop_head(&r);
                self.after_removal(&r);
                self.shared.metrics.outbound_expired.inc();
                self.shared.backlog_dec(self.number.as_str());
                self.shared.completions.finish(&head.id, super::Completion::Expired);
                self.outage.forget(&head.id);
                // 410: the On-Premises code of an expired message (the Cloud API has none: Meta never saw it).
                // Reported once the message is expired in the store (not when it was cancelled meanwhile).
                let expire = OutboundOp::Expire { id: head.id.clone() };
                self.report_failed(&head, json!([{"code": 410, "title": "Message expired",
                    "message": "Message expired", "error_data": {"details":
                    "its ttl passed before the gateway could send it (outbound.max_backlog_per_number, rate limits)"}}]),
                    Some(expire));
                continue;
            }
            if let Some(nb) = head.not_before.filter(|nb| *nb > now_ms) {
                let wait = Duration::from_millis(u64::try_from(nb - now_ms).unwrap_or(0));
                self.wait(r, now + wait);
                continue;
            }
            if let Err(wait) = self.limiter.pairs().peek(&self.number, &r, now) {
                self.wait(r, now + wait);
                continue;
            }
            if head.kind == "template" && !self.windows.is_open(&r, now) {
                match self.shared.pacing.admit_outside_window(&self.waba, &r, now) {
                    Ok(true) => self.unrecorded.push(r.clone()),
                    Ok(false) => {}
                    Err(wait) => {
                        self.wait(r, now + wait);
                        continue;
                    }
                }
            }
            if let Err(wait) = self.shared.pacing.admit_call(&self.waba, now) {
                self.ready.push_front(r);
                return earliest(now + wait);
            }
            if let Err(wait) = self.limiter.check(&self.number, &r, now) {
                self.ready.push_front(r);
                return earliest(now + wait);
            }
            self.pop_head(&r);
            self.turns.insert(r.clone(), Turn::InFlight);
            self.in_flight += 1;
            self.in_flight_ids.insert(head.id.clone(), r.clone());
            self.dispatch(head);
        }
        sooner(self.waiting.peek().map(|Reverse((at, _))| *at), next_scheduled)
    }

    fn pop_head(&mut self, r: &str) {
        if let Some(q) = self.queues.get_mut(r) {
            q.pop_front();
        }
        self.held = self.held.saturating_sub(1);
    }

    /// After a recipient's head left: its next message gets a turn, or it is forgotten.
    fn after_removal(&mut self, r: &str) {
        if self.queues.get(r).is_some_and(|q| !q.is_empty()) {
            self.turns.insert(r.to_owned(), Turn::Ready);
            self.ready.push_back(r.to_owned());
        } else {
            self.queues.remove(r);
            self.turns.remove(r);
        }
    }

    fn dispatch(&mut self, message: QueuedMessage) {
        let reached = std::mem::take(&mut self.unrecorded);
        let waba = self.waba.clone();
        let shared = self.shared.clone();
        let number = self.number.clone();
        let done = self.done_tx.clone();
        let spacing = departure_spacing(self.limiter.numbers().level(&self.number));
        let depart_at =
            tokio::time::Instant::now() + Duration::from_millis(self.shared.config.departure_lag_ms);
        let (term, dispatched, stamp) = (self.term, Instant::now(), self.outage.stamp());
        tokio::spawn(async move {
            // Queued before the send's mark, so committed with it or before it.
            for recipient in reached {
                shared.writer.apply_later(OutboundOp::Reached { waba: waba.clone(), recipient }).await;
            }
            let outcome = send(&shared, &number, &message, depart_at, spacing).await;
            let _ = done.send(Done { message, outcome, term, dispatched, stamp }).await;
        });
    }

    async fn finish(&mut self, done: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.in_flight_ids.remove(&done.message.id);
        if done.term != self.term || !self.owner {
            let r = done.message.recipient.clone();
            self.finish_stale(done).await;
            // Its recipient's next messages, held back meanwhile, get their turn (unless it went back to the
            // front of the FIFO, or another send to the recipient is still on its way).
            let other = self.in_flight_ids.values().any(|o| *o == r);
            if self.owner && !other && self.turns.get(&r) == Some(&Turn::InFlight) {
                self.after_removal(&r);
            }
            return;
        }
        let Done { mut message, outcome, dispatched, stamp, .. } = done;
        let r = message.recipient.clone();
        let metrics = self.shared.metrics.clone();
        let now = Instant::now();
        match outcome {
            Ok(wamid) => {
                self.record_sent(message.id, wamid).await;
                self.probing = false;
                if self.alerted {
                    self.alerted = false;
                    tracing::info!(number = %self.number, "sending works again");
                }
            }
            Err(SendFailure::NotStarted) => {
                message.not_before = Some(now_millis() + 1000);
                self.requeue_front(message);
            }
            Err(SendFailure::Unsendable(why)) => {
                self.fail(message, unparseable(&why)).await;
                self.after_removal(&r);
                return;
            }
            Err(SendFailure::Gone) => {
                // Cancelled (which took it off the backlog), or taken by another instance that held the number
                // meanwhile and sends it: not this scheduler's to finish. A caller waiting on it reads how it
                // ended from the store.
                tracing::debug!(number = %self.number, "a loaded message was no longer queued; not sent here");
                self.outage.forget(&message.id);
            }
            Err(SendFailure::Cloud(e)) => {
                let c = e.classification();
                let code = e.code().map_or_else(|| "transport".to_owned(), |c| c.to_string());
                metrics.outbound_errors.inc(&code);
                let about_number = outage::about_the_number(&c);
                // Meta may have accepted it: neither retried nor failed, but reconciled from its statuses (or
                // sent again, flagged, after the grace period).
                if e.outcome_unknown() {
                    tracing::warn!(number = %self.number, error = %e, "send outcome unknown; reconciling");
                    // A timeout while nothing else got through: the way to Meta may be down.
                    if about_number && self.outage.stamp() == stamp {
                        self.number_backs_off(dispatched, e.retry_after());
                    }
                    self.outage.forget(&message.id);
                    let since = now_millis();
                    self.in_doubt.push(InDoubt { id: message.id, sending_since: since, grace_from: since });
                    self.publish_in_doubt();
                    self.after_removal(&r);
                    return;
                }
                self.limiter.apply_error(&self.number, &r, &e, now);
                let error_json = error_json(&e);
                let class = format!("{:?}", c.class);
                if c.pause == Some(PauseScope::Waba) {
                    self.shared.pacing.pause(&self.waba, now + c.delay.unwrap_or(Duration::from_secs(300)));
                }
                if c.needs_operator {
                    // 131048 (spam rate limit) asks for an hour; a broken token, the configured pause.
                    let pause = Duration::from_millis(self.shared.config.operator_pause_ms)
                        .max(c.delay.unwrap_or_default());
                    self.probing = true;
                    if self.paused_until.is_none() {
                        metrics.outbound_paused_numbers.inc();
                        self.shared.set_paused(self.number.as_str(), true);
                    }
                    self.paused_until = Some(now + pause);
                    metrics.outbound_alerts.inc(&class.to_lowercase());
                    if !self.alerted {
                        self.alerted = true;
                        self.shared
                            .alert(&self.waba, self.number.as_str(), &c.class, &error_json, pause)
                            .await;
                    }
                    // A probe while the operator fixes the account: not one of the message's retries.
                    self.requeue(message, None, &error_json, &class, false).await;
                } else if about_number && !self.outage.charge(&message.id, stamp) {
                    // Nothing shows the error is about this message (no other send got through since it last
                    // failed): the number waits as a whole, and the message keeps its retries.
                    self.number_backs_off(dispatched, e.retry_after());
                    self.requeue(message, None, &error_json, &class, false).await;
                } else if c.retryable || c.pause.is_some() {
                    let limiter_waits = matches!(c.class, ErrorClass::Throughput | ErrorClass::PairLimit)
                        || c.pause.is_some();
                    if !limiter_waits && message.attempts + 1 >= self.shared.config.max_attempts {
                        self.fail(message, error_json).await;
                        self.after_removal(&r);
                        return;
                    }
                    let not_before = (!limiter_waits).then(|| now_millis() + self.backoff(&message, c.delay));
                    // Waiting for a limit (130429, 131056, a pause) does not use up the message's retries.
                    self.requeue(message, not_before, &error_json, &class, !limiter_waits).await;
                } else {
                    self.fail(message, error_json).await;
                    self.after_removal(&r);
                    return;
                }
            }
        }
        if self.turns.get(&r) == Some(&Turn::InFlight) {
            self.after_removal(&r);
        }
    }

    /// Meta accepted a message: recorded, and the number's outage (if any) is over.
    async fn record_sent(&mut self, id: String, wamid: String) {
        self.shared.metrics.outbound_sent.inc();
        self.shared.backlog_dec(self.number.as_str());
        self.shared.completions.finish(&id, super::Completion::Sent(wamid.clone()));
        if self.outage.accepted(&id) {
            tracing::info!(number = %self.number, "Meta answers again; the number sends at its level");
        }
        self.shared.writer.apply_later(OutboundOp::Sent { id, wamid }).await;
    }

    /// An error about the number that no message is charged with: the number waits, a growing backoff.
    fn number_backs_off(&mut self, dispatched: Instant, floor: Option<Duration>) {
        let cfg = self.shared.config.clone();
        if let Some(wait) = self.outage.back_off(&cfg, dispatched, floor) {
            if self.outage.rounds() == 1 {
                tracing::warn!(number = %self.number, wait_ms = wait.as_millis(),
                    "Meta does not answer for the number; it waits, then tries one message at a time (nothing fails)");
            } else {
                tracing::debug!(number = %self.number, round = self.outage.rounds(), wait_ms = wait.as_millis(),
                    "Meta still does not answer for the number");
            }
        }
    }

    /// The answer of a send made in an earlier lease term (or after the lease was lost): recorded in the
    /// store. A message to send again goes back to the front of its recipient's FIFO when this instance holds
    /// the number (its recipient was kept in flight meanwhile), so that it still goes before the recipient's
    /// later messages; otherwise whoever holds the number loads it from the store.
    async fn finish_stale(&mut self, done: Done) {
        let Done { message, outcome, .. } = done;
        match outcome {
            Ok(wamid) => self.record_sent(message.id, wamid).await,
            // Left `sending`: the owner's scan of the store reconciles it (this scheduler, if it is the owner).
            Err(SendFailure::Cloud(e)) if e.outcome_unknown() => {
                if self.owner {
                    let since = now_millis();
                    self.in_doubt.push(InDoubt { id: message.id, sending_since: since, grace_from: since });
                    self.publish_in_doubt();
                }
            }
            // Back to the queue, not counted: whoever holds the number sends it again and acts on the answer.
            Err(SendFailure::Cloud(e)) => {
                let op = OutboundOp::Requeue {
                    id: message.id.clone(),
                    not_before: None,
                    error: Some(error_json(&e)),
                    counts: false,
                };
                self.shared.writer.apply_later(op).await;
                let mut message = message;
                message.not_before = None;
                self.requeue_front(message);
            }
            // Not marked `sending`: still queued in the store.
            Err(SendFailure::NotStarted) => {
                let mut message = message;
                message.not_before = Some(now_millis() + 1000);
                self.requeue_front(message);
            }
            Err(SendFailure::Unsendable(why)) => {
                self.fail(message, unparseable(&why)).await;
            }
            Err(SendFailure::Gone) => {}
        }
    }

    fn backoff(&self, message: &QueuedMessage, class_delay: Option<Duration>) -> i64 {
        let exponent = u32::try_from(message.attempts.clamp(0, 20)).unwrap_or(20);
        i64::try_from(outage::backoff_ms(&self.shared.config, exponent, class_delay)).unwrap_or(i64::MAX)
    }

    /// Back to the front of its recipient's queue. `counts`: the failure is one of the message's attempts
    /// (`outbound.max_attempts`, and the exponent of its backoff).
    async fn requeue(
        &mut self,
        mut message: QueuedMessage,
        not_before: Option<i64>,
        error: &str,
        class: &str,
        counts: bool,
    ) {
        self.shared.metrics.outbound_retries.inc(&class.to_lowercase());
        if counts {
            message.attempts += 1;
        }
        message.not_before = not_before;
        let op =
            OutboundOp::Requeue { id: message.id.clone(), not_before, error: Some(error.to_owned()), counts };
        self.shared.writer.apply_later(op).await;
        self.requeue_front(message);
    }

    fn requeue_front(&mut self, message: QueuedMessage) {
        if !self.owner {
            // Without the lease nothing is held: the store has it queued for whoever sends for the number.
            return;
        }
        let r = message.recipient.clone();
        self.queues.entry(r.clone()).or_default().push_front(message);
        self.held += 1;
        self.turns.insert(r.clone(), Turn::Ready);
        self.ready.push_back(r);
    }

    async fn fail(&mut self, message: QueuedMessage, error: String) {
        self.outage.forget(&message.id);
        self.shared.metrics.outbound_failed.inc();
        self.shared.backlog_dec(self.number.as_str());
        self.shared.completions.finish(&message.id, super::Completion::Failed(error.clone()));
        let errors = serde_json::from_str(&error).unwrap_or_default();
        self.shared.writer.apply_later(OutboundOp::Fail { id: message.id.clone(), error }).await;
        self.report_failed(&message, errors, None);
    }

    /// The `failed` status event of a message the gateway gave up on, written in a task of its own — after
    /// `first` is applied, and only if it changed the message, when given.
    fn report_failed(&self, message: &QueuedMessage, errors: serde_json::Value, first: Option<OutboundOp>) {
        let shared = self.shared.clone();
        let (waba, number) = (self.waba.clone(), self.number.as_str().to_owned());
        let (id, recipient) = (message.id.clone(), message.recipient.clone());
        tokio::spawn(async move {
            if let Some(op) = first
                && !matches!(shared.writer.apply(op).await, Ok(true))
            {
                return;
            }
            shared.report_failed(&waba, &number, &id, &recipient, errors).await;
        });
    }

    /// Sends of unknown outcome: matched to their statuses by callback data (the gateway id), or sent again
    /// once the grace period passed without any status.
    async fn reconcile(&mut self, grace: Duration) {
        let ids: Vec<String> = self.in_doubt.iter().map(|d| d.id.clone()).collect();
        let since = self.in_doubt.iter().map(|d| d.sending_since).min().unwrap_or(0) - 60_000;
        let found = match self.shared.store.statuses_by_callback_data(&ids, since).await {
            Ok(f) => f.into_iter().collect::<HashMap<_, _>>(),
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation lookup failed");
                return;
            }
        };
        let now_ms = now_millis();
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let mut keep = Vec::new();
        for d in std::mem::take(&mut self.in_doubt) {
            // A change that could not be written keeps the message here, to be tried at the next round.
            if let Some(wamid) = found.get(&d.id) {
                let op = OutboundOp::Reconciled { id: d.id.clone(), wamid: wamid.clone() };
                if self.shared.writer.apply(op).await.is_err() {
                    keep.push(d);
                    continue;
                }
                self.shared.metrics.outbound_reconciled.inc();
                self.shared.backlog_dec(self.number.as_str());
            } else if now_ms - d.grace_from >= grace_ms {
                // Held by no scheduler once back in the queue, so that this one (or the instance holding
                // the number by then) loads it again.
                if self.shared.writer.apply(OutboundOp::Resend { id: d.id.clone() }).await.is_err() {
                    keep.push(d);
                    continue;
                }
                self.shared.metrics.outbound_resent.inc();
                self.more_in_store = true;
            } else {
                keep.push(d);
            }
        }
        self.in_doubt = keep;
        self.publish_in_doubt();
    }
}

/// How much older than the grace period a `sending` message must be for a rescan to take it as untracked.
const RESCAN_MARGIN: Duration = Duration::from_secs(60);

/// How long a stopping scheduler waits for the answers of its sends in flight.
pub(super) const DRAIN_SENDS: Duration = Duration::from_secs(10);

/// How many heads of waiting recipients a poll looks up (on PostgreSQL) to find messages cancelled through
/// another instance.
const WAITING_HEADS_CHECKED: usize = 1000;

/// How often the WABA's reached users older than 24 hours are deleted from the store.
const REACHED_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the pair limiter forgets idle pairs.
const PAIR_PRUNE_EVERY: Duration = Duration::from_secs(30);

/// How long a read of a number's throughput level may take before it counts as failed (and is tried again).
const LEVEL_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The earlier of two optional moments.
fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Shared {
    pub(super) fn backlog_dec(&self, number: &str) {
        if let Some(n) = self.numbers.get(number) {
            n.backlog.fetch_sub(1, Ordering::Relaxed);
        }
        self.metrics.outbound_backlog.dec();
    }
}

/// The stored error of a message that does not parse: not a Graph error, so 131000 (generic), never 0, which
/// reads as Meta's AuthException.
fn unparseable(why: &str) -> String {
    json!([{"code": 131_000, "title": "Stored message does not parse",
        "message": "Stored message does not parse", "error_data": {"details": why}}])
    .to_string()
}
