//! The HTTP ceiling: a no-op axum handler answering 200 to a POST with a webhook-sized body.

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;

use super::{Machine, Result};
use crate::Common;
use crate::load::{self, LoadReport};

/// A body the size of a typical status webhook.
const BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","status":"delivered","timestamp":"1750263773","recipient_id":"16505551234"}]},"field":"messages"}]}]}"#;

/// Serves a handler that reads the body and answers 200, and loads it with the default body.
pub async fn noop(common: &Common) -> anyhow::Result<Result> {
    let report = serve_and_load(common, |host, path| {
        Arc::new(move |_c: usize, _n: u64, out: &mut Vec<u8>| {
            load::post_json(out, path, &host, BODY.as_bytes(), &[]);
        })
    })
    .await?;
    Ok(Result {
        scenario: "noop",
        setup: serde_json::json!({"connections": common.connections, "load_threads": common.load_threads}),
        load: report,
        machine: Machine::here(),
    })
}

/// Serves a no-op handler at `/webhook` and loads it with the requests `make(host, path)` builds: the HTTP
/// ceiling of this machine for that traffic.
pub async fn serve_and_load(
    common: &Common,
    make: impl FnOnce(String, &'static str) -> Arc<dyn load::RequestFactory>,
) -> anyhow::Result<LoadReport> {
    let app = Router::new().route("/webhook", post(|_body: Bytes| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = super::nodelay(listener);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let plan = common.plan(addr);
    let factory = make(addr.to_string(), "/webhook");
    let report = tokio::task::spawn_blocking(move || load::run(plan, factory)).await?;
    server.abort();
    Ok(report)
}
