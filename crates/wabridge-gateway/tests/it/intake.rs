//! Webhook intake through HTTP, on both backends: verification, signatures, limits, rejected bodies,
//! batching, dedupe across restarts, group commit, the 24-hour window, statuses and metrics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use wabridge_gateway::store::{EventFilter, NewOutboundMessage, OutboundState};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway::{self, APP_SECRET, VERIFY_TOKEN};

each_backend!(
    verification_handshake,
    signatures_are_checked_on_raw_bytes,
    insecure_setting_accepts_unsigned,
    oversized_body_is_refused,
    invalid_envelope_is_stored_once_as_rejected,
    rejected_webhooks_are_reprocessed,
    batched_envelope_becomes_one_event_per_item,
    redeliveries_add_nothing_even_after_restart,
    concurrent_webhooks_share_commits,
    inbound_messages_open_the_window,
    statuses_move_outbound_messages_forward,
    metrics_carry_no_personal_data,
    shutdown_finishes_requests_in_flight,
);

const WABA: &str = "102290129340398";
const NUMBER_ID: &str = "106540352242922";

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An envelope holding one inbound text message `id` from `from`.
pub(crate) fn text_message(id: &str, from: &str, ts: u64) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{WABA}","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER_ID}"}},"contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"{from}"}}],"messages":[{{"from":"{from}","id":"{id}","timestamp":"{ts}","type":"text","text":{{"body":"Ol\u00e1 \ud83d\ude00"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

/// An envelope holding one status of `wamid`.
fn status(wamid: &str, status: &str, to: &str, ts: u64) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{WABA}","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER_ID}"}},"statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{ts}","recipient_id":"{to}","pricing":{{"billable":true,"pricing_model":"PMP","category":"utility","type":"regular"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

async fn post(url: &str, body: &str) -> StatusCode {
    gateway::post_webhook(&reqwest::Client::new(), url, body).await
}

async fn post_with(url: &str, body: &str, signature: Option<String>) -> StatusCode {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/webhook"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header(SIGNATURE_HEADER, sig);
    }
    req.send().await.unwrap().status()
}

async fn verification_handshake(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/webhook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}",
        gw.url()
    );
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    let wrong = format!("{}/webhook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope", gw.url());
    assert_eq!(client.get(&wrong).send().await.unwrap().status(), 403);
    let mode = format!("{}/webhook?hub.mode=other&hub.challenge=1&hub.verify_token={VERIFY_TOKEN}", gw.url());
    assert_eq!(client.get(&mode).send().await.unwrap().status(), 403);
    gw.shutdown().await.unwrap();

    // Without a verify token configured, nobody passes the handshake.
    let mut config = gateway::config(&db);
    config.meta.verify_token = None;
    let gw = gateway::start(config).await;
    let url = format!("{}/webhook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=", gw.url());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 403);
    gw.shutdown().await.unwrap();
}

async fn signatures_are_checked_on_raw_bytes(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let url = gw.url();
    let body = text_message("wamid.SIG1", "16505551234", now_secs());
    assert_eq!(post_with(&url, &body, None).await, 401);
    assert_eq!(post_with(&url, &body, Some("sha256=xyz".into())).await, 401);
    assert_eq!(post_with(&url, &body, Some(sign(b"another-secret", body.as_bytes()))).await, 401);
    // Signed over different bytes of the same JSON (re-serialized): refused.
    let reserialized =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&body).unwrap()).unwrap();
    assert_ne!(reserialized, body);
    assert_eq!(post_with(&url, &body, Some(sign(APP_SECRET.as_bytes(), reserialized.as_bytes()))).await, 401);
    let m = &gw.state().metrics;
    assert_eq!(m.webhooks_rejected.get("signature_missing"), 1);
    assert_eq!(m.webhooks_rejected.get("signature_malformed"), 1);
    assert_eq!(m.webhooks_rejected.get("signature_mismatch"), 2);
    assert_eq!(gw.state().store.max_seq().await.unwrap(), 0, "nothing refused is stored");
    // The genuine signature over the raw bytes (with \u escapes) passes.
    assert_eq!(post(&url, &body).await, 200);
    assert_eq!(gw.state().store.max_seq().await.unwrap(), 1);
    gw.shutdown().await.unwrap();
}

