//! Splitting a batched envelope into single events, each with a dedupe key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::change::ChangeValue;
use super::message::InboundMessage;
use super::status::{Status, StatusKind};
use super::value::{Contact, MessagesValue, Metadata, WebhookError};
use super::wire::Scalar;
use super::{Entry, Envelope};
use crate::ids::{PhoneNumberId, WabaId};

/// One thing that happened, cut out of a (possibly batched) webhook: one inbound message, one status, one
/// payment update, one value-level error, or one change of another field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The WABA of the entry.
    pub waba_id: WabaId,
    /// The change's field, e.g. `"messages"`.
    pub field: String,
    /// The business number's Graph id (from `metadata`), for `messages`-shaped values.
    pub phone_number_id: Option<PhoneNumberId>,
    /// The business number as displayed (from `metadata`, or the value's `display_phone_number`).
    pub display_phone_number: Option<String>,
    /// The user's WhatsApp id: `from` of a message, `recipient_id` of a status.
    pub contact: Option<String>,
    /// The user's business-scoped id (§8): `from_user_id` of a message, `recipient_user_id` of a status.
    pub contact_user_id: Option<String>,
    /// What kind of event it is.
    pub kind: EventKind,
    /// A self-contained `value` object: for `messages`, the metadata, the matching contact and just this
    /// one message, status or error; for other fields, the whole value.
    pub payload: Value,
    /// The key that makes a redelivered event a duplicate (see [`Envelope::events`]).
    pub dedupe_key: String,
}

/// The kind of a [`WebhookEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// An inbound message.
    Message {
        /// Its `type` (inferred when omitted).
        message_type: String,
    },
    /// A status update of an outbound message.
    Status {
        /// The status.
        status: String,
    },
    /// A payment update (`statuses[]` entry with `"type": "payment"`).
    Payment {
        /// The payment status as sent (`captured`, `pending`, `failed`, …).
        status: String,
    },
    /// A value-level error.
    Error {
        /// The error code.
        code: i64,
    },
    /// A change of another field (or a `messages` value with no message, status or error in it).
    Change,
}

impl EventKind {
    /// The status, for status events.
    #[must_use]
    pub fn status(&self) -> Option<StatusKind> {
        match self {
            Self::Status { status } => Some(StatusKind::from(status.as_str())),
            _ => None,
        }
    }

    /// The message type, for message events.
    #[must_use]
    pub fn message_type(&self) -> Option<&str> {
        match self {
            Self::Message { message_type } => Some(message_type),
            _ => None,
        }
    }
}

impl WebhookEvent {
    /// The inbound message of a message event, typed.
    #[must_use]
    pub fn message(&self) -> Option<InboundMessage> {
        self.single("messages")
    }

    /// The status (or payment update) of a status or payment event, typed.
    #[must_use]
    pub fn status(&self) -> Option<Status> {
        self.single("statuses")
    }

    fn single<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        let item = self.payload.get(key)?.get(0)?;
        T::deserialize(item).ok()
    }
}

impl Envelope {
    /// Splits the envelope into one event per entry × change × message, status, payment update and
    /// value-level error, in the order Meta sent them.
    ///
    /// A `messages` value holding none of those (or holding `user_preferences`) also gives one
    /// [`EventKind::Change`] event with the whole value, as does every change of another field, so nothing
    /// in the envelope is left out.
    ///
    /// Dedupe keys:
    /// - message: `msg:{wamid}`;
    /// - status: `status:{wamid}:{status}`;
    /// - payment: `payment:{id}:{status}:{transaction id}`, or `payment:{id}:{status}` when the update has no
    ///   `payment.transaction.id` (one order-details message can see several transactions with one status);
    /// - value-level error and any other change: `{field}:{sha256}`, the hex SHA-256 of the canonical JSON
    ///   (keys sorted, no spaces) of `{"entry_id": …, "entry_time": …, "value": <payload>}`. The WABA id and
    ///   the entry's time are in the hash so that two WABAs, or the same event happening again later (a
    ///   template paused twice), never share a key; a redelivery repeats the whole body and so the key (\[R\]).
    #[must_use]
    pub fn events(&self) -> Vec<WebhookEvent> {
        let mut events = Vec::new();
        for entry in &self.entry {
            for change in &entry.changes {
                match &change.value {
                    ChangeValue::Messages(value) => {
                        messages_events(entry, change.field(), value, &mut events)
                    }
                    other => {
                        let payload = serde_json::to_value(other).unwrap_or_default();
                        events.push(change_event(entry, change.field(), payload));
                    }
                }
            }
        }
        events
    }

