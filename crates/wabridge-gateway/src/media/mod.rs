//! Media: uploads to the Cloud API, and a disk cache of downloaded media.
//!
//! Media of inbound messages is fetched as soon as its webhook is committed (Meta's download URL lasts five
//! minutes), checked against the webhook's `sha256` (base64) or the media node's (hex), and kept under
//! `<data_dir>/media` until the cache passes [`DEFAULT_LIMIT_BYTES`]; the least recently written files go
//! first. `GET /v1/media/{id}` serves from the cache (streaming the file), fetching on a miss.
//!
//! Uploads are spooled to a file under `<data_dir>/tmp` as their body arrives and streamed from there to the
//! Cloud API ([`spool`]).

pub mod api;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wabridge_cloud::{Client, CloudError};
use wabridge_types::ids::{MediaId, PhoneNumberId};

pub use spool::Spool;

use crate::store::Store;

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
    /// The store, which notes media deleted through any instance, could not be read or written.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Media to answer with: its MIME type and its content.
#[derive(Debug)]
pub struct MediaFile {
    pub content: MediaContent,
    pub mime_type: String,
}

/// The bytes of media: in memory (just downloaded) or the cache's file, streamed as it is read.
#[derive(Debug)]
pub enum MediaContent {
    Bytes(Bytes),
    /// The open cache file and its length (the file stays readable while open, even if evicted).
    File {
        file: tokio::fs::File,
        len: u64,
    },
}

/// How much of a cache file is read at a time when it is served.
const STREAM_CHUNK: usize = 64 * 1024;

impl MediaFile {
    /// The HTTP answer: the bytes with their `Content-Type` (and `Content-Length`); a cached file is
    /// streamed, not read into memory first.
    #[must_use]
    pub fn into_response(self) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        let (len, body) = match self.content {
            MediaContent::Bytes(bytes) => (bytes.len() as u64, axum::body::Body::from(bytes)),
            MediaContent::File { file, len } => (len, axum::body::Body::from_stream(read_chunks(file))),
        };
        let headers = [
            (axum::http::header::CONTENT_TYPE, self.mime_type),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ];
        (headers, body).into_response()
    }
}

/// The content of `file` in chunks of [`STREAM_CHUNK`] bytes.
fn read_chunks(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = bytes::BytesMut::with_capacity(STREAM_CHUNK);
        let n = tokio::io::AsyncReadExt::read_buf(&mut file, &mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), file)))
    })
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
    /// Where uploads are spooled: `tmp` beside the cache directory (`<data_dir>/tmp`).
    spool_dir: PathBuf,
    limit_bytes: u64,
    client: Option<Client>,
    fetching: Arc<[tokio::sync::Mutex<()>]>,
    prefetching: Arc<tokio::sync::Semaphore>,
    prefetch_waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Uploads whose body is being received or sent: each holds a spool file of up to 101 MiB until Meta
    /// answered.
    uploading: Arc<tokio::sync::Semaphore>,
    /// Where deletions are noted for every instance on the database ([`Self::with_deletions`]).
    deletions: Option<Store>,
}

/// Uploads received and sent at once; more wait for a turn before their body is read. An upload holds a few
/// 64 KiB chunks in memory (its body is spooled to disk and streamed from there), so the limit is on disk
/// and on the uplink to Meta: at most this many spool files of up to [`crate::MEDIA_BODY_LIMIT`] each
/// (about 1.6 GiB) under `<data_dir>/tmp`, whatever the number of clients. Sixteen keep a busy gateway's
/// uploads moving (each waits on Meta most of its time) without letting a burst of large ones fill a small
/// disk.
pub const UPLOADS_AT_ONCE: usize = 16;

