//! `POST /{phone-number-id}/messages`: every type, the answer's shape, read receipts, validation.

use std::collections::HashSet;

use serde_json::{Value, json};
use wabridge_sandbox::{Inbound, SandboxConfig};
use wabridge_types::send::{Interactive, Location, MarkRead, Media, OutboundMessage, Parameter, Template};

use crate::support::{Harness, USER, WAIT, eventually, webp};

fn parse(body: Value) -> OutboundMessage {
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn every_type_is_accepted_with_a_unique_wamid() {
    let mut config = wabridge_sandbox::SandboxConfig::for_tests();
    config.numbers[0].mps = Some(1000);
    let h = Harness::start(config).await;
    let from = h.number();
    // Each media message with media of its own kind: an image, an OGG voice note, a WebP sticker.
    let image = h.client.upload_media(&from, b"\x89PNG fake".to_vec(), "image/png", "a.png").await.unwrap();
    let audio = h.client.upload_media(&from, b"OggS fake".to_vec(), "audio/ogg", "a.ogg").await.unwrap();
    let sticker = h.client.upload_media(&from, webp(false, 2048), "image/webp", "a.webp").await.unwrap();
    let messages = vec![
        OutboundMessage::text(USER, "hello"),
        OutboundMessage::image(USER, Media::id(image).with_caption("a caption")),
        OutboundMessage::document(USER, Media::link("https://example.com/a.pdf").with_filename("a.pdf")),
        OutboundMessage::audio(USER, Media::id(audio)),
        OutboundMessage::video(USER, Media::link("https://example.com/a.mp4")),
        OutboundMessage::sticker(USER, Media::id(sticker)),
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
        assert_eq!(sent.contacts[0].input.as_ref(), Some(&message.to));
        assert_eq!(sent.contacts[0].wa_id.as_ref().map(|w| w.as_str()), Some(USER));
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

/// Read receipts are checked as sends are: `messaging_product` required, a typing indicator of type
/// `text` only.
#[tokio::test]
async fn read_receipts_are_validated() {
    let h = Harness::for_tests().await;
    let path = format!("{}/messages", h.number());
    let cases = [
        (json!({"status": "read", "message_id": "wamid.X"}), 131_008, "messaging_product"),
        (
            json!({"messaging_product": "sms", "status": "read", "message_id": "wamid.X"}),
            100,
            "messaging_product",
        ),
        (
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X",
                   "typing_indicator": {"type": "audio"}}),
            131_009,
            "typing_indicator.type",
        ),
        (
            json!({"messaging_product": "whatsapp", "status": "delivered", "message_id": "wamid.X"}),
            131_009,
            "status",
        ),
    ];
    for (body, expected, field) in cases {
        let (status, answer) = h.post_raw(&path, &body.to_string()).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(expected)), "{body}: {answer}");
        let details = answer["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains(field), "{body}: details {details:?} should name {field}");
    }
    h.sandbox.shutdown().await;
}

/// `PUT` on messages is the legacy read receipt and nothing more: a send body is refused, not sent.
#[tokio::test]
async fn put_on_messages_only_marks_as_read() {
    let h = Harness::for_tests().await;
    let put = |body: Value| {
        reqwest::Client::new()
            .put(h.url(&format!("{}/messages", h.number())))
            .bearer_auth(h.sandbox.access_token())
            .json(&body)
            .send()
    };
    let receipt = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"});
    let response = put(receipt).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"success": true}));
    let send = json!({"messaging_product": "whatsapp", "to": USER, "type": "template",
                      "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let response = put(send).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert!(body["error"]["error_data"]["details"].as_str().unwrap().contains("POST"), "{body}");
    // The receipt's own checks apply on PUT too.
    let response = put(json!({"status": "read", "message_id": "wamid.X"})).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], 131_008);
    assert_eq!(h.sandbox.control().counters().accepted, 0);
    assert!(h.sandbox.control().sent(&wabridge_sandbox::SentFilter::default()).is_empty());
    h.sandbox.shutdown().await;
}

