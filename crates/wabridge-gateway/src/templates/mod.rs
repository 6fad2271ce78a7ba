//! The template cache: every configured WABA's message templates, loaded through the SDK at start and kept
//! current by `message_template_status_update` webhooks, so a template send can be checked before it is
//! queued ([`check`]) instead of failing later with 132000/132001.

pub mod check;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_cloud::{Client, TemplateFilter};
use wabridge_types::ids::WabaId;
use wabridge_types::template::{TemplateDefinition, TemplateStatus};

/// What the cache knows of one WABA.
#[derive(Debug, Clone, PartialEq)]
pub enum WabaTemplates {
    /// Not loaded (no access token, or the Cloud API did not answer): sends are not checked.
    Unknown,
    /// The WABA's templates as last read or updated.
    Loaded(Vec<TemplateDefinition>),
}

/// The templates of every configured WABA.
#[derive(Debug)]
pub struct TemplateCache {
    client: Option<Client>,
    wabas: RwLock<BTreeMap<String, WabaTemplates>>,
    /// Refreshes are numbered as they start; per WABA, the number of the one whose list is held. A refresh
    /// that started earlier than the one held (it read Meta earlier) does not overwrite it.
    started: std::sync::atomic::AtomicU64,
    held: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Per WABA, when its last refresh started.
    last_refresh: std::sync::Mutex<BTreeMap<String, Instant>>,
    /// Per WABA, when a send naming a template the cache lacks last made it read Meta (at most once per
    /// [`REFRESH_ON_MISS_EVERY`]).
    last_miss: std::sync::Mutex<BTreeMap<String, Instant>>,
    /// Held by the send whose miss is reading Meta (misses are rare: one lock for every WABA).
    miss_refresh: tokio::sync::Mutex<()>,
    /// WABAs with a refresh already scheduled by webhooks (a burst of template updates reads Meta once).
    scheduled: std::sync::Mutex<BTreeSet<String>>,
    /// Cancelled when the gateway stops (through [`spawn_upkeep`](Self::spawn_upkeep)): no refresh starts after.
    stopped: tokio_util::sync::CancellationToken,
}

/// How often a send naming a template the cache lacks (or holds as not approved) may read its WABA again.
const REFRESH_ON_MISS_EVERY: Duration = Duration::from_secs(60);
/// How long such a send waits for that read.
const REFRESH_ON_MISS_WAIT: Duration = Duration::from_secs(10);
/// How often WABAs whose templates could not be read are tried again.
const RETRY_UNKNOWN_EVERY: Duration = Duration::from_secs(60);
/// How often every WABA is read again (templates created or changed without a webhook reaching us). Meta
/// allows 200 management calls an hour per WABA; one full read an hour uses a few.
const REFRESH_ALL_EVERY: Duration = Duration::from_secs(3600);
/// How long webhooks' refreshes of one WABA are gathered into one.
const WEBHOOK_REFRESH_DELAY: Duration = Duration::from_secs(2);

