//! Row decoding shared by both backends: the columns have the same names and Rust types on each.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{OutboundMessage, OutboundState, RawWebhook, StoredEvent, from_millis};

/// The columns [`stored_event`] reads, in its order.
pub(super) const EVENT_COLUMNS: &str =
    "seq, dedupe_key, kind, field, waba_id, phone_number_id, contact, payload, raw_id, created_at";

/// Decodes a row of [`EVENT_COLUMNS`].
pub(super) fn stored_event<'r, R>(row: &'r R) -> Result<StoredEvent, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        dedupe_key: row.try_get("dedupe_key")?,
        kind: row.try_get("kind")?,
        field: row.try_get("field")?,
        waba_id: row.try_get("waba_id")?,
        phone_number_id: row.try_get("phone_number_id")?,
        contact: row.try_get("contact")?,
        payload: row.try_get("payload")?,
        raw_id: row.try_get("raw_id")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// The columns [`raw_webhook`] reads.
pub(super) const RAW_COLUMNS: &str = "id, received_at, body, signature_ok, reject_reason, processed_at";

/// Decodes a row of [`RAW_COLUMNS`].
pub(super) fn raw_webhook<'r, R>(row: &'r R) -> Result<RawWebhook, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RawWebhook {
        id: row.try_get("id")?,
        received_at: from_millis(row.try_get("received_at")?),
        body: row.try_get("body")?,
        signature_ok: row.try_get("signature_ok")?,
        reject_reason: row.try_get("reject_reason")?,
        processed_at: row.try_get::<Option<i64>, _>("processed_at")?.map(from_millis),
    })
}

/// The columns [`outbound_message`] reads.
pub(super) const OUTBOUND_COLUMNS: &str =
    "id, phone_number_id, recipient, wamid, state, body, created_at, updated_at, last_error";

/// Decodes a row of [`OUTBOUND_COLUMNS`].
pub(super) fn outbound_message<'r, R>(row: &'r R) -> Result<OutboundMessage, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let state = state.parse::<OutboundState>().map_err(|()| sqlx::Error::ColumnDecode {
        index: "state".to_owned(),
        source: format!("unknown outbound state {state:?}").into(),
    })?;
    Ok(OutboundMessage {
        id: row.try_get("id")?,
        phone_number_id: row.try_get("phone_number_id")?,
        recipient: row.try_get("recipient")?,
        wamid: row.try_get("wamid")?,
        state,
        body: row.try_get("body")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        last_error: row.try_get("last_error")?,
    })
}
