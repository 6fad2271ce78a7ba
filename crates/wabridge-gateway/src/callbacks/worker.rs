//! The worker of one callback: log → delivery rows → requests → outcomes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Inner, payload, signing};
use crate::store::{CallbackRecord, ClaimedDelivery, EventFilter, NewDelivery, StoreError, StoredEvent};

/// How often the worker refreshes its figures (backlog, oldest age) for the gauges.
const FIGURES_EVERY: Duration = Duration::from_secs(1);

/// Pending events, in windows, past which a callback queues no more whatever holds them back.
const HELD_BACK_WINDOWS: u64 = 16;

fn filter_of(record: &CallbackRecord) -> EventFilter {
    EventFilter {
        phone_number_id: record.phone_number_id.clone(),
        kinds: record.kinds.clone(),
        contact: None,
    }
}

/// Runs the worker of callback `id` until `stop` fires (or the callback is deleted).
pub(super) async fn run(
    inner: Arc<Inner>,
    id: String,
    stop: CancellationToken,
    wake: Arc<Notify>,
    stepping: Arc<tokio::sync::Mutex<()>>,
) {
    let mut retry = Duration::from_millis(100);
    let record = loop {
        match inner.store.callback(&id).await {
            Ok(Some(record)) => break Arc::new(record),
            Ok(None) => {
                // Deleted before it started: the token lets `discover` start a worker again should the id
                // be created anew.
                stop.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(callback = %id, error = %e, "cannot load the callback; trying again");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(Duration::from_secs(5));
            }
        }
    };
    let mut worker = CallbackWorker::new(inner.clone(), record);
    let poll = Duration::from_millis(inner.delivery.poll_interval_ms.max(1));
    let mut head = inner.feed.watch_head();
    let mut feed_running = true;
    let mut in_flight: JoinSet<bool> = JoinSet::new();
    let mut figures_at = Instant::now();
    loop {
        let mut wait = poll;
        let stepped = {
            let _round = stepping.lock().await;
            if stop.is_cancelled() {
                break;
            }
            worker.step(&mut in_flight).await
        };
        match stepped {
            Ok(due) => {
                if let Some(due) = due {
                    wait = wait.min(due);
                }
            }
            Err(e) => {
                tracing::warn!(callback = %worker.record.id, error = %e, "callback worker: store error; retrying")
            }
        }
        if figures_at.elapsed() >= FIGURES_EVERY {
            // Another instance may have changed the callback's settings, or deleted it.
            match inner.store.callback(&id).await {
                Ok(Some(fresh)) => worker.adopt(fresh),
                Ok(None) => {
                    tracing::info!(callback = %id, "the callback was deleted; its worker stops");
                    stop.cancel();
                    inner.forget_figures(&id);
                    break;
                }
                Err(_) => {}
            }
            worker.refresh_figures(&stop).await;
            figures_at = Instant::now();
        }
        let new_events = async {
            if feed_running && head.changed().await.is_err() {
                feed_running = false;
            }
            if !feed_running {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            // A stopped worker (its callback deleted or replaced) must not claim again.
            biased;
            () = stop.cancelled() => break,
            Some(done) = in_flight.join_next() => {
                if let Ok(true) = done {
                    worker.queued = worker.queued.saturating_sub(1);
                }
            }
            () = new_events => {}
            () = wake.notified() => worker.reload_queued().await,
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Let the requests in flight end (each is bounded by the request timeout), so their outcomes are kept.
    while in_flight.join_next().await.is_some() {}
}

/// What [`CallbackWorker::reload`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reloaded {
    /// The record it held (another instance may have moved the cursor).
    Same,
    /// Another record: changed, or created anew under the same id.
    Changed,
    /// None: the callback was deleted.
    Gone,
}

struct CallbackWorker {
    inner: Arc<Inner>,
    record: Arc<CallbackRecord>,
    filter: EventFilter,
    scan_seq: i64,
    /// Rows pending in the store (an estimate kept in memory; read again from the store every
    /// `FIGURES_EVERY` and when the API wakes us).
    queued: u64,
    loaded: bool,
}

impl CallbackWorker {
    fn new(inner: Arc<Inner>, record: Arc<CallbackRecord>) -> Self {
        let filter = filter_of(&record);
        let scan_seq = record.scan_seq;
        Self { inner, record, filter, scan_seq, queued: 0, loaded: false }
    }

    /// Takes the stored callback: its cursor, and its settings (URL, secret, shape, concurrency, filter) when
    /// it was changed or created anew (through another instance's API, or this one's) since the worker read
    /// it. Cursor and record are taken together: a worker never queues or sends from a cursor with the
    /// settings of an older record (the store refuses its statements until it has taken the new one).
    fn adopt(&mut self, fresh: CallbackRecord) {
        self.scan_seq = fresh.scan_seq;
        let r = &self.record;
        let same = r.url == fresh.url
            && r.secret == fresh.secret
            && r.shape == fresh.shape
            && r.max_concurrent == fresh.max_concurrent
            && r.kinds == fresh.kinds
            && r.phone_number_id == fresh.phone_number_id
            && r.created_at == fresh.created_at;
        if same {
            return;
        }
        tracing::info!(callback = %fresh.id, "the callback was changed or created anew; using the stored one");
        self.filter = filter_of(&fresh);
        self.record = Arc::new(fresh);
        // A callback created anew has none of the old one's rows.
        self.loaded = false;
    }

    /// Reads the callback again after the store refused a statement for the record this worker holds, and
    /// takes it with its cursor and pending count.
    async fn reload(&mut self) -> Result<Reloaded, StoreError> {
        // Gone: its worker stops at its next look (see `run`).
        let Some(fresh) = self.inner.store.callback(&self.record.id).await? else {
            return Ok(Reloaded::Gone);
        };
        let held = Arc::clone(&self.record);
        self.adopt(fresh);
        self.reload_queued().await;
        Ok(if Arc::ptr_eq(&held, &self.record) { Reloaded::Same } else { Reloaded::Changed })
    }

    async fn reload_queued(&mut self) {
        if let Ok(stats) = self.inner.store.delivery_stats(&self.record.id).await {
            self.queued = self.window_count(&stats);
            self.loaded = true;
        }
    }

    /// What counts against `delivery.window`: the pending events that can go now or next — each contact's
    /// first, and those not tried yet — but not those held back behind their contact's retried event. So
    /// contacts whose events keep failing, however much they write, never stop the other contacts' events
    /// from being queued; a receiver down for everyone fills the window with one event per contact.
    /// [`HELD_BACK_WINDOWS`] windows of pending events in all fill it whatever holds them back (a receiver
    /// down for the few contacts there are must not have the whole log queued).
    fn window_count(&self, stats: &crate::store::DeliveryStats) -> u64 {
        let window = u64::from(self.inner.delivery.window.max(1));
        if stats.pending >= window.saturating_mul(HELD_BACK_WINDOWS) {
            return window;
        }
        stats.pending - stats.held_back.min(stats.pending)
    }

    async fn refresh_figures(&mut self, stop: &CancellationToken) {
        let Ok(stats) = self.inner.store.delivery_stats(&self.record.id).await else { return };
        // The store's count is the truth: with several instances, rows this one queued are delivered by the
        // others (and the other way round), and a count kept only from this instance's own deliveries could
        // stay at the window and stop it from queueing new events.
        self.queued = self.window_count(&stats);
        let age = stats
            .oldest_pending_at
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .map_or(0, |d| d.as_secs());
        // The backlog includes the events not queued yet, as the API's `backlog` does: while the receiver is
        // down, the queued ones stop at the window and the rest wait in the log.
        let not_queued = u64::try_from(self.inner.feed.head().saturating_sub(self.scan_seq)).unwrap_or(0);
        self.inner.set_figures(&self.record.id, stats.pending + not_queued, age, stop);
    }

    /// One round: queue new events, start what may go now. Returns how long until the next retry is due.
    async fn step(&mut self, in_flight: &mut JoinSet<bool>) -> Result<Option<Duration>, StoreError> {
        if !self.loaded {
            self.reload_queued().await;
        }
        self.scan().await?;
        let capacity = self.record.max_concurrent as usize;
        let free = capacity.saturating_sub(in_flight.len());
        if free > 0 {
            let lease =
                Duration::from_millis(self.inner.delivery.request_timeout_ms.saturating_mul(2) + 1_000);
            let claimed = self
                .inner
                .store
                .claim_deliveries_for(
                    &self.record,
                    u32::try_from(free).unwrap_or(u32::MAX),
                    SystemTime::now() + lease,
                )
                .await?;
            match claimed {
                // Claimed as the record it holds: each goes out with that record's URL, secret and shape.
                Some(claimed) => {
                    for claim in claimed {
                        in_flight.spawn(deliver(self.inner.clone(), self.record.clone(), claim));
                    }
                }
                // Changed or created anew meanwhile: the next round, at once, claims with the stored record.
                None => {
                    let changed = self.reload().await? == Reloaded::Changed;
                    return Ok(changed.then_some(Duration::ZERO));
                }
            }
        }
        if in_flight.len() >= capacity {
            return Ok(None);
        }
        let due = self.inner.store.next_delivery_due(&self.record.id).await?;
        Ok(due.map(|at| at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)))
    }

    /// Moves the cursor through the log, queueing the matching events, while the queue has room.
    async fn scan(&mut self) -> Result<(), StoreError> {
        let window = u64::from(self.inner.delivery.window.max(1));
        while self.queued < window {
            let head = self.inner.feed.head();
            if head <= self.scan_seq {
                return Ok(());
            }
            let room = u32::try_from(window - self.queued).unwrap_or(u32::MAX);
            let found = self.inner.store.events_after(self.scan_seq, &self.filter, room).await?;
            let mut to = found.last().map_or(self.scan_seq, |e| e.seq);
            let short = found.len() < room as usize;
            if short {
                to = to.max(head);
            }
            let deliveries: Vec<NewDelivery> = found.iter().map(new_delivery).collect();
            if self.inner.store.queue_deliveries_for(&self.record, self.scan_seq, to, &deliveries).await? {
                self.scan_seq = to;
                self.queued += deliveries.len() as u64;
            } else {
                // Another instance moved the cursor, or the callback was changed or created anew: take it from
                // the store, cursor and settings together.
                if self.reload().await? == Reloaded::Gone {
                    return Ok(());
                }
            }
            if short {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn new_delivery(event: &StoredEvent) -> NewDelivery {
    // Events without a contact keep their order per business number (or per WABA).
    let contact_key = match (&event.contact, &event.phone_number_id) {
        (Some(contact), _) => contact.clone(),
        (None, Some(number)) => format!("~number:{number}"),
        (None, None) => format!("~waba:{}", event.waba_id),
    };
    NewDelivery { seq: event.seq, contact_key, event_at: event.created_at }
}

/// Sends one event; returns whether it left the queue (delivered, suppressed, vanished or given up on).
async fn deliver(inner: Arc<Inner>, record: Arc<CallbackRecord>, claim: ClaimedDelivery) -> bool {
    match attempt(&inner, &record, claim).await {
        Ok(left) => left,
        Err(e) => {
            // The lease expires and the event is tried again.
            tracing::warn!(callback = %record.id, seq = claim.seq, error = %e, "callback delivery: store error");
            false
        }
    }
}

async fn attempt(inner: &Inner, record: &CallbackRecord, claim: ClaimedDelivery) -> Result<bool, StoreError> {
    let store = &inner.store;
    let found = store.events_after(claim.seq - 1, &EventFilter::default(), 1).await?;
    let event = found.into_iter().next().filter(|e| e.seq == claim.seq);
    let Some(event) = event.and_then(|e| inner.hooks.apply(e)) else {
        // Suppressed by the hook (or pruned, which retention avoids): nothing to send.
        store.delivery_succeeded(&record.id, claim.seq, Some(claim.lease_until)).await?;
        return Ok(true);
    };
    let body = if record.shape == "onprem" { payload::onprem(&event) } else { payload::cloud(&event) };
    let now = SystemTime::now();
    let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let secret = record.secret.as_bytes();
    let mut request = inner
        .client
        .post(&record.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(signing::SIGNATURE_HEADER, signing::sign(secret, unix, &body))
        .header(signing::EVENT_ID_HEADER, event.seq.to_string());
    if record.shape != "onprem" {
        request = request.header(
            wabridge_types::signature::SIGNATURE_HEADER,
            wabridge_types::signature::sign(secret, &body),
        );
    }
    let outcome = match request.body(body).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        // Redirects are not followed (a redirected POST becomes a GET without the body): a failed attempt.
        Ok(response) if response.status().is_redirection() => {
            Err(format!("HTTP {} (redirects are not followed)", response.status().as_u16()))
        }
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".to_owned()),
        Err(e) if e.is_connect() => Err("connection failed".to_owned()),
        Err(_) => Err("request failed".to_owned()),
    };
    match outcome {
        Ok(()) => {
            inner.metrics.callback_attempts.inc("ok");
            if !store.delivery_succeeded(&record.id, claim.seq, Some(claim.lease_until)).await? {
                tracing::debug!(callback = %record.id, seq = claim.seq, "delivered after its lease expired; the new claim's outcome stands");
            }
            Ok(true)
        }
        Err(reason) => {
            inner.metrics.callback_attempts.inc("error");
            let config = &inner.delivery;
            let age = now.duration_since(claim.queued_at).unwrap_or(Duration::ZERO);
            let give_up = age >= Duration::from_millis(config.max_age_ms);
            let delay = backoff(config.initial_backoff_ms, config.max_backoff_ms, claim.attempts);
            if give_up {
                inner.metrics.callback_failed.inc();
                tracing::warn!(callback = %record.id, seq = claim.seq, reason, "callback delivery failed for good; replayable");
            } else {
                tracing::debug!(callback = %record.id, seq = claim.seq, reason, ?delay, "callback delivery failed; will retry");
            }
            // The wait counts from the end of the failed attempt (a timeout may have taken longer than it).
            let next = SystemTime::now() + delay;
            store
                .delivery_failed(&record.id, claim.seq, Some(claim.lease_until), next, &reason, give_up)
                .await?;
            Ok(give_up)
        }
    }
}

/// The wait before attempt `attempts + 1`: `initial × 2^attempts`, at most `max`, with jitter (a random
/// point in the upper half, so retries of many events spread out without ever coming early).
#[must_use]
pub(super) fn backoff(initial_ms: u64, max_ms: u64, attempts: u32) -> Duration {
    let full = initial_ms.saturating_mul(1_u64 << attempts.min(32)).min(max_ms).max(1);
    let jittered = rand::rng().random_range(full / 2..=full);
    Duration::from_millis(jittered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        for attempts in 0..40 {
            let d = backoff(100, 10_000, attempts).as_millis() as u64;
            let full = (100_u64 << attempts.min(32)).min(10_000);
            assert!(d >= full / 2 && d <= full, "{attempts}: {d}");
        }
    }
}
