//! Giving an application its own callback data back in the status events of its messages.
//!
//! The gateway sends its own message id to Meta in `biz_opaque_callback_data` (that is how a send whose answer
//! was lost is reconciled), so Meta's statuses carry the gateway id, not what the application passed to
//! `POST /v1/messages`. At intake, each status event of a message sent through the gateway gets a `wabridge`
//! object in its status: `{"message_id": <gateway id>, "biz_opaque_callback_data": <the application's, or
//! null>}` — on every path out of the log (events API, WebSockets, both callback shapes). The raw webhook
//! body is still stored exactly as Meta sent it.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::store::{IntakeBatchItem, Store, StoreError};

/// The key added to a status object.
pub const STATUS_KEY: &str = "wabridge";

/// Adds the `wabridge` object to the status events of `item` whose callback data names a gateway message.
///
/// # Errors
/// The lookup failed. The webhook must then not be stored: its events would keep Meta's form for good (a
/// redelivery is a duplicate), and the application would never get its data back for them. Answered 500,
/// Meta delivers it again.
pub async fn attach_application_data(store: &Store, item: &mut IntakeBatchItem) -> Result<(), StoreError> {
    let mut wanted: Vec<(usize, Value, String)> = Vec::new();
    for (i, event) in item.events.iter().enumerate() {
        if event.kind != "status" || !event.payload.contains("biz_opaque_callback_data") {
            continue;
        }
        let Ok(payload) = serde_json::from_str::<Value>(&event.payload) else { continue };
        let id = payload
            .pointer("/statuses/0/biz_opaque_callback_data")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(id) = id {
            wanted.push((i, payload, id));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = wanted.iter().map(|(_, _, id)| id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let known: HashMap<String, Option<String>> =
        store.outbound_callback_data(&ids).await?.into_iter().collect();
    for (i, mut payload, id) in wanted {
        let Some(app_data) = known.get(&id) else { continue };
        let Some(status) = payload.pointer_mut("/statuses/0").and_then(Value::as_object_mut) else {
            continue;
        };
        status.insert(STATUS_KEY.to_owned(), json!({"message_id": id, "biz_opaque_callback_data": app_data}));
        if let (Some(event), Ok(text)) = (item.events.get_mut(i), serde_json::to_string(&payload)) {
            event.payload = text;
        }
    }
    Ok(())
}
