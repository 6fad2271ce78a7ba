//! Sending: the durable outbound queue and one scheduler per business number.
//!
//! `POST /v1/messages` inserts through the [`QueueWriter`] (group commit) and wakes the number's
//! [`scheduler`]; the scheduler sends at the rate Meta allows and records what happened. See
//! `docs/sending.md` for the states, the error classes and crash recovery.

mod completion;
pub mod echo;
pub mod embedded;
mod outage;
mod pacing;
mod request;
mod scheduler;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wabridge_cloud::Client;
use wabridge_cloud::limiter::{DEFAULT_SLACK, Gcra};
use wabridge_types::error::ErrorClass;

pub use completion::Completion;
pub use pacing::WabaPacing;
pub use writer::{QueueWriter, WriteError};

use crate::config::{Config, OutboundConfig};
use crate::metrics::Metrics;
use crate::store::{
    Enqueued, IntakeBatchItem, IntakeSender, NewEvent, NewQueued, NewRawWebhook, Store, StoreError,
};

/// What webhooks tell a number's scheduler: inbound messages (counted against its level), contacts whose
/// 24-hour window opened, and a request to read its level again (`THROUGHPUT_UPGRADE`).
///
/// Coalesced rather than queued: a bounded channel would drop news under a burst of webhooks (and a dropped
/// count lets the number exceed its level), an unbounded one would hold one entry per inbound message while
/// the scheduler is busy. Here a burst of any size costs a counter, a flag and one entry per distinct
/// contact, and the scheduler takes it all at once when woken; nothing is lost.
#[derive(Debug, Default)]
pub(crate) struct ControlInbox {
    inbound: AtomicU64,
    reread_level: AtomicBool,
    /// Contacts that wrote, with when the gateway heard of it (the latest, for a contact that wrote twice).
    windows: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Messages cancelled through the API, `(recipient, id)`.
    cancelled: std::sync::Mutex<Vec<(String, String)>>,
    notify: Notify,
}

/// What a scheduler takes from its [`ControlInbox`] at once.
#[derive(Debug, Default)]
pub(crate) struct ControlNews {
    /// Inbound messages since the last take.
    pub(crate) inbound: u64,
    /// Whether the level must be read again.
    pub(crate) reread_level: bool,
    /// Contacts whose window opened, and when.
    pub(crate) windows: Vec<(String, std::time::Instant)>,
    /// Messages cancelled, `(recipient, id)`.
    pub(crate) cancelled: Vec<(String, String)>,
}

impl ControlInbox {
    fn inbound(&self, contacts: Vec<String>) {
        let now = std::time::Instant::now();
        self.inbound.fetch_add(contacts.len() as u64, Ordering::Relaxed);
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in contacts {
            windows.insert(c, now);
        }
        drop(windows);
        self.notify.notify_one();
    }

    fn cancelled(&self, recipient: String, id: String) {
        self.cancelled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((recipient, id));
        self.notify.notify_one();
    }

