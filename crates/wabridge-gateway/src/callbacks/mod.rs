//! Application callbacks: every event (matching a callback's filter) POSTed to the application's URL,
//! signed, at least once, in order per contact, retried with exponential backoff and jitter up to a maximum
//! age, then marked failed (replayable).
//!
//! One worker task per callback ([`worker`]) moves the callback's cursor through the log into delivery rows
//! (see `store/callbacks.rs` for why rows and a cursor), claims the rows that may go now — the oldest
//! pending of each contact, due, not leased — at most `max_concurrent` at a time, and records each outcome.
//! It wakes on new events (the feed's head), on a finished request, on the API (replay) and when the next
//! retry is due.

mod api;
pub mod payload;
pub mod signing;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::routes;

use crate::config::{CallbackShape, Config, DeliveryConfig};
use crate::events::{EventFeed, Hooks};
use crate::metrics::Metrics;
use crate::store::{CallbackRecord, Store, StoreError};

/// The callbacks' dispatcher: starts, stops and wakes one worker per callback. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    feed: Arc<EventFeed>,
    hooks: Hooks,
    metrics: Arc<Metrics>,
    delivery: DeliveryConfig,
    client: reqwest::Client,
    stop: CancellationToken,
    tasks: TaskTracker,
    workers: Mutex<HashMap<String, Worker>>,
    /// Callbacks being removed: no worker is started for them until their record is gone.
    removing: Mutex<std::collections::HashSet<String>>,
    /// Per callback: (backlog, age in seconds of the oldest undelivered event), summed into the gauges.
    figures: Mutex<HashMap<String, (u64, u64)>>,
}

struct Worker {
    stop: CancellationToken,
    wake: Arc<Notify>,
    /// Held by the worker while it queues and claims: once stopped and this is taken, it will not touch its
    /// callback's rows again (a callback deleted and created anew under the same id is not the old one's).
    stepping: Arc<tokio::sync::Mutex<()>>,
}

/// How often the dispatcher looks for callbacks it has no worker for (created through another instance's API,
/// or re-created after its worker stopped).
const DISCOVER_EVERY: Duration = Duration::from_secs(2);

fn spawn_worker(inner: &Arc<Inner>, id: String) {
    let stop = inner.stop.child_token();
    let wake = Arc::new(Notify::new());
    let stepping = Arc::new(tokio::sync::Mutex::new(()));
    let previous = inner
        .workers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), Worker { stop: stop.clone(), wake: wake.clone(), stepping: stepping.clone() });
    if let Some(previous) = previous {
        previous.stop.cancel();
    }
    inner.tasks.spawn(worker::run(inner.clone(), id, stop, wake, stepping));
}

/// With several instances on one database, a callback created through one instance's API is served by every
/// instance: each finds it here and starts a worker (deliveries are claimed, so each goes out once).
async fn discover(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = tokio::time::sleep(DISCOVER_EVERY) => {}
        }
        let Ok(records) = inner.store.callbacks().await else { continue };
        let missing: Vec<String> = {
            let workers = inner.workers.lock().unwrap_or_else(PoisonError::into_inner);
            records
                .into_iter()
                .map(|r| r.id)
                .filter(|id| workers.get(id).is_none_or(|w| w.stop.is_cancelled()))
                .collect()
        };
        for id in missing {
            // Checked with the spawn, under one lock: `remove` marks the id before it takes the worker out.
            let removing = inner.removing.lock().unwrap_or_else(PoisonError::into_inner);
            if removing.contains(&id) {
                continue;
            }
            tracing::info!(callback = %id, "a callback without a worker here; starting one");
            spawn_worker(&inner, id);
            drop(removing);
        }
    }
}

/// The id of a callback from the configuration that names none: derived from its URL.
#[must_use]
pub fn config_id(url: &str) -> String {
    format!("cfg-{}", &hex::encode(Sha256::digest(url.as_bytes()))[..12])
}

/// The store's name of a shape.
#[must_use]
pub fn shape_name(shape: CallbackShape) -> &'static str {
    match shape {
        CallbackShape::Cloud => "cloud",
        CallbackShape::Onprem => "onprem",
    }
}

