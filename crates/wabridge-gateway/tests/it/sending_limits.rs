//! Limits that hold a number or a whole WABA back: 131057 (the number is in maintenance during a throughput
//! upgrade) pauses that number only, and the WABA's hourly call quota holds sends back — in both
//! cases the messages wait, queued, and none fails. The messaging-limit tier holds messages to new users
//! queued; a `THROUGHPUT_UPGRADE` webhook makes the number read its level again; inbound messages count
//! against the number's level. The tier holds across a restart, and the WABA-wide limits across instances:
//! one instance sends for all the numbers of a WABA.

use std::time::Duration;

use wabridge_gateway::config::NumberConfig;
use wabridge_sandbox::{FaultInjection, FaultScope, Inbound, LevelChange};
use wabridge_types::limits::ThroughputLevel;

use crate::support::backend::{Backend, TestDb, each_backend, run};
use crate::support::sending::{NUMBER, NUMBER2, Pair, config, sandbox_config, template};

each_backend!(
    maintenance_131057_pauses_the_number_only,
    waba_hourly_quota_holds_the_rest_queued,
    messaging_limit_tier_holds_new_users_queued,
    messaging_limit_tier_holds_across_a_restart,
    throughput_upgrade_rereads_the_level,
    inbound_messages_count_against_the_level,
);

const WAIT: Duration = Duration::from_secs(20);

