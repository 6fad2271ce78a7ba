//! What the business sent: every accepted message with its statuses, for inspection through the
//! control API. Bounded: the oldest messages are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chaos::{hash_bytes, lock};

const SHARDS: usize = 32;

/// An accepted message as the control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The wamid it was answered with.
    pub id: String,
    /// Order of acceptance (1, 2, …).
    pub seq: u64,
    /// The business number it was sent from.
    pub phone_number_id: String,
    /// The recipient's WhatsApp id.
    pub to: String,
    /// `text`, `template`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The latest status: `accepted`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// Every status reached, with its unix timestamp.
    pub statuses: Vec<StatusEntry>,
    /// The error code of a `failed` status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// `biz_opaque_callback_data` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// When it was accepted (unix seconds).
    pub accepted_at: u64,
    /// The request body as received.
    pub body: Value,
}

/// One status of a [`SentRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// Unix seconds.
    pub timestamp: u64,
}

/// Which sent messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFilter {
    /// Only from this business number.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// Only to this recipient (WhatsApp id, digits).
    #[serde(default)]
    pub to: Option<String>,
    /// At most this many, the most recent ones (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    number: usize,
    to: Box<str>,
    kind: Box<str>,
    body: Bytes,
    callback: Option<Box<str>>,
    accepted_at: u64,
    statuses: Vec<(&'static str, u64)>,
    error_code: Option<i64>,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Box<str>, Entry>,
    order: VecDeque<Box<str>>,
}

/// The log of accepted messages.
#[derive(Debug)]
pub(crate) struct SentLog {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    seq: AtomicU64,
}

/// What is recorded of a newly accepted message.
#[derive(Debug)]
pub(crate) struct NewSent<'a> {
    pub wamid: &'a str,
    pub number: usize,
    pub to: &'a str,
    pub kind: &'a str,
    pub body: Bytes,
    pub callback: Option<&'a str>,
    pub accepted_at: u64,
}

impl SentLog {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: limit.div_ceil(SHARDS).max(1),
            seq: AtomicU64::new(0),
        }
    }

    fn shard(&self, wamid: &str) -> &Mutex<Shard> {
        &self.shards[(hash_bytes(wamid.as_bytes()) as usize) % SHARDS]
    }

    pub(crate) fn insert(&self, new: NewSent<'_>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Entry {
            seq,
            number: new.number,
            to: new.to.into(),
            kind: new.kind.into(),
            body: new.body,
            callback: new.callback.map(Into::into),
            accepted_at: new.accepted_at,
            statuses: Vec::new(),
            error_code: None,
        };
        let key: Box<str> = new.wamid.into();
        let mut shard = lock(self.shard(new.wamid));
        while shard.order.len() >= self.per_shard {
            if let Some(old) = shard.order.pop_front() {
                shard.entries.remove(&old);
            }
        }
        shard.order.push_back(key.clone());
        shard.entries.insert(key, entry);
    }

    /// Records a status of a message (if it is still kept).
    pub(crate) fn record_status(&self, wamid: &str, status: &'static str, at: u64, error: Option<i64>) {
        let mut shard = lock(self.shard(wamid));
        if let Some(entry) = shard.entries.get_mut(wamid) {
            entry.statuses.push((status, at));
            if error.is_some() {
                entry.error_code = error;
            }
        }
    }

    /// One message, by wamid.
    pub(crate) fn get(&self, wamid: &str, number_ids: &[String]) -> Option<SentRecord> {
        let shard = lock(self.shard(wamid));
        shard.entries.get(wamid).map(|e| record(wamid, e, number_ids))
    }

    /// Messages matching `filter`, oldest first (the most recent `limit`).
    pub(crate) fn list(&self, filter: &SentFilter, number_ids: &[String]) -> Vec<SentRecord> {
        let number = filter.phone_number_id.as_ref().and_then(|id| number_ids.iter().position(|n| n == id));
        if filter.phone_number_id.is_some() && number.is_none() {
            return Vec::new();
        }
        let mut found: Vec<SentRecord> = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            for (wamid, e) in &shard.entries {
                let number_ok = number.is_none_or(|n| n == e.number);
                let to_ok = filter.to.as_deref().is_none_or(|to| to == &*e.to);
                if number_ok && to_ok {
                    found.push(record(wamid, e, number_ids));
                }
            }
        }
        found.sort_by_key(|r| r.seq);
        let limit = filter.limit.unwrap_or(100);
        if found.len() > limit {
            found.drain(..found.len() - limit);
        }
        found
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.entries.clear();
            shard.order.clear();
        }
    }
}

fn record(wamid: &str, e: &Entry, number_ids: &[String]) -> SentRecord {
    SentRecord {
        id: wamid.to_owned(),
        seq: e.seq,
        phone_number_id: number_ids.get(e.number).cloned().unwrap_or_default(),
        to: e.to.to_string(),
        kind: e.kind.to_string(),
        status: e.statuses.last().map_or("accepted", |s| s.0).to_owned(),
        statuses: e
            .statuses
            .iter()
            .map(|(s, t)| StatusEntry { status: (*s).to_owned(), timestamp: *t })
            .collect(),
        error_code: e.error_code,
        biz_opaque_callback_data: e.callback.as_deref().map(str::to_owned),
        accepted_at: e.accepted_at,
        body: serde_json::from_slice(&e.body).unwrap_or(Value::Null),
    }
}
