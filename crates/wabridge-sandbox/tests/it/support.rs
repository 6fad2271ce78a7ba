//! The harness: a sandbox with an SDK client, a webhook receiver, and polling helpers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::Value;
use wabridge_cloud::Client;
use wabridge_sandbox::{Sandbox, SandboxConfig};
use wabridge_types::webhook::{ChangeValue, Envelope, InboundMessage, Status};
use wabridge_types::{PhoneNumberId, WabaId};

/// A recipient with no special behaviour.
pub const USER: &str = "16505551234";

/// A running sandbox and a client for it.
pub struct Harness {
    pub sandbox: Sandbox,
    pub client: Client,
}

impl Harness {
    pub async fn start(config: SandboxConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = Sandbox::start(config, listener).await.unwrap();
        let client = client_for(&sandbox, None);
        Self { sandbox, client }
    }

    pub async fn for_tests() -> Self {
        Self::start(SandboxConfig::for_tests()).await
    }

    /// Starts with a receiver registered as callback (after the handshake).
    pub async fn with_receiver(config: SandboxConfig) -> (Self, Receiver) {
        let receiver =
            Receiver::start(config.app_secret.as_deref().unwrap_or_default(), &config.webhooks.verify_token)
                .await;
        let harness = Self::start(config).await;
        harness.sandbox.control().add_callback(&receiver.url).await.unwrap();
        (harness, receiver)
    }

    pub fn number(&self) -> PhoneNumberId {
        PhoneNumberId::new(self.sandbox.phone_number_ids()[0].clone())
    }

    pub fn waba(&self) -> WabaId {
        WabaId::new(self.sandbox.waba_id())
    }

