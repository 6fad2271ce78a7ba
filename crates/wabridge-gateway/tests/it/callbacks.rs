//! Application callbacks, on both backends: a receiver that is down, then answers 500, then times out, then
//! comes back gets everything in order per contact, also across a gateway restart; signatures and shapes;
//! the API (create, list, status, delete; a filter on a kind no event has is refused); failed events and their
//! replay; the hook on this path too. A
//! callback changed through one instance is never served with its old settings by another, and a change of
//! the application settings that fails loses none of the callback's undelivered events.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use wabridge_gateway::GatewayBuilder;
use wabridge_gateway::callbacks::signing;
use wabridge_gateway::config::{CallbackConfig, CallbackShape, Config};
use wabridge_gateway::store::{CallbackRecord, NewDelivery};

use crate::events::{
    NUMBER_ID, TOKEN, TestHook, WABA, commit_messages, config as events_config, status_body, submit,
};
use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway;

each_backend!(
    receiver_down_then_failing_then_back_gets_everything_in_order,
    requests_are_signed_and_shaped,
    api_manages_callbacks_and_reports_status,
    failed_events_are_replayed,
    a_callback_created_through_one_instance_is_served_by_another,
    a_setting_changed_through_one_instance_applies_on_another,
    a_redirect_is_a_failed_attempt,
    a_failing_contact_does_not_fill_the_window,
    the_backlog_gauge_counts_what_is_not_queued_yet,
    the_store_refuses_a_worker_holding_a_replaced_callback,
    a_callback_changed_through_one_instance_is_not_served_with_the_old_url_by_another,
    a_failed_settings_change_loses_no_undelivered_event,
    a_callback_filtering_on_an_unknown_kind_is_refused,
);

const SECRET: &str = "callback-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Error500,
    Hang,
    /// 301 to a page that answers any GET with 200.
    Redirect,
    /// 500 for the events of contact 111, the others accepted.
    FailFor111,
}

#[derive(Debug)]
struct Received {
    seq: i64,
    contact: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Debug)]
struct Sink {
    mode: Mutex<Mode>,
    attempts: Mutex<u64>,
    accepted: Mutex<Vec<Received>>,
}

/// A test endpoint receiving callbacks; its answers follow its mode.
#[derive(Debug, Clone)]
struct CallbackReceiver {
    sink: Arc<Sink>,
    addr: SocketAddr,
}