/// Interactive messages, sent raw: the checks Meta makes beyond lengths and counts.
#[tokio::test]
async fn interactive_messages_are_checked_like_meta() {
    let h = Harness::for_tests().await;
    let path = format!("{}/messages", h.number());
    let send = |interactive: Value| {
        json!({"messaging_product": "whatsapp", "to": USER, "type": "interactive", "interactive": interactive})
            .to_string()
    };
    let flow = |parameters: Value| {
        send(
            json!({"type": "flow", "body": {"text": "Book"}, "action": {"name": "flow", "parameters": parameters}}),
        )
    };
    let navigate = json!({"screen": "START", "data": {"k": "v"}});
    let refused = [
        (send(json!({"type": "hologram", "body": {"text": "?"}, "action": {}})), 131_009, "interactive.type"),
        (
            send(json!({"type": "button", "body": {"text": "Pick"},
                "action": {"buttons": [{"type": "url", "reply": {"id": "a", "title": "A"}}]}})),
            131_009,
            "interactive.action.buttons[0].type",
        ),
        (
            send(json!({"type": "cta_url", "body": {"text": "Visit"},
                "action": {"name": "visit", "parameters": {"display_text": "Go", "url": "https://example.com"}}})),
            131_009,
            "interactive.action.name",
        ),
        (
            send(
                json!({"type": "flow", "body": {"text": "Book"}, "action": {"name": "cta_url", "parameters":
                {"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open"}}}),
            ),
            131_009,
            "interactive.action.name",
        ),
        (flow(json!({"flow_message_version": "3", "flow_cta": "Open"})), 131_008, "flow_id"),
        (
            flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_name": "booking", "flow_cta": "Open"}),
            ),
            131_009,
            "flow_name",
        ),
        (
            flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open", "flow_action": "navigate"}),
            ),
            131_008,
            "flow_action_payload.screen",
        ),
        (
            flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open", "flow_action": "navigate",
                        "flow_action_payload": {"data": {}}}),
            ),
            131_008,
            "flow_action_payload.screen",
        ),
        (
            flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open", "flow_action": "jump"}),
            ),
            131_009,
            "flow_action",
        ),
        (
            flow(json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open", "mode": "live"})),
            131_009,
            "mode",
        ),
    ];
    for (body, expected, field) in refused {
        let (status, answer) = h.post_raw(&path, &body).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(expected)), "{body}: {answer}");
        let details = answer["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains(field), "{body}: details {details:?} should name {field}");
    }
    assert_eq!(h.sandbox.control().counters().accepted, 0);
    let accepted = [
        flow(json!({"flow_message_version": "3", "flow_name": "booking", "flow_cta": "Open",
                    "flow_action": "navigate", "flow_action_payload": navigate, "mode": "draft"})),
        flow(
            json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Open", "flow_action": "data_exchange"}),
        ),
        send(json!({"type": "order_details", "body": {"text": "Your order"},
            "action": {"name": "review_and_pay", "parameters": {"reference_id": "r-1"}}})),
        send(
            json!({"type": "catalog_message", "body": {"text": "Browse"}, "action": {"name": "catalog_message"}}),
        ),
    ];
    for body in accepted {
        let (status, answer) = h.post_raw(&path, &body).await;
        assert_eq!(status, 200, "{body}: {answer}");
    }
    // The SDK's own builder for a Flow by id passes too.
    let by_id = wabridge_types::send::FlowParameters::by_id("1", "token", "Open").navigate("START", None);
    h.client
        .send_message(&h.number(), &OutboundMessage::interactive(USER, Interactive::flow("Book", by_id)))
        .await
        .unwrap();
    h.sandbox.shutdown().await;
}