    fn reread_level(&self) {
        self.reread_level.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Waits until news arrives (at once if some arrived since the last wait).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Takes everything that arrived so far.
    pub(crate) fn take(&self) -> ControlNews {
        let windows =
            std::mem::take(&mut *self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        ControlNews {
            inbound: self.inbound.swap(0, Ordering::Relaxed),
            reread_level: self.reread_level.swap(false, Ordering::Relaxed),
            windows: windows.into_iter().collect(),
            cancelled: std::mem::take(
                &mut *self.cancelled.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
        }
    }
}

/// Sets every number's backlog counter (and the backlog gauge) from the store every
/// `outbound.backlog_refresh_ms`, until the schedulers stop. Between two reads each instance counts what it
/// queues and sends itself; with several instances on one database, the others' work shows at the next read
/// (so a full backlog is refused, and a drained one accepted again, within that time). A read that races a
/// local change can be one off until the next.
async fn refresh_backlogs(shared: Arc<Shared>) {
    let period = std::time::Duration::from_millis(shared.config.backlog_refresh_ms.max(100));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match shared.store.outbound_backlogs().await {
            Ok(counts) => {
                let counts: HashMap<String, i64> = counts.into_iter().collect();
                for (id, n) in &shared.numbers {
                    n.backlog.store(counts.get(id).copied().unwrap_or(0), Ordering::Relaxed);
                }
                shared.metrics.outbound_backlog.set(u64::try_from(counts.values().sum::<i64>()).unwrap_or(0));
            }
            Err(e) => tracing::debug!(error = %e, "backlog counts could not be read again"),
        }
    }
}

/// One configured number as the API and its scheduler see it.
#[derive(Debug)]
pub(crate) struct NumberHandle {
    waba: String,
    backlog: Arc<AtomicI64>,
    /// Whether this instance's scheduler holds the lease of the number's WABA (sends for it).
    owned: std::sync::atomic::AtomicBool,
    /// Sends of unknown outcome its scheduler holds (the metric is the sum over every number).
    in_doubt: std::sync::atomic::AtomicU64,
    wake: Arc<Notify>,
    inbox: Arc<ControlInbox>,
    /// When this number's requests may leave (see [`Shared::departure`] and [`Shared::leave`]).
    departures: std::sync::Mutex<Departures>,
}

/// The departure times of one number's requests.
#[derive(Debug)]
struct Departures {
    /// The next free slot: sends reserve slots `1 / level` apart as they come out of their lag.
    next: Option<tokio::time::Instant>,
    /// The requests that actually left. Slots are kept by sleeping tasks; when the runtime stalls (a busy
    /// machine), every task whose slot passed meanwhile wakes at once, and without this gate their requests
    /// would reach Meta back to back (seen in CI: 130429 at level 80 after a stall of 100+ ms).
    left: Gcra,
}

impl Default for Departures {
    fn default() -> Self {
        Self { next: None, left: Gcra::new(std::time::Duration::ZERO, 1) }
    }
}

impl Departures {
    /// Reserves the next slot, `spacing` after the previous one and not before `now`; `None` if it is now.
    fn reserve(
        &mut self,
        now: tokio::time::Instant,
        spacing: std::time::Duration,
    ) -> Option<tokio::time::Instant> {
        let slot = self.next.map_or(now, |n| n.max(now));
        self.next = Some(slot + spacing);
        (slot > now).then_some(slot)
    }

    /// Lets a request leave at `now` if those that left stay `spacing` apart, `ahead` of schedule at most.
    fn leave(
        &mut self,
        now: std::time::Instant,
        spacing: std::time::Duration,
        ahead: std::time::Duration,
    ) -> Result<(), std::time::Duration> {
        self.left.reconfigure(spacing, ahead);
        self.left.check(now)
    }
}

/// The key of the sending lease of the numbers of `waba` (a row of `number_leases`): one lease per WABA, so
/// that one instance at a time sends for all of a WABA's numbers and the limits that span the WABA (its
/// hourly call quota, its messaging-limit tier, an 80007 pause) are kept in one place.
#[must_use]
pub fn sending_lease_key(waba: &str) -> String {
    format!("waba:{waba}")
}

/// How far ahead of its schedule a number's admission (the limiter) may run: a fifth of the departure lag, 20 ms
/// by default; see `Scheduler::new`.
pub(super) fn run_ahead(cfg: &OutboundConfig) -> std::time::Duration {
    std::time::Duration::from_millis(cfg.departure_lag_ms / 5).max(DEFAULT_SLACK)
}

/// How far ahead of the level the requests that leave may run (the departure gate): half the departure lag,
/// 50 ms by default. Requests delayed by a stall catch up by that much at most, so a number never sends more
/// than `level × (1 s + 50 ms)` in a second, below the sandbox's 100 ms burst [R: Meta documents none]; 20 ms
/// was measured too and lost 5 % of the level at 1,000 msg/s (every stall longer than that lost its time).
fn leave_ahead(cfg: &OutboundConfig) -> std::time::Duration {
    std::time::Duration::from_millis(cfg.departure_lag_ms / 2).max(DEFAULT_SLACK)
}

/// What the schedulers share.
pub(crate) struct Shared {
    config: Arc<OutboundConfig>,
    store: Store,
    writer: QueueWriter,
    metrics: Arc<Metrics>,
    client: Option<Client>,
    pacing: WabaPacing,
    numbers: HashMap<String, NumberHandle>,
    owner_id: String,
    intake: IntakeSender,
    cancel: CancellationToken,
    /// Waiters on single messages (Cloud-compatible sends).
    completions: completion::Completions,
    /// Numbers whose sending is paused until an operator acts (alerts of `/v1/health`).
    paused: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The sending side of the gateway. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
    /// The schedulers, stopped first.
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    /// The queue writers, stopped after the schedulers so their last state changes are written.
    writers: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    writer_stop: CancellationToken,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").field("numbers", &self.shared.numbers.len()).finish_non_exhaustive()
    }
}

impl Outbound {
    /// Starts the writer and one scheduler per configured number (none without an access token: messages
    /// are then accepted and kept queued).
    pub async fn start(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        intake: IntakeSender,
    ) -> Result<Self, StoreError> {
        let client: Option<Client> = config.meta.access_token.as_ref().and_then(|token| {
            Client::builder()
                .base_url(config.meta.graph_url.clone())
                .api_version(config.meta.api_version.clone())
                .access_token(token.expose_secret().to_owned())
                .build()
                .map_err(|e| tracing::error!(error = %e, "cannot build the Cloud API client; not sending"))
                .ok()
        });
        Self::start_with_client(config, store, metrics, intake, client).await
    }

