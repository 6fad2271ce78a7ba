//! The recording test server, the reference files, and assertions shared by the client tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use wabridge_cloud::{ClientBuilder, DEFAULT_USER_AGENT};
use wabridge_types::signature::appsecret_proof;

pub const TOKEN: &str = "EAAG-test-token-7f3c9d";
pub const APP_SECRET: &str = "app-secret-for-tests";
pub const VERSION: &str = "v23.0";
pub const PHONE_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The query without `appsecret_proof`, sorted.
    pub fn query_without_proof(&self) -> Vec<(String, String)> {
        let mut q: Vec<_> = self.query.iter().filter(|(k, _)| k != "appsecret_proof").cloned().collect();
        q.sort();
        q
    }

    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

struct Canned {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    delay: Option<Duration>,
    headers: Vec<(&'static str, &'static str)>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    answers: Mutex<VecDeque<Canned>>,
}

/// A server on 127.0.0.1:0 answering queued responses in order (418 when none is queued).
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockServer {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a JSON answer.
    pub fn reply(&self, status: u16, body: &Value) -> &Self {
        self.reply_raw(status, serde_json::to_vec(body).unwrap(), "application/json")
    }

    /// Queues an answer with any body.
    pub fn reply_raw(&self, status: u16, body: Vec<u8>, content_type: &'static str) -> &Self {
        let canned = Canned { status, body, content_type, delay: None, headers: Vec::new() };
        self.shared.answers.lock().unwrap().push_back(canned);
        self
    }

    /// Queues a JSON answer with extra headers.
    pub fn reply_with_headers(
        &self,
        status: u16,
        body: &Value,
        headers: &[(&'static str, &'static str)],
    ) -> &Self {
        let body = serde_json::to_vec(body).unwrap();
        let canned =
            Canned { status, body, content_type: "application/json", delay: None, headers: headers.to_vec() };
        self.shared.answers.lock().unwrap().push_back(canned);
        self
    }

    /// Queues an answer sent only after `delay` (to provoke a client timeout).
    pub fn reply_late(&self, delay: Duration, status: u16, body: &Value) -> &Self {
        let body = serde_json::to_vec(body).unwrap();
        let canned = Canned {
            status,
            body,
            content_type: "application/json",
            delay: Some(delay),
            headers: Vec::new(),
        };
        self.shared.answers.lock().unwrap().push_back(canned);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }

    /// A builder pointed at this server, with the test token and app secret.
    pub fn client(&self) -> ClientBuilder {
        wabridge_cloud::Client::builder()
            .base_url(self.url())
            .access_token(TOKEN)
            .app_secret(APP_SECRET)
            .no_proxy()
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let query = parts.uri.query().map(url_pairs).unwrap_or_default();
    shared.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
    });
    let canned = shared.answers.lock().unwrap().pop_front();
    match canned {
        Some(c) => {
            if let Some(delay) = c.delay {
                tokio::time::sleep(delay).await;
            }
            let status = StatusCode::from_u16(c.status).unwrap();
            let mut response = (status, [("content-type", c.content_type)], c.body).into_response();
            for (name, value) in c.headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        None => StatusCode::IM_A_TEAPOT.into_response(),
    }
}

/// Decodes `a=1&b=2` into pairs.
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Asserts what every Graph call carries: method, path, bearer token, user agent, the proof for the test
/// token, and no token anywhere in the URL.
pub fn assert_graph_call(req: &Recorded, method: &str, path: &str) {
    assert_eq!(req.method, method, "method of {req:?}");
    assert_eq!(req.path, path);
    assert_eq!(req.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(req.header("user-agent"), Some(DEFAULT_USER_AGENT));
    assert_eq!(req.query_value("appsecret_proof"), Some(appsecret_proof(APP_SECRET, TOKEN).as_str()));
    assert!(!req.path.contains(TOKEN));
    assert!(req.query.iter().all(|(k, v)| !v.contains(TOKEN) && k != "access_token"));
}

/// Asserts a JSON request: content type and body.
pub fn assert_json_body(req: &Recorded, expected: &Value) {
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(&req.json(), expected);
}

/// The path of `/{version}/…` for segments.
pub fn graph_path(segments: &[&str]) -> String {
    format!("/{VERSION}/{}", segments.join("/"))
}

/// A file of `shared/reference`, parsed.
pub fn reference_json(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference/");
    let text = std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("reading {name} (shared/ must sit beside the repository): {e}"));
    serde_json::from_str(&text).unwrap()
}

/// One example of `meta-examples/requests_and_responses.json`, by section and name.
#[derive(Debug, Clone)]
pub struct Example {
    pub method: String,
    pub url: String,
    pub body: Value,
    pub response: Value,
}

impl Example {
    pub fn find(section: &str, name: &str) -> Self {
        let all = reference_json("meta-examples/requests_and_responses.json");
        let e = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["section"] == section && e["name"] == name)
            .unwrap_or_else(|| panic!("no example {section} / {name}"));
        let response = e["responses"]
            .as_array()
            .and_then(|r| r.iter().rev().find(|r| r["body"].is_object()))
            .map(|r| r["body"].clone())
            .unwrap_or(Value::Null);
        Self {
            method: e["method"].as_str().unwrap().to_owned(),
            url: e["url"].as_str().unwrap().to_owned(),
            body: e["body"].clone(),
            response,
        }
    }

    /// The example's path and sorted query with the placeholders replaced (`{{Version}}` always, the rest
    /// from `subs`); a trailing slash of the path is dropped.
    pub fn path_and_query(&self, subs: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let mut url = self.url.replace("{{Version}}", VERSION);
        for (from, to) in subs {
            url = url.replace(from, to);
        }
        let rest = url.strip_prefix("https://graph.facebook.com").unwrap();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut pairs = if query.is_empty() { Vec::new() } else { url_pairs(query) };
        pairs.sort();
        (path.trim_end_matches('/').to_owned(), pairs)
    }

    /// Asserts that a recorded request has the example's path and query (besides `appsecret_proof`).
    pub fn assert_target(&self, req: &Recorded, subs: &[(&str, &str)]) {
        let (path, query) = self.path_and_query(subs);
        assert_eq!(req.path, path);
        assert_eq!(req.query_without_proof(), query);
    }
}
