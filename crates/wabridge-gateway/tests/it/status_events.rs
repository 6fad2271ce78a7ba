//! What applications see of their messages' statuses: their own callback data given back (events API,
//! WebSocket frames and callbacks), and the On-Premises `sent_status` setting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{NUMBER, Pair, config, read_with_three_statuses, sandbox_config, template};

each_backend!(application_callback_data_comes_back_in_status_events, sent_status_false_hides_sent_statuses,);

const WAIT: Duration = Duration::from_secs(20);

/// Bodies POSTed to a test callback endpoint.
#[derive(Clone, Default)]
struct Bodies(Arc<Mutex<Vec<Value>>>);

impl Bodies {
    /// Serves a callback endpoint; returns its URL.
    async fn serve(&self) -> String {
        async fn take(State(b): State<Bodies>, Json(body): Json<Value>) {
            b.0.lock().unwrap().push(body);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/hook", post(take)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// `(status, the status object)` of every On-Premises-shaped status body received.
    fn statuses(&self) -> Vec<(String, Value)> {
        let bodies = self.0.lock().unwrap();
        bodies
            .iter()
            .filter_map(|b| b["statuses"].get(0).cloned())
            .map(|s| (s["status"].as_str().unwrap_or_default().to_owned(), s))
            .collect()
    }
}

/// Adds an On-Premises-shaped callback for status events to `url`.
async fn add_callback(pair: &Pair, url: &str) {
    let resp = pair
        .http
        .post(format!("{}/v1/callbacks", pair.url))
        .bearer_auth(&pair.key)
        .json(&json!({"url": url, "secret": "callback-secret", "shape": "onprem", "events": ["status"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// The status events of the log: `(status, the status object)`.
async fn logged_statuses(pair: &Pair) -> Vec<(String, Value)> {
    let page: Value = pair.get_json("/v1/events?kind=status").await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = e["payload"]["statuses"][0].clone();
            (s["status"].as_str().unwrap().to_owned(), s)
        })
        .collect()
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn application_callback_data_comes_back_in_status_events(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let callbacks = Bodies::default();
    add_callback(&pair, &callbacks.serve().await).await;
    let mut with_data = template(NUMBER, "16315550201");
    with_data["biz_opaque_callback_data"] = json!("order-42");
    let (code, r) = pair.send(&with_data).await;
    assert_eq!(code, 201, "{r}");
    let ours = r["messages"][0]["id"].as_str().unwrap().to_owned();
    let (code, r) = pair.send(&template(NUMBER, "16315550202")).await;
    assert_eq!(code, 201, "{r}");
    let bare = r["messages"][0]["id"].as_str().unwrap().to_owned();
    let m = pair.wait_message(&ours, WAIT, "read with three statuses", read_with_three_statuses).await;
    let wamid = m["wamid"].as_str().unwrap().to_owned();
    pair.wait_message(&bare, WAIT, "read with three statuses", read_with_three_statuses).await;

    // Events API (and so WebSocket frames, the same frame): the gateway id where Meta put it, the wamid, and
    // the application's own data beside them.
    let statuses = logged_statuses(&pair).await;
    assert_eq!(statuses.len(), 6, "{statuses:?}");
    for (_, s) in &statuses {
        let gateway_id = s["biz_opaque_callback_data"].as_str().unwrap();
        assert_eq!(s["wabridge"]["message_id"], gateway_id, "{s}");
        if gateway_id == ours {
            assert_eq!(s["wabridge"]["biz_opaque_callback_data"], "order-42", "{s}");
            assert_eq!(s["id"], wamid.as_str());
        } else {
            assert_eq!(gateway_id, bare);
            assert!(s["wabridge"]["biz_opaque_callback_data"].is_null(), "{s}");
        }
    }
    // Callbacks too.
    wait_for("six status callbacks", || callbacks.statuses().len() == 6).await;
    let mine: Vec<Value> = callbacks
        .statuses()
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s["wabridge"]["message_id"] == ours)
        .collect();
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|s| s["wabridge"]["biz_opaque_callback_data"] == "order-42"), "{mine:?}");
    // In the On-Premises shape, as that API sent them: the id `POST /v1/messages` answered, Meta's wamid
    // beside it, `"type":"message"`, and the application's own callback data.
    for s in &mine {
        assert_eq!(
            (&s["id"], &s["wamid"], &s["type"]),
            (&json!(ours), &json!(wamid), &json!("message")),
            "{s}"
        );
        assert_eq!(s["biz_opaque_callback_data"], "order-42", "{s}");
    }
    pair.stop().await;
}

async fn sent_status_false_hides_sent_statuses(db: TestDb) {
    let mut config = config(&db);
    config.outbound.sent_status = false;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let callbacks = Bodies::default();
    add_callback(&pair, &callbacks.serve().await).await;
    let (code, r) = pair.send(&template(NUMBER, "16315550301")).await;
    assert_eq!(code, 201, "{r}");
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    // `sent` still moves the message forward and is in its timeline.
    let m = pair.wait_message(&id, WAIT, "read with three statuses", read_with_three_statuses).await;
    let timeline: Vec<&str> =
        m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["sent", "delivered", "read"]);
    // Applications see delivered and read only: events API and callbacks.
    let mut seen: Vec<String> = logged_statuses(&pair).await.into_iter().map(|(s, _)| s).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["delivered", "read"]);
    wait_for("two status callbacks", || callbacks.statuses().len() >= 2).await;
    // Give a `sent` callback, if one were coming, time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut called: Vec<String> = callbacks.statuses().into_iter().map(|(s, _)| s).collect();
    called.sort_unstable();
    assert_eq!(called, ["delivered", "read"]);
    pair.stop().await;
}
