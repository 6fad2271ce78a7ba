//! How one Graph call is made: URL, headers, token, `appsecret_proof`, retries, and reading the answer.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use wabridge_types::error::GraphErrorEnvelope;
use wabridge_types::signature::appsecret_proof;
use wabridge_types::validate::ValidationError;

use crate::client::Client;
use crate::error::CloudError;
use crate::token::AccessToken;

/// One call, kept as data so that it can be sent again (a multipart form cannot be cloned, its parts can).
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) target: Target,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Body,
    /// A media file travels (an upload or a download): the client's media timeout applies instead of the
    /// request timeout.
    pub(crate) media: bool,
    /// The largest answer body read; a longer one is [`CloudError::MediaTooLarge`]. `None`: no limit.
    pub(crate) max_body: Option<u64>,
}

/// Where a call goes.
#[derive(Debug)]
pub(crate) enum Target {
    /// Path segments under `{base}/{version}/`, each percent-encoded (an id cannot add a segment).
    Graph(Vec<String>),
    /// A URL Meta gave (a media download): sent as is, with no `appsecret_proof`.
    Absolute(Url),
}

#[derive(Debug)]
pub(crate) enum Body {
    None,
    Json(Vec<u8>),
    /// A media upload from memory: the multipart `file` part is these bytes (cloned for each attempt, which
    /// costs a reference count).
    Multipart {
        file: Bytes,
        mime: String,
        filename: String,
    },
    /// A media upload from a file: its first `len` bytes are the `file` part, read in chunks of
    /// [`FILE_CHUNK`] bytes as they are sent. The file is opened again for each attempt, so a retried upload
    /// sends it whole again.
    MultipartFile {
        path: PathBuf,
        len: u64,
        mime: String,
        filename: String,
    },
}

/// How much of a file being uploaded is read at a time ([`Body::MultipartFile`]).
const FILE_CHUNK: usize = 64 * 1024;

impl Call {
    pub(crate) fn new(method: Method, segments: &[&str]) -> Self {
        let segments = segments.iter().map(|s| (*s).to_owned()).collect();
        Self::to(method, Target::Graph(segments))
    }

    pub(crate) fn to(method: Method, target: Target) -> Self {
        Self { method, target, query: Vec::new(), body: Body::None, media: false, max_body: None }
    }

    /// Marks the call as one that moves a media file, with the media timeout and, for a download, a limit
    /// on the answer's size.
    pub(crate) fn media_transfer(mut self, max_body: Option<u64>) -> Self {
        self.media = true;
        self.max_body = max_body;
        self
    }

    pub(crate) fn get(segments: &[&str]) -> Self {
        Self::new(Method::GET, segments)
    }

    pub(crate) fn post(segments: &[&str]) -> Self {
        Self::new(Method::POST, segments)
    }

    pub(crate) fn delete(segments: &[&str]) -> Self {
        Self::new(Method::DELETE, segments)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Result<Self, CloudError> {
        // Serializing our own request types to a Vec only fails on a non-string map key, which they lack.
        let bytes = serde_json::to_vec(body).map_err(|source| CloudError::Decode { status: 0, source })?;
        self.body = Body::Json(bytes);
        Ok(self)
    }

    /// A short description for logs: the method and the path, never the query (it may hold a proof) nor a
    /// download URL.
    fn describe(&self) -> String {
        match &self.target {
            Target::Graph(segments) => format!("{} /{}", self.method, segments.join("/")),
            Target::Absolute(_) => format!("{} <media url>", self.method),
        }
    }
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// The `Content-Type` header, when there was a readable one.
    pub(crate) content_type: Option<String>,
}

impl Answer {
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> Result<T, CloudError> {
        serde_json::from_slice(&self.body)
            .map_err(|source| CloudError::Decode { status: self.status, source })
    }
}

impl Client {
    /// Sends a call and decodes the JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, CloudError> {
        self.execute(&call).await?.decode()
    }