    /// Parses a webhook body and splits it into events: the same result as
    /// `Envelope::from_slice(body).map(|e| e.events())` (the same events, or the same error), sooner.
    ///
    /// Typed parsing keeps explicit `null`s and unknown keys at every level, which costs a copy of each
    /// level's subtree; for a whole envelope that is most of the time spent on a webhook. The common body, one
    /// or more `messages` changes that hold only known keys above the items, is therefore read as plain JSON
    /// down to its items, and only the items (contacts, messages, statuses) and the metadata are parsed typed.
    /// Anything else (another field, a value-level error, an unknown or `null` key above the items, an item
    /// that does not parse) takes the full typed path, so the result never differs.
    ///
    /// # Errors
    /// When the body is not JSON or not an envelope, as [`Envelope::from_slice`].
    pub fn events_from_slice(body: &[u8]) -> Result<Vec<WebhookEvent>, serde_json::Error> {
        let common = serde_json::from_slice::<Value>(body).ok().and_then(|root| common_events(&root));
        match common {
            Some(events) => Ok(events),
            None => Ok(Self::from_slice(body)?.events()),
        }
    }
}

/// The events of an envelope made only of `messages` changes with known keys above the items, or `None`
/// when the envelope has anything else (see [`Envelope::events_from_slice`]).
fn common_events(root: &Value) -> Option<Vec<WebhookEvent>> {
    let envelope = root.as_object()?;
    if !only(envelope, &["object", "entry"]) {
        return None;
    }
    envelope.get("object")?.as_str()?;
    let mut events = Vec::new();
    for entry in envelope.get("entry")?.as_array()? {
        let entry = entry.as_object()?;
        if !only(entry, &["id", "time", "changes"]) {
            return None;
        }
        let time = match entry.get("time") {
            None => None,
            Some(Value::String(text)) => Some(Scalar::Text(text.clone())),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Scalar::Number(n.clone())),
            Some(_) => return None,
        };
        let head = Entry {
            id: WabaId::from(entry.get("id")?.as_str()?),
            time,
            changes: Vec::new(),
            extra: Map::new(),
        };
        for change in entry.get("changes")?.as_array()? {
            let change = change.as_object()?;
            if !only(change, &["field", "value"]) || change.get("field")?.as_str()? != "messages" {
                return None;
            }
            let value = messages_value(change.get("value")?.as_object()?)?;
            messages_events(&head, "messages", &value, &mut events);
        }
    }
    Some(events)
}

/// Whether `map` has no keys but `keys` and no `null` value.
fn only(map: &Map<String, Value>, keys: &[&str]) -> bool {
    map.iter().all(|(k, v)| !v.is_null() && keys.contains(&k.as_str()))
}

/// The dedupe key of a status event: `status:{wamid}:{status}` (see [`Envelope::events`]).
#[must_use]
pub fn status_dedupe_key(wamid: &str, status: &str) -> String {
    format!("status:{wamid}:{status}")
}

/// The bounds, both excluded, of the dedupe keys of every status of `wamid`: from `status:{wamid}:` to
/// `status:{wamid};` (`;` is the character after `:`). A wamid holding a `:` may bring another wamid's keys into
/// the range, so a caller compares the wamid too.
#[must_use]
pub fn status_dedupe_range(wamid: &str) -> (String, String) {
    (format!("status:{wamid}:"), format!("status:{wamid};"))
}

