//! Webhook envelope: Meta's examples, our own fixtures (older and current shapes), event splitting and the
//! status-ordering rule. Shared helpers here; the tests are in the submodules.

mod events;
mod fast_split;
mod fields;
mod messages;
mod meta;
mod statuses;

use serde_json::Value;
use wabridge_types::webhook::{ChangeValue, Envelope, InboundMessage, MessagesValue, Status};

/// Parses a body, checks that serializing it again gives the same JSON, and returns the envelope.
fn round_trip(body: &Value) -> Envelope {
    let bytes = serde_json::to_vec(body).unwrap();
    let envelope = Envelope::from_slice(&bytes).unwrap();
    let again = serde_json::to_value(&envelope).unwrap();
    assert_eq!(&again, body, "parse → serialize changed the JSON");
    let reparsed = Envelope::from_slice(&envelope.to_vec().unwrap()).unwrap();
    assert_eq!(reparsed, envelope);
    envelope
}

fn fixture(name: &str) -> (Value, Envelope) {
    let path = format!("{}/tests/fixtures/webhook/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body: Value = serde_json::from_str(&text).unwrap();
    let envelope = round_trip(&body);
    (body, envelope)
}

fn value_at(envelope: &Envelope, entry: usize, change: usize) -> &ChangeValue {
    &envelope.entry[entry].changes[change].value
}

fn messages_value(envelope: &Envelope) -> &MessagesValue {
    match value_at(envelope, 0, 0) {
        ChangeValue::Messages(value) => value,
        other => panic!("expected a messages value, got {other:?}"),
    }
}

fn only_message(envelope: &Envelope) -> &InboundMessage {
    let messages = messages_value(envelope).messages();
    assert_eq!(messages.len(), 1);
    &messages[0]
}

fn only_status(envelope: &Envelope) -> &Status {
    let statuses = messages_value(envelope).statuses();
    assert_eq!(statuses.len(), 1);
    &statuses[0]
}

/// The bytes to post are Meta's escaped form: all ASCII, non-ASCII as `\uXXXX` (a surrogate pair above
/// U+FFFF), and they read back as the same envelope.
#[test]
fn envelopes_serialize_with_non_ascii_escaped() {
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
          "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
          "messages": [{"from": "3", "id": "wamid.U", "timestamp": "1", "type": "text",
                        "text": {"body": "ol\u{e1} \u{1F600}"}}]}}]}]});
    let envelope = Envelope::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
    let bytes = envelope.to_vec().unwrap();
    assert!(bytes.is_ascii());
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(r"ol\u00e1 \ud83d\ude00"), "{text}");
    assert_eq!(Envelope::from_slice(&bytes).unwrap(), envelope);
}