impl CallbackReceiver {
    /// Serves on `addr` (port 0: any).
    async fn start(addr: SocketAddr, mode: Mode) -> Self {
        let sink = Arc::new(Sink {
            mode: Mutex::new(mode),
            attempts: Mutex::new(0),
            accepted: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .route("/moved", axum::routing::any(|| async { StatusCode::OK }))
            .with_state(sink.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { sink, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set_mode(&self, mode: Mode) {
        *self.sink.mode.lock().unwrap() = mode;
    }

    fn attempts(&self) -> u64 {
        *self.sink.attempts.lock().unwrap()
    }

    fn accepted_seqs(&self) -> BTreeSet<i64> {
        self.sink.accepted.lock().unwrap().iter().map(|r| r.seq).collect()
    }

    /// Waits until `done` holds (checked at every request and every 20 ms), or panics after `within`.
    async fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    *sink.attempts.lock().unwrap() += 1;
    let mode = *sink.mode.lock().unwrap();
    let status = match mode {
        Mode::Redirect => {
            return (StatusCode::MOVED_PERMANENTLY, [(axum::http::header::LOCATION, "/moved")])
                .into_response();
        }
        Mode::Error500 => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            StatusCode::SERVICE_UNAVAILABLE
        }
        Mode::Ok | Mode::FailFor111 => {
            let seq = headers[signing::EVENT_ID_HEADER].to_str().unwrap().parse().unwrap();
            let json: Value = serde_json::from_slice(&body).unwrap();
            let contact = json["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"]
                .as_str()
                .or_else(|| json["contacts"][0]["wa_id"].as_str())
                .map(str::to_owned);
            if mode == Mode::FailFor111 && contact.as_deref() == Some("111") {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            sink.accepted.lock().unwrap().push(Received { seq, contact, headers, body });
            StatusCode::OK
        }
    };
    status.into_response()
}

/// The events test configuration with fast delivery timings and one callback to `url`.
fn config(db: &TestDb, url: &str, shape: CallbackShape) -> Config {
    let mut config = events_config(db);
    config.delivery.initial_backoff_ms = 10;
    config.delivery.max_backoff_ms = 100;
    config.delivery.request_timeout_ms = 300;
    config.delivery.poll_interval_ms = 50;
    config.callbacks = vec![CallbackConfig {
        id: Some("app".into()),
        url: url.to_owned(),
        secret: SECRET.into(),
        shape,
        max_concurrent: 4,
        events: Vec::new(),
        phone_number_id: None,
    }];
    config
}

/// A free local address (bound, then released).
async fn free_addr() -> SocketAddr {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

async fn receiver_down_then_failing_then_back_gets_everything_in_order(db: TestDb) {
    let addr = free_addr().await;
    let url = format!("http://{addr}/hook");
    let gw = gateway::start(config(&db, &url, CallbackShape::Cloud)).await;
    let contacts = ["111", "222", "333"];
    commit_messages(&gw, "a", 30, 5, NUMBER_ID, &contacts).await;
    // Down: connections refused for a while.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Then it answers 500…
    let receiver = CallbackReceiver::start(addr, Mode::Error500).await;
    receiver.wait_until(Duration::from_secs(10), "500 attempts", |r| r.attempts() >= 6).await;
    // …then it hangs past the request timeout…
    receiver.set_mode(Mode::Hang);
    let before = receiver.attempts();
    receiver.wait_until(Duration::from_secs(10), "timed-out attempts", |r| r.attempts() >= before + 4).await;
    // …and the gateway restarts meanwhile; more events arrive after the restart.
    gw.shutdown().await.unwrap();
    let gw = gateway::start(config(&db, &url, CallbackShape::Cloud)).await;
    commit_messages(&gw, "b", 30, 6, NUMBER_ID, &contacts).await;
    assert!(receiver.accepted_seqs().is_empty());
    let status = callback_status(&gw.url(), "app").await;
    assert!(status["pending"].as_u64().unwrap() + status["not_yet_queued"].as_u64().unwrap() > 0, "{status}");
    // Back: everything arrives.
    receiver.set_mode(Mode::Ok);
    receiver.wait_until(Duration::from_secs(20), "all 60 events", |r| r.accepted_seqs().len() == 60).await;
    assert_eq!(receiver.accepted_seqs(), (1..=60).collect());
    // In order per contact (at least once: a repeat may only follow its own first delivery).
    let mut per_contact: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in receiver.sink.accepted.lock().unwrap().iter() {
        per_contact.entry(r.contact.clone().unwrap()).or_default().push(r.seq);
    }
    assert_eq!(per_contact.len(), 3);
    for (contact, seqs) in per_contact {
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "contact {contact}: out of order {seqs:?}");
    }
    let m = &gw.state().metrics;
    tokio::time::timeout(Duration::from_secs(5), async {
        while callback_status(&gw.url(), "app").await["pending"] != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(m.callback_attempts.get("ok") >= 60 - 30, "attempts after the restart");
    assert!(m.render().contains("wabridge_callback_backlog"));
    gw.shutdown().await.unwrap();
}

async fn callback_status(base: &str, id: &str) -> Value {
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/v1/callbacks/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["callbacks"][0]["status"].clone()
}

fn now_secs() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

async fn requests_are_signed_and_shaped(db: TestDb) {
    let cloud = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
    let onprem = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
    let mut config = config(&db, &cloud.url(), CallbackShape::Cloud);
    config.callbacks.push(CallbackConfig {
        id: None,
        url: onprem.url(),
        secret: "onprem-secret".into(),
        shape: CallbackShape::Onprem,
        max_concurrent: 6,
        events: Vec::new(),
        phone_number_id: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = GatewayBuilder::new(config).event_hook(TestHook).start(listener).await.unwrap();
    commit_messages(&gw, "s", 3, 3, NUMBER_ID, &["111", "666", "222"]).await;
    submit(&gw, &status_body("wamid.out.1", "delivered", "111")).await;
    // The hook suppressed 666's message on this path too: seqs 1, 3, 4.
    cloud.wait_until(Duration::from_secs(10), "cloud deliveries", |r| r.accepted_seqs().len() == 3).await;
    onprem.wait_until(Duration::from_secs(10), "onprem deliveries", |r| r.accepted_seqs().len() == 3).await;
    assert_eq!(cloud.accepted_seqs(), BTreeSet::from([1, 3, 4]));
    for r in cloud.sink.accepted.lock().unwrap().iter() {
        let header = r.headers[signing::SIGNATURE_HEADER].to_str().unwrap();
        signing::verify(header, &r.body, SECRET.as_bytes(), now_secs(), 300).unwrap();
        let hub = r.headers[wabridge_types::signature::SIGNATURE_HEADER].to_str().unwrap();
        wabridge_types::signature::verify(Some(hub), &r.body, &[SECRET.as_bytes()]).unwrap();
        let json: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["object"], "whatsapp_business_account");
        assert_eq!(json["entry"][0]["id"], WABA);
        assert_eq!(json["entry"][0]["changes"][0]["field"], "messages");
        assert_eq!(json["entry"][0]["changes"][0]["value"]["hooked"], true);
    }
    let by_seq = {
        let accepted = onprem.sink.accepted.lock().unwrap();
        for r in accepted.iter() {
            let header = r.headers[signing::SIGNATURE_HEADER].to_str().unwrap();
            signing::verify(header, &r.body, b"onprem-secret", now_secs(), 300).unwrap();
            assert!(signing::verify(header, &r.body, SECRET.as_bytes(), now_secs(), 300).is_err());
            assert!(r.headers.get(wabridge_types::signature::SIGNATURE_HEADER).is_none());
        }
        accepted
            .iter()
            .map(|r| (r.seq, serde_json::from_slice::<Value>(&r.body).unwrap()))
            .collect::<BTreeMap<i64, Value>>()
    };
    assert_eq!(by_seq[&1]["messages"][0]["id"], "wamid.s.0");
    assert_eq!(by_seq[&1]["contacts"][0]["wa_id"], "111");
    assert!(by_seq[&1].get("entry").is_none() && by_seq[&1].get("metadata").is_none());
    assert_eq!(by_seq[&4]["statuses"][0]["status"], "delivered");
    assert!(by_seq[&4].get("messages").is_none());
    gw.shutdown().await.unwrap();
}

async fn api_manages_callbacks_and_reports_status(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
    let mut config = events_config(&db);
    config.delivery.poll_interval_ms = 50;
    let gw = gateway::start(config.clone()).await;
    let client = reqwest::Client::new();
    let base = format!("{}/v1/callbacks", gw.url());
    commit_messages(&gw, "before", 2, 2, NUMBER_ID, &["111"]).await;

    assert_eq!(client.get(&base).send().await.unwrap().status(), 401);
    let bad = client
        .post(&base)
        .bearer_auth(TOKEN)
        .json(&json!({"url": "ftp://x", "secret": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["errors"][0]["code"], 1009);
    let created = client
        .post(&base)
        .bearer_auth(TOKEN)
        .json(&json!({"id": "statuses", "url": receiver.url(), "secret": "s3", "events": ["status"], "max_concurrent": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let again = client
        .post(&base)
        .bearer_auth(TOKEN)
        .json(&json!({"id": "statuses", "url": receiver.url(), "secret": "s3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let list: Value = client.get(&base).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["callbacks"][0]["id"], "statuses");
    assert!(list["callbacks"][0].get("secret").is_none(), "secrets are never listed");

    // Only statuses, and only those after its creation.
    commit_messages(&gw, "after", 2, 2, NUMBER_ID, &["111"]).await;
    submit(&gw, &status_body("wamid.out.7", "read", "111")).await;
    receiver.wait_until(Duration::from_secs(10), "the status", |r| r.accepted_seqs().len() == 1).await;
    assert_eq!(receiver.accepted_seqs(), BTreeSet::from([5]));
    // Persisted: still there after a restart.
    gw.shutdown().await.unwrap();
    let gw = gateway::start(config).await;
    let status = callback_status(&gw.url(), "statuses").await;
    assert_eq!((status["pending"].as_u64(), status["failed"].as_u64()), (Some(0), Some(0)), "{status}");
    assert_eq!(status["queued_through_seq"], 5);
    let deleted =
        client.delete(format!("{}/v1/callbacks/statuses", gw.url())).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let gone =
        client.get(format!("{}/v1/callbacks/statuses", gw.url())).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.json::<Value>().await.unwrap()["errors"][0]["code"], 1006);
    gw.shutdown().await.unwrap();
}

async fn failed_events_are_replayed(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Error500).await;
    let mut config = config(&db, &receiver.url(), CallbackShape::Cloud);
    config.delivery.max_age_ms = 300;
    let gw = gateway::start(config).await;
    commit_messages(&gw, "f", 4, 4, NUMBER_ID, &["111", "222"]).await;
    let base = gw.url();
    tokio::time::timeout(Duration::from_secs(10), async {
        while callback_status(&base, "app").await["failed"] != 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the events are marked failed after their maximum age");
    assert_eq!(gw.state().metrics.callback_failed.get(), 4);
    // Failed events no longer hold anything back, and are kept (retention must not prune them).
    let store = &gw.state().store;
    assert_eq!(store.oldest_needed_seq().await.unwrap(), Some(5));
    let mut retention = gw.state().config.retention.clone();
    retention.max_age_secs = 0;
    wabridge_gateway::retention::prune_once(store, &retention, Some(5)).await.unwrap();
    let kept = store.events_after(0, &wabridge_gateway::store::EventFilter::default(), 10).await.unwrap();
    assert_eq!(kept.len(), 4);
    receiver.set_mode(Mode::Ok);
    let replayed: Value = reqwest::Client::new()
        .post(format!("{base}/v1/callbacks/app/replay"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["requeued"], 4);
    receiver
        .wait_until(Duration::from_secs(10), "the replayed events", |r| r.accepted_seqs().len() == 4)
        .await;
    assert_eq!(receiver.accepted_seqs(), (1..=4).collect());
    gw.shutdown().await.unwrap();
}

/// Two instances on one database: a callback created through the API of one is served by the other too (here
/// once the first has stopped).
async fn a_callback_created_through_one_instance_is_served_by_another(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
    let mut config = events_config(&db);
    config.delivery.poll_interval_ms = 50;
    let first = gateway::start(config.clone()).await;
    let second = gateway::start(config).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/callbacks", first.url()))
        .bearer_auth(TOKEN)
        .json(&json!({"id": "shared", "url": receiver.url(), "secret": "s", "events": ["status"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    first.shutdown().await.unwrap();
    submit(&second, &status_body("wamid.shared.1", "delivered", "111")).await;
    receiver
        .wait_until(Duration::from_secs(20), "the other instance's delivery", |r| {
            r.accepted_seqs().len() == 1
        })
        .await;
    second.shutdown().await.unwrap();
}

/// `sent_status` switched off through one instance's API: the other instance stops showing `sent` statuses
/// within a few seconds, and takes the default back when the settings are reset.
async fn a_setting_changed_through_one_instance_applies_on_another(db: TestDb) {
    let config = events_config(&db);
    let first = gateway::start(config.clone()).await;
    let second = gateway::start(config).await;
    let client = reqwest::Client::new();
    let settings = format!("{}/v1/settings/application", first.url());
    let patched =
        client.patch(&settings).bearer_auth(TOKEN).json(&json!({"sent_status": false})).send().await.unwrap();
    assert_eq!(patched.status(), 200);
    let sent_shown = |gw: &wabridge_gateway::Gateway| {
        let probe = wabridge_gateway::store::StoredEvent {
            seq: 1,
            dedupe_key: "s".into(),
            kind: "status".into(),
            field: "messages".into(),
            waba_id: "w".into(),
            phone_number_id: None,
            contact: None,
            payload: r#"{"statuses":[{"id":"wamid.x","status":"sent"}]}"#.into(),
            raw_id: 1,
            created_at: std::time::SystemTime::now(),
        };
        gw.state().hooks.apply(probe).is_some()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sent_shown(&second) {
        assert!(tokio::time::Instant::now() < deadline, "the other instance still shows sent statuses");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reset = client.delete(&settings).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    while !sent_shown(&second) {
        assert!(tokio::time::Instant::now() < deadline, "the reset did not reach the other instance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The settings' callback id is reserved: the callbacks API refuses it.
    let taken = client
        .post(format!("{}/v1/callbacks", second.url()))
        .bearer_auth(TOKEN)
        .json(&json!({"id": "application", "url": "http://127.0.0.1:9/x", "secret": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 400);
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

/// A callback URL answering with a redirect: not followed (the POST would arrive as a GET without its body,
/// and the 200 of the page it leads to would count as delivered); the event stays pending and arrives once
/// the URL answers itself.
async fn a_redirect_is_a_failed_attempt(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Redirect).await;
    let gw = gateway::start(config(&db, &receiver.url(), CallbackShape::Cloud)).await;
    commit_messages(&gw, "r", 1, 1, NUMBER_ID, &["111"]).await;
    receiver.wait_until(Duration::from_secs(10), "redirected attempts", |r| r.attempts() >= 3).await;
    let status = callback_status(&gw.url(), "app").await;
    assert_eq!(status["pending"], 1, "{status}");
    receiver.set_mode(Mode::Ok);
    receiver.wait_until(Duration::from_secs(10), "the event", |r| r.accepted_seqs().len() == 1).await;
    gw.shutdown().await.unwrap();
}

/// One contact's event keeps failing while that contact keeps writing: its later events wait behind it, but
/// they do not fill the callback's window, so another contact's event is still queued and delivered.
async fn a_failing_contact_does_not_fill_the_window(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::FailFor111).await;
    let mut config = config(&db, &receiver.url(), CallbackShape::Cloud);
    config.delivery.window = 4;
    let gw = gateway::start(config).await;
    // Five windows of one failing contact's events (more than the four that used to fill it whatever held
    // them back): held back, they do not fill the window.
    commit_messages(&gw, "stuck", 20, 1, NUMBER_ID, &["111"]).await;
    receiver.wait_until(Duration::from_secs(10), "failed attempts", |r| r.attempts() >= 2).await;
    commit_messages(&gw, "free", 1, 1, NUMBER_ID, &["222"]).await;
    receiver
        .wait_until(Duration::from_secs(30), "the other contact's event", |r| r.accepted_seqs().contains(&21))
        .await;
    let status = callback_status(&gw.url(), "app").await;
    assert!(status["held_back"].as_u64().unwrap() >= 1, "{status}");
    gw.shutdown().await.unwrap();
}

/// With the receiver down, the queue stops at the window and the rest waits in the log: the backlog gauge
/// counts both, as the API's `backlog` does.
async fn the_backlog_gauge_counts_what_is_not_queued_yet(db: TestDb) {
    let receiver = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Error500).await;
    let mut config = config(&db, &receiver.url(), CallbackShape::Cloud);
    config.delivery.window = 2;
    let gw = gateway::start(config).await;
    // Ten contacts: each one's event can go next, so two of them fill the window.
    let contacts: Vec<String> = (0..10).map(|i| format!("1631555{i:04}")).collect();
    let contacts: Vec<&str> = contacts.iter().map(String::as_str).collect();
    commit_messages(&gw, "down", 10, 1, NUMBER_ID, &contacts).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = gw.state().metrics.render();
        if metrics.lines().any(|l| l == "wabridge_callback_backlog 10") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the backlog never reached 10:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = callback_status(&gw.url(), "app").await;
    assert_eq!((status["pending"].as_u64(), status["backlog"].as_u64()), (Some(2), Some(10)), "{status}");
    gw.shutdown().await.unwrap();
}

fn record(id: &str, url: &str, kinds: &[&str], created_at: SystemTime) -> CallbackRecord {
    CallbackRecord {
        id: id.to_owned(),
        url: url.to_owned(),
        secret: "s".to_owned(),
        shape: "cloud".to_owned(),
        max_concurrent: 4,
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        phone_number_id: None,
        source: "api".to_owned(),
        scan_seq: 0,
        created_at,
    }
}

/// A worker holds the callback record it read. Once the stored one was replaced (another URL), changed in
/// place (another secret) or deleted and created again with the same settings, the store refuses to queue or
/// claim for the record held, whatever the cursor says; the record read again works.
async fn the_store_refuses_a_worker_holding_a_replaced_callback(db: TestDb) {
    let store = db.open().await;
    let at = SystemTime::now();
    let lease = || SystemTime::now() + Duration::from_secs(30);
    let delivery = |seq: i64| NewDelivery { seq, contact_key: format!("c{seq}"), event_at: at };
    // Kinds with an empty entry: what a worker holds is compared with what is stored, text for text.
    assert!(
        store
            .put_callback(&record("moving", "http://127.0.0.1:9/one", &["message", ""], at), false)
            .await
            .unwrap()
    );
    let first = store.callback("moving").await.unwrap().unwrap();
    assert!(store.queue_deliveries_for(&first, 0, 5, &[delivery(5)]).await.unwrap());
    assert_eq!(store.claim_deliveries_for(&first, 10, lease()).await.unwrap().map(|c| c.len()), Some(1));
    // Nothing left to claim is not a change.
    assert_eq!(store.claim_deliveries_for(&first, 10, lease()).await.unwrap().map(|c| c.len()), Some(0));

    // Another URL in its place, from the same cursor: the old record may neither queue nor claim.
    let mut second = record("moving", "http://127.0.0.1:9/two", &[], at + Duration::from_millis(5));
    second.scan_seq = 5;
    store.replace_callback(&second).await.unwrap();
    assert!(!store.queue_deliveries_for(&first, 5, 6, &[delivery(6)]).await.unwrap());
    let second = store.callback("moving").await.unwrap().unwrap();
    assert_eq!((second.url.as_str(), second.scan_seq), ("http://127.0.0.1:9/two", 5));
    assert_eq!(store.delivery_stats("moving").await.unwrap().pending, 0, "the old receiver's rows went");
    assert!(store.queue_deliveries_for(&second, 5, 6, &[delivery(6)]).await.unwrap());
    assert_eq!(store.claim_deliveries_for(&first, 10, lease()).await.unwrap(), None);
    let claimed = store.claim_deliveries_for(&second, 10, lease()).await.unwrap().unwrap();
    assert_eq!(claimed.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![6]);

    // Changed in place (the rows stay): refused to the record read before.
    let mut third = second.clone();
    third.secret = "another".to_owned();
    store.put_callback(&third, true).await.unwrap();
    store.delivery_failed("moving", 6, None, SystemTime::now(), "HTTP 500", false).await.unwrap();
    assert_eq!(store.claim_deliveries_for(&second, 10, lease()).await.unwrap(), None);
    assert!(!store.queue_deliveries_for(&second, 6, 7, &[delivery(7)]).await.unwrap());
    let third = store.callback("moving").await.unwrap().unwrap();
    assert_eq!(store.claim_deliveries_for(&third, 10, lease()).await.unwrap().map(|c| c.len()), Some(1));

    // Deleted and created again with the same settings: another callback all the same.
    store.delete_callback("moving").await.unwrap();
    let mut fourth = third.clone();
    fourth.created_at = at + Duration::from_secs(1);
    assert!(store.put_callback(&fourth, false).await.unwrap());
    assert!(!store.queue_deliveries_for(&third, 6, 7, &[delivery(7)]).await.unwrap());
    assert_eq!(store.claim_deliveries_for(&third, 10, lease()).await.unwrap(), None);
    let fourth = store.callback("moving").await.unwrap().unwrap();
    assert!(store.queue_deliveries_for(&fourth, 6, 7, &[delivery(7)]).await.unwrap());
    store.delete_callback("moving").await.unwrap();
    assert_eq!(store.claim_deliveries_for(&fourth, 10, lease()).await.unwrap(), None, "deleted");
    store.close().await;
}

/// Several instances on one database, each serving every callback: a callback re-created through one
/// instance with another URL (deleted and created again under its id, or the `webhooks.url` setting changed)
/// while another instance's worker holds the old record. The events committed right after the change (on the
/// instance with the stale worker, which sees them first) all reach the new URL, and none the old one.
async fn a_callback_changed_through_one_instance_is_not_served_with_the_old_url_by_another(db: TestDb) {
    let mut config = events_config(&db);
    config.delivery.poll_interval_ms = 50;
    config.delivery.initial_backoff_ms = 10;
    config.delivery.max_backoff_ms = 100;
    let changer = gateway::start(config.clone()).await;
    let stale = gateway::start(config).await;
    let client = reqwest::Client::new();
    let contacts = ["111", "222", "333", "444", "555", "666"];
    let mut seq = 0;
    for round in 0..4 {
        let old = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
        let new = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
        let through_settings = round % 2 == 1;
        let id = if through_settings { "application" } else { "moving" };
        // Set up through the instance that will hold the old record: its worker starts with it at once.
        if through_settings {
            let set = client
                .patch(format!("{}/v1/settings/application", stale.url()))
                .bearer_auth(TOKEN)
                .json(&json!({"webhooks": {"url": old.url()}}))
                .send()
                .await
                .unwrap();
            assert_eq!(set.status(), 200, "round {round}");
        } else {
            let created = client
                .post(format!("{}/v1/callbacks", stale.url()))
                .bearer_auth(TOKEN)
                .json(&json!({"id": id, "url": old.url(), "secret": "s1"}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201, "round {round}");
        }
        commit_messages(&stale, &format!("before{round}"), 3, 1, NUMBER_ID, &contacts).await;
        let before = seq + 3;
        old.wait_until(Duration::from_secs(20), "the events before the change", |r| {
            (seq + 1..=before).all(|s| r.accepted_seqs().contains(&s))
        })
        .await;

        // The change, through the other instance; the events at once after it.
        if through_settings {
            let changed = client
                .patch(format!("{}/v1/settings/application", changer.url()))
                .bearer_auth(TOKEN)
                .json(&json!({"webhooks": {"url": new.url()}}))
                .send()
                .await
                .unwrap();
            assert_eq!(changed.status(), 200, "round {round}");
        } else {
            let deleted = client
                .delete(format!("{}/v1/callbacks/{id}", changer.url()))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(deleted.status(), 200, "round {round}");
            let created = client
                .post(format!("{}/v1/callbacks", changer.url()))
                .bearer_auth(TOKEN)
                .json(&json!({"id": id, "url": new.url(), "secret": "s2"}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201, "round {round}");
        }
        commit_messages(&stale, &format!("after{round}"), 6, 1, NUMBER_ID, &contacts).await;
        seq = before + 6;
        let late = || old.accepted_seqs().into_iter().filter(|s| *s > before).collect::<Vec<_>>();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !(before + 1..=seq).all(|s| new.accepted_seqs().contains(&s)) {
            assert_eq!(
                late(),
                Vec::<i64>::new(),
                "round {round}: the old URL got events committed after the change"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the new URL did not get them all"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Time for a stale request to arrive, were one sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            late(),
            Vec::<i64>::new(),
            "round {round}: the old URL got events committed after the change"
        );
        // The next round starts from no callback.
        let removed = if through_settings {
            client
                .delete(format!("{}/v1/settings/application", changer.url()))
                .bearer_auth(TOKEN)
                .send()
                .await
        } else {
            client.delete(format!("{}/v1/callbacks/{id}", changer.url())).bearer_auth(TOKEN).send().await
        };
        assert_eq!(removed.unwrap().status(), 200, "round {round}");
    }
    changer.shutdown().await.unwrap();
    stale.shutdown().await.unwrap();
}

/// Writes the test's database refuses from now on, as a database can (a full disk, a lost permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Storing or deleting the application settings.
    Settings,
    /// Changing the URL of a callback, or deleting one.
    CallbackChanges,
}

/// The triggers that refuse each kind of write: (name, table, event, condition).
const REFUSALS: [(Refused, &str, &str, &str, &str); 5] = [
    (Refused::Settings, "refuse_settings_insert", "api_settings", "INSERT", "NEW.name = 'application'"),
    (Refused::Settings, "refuse_settings_update", "api_settings", "UPDATE", "NEW.name = 'application'"),
    (Refused::Settings, "refuse_settings_delete", "api_settings", "DELETE", "OLD.name = 'application'"),
    (Refused::CallbackChanges, "refuse_callback_url", "callbacks", "UPDATE", "NEW.url <> OLD.url"),
    (Refused::CallbackChanges, "refuse_callback_delete", "callbacks", "DELETE", "1 = 1"),
];

/// Makes the test's database refuse `what` (with triggers, made on a connection of the test's own) or, with
/// `None`, lifts every refusal.
async fn refuse(db: &TestDb, what: Option<Refused>) {
    let pg = matches!(db, TestDb::Postgres { .. });
    let statements: Vec<String> = REFUSALS
        .iter()
        .filter_map(|&(kind, name, table, event, when)| match what {
            None if pg => Some(format!("DROP TRIGGER IF EXISTS {name} ON {table}")),
            None => Some(format!("DROP TRIGGER IF EXISTS {name}")),
            Some(refused) if refused != kind => None,
            Some(_) if pg => Some(format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({when}) \
                 EXECUTE FUNCTION refused()"
            )),
            Some(_) => Some(format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({when}) \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )),
        })
        .collect();
    match db {
        TestDb::Sqlite { dir } => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.join("wabridge.db"))
                .busy_timeout(Duration::from_secs(10));
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            for statement in &statements {
                sqlx::query(statement).execute(&mut conn).await.unwrap();
            }
            sqlx::Connection::close(conn).await.unwrap();
        }
        TestDb::Postgres { .. } => {
            let session = crate::settings::session(db).await;
            sqlx::query(
                "CREATE OR REPLACE FUNCTION refused() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            )
            .execute(&session)
            .await
            .unwrap();
            for statement in &statements {
                sqlx::query(statement).execute(&session).await.unwrap();
            }
            session.close().await;
        }
    }
}

/// The `application` callback's receiver is down: two events are pending (the window) and four wait in the
/// log. Changes of the settings that fail — the settings cannot be stored, or the callback cannot be changed
/// — answer an error and lose none of them: the callback keeps its URL, its pending deliveries and its
/// cursor, the stored settings still name it, and once the receiver is back it gets all six.
async fn a_failed_settings_change_loses_no_undelivered_event(db: TestDb) {
    let down = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Error500).await;
    let elsewhere = CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), Mode::Ok).await;
    let mut config = events_config(&db);
    config.delivery.poll_interval_ms = 50;
    config.delivery.initial_backoff_ms = 10;
    config.delivery.max_backoff_ms = 100;
    config.delivery.window = 2;
    let gw = gateway::start(config).await;
    let client = reqwest::Client::new();
    let settings = format!("{}/v1/settings/application", gw.url());
    let call = |method: reqwest::Method, body: Option<Value>| {
        let mut request = client.request(method, &settings).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (code, set) = call(reqwest::Method::PATCH, Some(json!({"webhooks": {"url": down.url()}}))).await;
    assert_eq!(code, 200, "{set}");
    let contacts = ["111", "222", "333", "444", "555", "666"];
    commit_messages(&gw, "kept", 6, 1, NUMBER_ID, &contacts).await;
    let base = gw.url();
    let held = || async {
        let status = callback_status(&base, "application").await;
        (status["pending"].as_u64(), status["backlog"].as_u64(), status["queued_through_seq"].as_i64())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while held().await != (Some(2), Some(6), Some(2)) || down.attempts() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never held: {:?}", held().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for refused in [Refused::Settings, Refused::CallbackChanges] {
        refuse(&db, Some(refused)).await;
        let (code, r) =
            call(reqwest::Method::PATCH, Some(json!({"webhooks": {"url": elsewhere.url()}}))).await;
        assert_eq!(code, 500, "{refused:?}: {r}");
        let (code, r) = call(reqwest::Method::DELETE, None).await;
        assert_eq!(code, 500, "{refused:?}: {r}");
        refuse(&db, None).await;
        assert_eq!(held().await, (Some(2), Some(6), Some(2)), "{refused:?}: the deliveries and the cursor");
        let callback = gw.state().store.callback("application").await.unwrap().unwrap();
        assert_eq!(callback.url, down.url(), "{refused:?}");
        let (_, read) = call(reqwest::Method::GET, None).await;
        assert_eq!(read["settings"]["application"]["webhooks"]["url"], down.url(), "{refused:?}: {read}");
        assert_eq!(
            read["settings"]["application"]["webhooks"]["secret"],
            callback.secret.as_str(),
            "{refused:?}"
        );
    }

    down.set_mode(Mode::Ok);
    down.wait_until(Duration::from_secs(20), "the six events", |r| r.accepted_seqs().len() == 6).await;
    assert_eq!(down.accepted_seqs(), (1..=6).collect());
    assert_eq!(elsewhere.attempts(), 0);
    gw.shutdown().await.unwrap();
}

/// A filter naming no event kind (the On-Premises `messages`) would match nothing while the callback's cursor
/// moves past every event: the API refuses it (400, the usual error shape, naming the value and the kinds) and
/// stores nothing.
async fn a_callback_filtering_on_an_unknown_kind_is_refused(db: TestDb) {
    let gw = gateway::start(events_config(&db)).await;
    let client = reqwest::Client::new();
    let base = format!("{}/v1/callbacks", gw.url());
    let create = |body: Value| {
        let request = client.post(&base).bearer_auth(TOKEN).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    for events in [json!(["messages"]), json!(["message", "statuses"]), json!([""])] {
        let (code, body) =
            create(json!({"id": "typo", "url": "http://127.0.0.1:9/hook", "secret": "s", "events": events}))
                .await;
        assert_eq!(code, 400, "{events}: {body}");
        assert_eq!(body["errors"][0]["code"], 1009, "{events}: {body}");
        let details = body["errors"][0]["details"].as_str().unwrap();
        assert!(details.contains("message, status, payment, error, change, alert"), "{events}: {details}");
        assert!(gw.state().store.callback("typo").await.unwrap().is_none(), "{events}: stored");
    }
    let (_, body) = create(
        json!({"id": "typo", "url": "http://127.0.0.1:9/hook", "secret": "s", "events": ["messages"]}),
    )
    .await;
    assert!(body["errors"][0]["details"].as_str().unwrap().contains("\"messages\""), "{body}");
    let list: Value = client.get(&base).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["callbacks"], json!([]), "{list}");
    // Every kind of the log is one a callback may ask for.
    let (code, body) = create(json!({
        "id": "every-kind", "url": "http://127.0.0.1:9/hook", "secret": "s",
        "events": ["message", "status", "payment", "error", "change", "alert"],
    }))
    .await;
    assert_eq!(code, 201, "{body}");
    gw.shutdown().await.unwrap();
}
