//! Media: uploads to the Cloud API, and a disk cache of downloaded media.
//!
//! Media of inbound messages is fetched as soon as its webhook is committed (Meta's download URL lasts five
//! minutes), checked against the webhook's `sha256` (base64) or the media node's (hex), and kept under
//! `<data_dir>/media` until the cache passes [`DEFAULT_LIMIT_BYTES`]; the least recently written files go
//! first. `GET /v1/media/{id}` serves from the cache, fetching on a miss.

pub mod api;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wabridge_cloud::{Client, CloudError};
use wabridge_types::ids::{MediaId, PhoneNumberId};

/// The cache's size limit: 512 MiB.
pub const DEFAULT_LIMIT_BYTES: u64 = 512 * 1024 * 1024;

/// Why media could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No access token is configured.
    #[error("no Cloud API access token is configured")]
    NoClient,
    /// The Cloud API refused or failed.
    #[error("Cloud API: {0}")]
    Cloud(#[from] CloudError),
    /// The bytes do not match the announced sha256.
    #[error("the downloaded media does not match its sha256")]
    Checksum,
    /// The cache directory failed.
    #[error("media cache: {0}")]
    Io(#[from] std::io::Error),
}

/// Downloaded media: bytes and MIME type.
#[derive(Debug, Clone)]
pub struct MediaFile {
    pub bytes: Bytes,
    pub mime_type: String,
}

/// Inbound media downloaded at once in the background (each download is held in memory until checked).
const PREFETCH_CONCURRENCY: usize = 8;
/// Prefetches waiting for a slot beyond which new ones are skipped (the media is fetched when asked for).
const PREFETCH_QUEUE: usize = 1000;
/// Fetches of one id go one at a time (the second finds the first's file); ids share these locks by hash.
const FETCH_LOCKS: usize = 64;

/// The media cache and the Cloud API calls behind it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaCache {
    dir: PathBuf,
    limit_bytes: u64,
    client: Option<Client>,
    fetching: Arc<[tokio::sync::Mutex<()>]>,
    prefetching: Arc<tokio::sync::Semaphore>,
    prefetch_waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl MediaCache {
    /// A cache in `dir` holding at most `limit_bytes`.
    #[must_use]
    pub fn new(dir: PathBuf, limit_bytes: u64, client: Option<Client>) -> Self {
        Self {
            dir,
            limit_bytes,
            client,
            fetching: (0..FETCH_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            prefetching: Arc::new(tokio::sync::Semaphore::new(PREFETCH_CONCURRENCY)),
            prefetch_waiting: Arc::default(),
        }
    }

    fn client(&self) -> Result<&Client, MediaError> {
        self.client.as_ref().ok_or(MediaError::NoClient)
    }

    /// Uploads `bytes` for `number`; answers Meta's media id.
    ///
    /// # Errors
    /// Meta's refusal (type or size, …) or no client.
    pub async fn upload(
        &self,
        number: &str,
        bytes: Bytes,
        mime: &str,
        filename: &str,
    ) -> Result<String, MediaError> {
        let id = self.client()?.upload_media(&PhoneNumberId::new(number), bytes, mime, filename).await?;
        Ok(id.as_str().to_owned())
    }

    /// Deletes media `id` at Meta and from the cache.
    ///
    /// # Errors
    /// Meta's refusal or no client.
    pub async fn delete(&self, id: &str) -> Result<(), MediaError> {
        let not_found = || MediaError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "no such media"));
        if !is_media_id(id) {
            return Err(not_found());
        }
        // Only a media object is deleted: account, number and template ids are numbers too, and Meta would
        // delete whatever the id names with the gateway's token. A media node reads as media info; any other
        // node does not.
        let client = self.client()?;
        match client.media_info(&MediaId::new(id)).await {
            Ok(_) => {}
            Err(CloudError::Decode { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        }
        client.delete_media(&MediaId::new(id)).await?;
        if is_safe_id(id) {
            let _ = tokio::fs::remove_file(self.path(id, "bin")).await;
            let _ = tokio::fs::remove_file(self.path(id, "mime")).await;
        }
        Ok(())
    }

    /// Media `id` from the cache, or fetched from the Cloud API (and cached). `expected_sha256` is the
    /// webhook's (base64) when known.
    ///
    /// # Errors
    /// No client, Meta's refusal, a checksum mismatch, or a cache failure.
    pub async fn get(&self, id: &str, expected_sha256: Option<&str>) -> Result<MediaFile, MediaError> {
        if !is_safe_id(id) {
            return Err(MediaError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "no such media")));
        }
        if let Some(cached) = self.cached(id).await {
            return Ok(cached);
        }
        // One fetch of an id at a time (the prefetch of an inbound message and the application asking for it
        // meet here): the second finds the first's file.
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(id, &mut hasher);
        let slot = usize::try_from(std::hash::Hasher::finish(&hasher) % FETCH_LOCKS as u64).unwrap_or(0);
        let _one = self.fetching[slot].lock().await;
        if let Some(cached) = self.cached(id).await {
            return Ok(cached);
        }
        let client = self.client()?;
        let info = client.media_info(&MediaId::new(id)).await?;
        let bytes = client.download_media(&info.url).await?;
        let digest = Sha256::digest(&bytes);
        let hex = hex::encode(digest);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let matches = |s: &str| s.eq_ignore_ascii_case(&hex) || s == b64;
        if !matches(&info.sha256) || expected_sha256.is_some_and(|e| !matches(e)) {
            tracing::warn!(media = id, "downloaded media does not match its sha256; not cached");
            return Err(MediaError::Checksum);
        }
        self.store(id, &bytes, &info.mime_type).await?;
        Ok(MediaFile { bytes, mime_type: info.mime_type })
    }

    async fn cached(&self, id: &str) -> Option<MediaFile> {
        let (Ok(bytes), Ok(mime)) = (
            tokio::fs::read(self.path(id, "bin")).await,
            tokio::fs::read_to_string(self.path(id, "mime")).await,
        ) else {
            return None;
        };
        Some(MediaFile { bytes: Bytes::from(bytes), mime_type: mime })
    }

    /// Writes both files under names of their own, then renames them into place (the MIME type first), so a
    /// reader never sees a partial file.
    async fn store(&self, id: &str, bytes: &[u8], mime: &str) -> Result<(), MediaError> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let (bin_tmp, mime_tmp) =
            (self.path(id, &format!("{unique}.bin.tmp")), self.path(id, &format!("{unique}.mime.tmp")));
        let written = async {
            tokio::fs::write(&mime_tmp, mime).await?;
            tokio::fs::write(&bin_tmp, bytes).await?;
            tokio::fs::rename(&mime_tmp, self.path(id, "mime")).await?;
            tokio::fs::rename(&bin_tmp, self.path(id, "bin")).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&mime_tmp).await;
            let _ = tokio::fs::remove_file(&bin_tmp).await;
            return Err(e.into());
        }
        self.evict().await
    }

    /// Removes the oldest files until the cache fits its limit.
    async fn evict(&self) -> Result<(), MediaError> {
        let mut files = Vec::new();
        let mut total = 0u64;
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = dir.next_entry().await? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                // Left by a write that never finished (a crash): gone after an hour.
                let stale = entry.metadata().await?.modified().ok().and_then(|m| m.elapsed().ok());
                if stale.is_some_and(|age| age > std::time::Duration::from_secs(3600)) {
                    let _ = tokio::fs::remove_file(&path).await;
                }
            } else if path.extension().is_some_and(|e| e == "bin") {
                let meta = entry.metadata().await?;
                total += meta.len();
                files.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), path));
            }
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.limit_bytes {
                break;
            }
            let _ = tokio::fs::remove_file(&path).await;
            let _ = tokio::fs::remove_file(path.with_extension("mime")).await;
            total = total.saturating_sub(len);
        }
        Ok(())
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Whether media `id` is in the cache.
    #[must_use]
    pub fn is_cached(&self, id: &str) -> bool {
        is_safe_id(id) && self.path(id, "bin").exists()
    }
}