async fn insecure_setting_accepts_unsigned(db: TestDb) {
    let mut config = gateway::config(&db);
    config.webhook.insecure_skip_signature = true;
    config.meta.app_secrets.clear();
    let gw = gateway::start(config).await;
    let body = text_message("wamid.UNSIGNED", "16505551234", now_secs());
    assert_eq!(post_with(&gw.url(), &body, None).await, 200);
    assert_eq!(gw.state().store.max_seq().await.unwrap(), 1);
    // What is stored says the signature was not checked.
    assert_eq!(post_with(&gw.url(), r#"{"object":"whatsapp_business_account","entry":7}"#, None).await, 200);
    let rejected = gw.state().store.rejected_webhooks(10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(!rejected[0].signature_ok);
    gw.shutdown().await.unwrap();
}

async fn oversized_body_is_refused(db: TestDb) {
    let mut config = gateway::config(&db);
    config.webhook.max_body_bytes = 4096;
    let gw = gateway::start(config).await;
    let big = format!(r#"{{"object":"whatsapp_business_account","entry":[],"pad":"{}"}}"#, "x".repeat(5000));
    assert_eq!(post(&gw.url(), &big).await, 413);
    let metrics = gw.state().metrics.render();
    assert!(metrics.contains(r#"wabridge_webhooks_rejected_total{reason="too_large"} 1"#), "{metrics}");
    gw.shutdown().await.unwrap();
}

async fn invalid_envelope_is_stored_once_as_rejected(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let body = r#"{"object":"whatsapp_business_account","entry":"not a list"}"#;
    assert_eq!(post(&gw.url(), body).await, 200, "answered 200 so Meta does not retry it for a week");
    assert_eq!(post(&gw.url(), body).await, 200);
    let not_json = "this is not json";
    assert_eq!(post(&gw.url(), not_json).await, 200);
    let rejected = gw.state().store.rejected_webhooks(10).await.unwrap();
    assert_eq!(rejected.len(), 2, "one row per distinct body");
    assert!(rejected.iter().any(|r| r.body == body.as_bytes()));
    assert!(rejected.iter().all(|r| r.reject_reason.as_deref().unwrap_or("").contains("invalid envelope")));
    assert_eq!(gw.state().metrics.webhooks_rejected.get("invalid_envelope"), 3);
    assert_eq!(gw.state().store.max_seq().await.unwrap(), 0);
    // It can be re-processed later.
    assert!(gw.state().store.mark_reprocessed(rejected[0].id).await.unwrap());
    gw.shutdown().await.unwrap();
}

/// A body an older version stored as rejected is read again by `POST /v1/webhooks/reprocess`: now understood,
/// its events are stored (once, however often it runs); bodies still invalid stay rejected and are listed.
/// An id holding a NUL character (which PostgreSQL's text cannot store) is kept as rejected, not a 500.
async fn rejected_webhooks_are_reprocessed(db: TestDb) {
    use wabridge_gateway::store::{IntakeBatchItem, NewRawWebhook};
    let mut config = gateway::config(&db);
    config.api.tokens = vec!["reprocess-token".into()];
    let gw = gateway::start(config).await;
    let url = gw.url();
    let store = &gw.state().store;

    let understood = text_message("wamid.LATE", "111", now_secs());
    let old = IntakeBatchItem {
        raw: NewRawWebhook::rejected(understood.clone(), true, "invalid envelope: (an older parser)"),
        events: Vec::new(),
        inbound: Vec::new(),
        statuses: Vec::new(),
    };
    store.commit_intake(&[old]).await.unwrap();
    assert_eq!(post(&url, r#"{"object":"whatsapp_business_account","entry":"not a list"}"#).await, 200);
    let nul = text_message("wamid.NUL\\u0000", "111", now_secs());
    assert!(nul.contains(r"\u0000"));
    assert_eq!(post(&url, &nul).await, 200);
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 3);
    assert_eq!(store.max_seq().await.unwrap(), 0);

    let http = reqwest::Client::new();
    let reprocess = || http.post(format!("{url}/v1/webhooks/reprocess"));
    assert_eq!(reprocess().send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let answer: serde_json::Value =
        reprocess().bearer_auth("reprocess-token").send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["reprocessed"], 1, "{answer}");
    assert_eq!(answer["events_inserted"], 1, "{answer}");
    assert_eq!(answer["still_rejected"], 2, "{answer}");
    let reasons: Vec<&str> =
        answer["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("NUL")), "{answer}");
    assert_eq!(store.max_seq().await.unwrap(), 1);
    let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
    assert!(events[0].payload.contains("wamid.LATE"));
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 2);
    assert_eq!(gw.state().metrics.webhooks_reprocessed.get(), 1);

    // Again: nothing new.
    let answer: serde_json::Value =
        reprocess().bearer_auth("reprocess-token").send().await.unwrap().json().await.unwrap();
    assert_eq!((answer["reprocessed"].clone(), answer["still_rejected"].clone()), (0.into(), 2.into()));
    assert_eq!(store.max_seq().await.unwrap(), 1);
    gw.shutdown().await.unwrap();
}

async fn batched_envelope_becomes_one_event_per_item(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let ts = now_secs();
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[
  {{"id":"{WABA}","changes":[
    {{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER_ID}"}},
      "contacts":[{{"profile":{{"name":"A"}},"wa_id":"111"}},{{"profile":{{"name":"B"}},"wa_id":"222"}}],
      "messages":[
        {{"from":"111","id":"wamid.B1","timestamp":"{ts}","type":"text","text":{{"body":"one"}},"x_future_field":{{"kept":true}}}},
        {{"from":"222","id":"wamid.B2","timestamp":"{ts}","type":"hologram","hologram":{{"depth":3}}}}]}},"field":"messages"}},
    {{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER_ID}"}},
      "statuses":[
        {{"id":"wamid.S1","status":"delivered","timestamp":"{ts}","recipient_id":"333"}},
        {{"id":"wamid.S1","status":"read","timestamp":"{ts}","recipient_id":"333"}}],
      "errors":[{{"code":131000,"title":"Something went wrong","message":"x","error_data":{{"details":"y"}}}}]}},"field":"messages"}}]}},
  {{"id":"{WABA}","time":{ts},"changes":[
    {{"value":{{"event":"APPROVED","message_template_id":1,"message_template_name":"t","message_template_language":"en_US","reason":"NONE"}},"field":"message_template_status_update"}},
    {{"value":{{"anything":1}},"field":"brand_new_field"}}]}}]}}"#
    );
    assert_eq!(post(&gw.url(), &body).await, 200);
    let events = gw.state().store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["message", "message", "status", "status", "error", "change", "change"]);
    // Order is the envelope's order, sequence numbers strictly increase.
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(events[0].contact.as_deref(), Some("111"));
    assert_eq!(events[1].contact.as_deref(), Some("222"));
    assert_eq!(events[2].contact.as_deref(), Some("333"));
    assert_eq!(events[0].phone_number_id.as_deref(), Some(NUMBER_ID));
    // Unknown fields and an unknown message type are kept.
    assert!(events[0].payload.contains("x_future_field"));
    assert!(events[1].payload.contains("hologram"));
    assert_eq!(events[5].field, "message_template_status_update");
    assert_eq!(events[6].field, "brand_new_field");
    // Filters.
    let only_status = EventFilter { kinds: vec!["status".into()], ..EventFilter::default() };
    assert_eq!(gw.state().store.events_after(0, &only_status, 100).await.unwrap().len(), 2);
    gw.shutdown().await.unwrap();
}

