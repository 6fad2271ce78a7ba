//! One request to Meta: the message's durable `sending` mark, its departure slot, the request itself, and the
//! error as the store keeps it.

use std::time::{Duration, Instant};

use serde_json::json;
use wabridge_cloud::CloudError;
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::send::OutboundMessage;

use super::Shared;
use crate::store::{OutboundOp, QueuedMessage};

/// Why a send did not end with a wamid.
pub(super) enum SendFailure {
    /// Marking it `sending` failed: nothing went to Meta.
    NotStarted,
    /// It was no longer queued when it was to be marked `sending` (cancelled or expired since it was loaded):
    /// nothing went to Meta, and nothing will.
    Gone,
    /// Meta (or the transport) answered with an error.
    Cloud(CloudError),
    /// The stored body no longer reads as a message (stored by another version, say): it never will.
    Unsendable(String),
}

/// The least time between two requests of a number at `level` messages per second.
pub(super) fn departure_spacing(level: u32) -> Duration {
    Duration::from_secs_f64(1.0 / f64::from(level.max(1)))
}

pub(super) async fn send(
    shared: &Shared,
    number: &PhoneNumberId,
    message: &QueuedMessage,
    depart_at: tokio::time::Instant,
    spacing: Duration,
) -> Result<String, SendFailure> {
    let Some(client) = &shared.client else { return Err(SendFailure::NotStarted) };
    let mut request: OutboundMessage = match serde_json::from_str(&message.body) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "stored message body does not parse; the message fails");
            return Err(SendFailure::Unsendable(e.to_string()));
        }
    };
    request.biz_opaque_callback_data = Some(message.id.clone());
    match shared.writer.apply(OutboundOp::MarkSending { id: message.id.clone() }).await {
        Ok(true) => {}
        // Cancelled (or expired) since it was loaded: it must not go.
        Ok(false) => return Err(SendFailure::Gone),
        Err(_) => return Err(SendFailure::NotStarted),
    }
    // The limiters admitted this send before its durable mark; marks commit in groups, so sends admitted
    // apart would leave together when their commit lands. Leaving at admission + a fixed lag keeps the
    // admitted spacing (per number, per recipient, per WABA); a commit slower than the lag is still spaced
    // from the number's previous request.
    let depart = async {
        tokio::time::sleep_until(depart_at).await;
        if let Some(at) = shared.departure(number.as_str(), spacing) {
            tokio::time::sleep_until(at).await;
        }
        while let Err(wait) = shared.leave(number.as_str(), spacing) {
            tokio::time::sleep(wait).await;
        }
    };
    tokio::select! {
        biased;
        () = shared.cancel.cancelled() => {
            // Stopping before it left: back to the queue (durably), not `sending` of unknown outcome.
            let back = OutboundOp::Unmark { id: message.id.clone() };
            if shared.writer.apply(back).await.is_err() {
                tracing::warn!("a send stopped before it left stays `sending`; reconciled at the next start");
            }
            return Err(SendFailure::NotStarted);
        }
        () = depart => {}
    }
    let started = Instant::now();
    let result = client.send_message(number, &request).await;
    shared.metrics.outbound_send_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(resp) => match resp.messages.first() {
            Some(m) => Ok(m.id.to_string()),
            None => Err(SendFailure::Cloud(CloudError::Unsuccessful)),
        },
        Err(e) => Err(SendFailure::Cloud(e)),
    }
}

/// Meta's error as stored in `last_error`: a one-element `errors` array like a failed status's.
///
/// A failure without a Graph error gets the Graph code that says what happened — 131016 (service
/// unavailable) when Meta could not be reached or answered 5xx or 429 without an error body (another status
/// without one, a proxy's 401 or 404 say, is 131000: not a passing outage), 131008/131009 when the
/// SDK refused the message, 131053 for media, else 131000 (generic) — never 0, which is Meta's
/// AuthException: a Cloud-compatible caller would read "invalid token".
pub(super) fn error_json(e: &CloudError) -> String {
    let value = match e.graph_error() {
        Some(g) => json!([{"code": g.code, "title": g.message, "message": g.message,
            "error_data": {"details": g.details()}}]),
        None => {
            let code = match e {
                CloudError::Http(_) => 131_016,
                CloudError::Status { status, .. } if *status >= 500 || *status == 429 => 131_016,
                CloudError::Invalid(wabridge_types::validate::ValidationError::Missing { .. }) => 131_008,
                CloudError::Invalid(_) => 131_009,
                CloudError::Media(_) | CloudError::MediaTooLarge { .. } => 131_053,
                _ => 131_000,
            };
            let title = wabridge_types::error::code_info(code).map_or("Something went wrong", |i| i.title);
            let details = match std::error::Error::source(e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            };
            json!([{"code": code, "title": title, "message": title, "error_data": {"details": details}}])
        }
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_code(e: &CloudError) -> i64 {
        let v: serde_json::Value = serde_json::from_str(&error_json(e)).unwrap();
        v[0]["code"].as_i64().unwrap()
    }

    /// A failure without a Graph error is stored with a Graph code about the failure, never 0 (Meta's
    /// AuthException, which a Cloud SDK reads as a bad token).
    #[test]
    fn failures_without_a_graph_error_are_stored_with_a_graph_code() {
        let unavailable =
            CloudError::Status { status: 503, snippet: "busy".into(), retry_after_header: None };
        assert_eq!(stored_code(&unavailable), 131_016);
        let missing =
            CloudError::Invalid(wabridge_types::validate::ValidationError::Missing { field: "to".into() });
        assert_eq!(stored_code(&missing), 131_008);
        assert_eq!(stored_code(&CloudError::Unsuccessful), 131_000);
        let v: serde_json::Value = serde_json::from_str(&error_json(&unavailable)).unwrap();
        assert_eq!(v[0]["title"], "Service unavailable");
        assert!(v[0]["error_data"]["details"].as_str().unwrap().contains("503"), "{v}");
    }
}
