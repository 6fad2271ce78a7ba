//! Media uploads spooled to disk. The body of an upload (`POST /v1/media`, the Cloud-compatible multipart
//! route's `file` field) is written to a file of its own under `<data_dir>/tmp` as it arrives, counted, and
//! then streamed from that file to the Cloud API ([`wabridge_cloud::Client::upload_media_file`], which
//! opens it again for each attempt): an upload holds a few chunks in memory, not its whole body.
//!
//! The file is removed whatever happens: by [`Spool::remove`] once the upload is answered (success or
//! error), or when the [`Spool`] is dropped unremoved (the client disconnected and its handler was dropped
//! mid-body). Files left by a process that died are removed when the next one starts ([`sweep`]).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;

/// Spool files are named `upload-{uuid}.part`; only such names are swept.
const PREFIX: &str = "upload-";
const SUFFIX: &str = ".part";

/// Writes to a spool file are gathered up to this size (the body arrives in frames of a few KiB).
const WRITE_BUFFER: usize = 64 * 1024;

/// An upload's bytes on disk, from its first chunk until Meta answered the upload.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// Open while bytes are received; closed by [`Spool::finish`].
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    /// Bytes received.
    received: u64,
    /// Bytes written: the bytes received while they fitted in `keep`.
    written: u64,
    /// The most worth writing: an upload larger than its type allows is refused, so only its size matters.
    keep: u64,
    /// Removed already (nothing for `Drop` to do).
    removed: bool,
}

impl Spool {
    /// A new, empty spool file in `dir` (created when missing) that writes at most `keep` bytes of what it
    /// receives (see [`Spool::push`]).
    ///
    /// # Errors
    /// The directory or the file could not be created.
    pub async fn create(dir: &Path, keep: u64) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("{PREFIX}{}{SUFFIX}", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Self {
            path,
            file: Some(tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file)),
            received: 0,
            written: 0,
            keep,
            removed: false,
        })
    }

    /// Counts `chunk` and writes it, unless the bytes received go past `keep`: from there on the upload is
    /// only counted (it will be refused for its size), and nothing more is written.
    ///
    /// # Errors
    /// Writing failed (a full disk).
    pub async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.received += chunk.len() as u64;
        if self.received > self.keep || chunk.is_empty() {
            return Ok(());
        }
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("the spool file is closed"))?;
        file.write_all(chunk).await?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.received
    }

    /// Whether nothing was received.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Whether every byte received is in the file.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.written == self.received
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what is buffered and closes the file: it is complete on disk, to be read from its path.
    ///
    /// # Errors
    /// Writing failed.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
        }
        Ok(())
    }

    /// Closes and removes the file.
    pub async fn remove(mut self) {
        self.removed = true;
        drop(self.file.take());
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove a media upload's spool file")
            }
        }
    }
}

impl Drop for Spool {
    /// A spool dropped without [`Spool::remove`] (its request was dropped: the client went away) removes its
    /// file here, at once (an unlink; this is not the common path).
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        drop(self.file.take());
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a media upload's spool file");
        }
    }
}

/// Removes the spool files in `dir` (left by a process that stopped mid-upload); run once at start, before
/// any upload. Returns how many were removed. A directory that does not exist has none.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(SUFFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "could not remove a media upload's spool file")
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed media upload spool files left by a previous run");
    }
    removed
}

/// The spool files in `dir`, by name (for tests and checks: none should outlive its upload).
#[must_use]
pub fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with(PREFIX) && name.ends_with(SUFFIX))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wabridge-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Bytes past `keep` are counted, not written; `remove` and `Drop` both leave no file; `sweep` removes
    /// only spool files.
    #[tokio::test]
    async fn a_spool_counts_writes_and_removes() {
        let dir = dir("unit");
        let mut spool = Spool::create(&dir, 10).await.unwrap();
        spool.push(b"0123456789").await.unwrap();
        assert!(spool.is_complete());
        spool.push(b"abc").await.unwrap();
        assert_eq!((spool.len(), spool.is_complete()), (13, false));
        spool.finish().await.unwrap();
        assert_eq!(std::fs::read(spool.path()).unwrap(), b"0123456789");
        assert_eq!(files_in(&dir).len(), 1);
        spool.remove().await;
        assert!(files_in(&dir).is_empty());

        let dropped = Spool::create(&dir, u64::MAX).await.unwrap();
        drop(dropped);
        assert!(files_in(&dir).is_empty());

        std::fs::write(dir.join("upload-left.part"), b"x").unwrap();
        std::fs::write(dir.join("other.txt"), b"x").unwrap();
        assert_eq!(sweep(&dir), 1);
        assert!(files_in(&dir).is_empty());
        assert!(dir.join("other.txt").exists());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(sweep(&dir), 0);
    }
}