/// The kinds of the event log (`kind` in `docs/events.md`): what a callback's `events` may name. A kind outside
/// these matches no event, yet the callback's cursor still moves past every event it skips, so a typo (the
/// On-Premises `messages`, say) would lose those events for good: it is refused where a callback is defined.
pub const EVENT_KINDS: [&str; 6] = ["message", "status", "payment", "error", "change", "alert"];

/// The requests in flight at once a callback may ask for.
const MAX_CONCURRENT: std::ops::RangeInclusive<u32> = 1..=256;

/// Why a callback cannot be served as defined. The message names the field, never the URL (it may hold the
/// receiver's credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCallback {
    #[error("url: {0}")]
    Url(String),
    #[error("max_concurrent: between {low} and {high}, not {0}", low = MAX_CONCURRENT.start(), high = MAX_CONCURRENT.end())]
    MaxConcurrent(u32),
    #[error("events: {0:?} is not an event kind; the kinds are {kinds}", kinds = EVENT_KINDS.join(", "))]
    UnknownKind(String),
}

/// Checks a callback's definition, wherever it comes from (the configuration, `POST /v1/callbacks`), so that
/// both refuse the same things: a URL the gateway cannot POST to, a concurrency out of range, an unknown kind.
///
/// # Errors
/// The first problem found.
pub fn check_definition(url: &str, max_concurrent: u32, kinds: &[String]) -> Result<(), InvalidCallback> {
    // The parser's message describes the problem without quoting the URL.
    let parsed = reqwest::Url::parse(url).map_err(|e| InvalidCallback::Url(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InvalidCallback::Url("http or https only".to_owned()));
    }
    if !MAX_CONCURRENT.contains(&max_concurrent) {
        return Err(InvalidCallback::MaxConcurrent(max_concurrent));
    }
    if let Some(unknown) = kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str())) {
        return Err(InvalidCallback::UnknownKind(unknown.clone()));
    }
    Ok(())
}

