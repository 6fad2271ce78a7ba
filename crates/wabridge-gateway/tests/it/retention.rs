//! Retention: old raw bodies and events are pruned in the background, except what a pending delivery
//! still needs.

use std::time::Duration;

use wabridge_gateway::retention::prune_once;
use wabridge_gateway::store::EventFilter;

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway;

each_backend!(
    pruning_keeps_what_deliveries_need,
    a_failed_delivery_holds_back_only_its_own_event,
    background_pruning_runs,
    rejected_bodies_wait_for_reprocessing,
    a_rejected_body_delivered_again_and_read_is_accepted
);

async fn post_messages(url: &str, ids: std::ops::Range<u32>) {
    let client = reqwest::Client::new();
    for i in ids {
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1","phone_number_id":"2"}},"messages":[{{"from":"3","id":"wamid.R{i}","timestamp":"1750000000","type":"text","text":{{"body":"r"}}}}]}},"field":"messages"}}]}}]}}"#
        );
        assert_eq!(gateway::post_webhook(&client, url, &body).await, 200);
    }
}

async fn pruning_keeps_what_deliveries_need(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    post_messages(&gw.url(), 0..10).await;
    let store = &gw.state().store;
    let events = store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    assert_eq!(events.len(), 10);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Everything is older than a zero age; a delivery still needs the 7th event onwards.
    let mut config = gw.state().config.retention.clone();
    config.max_age_secs = 0;
    let needed = events[6].seq;
    assert_eq!(wabridge_gateway::retention::pruned_through(store).await.unwrap(), 0);
    let (pruned_events, _) = prune_once(store, &config, Some(needed)).await.unwrap();
    assert_eq!(pruned_events, 6);
    // Readers can tell: the highest pruned seq is kept.
    assert_eq!(wabridge_gateway::retention::pruned_through(store).await.unwrap(), events[5].seq);
    let left = store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.seq).collect::<Vec<_>>(),
        events[6..].iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    // With a long age nothing goes.
    config.max_age_secs = 3600;
    assert_eq!(prune_once(store, &config, None).await.unwrap(), (0, 0));
    gw.shutdown().await.unwrap();
}

/// A delivery that failed for good (replayable) keeps its own event, not the log after it: the events a
/// callback has delivered since, and those it never wanted, are pruned; those not queued yet are kept.
async fn a_failed_delivery_holds_back_only_its_own_event(db: TestDb) {
    use std::time::SystemTime;
    use wabridge_gateway::store::{CallbackRecord, NewDelivery};

    let gw = gateway::start(gateway::config(&db)).await;
    post_messages(&gw.url(), 0..10).await;
    let mut config = gw.state().config.retention.clone();
    // The rest works on the store alone: no dispatcher of the gateway's may serve the callback made below.
    gw.shutdown().await.unwrap();
    let store = &db.open().await;
    let events = store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    let seq = |i: usize| events[i].seq;
    let record = CallbackRecord {
        id: "ret".into(),
        url: "http://127.0.0.1:9/x".into(),
        secret: "s".into(),
        shape: "cloud".into(),
        max_concurrent: 1,
        kinds: Vec::new(),
        phone_number_id: None,
        source: "api".into(),
        scan_seq: 0,
        created_at: SystemTime::now(),
    };
    assert!(store.put_callback(&record, false).await.unwrap());
    // The callback queued the first eight events (the eighth is pending), the third failed for good, the
    // others were delivered; the last two are not queued yet.
    let queued: Vec<NewDelivery> = (0..8)
        .map(|i| NewDelivery { seq: seq(i), contact_key: "3".into(), event_at: SystemTime::now() })
        .collect();
    assert!(store.queue_deliveries("ret", 0, seq(7), &queued).await.unwrap());
    store.delivery_failed("ret", seq(2), None, SystemTime::now(), "HTTP 500", true).await.unwrap();
    for i in [0, 1, 3, 4, 5, 6] {
        store.delivery_succeeded("ret", seq(i), None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    config.max_age_secs = 0;
    let needed = store.oldest_needed_seq().await.unwrap();
    assert_eq!(needed, Some(seq(8)));
    prune_once(store, &config, needed).await.unwrap();
    let left: Vec<i64> =
        store.events_after(0, &EventFilter::default(), 100).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(left, vec![seq(2), seq(7), seq(8), seq(9)]);
    // Replayed, the failed event is there to send.
    assert_eq!(store.replay_failed("ret").await.unwrap(), 1);
    store.close().await;
}

async fn background_pruning_runs(db: TestDb) {
    let mut config = gateway::config(&db);
    config.retention.max_age_secs = 0;
    config.retention.prune_interval_secs = 1;
    let gw = gateway::start(config).await;
    post_messages(&gw.url(), 0..5).await;
    // The pruner's first pass ran at start (nothing to do); the next one, within a second, removes all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = gw.state().store.events_after(0, &EventFilter::default(), 100).await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} events still there", left.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.shutdown().await.unwrap();
}

/// A rejected body (signed, but not an envelope this version reads) is what re-processing after an upgrade
/// reads: retention keeps it past `max_age_secs`, until `rejected_max_age_secs`.
async fn rejected_bodies_wait_for_reprocessing(db: TestDb) {
    let gw = gateway::start(gateway::config(&db)).await;
    let client = reqwest::Client::new();
    let rejected = r#"{"object":"whatsapp_business_account","entry":"not a list"}"#;
    assert_eq!(gateway::post_webhook(&client, &gw.url(), rejected).await, 200);
    post_messages(&gw.url(), 0..2).await;
    let store = &gw.state().store;
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut config = gw.state().config.retention.clone();
    config.max_age_secs = 0;
    // The two accepted bodies and their events go; the rejected body stays.
    assert_eq!(prune_once(store, &config, None).await.unwrap(), (2, 2));
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 1);
    config.rejected_max_age_secs = 3600;
    assert_eq!(prune_once(store, &config, None).await.unwrap(), (0, 0));
    config.rejected_max_age_secs = 0;
    assert_eq!(prune_once(store, &config, None).await.unwrap(), (0, 1));
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());
    gw.shutdown().await.unwrap();
}

/// A body an older version stored as rejected, delivered again by Meta and read now: its events link to that
/// row, which is then an accepted body (not waiting for re-processing, pruned with its events).
async fn a_rejected_body_delivered_again_and_read_is_accepted(db: TestDb) {
    use wabridge_gateway::store::{IntakeBatchItem, NewRawWebhook};

    let gw = gateway::start(gateway::config(&db)).await;
    let store = &gw.state().store;
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},"messages":[{"from":"3","id":"wamid.AGAIN","timestamp":"1750000000","type":"text","text":{"body":"r"}}]},"field":"messages"}]}]}"#;
    let old = IntakeBatchItem {
        raw: NewRawWebhook::rejected(body, true, "not read by an older version"),
        events: Vec::new(),
        inbound: Vec::new(),
        statuses: Vec::new(),
    };
    let raw_id = store.commit_intake(&[old]).await.unwrap()[0].raw_id;
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 1);
    assert_eq!(gateway::post_webhook(&reqwest::Client::new(), &gw.url(), body).await, 200);
    let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.raw_id).collect::<Vec<_>>(), vec![raw_id]);
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());
    gw.shutdown().await.unwrap();
}
