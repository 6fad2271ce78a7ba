//! The bodies of callback requests: Meta's Cloud envelope, or the On-Premises API's flat shape.

use serde_json::{Map, Value, json};

use crate::store::StoredEvent;

/// The Cloud shape: `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"field",
/// "value"}]}]}`, rebuilt around the event's `value` — what a receiver of Meta's own webhooks expects.
#[must_use]
pub fn cloud(event: &StoredEvent) -> Vec<u8> {
    let value = parse(&event.payload);
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": event.waba_id, "changes": [{"field": event.field, "value": value}]}],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The On-Premises shape, flat: `{"contacts":[…],"messages":[…]}` for a message, `{"statuses":[…]}` for a
/// status or payment, `{"errors":[…]}` for an error. Other changes (template updates, account events),
/// which the On-Premises API never sent, come as their `value` with the change's `field` added.
#[must_use]
pub fn onprem(event: &StoredEvent) -> Vec<u8> {
    let value = parse(&event.payload);
    let pick = |keys: &[&str]| {
        let mut out = Map::new();
        for key in keys {
            if let Some(v) = value.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
        Value::Object(out)
    };
    let body = match event.kind.as_str() {
        "message" => pick(&["contacts", "messages"]),
        "status" | "payment" => pick(&["statuses"]),
        "error" => pick(&["errors"]),
        _ => {
            let mut out = match value {
                Value::Object(map) => map,
                other => {
                    let mut map = Map::new();
                    map.insert("value".to_owned(), other);
                    map
                }
            };
            out.remove("messaging_product");
            out.remove("metadata");
            out.insert("field".to_owned(), Value::String(event.field.clone()));
            Value::Object(out)
        }
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn parse(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()))
}
