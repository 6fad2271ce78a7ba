//! Chaos: duplicate webhooks deterministic under a seed, server errors and latency on Graph routes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wabridge_sandbox::{ChaosConfig, Inbound, SandboxConfig};
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

/// Injects twelve inbound messages one after the other and returns their wamids in the order the receiver
/// got them, and in the order they were sent. One delivery at a time, so only chaos can reorder them.
async fn inbound_order(reorder_probability: f64) -> (Vec<String>, Vec<String>) {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.max_in_flight = 1;
    config.chaos = ChaosConfig {
        seed: 3,
        reorder_probability,
        reorder_delay: Duration::from_millis(50),
        ..ChaosConfig::default()
    };
    let (h, receiver) = Harness::with_receiver(config).await;
    let sent: Vec<String> = (0..12)
        .map(|i| {
            h.sandbox.control().inject_inbound(Inbound::text(crate::support::USER, format!("m{i}"))).unwrap()
        })
        .collect();
    assert!(eventually(WAIT, || receiver.messages().len() == sent.len()).await);
    let received = receiver.messages().into_iter().map(|m| m.id.to_string()).collect();
    h.sandbox.shutdown().await;
    (sent, received)
}

#[tokio::test]
async fn reordering_lets_later_events_overtake_held_ones() {
    // Without chaos, one delivery at a time: the order is kept.
    let (sent, received) = inbound_order(0.0).await;
    assert_eq!(received, sent);
    // With half the events held back (the same ones for this seed every run): some arrive after events
    // sent later than them — an inversion — while every event still arrives once.
    let (sent, received) = inbound_order(0.5).await;
    let mut sorted = received.clone();
    sorted.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(sorted, expected, "every event arrives exactly once");
    let position = |id: &String| received.iter().position(|r| r == id).unwrap();
    let inversions = sent
        .iter()
        .enumerate()
        .flat_map(|(i, a)| sent[i + 1..].iter().map(move |b| (a, b)))
        .filter(|(a, b)| position(a) > position(b))
        .count();
    assert!(inversions > 0, "sent {sent:?}, received {received:?}");
}