    /// Sends a call with token refresh and the retry policy; returns the 2xx answer.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer, CloudError> {
        let inner = &self.inner;
        let started = inner.clock.now();
        let mut failed: u32 = 0;
        let mut refresh = false;
        let mut refreshed = false;
        loop {
            let token = inner.tokens.token(refresh).await.map_err(CloudError::Token)?;
            refresh = false;
            let error = match self.send_once(call, &token).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if error.is_auth() && inner.refreshable && !refreshed {
                tracing::debug!(call = %call.describe(), "token refused; asking the provider for a fresh one");
                refresh = true;
                refreshed = true;
                continue;
            }
            failed += 1;
            let Some(policy) = &inner.retry else { return Err(error) };
            // A call that is not idempotent (a send, an upload, a template created) is tried again only when
            // Meta refused it: sending it again after an answer was lost could do it twice.
            if !call.method.is_idempotent() && error.outcome_unknown() {
                tracing::debug!(call = %call.describe(), "outcome unknown; not retried");
                return Err(error);
            }
            let Some(delay) = policy.delay_for(failed, &error, rand::random::<f64>()) else {
                return Err(error);
            };
            if let Some(limit) = policy.max_elapsed
                && inner.clock.now().saturating_duration_since(started) + delay > limit
            {
                return Err(error);
            }
            tracing::debug!(
                call = %call.describe(),
                attempt = failed,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                code = error.code(),
                "retrying"
            );
            inner.sleeper.sleep(delay).await;
        }
    }

    fn url(&self, call: &Call, token: &AccessToken) -> Result<Url, CloudError> {
        let inner = &self.inner;
        match &call.target {
            Target::Graph(segments) => {
                let mut url = inner.base.clone();
                {
                    let mut path = url
                        .path_segments_mut()
                        .map_err(|()| CloudError::Url("base URL cannot have a path".to_owned()))?;
                    path.pop_if_empty().push(&inner.version);
                    for segment in segments {
                        check_segment(segment)?;
                        path.push(segment);
                    }
                }
                let proof = inner
                    .app_secret
                    .as_ref()
                    .and_then(|provider| provider.app_secret())
                    .map(|s| appsecret_proof(s.expose(), token.expose()));
                if !call.query.is_empty() || proof.is_some() {
                    let mut pairs = url.query_pairs_mut();
                    for (k, v) in &call.query {
                        pairs.append_pair(k, v);
                    }
                    if let Some(proof) = &proof {
                        pairs.append_pair("appsecret_proof", proof);
                    }
                }
                Ok(url)
            }
            Target::Absolute(url) => Ok(url.clone()),
        }
    }

    /// The whole-request timeout of `call` when it is not the HTTP client's own: a media upload or download
    /// has the media timeout (a per-request timeout replaces the client's in `reqwest`).
    fn timeout_for(&self, call: &Call) -> Option<Duration> {
        if call.media { self.inner.media_timeout } else { None }
    }

    async fn send_once(&self, call: &Call, token: &AccessToken) -> Result<Answer, CloudError> {
        let url = self.url(call, token)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| CloudError::Token("the access token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut request = self.inner.http.request(call.method.clone(), url).header(AUTHORIZATION, auth);
        if let Some(timeout) = self.timeout_for(call) {
            request = request.timeout(timeout);
        }
        request = match &call.body {
            Body::None => request,
            Body::Json(bytes) => request.header(CONTENT_TYPE, "application/json").body(bytes.clone()),
            Body::Multipart { file, mime, filename } => {
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(file.clone()),
                    file.len() as u64,
                );
                request.multipart(media_form(part, mime, filename)?)
            }
            Body::MultipartFile { path, len, mime, filename } => {
                let file = tokio::fs::File::open(path).await.map_err(CloudError::File)?;
                let stream = reqwest::Body::wrap_stream(file_chunks(file, *len));
                let part = reqwest::multipart::Part::stream_with_length(stream, *len);
                request.multipart(media_form(part, mime, filename)?)
            }
        };
        let response = request.send().await.map_err(|e| {
            tracing::debug!(call = %call.describe(), timeout = e.is_timeout(), "transport error");
            CloudError::http(e)
        })?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = retry_after(response.headers());
        let body = match call.max_body {
            Some(limit) => read_at_most(response, limit).await?,
            None => response.bytes().await.map_err(CloudError::http)?,
        };
        tracing::debug!(call = %call.describe(), status, "graph answer");
        if (200..300).contains(&status) {
            return Ok(Answer { status, body, content_type });
        }
        Err(error_from(status, &body, retry_after))
    }
}

/// The multipart form of a media upload (`cloud-api.md` §4): `messaging_product`, `type` and the `file` part
/// (named `filename`, of type `mime`).
fn media_form(
    part: reqwest::multipart::Part,
    mime: &str,
    filename: &str,
) -> Result<reqwest::multipart::Form, CloudError> {
    let part = part.file_name(filename.to_owned()).mime_str(mime).map_err(CloudError::http)?;
    Ok(reqwest::multipart::Form::new()
        .text("messaging_product", wabridge_types::MESSAGING_PRODUCT)
        .text("type", mime.to_owned())
        .part("file", part))
}

/// The first `len` bytes of `file`, in chunks of at most [`FILE_CHUNK`] bytes, read as the body is sent: no
/// more than a chunk or two of it is in memory at a time. A file shorter than `len` ends the stream with an
/// error (the request announced `len` bytes; it fails rather than sending a truncated file).
fn file_chunks(
    file: tokio::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt as _;
    futures_util::stream::try_unfold(file.take(len), |mut file| async move {
        let left = file.limit();
        if left == 0 {
            return Ok(None);
        }
        let mut buf = BytesMut::with_capacity(usize::try_from(left).unwrap_or(FILE_CHUNK).min(FILE_CHUNK));
        let n = file.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the media file ended {left} bytes short of its announced length"),
            ));
        }
        Ok(Some((buf.freeze(), file)))
    })
}