impl Dispatcher {
    /// Stores the configured callbacks (new ones start at the end of the log; known ones keep their
    /// delivery state; ones removed from the configuration are deleted) and starts a worker for every
    /// stored callback.
    pub async fn start(
        config: &Config,
        store: Store,
        feed: Arc<EventFeed>,
        hooks: Hooks,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let head = feed.head();
        let mut ids = Vec::new();
        for c in &config.callbacks {
            let id = c.id.clone().unwrap_or_else(|| config_id(&c.url));
            let record = CallbackRecord {
                id: id.clone(),
                url: c.url.clone(),
                secret: secrecy::ExposeSecret::expose_secret(&c.secret).to_owned(),
                shape: shape_name(c.shape).to_owned(),
                max_concurrent: c.max_concurrent.max(1),
                kinds: c.events.clone(),
                phone_number_id: c.phone_number_id.clone(),
                source: "config".to_owned(),
                scan_seq: head,
                created_at: SystemTime::now(),
            };
            store.put_callback(&record, true).await?;
            ids.push(id);
        }
        // The configuration is the truth for configured callbacks: one it no longer lists goes, with its delivery
        // state. (With several instances, the one that starts last decides: give them the same callbacks.)
        let removed = store.delete_callbacks_except("config", &ids).await?;
        if removed > 0 {
            tracing::warn!(
                removed,
                "configured callbacks no longer in the configuration were deleted with their undelivered events"
            );
        }
        let timeout = Duration::from_millis(config.delivery.request_timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A webhook sender never follows redirects: the redirected POST would arrive as a GET without
            // its body, and a 2xx there would count as delivered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wabridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let dispatcher = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                feed,
                hooks,
                metrics,
                delivery: config.delivery.clone(),
                client,
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                workers: Mutex::new(HashMap::new()),
                removing: Mutex::new(std::collections::HashSet::new()),
                figures: Mutex::new(HashMap::new()),
            }),
        };
        for record in store.callbacks().await? {
            // Created through the API before unknown kinds were refused: served as stored, and said at every
            // start, since the events its owner meant are skipped.
            if let Some(kind) = record.kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str())) {
                tracing::warn!(
                    callback = %record.id,
                    kind = %kind,
                    "a stored callback filters on a kind no event has, which matches nothing; delete it and \
                     create it again with the kinds of docs/events.md"
                );
            }
            dispatcher.spawn_worker(record.id);
        }
        dispatcher.inner.tasks.spawn(discover(dispatcher.inner.clone()));
        Ok(dispatcher)
    }

    fn spawn_worker(&self, id: String) {
        spawn_worker(&self.inner, id);
    }

    /// Creates a callback (starting at the end of the log) and its worker; `Ok(false)` when the id exists.
    pub async fn add(&self, mut record: CallbackRecord) -> Result<bool, StoreError> {
        record.scan_seq = self.inner.feed.head();
        if !self.inner.store.put_callback(&record, false).await? {
            return Ok(false);
        }
        self.spawn_worker(record.id);
        Ok(true)
    }

    /// Gives an existing callback new settings (URL, secret, concurrency…), keeping its cursor and pending
    /// deliveries; its worker restarts with them.
    pub async fn update(&self, record: CallbackRecord) -> Result<(), StoreError> {
        self.inner.store.put_callback(&record, true).await?;
        self.spawn_worker(record.id);
        Ok(())
    }

    /// Puts `record` in the place of the callback of its id (starting at the end of the log, without the old
    /// one's delivery state), in one transaction, and restarts its worker with it: a new receiver for the id.
    /// On an error nothing changed: the old callback keeps its cursor, its undelivered events and its worker.
    pub async fn replace(&self, mut record: CallbackRecord) -> Result<(), StoreError> {
        record.scan_seq = self.inner.feed.head();
        self.inner.store.replace_callback(&record).await?;
        // The old worker, here or on another instance, may still be in a round: the store refuses its
        // statements for the replaced record, so it neither queues nor claims the new one's events with the
        // old settings.
        self.spawn_worker(record.id);
        Ok(())
    }

    /// Deletes a callback, its delivery state and its worker; whether it existed. On an error nothing was
    /// deleted, and the callback keeps being served.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        // Until the record is deleted, `discover` (which may have read it just before) must not start a worker
        // for it again: that worker would run with the old settings on the rows of a callback re-created under
        // the same id (`PATCH /v1/settings/application` removes and adds).
        self.inner.removing.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned());
        let worker = self.inner.workers.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        // Stopped, and done with the round it was in: it claims and queues no more. (Requests in flight
        // finish; their outcomes concern rows deleted below.)
        let quiet = match worker {
            Some(w) => {
                w.stop.cancel();
                Some(w.stepping.lock_owned().await)
            }
            None => None,
        };
        self.inner.forget_figures(id);
        let deleted = self.inner.store.delete_callback(id).await;
        self.inner.removing.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        if deleted.is_err() && quiet.is_some() {
            // Still stored (the deletion is one transaction): its worker goes on, not only once `discover`
            // finds it without one.
            self.spawn_worker(id.to_owned());
        }
        deleted
    }

    /// Re-queues the failed events of a callback; how many.
    pub async fn replay(&self, id: &str) -> Result<u64, StoreError> {
        let n = self.inner.store.replay_failed(id).await?;
        if let Some(w) = self.inner.workers.lock().unwrap_or_else(PoisonError::into_inner).get(id) {
            w.wake.notify_one();
        }
        Ok(n)
    }

    /// Stops every worker, letting the requests in flight finish (each within the request timeout).
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// The feed's head: the newest event the callbacks may have seen.
    #[must_use]
    pub fn head(&self) -> i64 {
        self.inner.feed.head()
    }
}

impl Inner {
    /// Records a callback's figures and updates the gauges (sums and maximum over callbacks), unless its
    /// worker was stopped: checked under the figures' lock, and `remove` stops the worker before it forgets
    /// the figures, so a refresh finishing late cannot bring a removed callback's figures back.
    fn set_figures(&self, id: &str, backlog: u64, oldest_age_secs: u64, stop: &CancellationToken) {
        let mut figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        if stop.is_cancelled() {
            return;
        }
        figures.insert(id.to_owned(), (backlog, oldest_age_secs));
        self.metrics.callback_backlog.set(figures.values().map(|f| f.0).sum());
        self.metrics.callback_oldest_age_seconds.set(figures.values().map(|f| f.1).max().unwrap_or(0));
    }

    /// Drops a callback's figures (it is gone) and updates the gauges.
    fn forget_figures(&self, id: &str) {
        let mut figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        figures.remove(id);
        self.metrics.callback_backlog.set(figures.values().map(|f| f.0).sum());
        self.metrics.callback_oldest_age_seconds.set(figures.values().map(|f| f.1).max().unwrap_or(0));
    }
}