async fn redeliveries_add_nothing_even_after_restart(db: TestDb) {
    let ts = now_secs();
    let first = text_message("wamid.DUP1", "16505551234", ts);
    let status_body = status("wamid.OUT1", "delivered", "16505551234", ts);
    let gw = gateway::start(gateway::config(&db)).await;
    assert_eq!(post(&gw.url(), &first).await, 200);
    assert_eq!(post(&gw.url(), &first).await, 200);
    assert_eq!(post(&gw.url(), &status_body).await, 200);
    // Sequence numbers may have gaps (a duplicate can consume one): count the events themselves.
    assert_eq!(gw.state().store.events_after(0, &EventFilter::default(), 100).await.unwrap().len(), 2);
    assert_eq!(gw.state().metrics.webhooks_duplicate.get(), 1);
    assert_eq!(gw.state().metrics.events_duplicate.get(), 1);
    gw.shutdown().await.unwrap();

    // A new process on the same database: the same events, even re-batched differently, add nothing.
    let gw = gateway::start(gateway::config(&db)).await;
    assert_eq!(post(&gw.url(), &first).await, 200);
    let rebatched = first.replace(r#""field":"messages"}]"#, r#""field":"messages","x_retry":1}]"#);
    assert_ne!(rebatched, first);
    assert_eq!(post(&gw.url(), &rebatched).await, 200);
    assert_eq!(post(&gw.url(), &status_body).await, 200);
    let events = gw.state().store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    gw.shutdown().await.unwrap();
}

async fn concurrent_webhooks_share_commits(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let url = gw.url();
    let ts = now_secs();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let body = text_message(&format!("wamid.C{i}"), &format!("1650555{i:04}"), ts);
            post(&url, &body).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // Every acknowledged webhook is readable, and they took fewer commits than requests.
    assert_eq!(gw.state().store.events_after(0, &EventFilter::default(), 500).await.unwrap().len(), 200);
    let commits = gw.state().metrics.commit_batch_size.count();
    assert!(commits < 200, "{commits} commits for 200 concurrent webhooks: no group commit happened");
    gw.shutdown().await.unwrap();
}

async fn inbound_messages_open_the_window(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let ts = now_secs() - 60;
    assert_eq!(post(&gw.url(), &text_message("wamid.W1", "16505550001", ts)).await, 200);
    let last = gw.state().store.contact_last_inbound(NUMBER_ID, "16505550001").await.unwrap();
    let last = last.expect("the contact's last inbound time is kept");
    let secs = last.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs, ts, "the window starts at the message's own timestamp");
    assert!(gw.state().store.contact_last_inbound(NUMBER_ID, "16505559999").await.unwrap().is_none());
    gw.shutdown().await.unwrap();
}

