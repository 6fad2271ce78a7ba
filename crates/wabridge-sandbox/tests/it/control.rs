//! The control API over HTTP: inject inbound messages, inspect what was sent, counters, reset, level,
//! faults; automatic replies.

use reqwest::Method;
use serde_json::json;
use wabridge_sandbox::{AutoReply, SandboxConfig};
use wabridge_types::send::{OutboundMessage, Template};
use wabridge_types::webhook::MessageContent;

use crate::support::{Harness, USER, WAIT, code, eventually};

#[tokio::test]
async fn inject_inbound_of_any_type() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    let (status, body) = h
        .control_call(Method::POST, "/inbound", Some(json!({"from": USER, "name": "Ana", "username": "@ana", "type": "text", "text": {"body": "hello"}})))
        .await;
    assert_eq!(status, 200, "{body}");
    let wamid = body["id"].as_str().unwrap().to_owned();
    let (status, _) = h
        .control_call(
            Method::POST,
            "/inbound",
            Some(json!({"from": USER, "type": "image", "image": {"caption": "look"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = h
        .control_call(Method::POST, "/inbound", Some(json!({"from": USER, "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}, "context": {"id": "wamid.X"}})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = h
        .control_call(
            Method::POST,
            "/inbound",
            Some(json!({"from": USER, "type": "location", "location": {"latitude": 1.5, "longitude": 2.5}})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(eventually(WAIT, || receiver.messages().len() == 4).await);
    let messages = receiver.messages();
    let first = messages.iter().find(|m| m.id.as_str() == wamid).unwrap();
    assert_eq!(first.from.as_str(), USER);
    assert!(first.from_user_id.as_deref().unwrap().starts_with("US."));
    assert!(matches!(&first.content, MessageContent::Text(t) if t.body == "hello"));
    let contact = receiver
        .changes()
        .into_iter()
        .find_map(|c| c.as_messages().map(|v| v.contacts()[0].clone()))
        .unwrap();
    let profile = contact.profile.unwrap();
    assert_eq!((profile.name.as_deref(), profile.username.as_deref()), (Some("Ana"), Some("@ana")));
    // The image got a media object that can be downloaded.
    let image = messages
        .iter()
        .find_map(|m| match &m.content {
            MessageContent::Image(i) => Some(i.clone()),
            _ => None,
        })
        .unwrap();
    let id = image.id.clone();
    let info = h.client.media_info(&id).await.unwrap();
    assert!(!h.client.download_media(&info.url).await.unwrap().is_empty());
    // Malformed inbound: refused.
    let (status, _) = h
        .control_call(
            Method::POST,
            "/inbound",
            Some(json!({"from": "nobody", "type": "text", "text": {"body": "x"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.control().counters().inbound, 4);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn inspect_sent_messages_and_counters_then_reset() {
    let h = Harness::for_tests().await;
    let other = "16505559999";
    for to in [USER, USER, other] {
        let send =
            OutboundMessage::template(to, Template::new("hello_world", "en_US")).with_callback_data("cb");
        h.client.send_message(&h.number(), &send).await.unwrap();
    }
    let _ = h
        .client
        .send_message(&h.number(), &OutboundMessage::template(USER, Template::new("nope", "en_US")))
        .await;
    let (status, body) = h.control_call(Method::GET, &format!("/messages?to={USER}"), None).await;
    assert_eq!(status, 200);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["type"], "template");
    assert_eq!(data[0]["biz_opaque_callback_data"], "cb");
    assert_eq!(data[0]["body"]["template"]["name"], "hello_world");
    let wamid = data[0]["id"].as_str().unwrap().to_owned();
    // Statuses move on (no callback needed to record them).
    let control = h.sandbox.control();
    assert!(eventually(WAIT, || control.sent_message(&wamid).is_some_and(|m| m.status == "read")).await);
    let (_, one) = h.control_call(Method::GET, &format!("/messages/{wamid}"), None).await;
    assert_eq!(one["status"], "read");
    let (_, all) =
        h.control_call(Method::GET, &format!("/messages?phone_number_id={}", h.number()), None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let (_, counters) = h.control_call(Method::GET, "/counters", None).await;
    assert_eq!(counters["accepted"], 3);
    assert_eq!(counters["rejected"]["132001"], 1);
    let (status, _) = h.control_call(Method::POST, "/reset", None).await;
    assert_eq!(status, 200);
    let (_, counters) = h.control_call(Method::GET, "/counters", None).await;
    assert_eq!(counters["accepted"], 0);
    let (_, all) = h.control_call(Method::GET, "/messages", None).await;
    assert!(all["data"].as_array().unwrap().is_empty());
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn level_and_faults_over_http() {
    let h = Harness::for_tests().await;
    let send = OutboundMessage::template(USER, Template::new("hello_world", "en_US"));
    let (status, _) = h
        .control_call(
            Method::POST,
            &format!("/numbers/{}/level", h.number()),
            Some(json!({"level": "STANDARD", "mps": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, info) = h.control_call(Method::GET, "", None).await;
    assert_eq!(info["phone_numbers"][0]["mps"], 1);
    assert_eq!(info["waba_id"], h.sandbox.waba_id());
    let (status, _) =
        h.control_call(Method::PUT, "/faults", Some(json!({"code": 131_016, "next_n": 2}))).await;
    assert_eq!(status, 200);
    assert_eq!(code(h.client.send_message(&h.number(), &send).await), (131_016, 500));
    assert_eq!(code(h.client.send_message(&h.number(), &send).await), (131_016, 500));
    // Other calls are not in the fault's default scope.
    h.client.throughput(&h.number()).await.unwrap();
    h.client.send_message(&h.number(), &send).await.unwrap();
    let (status, _) = h
        .control_call(Method::PUT, "/faults", Some(json!({"code": 131_000, "every_nth": 2, "scope": "all"})))
        .await;
    assert_eq!(status, 200);
    h.client.throughput(&h.number()).await.unwrap();
    assert_eq!(code(h.client.throughput(&h.number()).await).0, 131_000);
    let (status, _) = h.control_call(Method::DELETE, "/faults", None).await;
    assert_eq!(status, 200);
    h.client.throughput(&h.number()).await.unwrap();
    h.client.throughput(&h.number()).await.unwrap();
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn control_token_guards_the_control_api() {
    let config = SandboxConfig { control_token: Some("ops".into()), ..SandboxConfig::for_tests() };
    let h = Harness::start(config).await;
    let (status, _) = h.control_call(Method::GET, "/counters", None).await;
    assert_eq!(status, 401);
    let response = reqwest::Client::new()
        .get(format!("{}/_sandbox/counters", h.sandbox.base_url()))
        .bearer_auth("ops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn echo_auto_replies_open_a_conversation() {
    let mut config = SandboxConfig::for_tests();
    config.users.auto_reply = AutoReply::Echo;
    let (h, receiver) = Harness::with_receiver(config).await;
    h.sandbox.control().inject_inbound(wabridge_sandbox::Inbound::text(USER, "start")).unwrap();
    let sent = h.client.send_message(&h.number(), &OutboundMessage::text(USER, "ping")).await.unwrap();
    let wamid = sent.message_id().unwrap().to_string();
    let echoed = || {
        receiver.messages().iter().any(|m| {
            matches!(&m.content, MessageContent::Text(t) if t.body == "echo: ping")
                && m.context.as_ref().and_then(|c| c.id.as_ref()).map(|id| id.as_str())
                    == Some(wamid.as_str())
        })
    };
    assert!(eventually(WAIT, echoed).await);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn scripted_auto_replies() {
    let mut config = SandboxConfig::for_tests();
    config.users.auto_reply = AutoReply::Scripted {
        rules: vec![wabridge_sandbox::ScriptedReply { contains: "price".into(), reply: "How much?".into() }],
    };
    let (h, receiver) = Harness::with_receiver(config).await;
    h.sandbox.control().inject_inbound(wabridge_sandbox::Inbound::text(USER, "hi")).unwrap();
    for text in ["unrelated", "our PRICE list"] {
        h.client.send_message(&h.number(), &OutboundMessage::text(USER, text)).await.unwrap();
    }
    let replies = || {
        receiver
            .messages()
            .iter()
            .filter(|m| matches!(&m.content, MessageContent::Text(t) if t.body == "How much?"))
            .count()
    };
    assert!(eventually(WAIT, || replies() == 1).await);
    assert_eq!(receiver.messages().len(), 2, "the opening message and one scripted reply");
    h.sandbox.shutdown().await;
}
