//! Splitting envelopes into events, dedupe keys, and the builders.

use serde_json::{Value, json};
use wabridge_types::webhook::{
    Contact, Envelope, EventKind, InboundMessage, MessageContent, MessagesValue, Metadata, Scalar, Status,
    StatusKind, Text, WebhookError,
};

use super::round_trip;

fn batched_envelope() -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "300000000000001",
                "time": 1767227000,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": { "display_phone_number": "15550001111", "phone_number_id": "400000000000001" },
                            "contacts": [
                                { "profile": { "name": "A" }, "wa_id": "111", "user_id": "US.1" },
                                { "profile": { "name": "B" }, "wa_id": "222" }
                            ],
                            "messages": [
                                { "from": "111", "from_user_id": "US.1", "id": "wamid.M1", "timestamp": "1767227000",
                                  "type": "text", "text": { "body": "one" } },
                                { "from": "222", "id": "wamid.M2", "timestamp": "1767227001",
                                  "type": "reaction", "reaction": { "message_id": "wamid.O1", "emoji": "🎉" } }
                            ]
                        }
                    },
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": { "display_phone_number": "15550001111", "phone_number_id": "400000000000001" },
                            "contacts": [ { "profile": { "name": "B" }, "wa_id": "222" } ],
                            "statuses": [
                                { "id": "wamid.O1", "status": "delivered", "timestamp": "1767227002", "recipient_id": "222" },
                                { "id": "wamid.O1", "status": "read", "timestamp": "1767227003", "recipient_id": "222" }
                            ],
                            "errors": [ { "code": 131000, "title": "Something went wrong" } ]
                        }
                    },
                    {
                        "field": "message_template_status_update",
                        "value": { "event": "REJECTED", "message_template_id": 1, "message_template_name": "t",
                                   "message_template_language": "en", "reason": "INVALID_FORMAT" }
                    }
                ]
            },
            {
                "id": "300000000000002",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": { "display_phone_number": "15550002222", "phone_number_id": "400000000000002" },
                            "statuses": [
                                { "id": "wamid.O2", "status": "failed", "timestamp": "1767227004", "recipient_id": "333",
                                  "recipient_user_id": "US.3",
                                  "errors": [ { "code": 131026, "title": "Message undeliverable" } ] }
                            ]
                        }
                    },
                    {
                        "field": "account_review_update",
                        "value": { "decision": "APPROVED" }
                    }
                ]
            }
        ]
    })
}

#[test]
fn a_batched_envelope_gives_one_event_per_item() {
    let envelope = round_trip(&batched_envelope());
    let events = envelope.events();
    let keys: Vec<&str> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
    assert_eq!(events.len(), 8, "{keys:?}");
    assert_eq!(
        &keys[..4],
        ["msg:wamid.M1", "msg:wamid.M2", "status:wamid.O1:delivered", "status:wamid.O1:read"]
    );
    assert!(keys[4].starts_with("messages:"));
    assert!(keys[5].starts_with("message_template_status_update:"));
    assert_eq!(keys[6], "status:wamid.O2:failed");
    assert!(keys[7].starts_with("account_review_update:"));

    let waba: Vec<&str> = events.iter().map(|e| e.waba_id.as_str()).collect();
    assert_eq!(waba[..6], ["300000000000001"; 6]);
    assert_eq!(waba[6..], ["300000000000002"; 2]);

    let contacts: Vec<Option<&str>> = events.iter().map(|e| e.contact.as_deref()).collect();
    assert_eq!(contacts, [Some("111"), Some("222"), Some("222"), Some("222"), None, None, Some("333"), None]);
    assert_eq!(events[0].contact_user_id.as_deref(), Some("US.1"));
    assert_eq!(events[6].contact_user_id.as_deref(), Some("US.3"));

    let numbers: Vec<Option<&str>> =
        events.iter().map(|e| e.phone_number_id.as_ref().map(|p| p.as_str())).collect();
    let first = Some("400000000000001");
    assert_eq!(numbers, [first, first, first, first, first, None, Some("400000000000002"), None]);
    assert_eq!(events[0].display_phone_number.as_deref(), Some("15550001111"));

    assert_eq!(events[0].kind.message_type(), Some("text"));
    assert_eq!(events[1].kind.message_type(), Some("reaction"));
    assert_eq!(events[3].kind.status(), Some(StatusKind::Read));
    assert_eq!(events[4].kind, EventKind::Error { code: 131_000 });
    assert_eq!(events[6].kind.status(), Some(StatusKind::Failed));
    assert_eq!(events[7].kind, EventKind::Change);

    // Each payload is a self-contained single-item value with only the matching contact.
    let p = &events[1].payload;
    assert_eq!(p["messaging_product"], "whatsapp");
    assert_eq!(p["metadata"]["phone_number_id"], "400000000000001");
    assert_eq!(p["contacts"], json!([{ "profile": { "name": "B" }, "wa_id": "222" }]));
    assert_eq!(p["messages"].as_array().unwrap().len(), 1);
    assert!(p.get("statuses").is_none());
    let value: MessagesValue = serde_json::from_value(p.clone()).unwrap();
    assert_eq!(value.messages()[0].id.as_str(), "wamid.M2");
    assert_eq!(events[0].message().unwrap().id.as_str(), "wamid.M1");
    assert_eq!(events[3].status().unwrap().status, StatusKind::Read);
    assert!(events[6].payload.get("contacts").is_none(), "no contact was sent for it");
    assert_eq!(events[7].payload, json!({ "decision": "APPROVED" }));

    // Events serialize for the event log.
    let stored = serde_json::to_value(&events[2]).unwrap();
    assert_eq!(stored["kind"], json!({ "kind": "status", "status": "delivered" }));
}

