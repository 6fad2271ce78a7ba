//! Uploaded media: the bytes, their type and hash, and the short-lived download URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use wabridge_types::limits::MediaKind;

use crate::chaos::lock;

/// The largest static sticker: 100 KB (`cloud-api.md` §1 and §4); an animated one may have 500 KB,
/// [`MediaKind::max_bytes`] of stickers.
const STATIC_STICKER_MAX: u64 = 100 * 1024;

/// The largest sticker of this kind, in bytes.
#[must_use]
pub(crate) fn sticker_max_bytes(animated: bool) -> u64 {
    if animated { MediaKind::Sticker.max_bytes() } else { STATIC_STICKER_MAX }
}

/// What a WebP file's header says: `Some(true)` for an animation (the `VP8X` chunk's animation flag, or
/// an `ANIM` / `ANMF` chunk), `Some(false)` for a still image, `None` when the bytes are not a RIFF/WEBP
/// file. Only the chunk headers are read, never the image data.
#[must_use]
pub(crate) fn webp_animated(bytes: &[u8]) -> Option<bool> {
    /// The animation bit of the `VP8X` flags byte.
    const VP8X_ANIMATION: u8 = 0x02;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return None;
    }
    let mut animated = false;
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at.saturating_add(8)) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let payload = at + 8;
        match &header[..4] {
            b"VP8X" => animated |= bytes.get(payload).is_some_and(|flags| flags & VP8X_ANIMATION != 0),
            b"ANIM" | b"ANMF" => animated = true,
            _ => {}
        }
        // Chunks are padded to an even size.
        at = payload.saturating_add(size).saturating_add(size & 1);
    }
    Some(animated)
}

/// A stored media object.
#[derive(Debug)]
pub(crate) struct MediaObject {
    pub bytes: Bytes,
    pub mime_type: String,
    /// Lowercase hex SHA-256 (as media-info responses carry it).
    pub sha256_hex: String,
    /// Base64 SHA-256 (as inbound webhooks carry it).
    pub sha256_b64: String,
    /// For a WebP file, whether it is animated (see [`webp_animated`]); `None` for other files.
    pub animated_webp: Option<bool>,
    /// When it stops existing (sandbox clock, ns).
    pub expires_at: u64,
}

impl MediaObject {
    pub(crate) fn new(bytes: Bytes, mime_type: String, expires_at: u64) -> Self {
        let digest = Sha256::digest(&bytes);
        Self {
            sha256_hex: hex::encode(digest),
            sha256_b64: base64::engine::general_purpose::STANDARD.encode(digest),
            animated_webp: webp_animated(&bytes),
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

#[cfg(test)]
mod tests {
    use super::webp_animated;

    /// A WebP file with the given chunks (fourcc, payload).
    fn webp(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (fourcc, payload) in chunks {
            body.extend_from_slice(*fourcc);
            body.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_le_bytes());
            body.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    #[test]
    fn webp_headers_tell_animated_from_static() {
        assert_eq!(webp_animated(&webp(&[(b"VP8 ", &[0u8; 11][..])])), Some(false));
        assert_eq!(webp_animated(&webp(&[(b"VP8L", &[0u8; 5][..])])), Some(false));
        assert_eq!(
            webp_animated(&webp(&[
                (b"VP8X", &[0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]),
                (b"VP8 ", &[0u8; 4][..])
            ])),
            Some(false)
        );
        assert_eq!(webp_animated(&webp(&[(b"VP8X", &[0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0][..])])), Some(true));
        // An ANIM chunk without the flag (a sloppy encoder) still means animation; odd sizes are padded.
        assert_eq!(webp_animated(&webp(&[(b"ICCP", &[1, 2, 3][..]), (b"ANIM", &[0u8; 6][..])])), Some(true));
        // A chunk claiming more bytes than there are ends the walk.
        let mut truncated = webp(&[(b"VP8 ", &[0u8; 4][..])]);
        truncated[16] = 0xFF;
        assert_eq!(webp_animated(&truncated), Some(false));
        assert_eq!(webp_animated(b"\x89PNG\r\n\x1a\n not webp"), None);
        assert_eq!(webp_animated(b"RIFF"), None);
    }
}
