//! Chaos: duplicate webhooks deterministic under a seed, server errors and latency on Graph routes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wabridge_sandbox::{ChaosConfig, SandboxConfig};
use wabridge_types::send::{OutboundMessage, Template};

use crate::support::{Harness, WAIT, code, eventually};

/// Sends ten messages one after the other and returns how often each (wamid, status) arrived.
async fn duplicates_with_seed(seed: u64) -> BTreeMap<(String, String), usize> {
    let mut config = SandboxConfig::for_tests();
    config.chaos = ChaosConfig { seed, duplicate_probability: 0.3, ..ChaosConfig::default() };
    config.numbers[0].mps = Some(1000);
    let (h, receiver) = Harness::with_receiver(config).await;
    let mut wamids = Vec::new();
    for i in 0..10 {
        let send = OutboundMessage::template(format!("1650555{i:04}"), Template::new("hello_world", "en_US"));
        wamids
            .push(h.client.send_message(&h.number(), &send).await.unwrap().message_id().unwrap().to_string());
    }
    let settled = || {
        wamids.iter().all(|w| receiver.statuses_of(w).len() >= 3)
            && h.sandbox.control().pending_webhooks() == 0
    };
    // No pending webhook: duplicates, posted after their originals, have arrived too.
    assert!(eventually(WAIT, settled).await);
    let mut seen = BTreeMap::new();
    for s in receiver.statuses() {
        *seen.entry((s.id.to_string(), s.status.as_str().to_owned())).or_insert(0) += 1;
    }
    h.sandbox.shutdown().await;
    seen
}

#[tokio::test]
async fn duplicate_deliveries_are_deterministic_under_a_seed() {
    let first = duplicates_with_seed(7).await;
    let second = duplicates_with_seed(7).await;
    assert_eq!(first, second, "same seed, same duplicates");
    let duplicated = first.values().filter(|n| **n == 2).count();
    assert!(duplicated > 0 && duplicated < first.len(), "{duplicated} of {}", first.len());
    assert!(first.values().all(|n| (1..=2).contains(n)));
    let other = duplicates_with_seed(8).await;
    assert_ne!(
        first.keys().collect::<Vec<_>>(),
        other.keys().collect::<Vec<_>>(),
        "ids differ between seeds"
    );
}

#[tokio::test]
async fn server_errors_and_latency_on_graph_routes() {
    let h = Harness::for_tests().await;
    let control = h.sandbox.control();
    control.set_chaos(ChaosConfig { error_5xx_probability: 1.0, ..ChaosConfig::default() });
    let send = OutboundMessage::template(crate::support::USER, Template::new("hello_world", "en_US"));
    assert_eq!(code(h.client.send_message(&h.number(), &send).await), (131_000, 500));
    control.set_chaos(ChaosConfig { latency: Duration::from_millis(60), ..ChaosConfig::default() });
    let started = Instant::now();
    h.client.send_message(&h.number(), &send).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(60));
    control.set_chaos(ChaosConfig::default());
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn reordering_holds_events_back() {
    let mut config = SandboxConfig::for_tests();
    config.chaos = ChaosConfig {
        seed: 3,
        reorder_probability: 1.0,
        reorder_delay: Duration::from_millis(30),
        ..ChaosConfig::default()
    };
    let (h, receiver) = Harness::with_receiver(config).await;
    let send = OutboundMessage::template(crate::support::USER, Template::new("hello_world", "en_US"));
    let wamid = h.client.send_message(&h.number(), &send).await.unwrap().message_id().unwrap().to_string();
    let started = Instant::now();
    assert!(eventually(WAIT, || receiver.statuses_of(&wamid).len() == 3).await);
    assert!(started.elapsed() >= Duration::from_millis(30));
    h.sandbox.shutdown().await;
}