#[test]
fn a_redelivered_envelope_gives_identical_keys() {
    let first = Envelope::from_slice(&serde_json::to_vec(&batched_envelope()).unwrap()).unwrap();
    let pretty = serde_json::to_string_pretty(&batched_envelope()).unwrap();
    let second = Envelope::from_slice(pretty.as_bytes()).unwrap();
    let keys = |e: &Envelope| e.events().into_iter().map(|ev| ev.dedupe_key).collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&second));
    assert_eq!(first.events(), second.events());

    // A retry written with its keys in another order and other spacing: same keys (the hash is over
    // canonical JSON).
    let a = br#"{"object":"whatsapp_business_account","entry":[{"id":"9","time":5,"changes":[
        {"field":"account_alerts","value":{"entity_type":"WABA","entity_id":"9",
         "alert_info":{"alert_severity":"CRITICAL","alert_type":"X"}}}]}]}"#;
    let b = br#"{"entry":[{"changes":[{"value":{"alert_info":{"alert_type":"X", "alert_severity":"CRITICAL"},
         "entity_id":"9","entity_type":"WABA"},"field":"account_alerts"}],"time":5,"id":"9"}],
         "object":"whatsapp_business_account"}"#;
    let (a, b) = (Envelope::from_slice(a).unwrap(), Envelope::from_slice(b).unwrap());
    assert_eq!(keys(&a), keys(&b));
    assert!(keys(&a)[0].starts_with("account_alerts:"));
}

#[test]
fn hashed_keys_tell_wabas_and_times_apart() {
    let review = |waba: &str, time: i64| {
        let body = json!({ "object": "whatsapp_business_account", "entry": [
            { "id": waba, "time": time, "changes": [ { "field": "account_review_update", "value": { "decision": "APPROVED" } } ] }
        ]});
        round_trip(&body).events().remove(0).dedupe_key
    };
    assert_eq!(review("1", 100), review("1", 100));
    assert_ne!(review("1", 100), review("2", 100));
    assert_ne!(review("1", 100), review("1", 200));
}

#[test]
fn an_empty_messages_value_still_gives_an_event() {
    let envelope = Envelope::messages("300", MessagesValue::new(Metadata::new("15550001111", "400")));
    let events = envelope.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Change);
    assert!(events[0].dedupe_key.starts_with("messages:"));
}

// ---------------------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------------------

#[test]
fn builders_produce_the_current_shape() {
    let contact = Contact::new("16505551234", "Ana").with_user_id("US.42");
    let message = InboundMessage::new(
        "16505551234",
        "wamid.B1",
        Scalar::unix(1_767_228_000),
        MessageContent::Text(Text::new("hello")),
    )
    .with_from_user_id("US.42");
    let status = Status::new("wamid.O9", StatusKind::Delivered, Scalar::unix(1_767_228_001), "16505551234")
        .with_recipient_user_id("US.42");
    let value = MessagesValue::new(Metadata::new("15550783881", "106540352242922"))
        .with_contact(contact.clone())
        .with_contact(contact)
        .with_message(message)
        .with_status(status)
        .with_error(WebhookError::new(131_000, "Something went wrong", "try later"));
    let envelope = Envelope::messages("102290129340398", value);
    let body = serde_json::to_value(&envelope).unwrap();
    let v = &body["entry"][0]["changes"][0];
    assert_eq!(v["field"], "messages");
    assert_eq!(v["value"]["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(v["value"]["contacts"][0]["user_id"], "US.42");
    assert_eq!(v["value"]["messages"][0]["type"], "text");
    assert_eq!(v["value"]["messages"][0]["from_user_id"], "US.42");
    assert_eq!(v["value"]["statuses"][0]["recipient_user_id"], "US.42");
    assert_eq!(v["value"]["messages"][0]["text"]["body"], "hello");
    assert_eq!(v["value"]["messages"][0]["timestamp"], "1767228000");
    assert_eq!(v["value"]["statuses"][0]["status"], "delivered");
    assert_eq!(v["value"]["errors"][0]["error_data"]["details"], "try later");
    assert_eq!(round_trip(&body), envelope);
    let events = envelope.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].payload["contacts"][0]["wa_id"], "16505551234");
    assert_eq!(events[0].contact_user_id.as_deref(), Some("US.42"));
}
