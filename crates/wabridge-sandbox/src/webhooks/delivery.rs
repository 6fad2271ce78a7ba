//! The worker of one callback URL: takes what piled up in its queue (up to `batch_max` events),
//! posts it signed, and on failure puts the events back and backs off exponentially; events older
//! than `max_age` are given up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

use super::{Event, Pending, Target, envelope};
use crate::chaos::{chance, lock, purpose};
use crate::limits::nanos;
use crate::state::Shared;

/// Starts the worker of `target`.
pub(super) fn spawn_worker(shared: Arc<Shared>, target: Arc<Target>) {
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        let permits = Arc::new(Semaphore::new(shared.config.webhooks.max_in_flight));
        loop {
            tokio::select! {
                () = target.cancel.cancelled() => return,
                () = target.notify.notified() => {}
            }
            if drain(&shared, &target, &permits).await.is_err() {
                return;
            }
        }
    });
}

/// Starts deliveries until the queue is empty. `Err` when the target was cancelled.
async fn drain(shared: &Arc<Shared>, target: &Arc<Target>, permits: &Arc<Semaphore>) -> Result<(), ()> {
    loop {
        let until = target.backoff_until.load(Ordering::Acquire);
        if until > shared.clock.now_ns() {
            tokio::select! {
                () = target.cancel.cancelled() => return Err(()),
                () = tokio::time::sleep_until(shared.clock.instant_at(until)) => continue,
            }
        }
        let permit = tokio::select! {
            () = target.cancel.cancelled() => return Err(()),
            permit = permits.clone().acquire_owned() => permit.map_err(|_| ())?,
        };
        // A delivery that failed while this one waited for a permit may have started a backoff.
        if target.backoff_until.load(Ordering::Acquire) > shared.clock.now_ns() {
            continue;
        }
        let batch = take_batch(shared, target);
        if batch.is_empty() {
            return Ok(());
        }
        let in_flight = InFlight::new(Arc::clone(target), batch.len());
        let (shared, target) = (shared.clone(), target.clone());
        let tasks = shared.tasks.clone();
        tasks.spawn(async move {
            deliver(shared, target, batch, permit).await;
            drop(in_flight);
        });
    }
}

/// Counts a batch as in flight (see [`super::WebhookHub::pending`]) from when it leaves the queue until its
/// delivery is over: posted (with its duplicate), or back in the queue.
struct InFlight {
    target: Arc<Target>,
    events: usize,
}

impl InFlight {
    fn new(target: Arc<Target>, events: usize) -> Self {
        target.in_flight.fetch_add(events, Ordering::AcqRel);
        Self { target, events }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.target.in_flight.fetch_sub(self.events, Ordering::AcqRel);
    }
}

/// Takes up to `batch_max` events, dropping those past the maximum age.
fn take_batch(shared: &Shared, target: &Target) -> Vec<Pending> {
    let cfg = &shared.config.webhooks;
    let now = shared.clock.now_ns();
    let max_age = nanos(cfg.max_age);
    let mut queue = lock(&target.queue);
    let mut batch = Vec::with_capacity(cfg.batch_max.min(queue.len()));
    let mut expired = 0u64;
    while batch.len() < cfg.batch_max {
        let Some(p) = queue.pop_front() else { break };
        if now.saturating_sub(p.created) > max_age {
            expired += 1;
        } else {
            batch.push(p);
        }
    }
    drop(queue);
    if expired > 0 {
        shared.counters.webhook_events_dropped.fetch_add(expired, Ordering::Relaxed);
    }
    batch
}

async fn deliver(
    shared: Arc<Shared>,
    target: Arc<Target>,
    batch: Vec<Pending>,
    permit: OwnedSemaphorePermit,
) {
    let events: Vec<Arc<Event>> = batch.iter().map(|p| p.event.clone()).collect();
    let ok = tokio::select! {
        () = target.cancel.cancelled() => return,
        ok = post(&shared, &target.url, &events) => ok,
    };
    if ok {
        target.failures.store(0, Ordering::Relaxed);
        shared.counters.webhook_posts_ok.fetch_add(1, Ordering::Relaxed);
        shared.counters.webhook_events_delivered.fetch_add(events.len() as u64, Ordering::Relaxed);
        // Chaos: some events arrive a second time (decided per event, so batching does not matter).
        if let Some((duplicate, _, _, seed)) = shared.chaos.webhook_settings() {
            let again: Vec<Arc<Event>> = events
                .iter()
                .filter(|e| chance(seed, purpose::DUPLICATE, e.key, duplicate))
                .cloned()
                .collect();
            if !again.is_empty() {
                tokio::select! {
                    () = target.cancel.cancelled() => {}
                    _ = post(&shared, &target.url, &again) => {}
                }
            }
        }
        drop(permit);
        return;
    }
    shared.counters.webhook_posts_failed.fetch_add(1, Ordering::Relaxed);
    let failures = target.failures.fetch_add(1, Ordering::AcqRel) + 1;
    let delay = backoff(&shared, failures);
    let until = shared.clock.now_ns().saturating_add(nanos(delay));
    target.backoff_until.fetch_max(until, Ordering::AcqRel);
    {
        let mut queue = lock(&target.queue);
        for p in batch.into_iter().rev() {
            queue.push_front(p);
        }
    }
    drop(permit);
    target.notify.notify_one();
}

/// The delay after `failures` consecutive failures: the initial delay doubled each time, capped.
fn backoff(shared: &Shared, failures: u32) -> Duration {
    let cfg = &shared.config.webhooks;
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
    cfg.retry_initial.saturating_mul(factor).min(cfg.retry_max_interval)
}

/// Posts one envelope; `true` on a 2xx answer.
async fn post(shared: &Shared, url: &str, events: &[Arc<Event>]) -> bool {
    let body = match envelope(shared, events).to_vec() {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "webhook envelope could not be serialized");
            return true; // nothing to retry: it would fail again
        }
    };
    let mut request = shared.http.post(url).header("content-type", "application/json");
    if let Some(secret) = &shared.config.app_secret {
        request = request.header(SIGNATURE_HEADER, sign(secret.as_bytes(), &body));
    }
    match request.body(body).send().await {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            tracing::debug!(url, status = %response.status(), "webhook delivery refused");
            false
        }
        Err(e) => {
            tracing::debug!(url, error = %e, "webhook delivery failed");
            false
        }
    }
}
