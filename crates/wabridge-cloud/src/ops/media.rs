//! Media: upload, look up, download, delete (`cloud-api.md` §4).

use std::path::Path;

use bytes::Bytes;
use reqwest::{Method, Url};
use wabridge_types::ids::{MediaId, PhoneNumberId};
use wabridge_types::limits::{MEDIA_MAX_BYTES, MediaKind};
use wabridge_types::response::{MediaInfo, MediaUploadResponse};

use super::expect_success;
use crate::client::Client;
use crate::error::{CloudError, MediaError};
use crate::request::{Body, Call, Target};

/// A downloaded media file and the type the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDownload {
    /// The file.
    pub bytes: Bytes,
    /// The answer's `Content-Type` (`image/jpeg`), when it had one.
    pub content_type: Option<String>,
}

/// Checks a file against Meta's media limits (§4): a MIME type WhatsApp accepts, not empty, and no larger
/// than its kind allows. Returns the kind.
///
/// # Errors
/// The [`MediaError`] that makes Meta refuse the upload.
pub fn check_media(mime: &str, size: u64) -> Result<MediaKind, MediaError> {
    let kind =
        MediaKind::from_mime(mime).ok_or_else(|| MediaError::UnsupportedType { mime: mime.to_owned() })?;
    if size == 0 {
        return Err(MediaError::Empty);
    }
    let limit = kind.max_bytes();
    if size > limit {
        return Err(MediaError::TooLarge { kind, size, limit });
    }
    Ok(kind)
}

impl Client {
    /// Uploads a file for a business number (`POST /{phone-number-id}/media`, multipart `file`, `type`,
    /// `messaging_product`) and returns its media id, valid for 30 days. The MIME type and size are checked
    /// against Meta's limits first ([`check_media`]); a file Meta would refuse is never sent. The bytes are held
    /// until the call ends (a retry sends them again); to upload a large file from disk without holding it in
    /// memory, see [`Client::upload_media_file`].
    ///
    /// # Errors
    /// [`CloudError::Media`], or any error of the call.
    pub async fn upload_media(
        &self,
        number: &PhoneNumberId,
        file: impl Into<Bytes>,
        mime: &str,
        filename: &str,
    ) -> Result<MediaId, CloudError> {
        let file = file.into();
        check_media(mime, file.len() as u64)?;
        let mut call = Call::post(&[number.as_str(), "media"]).media_transfer(None);
        call.body = Body::Multipart { file, mime: mime.to_owned(), filename: filename.to_owned() };
        let answer: MediaUploadResponse = self.call(call).await?;
        Ok(answer.id)
    }

    /// Uploads the first `len` bytes of the file at `path` for a business number, like
    /// [`Client::upload_media`], streaming it: the file is read in small chunks as the request is sent, never
    /// held whole in memory. The MIME type and `len` are checked against Meta's limits first
    /// ([`check_media`]); a file Meta would refuse is never opened. The file is opened again for each attempt
    /// the retry policy makes (an upload is tried again only when Meta refused it, as
    /// [`Client::upload_media`]), so it must stay in place, unchanged, until this returns.
    ///
    /// # Errors
    /// [`CloudError::Media`]; [`CloudError::File`] when the file cannot be opened; [`CloudError::Http`]
    /// when reading it fails during the upload, or when it is shorter than `len`; or any error of the call.
    pub async fn upload_media_file(
        &self,
        number: &PhoneNumberId,
        path: impl AsRef<Path>,
        len: u64,
        mime: &str,
        filename: &str,
    ) -> Result<MediaId, CloudError> {
        check_media(mime, len)?;
        let mut call = Call::post(&[number.as_str(), "media"]).media_transfer(None);
        call.body = Body::MultipartFile {
            path: path.as_ref().to_owned(),
            len,
            mime: mime.to_owned(),
            filename: filename.to_owned(),
        };
        let answer: MediaUploadResponse = self.call(call).await?;
        Ok(answer.id)
    }

    /// Where to download a media object for the next five minutes (`GET /{media-id}`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn media_info(&self, media: &MediaId) -> Result<MediaInfo, CloudError> {
        self.call(Call::get(&[media.as_str()])).await
    }

    /// Like [`Client::media_info`], asking Meta to check that the media belongs to `number`
    /// (`?phone_number_id=`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn media_info_for(
        &self,
        media: &MediaId,
        number: &PhoneNumberId,
    ) -> Result<MediaInfo, CloudError> {
        self.call(Call::get(&[media.as_str()]).query("phone_number_id", number.as_str())).await
    }

    /// Downloads a media file from the URL [`Client::media_info`] gave, with the bearer token; see
    /// [`Client::download_media_with_type`], which also gives the file's `Content-Type`.
    ///
    /// # Errors
    /// As [`Client::download_media_with_type`].
    pub async fn download_media(&self, url: &str) -> Result<Bytes, CloudError> {
        Ok(self.download_media_with_type(url).await?.bytes)
    }

    /// Downloads a media file from the URL [`Client::media_info`] gave, with the bearer token, and returns
    /// it with the `Content-Type` of the answer.
    ///
    /// The URL is called as given (no `appsecret_proof`: it is not a Graph call, and its query is Meta's
    /// signature). To keep the token from travelling in clear text, the URL must be `https`, or have the same
    /// scheme, host and port as the configured base URL (a test server or the sandbox).
    ///
    /// The download has the media timeout ([`crate::ClientBuilder::media_timeout`], 5 minutes by default)
    /// rather than the request timeout, and stops with [`CloudError::MediaTooLarge`] beyond
    /// [`MEDIA_MAX_BYTES`] (100 MB, the largest media WhatsApp allows), without holding more than that.
    ///
    /// # Errors
    /// [`CloudError::Url`] for a URL refused as above, [`CloudError::MediaTooLarge`], or any error of the
    /// call (an expired URL answers 404).
    pub async fn download_media_with_type(&self, url: &str) -> Result<MediaDownload, CloudError> {
        let url = Url::parse(url).map_err(|e| CloudError::Url(format!("media URL: {e}")))?;
        let base = &self.inner.base;
        let same_origin = url.origin() == base.origin();
        if url.scheme() != "https" && !same_origin {
            return Err(CloudError::Url("a media URL must be https (or on the base URL's host)".to_owned()));
        }
        let call = Call::to(Method::GET, Target::Absolute(url)).media_transfer(Some(MEDIA_MAX_BYTES));
        let answer = self.execute(&call).await?;
        Ok(MediaDownload { bytes: answer.body, content_type: answer.content_type })
    }

    /// Deletes an uploaded media object (`DELETE /{media-id}`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn delete_media(&self, media: &MediaId) -> Result<(), CloudError> {
        expect_success(&self.execute(&Call::delete(&[media.as_str()])).await?)
    }

    /// Like [`Client::delete_media`], limited to media of `number` (`?phone_number_id=`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn delete_media_for(&self, media: &MediaId, number: &PhoneNumberId) -> Result<(), CloudError> {
        let call = Call::delete(&[media.as_str()]).query("phone_number_id", number.as_str());
        expect_success(&self.execute(&call).await?)
    }
}
