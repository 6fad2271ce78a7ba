//! `GET /v1/events/ws`: a WebSocket subscriber of the event log.
//!
//! Authenticated before the upgrade (a refused credential gets a 401, never a socket). Each subscriber is
//! one task running a [`Subscription`]: it never blocks the feed, intake or other subscribers; when its
//! socket is slow it simply reads the feed later, and when it has fallen too far behind it catches up from
//! the store. Keep-alive: the server pings every `events.ping_interval_ms`; a peer from which nothing was
//! heard — no frame, no progress writing to it — for `events.idle_timeout_ms` is closed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};

use super::Subscription;
use super::api::EventsQuery;
use crate::AppState;
use crate::api_error::ApiError;
use crate::auth::{Credential, Principal, Scope};

/// Bytes tungstenite buffers before writing to the socket: small, so a slow peer shows as slow writes
/// early (and so as progress or its absence), rather than as one long flush.
const WRITE_BUFFER: usize = 16 * 1024;

/// Bytes tungstenite reads into per attempt. It zero-fills that much of its buffer before every read attempt
/// (128 KiB by default), and a subscriber's socket is polled for reading each time events wake it, although
/// a subscriber only ever sends pongs and a close: a small buffer keeps this from costing more than the
/// fan-out itself.
const READ_BUFFER: usize = 4 * 1024;

/// The largest frame or message a subscriber may send (its pings, pongs and close carry at most 125 bytes).
const MAX_INCOMING: usize = 64 * 1024;

/// Upgrades after checking the credential, the scope and the query.
pub(super) async fn upgrade(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<EventsQuery>, QueryRejection>,
    ws: WebSocketUpgrade,
    slot: Option<axum::Extension<crate::tls::ConnectionSlot>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    principal.require(Scope::Events)?;
    // Kept to ask again while the socket lasts: a revoked key, a logout, an expired login or a token removed
    // by a reload ends the subscription (close code 1008) at the next ping.
    let credential = Credential::from_request(&headers, &uri);
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let after = query.after()?;
    let filter = query.filter()?;
    let mut subscription = Subscription::new(
        state.feed.clone(),
        state.store.clone(),
        state.hooks.clone(),
        filter,
        after,
        state.config.events.page_size,
    );
    // A subscriber resuming after a seq below it may have missed events retention deleted: the upgrade's
    // answer says how far that went, as `GET /v1/events` does with `pruned_through`.
    // (A store that cannot say leaves the header out rather than refusing the subscriber.)
    let pruned_through = crate::retention::pruned_through(&state.store).await.ok();
    // Retention running while it catches up could delete events it has not read yet, after the header was
    // sent: the subscription then ends (code 4001) before it hands out anything past the gap, and the
    // subscriber's next upgrade tells it the new mark.
    subscription.watch_pruning(pruned_through.unwrap_or(0));
    let mut response = ws
        .write_buffer_size(WRITE_BUFFER)
        .read_buffer_size(READ_BUFFER)
        // A subscriber sends only pongs, pings and a close: no reason to buffer axum's default 64 MiB.
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            // The connection counts against `http.max_connections` for as long as the subscriber stays.
            let _slot = slot;
            serve(socket, subscription, state, credential).await;
        });
    if let Some(pruned_through) = pruned_through {
        response.headers_mut().insert(PRUNED_THROUGH_HEADER, axum::http::HeaderValue::from(pruned_through));
    }
    Ok(response)
}

/// The header of the upgrade's answer giving the highest seq retention has deleted (0 when none).
pub const PRUNED_THROUGH_HEADER: &str = "x-wabridge-pruned-through";

/// Decrements the subscriber gauge however the connection ends.
struct Connected(Arc<AppState>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.metrics.ws_subscribers.dec();
    }
}

/// Why a subscription ended, as told in the close frame.
const REVOKED: &str = "credential no longer valid";
const PRUNED: &str = "events after your seq were pruned while you caught up; reconnect to read the new mark";

/// The close code when retention deleted events the subscriber had not read yet (a private-use code,
/// RFC 6455 7.4.2): reconnect with `after` = the last seq handled, and read `X-Wabridge-Pruned-Through`.
pub const CLOSE_PRUNED: u16 = 4001;

/// What one wait for events gives back: the subscription itself with its result. The wait owns the
/// subscription, so it survives the other branches of the connection's loop (pings, frames from the peer)
/// instead of being dropped and started again: a page read from the store that takes longer than the ping
/// interval would otherwise never complete.
type NextEvents = std::pin::Pin<
    Box<
        dyn Future<Output = (Subscription, Result<Option<Vec<super::FeedEvent>>, super::SubscriptionError>)>
            + Send,
    >,
>;

fn next_events(mut subscription: Subscription) -> NextEvents {
    Box::pin(async move {
        let next = subscription.next().await;
        (subscription, next)
    })
}

async fn serve(
    socket: WebSocket,
    subscription: Subscription,
    state: Arc<AppState>,
    credential: Option<Credential>,
) {
    state.metrics.ws_subscribers.inc();
    let _connected = Connected(state.clone());
    let config = &state.config.events;
    let idle = Duration::from_millis(config.idle_timeout_ms.max(1));
    let mut ping = tokio::time::interval(Duration::from_millis(config.ping_interval_ms.max(1)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let (mut sink, mut stream) = socket.split();
    let mut heard = Instant::now();
    let mut cursor = subscription.cursor();
    let mut waiting = next_events(subscription);
    let reason = loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break "shutdown",
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) | None => break "closed by peer",
                Some(Err(_)) => break "socket error",
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > idle {
                    break "peer idle (no pong)";
                }
                match crate::auth::principal_for(credential.as_ref(), &state).await {
                    Ok(principal) if principal.require(Scope::Events).is_ok() => {}
                    // The store could not say: keep the subscriber, and ask again at the next ping.
                    Err(e) if e.status.is_server_error() => {}
                    _ => break REVOKED,
                }
                if !matches!(timeout(idle, sink.send(Message::Ping(Bytes::new()))).await, Ok(Ok(()))) {
                    break "ping could not be written";
                }
            },
            (subscription, next) = &mut waiting => {
                cursor = subscription.cursor();
                waiting = next_events(subscription);
                match next {
                Ok(Some(events)) => {
                    let mut sent = 0_u64;
                    let mut stalled = false;
                    for event in events {
                        // Each frame must find room within the idle timeout; room appearing is progress.
                        if !matches!(timeout(idle, sink.feed(Message::Text(event.frame))).await, Ok(Ok(()))) {
                            stalled = true;
                            break;
                        }
                        sent += 1;
                        heard = Instant::now();
                    }
                    state.metrics.events_fanned_out.add(sent);
                    if stalled || !matches!(timeout(idle, sink.flush()).await, Ok(Ok(()))) {
                        break "peer not reading";
                    }
                }
                Ok(None) => break "feed stopped",
                Err(super::SubscriptionError::Pruned { cursor, through }) => {
                    tracing::info!(cursor, through, "retention deleted events a subscriber had not read; closing it");
                    break PRUNED;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a subscriber could not read the log; closing it");
                    break "store error";
                }
                }
            },
        }
    };
    tracing::debug!(reason, cursor, "WebSocket subscriber ends");
    let code = match reason {
        // 1008: policy violation, the code for "no longer allowed" (RFC 6455, 7.4.1).
        REVOKED => 1008,
        PRUNED => CLOSE_PRUNED,
        _ => 1000,
    };
    let close = CloseFrame { code, reason: reason.into() };
    let _ = timeout(Duration::from_secs(1), sink.send(Message::Close(Some(close)))).await;
}