async fn maintenance_131057_pauses_the_number_only(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let control = pair.sandbox.control();
    control.set_fault(Some(FaultInjection {
        code: 131_057,
        next_n: Some(1),
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let (code, r) = pair.send(&template(NUMBER, "16315550401")).await;
    assert_eq!(code, 201, "{r}");
    let first = r["messages"][0]["id"].as_str().unwrap().to_owned();
    // Wait for the 131057 answer, then queue another message for another user of the same number.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = pair.message(&first).await;
        if m["attempts"].as_i64().unwrap_or(0) >= 1 && m["state"] == "queued" {
            assert!(m["errors"].to_string().contains("131057"), "{m}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no 131057 answer: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, r) = pair.send(&template(NUMBER, "16315550402")).await;
    let second = r["messages"][0]["id"].as_str().unwrap().to_owned();
    // The other number goes on sending meanwhile.
    let (_, r) = pair.send(&template(NUMBER2, "16315550403")).await;
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    // The paused number sends nothing (Meta says up to a minute), fails nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [&first, &second] {
        let m = pair.message(id).await;
        assert_eq!(m["state"], "queued", "{m}");
    }
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "only the other number's message went out");
    let metrics = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("131057"), "{metrics}");
    pair.stop().await;
}

async fn waba_hourly_quota_holds_the_rest_queued(db: TestDb) {
    let mut config = config(&db);
    // Spread evenly over the hour (GCRA without burst): one call, then the next 20 minutes later.
    config.outbound.waba_calls_per_hour = 3;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let mut ids = Vec::new();
    // Both numbers belong to the same WABA: they share its quota.
    for (n, from) in [NUMBER, NUMBER2, NUMBER, NUMBER2, NUMBER].into_iter().enumerate() {
        let (code, r) = pair.send(&template(from, &format!("1631555050{n}"))).await;
        assert_eq!(code, 201, "{r}");
        ids.push(r["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    only_the_first_call_goes_out(&pair).await;
    let mut states = Vec::new();
    for id in &ids {
        states.push(pair.message(id).await["state"].as_str().unwrap().to_owned());
    }
    let queued = states.iter().filter(|s| *s == "queued").count();
    assert_eq!(queued, 4, "{states:?}");
    assert!(states.iter().all(|s| s != "failed"), "{states:?}");
    pair.stop().await;
}

/// With an hourly quota of 3 calls (one every 20 minutes), the first call goes out and the next is held.
async fn only_the_first_call_goes_out(pair: &Pair) {
    let deadline = std::time::Instant::now() + WAIT;
    while pair.sandbox.control().counters().accepted < 1 {
        assert!(std::time::Instant::now() < deadline, "the quota's first call did not go out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "the quota holds the next call 20 minutes");
}

/// The value of the `/metrics` line that starts with `series` (name and labels), if present.
async fn metric(pair: &Pair, series: &str) -> Option<f64> {
    let text = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Waits until the metric `series` has the value `want`.
async fn wait_metric(pair: &Pair, series: &str, want: f64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = metric(pair, series).await;
        if got == Some(want) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{series} is {got:?}, expected {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn messaging_limit_tier_holds_new_users_queued(db: TestDb) {
    let mut config = config(&db);
    // Two unique users outside their window per rolling 24 h.
    config.outbound.messaging_limit = 2;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let mut ids = Vec::new();
    for to in ["16315550501", "16315550502", "16315550503"] {
        let (code, r) = pair.send(&template(NUMBER, to)).await;
        assert_eq!(code, 201, "{r}");
        ids.push(r["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    pair.wait_state(&ids[0], &["read"], WAIT).await;
    pair.wait_state(&ids[1], &["read"], WAIT).await;
    // The third user would be the tier's third in 24 h: the message waits, queued, and does not fail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = pair.message(&ids[2]).await;
    assert_eq!(third["state"], "queued", "{third}");
    assert_eq!(pair.sandbox.control().counters().accepted, 2);
    // A user already reached counts once: another message to the first one goes out.
    let (_, r) = pair.send(&template(NUMBER, "16315550501")).await;
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    assert_eq!(pair.message(&ids[2]).await["state"], "queued");
    pair.stop().await;
}

async fn throughput_upgrade_rereads_the_level(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let series = format!("wabridge_outbound_level_mps{{phone_number_id=\"{NUMBER}\"}}");
    // Read at start from `?fields=throughput`: the standard level.
    wait_metric(&pair, &series, 80.0).await;
    // The sandbox upgrades the number as Meta does (131057 for a moment, then the new level) and sends the
    // `phone_number_quality_update` webhook with `THROUGHPUT_UPGRADE`; the gateway reads the level again.
    pair.sandbox
        .control()
        .set_level(NUMBER, LevelChange { level: ThroughputLevel::High, mps: None })
        .unwrap();
    wait_metric(&pair, &series, 1000.0).await;
    // The other number was not upgraded.
    let other = format!("wabridge_outbound_level_mps{{phone_number_id=\"{NUMBER2}\"}}");
    assert_eq!(metric(&pair, &other).await, Some(80.0));
    pair.stop().await;
}

async fn inbound_messages_count_against_the_level(db: TestDb) {
    let mut config = config(&db);
    // 10 messages per second for the first number (as for a number shared with the Business app).
    let waba = "102290129340398".to_owned();
    config.numbers = vec![
        NumberConfig {
            id: NUMBER.into(),
            waba_id: waba.clone(),
            display_phone_number: None,
            level_mps: Some(10),
        },
        NumberConfig { id: NUMBER2.into(), waba_id: waba, display_phone_number: None, level_mps: None },
    ];
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let series = format!("wabridge_outbound_inbound_counted_total{{phone_number_id=\"{NUMBER}\"}}");
    // 40 users write to the number at once: four seconds of its level.
    for i in 0..40 {
        pair.sandbox.control().inject_inbound(Inbound::text(format!("1631555{:04}", 600 + i), "hi")).unwrap();
    }
    wait_metric(&pair, &series, 40.0).await;
    // A message queued now waits for the one-second window those messages filled four times over (Meta counts
    // inbound and outbound together per second; the excess does not carry into later seconds). Without them it
    // would leave at once.
    let queued_at = std::time::Instant::now();
    let (code, r) = pair.send(&template(NUMBER, "16315550700")).await;
    assert_eq!(code, 201, "{r}");
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["sent", "delivered", "read"], WAIT).await;
    let waited = queued_at.elapsed();
    assert!(waited >= Duration::from_millis(800), "sent after {waited:?} despite 40 inbound messages");
    // The other number, with no inbound traffic, sends at once.
    let queued_at = std::time::Instant::now();
    let (_, r) = pair.send(&template(NUMBER2, "16315550701")).await;
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["sent", "delivered", "read"], WAIT).await;
    let other = queued_at.elapsed();
    assert!(other < waited, "the number without inbound traffic took {other:?}, the other {waited:?}");
    pair.stop().await;
}

/// The users reached before a restart still count against the tier after it: the restarted gateway does not
/// grant a second tier within the day.
async fn messaging_limit_tier_holds_across_a_restart(db: TestDb) {
    let mut config = config(&db);
    // Two unique users outside their window per rolling 24 h.
    config.outbound.messaging_limit = 2;
    let pair = Pair::start(config.clone(), sandbox_config(|_| {})).await;
    for to in ["16315550511", "16315550512"] {
        let (code, r) = pair.send(&template(NUMBER, to)).await;
        assert_eq!(code, 201, "{r}");
        pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    }
    pair.stop().await;
    // The same database, a new process (and a new sandbox: it counts from zero).
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let (code, r) = pair.send(&template(NUMBER, "16315550513")).await;
    assert_eq!(code, 201, "{r}");
    let third = r["messages"][0]["id"].as_str().unwrap().to_owned();
    // A user reached before the restart counts once: another message to them goes out (after the third
    // was queued, so the scheduler has looked at the third by then)...
    let (_, r) = pair.send(&template(NUMBER2, "16315550512")).await;
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    // ...while the third user would be the tier's third in 24 h: queued, not failed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = pair.message(&third).await;
    assert_eq!(m["state"], "queued", "{m}");
    assert_eq!(pair.sandbox.control().counters().accepted, 1);
    pair.stop().await;
}

#[tokio::test]
async fn a_wabas_numbers_are_sent_by_one_instance() {
    run(Backend::Postgres, wabas_numbers_sent_by_one_instance).await;
}

fn unix_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

/// Two instances on one database, and a number whose lease a crashed instance held: when that lease runs out,
/// the instance that sends for the WABA's other number sends for this one too — not the other instance,
/// which would then admit the WABA's hourly quota (and its tier) a second time.
async fn wabas_numbers_sent_by_one_instance(db: TestDb) {
    // A lease of NUMBER2's that a crashed instance held (keyed as a lease per number was), two seconds more.
    let store = db.open().await;
    assert!(store.acquire_number_lease(NUMBER2, "crashed-instance", unix_millis() + 2_000).await.unwrap());
    store.close().await;
    let started = std::time::Instant::now();
    let mut config = config(&db);
    // Spread evenly over the hour: one call, then the next 20 minutes later.
    config.outbound.waba_calls_per_hour = 3;
    // Renewed (and tried again) every 20 s: after the crashed lease runs out, the second instance tries first.
    config.outbound.lease_ms = 60_000;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let deadline = std::time::Instant::now() + WAIT;
    while !pair.gateway.state().outbound.sends_here(NUMBER) {
        assert!(std::time::Instant::now() < deadline, "the first instance does not send for {NUMBER}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second_config = (*pair.gateway.state().config).clone();
    // Tries every 300 ms.
    second_config.outbound.lease_ms = 900;
    let second = crate::support::gateway::start(second_config).await;
    // Past the crashed lease, and a few tries of the second instance after it.
    tokio::time::sleep(
        (started + Duration::from_millis(3_500)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let (first_out, second_out) = (&pair.gateway.state().outbound, &second.state().outbound);
    for number in [NUMBER, NUMBER2] {
        assert!(!second_out.sends_here(number), "the second instance sends for {number}");
        assert!(first_out.sends_here(number), "the first instance does not send for {number}");
    }
    // One template from each number: the WABA's quota lets one call go now, not one per instance.
    for (from, to) in [(NUMBER, "16315550521"), (NUMBER2, "16315550522")] {
        let (code, r) = pair.send(&template(from, to)).await;
        assert_eq!(code, 201, "{r}");
    }
    only_the_first_call_goes_out(&pair).await;
    second.shutdown().await.unwrap();
    pair.stop().await;
}