/// A `messages` value with only the metadata, contacts, messages and statuses, none of them `null`; the
/// items parsed typed.
fn messages_value(value: &Map<String, Value>) -> Option<MessagesValue> {
    if !only(value, &["messaging_product", "metadata", "contacts", "messages", "statuses"]) {
        return None;
    }
    fn items<T: for<'de> Deserialize<'de>>(value: &Map<String, Value>, key: &str) -> Option<Option<Vec<T>>> {
        match value.get(key) {
            None => Some(None),
            Some(items) => Vec::<T>::deserialize(items).ok().map(Some),
        }
    }
    Some(MessagesValue {
        messaging_product: value.get("messaging_product")?.as_str()?.to_owned(),
        metadata: Metadata::deserialize(value.get("metadata")?).ok()?,
        contacts: items(value, "contacts")?,
        messages: items(value, "messages")?,
        statuses: items(value, "statuses")?,
        errors: None,
        user_preferences: None,
        extra: Map::new(),
    })
}

fn messages_events(entry: &Entry, field: &str, value: &MessagesValue, events: &mut Vec<WebhookEvent>) {
    let before = events.len();
    let event =
        |contact: Option<String>, contact_user_id: Option<String>, kind, payload, dedupe_key| WebhookEvent {
            waba_id: entry.id.clone(),
            field: field.to_owned(),
            phone_number_id: Some(value.metadata.phone_number_id.clone()),
            display_phone_number: Some(value.metadata.display_phone_number.clone()),
            contact,
            contact_user_id,
            kind,
            payload,
            dedupe_key,
        };

    for message in value.messages() {
        let found = value.find_contact(Some(message.from.as_str()), message.from_user_id.as_deref());
        let payload = single_item(value, found, "messages", message);
        let kind = EventKind::Message { message_type: message.type_name().to_owned() };
        let key = format!("msg:{}", message.id);
        events.push(event(Some(message.from.to_string()), message.from_user_id.clone(), kind, payload, key));
    }

    for status in value.statuses() {
        let recipient = status.recipient_id.as_ref().map(ToString::to_string);
        let found = value.find_contact(recipient.as_deref(), status.recipient_user_id.as_deref());
        let payload = single_item(value, found, "statuses", status);
        let (kind, key) = if status.is_payment() {
            let name = status.status.as_str().to_owned();
            (EventKind::Payment { status: name.clone() }, payment_dedupe_key(status, &name))
        } else {
            let name = status.status.as_str().to_owned();
            (EventKind::Status { status: name.clone() }, status_dedupe_key(status.id.as_str(), &name))
        };
        // A payment update names the user in `from` rather than `recipient_id` ([R]).
        let contact =
            recipient.or_else(|| status.extra.get("from").and_then(Value::as_str).map(str::to_owned));
        events.push(event(contact, status.recipient_user_id.clone(), kind, payload, key));
    }

    for error in value.errors() {
        let payload = single_item::<WebhookError>(value, None, "errors", error);
        let key = hashed_key(entry, field, &payload);
        events.push(event(None, None, EventKind::Error { code: error.code }, payload, key));
    }

    if events.len() == before || value.user_preferences.is_some() {
        let payload = serde_json::to_value(value).unwrap_or_default();
        let key = hashed_key(entry, field, &payload);
        events.push(event(None, None, EventKind::Change, payload, key));
    }
}