async fn statuses_move_outbound_messages_forward(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let store = &gw.state().store;
    store
        .insert_outbound(&NewOutboundMessage {
            id: "gw-1".into(),
            phone_number_id: NUMBER_ID.into(),
            recipient: "16505551234".into(),
            wamid: None,
            body: r#"{"type":"text","text":{"body":"hi"}}"#.into(),
        })
        .await
        .unwrap();
    store.record_outbound_wamid("gw-1", "wamid.OUTX").await.unwrap();
    let ts = now_secs();
    // Out of order and duplicated: read first, then sent, delivered, read again.
    for s in ["read", "sent", "delivered", "read", "sent"] {
        assert_eq!(post(&gw.url(), &status("wamid.OUTX", s, "16505551234", ts)).await, 200);
    }
    let msg = store.outbound_message("gw-1").await.unwrap().unwrap();
    assert_eq!(msg.state, OutboundState::Read);
    // Failed is terminal even after read; nothing moves it afterwards.
    assert_eq!(post(&gw.url(), &status("wamid.OUTX", "failed", "16505551234", ts)).await, 200);
    assert_eq!(post(&gw.url(), &status("wamid.OUTX", "delivered", "16505551234", ts + 1)).await, 200);
    let msg = store.outbound_message("gw-1").await.unwrap().unwrap();
    assert_eq!(msg.state, OutboundState::Failed);
    gw.shutdown().await.unwrap();
}

async fn metrics_carry_no_personal_data(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    assert_eq!(post(&gw.url(), &text_message("wamid.M1", "16505557777", now_secs())).await, 200);
    assert_eq!(post_with(&gw.url(), "{}", None).await, 401);
    let text = reqwest::get(format!("{}/metrics", gw.url())).await.unwrap().text().await.unwrap();
    assert!(text.contains("wabridge_webhooks_received_total 1"), "{text}");
    assert!(text.contains("wabridge_events_received_total{kind=\"message\"} 1"), "{text}");
    assert!(text.contains("wabridge_webhooks_rejected_total{reason=\"signature_missing\"} 1"), "{text}");
    assert!(text.contains("wabridge_commit_seconds_count"), "{text}");
    assert!(!text.contains("16505557777") && !text.contains(NUMBER_ID), "no phone numbers in metrics");
    gw.shutdown().await.unwrap();
}

async fn shutdown_finishes_requests_in_flight(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let url = gw.url();
    let ts = now_secs();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let body = text_message(&format!("wamid.SD{i}"), "16505551234", ts);
            tokio::time::sleep(Duration::from_millis(i % 10)).await;
            // A refused connection (the gateway stopped accepting) is not an error here.
            reqwest::Client::new()
                .post(format!("{url}/webhook"))
                .header(SIGNATURE_HEADER, sign(APP_SECRET.as_bytes(), body.as_bytes()))
                .body(body)
                .send()
                .await
                .map(|r| r.status())
                .ok()
        }));
    }
    tokio::time::sleep(Duration::from_millis(3)).await;
    let token = gw.shutdown_token();
    token.cancel();
    let mut acknowledged = 0;
    for t in tasks {
        // A request either was answered 200 (and is stored) or never got in (connection refused).
        if t.await.unwrap() == Some(StatusCode::OK) {
            acknowledged += 1;
        }
    }
    gw.wait().await.unwrap();
    let store = db.open().await;
    let stored = store.events_after(0, &EventFilter::default(), 1000).await.unwrap().len();
    assert!(stored >= acknowledged, "{acknowledged} acknowledged but only {stored} stored");
    store.close().await;
}
