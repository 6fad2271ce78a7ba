//! Meta's limits: throughput (130429) counting inbound messages too, pair limit (131056), the WABA's
//! hourly calls (80007), throughput upgrades (131057 then the new level and a webhook), the
//! messaging-limit tier.

use std::time::Duration;

use wabridge_sandbox::{Inbound, LevelChange, SandboxConfig};
use wabridge_types::limits::ThroughputLevel;
use wabridge_types::send::{OutboundMessage, Template};
use wabridge_types::webhook::ChangeValue;

use crate::support::{Harness, USER, WAIT, code, eventually};

fn low_level(mps: u32) -> SandboxConfig {
    let mut config = SandboxConfig::for_tests();
    config.numbers[0].mps = Some(mps);
    config.throughput_burst = Duration::ZERO;
    config
}

fn user(i: usize) -> String {
    format!("1650555{i:04}")
}

#[tokio::test]
async fn over_the_level_is_130429_with_http_400() {
    let h = Harness::start(low_level(2)).await;
    let hello = |to: String| OutboundMessage::template(to, Template::new("hello_world", "en_US"));
    h.client.send_message(&h.number(), &hello(user(1))).await.unwrap();
    assert_eq!(code(h.client.send_message(&h.number(), &hello(user(2))).await), (130_429, 400));
    // The other number has its own limiter.
    let other = wabridge_types::PhoneNumberId::new(h.sandbox.phone_number_ids()[1].clone());
    h.client.send_message(&other, &hello(user(3))).await.unwrap();
    // Half a second later (2 msg/s) the number may send again.
    tokio::time::sleep(Duration::from_millis(510)).await;
    h.client.send_message(&h.number(), &hello(user(4))).await.unwrap();
    assert_eq!(h.sandbox.control().counters().rejected[&130_429], 1);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn inbound_messages_use_the_numbers_throughput() {
    let h = Harness::start(low_level(2)).await;
    h.sandbox.control().inject_inbound(Inbound::text(USER, "hello")).unwrap();
    let send = OutboundMessage::text(USER, "hi");
    assert_eq!(code(h.client.send_message(&h.number(), &send).await).0, 130_429);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn burst_tolerance_is_a_tenth_of_a_second_by_default() {
    // 80 msg/s with 100 ms of tolerance: 9 at once (the first plus 8 more), then 130429. The twelve are sent
    // at once: one after the other, on a busy machine, they can take long enough to all conform.
    let h = Harness::for_tests().await;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (client, number) = (h.client.clone(), h.number());
        let send = OutboundMessage::template(user(i), Template::new("hello_world", "en_US"));
        sends.spawn(async move { client.send_message(&number, &send).await.is_ok() });
    }
    let accepted = sends.join_all().await.into_iter().filter(|ok| *ok).count();
    assert!((9..12).contains(&accepted), "{accepted}");
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn pair_limit_is_131056() {
    let mut config = SandboxConfig::for_tests();
    config.limits.pair_interval = Duration::from_millis(300);
    config.limits.pair_burst = 2;
    let h = Harness::start(config).await;
    let hello = |to: &str| OutboundMessage::template(to, Template::new("hello_world", "en_US"));
    h.client.send_message(&h.number(), &hello(USER)).await.unwrap();
    h.client.send_message(&h.number(), &hello(USER)).await.unwrap();
    assert_eq!(code(h.client.send_message(&h.number(), &hello(USER)).await), (131_056, 400));
    h.client.send_message(&h.number(), &hello(&user(9))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(310)).await;
    h.client.send_message(&h.number(), &hello(USER)).await.unwrap();
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn waba_hourly_calls_are_80007() {
    let mut config = SandboxConfig::for_tests();
    config.limits.waba_calls_per_hour = 3;
    let h = Harness::start(config).await;
    for _ in 0..3 {
        h.client.throughput(&h.number()).await.unwrap();
    }
    assert_eq!(code(h.client.throughput(&h.number()).await), (80_007, 400));
    let send = OutboundMessage::text(USER, "hi");
    assert_eq!(code(h.client.send_message(&h.number(), &send).await).0, 80_007);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn throughput_upgrade_pauses_the_number_then_applies_with_a_webhook() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    let control = h.sandbox.control();
    control.set_level(h.number().as_str(), LevelChange { level: ThroughputLevel::High, mps: None }).unwrap();
    let send = OutboundMessage::template(USER, Template::new("hello_world", "en_US"));
    assert_eq!(code(h.client.send_message(&h.number(), &send).await), (131_057, 500));
    let upgraded = || {
        receiver.changes().iter().any(
            |c| matches!(c, ChangeValue::PhoneNumberQuality(q) if q.event.as_str() == "THROUGHPUT_UPGRADE"),
        )
    };
    assert!(eventually(WAIT, upgraded).await);
    assert_eq!(h.client.throughput(&h.number()).await.unwrap().throughput.level, ThroughputLevel::High);
    h.client.send_message(&h.number(), &send).await.unwrap();
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn messaging_limit_tier_fails_new_users_beyond_it() {
    let mut config = SandboxConfig::for_tests();
    config.limits.messaging_limit = Some(2);
    let (h, receiver) = Harness::with_receiver(config).await;
    let mut wamids = Vec::new();
    for i in 0..3 {
        let send = OutboundMessage::template(user(i), Template::new("hello_world", "en_US"));
        wamids
            .push(h.client.send_message(&h.number(), &send).await.unwrap().message_id().unwrap().to_string());
    }
    // The first two users again: already counted.
    let again = OutboundMessage::template(user(0), Template::new("hello_world", "en_US"));
    let again = h.client.send_message(&h.number(), &again).await.unwrap().message_id().unwrap().to_string();
    assert!(eventually(WAIT, || receiver.statuses_of(&wamids[2]) == ["failed"]).await);
    assert!(eventually(WAIT, || receiver.statuses_of(&again).contains(&"read".to_owned())).await);
    let failed = receiver.statuses().into_iter().find(|s| s.id.as_str() == wamids[2]).unwrap();
    assert_eq!(failed.errors()[0].code, 131_064);
    assert!(receiver.statuses_of(&wamids[1]).contains(&"delivered".to_owned()));
    h.sandbox.shutdown().await;
}
