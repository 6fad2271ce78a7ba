//! The webhook route's body limit (`webhook.max_body_bytes`, 3 MiB by default) with its default value: it
//! wins over the 1 MiB JSON limit of the API routes, a body at the limit is stored, one byte more is 413, with
//! or without a `Content-Length`. Written by hand on TCP (`support::raw_http`): an HTTP client may fail to
//! write the rest of a body the server refused before reading the answer.

use std::net::SocketAddr;

use wabridge_gateway::store::EventFilter;
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

use crate::intake::{now_secs, text_message};
use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway::{self, APP_SECRET};
use crate::support::raw_http::{self, Framing};

each_backend!(webhook_limit_wins_over_the_json_limit, webhook_over_the_limit_is_refused);

const MIB: usize = 1024 * 1024;
const API_TOKEN: &str = "limits-token";

/// A valid envelope of exactly `len` bytes: one inbound text message `id` whose text pads it.
fn message_of_len(id: &str, len: usize) -> String {
    let ts = now_secs();
    let with = |text: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"{id}","timestamp":"{ts}","type":"text","text":{{"body":"{text}"}}}}]}},"field":"messages"}}]}}]}}"#
        )
    };
    let frame = with("").len();
    let text: String = "a long message ".chars().cycle().take(len - frame).collect();
    let body = with(&text);
    assert_eq!(body.len(), len);
    body
}

/// POSTs `body` to the webhook, signed over its exact bytes.
async fn signed_post(addr: SocketAddr, body: &str, framing: Framing) -> Option<u16> {
    let headers = [
        (SIGNATURE_HEADER, sign(APP_SECRET.as_bytes(), body.as_bytes())),
        ("content-type", "application/json".to_owned()),
    ];
    raw_http::post(addr, "/webhook", &headers, body.as_bytes().to_vec(), framing).await
}

async fn webhook_limit_wins_over_the_json_limit(db: TestDb) {
    let mut config = gateway::config(&db);
    // The defaults this test is about, not lowered.
    assert_eq!(config.webhook.max_body_bytes, 3 * MIB);
    assert_eq!(config.http.max_json_body_bytes, MIB);
    config.api.tokens = vec![API_TOKEN.into()];
    let gw = gateway::start(config).await;
    let addr = gw.addr();
    let store = &gw.state().store;

    // About 2 MiB: over the API routes' JSON limit, under the webhook's own.
    let two = message_of_len("wamid.TWO_MIB", 2 * MIB);
    assert_eq!(signed_post(addr, &two, Framing::Length).await, Some(200), "a 2 MiB webhook");
    // Exactly at the limit; and chunked (no Content-Length) over 2 MiB.
    let at_limit = message_of_len("wamid.AT_LIMIT", 3 * MIB);
    assert_eq!(signed_post(addr, &at_limit, Framing::Length).await, Some(200), "a webhook at the limit");
    let chunked = message_of_len("wamid.CHUNKED", 2 * MIB + 1);
    assert_eq!(signed_post(addr, &chunked, Framing::Chunked).await, Some(200), "a chunked 2 MiB webhook");

    // Stored as events, whole, and not as rejected bodies.
    let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
    let keys: Vec<&str> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
    assert_eq!(keys, ["msg:wamid.TWO_MIB", "msg:wamid.AT_LIMIT", "msg:wamid.CHUNKED"]);
    for (event, body) in events.iter().zip([&two, &at_limit, &chunked]) {
        let text = body.split(r#""body":""#).nth(1).unwrap().split('"').next().unwrap();
        assert!(event.payload.contains(text), "{} lost its text", event.dedupe_key);
    }
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());
    assert_eq!(gw.state().metrics.webhooks_received.get(), 3);

    // The API routes keep their own, smaller limit: the webhook's did not replace it.
    let big_json = format!(
        r#"{{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{{"body":"{}"}}}}"#,
        "x".repeat(2 * MIB)
    );
    let headers =
        [("authorization", format!("Bearer {API_TOKEN}")), ("content-type", "application/json".to_owned())];
    let status = raw_http::post(addr, "/v1/messages", &headers, big_json.into_bytes(), Framing::Length).await;
    assert_eq!(status, Some(413), "a 2 MiB JSON body on an API route");
    gw.shutdown().await.unwrap();
}

async fn webhook_over_the_limit_is_refused(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let addr = gw.addr();
    let limit = gw.state().config.webhook.max_body_bytes;
    assert_eq!(limit, 3 * MIB, "the default limit");

    let over = message_of_len("wamid.OVER", limit + 1);
    assert_eq!(signed_post(addr, &over, Framing::Length).await, Some(413), "limit + 1 with a length");
    assert_eq!(signed_post(addr, &over, Framing::Chunked).await, Some(413), "limit + 1, chunked");
    // Far over, chunked: the server stops reading at the limit and answers.
    let far_over = message_of_len("wamid.FAR_OVER", 3 * limit);
    assert_eq!(signed_post(addr, &far_over, Framing::Chunked).await, Some(413), "3 × limit, chunked");

    // Nothing refused was stored or counted as received.
    let store = &gw.state().store;
    assert_eq!(store.max_seq().await.unwrap(), 0);
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());
    assert_eq!(gw.state().metrics.webhooks_received.get(), 0);
    assert_eq!(gw.state().metrics.webhooks_rejected.get("too_large"), 3);

    // The gateway takes webhooks as before.
    let small = text_message("wamid.AFTER", "16505551234", now_secs());
    assert_eq!(signed_post(addr, &small, Framing::Chunked).await, Some(200));
    assert_eq!(store.events_after(0, &EventFilter::default(), 10).await.unwrap().len(), 1);
    gw.shutdown().await.unwrap();
}