/// Media ids must name media the WABA has: unknown or deleted ones are refused at once (100), in a media
/// message, an interactive header or a template header alike.
#[tokio::test]
async fn media_ids_must_name_uploaded_media() {
    let h = Harness::for_tests().await;
    let from = h.number();
    let unknown = OutboundMessage::image(USER, Media::id("4490709327384033"));
    let error = h.client.send_message(&from, &unknown).await.unwrap_err();
    assert_eq!((error.code(), error.status()), (Some(100), Some(400)));
    let details = error.graph_error().unwrap().details().unwrap().to_owned();
    assert!(
        details.contains("image['id'] is not a valid whatsapp business account media attachment ID"),
        "{details}"
    );
    let id = h.client.upload_media(&from, b"\x89PNG".to_vec(), "image/png", "a.png").await.unwrap();
    h.client.send_message(&from, &OutboundMessage::image(USER, Media::id(id.clone()))).await.unwrap();
    h.client.delete_media(&id).await.unwrap();
    let deleted =
        h.client.send_message(&from, &OutboundMessage::image(USER, Media::id(id))).await.unwrap_err();
    assert_eq!(deleted.code(), Some(100));
    let header = OutboundMessage::template(
        USER,
        Template::new("image_offer", "en_US").header(Parameter::image(Media::id("777"))).body_text(["10%"]),
    );
    let error = h.client.send_message(&from, &header).await.unwrap_err();
    assert_eq!(error.code(), Some(100));
    assert!(
        error
            .graph_error()
            .unwrap()
            .details()
            .unwrap()
            .contains("template['components'][0]['parameters'][0]['image']['id']")
    );
    let interactive = json!({"messaging_product": "whatsapp", "to": USER, "type": "interactive", "interactive": {
        "type": "button", "header": {"type": "image", "image": {"id": "777"}}, "body": {"text": "Pick"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}});
    let (status, answer) = h.post_raw(&format!("{from}/messages"), &interactive.to_string()).await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)), "{answer}");
    assert_eq!(h.sandbox.control().counters().accepted, 1);
    h.sandbox.shutdown().await;
}

/// Media that exists but cannot be sent as the message's type is accepted, then fails with 131053 in a
/// `failed` status, as Meta reports media it could not process.
#[tokio::test]
async fn media_of_the_wrong_kind_fails_with_131053() {
    let mut config = SandboxConfig::for_tests();
    config.numbers[0].mps = Some(1000);
    let (h, receiver) = Harness::with_receiver(config).await;
    let from = h.number();
    h.sandbox.control().inject_inbound(Inbound::text(USER, "hi")).unwrap();
    let png = h.client.upload_media(&from, b"\x89PNG".to_vec(), "image/png", "a.png").await.unwrap();
    let send = |message: OutboundMessage| {
        let (client, from) = (h.client.clone(), from.clone());
        async move { client.send_message(&from, &message).await.unwrap().message_id().unwrap().to_string() }
    };
    let as_audio = send(OutboundMessage::audio(USER, Media::id(png.clone()))).await;
    let as_sticker = send(OutboundMessage::sticker(USER, Media::id(png.clone()))).await;
    let as_image = send(OutboundMessage::image(USER, Media::id(png))).await;
    assert!(
        eventually(WAIT, || receiver.statuses_of(&as_audio) == ["failed"]
            && receiver.statuses_of(&as_sticker) == ["failed"]
            && receiver.statuses_of(&as_image).contains(&"read".to_owned()))
        .await,
        "{:?} {:?} {:?}",
        receiver.statuses_of(&as_audio),
        receiver.statuses_of(&as_sticker),
        receiver.statuses_of(&as_image)
    );
    for wamid in [&as_audio, &as_sticker] {
        let status = receiver.statuses().into_iter().find(|s| s.id.as_str() == wamid.as_str()).unwrap();
        let error = &status.errors()[0];
        assert_eq!(error.code, 131_053);
        assert!(error.details().unwrap().contains("image/png"), "{error:?}");
    }
    assert_eq!(h.sandbox.control().counters().failed[&131_053], 2);
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
