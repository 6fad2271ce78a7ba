//! Limits that hold a number or a whole WABA back: 131057 (the number is in maintenance during a throughput
//! upgrade) pauses that number only, and the WABA's hourly call quota holds sends back — in both
//! cases the messages wait, queued, and none fails.

use std::time::Duration;

use wabridge_sandbox::{FaultInjection, FaultScope};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{NUMBER, NUMBER2, Pair, config, sandbox_config, template};

each_backend!(maintenance_131057_pauses_the_number_only, waba_hourly_quota_holds_the_rest_queued,);

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
    let deadline = std::time::Instant::now() + WAIT;
    while pair.sandbox.control().counters().accepted < 1 {
        assert!(std::time::Instant::now() < deadline, "the quota's first call did not go out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "the quota holds the next call 20 minutes");
    let mut states = Vec::new();
    for id in &ids {
        states.push(pair.message(id).await["state"].as_str().unwrap().to_owned());
    }
    let queued = states.iter().filter(|s| *s == "queued").count();
    assert_eq!(queued, 4, "{states:?}");
    assert!(states.iter().all(|s| s != "failed"), "{states:?}");
    pair.stop().await;
}
