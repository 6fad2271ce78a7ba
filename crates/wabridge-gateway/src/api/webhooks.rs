//! `POST /v1/webhooks/reprocess` (admin): webhooks stored as rejected (correctly signed, but not an envelope
//! this version understood) are read again with the current parser — after an upgrade that learned a new
//! shape, say. Those it now understands are committed through the intake like a new delivery (the raw row is
//! the same, found by its body's hash; their events are deduplicated as usual, so running this twice adds
//! nothing) and marked re-processed; the others stay rejected, with the current reason in the answer.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::api_error::{ApiError, meta};
use crate::auth::{Principal, Scope};

/// Rows read per page.
const PAGE: u32 = 100;
/// At most this many of the bodies that stay rejected are listed in the answer (all are counted).
const LISTED: usize = 100;

/// `POST /v1/webhooks/reprocess`.
pub async fn reprocess(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let (mut reprocessed, mut events_inserted, mut still_rejected) = (0_u64, 0_u64, 0_u64);
    let mut listed = Vec::new();
    let mut after = 0;
    loop {
        let page = state.store.rejected_webhooks_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in page {
            let body = Bytes::from(row.body);
            match crate::intake::parse(&body, row.signature_ok) {
                Ok((item, media)) => {
                    let outcome = crate::intake::commit(&state, item, media, false).await?;
                    events_inserted += outcome.item.events_inserted as u64;
                    // Another call may have marked it meanwhile; its events are stored either way.
                    if state.store.mark_reprocessed(row.id).await? {
                        reprocessed += 1;
                        state.metrics.webhooks_reprocessed.inc();
                    }
                }
                Err(reason) => {
                    still_rejected += 1;
                    if listed.len() < LISTED {
                        listed.push(json!({"id": row.id, "reason": reason}));
                    }
                }
            }
        }
    }
    if reprocessed > 0 {
        tracing::info!(reprocessed, events_inserted, still_rejected, "rejected webhooks re-processed");
    }
    Ok(Json(json!({
        "reprocessed": reprocessed,
        "events_inserted": events_inserted,
        "still_rejected": still_rejected,
        "rejected": listed,
        "meta": meta(),
    })))
}
