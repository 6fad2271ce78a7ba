//! The bodies of callback requests: Meta's Cloud envelope, or the On-Premises API's flat shape.

use serde_json::{Map, Value, json};

use crate::store::StoredEvent;

/// The Cloud shape: `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"field",
/// "value"}]}]}`, rebuilt around the event's `value` — what a receiver of Meta's own webhooks expects.
#[must_use]
pub fn cloud(event: &StoredEvent) -> Vec<u8> {
    let mut value = parse(&event.payload);
    if event.kind == "status" {
        own_callback_data(&mut value);
    }
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
    let mut value = parse(&event.payload);
    if event.kind == "status" {
        own_callback_data(&mut value);
        onprem_status(&mut value);
    }
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

/// The application's view of a status of its own message: `biz_opaque_callback_data` is what the application
/// gave (as Meta echoes it to a sender), not the gateway id the gateway sent in its place (that stays in
/// `wabridge.message_id`); absent when it gave none.
fn own_callback_data(value: &mut Value) {
    let Some(status) = value.pointer_mut("/statuses/0").and_then(Value::as_object_mut) else { return };
    let Some(own) =
        status.get(crate::outbound::echo::STATUS_KEY).map(|w| w["biz_opaque_callback_data"].clone())
    else {
        return;
    };
    match own {
        Value::Null => status.remove("biz_opaque_callback_data"),
        own => status.insert("biz_opaque_callback_data".to_owned(), own),
    };
}

/// A status as the On-Premises API sent it: `id` is the id `POST /v1/messages` answered (the gateway's, for a
/// message sent through it; Meta's wamid moves to `wamid`), `"type":"message"`, and the error codes of its
/// status webhooks (the Cloud API's code kept as `cloud_code`).
fn onprem_status(value: &mut Value) {
    let Some(status) = value.pointer_mut("/statuses/0").and_then(Value::as_object_mut) else { return };
    let ours = status
        .get(crate::outbound::echo::STATUS_KEY)
        .and_then(|w| w.get("message_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(ours) = ours
        && let Some(wamid) = status.insert("id".to_owned(), Value::String(ours.clone()))
        && wamid != ours.as_str()
    {
        // (A status the gateway wrote itself, for a message Meta never took, has no wamid.)
        status.insert("wamid".to_owned(), wamid);
    }
    status.entry("type").or_insert_with(|| Value::String("message".to_owned()));
    if let Some(errors) = status.get_mut("errors").and_then(Value::as_array_mut) {
        for error in errors.iter_mut().filter_map(Value::as_object_mut) {
            let Some(cloud) = error.get("code").and_then(Value::as_i64) else { continue };
            if let Some(code) = onprem_status_code(cloud) {
                error.insert("code".to_owned(), json!(code));
                error.insert("cloud_code".to_owned(), json!(cloud));
            }
        }
    }
}

/// The On-Premises status-webhook code of a Cloud API error code, where the two name the same condition
/// (`onprem-error-codes.json`, `message_status_errors`); others keep the Cloud code.
fn onprem_status_code(cloud: i64) -> Option<i64> {
    Some(match cloud {
        // Outside the 24-hour window: "Re-engagement message".
        131_047 => 470,
        // "Spam rate limit hit".
        131_048 => 471,
        // Throughput and pair rate limits: "Rate limit hit".
        130_429 | 131_056 => 429,
        _ => return None,
    })
}

fn parse(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::store::StoredEvent;

    fn status_event(status: &Value) -> StoredEvent {
        let payload = json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100"},
            "statuses": [status]});
        StoredEvent {
            seq: 1,
            dedupe_key: "status:x:failed".into(),
            kind: "status".into(),
            field: "messages".into(),
            waba_id: "200".into(),
            phone_number_id: Some("100".into()),
            contact: Some("16315551234".into()),
            payload: payload.to_string(),
            raw_id: 1,
            created_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    fn body(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    /// A failed status of a message sent through the gateway, as each shape gives it to the application.
    #[test]
    fn statuses_of_the_applications_messages_carry_its_own_ids() {
        let event = status_event(&json!({
            "id": "wamid.ABC", "status": "failed", "timestamp": "1700000000", "recipient_id": "16315551234",
            "biz_opaque_callback_data": "gw-1",
            "errors": [{"code": 131_047, "title": "Re-engagement message", "message": "Re-engagement message"}],
            "wabridge": {"message_id": "gw-1", "biz_opaque_callback_data": "order-42"},
        }));
        let onprem = body(&super::onprem(&event));
        let status = &onprem["statuses"][0];
        assert_eq!(status["id"], "gw-1", "the id POST /v1/messages answered");
        assert_eq!(status["wamid"], "wamid.ABC");
        assert_eq!(status["type"], "message");
        assert_eq!(status["biz_opaque_callback_data"], "order-42");
        assert_eq!(status["errors"][0]["code"], 470);
        assert_eq!(status["errors"][0]["cloud_code"], 131_047);
        let cloud = body(&super::cloud(&event));
        let status = &cloud["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], "wamid.ABC", "Cloud senders know the wamid");
        assert_eq!(status["biz_opaque_callback_data"], "order-42");
        assert_eq!(status["errors"][0]["code"], 131_047);
    }

    /// A message the application gave no callback data for, and one not sent through the gateway.
    #[test]
    fn other_statuses_keep_their_ids() {
        let ours =
            status_event(&json!({"id": "wamid.A", "status": "read", "biz_opaque_callback_data": "gw-2",
            "wabridge": {"message_id": "gw-2", "biz_opaque_callback_data": null}}));
        let status = &body(&super::onprem(&ours))["statuses"][0];
        assert_eq!(status["id"], "gw-2");
        assert!(status.get("biz_opaque_callback_data").is_none(), "{status}");
        let foreign = status_event(&json!({"id": "wamid.B", "status": "read", "type": "message"}));
        let status = &body(&super::onprem(&foreign))["statuses"][0];
        assert_eq!((status["id"].as_str(), status.get("wamid")), (Some("wamid.B"), None));
        let status = &body(&super::cloud(&foreign))["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], "wamid.B");
    }
}