    /// Like [`Self::start`], sending through `client` (the gateway passes one whose access token can be
    /// reloaded).
    pub async fn start_with_client(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        intake: IntakeSender,
        client: Option<Client>,
    ) -> Result<Self, StoreError> {
        let cfg = Arc::new(config.outbound.clone());
        if matches!(store, Store::Sqlite(_)) {
            // One process owns a SQLite file: a lease left by a killed process would only delay sending.
            store.clear_number_leases().await?;
        }
        let backlogs: HashMap<String, i64> = store.outbound_backlogs().await?.into_iter().collect();
        metrics.outbound_backlog.set(u64::try_from(backlogs.values().sum::<i64>()).unwrap_or(0));
        let writer_stop = CancellationToken::new();
        let (writer, writer_tasks) = QueueWriter::spawn(&store, cfg.max_commit_batch, &writer_stop);
        let mut numbers = HashMap::new();
        let mut receivers = Vec::new();
        for n in &config.numbers {
            let inbox = Arc::new(ControlInbox::default());
            let wake = Arc::new(Notify::new());
            let backlog = Arc::new(AtomicI64::new(backlogs.get(&n.id).copied().unwrap_or(0)));
            numbers.insert(
                n.id.clone(),
                NumberHandle {
                    waba: n.waba_id.clone(),
                    backlog,
                    owned: std::sync::atomic::AtomicBool::new(false),
                    in_doubt: std::sync::atomic::AtomicU64::new(0),
                    wake: wake.clone(),
                    inbox: inbox.clone(),
                    departures: std::sync::Mutex::default(),
                },
            );
            receivers.push((n.id.clone(), n.waba_id.clone(), n.level_mps, inbox, wake));
        }
        let shared = Arc::new(Shared {
            pacing: WabaPacing::new(cfg.waba_calls_per_hour, cfg.messaging_limit),
            config: cfg,
            store,
            writer,
            metrics,
            client,
            numbers,
            owner_id: uuid::Uuid::new_v4().to_string(),
            intake,
            cancel: CancellationToken::new(),
            completions: completion::Completions::default(),
            paused: std::sync::Mutex::default(),
        });
        let mut tasks = vec![tokio::spawn(refresh_backlogs(shared.clone()))];
        if shared.client.is_some() {
            for (id, waba, level, inbox, wake) in receivers {
                let s = scheduler::Scheduler::new(shared.clone(), &id, &waba, level, inbox, wake);
                tasks.push(tokio::spawn(s.run()));
            }
        }
        Ok(Self {
            shared,
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            writers: Arc::new(std::sync::Mutex::new(writer_tasks)),
            writer_stop,
        })
    }