/// The dedupe key of a payment update: `payment:{id}:{status}`, followed by `:{transaction id}` when
/// `payment.transaction.id` is present, so that two transactions of one order-details message that reach the
/// same status (a failed attempt, then another) are two events.
///
/// Note: payment events stored before the transaction id was added carry the shorter key, so a redelivery
/// of such an update after an upgrade is not recognised as a duplicate of the stored one (it is stored again
/// once, under the new key).
fn payment_dedupe_key(status: &Status, status_name: &str) -> String {
    let transaction =
        status.extra.get("payment").and_then(|p| p.get("transaction")).and_then(|t| t.get("id")).and_then(
            |id| match id {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        );
    match transaction {
        Some(transaction) => format!("payment:{}:{status_name}:{transaction}", status.id),
        None => format!("payment:{}:{status_name}", status.id),
    }
}

/// A `value` object with the metadata (and other value-level keys we do not know), the matching contact and
/// one item.
fn single_item<T: Serialize>(value: &MessagesValue, contact: Option<&Contact>, key: &str, item: &T) -> Value {
    let mut map = Map::new();
    map.insert("messaging_product".to_owned(), Value::String(value.messaging_product.clone()));
    map.insert("metadata".to_owned(), serde_json::to_value(&value.metadata).unwrap_or_default());
    for (k, v) in &value.extra {
        map.insert(k.clone(), v.clone());
    }
    if let Some(contact) = contact {
        let contact = serde_json::to_value(contact).unwrap_or_default();
        map.insert("contacts".to_owned(), Value::Array(vec![contact]));
    }
    let item = serde_json::to_value(item).unwrap_or_default();
    map.insert(key.to_owned(), Value::Array(vec![item]));
    Value::Object(map)
}

/// An event for a whole change value. The business number is taken from `metadata` when the value has one
/// (`user_preferences`, unknown fields shaped like `messages`), or from a top-level `display_phone_number`
/// (quality, name and security updates).
fn change_event(entry: &Entry, field: &str, payload: Value) -> WebhookEvent {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let metadata = payload.get("metadata");
    let phone_number_id = text(metadata.and_then(|m| m.get("phone_number_id"))).map(PhoneNumberId::from);
    let display_phone_number = text(metadata.and_then(|m| m.get("display_phone_number")))
        .or_else(|| text(payload.get("display_phone_number")));
    WebhookEvent {
        waba_id: entry.id.clone(),
        field: field.to_owned(),
        phone_number_id,
        display_phone_number,
        contact: None,
        contact_user_id: None,
        kind: EventKind::Change,
        dedupe_key: hashed_key(entry, field, &payload),
        payload,
    }
}

/// `{field}:{hex sha256}` of the canonical JSON of the entry id, entry time and payload.
fn hashed_key(entry: &Entry, field: &str, payload: &Value) -> String {
    let mut doc = Map::new();
    doc.insert("entry_id".to_owned(), Value::String(entry.id.to_string()));
    let time = match &entry.time {
        Some(Scalar::Text(text)) => Value::String(text.clone()),
        Some(Scalar::Number(number)) => Value::Number(number.clone()),
        None => Value::Null,
    };
    doc.insert("entry_time".to_owned(), time);
    doc.insert("value".to_owned(), payload.clone());
    let mut canonical = Vec::new();
    write_canonical(&Value::Object(doc), &mut canonical);
    format!("{field}:{}", hex::encode(Sha256::digest(&canonical)))
}

/// Writes JSON with object keys sorted, whatever the map type's own order (so the hash does not depend on
/// serde_json's `preserve_order` feature being on somewhere in the build).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serializing a string, number, bool or null into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::common_events;

    fn body(value: serde_json::Value) -> serde_json::Value {
        json!({"object": "whatsapp_business_account",
               "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]})
    }

    #[test]
    fn a_status_key_falls_in_its_wamid_range_only() {
        let (low, high) = super::status_dedupe_range("wamid.A");
        for status in ["sent", "delivered", "read", "failed"] {
            let key = super::status_dedupe_key("wamid.A", status);
            assert!(low < key && key < high, "{key}");
        }
        for other in ["wamid.AB", "wamid.", "wamid.B"] {
            let key = super::status_dedupe_key(other, "sent");
            assert!(!(low < key && key < high), "{key}");
        }
    }

    #[test]
    fn the_common_shapes_take_the_short_path_and_the_rest_do_not() {
        let metadata = json!({"display_phone_number": "15550783881", "phone_number_id": "106540352242922"});
        let status =
            json!({"id": "wamid.A", "status": "read", "timestamp": "1767228000", "recipient_id": "1650"});
        let message = json!({"from": "1650", "id": "wamid.B", "timestamp": "1767228000", "type": "text",
                             "text": {"body": "hi"}});
        let common = [
            json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": [status]}),
            json!({"messaging_product": "whatsapp", "metadata": metadata,
                   "contacts": [{"wa_id": "1650", "profile": {"name": "A"}}], "messages": [message]}),
        ];
        for value in common {
            assert_eq!(common_events(&body(value)).map(|e| e.len()), Some(1));
        }
        let other = [
            json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": [status],
                   "errors": [{"code": 1, "title": "x"}]}),
            json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": null}),
            json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": [{"id": 1}]}),
        ];
        for value in other {
            assert!(common_events(&body(value)).is_none());
        }
    }
}
