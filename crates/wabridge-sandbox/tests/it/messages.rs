//! `POST /{phone-number-id}/messages`: every type, the answer's shape, read receipts, validation.

use std::collections::HashSet;

use serde_json::{Value, json};
use wabridge_types::send::{Location, MarkRead, Media, OutboundMessage, Parameter, Template};

use crate::support::{Harness, USER};

fn parse(body: Value) -> OutboundMessage {
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn every_type_is_accepted_with_a_unique_wamid() {
    let mut config = wabridge_sandbox::SandboxConfig::for_tests();
    config.numbers[0].mps = Some(1000);
    let h = Harness::start(config).await;
    let from = h.number();
    let media = h.client.upload_media(&from, b"\x89PNG fake".to_vec(), "image/png", "a.png").await.unwrap();
    let messages = vec![
        OutboundMessage::text(USER, "hello"),
        OutboundMessage::image(USER, Media::id(media.clone()).with_caption("a caption")),
        OutboundMessage::document(USER, Media::link("https://example.com/a.pdf").with_filename("a.pdf")),
        OutboundMessage::audio(USER, Media::id(media.clone())),
        OutboundMessage::video(USER, Media::link("https://example.com/a.mp4")),
        OutboundMessage::sticker(USER, Media::id(media)),
        OutboundMessage::location(
            USER,
            Location::new(37.48, -122.14).with_name("HQ").with_address("1 Hacker Way"),
        ),
        OutboundMessage::reaction(USER, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI=", "👍"),
        parse(json!({"messaging_product":"whatsapp","to":USER,"type":"contacts","contacts":[
            {"name":{"formatted_name":"Ana Lima","first_name":"Ana"},"phones":[{"phone":"+1 650 555 1234","type":"CELL"}]}]})),
        parse(json!({"messaging_product":"whatsapp","to":USER,"type":"interactive","interactive":{
            "type":"button","body":{"text":"Pick one"},
            "action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}},{"type":"reply","reply":{"id":"b","title":"B"}}]}}})),
        parse(json!({"messaging_product":"whatsapp","to":USER,"type":"interactive","interactive":{
            "type":"list","body":{"text":"Menu"},
            "action":{"button":"Open","sections":[{"title":"S","rows":[{"id":"r1","title":"Row 1"}]}]}}})),
        parse(json!({"messaging_product":"whatsapp","to":USER,"type":"interactive","interactive":{
            "type":"cta_url","body":{"text":"Visit"},
            "action":{"name":"cta_url","parameters":{"display_text":"Go","url":"https://example.com"}}}})),
        OutboundMessage::text(format!("+{USER}"), "with a plus")
            .reply_to("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI="),
    ];
    let mut ids = HashSet::new();
    for message in &messages {
        let sent = h
            .client
            .send_message(&from, message)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", message.kind()));
        assert_eq!(sent.messaging_product, "whatsapp");
        assert_eq!(sent.contacts.len(), 1);
        assert_eq!(sent.contacts[0].input, message.to);
        assert_eq!(sent.contacts[0].wa_id.as_str(), USER);
        let id = sent.message_id().unwrap().as_str().to_owned();
        assert!(id.starts_with("wamid.") && id.len() <= 128, "{id}");
        assert_eq!(sent.messages[0].message_status, None, "only templates carry message_status");
        assert!(ids.insert(id));
    }
    let template = OutboundMessage::template(USER, Template::new("hello_world", "en_US"));
    let sent = h.client.send_message(&from, &template).await.unwrap();
    assert_eq!(sent.messages[0].message_status.as_deref(), Some("accepted"));
    let counters = h.sandbox.control().counters();
    assert_eq!(counters.accepted, messages.len() as u64 + 1);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn template_with_parameters_is_accepted() {
    let h = Harness::for_tests().await;
    let t = Template::new("order_update", "en_US")
        .body([Parameter::text("Ana"), Parameter::text("#1234"), Parameter::date_time("May 5")])
        .url_button(0, "1234");
    h.client.send_message(&h.number(), &OutboundMessage::template(USER, t)).await.unwrap();
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn read_receipts_and_typing_indicators_answer_success() {
    let h = Harness::for_tests().await;
    let receipt = MarkRead::new("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI=");
    h.client.mark_read(&h.number(), &receipt).await.unwrap();
    h.client.mark_read(&h.number(), &receipt.with_typing_indicator()).await.unwrap();
    let (status, body) = h
        .post_raw(
            &format!("{}/messages", h.number()),
            r#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}}"#,
        )
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));
    h.sandbox.shutdown().await;
}

/// Invalid bodies, sent raw (the SDK refuses to send them): Meta's code, HTTP status, and details that
/// name the field.
#[tokio::test]
async fn validation_errors_carry_meta_codes_and_name_the_field() {
    let h = Harness::for_tests().await;
    let path = format!("{}/messages", h.number());
    let long = "x".repeat(4097);
    let cases: Vec<(String, i64, &str)> = vec![
        (json!({"to":USER,"type":"text","text":{"body":"hi"}}).to_string(), 131_008, "messaging_product"),
        (json!({"messaging_product":"whatsapp","type":"text","text":{"body":"hi"}}).to_string(), 131_008, "to"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"image"}).to_string(), 131_008, "image"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"text","text":{}}).to_string(), 131_008, "body"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"text","text":{"body":long}}).to_string(), 100, "text.body"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"hologram","hologram":{}}).to_string(), 131_051, "hologram"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"image","image":{"id":"1","link":"https://x.y/a.png"}}).to_string(), 131_009, "image"),
        (json!({"messaging_product":"whatsapp","to":USER,"type":"interactive","interactive":{"type":"button","body":{"text":"b"},
            "action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"a title longer than twenty"}}]}}}).to_string(), 100, "title"),
        (json!({"messaging_product":"whatsapp","to":"not a number","type":"text","text":{"body":"hi"}}).to_string(), 100, "to"),
        (json!({"messaging_product":"whatsapp","to":"15550783881","type":"text","text":{"body":"hi"}}).to_string(), 131_021, "sender"),
        ("{not json".to_owned(), 100, "JSON"),
    ];
    for (body, expected, field) in cases {
        let (status, answer) = h.post_raw(&path, &body).await;
        let error = &answer["error"];
        assert_eq!(error["code"], expected, "{body}: {answer}");
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["type"], "OAuthException");
        assert!(error["message"].as_str().unwrap().starts_with(&format!("(#{expected})")), "{answer}");
        assert!(error["fbtrace_id"].is_string());
        let details = error["error_data"]["details"].as_str().unwrap();
        assert!(details.contains(field), "{body}: details {details:?} should name {field}");
    }
    let counters = h.sandbox.control().counters();
    assert_eq!(counters.accepted, 0);
    assert_eq!(counters.rejected[&131_008], 4);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_nodes_and_versions_are_graph_errors() {
    let h = Harness::for_tests().await;
    let (status, body) = h.post_raw("999/messages", r#"{"messaging_product":"whatsapp"}"#).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));
    let response = reqwest::Client::new()
        .get(format!("{}/latest/{}", h.sandbox.base_url(), h.number()))
        .bearer_auth(h.sandbox.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Any version is served.
    let response = reqwest::Client::new()
        .get(format!("{}/v17.0/{}", h.sandbox.base_url(), h.number()))
        .bearer_auth(h.sandbox.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    h.sandbox.shutdown().await;
}
