//! The Cloud-compatible routes on both backends, driven by the `wabridge-cloud` SDK pointed at the
//! gateway with an API key as its access token: Meta's wamid comes back, errors are Graph errors.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wabridge_cloud::{Client, RetryPolicy};
use wabridge_sandbox::{FaultInjection, FaultScope, Inbound};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::send::{MarkRead, OutboundMessage};

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway::APP_SECRET;
use crate::support::sending::{NUMBER, Pair, config, read_with_three_statuses, sandbox_config, template};

each_backend!(
    sdk_sends_through_the_gateway,
    graph_errors_in_the_graph_shape,
    a_send_through_an_instance_without_the_lease_returns_the_wamid,
    the_backlog_limit_counts_what_other_instances_sent,
    a_send_failing_without_a_graph_error_is_not_an_auth_error,
    a_cancelled_send_answers_that_it_was_cancelled,
    unrouted_and_unsupported_paths_answer_in_their_dialect,
    a_held_send_answers_queued_before_the_clients_timeout,
    every_graph_call_carries_the_appsecret_proof_when_configured,
    a_missing_appsecret_proof_pauses_sending_with_a_clear_alert,
    a_nul_character_fails_only_its_own_send,
);

fn sdk(pair: &Pair, token: &str) -> Client {
    Client::builder()
        .base_url(pair.url.clone())
        .access_token(token.to_owned())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap()
}

fn message(value: serde_json::Value) -> OutboundMessage {
    serde_json::from_value(value).unwrap()
}

async fn sdk_sends_through_the_gateway(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let client = sdk(&pair, &pair.key);
    let number = PhoneNumberId::new(NUMBER);
    let hello = message(json!({"messaging_product": "whatsapp", "to": "+1 631-555-1234", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}, "biz_opaque_callback_data": "mine"}));
    let resp = client.send_message(&number, &hello).await.unwrap();
    assert_eq!(resp.contacts[0].wa_id.as_ref().map(|w| w.as_str()), Some("16315551234"));
    let wamid = resp.messages[0].id.to_string();
    assert!(wamid.starts_with("wamid."), "{wamid}");
    // It is Meta's (the sandbox's) wamid, sent through the queue with the gateway id as callback data.
    let sent = pair.sandbox.control().sent_message(&wamid).expect("Meta received it");
    let gateway_id = sent.biz_opaque_callback_data.clone().unwrap();
    let stored = pair
        .wait_state(&gateway_id, &["sent", "delivered", "read"], std::time::Duration::from_secs(10))
        .await;
    assert_eq!(stored["wamid"], wamid.as_str());
    assert_eq!(stored["biz_opaque_callback_data"], "mine");
    // A free-form reply in an open window, and a read receipt of the user's message.
    let inbound = pair.sandbox.control().inject_inbound(Inbound::text("16315551234", "hello")).unwrap();
    let text = message(json!({"messaging_product": "whatsapp", "to": "16315551234", "type": "text",
        "text": {"body": "hi there"}}));
    let resp = client.send_message(&number, &text).await.unwrap();
    assert!(resp.messages[0].id.to_string().starts_with("wamid."));
    let receipt: MarkRead = serde_json::from_value(
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound}),
    )
    .unwrap();
    client.mark_read(&number, &receipt).await.unwrap();
    pair.stop().await;
}

/// Two instances on one database: a Cloud-compatible send through the one that does not send for the number
/// (the other holds its lease) still answers with Meta's wamid, read from the store, not `queued` after the
/// wait.
async fn a_send_through_an_instance_without_the_lease_returns_the_wamid(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    // The first instance's scheduler holds the number's lease once it has sent.
    let (code, _) = pair.send(&crate::support::sending::template(NUMBER, "+16315551234")).await;
    assert_eq!(code, 201);
    let second = crate::support::gateway::start((*pair.gateway.state().config).clone()).await;
    let client = Client::builder()
        .base_url(second.url())
        .access_token(pair.key.clone())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap();
    let hello = message(json!({"messaging_product": "whatsapp", "to": "16315551235", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}));
    let started = std::time::Instant::now();
    let resp = client.send_message(&PhoneNumberId::new(NUMBER), &hello).await.unwrap();
    let wamid = resp.messages[0].id.to_string();
    assert!(wamid.starts_with("wamid."), "{wamid} after {:?}", started.elapsed());
    assert!(pair.sandbox.control().sent_message(&wamid).is_some());
    second.shutdown().await.unwrap();
    pair.stop().await;
}

