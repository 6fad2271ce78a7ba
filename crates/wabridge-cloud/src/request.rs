//! How one Graph call is made: URL, headers, token, `appsecret_proof`, retries, and reading the answer.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use wabridge_types::error::GraphErrorEnvelope;
use wabridge_types::signature::appsecret_proof;

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
    Multipart { file: Bytes, mime: String, filename: String },
}

impl Call {
    pub(crate) fn new(method: Method, segments: &[&str]) -> Self {
        let segments = segments.iter().map(|s| (*s).to_owned()).collect();
        Self { method, target: Target::Graph(segments), query: Vec::new(), body: Body::None }
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
            if let Some(limit) = policy.max_elapsed {
                if inner.clock.now().saturating_duration_since(started) + delay > limit {
                    return Err(error);
                }
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
                        path.push(segment);
                    }
                }
                let proof = inner.app_secret.as_ref().map(|s| appsecret_proof(s.expose(), token.expose()));
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

    async fn send_once(&self, call: &Call, token: &AccessToken) -> Result<Answer, CloudError> {
        let url = self.url(call, token)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| CloudError::Token("the access token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut request = self.inner.http.request(call.method.clone(), url).header(AUTHORIZATION, auth);
        request = match &call.body {
            Body::None => request,
            Body::Json(bytes) => request.header(CONTENT_TYPE, "application/json").body(bytes.clone()),
            Body::Multipart { file, mime, filename } => {
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(file.clone()),
                    file.len() as u64,
                )
                .file_name(filename.clone())
                .mime_str(mime)
                .map_err(CloudError::http)?;
                let form = reqwest::multipart::Form::new()
                    .text("messaging_product", wabridge_types::MESSAGING_PRODUCT)
                    .text("type", mime.clone())
                    .part("file", part);
                request.multipart(form)
            }
        };
        let response = request.send().await.map_err(|e| {
            tracing::debug!(call = %call.describe(), timeout = e.is_timeout(), "transport error");
            CloudError::http(e)
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(CloudError::http)?;
        tracing::debug!(call = %call.describe(), status, "graph answer");
        if (200..300).contains(&status) {
            return Ok(Answer { status, body });
        }
        Err(error_from(status, &body))
    }
}

/// A non-2xx answer as an error: the Graph error when the body is one, else the status with a snippet.
fn error_from(status: u16, body: &[u8]) -> CloudError {
    match serde_json::from_slice::<GraphErrorEnvelope>(body) {
        Ok(envelope) => CloudError::Graph { status, error: Box::new(envelope.error) },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            CloudError::Status { status, snippet: text.chars().take(200).collect() }
        }
    }
}