impl TemplateCache {
    /// An empty cache of `wabas`, loaded later through `client` (none: never loaded).
    #[must_use]
    pub fn new(client: Option<Client>, wabas: impl IntoIterator<Item = String>) -> Self {
        let wabas = wabas.into_iter().map(|w| (w, WabaTemplates::Unknown)).collect();
        Self {
            client,
            wabas: RwLock::new(wabas),
            started: 0.into(),
            held: std::sync::Mutex::default(),
            last_refresh: std::sync::Mutex::default(),
            last_miss: std::sync::Mutex::default(),
            miss_refresh: tokio::sync::Mutex::new(()),
            scheduled: std::sync::Mutex::default(),
            stopped: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Reads every WABA's templates; a WABA whose read fails stays [`WabaTemplates::Unknown`] (logged).
    /// Returns how many templates were loaded.
    pub async fn load_all(&self) -> usize {
        let wabas: Vec<String> = self.read().keys().cloned().collect();
        let mut total = 0;
        for waba in wabas {
            total += self.refresh(&waba).await;
        }
        total
    }

    /// Reads one WABA's templates again; returns how many it has (0 when the read failed).
    pub async fn refresh(&self, waba: &str) -> usize {
        let Some(client) = &self.client else { return 0 };
        self.last_refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(waba.to_owned(), Instant::now());
        let number = self.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match client.all_templates(&WabaId::new(waba), &TemplateFilter::default()).await {
            Ok(list) => {
                let n = list.len();
                let mut wabas = self.write();
                let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if held.get(waba).is_none_or(|h| *h < number) {
                    held.insert(waba.to_owned(), number);
                    wabas.insert(waba.to_owned(), WabaTemplates::Loaded(list));
                }
                n
            }
            Err(e) => {
                tracing::warn!(waba, error = %e, "could not read the templates; template sends are not checked");
                0
            }
        }
    }

    /// What the cache holds for `waba`.
    #[must_use]
    pub fn templates(&self, waba: &str) -> WabaTemplates {
        self.read().get(waba).cloned().unwrap_or(WabaTemplates::Unknown)
    }

    /// Every cached template with its WABA, ordered by WABA, name and language.
    #[must_use]
    pub fn list(&self) -> Vec<(String, TemplateDefinition)> {
        let mut all = Vec::new();
        for (waba, t) in self.read().iter() {
            if let WabaTemplates::Loaded(list) = t {
                let mut list = list.clone();
                list.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
                all.extend(list.into_iter().map(|d| (waba.clone(), d)));
            }
        }
        all
    }

    /// WABAs whose cache is [`WabaTemplates::Unknown`].
    #[must_use]
    pub fn unknown_wabas(&self) -> BTreeSet<String> {
        self.read().iter().filter(|(_, t)| **t == WabaTemplates::Unknown).map(|(w, _)| w.clone()).collect()
    }

    /// Applies a `message_template_status_update` value of `waba` at once (a template paused, disabled or
    /// rejected is refused from now on). Answers whether the caller should [`Self::refresh`] the WABA from
    /// Meta, which is the truth: always, as the event may come from an edit (new components under the same
    /// id, approved again), arrive out of order (Meta does not guarantee order), or name a status outside the
    /// known ones (`REINSTATED`, `FLAGGED`, `LOCKED`…, which leave the status as it was until the refresh).
    pub fn apply_status_update(&self, waba: &str, value: &Value) -> bool {
        let value = value.get("value").unwrap_or(value);
        let Some(event) = value.get("event").and_then(Value::as_str) else { return false };
        let id = value.get("message_template_id").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let name = value.get("message_template_name").and_then(Value::as_str);
        let language = value.get("message_template_language").and_then(Value::as_str);
        let status = serde_json::from_value::<TemplateStatus>(Value::String(event.to_owned()))
            .ok()
            .filter(|s| !matches!(s, TemplateStatus::Other(_)));
        let mut wabas = self.write();
        let Some(WabaTemplates::Loaded(list)) = wabas.get_mut(waba) else { return false };
        let found = list.iter_mut().find(|t| {
            let same_id = id.is_some() && t.id.as_ref().map(|i| i.as_str().to_owned()) == id;
            same_id || (Some(t.name.as_str()) == name && Some(t.language.as_str()) == language)
        });
        if let (Some(t), Some(status)) = (found, status) {
            tracing::info!(waba, template = %t.name, status = event, "template status changed");
            t.status = Some(status);
        }
        true
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, WabaTemplates>> {
        self.wabas.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, WabaTemplates>> {
        self.wabas.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TemplateCache {
    /// Checks a send's `template` object against `waba`'s cached templates; a WABA not loaded is not
    /// checked (Meta will answer instead).
    ///
    /// # Errors
    /// What is wrong with the send.
    pub fn check_send(&self, waba: &str, template: &Value) -> Result<(), check::TemplateProblem> {
        match self.templates(waba) {
            WabaTemplates::Loaded(list) => check::check(&list, template),
            WabaTemplates::Unknown => Ok(()),
        }
    }

    /// [`check_send`](Self::check_send), reading the WABA from Meta again first when the cache lacks the
    /// template or holds it as not approved — it may have been created or approved since, with no webhook
    /// reaching us — at most once per [`REFRESH_ON_MISS_EVERY`] per WABA, waiting at most
    /// [`REFRESH_ON_MISS_WAIT`].
    ///
    /// # Errors
    /// What is wrong with the send.
    pub async fn check_send_fresh(&self, waba: &str, template: &Value) -> Result<(), check::TemplateProblem> {
        let checked = self.check_send(waba, template);
        let stale = matches!(
            checked,
            Err(check::TemplateProblem::Missing(_) | check::TemplateProblem::NotApproved(..))
        );
        if !stale || self.client.is_none() {
            return checked;
        }
        // One such read at a time: a send that missed while another's read is on its way waits for it and
        // checks again, rather than being refused by what the cache held before.
        let _one = self.miss_refresh.lock().await;
        let checked = self.check_send(waba, template);
        if checked.is_ok() {
            return checked;
        }
        {
            let mut last = self.last_miss.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.get(waba).is_some_and(|at| at.elapsed() < REFRESH_ON_MISS_EVERY) {
                return checked;
            }
            last.insert(waba.to_owned(), Instant::now());
        }
        if tokio::time::timeout(REFRESH_ON_MISS_WAIT, self.refresh(waba)).await.is_err() {
            return checked;
        }
        self.check_send(waba, template)
    }

    /// Whether `waba` was last read `every` ago or longer (or never).
    fn due(&self, waba: &str, every: Duration) -> bool {
        let last = self.last_refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.get(waba).is_none_or(|at| at.elapsed() >= every)
    }

    /// Keeps the cache current in the background until `shutdown`: WABAs that could not be read are tried
    /// again every [`RETRY_UNKNOWN_EVERY`], and every WABA is read again every [`REFRESH_ALL_EVERY`].
    pub fn spawn_upkeep(
        self: &std::sync::Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let _stop_refreshes = cache.stopped.clone().drop_guard();
            if cache.client.is_none() {
                return;
            }
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY_UNKNOWN_EVERY) => {}
                }
                let wabas: Vec<(String, bool)> =
                    cache.read().iter().map(|(w, t)| (w.clone(), *t == WabaTemplates::Unknown)).collect();
                for (waba, unknown) in wabas {
                    if unknown || cache.due(&waba, REFRESH_ALL_EVERY) {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            _ = cache.refresh(&waba) => {}
                        }
                    }
                }
            }
        })
    }

    /// Schedules one refresh of `waba` shortly, unless one is scheduled already.
    fn schedule_refresh(self: &std::sync::Arc<Self>, waba: String) {
        if !self.scheduled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(waba.clone()) {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cache.stopped.cancelled() => return,
                () = tokio::time::sleep(WEBHOOK_REFRESH_DELAY) => {}
            }
            // Taken off before the read starts: an update arriving during the read schedules another.
            cache.scheduled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&waba);
            tokio::select! {
                () = cache.stopped.cancelled() => {}
                _ = cache.refresh(&waba) => {}
            }
        });
    }
}

/// Applies the `message_template_status_update` events of one webhook (WABA, payload JSON), then reads the
/// WABA's templates again in the background, once for a burst of updates (see
/// [`TemplateCache::apply_status_update`]).
pub fn apply_webhook_updates(cache: &std::sync::Arc<TemplateCache>, updates: Vec<(String, String)>) {
    for (waba, payload) in updates {
        let Ok(value) = serde_json::from_str::<Value>(&payload) else { continue };
        if cache.apply_status_update(&waba, &value) {
            cache.schedule_refresh(waba);
        }
    }
}