impl MediaCache {
    /// A cache in `dir` holding at most `limit_bytes`. Uploads are spooled to `tmp` beside `dir`
    /// (`<data_dir>/tmp` for the gateway's `<data_dir>/media`); spool files a previous run left there are
    /// removed now (see [`spool::sweep`]).
    #[must_use]
    pub fn new(dir: PathBuf, limit_bytes: u64, client: Option<Client>) -> Self {
        // Beside the cache, not in it: the cache directory is listed for eviction, and an upload must not
        // depend on the cache (which may be unusable, a full disk aside: a file in its place, say).
        let spool_dir = dir.with_file_name("tmp");
        spool::sweep(&spool_dir);
        Self {
            dir,
            spool_dir,
            limit_bytes,
            client,
            fetching: (0..FETCH_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            prefetching: Arc::new(tokio::sync::Semaphore::new(PREFETCH_CONCURRENCY)),
            prefetch_waiting: Arc::default(),
            uploading: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
            deletions: None,
        }
    }

    /// Notes media deleted through this cache in `store`, and checks there before serving a cached copy, so
    /// that media deleted through any instance on the database is no longer served by the others (each
    /// keeps a cache of its own under its `data_dir`). See [`sweep`] for the cached files themselves.
    #[must_use]
    pub fn with_deletions(mut self, store: Store) -> Self {
        self.deletions = Some(store);
        self
    }

    /// Where uploads are spooled.
    #[must_use]
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// A new spool file for an upload's body, writing at most `keep` bytes of it ([`Spool::create`]).
    ///
    /// # Errors
    /// The spool directory or file could not be created.
    pub async fn spool(&self, keep: u64) -> std::io::Result<Spool> {
        Spool::create(&self.spool_dir, keep).await
    }

    /// A turn to read an upload's body and send it on (see [`UPLOADS_AT_ONCE`]); held until dropped.
    pub async fn upload_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.uploading
            .acquire()
            .await
            .unwrap_or_else(|_| unreachable!("the upload semaphore is never closed"))
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

    /// Uploads the body received in `spool` for `number`, streamed from its file; answers Meta's media id.
    /// The type and size are checked against Meta's limits first ([`wabridge_cloud::check_media`], the
    /// SDK's own check): a refusal is the SDK's [`CloudError::Media`], as for an upload from memory. The
    /// spool is left to the caller to remove.
    ///
    /// # Errors
    /// No client, Meta's limits or refusal, or the spool file failing.
    pub async fn upload_spooled(
        &self,
        number: &str,
        spool: &mut Spool,
        mime: &str,
        filename: &str,
    ) -> Result<String, MediaError> {
        let client = self.client()?;
        wabridge_cloud::check_media(mime, spool.len()).map_err(CloudError::from)?;
        spool.finish().await?;
        if !spool.is_complete() {
            // Only an upload larger than its type allows is cut short, and the check above refused it.
            return Err(MediaError::Io(std::io::Error::other("the spooled upload is incomplete")));
        }
        let number = PhoneNumberId::new(number);
        let uploaded = client.upload_media_file(&number, spool.path(), spool.len(), mime, filename).await;
        let id = uploaded.map_err(|e| match e {
            // The spool file could not be opened: the gateway's failure (never "no such media").
            CloudError::File(io) => {
                MediaError::Io(std::io::Error::other(format!("the spooled upload could not be opened: {io}")))
            }
            e => MediaError::Cloud(e),
        })?;
        Ok(id.as_str().to_owned())
    }

    /// The lock that fetches (and deletes) of media `id` take: one at a time per id.
    fn lock_of(&self, id: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(id, &mut hasher);
        let slot = usize::try_from(std::hash::Hasher::finish(&hasher) % FETCH_LOCKS as u64).unwrap_or(0);
        &self.fetching[slot]
    }

    /// Deletes media `id` at Meta and from the cache. It takes the id's fetch lock, so that a fetch that
    /// started before cannot write the cache after the files were removed. When Meta answers that the media
    /// does not exist (expired, or deleted already), a cached copy is removed all the same, and the delete
    /// succeeds if there was one.
    ///
    /// # Errors
    /// Meta's refusal, no client, or not a media id (`NotFound`).
    pub async fn delete(&self, id: &str) -> Result<(), MediaError> {
        if !is_media_id(id) {
            return Err(not_found());
        }
        // In a task of its own: a caller that goes away (its client disconnected) must not stop it between
        // the note and Meta's answer, which would leave the media noted as deleted but still at Meta.
        let (this, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move { this.delete_now(&id).await })
            .await
            .map_err(|e| MediaError::Io(std::io::Error::other(format!("the delete stopped: {e}"))))?
    }

    async fn delete_now(&self, id: &str) -> Result<(), MediaError> {
        let client = self.client()?;
        let _one = self.lock_of(id).lock().await;
        // Only a media object is deleted: account, number and template ids are numbers too, and Meta would
        // delete whatever the id names with the gateway's token. A media node reads as media info; any other
        // node does not.
        let deleted = match client.media_info(&MediaId::new(id)).await {
            Ok(_) => {
                // Noted before Meta is asked, so that no instance serves its copy once Meta deleted it (a note
                // written after could fail, with the media gone at Meta and still served elsewhere).
                let noted = match &self.deletions {
                    Some(store) => store.record_media_deleted(id).await?,
                    None => false,
                };
                let deleted = client.delete_media(&MediaId::new(id)).await;
                if let (Err(e), Some(store)) = (&deleted, &self.deletions)
                    && noted
                    && !is_gone(e)
                {
                    self.take_back_note(client, store, id).await;
                }
                deleted
            }
            Err(CloudError::Decode { .. }) => return Err(not_found()),
            Err(e) => Err(e),
        };
        match deleted {
            Ok(()) => {
                self.remove_cached(id).await;
                Ok(())
            }
            Err(e) if is_gone(&e) => {
                // Gone at Meta (expired, or deleted through another instance): no instance serves it any more.
                let had_copy = self.remove_cached(id).await;
                if let Some(store) = &self.deletions {
                    store.record_media_deleted(id).await?;
                }
                if had_copy { Ok(()) } else { Err(e.into()) }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After Meta answered a delete with an error: the note this call wrote goes again only if Meta still has
    /// the media. An error does not say that the delete was not done (a timeout, a proxy's 5xx), and another
    /// instance's delete may have gone through meanwhile; when Meta cannot say, the note stays (the media is
    /// then not served until it is deleted again, which Meta answers as gone).
    async fn take_back_note(&self, client: &Client, store: &Store, id: &str) {
        if client.media_info(&MediaId::new(id)).await.is_err() {
            return;
        }
        if let Err(e) = store.forget_media_deleted(id).await {
            tracing::error!(media = id, error = %e,
                "Meta refused to delete media, and its deletion note could not be taken back: \
                 the gateway will not serve it although Meta still has it");
        }
    }

    /// Fails with `NotFound` when media `id` was deleted through any instance (removing this cache's copy).
    async fn check_not_deleted(&self, id: &str) -> Result<(), MediaError> {
        let Some(store) = &self.deletions else { return Ok(()) };
        if store.media_deleted(id).await? {
            self.remove_cached(id).await;
            return Err(not_found());
        }
        Ok(())
    }

    /// Removes the cached files of `id`; whether there was a cached copy.
    async fn remove_cached(&self, id: &str) -> bool {
        if !is_safe_id(id) {
            return false;
        }
        let bin = tokio::fs::remove_file(self.path(id, "bin")).await.is_ok();
        let _ = tokio::fs::remove_file(self.path(id, "mime")).await;
        bin
    }

    /// Media `id` from the cache, or fetched from the Cloud API (and cached). `expected_sha256` is the
    /// webhook's (base64) when known. A download that cannot be cached (a full disk) is still answered.
    ///
    /// # Errors
    /// No client, Meta's refusal, or a checksum mismatch.
    pub async fn get(&self, id: &str, expected_sha256: Option<&str>) -> Result<MediaFile, MediaError> {
        if !is_safe_id(id) {
            return Err(not_found());
        }
        // Deleted through another instance: its copy here may still be cached, and Meta may not have
        // forgotten the id yet.
        self.check_not_deleted(id).await?;
        if let Some(cached) = self.cached(id).await {
            return Ok(cached);
        }
        // One fetch of an id at a time (the prefetch of an inbound message and the application asking for it
        // meet here): the second finds the first's file.
        let _one = self.lock_of(id).lock().await;
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
        if let Err(e) = self.store(id, &bytes, &info.mime_type).await {
            tracing::warn!(media = id, error = %e, "downloaded media could not be cached; answered all the same");
        }
        self.evict().await;
        Ok(MediaFile { content: MediaContent::Bytes(bytes), mime_type: info.mime_type })
    }

    /// The cached file of `id`, opened (its MIME type first: it is renamed into place before the bytes).
    async fn cached(&self, id: &str) -> Option<MediaFile> {
        let mime_type = tokio::fs::read_to_string(self.path(id, "mime")).await.ok()?;
        let file = tokio::fs::File::open(self.path(id, "bin")).await.ok()?;
        let len = file.metadata().await.ok()?.len();
        Some(MediaFile { content: MediaContent::File { file, len }, mime_type })
    }

    /// Writes both files under names of their own, then renames them into place (the MIME type first), so a
    /// reader never sees a partial file.
    async fn store(&self, id: &str, bytes: &[u8], mime: &str) -> std::io::Result<()> {
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
        if written.is_err() {
            let _ = tokio::fs::remove_file(&mime_tmp).await;
            let _ = tokio::fs::remove_file(&bin_tmp).await;
        }
        written
    }

    /// Removes the oldest files until the cache fits its limit. Files come and go meanwhile (other stores
    /// rename theirs into place, other evictions delete): an entry that vanished is skipped, and a failure is
    /// logged, never the fetch's.
    async fn evict(&self) {
        let mut dir = match tokio::fs::read_dir(&self.dir).await {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(error = %e, "the media cache could not be listed; nothing evicted");
                return;
            }
        };
        let mut files = Vec::new();
        let mut total = 0u64;
        loop {
            let entry = match dir.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "listing the media cache failed; evicting from what was listed");
                    break;
                }
            };
            let path = entry.path();
            let is = |ext: &str| path.extension().is_some_and(|e| e == ext);
            if !is("tmp") && !is("bin") {
                continue;
            }
            // Gone since it was listed (renamed over, or evicted by another fetch): nothing to count.
            let Ok(meta) = entry.metadata().await else { continue };
            if is("tmp") {
                // Left by a write that never finished (a crash): gone after an hour.
                let stale = meta.modified().ok().and_then(|m| m.elapsed().ok());
                if stale.is_some_and(|age| age > std::time::Duration::from_secs(3600)) {
                    let _ = tokio::fs::remove_file(&path).await;
                }
            } else {
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

/// The answer for media that is not there (a 404 on both API dialects).
fn not_found() -> MediaError {
    MediaError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "no such media"))
}

/// Whether Meta's answer says the media does not exist (any more): HTTP 404, or code 100 (Graph's answer
/// to an object that does not exist).
#[must_use]
pub fn is_gone(e: &CloudError) -> bool {
    e.status() == Some(404) || e.code() == Some(100)
}

/// Whether `id` can be a Cloud API media id (Meta's ids are decimal numbers): the first check of an id from
/// a caller, before any call to Meta.
#[must_use]
pub fn is_media_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Cache file names are made of such ids only (Meta's digits; anything else never names a file).
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

/// How often each instance removes the cached files of media deleted through any instance.
const SWEEP_DELETIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How often each instance goes through its whole cache directory: files older than the retention age go,
/// and so do those of media deleted while the instance was stopped (the first pass runs at start).
const SWEEP_CACHE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// How far before the last deletion it saw each pass looks again: a deletion is noted with the clock of the
/// instance that made it, and instances' clocks differ.
const CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;
/// Deletions read per query.
const DELETIONS_PAGE: u32 = 1000;

/// Where the pass over recent deletions has got to: the last deletion seen, `(deleted_at, media id)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionCursor {
    at_ms: i64,
    id: String,
}

impl DeletionCursor {
    /// A cursor at `now_ms` (a pass looks back `CLOCK_MARGIN_MS` before it).
    #[must_use]
    pub fn from_time(now_ms: i64) -> Self {
        Self { at_ms: now_ms, id: String::new() }
    }
}

impl MediaCache {
    /// Removes the cached files of media deleted through any instance since `cursor` (less the clock margin);
    /// answers where the next pass starts. Without a store to read deletions from, nothing.
    ///
    /// # Errors
    /// The store could not be read; files removed before that stay removed.
    pub async fn sweep_deletions(&self, cursor: DeletionCursor) -> Result<DeletionCursor, MediaError> {
        let Some(store) = &self.deletions else { return Ok(cursor) };
        let mut at = DeletionCursor { at_ms: cursor.at_ms - CLOCK_MARGIN_MS, id: String::new() };
        let mut seen = cursor;
        loop {
            let page = store.media_deleted_after(at.at_ms, &at.id, DELETIONS_PAGE).await?;
            // A note carries the clock of the instance that wrote it: one running ahead must not carry the
            // cursor past notes that instances with a right clock write later.
            let now = crate::store::now_millis();
            for (id, deleted_at) in &page {
                self.remove_cached(id).await;
                let at_ms = (*deleted_at).min(now);
                if (at_ms, id.as_str()) > (seen.at_ms, seen.id.as_str()) {
                    seen = DeletionCursor { at_ms, id: id.clone() };
                }
            }
            match page.last() {
                Some((id, deleted_at)) if page.len() == DELETIONS_PAGE as usize => {
                    at = DeletionCursor { at_ms: *deleted_at, id: id.clone() };
                }
                _ => return Ok(seen),
            }
        }
    }

    /// Goes through the whole cache: files written more than `max_age` ago go (the cache keeps media no
    /// longer than the event log keeps its messages), and so do files of media deleted through any
    /// instance. Answers how many media files were removed.
    ///
    /// # Errors
    /// The store could not be read for some file: the pass still goes through every file (those past the
    /// age go whatever the store says), then answers the store's error. A directory that cannot be listed
    /// (none yet) is an empty cache.
    pub async fn sweep_cache(&self, max_age: std::time::Duration) -> Result<usize, MediaError> {
        let Ok(mut dir) = tokio::fs::read_dir(&self.dir).await else { return Ok(0) };
        let mut removed = 0;
        let mut failed = None;
        while let Ok(Some(entry)) = dir.next_entry().await {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            let Ok(meta) = entry.metadata().await else { continue };
            let expired =
                meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > max_age);
            let deleted = match (&self.deletions, expired) {
                (Some(store), false) => store.media_deleted(&id).await.unwrap_or_else(|e| {
                    failed = Some(e);
                    false
                }),
                _ => false,
            };
            if (expired || deleted) && self.remove_cached(&id).await {
                removed += 1;
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(removed),
        }
    }
}

/// Keeps this instance's cache in line with deletions made through any instance and with the retention age
/// (see [`MediaCache::sweep_deletions`] and [`MediaCache::sweep_cache`]); stops with `shutdown`. A failed
/// pass is logged and tried again at the next tick (a download checks the store itself meanwhile).
pub fn spawn_sweeper(
    cache: Arc<MediaCache>,
    max_age: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut deletions = tokio::time::interval(SWEEP_DELETIONS_EVERY);
        let mut whole = tokio::time::interval(SWEEP_CACHE_EVERY);
        deletions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        whole.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cursor = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = whole.tick() => {
                    // Every deletion noted before this pass started is covered by it.
                    let started = DeletionCursor::from_time(crate::store::now_millis());
                    match cache.sweep_cache(max_age).await {
                        Ok(removed) => {
                            if removed > 0 {
                                tracing::info!(removed, "media cache: expired or deleted media removed");
                            }
                            cursor.get_or_insert(started);
                        }
                        Err(e) => tracing::warn!(error = %e, "media cache: the sweep failed; tried again later"),
                    }
                }
                _ = deletions.tick() => {
                    // Until the first whole pass succeeded, it covers the deletions too.
                    let Some(from) = cursor.take() else { continue };
                    cursor = Some(match cache.sweep_deletions(from.clone()).await {
                        Ok(next) => next,
                        Err(e) => {
                            tracing::warn!(error = %e, "media cache: deletions could not be read; tried again later");
                            from
                        }
                    });
                }
            }
        }
    })
}