/// Two instances on one database with a backlog limit of 3: sends accepted by one and sent by the other
/// leave the first one's count once it reads the store again, so it accepts more.
async fn the_backlog_limit_counts_what_other_instances_sent(db: TestDb) {
    let mut c = config(&db);
    c.outbound.max_backlog_per_number = 3;
    c.outbound.backlog_refresh_ms = 200;
    let pair = Pair::start(c, sandbox_config(|_| {})).await;
    let second = crate::support::gateway::start((*pair.gateway.state().config).clone()).await;
    let send = |n: u32| {
        let body = crate::support::sending::template(NUMBER, &format!("+1631555{n:04}"));
        pair.http.post(format!("{}/v1/messages", second.url())).bearer_auth(&pair.key).json(&body).send()
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = send(n).await.unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        ids.push(v["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        pair.wait_state(id, &["sent", "delivered", "read"], std::time::Duration::from_secs(20)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = send(9).await.unwrap();
        if r.status() == 201 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(std::time::Instant::now() < deadline, "the sent messages still count against the backlog");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    second.shutdown().await.unwrap();
    pair.stop().await;
}

async fn graph_errors_in_the_graph_shape(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let number = PhoneNumberId::new(NUMBER);
    let hello = message(json!({"messaging_product": "whatsapp", "to": "16315551234", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}));
    // A wrong access token: 190, HTTP 401.
    let e = sdk(&pair, "not-a-key").send_message(&number, &hello).await.unwrap_err();
    assert_eq!((e.code(), e.status()), (Some(190), Some(401)), "{e}");
    let client = sdk(&pair, &pair.key);
    // A number this gateway does not serve: 100.
    let e = client.send_message(&PhoneNumberId::new("999"), &hello).await.unwrap_err();
    assert_eq!(e.code(), Some(100), "{e}");
    // A template that does not exist: 132001 at once, from the template cache.
    let missing = message(json!({"messaging_product": "whatsapp", "to": "16315551234", "type": "template",
        "template": {"name": "no_such_template", "language": {"code": "en_US"}}}));
    let e = client.send_message(&number, &missing).await.unwrap_err();
    assert_eq!(e.code(), Some(132_001), "{e}");
    assert!(e.graph_error().unwrap().fbtrace_id.is_some());
    // Meta refuses the send: its error comes back as it was.
    pair.sandbox.control().set_fault(Some(FaultInjection {
        code: 131_051,
        next_n: Some(1),
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let e = client.send_message(&number, &hello).await.unwrap_err();
    assert_eq!((e.code(), e.status()), (Some(131_051), Some(400)), "{e}");
    // The raw body is the Graph envelope.
    let raw: serde_json::Value = pair
        .http
        .post(format!("{}/v23.0/{NUMBER}/messages", pair.url))
        .bearer_auth(&pair.key)
        .json(&json!({"messaging_product": "whatsapp", "to": "nope", "type": "text", "text": {"body": "x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["error"]["code"], 131_009, "{raw}");
    assert_eq!(raw["error"]["type"], "OAuthException");
    assert!(raw["error"]["error_data"]["details"].is_string());
    pair.stop().await;
}

/// A stand-in for Meta (or a proxy before it) that answers 503 without a Graph error to everything but the
/// template list (empty); its URL.
async fn unavailable_meta() -> String {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        if uri.path().ends_with("/message_templates") {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"data":[]}"#)
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain")], "try again later")
        }
    });
    crate::support::fake_meta::serve(app).await
}

/// Meta answering 503 with no error body to every send: never code 0, Meta's AuthException, which a Cloud SDK
/// reads as its own access token refused (HTTP 401) — the number waits out the outage and the caller hears
/// that its message is queued.
async fn a_send_failing_without_a_graph_error_is_not_an_auth_error(db: TestDb) {
    let mut c = crate::support::fake_meta::gateway_config(&db, unavailable_meta().await);
    c.outbound.max_attempts = 1;
    c.outbound.cloud_send_wait_ms = 1_500;
    let gateway = crate::support::gateway::start(c).await;
    let client = crate::support::fake_meta::sdk(&gateway);
    let text = message(json!({"messaging_product": "whatsapp", "to": "16315551234", "type": "text",
        "text": {"body": "hi"}}));
    // Meta unavailable for every send is an outage: the message is not failed (let alone as an auth error)
    // but stays queued, and the caller is told so. (A message failing while others go through answers 131016
    // with HTTP 500: `sending_resilience::a_message_failing_while_others_go_through_ends_failed`.)
    let resp = client.send_message(&PhoneNumberId::new(NUMBER), &text).await.unwrap();
    assert_eq!(resp.messages[0].message_status.as_deref(), Some("queued"), "{resp:?}");
    let id = resp.messages[0].id.to_string();
    // Queued, or on its way as one of the number's probes.
    let stored = gateway.state().store.outbound_detail(&id).await.unwrap().unwrap();
    assert!(matches!(stored.state.as_str(), "queued" | "sending"), "{stored:?}");
    gateway.shutdown().await.unwrap();
}

/// A send cancelled through `DELETE /v1/messages/{id}` while its Cloud-compatible request waits is answered
/// as cancelled (Graph 100, HTTP 400, not transient), not as expired (131000, "retry").
async fn a_cancelled_send_answers_that_it_was_cancelled(db: TestDb) {
    let mut c = config(&db);
    // Meta refusing the gateway's token pauses the number until an operator acts: the message stays queued.
    c.outbound.operator_pause_ms = 600_000;
    let pair = Pair::start(c, sandbox_config(|_| {})).await;
    // (Every time: the SDK tries a refused token once more.)
    pair.sandbox.control().set_fault(Some(FaultInjection {
        code: 190,
        next_n: None,
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let client = sdk(&pair, &pair.key);
    let hello = message(json!({"messaging_product": "whatsapp", "to": "16315551234", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}));
    let send = tokio::spawn(async move { client.send_message(&PhoneNumberId::new(NUMBER), &hello).await });
    // The gateway's id of the waiting message, read from the store.
    let store = pair.gateway.state().store.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        if let Some(m) = store.claim_queued(NUMBER, "test-observer", 10).await.unwrap().first() {
            break m.id.clone();
        }
        assert!(Instant::now() < deadline, "the send was not queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // 409 while its (refused) send is on its way.
    loop {
        match pair.cancel(&id).await {
            200 => break,
            409 => assert!(Instant::now() < deadline, "the message never went back to the queue"),
            other => panic!("cancelling answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = send.await.unwrap().unwrap_err();
    assert_eq!((e.code(), e.status()), (Some(100), Some(400)), "{e}");
    let graph = e.graph_error().unwrap();
    assert!(graph.details().unwrap().contains("cancelled"), "{e}");
    assert_eq!(graph.is_transient, Some(false));
    pair.stop().await;
}

/// A path no route takes answers in its dialect (Graph 100 outside `/v1`, the On-Premises 404 under it), and
/// a Graph node that is not media is not read as media.
async fn unrouted_and_unsupported_paths_answer_in_their_dialect(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let get = |path: String| {
        let request = pair.http.get(format!("{}{path}", pair.url)).bearer_auth(&pair.key);
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let waba = pair.gateway.state().config.numbers[0].waba_id.clone();
    // An edge the gateway does not serve, and a path that is nothing: Graph's code 100, not an empty 404.
    for path in [format!("/v23.0/{waba}/message_templates"), "/nothing/at/all".to_owned()] {
        let (status, body) = get(path.clone()).await;
        assert_eq!((status, &body["error"]["code"]), (400, &json!(100)), "{path}: {body}");
        let details = body["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains("Unsupported get request"), "{body}");
    }
    // A phone number, a WABA or a template is not media: 100 "does not exist or does not support this
    // operation", not 131000 "retry later".
    let template = pair.sandbox.control().template_id("hello_world", "en_US").unwrap();
    for node in [NUMBER.to_owned(), waba, template] {
        let (status, body) = get(format!("/v23.0/{node}")).await;
        assert_eq!((status, &body["error"]["code"]), (400, &json!(100)), "{node}: {body}");
        let details = body["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains("does not support this operation"), "{body}");
    }
    // Under /v1: the On-Premises 404.
    let (status, body) = get("/v1".to_owned()).await;
    assert_eq!((status, &body["errors"][0]["code"]), (404, &json!(1006)), "{body}");
    pair.stop().await;
}

/// A send the pair limit holds back (one message per minute to a user) is answered `queued` — with the
/// gateway's id — before the caller's own timeout, never left to time out: the SDK would read a timeout as
/// retryable, and its retry would send the message twice. The wait is lowered to 2 s and the client's
/// timeout to 10 s (the defaults, 20 s and 30 s, are checked by `outbound.cloud_send_wait_ms`'s unit test):
/// room for a loaded machine, while a send held until it goes (a minute, for the pair limit) still times out.
async fn a_held_send_answers_queued_before_the_clients_timeout(db: TestDb) {
    let mut c = config(&db);
    c.outbound.pair_interval_ms = 60_000;
    c.outbound.pair_burst = 1;
    c.outbound.cloud_send_wait_ms = 2_000;
    let pair = Pair::start(
        c,
        sandbox_config(|s| {
            s.limits.pair_interval = Duration::from_secs(60);
            s.limits.pair_burst = 1;
        }),
    )
    .await;
    let client = Client::builder()
        .base_url(pair.url.clone())
        .access_token(pair.key.clone())
        .request_timeout(Duration::from_secs(10))
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap();
    let number = PhoneNumberId::new(NUMBER);
    // The first message to the user goes out (however long a loaded machine takes), using up the pair limit.
    let (code, r) = pair.send(&template(NUMBER, "16315550777")).await;
    assert_eq!(code, 201, "{r}");
    let first = r["messages"][0]["id"].as_str().unwrap();
    pair.wait_state(first, &["sent", "delivered", "read"], Duration::from_secs(60)).await;
    // The second to the same user waits a minute for the pair limit.
    let hello = message(json!({"messaging_product": "whatsapp", "to": "16315550777", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}));
    let started = std::time::Instant::now();
    let second = client.send_message(&number, &hello).await.expect("answered before the client's timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "answered after the wait: {:?}",
        started.elapsed()
    );
    assert_eq!(second.messages[0].message_status.as_deref(), Some("queued"), "{second:?}");
    let id = second.messages[0].id.to_string();
    assert!(!id.starts_with("wamid."), "the gateway's own id: {id}");
    assert_eq!(pair.message(&id).await["state"], "queued");
    let filter = wabridge_sandbox::SentFilter { to: Some("16315550777".to_owned()), ..Default::default() };
    assert_eq!(pair.sandbox.control().sent(&filter).len(), 1, "the held message was not sent yet");
    pair.stop().await;
}

/// An app with "Require App Secret": with `meta.appsecret_proof`, every Graph call of the gateway carries
/// the proof — the template cache's read at start, the health probe, sends from both dialects, media
/// uploads and lookups, read receipts — and messages go through to `read`.
async fn every_graph_call_carries_the_appsecret_proof_when_configured(db: TestDb) {
    let mut c = config(&db);
    c.meta.appsecret_proof = true;
    let sandbox = sandbox_config(|s| {
        s.app_secret = Some(APP_SECRET.to_owned());
        s.require_appsecret_proof = true;
    });
    let pair = Pair::start(c, sandbox).await;
    // `/v1/messages`: a template, all the way to read.
    let (code, r) = pair.send(&template(NUMBER, "16315550801")).await;
    assert_eq!(code, 201, "{r}");
    let id = r["messages"][0]["id"].as_str().unwrap();
    pair.wait_message(id, Duration::from_secs(20), "read with three statuses", read_with_three_statuses)
        .await;
    // The template cache was read from Meta (an unknown template is refused at once, 132001).
    assert!(pair.gateway.state().templates.unknown_wabas().is_empty());
    let health = pair.get_json("/v1/health").await;
    assert_eq!(health["health"]["gateway_status"], "connected", "{health}");
    // The Cloud-compatible routes: a send, a media upload and lookup, a read receipt.
    let client = sdk(&pair, &pair.key);
    let number = PhoneNumberId::new(NUMBER);
    let hello = message(json!({"messaging_product": "whatsapp", "to": "16315550802", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}));
    let sent = client.send_message(&number, &hello).await.unwrap();
    assert!(sent.messages[0].id.to_string().starts_with("wamid."), "{sent:?}");
    let jpeg = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes all the same".to_vec();
    let media = client.upload_media(&number, jpeg, "image/jpeg", "a.jpg").await.unwrap();
    client.media_info(&media).await.unwrap();
    let inbound = pair.sandbox.control().inject_inbound(Inbound::text("16315550802", "hello")).unwrap();
    let receipt: MarkRead = serde_json::from_value(
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound}),
    )
    .unwrap();
    client.mark_read(&number, &receipt).await.unwrap();
    let counters = pair.sandbox.control().counters();
    assert_eq!(counters.rejected.get(&100), None, "a Graph call went without its proof: {counters:?}");
    pair.stop().await;
}

/// The same app without `meta.appsecret_proof`: Meta refuses every call (100 "… require an appsecret_proof
/// argument"). That is the gateway's configuration, not the message's fault: the message is not failed, the
/// number pauses with an alert that carries Meta's words, and a Cloud-compatible caller is told what to set.
async fn a_missing_appsecret_proof_pauses_sending_with_a_clear_alert(db: TestDb) {
    let mut c = config(&db);
    c.outbound.operator_pause_ms = 600_000;
    let sandbox = sandbox_config(|s| {
        s.app_secret = Some(APP_SECRET.to_owned());
        s.require_appsecret_proof = true;
    });
    let pair = Pair::start(c, sandbox).await;
    let (code, r) = pair.send(&template(NUMBER, "16315550803")).await;
    assert_eq!(code, 201, "{r}");
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events: Value = pair.get_json("/v1/events?kinds=alert").await;
        let text = events.to_string();
        if text.contains("sending_paused") {
            assert!(text.contains("appsecret_proof"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no alert: {events}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = pair.message(&id).await["state"].clone();
    assert!(state == "queued" || state == "sending", "the message is kept for after the fix: {state}");
    let health = pair.get_json("/v1/health").await;
    assert!(health["health"]["alerts"].to_string().contains("sending_paused"), "{health}");
    // A read receipt goes to Meta at once: the caller hears that the gateway's proof is missing (code 2),
    // not a 100 that would blame its own request.
    let inbound = pair.sandbox.control().inject_inbound(Inbound::text("16315550803", "hello")).unwrap();
    let receipt: MarkRead = serde_json::from_value(
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound}),
    )
    .unwrap();
    let e = sdk(&pair, &pair.key).mark_read(&PhoneNumberId::new(NUMBER), &receipt).await.unwrap_err();
    assert_eq!(e.code(), Some(2), "{e}");
    assert!(e.graph_error().unwrap().details().unwrap().contains("meta.appsecret_proof"), "{e}");
    pair.stop().await;
}

/// A send holding a NUL character (which PostgreSQL's text cannot hold) is refused with the Graph validation
/// error 131009 before it reaches the store, on both backends; the valid sends beside it, which may share its
/// group commit, all go through.
async fn a_nul_character_fails_only_its_own_send(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let send = |i: usize| {
        let mut body = json!({"messaging_product": "whatsapp", "to": format!("163155{i:05}"), "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
            "biz_opaque_callback_data": format!("valid-{i}")});
        if i % 4 == 1 {
            body["biz_opaque_callback_data"] = json!("x\u{0}");
        }
        let req = pair
            .http
            .post(format!("{}/v23.0/{NUMBER}/messages", pair.url))
            .bearer_auth(&pair.key)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let answers = futures_util::future::join_all((0..16).map(send)).await;
    for (i, (code, r)) in answers.iter().enumerate() {
        if i % 4 == 1 {
            assert_eq!((*code, r["error"]["code"].as_i64()), (400, Some(131_009)), "send {i}: {r}");
            let details = r["error"]["error_data"]["details"].as_str().unwrap();
            assert!(details.starts_with("biz_opaque_callback_data") && details.contains("NUL"), "{details}");
        } else {
            assert_eq!(code, &200, "send {i}: {r}");
            assert!(r["messages"][0]["id"].is_string(), "{r}");
        }
    }
    let counts = pair.gateway.state().store.outbound_state_counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 12, "only the valid sends are stored: {counts:?}");
    pair.stop().await;
}