/// Reads a body of at most `limit` bytes, refusing a longer one as soon as it is known to be longer (from
/// its `Content-Length`, or once that many bytes arrived), so it is never held whole in memory.
async fn read_at_most(mut response: reqwest::Response, limit: u64) -> Result<Bytes, CloudError> {
    let too_large = || CloudError::MediaTooLarge { limit };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(CloudError::http)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The longest `Retry-After` taken as given: the longest wait Meta's own error classes ask for (131048, an
/// hour). A larger value (a proxy's mistake, or a number chosen to overflow a deadline) is read as this.
pub(crate) const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds, at most [`RETRY_AFTER_MAX`] (the HTTP-date form is not read: Meta and the
/// proxies in front of it send seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(RETRY_AFTER_MAX))
}

/// Refuses what cannot be one id in a Graph path. `url` encodes a segment it is given, but it silently
/// drops a `.` or `..` segment and reads the percent-encoded forms (`%2e%2e`, `.%2E`) as "this" and
/// "parent" directories: `MediaId::new("..")` would call `GET /{version}` and `MediaId::new("%2e%2e")`
/// `GET /`, an empty id the object's parent. Meta's ids are digits or wamid-like
/// strings (`wamid.HBgL…==`: letters, digits, `.`, `_`, `-` and base64's `+ / =`), so the rule can be
/// strict without refusing a real one: not empty, not `.` or `..`, printable ASCII only, and none of
/// `%` (no encoded dots), `\` (a separator to `url` on http(s)), `?` and `#`. A `/` is encoded by `url`
/// and stays inside the segment.
pub(crate) fn check_segment(segment: &str) -> Result<(), CloudError> {
    let refused = segment.is_empty()
        || segment == "."
        || segment == ".."
        || segment.chars().any(|c| !c.is_ascii_graphic() || matches!(c, '%' | '\\' | '?' | '#'));
    if refused {
        return Err(CloudError::Invalid(ValidationError::Invalid {
            field: "id".to_owned(),
            reason: format!("{segment:?} cannot be a Graph id in a URL path"),
        }));
    }
    Ok(())
}

/// A non-2xx answer as an error: the Graph error when the body is one, else the status with a snippet.
/// The Graph error is read leniently ([`wabridge_types::GraphError`]): an odd member does not lose the code.
fn error_from(status: u16, body: &[u8], retry_after_header: Option<Duration>) -> CloudError {
    match serde_json::from_slice::<GraphErrorEnvelope>(body) {
        Ok(envelope) => CloudError::Graph { status, error: Box::new(envelope.error), retry_after_header },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            CloudError::Status { status, snippet: text.chars().take(200).collect(), retry_after_header }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::{Call, Target};
    use crate::client::{Client, DEFAULT_MEDIA_TIMEOUT};

    fn download() -> Call {
        let url = reqwest::Url::parse("https://lookaside.example/m?mid=1").unwrap();
        Call::to(reqwest::Method::GET, Target::Absolute(url)).media_transfer(Some(10))
    }

    /// Media transfers get the media timeout, every other call the client's request timeout (`None` here:
    /// the HTTP client's own applies).
    #[test]
    fn media_transfers_have_their_own_timeout() {
        let client =
            Client::builder().access_token("t").request_timeout(Duration::from_secs(30)).build().unwrap();
        assert_eq!(client.timeout_for(&download()), Some(DEFAULT_MEDIA_TIMEOUT));
        let upload = Call::post(&["1", "media"]).media_transfer(None);
        assert_eq!(client.timeout_for(&upload), Some(Duration::from_secs(300)));
        assert_eq!(client.timeout_for(&Call::post(&["1", "messages"])), None);

        let configured =
            Client::builder().access_token("t").media_timeout(Duration::from_secs(900)).build().unwrap();
        assert_eq!(configured.timeout_for(&download()), Some(Duration::from_secs(900)));

        // A caller's own HTTP client keeps its timeouts unless a media timeout is asked for.
        let own = Client::builder().access_token("t").http_client(reqwest::Client::new()).build().unwrap();
        assert_eq!(own.timeout_for(&download()), None);
        let own = Client::builder()
            .access_token("t")
            .http_client(reqwest::Client::new())
            .media_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        assert_eq!(own.timeout_for(&download()), Some(Duration::from_secs(60)));
    }

    /// A `Retry-After` beyond the longest wait Meta asks for is read as that wait (never a deadline that
    /// overflows).
    #[test]
    fn retry_after_is_capped() {
        use reqwest::header::{HeaderMap, RETRY_AFTER};
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "18446744073709551615".parse().unwrap());
        assert_eq!(super::retry_after(&headers), Some(super::RETRY_AFTER_MAX));
        headers.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(super::retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
