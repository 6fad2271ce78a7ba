//! `sandbox`: the Cloud API sandbox alone, levels lifted, under a saturating client — it must never be
//! what bounds the gateway's benchmarks.

use std::sync::Arc;

use wabridge_sandbox::{Sandbox, SandboxConfig};

use super::{Machine, Result};
use crate::Common;
use crate::load;

/// Starts a sandbox with every limit lifted and loads `POST /v23.0/{phone-number-id}/messages`.
pub async fn sandbox(common: &Common) -> anyhow::Result<Result> {
    let mut config = SandboxConfig::default();
    for number in &mut config.numbers {
        number.mps = Some(10_000_000);
    }
    config.limits.pair_burst = u32::MAX / 2;
    config.limits.waba_calls_per_hour = u64::MAX / 2;
    config.limits.messaging_limit = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox = Sandbox::start(config, listener).await?;
    let addr: std::net::SocketAddr = sandbox.base_url().trim_start_matches("http://").parse()?;
    let number = sandbox.phone_number_ids().first().cloned().unwrap_or_default();
    let auth = format!("Bearer {}", sandbox.access_token());
    let path: &'static str = Box::leak(format!("/v23.0/{number}/messages").into_boxed_str());
    let host = addr.to_string();
    let factory = Arc::new(move |conn: usize, n: u64, out: &mut Vec<u8>| {
        // Recipients rotate over a large set so no pair limit would be hit even if it were on.
        let to = 16_500_000_000u64 + (conn as u64 * 1_000_003 + n) % 1_000_000;
        let body = format!(
            r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"{to}","type":"text","text":{{"body":"Your order {n} has shipped."}}}}"#
        );
        load::post_json(out, path, &host, body.as_bytes(), &[("authorization", &auth)]);
    });
    let plan = common.plan(addr);
    let report = tokio::task::spawn_blocking(move || load::run(plan, factory)).await?;
    let counters = serde_json::to_value(sandbox.control().counters())?;
    sandbox.shutdown().await;
    Ok(Result {
        scenario: "sandbox",
        setup: serde_json::json!({
            "connections": common.connections,
            "load_threads": common.load_threads,
            "limits": "lifted (levels, pair limit, WABA quota, messaging tier)",
            "sandbox_counters": counters,
        }),
        load: report,
        machine: Machine::here(),
    })
}
