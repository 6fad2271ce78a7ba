//! The webhook router, served on 127.0.0.1:0 and called over HTTP.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wabridge_cloud::webhook::{Event, WebhookConfig, WebhookConfigError, router};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};
use wabridge_types::webhook::{ChangeValue, MessageContent, StatusKind};

use crate::harness::{APP_SECRET, reference_json};

const VERIFY_TOKEN: &str = "my-verify-token";

type Seen = Arc<Mutex<Vec<Event>>>;

/// Serves the router with a handler that records events and fails when `fail` says so.
async fn serve(fail: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = router(WebhookConfig::new(VERIFY_TOKEN, APP_SECRET).unwrap(), move |event: Event| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(event);
            if fail { Err("the store is down") } else { Ok(()) }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/webhook"), seen)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn payload(name: &str) -> Vec<u8> {
    let all = reference_json("meta-examples/webhook_payloads.json");
    serde_json::to_vec(&all[name]["payload"]).unwrap()
}

async fn post(url: &str, body: &[u8], signature: Option<String>) -> u16 {
    let mut request = http().post(url).header("content-type", "application/json").body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn verification_answers_the_challenge() {
    let (url, _) = serve(false).await;
    let ok = http()
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", VERIFY_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    for query in [
        [("hub.mode", "subscribe"), ("hub.challenge", "1"), ("hub.verify_token", "wrong")],
        [("hub.mode", "subscribe"), ("hub.challenge", "1"), ("hub.verify_token", "")],
        [("hub.mode", "unsubscribe"), ("hub.challenge", "1"), ("hub.verify_token", VERIFY_TOKEN)],
    ] {
        let refused = http().get(&url).query(&query).send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 403);
    }
    assert_eq!(http().get(&url).send().await.unwrap().status().as_u16(), 403);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused() {
    let (url, seen) = serve(false).await;
    let body = payload("received_text_message");
    assert_eq!(post(&url, &body, Some(sign(b"another secret", &body))).await, 401);
    assert_eq!(post(&url, &body, None).await, 401);
    assert_eq!(post(&url, &body, Some("sha256=zz".to_owned())).await, 401);
    // Signed, then altered by one byte.
    let signature = sign(APP_SECRET.as_bytes(), &body);
    let mut altered = body.clone();
    altered.push(b' ');
    assert_eq!(post(&url, &altered, Some(signature)).await, 401);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_signed_text_message_reaches_the_handler_typed() {
    let (url, seen) = serve(false).await;
    let body = payload("received_text_message");
    assert_eq!(post(&url, &body, Some(sign(APP_SECRET.as_bytes(), &body))).await, 200);
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    let Event::Message(incoming) = &events[0] else { panic!("{:?}", events[0]) };
    assert!(matches!(&incoming.message.content, MessageContent::Text(_)));
    assert!(incoming.context.phone_number_id.is_some());
    assert!(incoming.context.dedupe_key.starts_with("msg:"));
    assert!(incoming.contact.is_some());
}

#[tokio::test]
async fn statuses_and_other_changes_are_typed() {
    let (url, seen) = serve(false).await;
    let status = payload("message_status_update_notifications");
    assert_eq!(post(&url, &status, Some(sign(APP_SECRET.as_bytes(), &status))).await, 200);
    let other = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "time": 1751247548,
        "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED",
            "message_template_id": 1234567, "message_template_name": "order_update",
            "message_template_language": "en_US", "reason": "NONE"}}]}]});
    let other = serde_json::to_vec(&other).unwrap();
    assert_eq!(post(&url, &other, Some(sign(APP_SECRET.as_bytes(), &other))).await, 200);

    let events = seen.lock().unwrap().clone();
    let statuses: Vec<_> =
        events.iter().filter_map(|e| if let Event::Status(s) = e { Some(s) } else { None }).collect();
    assert!(!statuses.is_empty(), "{events:?}");
    assert!(statuses.iter().any(|s| s.status.status == StatusKind::Sent), "{statuses:?}");
    let Some(Event::Other(change)) = events.last() else { panic!("{events:?}") };
    assert!(matches!(change.value, ChangeValue::TemplateStatus(_)), "{:?}", change.value);
    assert_eq!(change.context.field, "message_template_status_update");
}

#[tokio::test]
async fn a_handler_failure_answers_500() {
    let (url, seen) = serve(true).await;
    let body = payload("received_text_message");
    assert_eq!(post(&url, &body, Some(sign(APP_SECRET.as_bytes(), &body))).await, 500);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_envelope_is_a_bad_request() {
    let (url, seen) = serve(false).await;
    let body = serde_json::to_vec(&Value::from("hello")).unwrap();
    assert_eq!(post(&url, &body, Some(sign(APP_SECRET.as_bytes(), &body))).await, 400);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_valid_reference_payload_is_accepted() {
    let (url, seen) = serve(false).await;
    let all = reference_json("meta-examples/webhook_payloads.json");
    let mut posted = 0;
    for (name, example) in all.as_object().unwrap() {
        let payload = &example["payload"];
        if payload.get("__unparsed_raw__").is_some() {
            continue;
        }
        let body = serde_json::to_vec(payload).unwrap();
        assert_eq!(post(&url, &body, Some(sign(APP_SECRET.as_bytes(), &body))).await, 200, "{name}");
        posted += 1;
    }
    assert_eq!(posted, 13);
    assert!(seen.lock().unwrap().len() >= 13);
}

/// An empty verify token would match `hub.verify_token=`, an empty app secret would accept bodies anyone
/// signs with an empty key: the configuration refuses both.
#[test]
fn empty_verify_token_or_app_secret_is_refused() {
    assert_eq!(WebhookConfig::new("", APP_SECRET).unwrap_err(), WebhookConfigError::EmptyVerifyToken);
    assert_eq!(WebhookConfig::new(VERIFY_TOKEN, "").unwrap_err(), WebhookConfigError::EmptyAppSecret);
    let config = WebhookConfig::new(VERIFY_TOKEN, APP_SECRET).unwrap();
    assert_eq!(config.clone().also_accept_secret("").unwrap_err(), WebhookConfigError::EmptyAppSecret);
    let rotated = config.also_accept_secret("next-secret").unwrap();
    let shown = format!("{rotated:?}");
    assert!(!shown.contains(APP_SECRET) && !shown.contains("next-secret") && !shown.contains(VERIFY_TOKEN));
}
