//! [`Control`]: the in-process handle on a running sandbox, doing what the control API under
//! `/_sandbox` does over HTTP — inject inbound messages, inspect what was sent, read counters, change
//! a number's level, set faults, add callback URLs, reset.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::json;
use wabridge_types::limits::ThroughputLevel;
use wabridge_types::template::TemplateStatus;
use wabridge_types::webhook::ChangeValue;

use crate::chaos::{ChaosConfig, FaultInjection, hash_bytes};
use crate::counters::Counters;
use crate::error::SandboxError;
use crate::inbound::Inbound;
use crate::limits::nanos;
use crate::sent::{SentFilter, SentRecord};
use crate::state::Shared;
use crate::webhooks::{Event, EventBody};

/// A change of a number's throughput level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelChange {
    /// The level `?fields=throughput` reports from now on.
    pub level: ThroughputLevel,
    /// Messages per second to enforce; default: the level's figure.
    #[serde(default)]
    pub mps: Option<u32>,
}

/// A handle on a running sandbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl Control {
    /// Injects an inbound message from a simulated user (opening their 24-hour window) and delivers it
    /// as a `messages` webhook. Returns its wamid.
    ///
    /// # Errors
    /// When the number is unknown, `from` is not a phone number, or the message is not a valid inbound
    /// message.
    pub fn inject_inbound(&self, inbound: Inbound) -> Result<String, SandboxError> {
        crate::inbound::inject(&self.shared, None, inbound)
    }

    /// The accepted messages matching `filter`, oldest first, with their statuses.
    #[must_use]
    pub fn sent(&self, filter: &SentFilter) -> Vec<SentRecord> {
        self.shared.sent.list(filter, &self.shared.number_ids)
    }

    /// One accepted message by wamid.
    #[must_use]
    pub fn sent_message(&self, wamid: &str) -> Option<SentRecord> {
        self.shared.sent.get(wamid, &self.shared.number_ids)
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Events not yet delivered, over all callback URLs: queued, or being posted (a chaos duplicate
    /// included). Zero means every event emitted so far has reached its receivers or been given up.
    #[must_use]
    pub fn pending_webhooks(&self) -> usize {
        self.shared.hub.pending()
    }

    /// Changes a number's level. A higher rate is an upgrade, as Meta does it: the number answers 131057
    /// for `limits.upgrade_pause`, then the new level applies and a `phone_number_quality_update`
    /// webhook with event `THROUGHPUT_UPGRADE` is sent. A lower rate applies at once.
    ///
    /// # Errors
    /// When the number is unknown.
    pub fn set_level(&self, phone_number_id: &str, change: LevelChange) -> Result<(), SandboxError> {
        let shared = &self.shared;
        let number = shared
            .number(phone_number_id)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(format!("phone number {phone_number_id}")))?;
        let mps = change.mps.unwrap_or_else(|| shared.config.limits.mps_for(&change.level));
        if mps <= number.mps() {
            number.apply_level(change.level, mps);
            return Ok(());
        }
        let pause = shared.config.limits.upgrade_pause;
        number.start_maintenance(shared.clock.now_ns().saturating_add(nanos(pause)));
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            tokio::select! {
                () = task_shared.cancel.cancelled() => {}
                () = tokio::time::sleep(pause) => {
                    number.apply_level(change.level, mps);
                    let value = json!({
                        "display_phone_number": number.display,
                        "event": "THROUGHPUT_UPGRADE",
                    });
                    let change = ChangeValue::from_parts("phone_number_quality_update".to_owned(), value);
                    let key = hash_bytes(format!("upgrade:{}:{mps}", number.id).as_bytes());
                    task_shared.hub.emit(&task_shared, Event::new(key, EventBody::Change(change)));
                }
            }
        });
        Ok(())
    }

    /// Sets (or with `None` clears) the injected error code.
    pub fn set_fault(&self, fault: Option<FaultInjection>) {
        self.shared.chaos.set_fault(fault);
    }

    /// Replaces the chaos settings.
    pub fn set_chaos(&self, chaos: ChaosConfig) {
        self.shared.chaos.set(chaos);
    }

    /// The chaos settings in force.
    #[must_use]
    pub fn chaos(&self) -> ChaosConfig {
        self.shared.chaos.get()
    }

    /// Adds a callback URL after the GET verification handshake (with the configured verify token).
    ///
    /// # Errors
    /// When the handshake fails.
    pub async fn add_callback(&self, url: &str) -> Result<(), SandboxError> {
        let token = self.shared.config.webhooks.verify_token.clone();
        crate::webhooks::verify_callback(&self.shared, url, &token).await?;
        self.shared.hub.add_target(&self.shared, url);
        Ok(())
    }

    /// Adds a callback URL without the handshake.
    pub fn add_callback_unverified(&self, url: &str) {
        self.shared.hub.add_target(&self.shared, url);
    }

    /// Removes a callback URL; `false` if it was not there.
    pub fn remove_callback(&self, url: &str) -> bool {
        self.shared.hub.remove_target(url)
    }

    /// The callback URLs.
    #[must_use]
    pub fn callbacks(&self) -> Vec<String> {
        self.shared.hub.urls()
    }

    /// Sets a template's status (PAUSED, DISABLED, APPROVED, …) and announces it in a
    /// `message_template_status_update` webhook.
    ///
    /// # Errors
    /// When no template has that id.
    pub fn set_template_status(&self, template_id: &str, status: TemplateStatus) -> Result<(), SandboxError> {
        let updated = self
            .shared
            .templates
            .set_status(template_id, status)
            .ok_or_else(|| SandboxError::NotFound(format!("template {template_id}")))?;
        crate::templates::announce_status(&self.shared, &updated, "NONE");
        Ok(())
    }

    /// The id of the template with this name and language.
    #[must_use]
    pub fn template_id(&self, name: &str, language: &str) -> Option<String> {
        let (t, _) = self.shared.templates.find(name, language);
        t.and_then(|t| t.id.as_ref().map(|id| id.as_str().to_owned()))
    }

    /// Makes messages to a user fail with 131026 (or succeed again).
    pub fn set_unreachable(&self, wa_id: &str, unreachable: bool) {
        self.shared.users.set_unreachable(wa_id, unreachable);
    }

    /// Back to the state at start: no messages, counters at zero, windows closed, limiters empty,
    /// levels, templates, media, faults and subscriptions as configured; pending webhooks dropped.
    pub fn reset(&self) {
        let s = &self.shared;
        s.sent.clear();
        s.counters.reset();
        s.users.reset();
        s.pair.reset();
        s.tier.reset();
        s.waba_calls.reset();
        for n in &s.numbers {
            n.reset(&s.config.limits);
        }
        s.media.clear();
        s.templates.replace_all(&s.config.templates.initial);
        s.hub.clear();
        s.chaos.set(s.config.chaos.clone());
        s.subscribed.store(true, Ordering::Relaxed);
    }
}