/// Media ids are Meta's digits; anything else never names a file.
/// Whether `id` can be a Cloud API media id (Meta's ids are decimal numbers): the first check of an id from
/// a caller, before any call to Meta.
#[must_use]
pub fn is_media_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The media (id, webhook sha256) of a committed message event's payload.
#[must_use]
pub fn inbound_media(payload: &Value) -> Option<(String, Option<String>)> {
    let message = payload.pointer("/messages/0").unwrap_or(payload);
    let kind = message.get("type")?.as_str()?;
    if !matches!(kind, "image" | "audio" | "video" | "document" | "sticker") {
        return None;
    }
    let media = message.get(kind)?;
    let id = media.get("id")?.as_str()?.to_owned();
    Some((id, media.get("sha256").and_then(Value::as_str).map(str::to_owned)))
}

/// Fetches the media of newly committed inbound messages in the background, a few at a time; when too many
/// wait, the newest are left to be fetched when an application asks for them.
pub fn prefetch(cache: &Arc<MediaCache>, media: Vec<(String, Option<String>)>) {
    use std::sync::atomic::Ordering;
    for (id, sha256) in media {
        if cache.prefetch_waiting.fetch_add(1, Ordering::Relaxed) >= PREFETCH_QUEUE {
            cache.prefetch_waiting.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(media = %id, "too many media prefetches waiting; fetched on demand instead");
            continue;
        }
        let cache = cache.clone();
        tokio::spawn(async move {
            let permit = cache.prefetching.clone().acquire_owned().await;
            cache.prefetch_waiting.fetch_sub(1, Ordering::Relaxed);
            let Ok(_permit) = permit else { return };
            if let Err(e) = cache.get(&id, sha256.as_deref()).await {
                tracing::warn!(media = %id, error = %e, "could not fetch inbound media");
            }
        });
    }
}