    /// `{base}/v23.0/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v23.0/{path}", self.sandbox.base_url())
    }

    /// Posts raw JSON to the Graph routes with the token; returns status and body.
    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(self.sandbox.access_token())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Calls the control API.
    pub async fn control_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request =
            reqwest::Client::new().request(method, format!("{}/_sandbox{path}", self.sandbox.base_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// An SDK client for a sandbox, with `appsecret_proof` when `app_secret` is given.
pub fn client_for(sandbox: &Sandbox, app_secret: Option<&str>) -> Client {
    let mut builder =
        Client::builder().base_url(sandbox.base_url()).access_token(sandbox.access_token()).no_proxy();
    if let Some(secret) = app_secret {
        builder = builder.app_secret(secret);
    }
    builder.build().unwrap()
}

/// The Graph error code of a failed SDK call.
pub fn code<T: std::fmt::Debug>(result: Result<T, wabridge_cloud::CloudError>) -> (i64, u16) {
    let error = result.expect_err("the call should fail");
    (error.code().unwrap_or(-1), error.status().unwrap_or(0))
}

/// Polls `check` every few milliseconds until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The usual wait for webhooks in tests: generous, since polling ends as soon as the condition holds.
pub const WAIT: Duration = Duration::from_secs(5);

/// A webhook receiver on 127.0.0.1:0: answers the verification handshake for its verify token, checks
/// `X-Hub-Signature-256` on every POST, and keeps the envelopes.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub state: Arc<ReceiverState>,
}

pub struct ReceiverState {
    secret: String,
    verify_token: String,
    envelopes: Mutex<Vec<Envelope>>,
    /// Answer 500 to this many POSTs before accepting.
    pub fail_next: AtomicU32,
    /// Answer this many POSTs only after a second (longer than the tests' request timeout).
    pub slow_next: AtomicU32,
    pub posts: AtomicU32,
    pub bad_signatures: AtomicU32,
    /// When each POST arrived, in order.
    pub arrivals: Mutex<Vec<Instant>>,
    /// `messages` values that held more than one of `messages`, `statuses` and `errors` (Meta's never do).
    pub mixed_values: AtomicU32,
}

impl Receiver {
    pub async fn start(secret: &str, verify_token: &str) -> Self {
        let state = Arc::new(ReceiverState {
            secret: secret.to_owned(),
            verify_token: verify_token.to_owned(),
            envelopes: Mutex::new(Vec::new()),
            fail_next: AtomicU32::new(0),
            slow_next: AtomicU32::new(0),
            posts: AtomicU32::new(0),
            bad_signatures: AtomicU32::new(0),
            arrivals: Mutex::new(Vec::new()),
            mixed_values: AtomicU32::new(0),
        });
        let app = Router::new().route("/hook", get(verify).post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn envelopes(&self) -> Vec<Envelope> {
        self.state.envelopes.lock().unwrap().clone()
    }

    pub fn changes(&self) -> Vec<ChangeValue> {
        self.envelopes().into_iter().flat_map(|e| e.entry).flat_map(|e| e.changes).map(|c| c.value).collect()
    }

    pub fn statuses(&self) -> Vec<Status> {
        self.changes()
            .into_iter()
            .filter_map(|c| c.as_messages().map(|v| v.statuses().to_vec()))
            .flatten()
            .collect()
    }

    pub fn statuses_of(&self, wamid: &str) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|s| s.id.as_str() == wamid)
            .map(|s| s.status.as_str().to_owned())
            .collect()
    }

    pub fn messages(&self) -> Vec<InboundMessage> {
        self.changes()
            .into_iter()
            .filter_map(|c| c.as_messages().map(|v| v.messages().to_vec()))
            .flatten()
            .collect()
    }

    pub fn posts(&self) -> u32 {
        self.state.posts.load(Ordering::SeqCst)
    }

    /// The time between consecutive POSTs.
    pub fn gaps(&self) -> Vec<Duration> {
        self.state.arrivals.lock().unwrap().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn verify(
    State(state): State<Arc<ReceiverState>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    let ok = q.get("hub.mode").map(String::as_str) == Some("subscribe")
        && q.get("hub.verify_token") == Some(&state.verify_token);
    match (ok, q.get("hub.challenge")) {
        (true, Some(challenge)) => (StatusCode::OK, challenge.clone()),
        _ => (StatusCode::FORBIDDEN, String::new()),
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    state.arrivals.lock().unwrap().push(Instant::now());
    state.posts.fetch_add(1, Ordering::SeqCst);
    let signature = headers.get("x-hub-signature-256").and_then(|h| h.to_str().ok());
    if wabridge_types::signature::verify(signature, &body, &[state.secret.as_bytes()]).is_err() {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    if state.slow_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return StatusCode::OK;
    }
    let failing =
        state.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let envelope = Envelope::from_slice(&body).expect("the sandbox sends valid envelopes");
    for change in envelope.entry.iter().flat_map(|e| &e.changes) {
        if let Some(v) = change.value.as_messages() {
            let kinds = [!v.messages().is_empty(), !v.statuses().is_empty(), !v.errors().is_empty()];
            if kinds.iter().filter(|k| **k).count() > 1 {
                state.mixed_values.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    state.envelopes.lock().unwrap().push(envelope);
    StatusCode::OK
}

/// A WebP file of `size` bytes (at least 30): a still image (`VP8 ` chunk), or an animation (`VP8X` with
/// its animation flag, then `ANIM`). Only the chunk headers are real; the sandbox reads no more.
pub fn webp(animated: bool, size: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], payload_len: usize) {
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&u32::try_from(payload_len).unwrap().to_le_bytes());
        out.resize(out.len() + payload_len + payload_len % 2, 0);
    }
    let mut body = b"WEBP".to_vec();
    if animated {
        chunk(&mut body, b"VP8X", 10);
        body[12] = 0x02;
        chunk(&mut body, b"ANIM", 6);
    }
    let rest = size.checked_sub(8 + body.len() + 8).expect("room for the headers");
    chunk(&mut body, b"VP8 ", rest - rest % 2);
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    file.extend_from_slice(&body);
    file.resize(size, 0);
    file
}

/// The request body of one example of Meta's collection (`shared/reference/meta-examples/
/// requests_and_responses.json`), by section and name, so a test sends Meta's own bytes rather than a
/// retyped copy of them.
pub fn meta_example_body(section: &str, name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/meta-examples/requests_and_responses.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path} (shared/ must sit beside the repository): {e}"));
    let all: Value = serde_json::from_str(&text).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["section"] == section && e["name"] == name)
        .unwrap_or_else(|| panic!("no example {section} / {name}"))["body"]
        .clone()
}