    /// Stops the schedulers (sends in flight finish or stay `sending`, to be reconciled at the next start),
    /// then the queue writers, which commit what is queued, then gives up this instance's sending leases, so
    /// that another instance (a rolling restart's next one) takes the numbers over at its next try instead of
    /// after `outbound.lease_ms`. Released last: a taker must find every state change of ours committed.
    pub async fn stop(&self) {
        self.shared.cancel.cancel();
        await_all(&self.tasks, "an outbound scheduler").await;
        self.writer_stop.cancel();
        await_all(&self.writers, "an outbound writer").await;
        if let Err(e) = self.shared.store.release_number_leases(&self.shared.owner_id).await {
            tracing::warn!(error = %e, "the sending leases could not be released; they run out after outbound.lease_ms");
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &OutboundConfig {
        &self.shared.config
    }

    /// The ids of the configured numbers.
    #[must_use]
    pub fn numbers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.numbers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Messages of `number` not yet sent, as this instance counts them (read again from the store every
    /// `outbound.backlog_refresh_ms`, so sends accepted or sent by other instances count too).
    #[must_use]
    pub fn backlog(&self, number: &str) -> i64 {
        self.shared.numbers.get(number).map_or(0, |n| n.backlog.load(Ordering::Relaxed))
    }

    /// Whether this instance sends for `number` now (its scheduler holds the lease of the number's WABA): its outcomes
    /// reach [`Self::watch`] directly; otherwise another instance sends and records them in the store.
    #[must_use]
    pub fn sends_here(&self, number: &str) -> bool {
        self.shared.numbers.get(number).is_some_and(|n| n.owned.load(Ordering::Relaxed))
    }

    /// Durably queues `message` and wakes its scheduler.
    pub async fn enqueue(&self, message: NewQueued) -> Result<Enqueued, WriteError> {
        let number = message.phone_number_id.clone();
        let outcome = self.shared.writer.insert(message).await?;
        if outcome == Enqueued::Inserted {
            self.shared.metrics.outbound_accepted.inc();
            self.shared.metrics.outbound_backlog.inc();
            if let Some(n) = self.shared.numbers.get(&number) {
                n.backlog.fetch_add(1, Ordering::Relaxed);
                n.wake.notify_one();
            }
        }
        Ok(outcome)
    }

    /// A receiver of how message `id` ends; register before queueing it. Drop it with [`Self::forget`].
    #[must_use]
    pub fn watch(&self, id: &str) -> tokio::sync::oneshot::Receiver<Completion> {
        self.shared.completions.watch(id)
    }

    /// Stops watching message `id`.
    pub fn forget(&self, id: &str) {
        self.shared.completions.forget(id);
    }

    /// Numbers whose sending is paused until an operator acts (token, account or payment errors), and
    /// numbers whose WABA is paused.
    #[must_use]
    pub fn paused_numbers(&self) -> Vec<String> {
        let mut paused: Vec<String> = self
            .shared
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let now = std::time::Instant::now();
        for (id, n) in &self.shared.numbers {
            if self.shared.pacing.paused_until(&n.waba, now).is_some() && !paused.contains(id) {
                paused.push(id.clone());
            }
        }
        paused.sort();
        paused
    }

    /// Queued message `id` of `number` to `recipient` was cancelled through the API. The number's scheduler
    /// forgets it at once, if this instance sends for the number: a message waiting for its retry no longer
    /// holds back later messages to its recipient. (Cancelled through another instance, it is found at the
    /// sending scheduler's next poll, `outbound.poll_interval_ms`.)
    pub fn cancelled(&self, number: &str, recipient: &str, id: &str) {
        self.shared.backlog_dec(number);
        if self.shared.client.is_none() {
            return;
        }
        if let Some(n) = self.shared.numbers.get(number) {
            n.inbox.cancelled(recipient.to_owned(), id.to_owned());
        }
    }

    /// Inbound messages from `contacts` reached `number` (counted against its level; their windows open).
    /// Without a client no scheduler runs to take the news: nothing is kept.
    pub fn inbound(&self, number: &str, contacts: Vec<String>) {
        if self.shared.client.is_none() {
            return;
        }
        if let Some(n) = self.shared.numbers.get(number) {
            n.inbox.inbound(contacts);
        }
    }

    /// A `THROUGHPUT_UPGRADE` reached `waba`: its numbers read their level again.
    pub fn throughput_upgrade(&self, waba: &str) {
        for n in self.shared.numbers.values().filter(|n| n.waba == waba) {
            n.inbox.reread_level();
        }
    }
}

impl Shared {
    /// The moment a request of `number` may leave: at least `spacing` after the previous one. Admission
    /// already holds the number to its level on average (the limiter); this only keeps the requests
    /// themselves from bunching up behind a commit, since Meta counts them as they arrive. `None` when it may
    /// leave now.
    pub(super) fn departure(
        &self,
        number: &str,
        spacing: std::time::Duration,
    ) -> Option<tokio::time::Instant> {
        let handle = self.numbers.get(number)?;
        let mut d = handle.departures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        d.reserve(tokio::time::Instant::now(), spacing)
    }

    /// Whether a request of `number` may leave now, its slot reached: requests that actually leave stay
    /// `spacing` apart on average, running ahead by at most [`leave_ahead`]. `Err` says how long to wait.
    pub(super) fn leave(
        &self,
        number: &str,
        spacing: std::time::Duration,
    ) -> Result<(), std::time::Duration> {
        let Some(handle) = self.numbers.get(number) else { return Ok(()) };
        let mut d = handle.departures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        d.leave(std::time::Instant::now(), spacing, leave_ahead(&self.config))
    }

    /// Records whether `number` is paused (shown by `/v1/health`).
    pub(crate) fn set_paused(&self, number: &str, paused: bool) {
        let mut set = self.paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused {
            set.insert(number.to_owned());
        } else {
            set.remove(number);
        }
    }

    /// Tells the applications that the gateway gave up on a message (Meta refused it for good, its retries
    /// ran out, or its `ttl` passed before it could go): a `failed` status event of the message, as Meta's
    /// statuses are, so callbacks, subscribers and `GET /v1/events` all see it. Its `id` is the gateway id (no
    /// wamid exists) and `wabridge.origin` is `"gateway"`. Without it an application that got a 201 would wait
    /// for a status forever.
    pub(crate) async fn report_failed(
        &self,
        waba: &str,
        number: &str,
        message: &str,
        recipient: &str,
        errors: Value,
    ) {
        let app_data = match self.store.outbound_callback_data(&[message.to_owned()]).await {
            Ok(found) => found.into_iter().next().and_then(|(_, data)| data),
            Err(e) => {
                tracing::warn!(error = %e, "reading a failed message's callback data failed");
                None
            }
        };
        let secs = crate::store::now_millis() / 1000;
        let payload = json!({
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": number},
            "statuses": [{
                "id": message,
                "status": "failed",
                "timestamp": secs.to_string(),
                "recipient_id": recipient,
                "errors": errors,
                // Where Meta's statuses carry the gateway id (callbacks give the application its own).
                "biz_opaque_callback_data": message,
                "wabridge": {"message_id": message, "biz_opaque_callback_data": app_data, "origin": "gateway"},
            }],
        })
        .to_string();
        let item = IntakeBatchItem {
            raw: NewRawWebhook::accepted(payload.clone().into_bytes(), false),
            events: vec![NewEvent {
                dedupe_key: format!("gateway-failed:{message}"),
                kind: "status".into(),
                field: "messages".into(),
                waba_id: waba.to_owned(),
                phone_number_id: Some(number.to_owned()),
                contact: Some(recipient.to_owned()),
                payload,
            }],
            inbound: Vec::new(),
            statuses: Vec::new(),
        };
        if let Err(e) = self.intake.submit(item).await {
            tracing::error!(error = %e, "could not record the failed status event");
        }
    }

    /// Raises an alert: an `alert` event in the log (WebSocket subscribers, callbacks) and a log line.
    async fn alert(
        &self,
        waba: &str,
        number: &str,
        class: &ErrorClass,
        errors: &str,
        pause: std::time::Duration,
    ) {
        tracing::error!(number, ?class, "sending paused: an operator must act (token, account or payment)");
        let payload = json!({
            "type": "sending_paused",
            "phone_number_id": number,
            "class": class,
            "errors": serde_json::from_str::<serde_json::Value>(errors).unwrap_or_default(),
            "paused_for_ms": u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
        })
        .to_string();
        let item = IntakeBatchItem {
            raw: NewRawWebhook::accepted(payload.clone().into_bytes(), false),
            events: vec![NewEvent {
                dedupe_key: format!("alert:{}", uuid::Uuid::new_v4().simple()),
                kind: "alert".into(),
                field: "wabridge".into(),
                waba_id: waba.to_owned(),
                phone_number_id: Some(number.to_owned()),
                contact: None,
                payload,
            }],
            inbound: Vec::new(),
            statuses: Vec::new(),
        };
        if let Err(e) = self.intake.submit(item).await {
            tracing::error!(error = %e, "could not record the alert event");
        }
    }
}

/// The On-Premises `sent_status` setting: with it off, `sent` statuses are kept in the log and move
/// messages forward, but no application sees them (events, WebSockets, callbacks). Wraps `hooks`. A status
/// event's payload is the webhook `value` cut down to one status: its status is `statuses[0].status`.
#[must_use]
pub fn sent_status_hooks(hooks: crate::events::Hooks, sent_status: bool) -> crate::events::Hooks {
    if sent_status {
        return hooks;
    }
    crate::events::Hooks::new(Some(Arc::new(HideSentStatus(hooks))))
}

struct HideSentStatus(crate::events::Hooks);

impl crate::events::EventHook for HideSentStatus {
    fn on_event(&self, event: &mut crate::store::StoredEvent) -> crate::events::HookAction {
        use crate::events::HookAction;
        if event.kind == "status"
            && serde_json::from_str::<serde_json::Value>(&event.payload)
                .is_ok_and(|p| p.pointer("/statuses/0/status").and_then(|s| s.as_str()) == Some("sent"))
        {
            return HookAction::Suppress;
        }
        match self.0.apply(event.clone()) {
            Some(e) => {
                *event = e;
                HookAction::Deliver
            }
            None => HookAction::Suppress,
        }
    }
}

/// Waits for every task in `tasks` (at most 5 s each: a task that hangs must not hold shutdown forever).
async fn await_all(tasks: &std::sync::Mutex<Vec<JoinHandle<()>>>, what: &str) {
    let tasks: Vec<_> = tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect();
    // All at once, against one deadline: a scheduler may take its whole drain (`scheduler::DRAIN_SENDS`) to
    // record its sends in flight, and the writers stop only after every scheduler has.
    let deadline = tokio::time::Instant::now() + scheduler::DRAIN_SENDS + std::time::Duration::from_secs(2);
    for t in tasks {
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            tracing::warn!("{what} did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Departures;

    #[test]
    fn sends_woken_together_after_a_stall_leave_spaced() {
        let spacing = Duration::from_micros(12_500); // level 80
        let ahead = Duration::from_millis(20);
        let mut d = Departures::default();
        let start = tokio::time::Instant::now();
        // Ten sends reserve their slots 12.5 ms apart...
        let slots: Vec<_> = (0..10).map(|_| d.reserve(start, spacing)).collect();
        assert_eq!(slots[0], None);
        assert_eq!(slots[9], Some(start + spacing * 9));
        // ...and all wake 200 ms later, together: only those within `ahead` of the level leave at once.
        let late = Instant::now() + Duration::from_millis(200);
        let at_once = (0..10).take_while(|_| d.leave(late, spacing, ahead).is_ok()).count();
        assert_eq!(at_once, 2, "one, then one more within the 20 ms run-ahead");
        let wait = d.leave(late, spacing, ahead).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= spacing, "{wait:?}");
        // Sends that arrive on their schedule always leave.
        let mut at = late + spacing * 2;
        for _ in 0..100 {
            assert!(d.leave(at, spacing, ahead).is_ok());
            at += spacing;
        }
    }
}
