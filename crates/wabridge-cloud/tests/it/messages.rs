//! Sending messages and read receipts.

use serde_json::json;
use wabridge_cloud::CloudError;
use wabridge_types::PhoneNumberId;
use wabridge_types::send::{MarkRead, OutboundMessage};

use crate::harness::{Example, MockServer, PHONE_ID, assert_graph_call, assert_json_body, graph_path};

#[tokio::test]
async fn send_text_matches_the_reference() {
    let example = Example::find("Messages", "Send Text Message");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();

    let msg = OutboundMessage::text("16505551234", "text-message-content").preview_url(false);
    let sent = client.send_message(&PhoneNumberId::new(PHONE_ID), &msg).await.unwrap();
    assert_eq!(sent.message_id().unwrap().as_str(), "wamid.gBGGSFcCNEOPAgkO_KJ55r4w_ww");
    assert_eq!(sent.contacts[0].input.as_deref(), Some("48XXXXXXXXX"));

    let req = server.only_request();
    assert_graph_call(&req, "POST", &graph_path(&[PHONE_ID, "messages"]));
    assert_eq!(example.method, "POST");
    example.assert_target(&req, &[("{{Phone-Number-ID}}", PHONE_ID)]);
    let mut expected = example.body.clone();
    expected["to"] = json!("16505551234");
    assert_json_body(&req, &expected);
}

#[tokio::test]
async fn send_template_reply_parses_message_status() {
    let server = MockServer::start().await;
    server.reply(
        200,
        &json!({"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],
                "messages":[{"id":"wamid.HBgL","message_status":"accepted"}]}),
    );
    let client = server.client().build().unwrap();
    let msg = OutboundMessage::text("+16505551234", "hi").reply_to("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3");
    let sent = client.send_message(&PhoneNumberId::new(PHONE_ID), &msg).await.unwrap();
    assert_eq!(sent.messages[0].message_status.as_deref(), Some("accepted"));
    let body = server.only_request().json();
    assert_eq!(body["context"]["message_id"], "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3");
}

/// A message read from an On-Premises body has no `messaging_product`; Meta requires it, so the SDK adds it.
#[tokio::test]
async fn messaging_product_is_added_when_missing() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]}));
    let client = server.client().build().unwrap();
    let msg: OutboundMessage =
        serde_json::from_value(json!({"to": "16505551234", "type": "text", "text": {"body": "hi"}})).unwrap();
    assert!(msg.messaging_product.is_none());
    client.send_message(&PhoneNumberId::new(PHONE_ID), &msg).await.unwrap();
    assert_eq!(server.only_request().json()["messaging_product"], "whatsapp");
}

#[tokio::test]
async fn an_invalid_message_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let msg = OutboundMessage::text("16505551234", "x".repeat(4097));
    let err = client.send_message(&PhoneNumberId::new(PHONE_ID), &msg).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn mark_read_posts_the_receipt() {
    let example = Example::find("Messages", "Mark Message As Read");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    client.mark_read(&PhoneNumberId::new(PHONE_ID), &MarkRead::new("wamid.ABC123")).await.unwrap();

    let req = server.only_request();
    // The reference's legacy Postman entry used PUT; the current API (and its typing example) uses POST.
    assert_graph_call(&req, "POST", &graph_path(&[PHONE_ID, "messages"]));
    example.assert_target(&req, &[("{{Phone-Number-ID}}", PHONE_ID)]);
    let mut expected = example.body.clone();
    expected["message_id"] = json!("wamid.ABC123");
    assert_json_body(&req, &expected);
}

#[tokio::test]
async fn mark_read_with_typing_indicator() {
    let example = Example::find("Typing indicators", "Send typing indicator and read receipt");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    let receipt = MarkRead::new("wamid.ABC123").with_typing_indicator();
    client.mark_read(&PhoneNumberId::new(PHONE_ID), &receipt).await.unwrap();

    let req = server.only_request();
    assert_eq!(example.method, "POST");
    assert_graph_call(&req, "POST", &graph_path(&[PHONE_ID, "messages"]));
    let mut expected = example.body.clone();
    expected["message_id"] = json!("wamid.ABC123");
    assert_json_body(&req, &expected);
}

#[tokio::test]
async fn success_false_is_an_error_and_old_string_true_is_success() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"success": false})).reply(200, &json!({"success": "true"}));
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    let err = client.mark_read(&number, &MarkRead::new("wamid.A")).await.unwrap_err();
    assert!(matches!(err, CloudError::Unsuccessful));
    client.mark_read(&number, &MarkRead::new("wamid.A")).await.unwrap();
}

/// A receipt read from an On-Premises body has no `messaging_product`; Meta requires it, so the SDK adds it
/// as it does for sends.
#[tokio::test]
async fn mark_read_adds_messaging_product_when_missing() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"success": true}));
    let client = server.client().build().unwrap();
    let receipt: MarkRead =
        serde_json::from_value(json!({"status": "read", "message_id": "wamid.ABC123"})).unwrap();
    assert!(receipt.messaging_product.is_none());
    client.mark_read(&PhoneNumberId::new(PHONE_ID), &receipt).await.unwrap();
    let body = server.only_request().json();
    assert_eq!(
        body,
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC123"})
    );
}
