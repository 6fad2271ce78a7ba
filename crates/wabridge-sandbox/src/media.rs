//! Uploaded media: the bytes, their type and hash, and the short-lived download URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::chaos::lock;

/// A stored media object.
#[derive(Debug)]
pub(crate) struct MediaObject {
    pub bytes: Bytes,
    pub mime_type: String,
    /// Lowercase hex SHA-256 (as media-info responses carry it).
    pub sha256_hex: String,
    /// Base64 SHA-256 (as inbound webhooks carry it).
    pub sha256_b64: String,
    /// When it stops existing (sandbox clock, ns).
    pub expires_at: u64,
}

impl MediaObject {
    pub(crate) fn new(bytes: Bytes, mime_type: String, expires_at: u64) -> Self {
        let digest = Sha256::digest(&bytes);
        Self {
            sha256_hex: hex::encode(digest),
            sha256_b64: base64::engine::general_purpose::STANDARD.encode(digest),
            bytes,
            mime_type,
            expires_at,
        }
    }
}

/// Media objects by id, and the download keys handed out by `GET /{media-id}`.
#[derive(Debug, Default)]
pub(crate) struct MediaStore {
    objects: RwLock<HashMap<String, Arc<MediaObject>>>,
    /// Download key → (media id, expiry in ns).
    downloads: Mutex<HashMap<String, (String, u64)>>,
}

impl MediaStore {
    pub(crate) fn insert(&self, id: String, object: MediaObject) {
        if let Ok(mut objects) = self.objects.write() {
            objects.insert(id, Arc::new(object));
        }
    }

    /// The object with this id, unless it expired.
    pub(crate) fn get(&self, id: &str, now: u64) -> Option<Arc<MediaObject>> {
        let objects = self.objects.read().ok()?;
        objects.get(id).filter(|o| o.expires_at > now).cloned()
    }

    pub(crate) fn remove(&self, id: &str) -> bool {
        self.objects.write().map(|mut o| o.remove(id).is_some()).unwrap_or(false)
    }

    /// Registers a download key for `id`, valid until `expires_at`.
    pub(crate) fn issue_download(&self, key: String, id: &str, expires_at: u64, now: u64) {
        let mut downloads = lock(&self.downloads);
        if downloads.len() > 10_000 {
            downloads.retain(|_, (_, exp)| *exp > now);
        }
        downloads.insert(key, (id.to_owned(), expires_at));
    }

    /// The object a download key opens, if the key is known and not expired.
    pub(crate) fn download(&self, key: &str, now: u64) -> Option<Arc<MediaObject>> {
        let id = {
            let downloads = lock(&self.downloads);
            let (id, expires_at) = downloads.get(key)?;
            if *expires_at <= now {
                return None;
            }
            id.clone()
        };
        self.get(&id, now)
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut o) = self.objects.write() {
            o.clear();
        }
        lock(&self.downloads).clear();
    }
}
