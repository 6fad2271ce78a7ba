//! The store, on SQLite and on PostgreSQL: migrations, group commit, dedupe, the status machine, the event
//! log's order under concurrent writers, prune, filters.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use wabridge_gateway::store::{
    CallbackRecord, CancelOutcome, Enqueued, EventFilter, InboundTouch, IntakeBatchItem, IntakeConfig,
    IntakeSender, IntakeWriter, NewDelivery, NewEvent, NewOutboundMessage, NewQueued, NewRawWebhook,
    OutboundOp, OutboundState, StatusUpdate, Store, StoreError,
};

use crate::support::backend::{Backend, TestDb, each_backend, run};

each_backend!(
    migrations_apply_twice,
    group_commit_answers_after_commit,
    dedupe_survives_reopen,
    raw_duplicate_by_body_hash,
    statuses_move_forward_in_any_order,
    statuses_before_the_wamid_is_known,
    status_timeline_follows_the_event_log,
    a_body_repeating_its_own_event,
    event_log_order_under_concurrent_writers,
    concurrent_redeliveries_keep_one_body,
    prune_keeps_what_is_needed,
    events_after_filters,
    contacts_keep_the_latest_inbound,
    rejected_webhooks_can_be_reprocessed,
    writer_shutdown_commits_what_is_queued,
    intake_and_scheduler_writes_share_the_writer,
    a_loaded_message_cancelled_is_not_marked_sending,
    only_cancelled_messages_are_reported_gone,
    a_resent_message_is_loaded_again,
    only_counted_failures_use_up_attempts,
    a_delivery_waiting_behind_a_retry_is_not_due,
    the_event_log_is_read_up_to_what_is_durable,
    submit_fails_once_the_store_is_closed,
    enqueue_batch_keeps_one_row_per_idempotency_key,
    first_seq_created_since_bisects_the_log,
    statuses_by_callback_data_reads_only_the_window,
    a_status_stored_by_intake_is_found_by_its_callback_data,
    prune_reads_the_log_up_to_its_first_young_event,
    prune_reads_raw_bodies_up_to_the_first_young_one,
    retention_prunes_ended_login_sessions,
    retention_prunes_contacts_after_their_window,
);

// ---------------------------------------------------------------------------------------------------------
// Builders

fn event(key: &str) -> NewEvent {
    NewEvent {
        dedupe_key: key.to_owned(),
        kind: "message".to_owned(),
        field: "messages".to_owned(),
        waba_id: "waba-1".to_owned(),
        phone_number_id: Some("pn-1".to_owned()),
        contact: Some("15550001".to_owned()),
        payload: format!(r#"{{"id":"{key}","text":{{"body":"hi"}}}}"#),
    }
}

fn item(body: &str, events: Vec<NewEvent>) -> IntakeBatchItem {
    IntakeBatchItem {
        raw: NewRawWebhook::accepted(body.to_owned(), true),
        events,
        inbound: Vec::new(),
        statuses: Vec::new(),
    }
}

fn status(wamid: &str, status: &str, timestamp: i64) -> StatusUpdate {
    let errors =
        (status == "failed").then(|| r#"[{"code":131026,"title":"Message undeliverable"}]"#.to_owned());
    StatusUpdate { wamid: wamid.to_owned(), status: status.to_owned(), timestamp, errors }
}

/// An item with these statuses and their status events, as intake builds them.
fn status_item(body: &str, statuses: Vec<StatusUpdate>) -> IntakeBatchItem {
    let events = statuses
        .iter()
        .map(|s| NewEvent {
            kind: "status".to_owned(),
            payload: format!(r#"{{"statuses":[{{"id":"{}","status":"{}"}}]}}"#, s.wamid, s.status),
            ..event(&format!("status:{}:{}", s.wamid, s.status))
        })
        .collect();
    IntakeBatchItem { statuses, ..item(body, events) }
}

async fn outbound(store: &Store, id: &str, wamid: Option<&str>) {
    let message = NewOutboundMessage {
        id: id.to_owned(),
        phone_number_id: "pn-1".to_owned(),
        recipient: "15550001".to_owned(),
        wamid: wamid.map(str::to_owned),
        body: r#"{"type":"text","text":{"body":"hello"}}"#.to_owned(),
    };
    store.insert_outbound(&message).await.unwrap();
}

async fn state_of(store: &Store, id: &str) -> OutboundState {
    store.outbound_message(id).await.unwrap().unwrap().state
}

async fn all_seqs(store: &Store) -> Vec<i64> {
    let events = store.events_after(0, &EventFilter::default(), 1_000_000).await.unwrap();
    events.iter().map(|e| e.seq).collect()
}

fn rank(state: OutboundState) -> u32 {
    match state {
        OutboundState::Queued | OutboundState::Sending => 0,
        OutboundState::Sent => 1,
        OutboundState::Delivered => 2,
        OutboundState::Read => 3,
        OutboundState::Failed | OutboundState::Expired | OutboundState::Cancelled => 100,
    }
}

fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            all.push(tail);
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------------------
// Tests

async fn migrations_apply_twice(db: TestDb) {
    let store = db.open().await;
    store.migrate().await.unwrap();
    store.commit_intake(&[item("b1", vec![event("e1")])]).await.unwrap();
    store.close().await;

    // Another start on the same database: nothing to apply, nothing lost.
    let store = db.open().await;
    store.migrate().await.unwrap();
    assert_eq!(all_seqs(&store).await.len(), 1);
    let expected = match db.backend() {
        Backend::Sqlite => "sqlite wal synchronous=FULL",
        Backend::Postgres => "postgres synchronous_commit=on",
    };
    assert!(store.durability().starts_with(expected), "{}", store.durability());
    store.close().await;
}

async fn group_commit_answers_after_commit(db: TestDb) {
    const ITEMS: usize = 200;
    let store = db.open().await;
    let config = IntakeConfig { pg_committers: 1, ..IntakeConfig::default() };
    let (writer, sender) = IntakeWriter::new(store.clone(), config).await.unwrap();
    let mut committed = writer.committed_seq();

    // Everything is queued before the writer starts, so the batches are certainly shared.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..ITEMS {
        let (sender, store) = (sender.clone(), store.clone());
        tasks.spawn(async move {
            let key = format!("wamid.{n}");
            let outcome = sender.submit(item(&format!("body {n}"), vec![event(&key)])).await.unwrap();
            // The answer comes after the commit: the event is there for any reader, at once.
            let seq = outcome.item.last_seq.unwrap();
            let found = store.events_after(seq - 1, &EventFilter::default(), 1).await.unwrap();
            assert_eq!(found[0].dedupe_key, key);
            assert_eq!(found[0].raw_id, outcome.item.raw_id);
            outcome
        });
    }
    while sender.queued() < ITEMS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(writer.run(shutdown.clone()));

    let mut commits = 0.0;
    while let Some(outcome) = tasks.join_next().await {
        let outcome = outcome.unwrap();
        assert_eq!(outcome.item.events_inserted, 1);
        assert!(!outcome.item.raw_duplicate);
        assert!(outcome.batch.items >= 1 && outcome.batch.items <= ITEMS);
        commits += 1.0 / outcome.batch.items as f64;
    }
    let commits = commits.round() as usize;
    assert!(commits < ITEMS / 10, "{ITEMS} submits took {commits} commits");
    assert_eq!(all_seqs(&store).await.len(), ITEMS);
    let committed_seq = *committed.borrow_and_update();
    assert_eq!(committed_seq, store.max_seq().await.unwrap());

    drop(sender);
    running.await.unwrap();
    store.close().await;
}

async fn dedupe_survives_reopen(db: TestDb) {
    let batch = || {
        vec![item("body a", vec![event("wamid.a"), event("wamid.b")]), item("body c", vec![event("wamid.c")])]
    };
    let store = db.open().await;
    let (sender, _, writer) =
        IntakeWriter::spawn(store.clone(), IntakeConfig::default(), CancellationToken::new()).await.unwrap();
    for it in batch() {
        assert_eq!(sender.submit(it).await.unwrap().item.events_duplicate, 0);
    }
    drop(sender);
    writer.await.unwrap();
    let before = all_seqs(&store).await;
    assert_eq!(before.len(), 3);
    store.close().await;

    // A restart, and Meta delivers the same webhooks again.
    let store = db.open().await;
    let (sender, _, writer) =
        IntakeWriter::spawn(store.clone(), IntakeConfig::default(), CancellationToken::new()).await.unwrap();
    for it in batch() {
        let outcome = sender.submit(it).await.unwrap().item;
        assert!(outcome.raw_duplicate);
        assert_eq!(outcome.events_inserted, 0);
        assert!(outcome.events_duplicate > 0);
        assert_eq!(outcome.last_seq, None);
    }
    // The same events in a new body (Meta re-batched them) are still duplicates.
    let outcome = sender.submit(item("body a+c", vec![event("wamid.a"), event("wamid.c")])).await.unwrap();
    assert!(!outcome.item.raw_duplicate);
    assert_eq!((outcome.item.events_inserted, outcome.item.events_duplicate), (0, 2));
    // Meta delivers that re-batched body again: no event links to its row, yet it is found, not kept twice.
    let again = sender.submit(item("body a+c", vec![event("wamid.a"), event("wamid.c")])).await.unwrap().item;
    assert!(again.raw_duplicate, "{again:?}");
    assert_eq!(again.raw_id, outcome.item.raw_id);
    assert_eq!((again.events_inserted, again.events_duplicate), (0, 2));
    drop(sender);
    writer.await.unwrap();
    assert_eq!(all_seqs(&store).await, before);
    // Three events, three bodies: "body a", "body c", "body a+c".
    let counts = store.prune(SystemTime::now() + Duration::from_secs(60), None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (3, 3));
    store.close().await;
}

async fn raw_duplicate_by_body_hash(db: TestDb) {
    let store = db.open().await;
    let first = store.commit_intake(&[item("same body", vec![event("k1")])]).await.unwrap()[0];
    assert!(!first.raw_duplicate);

    // Same body again, carrying an event not seen before: no second raw row, the event goes in, linked.
    let again = store.commit_intake(&[item("same body", vec![event("k1"), event("k2")])]).await.unwrap()[0];
    assert!(again.raw_duplicate);
    assert_eq!(again.raw_id, first.raw_id);
    assert_eq!((again.events_inserted, again.events_duplicate), (1, 1));
    let k2 = store.events_after(first.last_seq.unwrap(), &EventFilter::default(), 10).await.unwrap();
    assert_eq!(k2.len(), 1);
    assert_eq!((k2[0].dedupe_key.as_str(), k2[0].raw_id), ("k2", first.raw_id));

    // A body whose first event came earlier in another body, redelivered: still one row, found by its other
    // event (k4 came with it; k1 with "same body").
    let mixed = store.commit_intake(&[item("k1 and k4", vec![event("k1"), event("k4")])]).await.unwrap()[0];
    assert!(!mixed.raw_duplicate);
    assert_eq!((mixed.events_inserted, mixed.events_duplicate), (1, 1));
    let redelivered =
        store.commit_intake(&[item("k1 and k4", vec![event("k1"), event("k4")])]).await.unwrap()[0];
    assert!(redelivered.raw_duplicate, "{redelivered:?}");
    assert_eq!(redelivered.raw_id, mixed.raw_id);
    assert_eq!((redelivered.events_inserted, redelivered.events_duplicate), (0, 2));

    // Twice in one batch: the first item owns the row and the event, the second is the duplicate.
    let outcomes = store
        .commit_intake(&[item("twin", vec![event("k3")]), item("twin", vec![event("k3")])])
        .await
        .unwrap();
    assert!(!outcomes[0].raw_duplicate && outcomes[1].raw_duplicate);
    assert_eq!(outcomes[0].raw_id, outcomes[1].raw_id);
    assert_eq!((outcomes[0].events_inserted, outcomes[1].events_duplicate), (1, 1));
    assert_eq!(all_seqs(&store).await.len(), 4);
    // One row per distinct body: "same body", "k1 and k4", "twin".
    let counts = store.prune(SystemTime::now() + Duration::from_secs(60), None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (4, 3));
    store.close().await;
}

async fn statuses_move_forward_in_any_order(db: TestDb) {
    let store = db.open().await;
    let updates = [("sent", 10), ("delivered", 20), ("read", 30), ("failed", 40)];
    let mut orders = permutations(&updates);
    // Without `failed` too, and with `played` in place of `read`.
    orders.extend(permutations(&updates[..3]));
    orders.extend(permutations(&[("sent", 10), ("played", 30), ("delivered", 20)]));
    let expected = |order: &[(&str, i64)]| {
        if order.iter().any(|(s, _)| *s == "failed") { OutboundState::Failed } else { OutboundState::Read }
    };

    // One status per transaction: after each commit, no message has moved backwards.
    for (n, _) in orders.iter().enumerate() {
        outbound(&store, &format!("step-{n}"), Some(&format!("wamid.step.{n}"))).await;
    }
    let mut ranks = vec![0; orders.len()];
    let longest = orders.iter().map(Vec::len).max().unwrap();
    // Each order, then again backwards (every status duplicated, in the worst order).
    for step in 0..2 * longest {
        let mut batch = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let i = if step < longest { step } else { 2 * longest - 1 - step };
            if let Some((s, t)) = order.get(i) {
                batch.push(status_item(
                    &format!("step {n} {step}"),
                    vec![status(&format!("wamid.step.{n}"), s, *t)],
                ));
            }
        }
        store.commit_intake(&batch).await.unwrap();
        for (n, seen) in ranks.iter_mut().enumerate() {
            let now = rank(state_of(&store, &format!("step-{n}")).await);
            assert!(now >= *seen, "order {:?} moved back at step {step}", orders[n]);
            *seen = now;
        }
    }
    for (n, order) in orders.iter().enumerate() {
        let message = store.outbound_message(&format!("step-{n}")).await.unwrap().unwrap();
        assert_eq!(message.state, expected(order), "order {order:?}");
        assert_eq!(message.last_error.is_some(), message.state == OutboundState::Failed, "order {order:?}");
    }

    // All of an order in one transaction (several items, one with a duplicate), per order.
    for (n, order) in orders.iter().enumerate() {
        let (id, wamid) = (format!("batch-{n}"), format!("wamid.batch.{n}"));
        outbound(&store, &id, Some(&wamid)).await;
        let mut batch: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(i, (s, t))| status_item(&format!("batch {n} {i}"), vec![status(&wamid, s, *t)]))
            .collect();
        let (s, t) = order[0];
        batch.push(status_item(&format!("batch {n} dup"), vec![status(&wamid, s, t), status(&wamid, s, t)]));
        store.commit_intake(&batch).await.unwrap();
        assert_eq!(state_of(&store, &id).await, expected(order), "order {order:?}");
    }
    store.close().await;
}

async fn status_timeline_follows_the_event_log(db: TestDb) {
    let store = db.open().await;
    outbound(&store, "m-tl", Some("wamid.tl")).await;
    // Another wamid that starts with this one and a `:` must not show in its timeline.
    let items = [
        status_item("tl 1", vec![status("wamid.tl", "sent", 10)]),
        status_item("tl 2", vec![status("wamid.tl", "delivered", 20)]),
        status_item("tl 3", vec![status("wamid.tl:x", "read", 25)]),
        // Meta repeating a status with another timestamp.
        status_item("tl 4", vec![status("wamid.tl", "delivered", 21)]),
        // A new status twice in one body.
        status_item("tl 5", vec![status("wamid.tl", "read", 30), status("wamid.tl", "read", 30)]),
    ];
    store.commit_intake(&items).await.unwrap();
    let timeline = |detail: wabridge_gateway::store::OutboundDetail| {
        detail.statuses.into_iter().map(|(s, t, _)| (s, t)).collect::<Vec<_>>()
    };
    let detail = store.outbound_detail("m-tl").await.unwrap().unwrap();
    assert_eq!(detail.state, "read");
    // One row per status event: the repeated status is a duplicate, as in the event log.
    let expected: Vec<(String, i64)> =
        vec![("sent".into(), 10), ("delivered".into(), 20), ("read".into(), 30)];
    assert_eq!(timeline(detail), expected);

    // The timeline goes when retention prunes its events.
    store.prune(SystemTime::now() + Duration::from_secs(60), None).await.unwrap();
    let left = timeline(store.outbound_detail("m-tl").await.unwrap().unwrap());
    assert!(left.is_empty(), "{left:?}");
    store.close().await;
}

async fn a_body_repeating_its_own_event(db: TestDb) {
    let store = db.open().await;
    // The same event twice in one body is one event; the body is new, not a redelivery of itself.
    let body = item("twice", vec![event("twice-1"), event("twice-1")]);
    let first = store.commit_intake(std::slice::from_ref(&body)).await.unwrap();
    assert_eq!((first[0].raw_duplicate, first[0].events_inserted, first[0].events_duplicate), (false, 1, 1));
    let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].raw_id, first[0].raw_id);
    // Delivered again, it is a duplicate body with nothing new.
    let again = store.commit_intake(&[body]).await.unwrap();
    assert_eq!((again[0].raw_duplicate, again[0].events_inserted), (true, 0));
    assert_eq!(again[0].raw_id, first[0].raw_id);
    store.close().await;
}

async fn statuses_before_the_wamid_is_known(db: TestDb) {
    let store = db.open().await;
    // Statuses arrive for a wamid the gateway has not recorded yet (the send's answer was lost).
    store
        .commit_intake(&[status_item(
            "early",
            vec![status("wamid.early", "delivered", 2), status("wamid.early", "sent", 1)],
        )])
        .await
        .unwrap();
    outbound(&store, "m-early", None).await;
    assert_eq!(state_of(&store, "m-early").await, OutboundState::Queued);
    assert!(store.record_outbound_wamid("m-early", "wamid.early").await.unwrap());
    assert_eq!(state_of(&store, "m-early").await, OutboundState::Delivered);
    assert!(!store.record_outbound_wamid("no-such-message", "wamid.x").await.unwrap());

    // `deleted`, `payment` and unknown statuses never move the state.
    outbound(&store, "m-quiet", Some("wamid.quiet")).await;
    let quiet = ["deleted", "payment", "warning", "something_new"];
    let batch: Vec<_> = quiet
        .iter()
        .enumerate()
        .map(|(i, s)| status_item(&format!("quiet {s}"), vec![status("wamid.quiet", s, i as i64)]))
        .collect();
    store.commit_intake(&batch).await.unwrap();
    assert_eq!(state_of(&store, "m-quiet").await, OutboundState::Queued);

    // `failed` keeps its errors; later statuses change nothing.
    outbound(&store, "m-failed", Some("wamid.failed")).await;
    store.commit_intake(&[status_item("f1", vec![status("wamid.failed", "failed", 5)])]).await.unwrap();
    store.commit_intake(&[status_item("f2", vec![status("wamid.failed", "read", 9)])]).await.unwrap();
    let failed = store.outbound_message("m-failed").await.unwrap().unwrap();
    assert_eq!(failed.state, OutboundState::Failed);
    assert!(failed.last_error.unwrap().contains("131026"));
    store.close().await;
}

/// `count` gateway instances on one database: each its own pool of four connections and an intake writer with
/// two committers and batches of at most `max_batch`, stopped by `shutdown`.
async fn instances(
    db: &TestDb,
    count: usize,
    max_batch: usize,
    shutdown: &CancellationToken,
) -> (Vec<Store>, Vec<IntakeSender>) {
    let (mut stores, mut senders) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let store = db.open_with(4).await;
        let config = IntakeConfig { pg_committers: 2, max_batch, ..IntakeConfig::default() };
        let (sender, _, _) = IntakeWriter::spawn(store.clone(), config, shutdown.clone()).await.unwrap();
        stores.push(store);
        senders.push(sender);
    }
    (stores, senders)
}

async fn event_log_order_under_concurrent_writers(db: TestDb) {
    const INSTANCES: usize = 3;
    const SUBMITTERS_PER_INSTANCE: usize = 8;
    const ITEMS_PER_SUBMITTER: usize = 40;
    let total = INSTANCES * SUBMITTERS_PER_INSTANCE * ITEMS_PER_SUBMITTER;

    // Several instances on one database, each with its own pool and a writer with two committers, plus
    // direct transactions on another pool: on PostgreSQL, transactions that really commit concurrently.
    let shutdown = CancellationToken::new();
    let mut submitters = tokio::task::JoinSet::new();
    let (stores, senders) = instances(&db, INSTANCES, 16, &shutdown).await;
    for (instance, sender) in senders.into_iter().enumerate() {
        for s in 0..SUBMITTERS_PER_INSTANCE {
            let sender = sender.clone();
            submitters.spawn(async move {
                for n in 0..ITEMS_PER_SUBMITTER {
                    let key = format!("{instance}.{s}.{n}");
                    let outcome = sender.submit(item(&key, vec![event(&key)])).await.unwrap();
                    assert_eq!(outcome.item.events_inserted, 1);
                }
            });
        }
    }
    let direct = db.open_with(4).await;
    for s in 0..4 {
        let direct = direct.clone();
        submitters.spawn(async move {
            for n in 0..20 {
                let items: Vec<_> = (0..3)
                    .map(|i| format!("direct.{s}.{n}.{i}"))
                    .map(|k| item(&k, vec![event(&k)]))
                    .collect();
                direct.commit_intake(&items).await.unwrap();
            }
        });
    }
    let total = total + 4 * 20 * 3;

    // The reader: whenever it reads the whole log, nothing may have appeared below the highest seq it had
    // seen before; and a reader following a cursor must end up with every event.
    let reader_store = db.open_with(2).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (reader_store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut by_cursor = Vec::new();
            let mut polls = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let now: BTreeSet<i64> = all_seqs(&store).await.into_iter().collect();
                if let Some(&max_seen) = seen.last() {
                    let late: Vec<_> = now.range(..max_seen).filter(|s| !seen.contains(*s)).collect();
                    assert!(late.is_empty(), "seqs {late:?} appeared below {max_seen}, already seen");
                }
                seen = now;
                let page = store.events_after(cursor, &EventFilter::default(), 50).await.unwrap();
                for e in &page {
                    assert!(e.seq > cursor);
                    cursor = e.seq;
                    by_cursor.push(e.seq);
                }
                polls += 1;
                if finished && page.is_empty() {
                    return (by_cursor, polls);
                }
            }
        })
    };
    while let Some(done) = submitters.join_next().await {
        done.unwrap();
    }
    done.store(true, Ordering::Release);
    let (by_cursor, polls) = reader.await.unwrap();
    assert!(polls > 5, "the reader polled only {polls} times");

    let all = all_seqs(&reader_store).await;
    assert_eq!(all.len(), total);
    assert_eq!(by_cursor, all, "the cursor reader missed events");
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    shutdown.cancel();
    for store in stores.into_iter().chain([direct, reader_store]) {
        store.close().await;
    }
}

/// Meta delivering the same webhooks again while the first deliveries are still being stored, through several
/// instances at once: each body is stored once, by exactly one of its deliveries, and every delivery of it
/// is answered with that row; each event is stored once.
async fn concurrent_redeliveries_keep_one_body(db: TestDb) {
    const INSTANCES: usize = 3;
    const DELIVERIES: usize = 4;
    const BODIES: usize = 30;
    let shutdown = CancellationToken::new();
    let mut deliveries = tokio::task::JoinSet::new();
    let (stores, senders) = instances(&db, INSTANCES, 8, &shutdown).await;
    for sender in senders {
        for _ in 0..DELIVERIES {
            let sender = sender.clone();
            deliveries.spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..BODIES {
                    let body = format!("body {n}");
                    let events = vec![event(&format!("{n}.a")), event(&format!("{n}.b"))];
                    outcomes.push((n, sender.submit(item(&body, events)).await.unwrap().item));
                }
                outcomes
            });
        }
    }
    let mut by_body: Vec<Vec<wabridge_gateway::store::ItemOutcome>> = vec![Vec::new(); BODIES];
    while let Some(done) = deliveries.join_next().await {
        for (n, outcome) in done.unwrap() {
            by_body[n].push(outcome);
        }
    }
    for (n, outcomes) in by_body.iter().enumerate() {
        assert_eq!(outcomes.len(), INSTANCES * DELIVERIES);
        let first: Vec<_> = outcomes.iter().filter(|o| !o.raw_duplicate).collect();
        assert_eq!(first.len(), 1, "body {n}: {outcomes:?}");
        assert_eq!(first[0].events_inserted, 2, "body {n}: {outcomes:?}");
        assert!(outcomes.iter().all(|o| o.raw_id == first[0].raw_id), "body {n}: {outcomes:?}");
        assert_eq!(outcomes.iter().map(|o| o.events_inserted).sum::<usize>(), 2, "body {n}: {outcomes:?}");
    }
    let store = &stores[0];
    assert_eq!(all_seqs(store).await.len(), 2 * BODIES);
    // One row per body: retention of everything finds exactly that many.
    let counts = store.prune(SystemTime::now() + Duration::from_secs(60), None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (2 * BODIES as u64, BODIES as u64));
    shutdown.cancel();
    for store in stores {
        store.close().await;
    }
}

async fn prune_keeps_what_is_needed(db: TestDb) {
    let store = db.open().await;
    let long_ago = SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    let mut items: Vec<_> =
        (0..10).map(|n| item(&format!("old {n}"), vec![event(&format!("e{n}"))])).collect();
    for it in &mut items {
        it.raw = it.raw.clone().with_received_at(long_ago);
    }
    items.push(IntakeBatchItem {
        raw: NewRawWebhook::rejected("not an envelope", true, "invalid_envelope").with_received_at(long_ago),
        ..item("", Vec::new())
    });
    let outcomes = store.commit_intake(&items).await.unwrap();
    let seqs: Vec<i64> = outcomes.iter().filter_map(|o| o.last_seq).collect();
    let keep_after = seqs[6];

    // Nothing is older than a time before the first commit.
    let none = store.prune(long_ago - Duration::from_secs(1), None).await.unwrap();
    assert_eq!((none.events, none.raw_webhooks), (0, 0));

    // Everything is older than a minute from now; a pending delivery still needs the events after seq 7.
    let later = SystemTime::now() + Duration::from_secs(60);
    let counts = store.prune(later, Some(keep_after)).await.unwrap();
    assert_eq!(counts.events, 7);
    // The raws of pruned events go; the raws of kept events stay, and so does the rejected body (kept for
    // re-processing until `prune_rejected`).
    assert_eq!(counts.raw_webhooks, 7);
    let left = all_seqs(&store).await;
    assert_eq!(left, seqs[7..].to_vec());
    let raws: HashSet<i64> =
        store.events_after(0, &EventFilter::default(), 100).await.unwrap().iter().map(|e| e.raw_id).collect();
    assert_eq!(raws.len(), 3);
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 1);
    assert_eq!(store.prune_rejected(long_ago - Duration::from_secs(1)).await.unwrap(), 0);
    assert_eq!(store.prune_rejected(later).await.unwrap(), 1);
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());

    // Once nothing is pending, the rest goes; sequence numbers are never given out again.
    let counts = store.prune(later, None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (3, 3));
    assert_eq!(store.max_seq().await.unwrap(), 0);
    let next = store.commit_intake(&[item("new", vec![event("new")])]).await.unwrap()[0];
    assert!(next.last_seq.unwrap() > *seqs.last().unwrap());
    store.close().await;
}

/// PostgreSQL: a store holding one rejected body received at `received_at`, that body's row, and a pool of one
/// connection of the test's own on the same schema, standing for another transaction (an intake, retention).
async fn pg_with_rejected_body(
    db: &TestDb,
    body: &str,
    received_at: SystemTime,
) -> (Store, i64, sqlx::PgPool) {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    let TestDb::Postgres { url, schema } = db else { unreachable!("a PostgreSQL test") };
    let store = db.open().await;
    let rejected = IntakeBatchItem {
        raw: NewRawWebhook::rejected(body.to_owned(), true, "invalid_envelope").with_received_at(received_at),
        ..item("", Vec::new())
    };
    let raw_id = store.commit_intake(&[rejected]).await.unwrap()[0].raw_id;
    let options = PgConnectOptions::from_str(url).unwrap().options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    (store, raw_id, pool)
}

/// PostgreSQL: retention does not delete an old body while an intake links a new event to it. The intake
/// holds the body `FOR KEY SHARE` until it commits (as `wabridge_intake` does for every body stored before
/// its call); retention locks the bodies it means to delete, then checks for events in a statement of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_waits_for_an_intake_linking_to_an_old_body() {
    run(Backend::Postgres, |db| async move {
        let long_ago = SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
        let (store, raw_id, pool) = pg_with_rejected_body(&db, "old body", long_ago).await;

        // An intake in progress (re-processing that body, say): the body is locked, its event not committed.
        let mut intake = pool.begin().await.unwrap();
        sqlx::query("SELECT id FROM raw_webhooks WHERE id = $1 FOR KEY SHARE")
            .bind(raw_id)
            .fetch_one(&mut *intake)
            .await
            .unwrap();
        // The body is a rejected one: retention deletes it through `prune_rejected` (`prune` keeps rejected
        // bodies for re-processing), which takes the same locks.
        let pruning = tokio::spawn({
            let store = store.clone();
            async move { store.prune_rejected(SystemTime::now() + Duration::from_secs(3600)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!pruning.is_finished(), "retention waits for the intake that holds the body");
        sqlx::query(
            "INSERT INTO events (dedupe_key, kind, field, waba_id, payload, raw_id, created_at) \
             VALUES ('late', 'change', 'messages', 'w', '{}', $1, 0)",
        )
        .bind(raw_id)
        .execute(&mut *intake)
        .await
        .unwrap();
        intake.commit().await.unwrap();
        pool.close().await;

        let pruned = pruning.await.unwrap().unwrap();
        assert_eq!(pruned, 0, "the body an event now refers to stays");
        let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.raw_id).collect::<Vec<_>>(), vec![raw_id]);
        assert_eq!(store.rejected_webhooks(10).await.unwrap()[0].id, raw_id);
        store.close().await;
    })
    .await;
}

/// PostgreSQL, the other order: retention has locked and deleted a body (not yet committed) when the same body
/// comes again with events. The intake waits for the lock, finds the row gone, fails its batch with a
/// serialization failure, and the writer's retry stores the body anew: the events are kept, linked to a row
/// that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_retries_when_retention_deleted_its_body() {
    run(Backend::Postgres, |db| async move {
        let body = "a body not understood before an upgrade";
        let (store, old_id, pool) = pg_with_rejected_body(&db, body, SystemTime::now()).await;
        let mut retention = pool.begin().await.unwrap();
        sqlx::query("SELECT id FROM raw_webhooks WHERE id = $1 FOR UPDATE")
            .bind(old_id)
            .fetch_one(&mut *retention)
            .await
            .unwrap();
        sqlx::query("DELETE FROM raw_webhooks WHERE id = $1")
            .bind(old_id)
            .execute(&mut *retention)
            .await
            .unwrap();

        let (sender, _, writer) =
            IntakeWriter::spawn(store.clone(), IntakeConfig::default(), CancellationToken::new())
                .await
                .unwrap();
        let submitting =
            tokio::spawn(async move { sender.submit(item(body, vec![event("understood")])).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!submitting.is_finished(), "the intake waits for retention's lock on the body");
        retention.commit().await.unwrap();
        pool.close().await;

        let outcome = submitting.await.unwrap().unwrap().item;
        assert!(!outcome.raw_duplicate);
        assert_ne!(outcome.raw_id, old_id);
        assert_eq!(outcome.events_inserted, 1);
        writer.await.unwrap();
        let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.raw_id).collect::<Vec<_>>(), vec![outcome.raw_id]);
        store.close().await;
    })
    .await;
}

async fn events_after_filters(db: TestDb) {
    let store = db.open().await;
    let mut events = Vec::new();
    for n in 0..12 {
        let mut e = event(&format!("f{n}"));
        e.phone_number_id = Some(format!("pn-{}", n % 2));
        e.contact = (n % 3 != 0).then(|| format!("contact-{}", n % 3));
        e.kind = ["message", "status", "account_update"][n % 3].to_owned();
        events.push(e);
    }
    store.commit_intake(&[item("filters", events)]).await.unwrap();
    let keys = |found: Vec<wabridge_gateway::store::StoredEvent>| {
        found.into_iter().map(|e| e.dedupe_key).collect::<Vec<_>>()
    };
    let all = store.events_after(0, &EventFilter::default(), 100).await.unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all[0].payload, r#"{"id":"f0","text":{"body":"hi"}}"#);
    assert_eq!(all[0].waba_id, "waba-1");

    let by_number = EventFilter { phone_number_id: Some("pn-1".to_owned()), ..EventFilter::default() };
    assert_eq!(
        keys(store.events_after(0, &by_number, 100).await.unwrap()),
        ["f1", "f3", "f5", "f7", "f9", "f11"]
    );
    let by_kinds = EventFilter {
        kinds: vec!["status".to_owned(), "account_update".to_owned()],
        ..EventFilter::default()
    };
    assert_eq!(
        keys(store.events_after(0, &by_kinds, 100).await.unwrap()),
        ["f1", "f2", "f4", "f5", "f7", "f8", "f10", "f11"]
    );
    let by_contact = EventFilter { contact: Some("contact-2".to_owned()), ..EventFilter::default() };
    assert_eq!(keys(store.events_after(0, &by_contact, 100).await.unwrap()), ["f2", "f5", "f8", "f11"]);
    let combined = EventFilter {
        phone_number_id: Some("pn-0".to_owned()),
        kinds: vec!["account_update".to_owned()],
        contact: Some("contact-2".to_owned()),
    };
    assert_eq!(keys(store.events_after(0, &combined, 100).await.unwrap()), ["f2", "f8"]);

    // Paging: after a seq, at most `limit`.
    let page = store.events_after(all[3].seq, &EventFilter::default(), 4).await.unwrap();
    assert_eq!(keys(page), ["f4", "f5", "f6", "f7"]);
    assert!(store.events_after(all[11].seq, &EventFilter::default(), 4).await.unwrap().is_empty());
    assert_eq!(store.max_seq().await.unwrap(), all[11].seq);
    store.close().await;
}

async fn contacts_keep_the_latest_inbound(db: TestDb) {
    let store = db.open().await;
    let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
    let touch =
        |wa_id: &str, at| InboundTouch { phone_number_id: "pn-1".to_owned(), wa_id: wa_id.to_owned(), at };
    let with_touches =
        |body: &str, inbound: Vec<InboundTouch>| IntakeBatchItem { inbound, ..item(body, Vec::new()) };

    assert_eq!(store.contact_last_inbound("pn-1", "alice").await.unwrap(), None);
    store
        .commit_intake(&[
            with_touches("a", vec![touch("alice", t(20)), touch("bob", t(5))]),
            with_touches("b", vec![touch("alice", t(10))]),
        ])
        .await
        .unwrap();
    assert_eq!(store.contact_last_inbound("pn-1", "alice").await.unwrap(), Some(t(20)));
    // An older message arriving late does not shorten the window; a newer one extends it.
    store
        .commit_intake(&[with_touches("c", vec![touch("alice", t(15)), touch("bob", t(30))])])
        .await
        .unwrap();
    assert_eq!(store.contact_last_inbound("pn-1", "alice").await.unwrap(), Some(t(20)));
    assert_eq!(store.contact_last_inbound("pn-1", "bob").await.unwrap(), Some(t(30)));
    // Per business number.
    assert_eq!(store.contact_last_inbound("pn-2", "bob").await.unwrap(), None);
    store.close().await;
}

async fn rejected_webhooks_can_be_reprocessed(db: TestDb) {
    let store = db.open().await;
    let body = r#"{"object":"whatsapp_business_account","entry":"not a list"}"#;
    let rejected = IntakeBatchItem {
        raw: NewRawWebhook::rejected(body, true, "invalid_envelope"),
        ..item("", Vec::new())
    };
    let outcome = store.commit_intake(&[rejected]).await.unwrap()[0];
    assert_eq!(outcome.events_inserted, 0);
    let listed = store.rejected_webhooks(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, outcome.raw_id);
    assert_eq!(listed[0].body, body.as_bytes());
    assert_eq!(listed[0].reject_reason.as_deref(), Some("invalid_envelope"));
    assert!(listed[0].signature_ok);
    assert_eq!(listed[0].processed_at, None);

    // After an upgrade: the same body, now understood, brings its events; the raw row is the same one.
    let again = store.commit_intake(&[item(body, vec![event("late")])]).await.unwrap()[0];
    assert!(again.raw_duplicate);
    assert_eq!((again.raw_id, again.events_inserted), (outcome.raw_id, 1));
    assert!(store.mark_reprocessed(outcome.raw_id).await.unwrap());
    assert!(!store.mark_reprocessed(outcome.raw_id).await.unwrap());
    assert!(store.rejected_webhooks(10).await.unwrap().is_empty());
    store.close().await;
}

async fn writer_shutdown_commits_what_is_queued(db: TestDb) {
    let store = db.open().await;
    let (writer, sender) = IntakeWriter::new(store.clone(), IntakeConfig::default()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let sender = sender.clone();
        tasks
            .spawn(async move { sender.submit(item(&format!("q{n}"), vec![event(&format!("q{n}"))])).await });
    }
    while sender.queued() < 50 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Shutdown fires before the writer even looked at its queue: what was queued is still committed.
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    writer.run(shutdown).await;
    while let Some(answer) = tasks.join_next().await {
        assert_eq!(answer.unwrap().unwrap().item.events_inserted, 1);
    }
    assert_eq!(all_seqs(&store).await.len(), 50);
    let refused = sender.submit(item("after", vec![event("after")])).await;
    assert!(matches!(refused, Err(StoreError::IntakeClosed)), "{refused:?}");
    store.close().await;
}

/// Webhooks and the schedulers' state changes arrive together (on SQLite both are written by the one writer
/// thread, in turn): every one of them is committed.
async fn intake_and_scheduler_writes_share_the_writer(db: TestDb) {
    const WEBHOOKS: usize = 400;
    const MESSAGES: usize = 40;
    let store = db.open().await;
    let rows: Vec<NewQueued> = (0..MESSAGES)
        .map(|n| NewQueued {
            id: format!("out-{n}"),
            phone_number_id: "pn-1".to_owned(),
            recipient: "15550001".to_owned(),
            kind: "text".to_owned(),
            body: format!(r#"{{"to":"15550001","type":"text","text":{{"body":"{n}"}}}}"#),
            callback_data: None,
            not_before: None,
            expires_at: None,
            idempotency_key: None,
            request_sha256: None,
        })
        .collect();
    store.enqueue_outbound(&rows).await.unwrap();
    let (sender, _, writer) =
        IntakeWriter::spawn(store.clone(), IntakeConfig::default(), CancellationToken::new()).await.unwrap();

    let mut webhooks = tokio::task::JoinSet::new();
    for n in 0..WEBHOOKS {
        let sender = sender.clone();
        webhooks.spawn(async move {
            sender.submit(item(&format!("mixed {n}"), vec![event(&format!("mx.{n}"))])).await
        });
    }
    let scheduler = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                let id = format!("out-{n}");
                store.apply_outbound_ops(&[OutboundOp::MarkSending { id: id.clone() }]).await.unwrap();
                store
                    .apply_outbound_ops(&[OutboundOp::Sent { id, wamid: format!("wamid.out-{n}") }])
                    .await
                    .unwrap();
            }
        })
    };
    while let Some(answer) = webhooks.join_next().await {
        assert_eq!(answer.unwrap().unwrap().item.events_inserted, 1);
    }
    scheduler.await.unwrap();
    assert_eq!(all_seqs(&store).await.len(), WEBHOOKS);
    for n in 0..MESSAGES {
        let detail = store.outbound_detail(&format!("out-{n}")).await.unwrap().unwrap();
        assert_eq!((detail.state.as_str(), detail.wamid), ("sent", Some(format!("wamid.out-{n}"))));
    }
    drop(sender);
    writer.await.unwrap();
    store.close().await;
}

fn queued_row(id: &str) -> NewQueued {
    NewQueued {
        id: id.to_owned(),
        phone_number_id: "pn-q".to_owned(),
        recipient: "15550009".to_owned(),
        kind: "text".to_owned(),
        body: format!(r#"{{"to":"15550009","type":"text","text":{{"body":"{id}"}}}}"#),
        callback_data: None,
        not_before: None,
        expires_at: None,
        idempotency_key: None,
        request_sha256: None,
    }
}

/// A scheduler loads a message, then it is cancelled: marking it `sending` changes nothing and says so, so
/// the scheduler does not send it.
async fn a_loaded_message_cancelled_is_not_marked_sending(db: TestDb) {
    let store = db.open().await;
    store.enqueue_outbound(&[queued_row("c-1"), queued_row("c-2")]).await.unwrap();
    let loaded = store.claim_queued("pn-q", "owner-a", 10).await.unwrap();
    assert_eq!(loaded.len(), 2);
    assert!(matches!(store.cancel_outbound("c-1").await.unwrap(), CancelOutcome::Cancelled));
    let marked = store
        .apply_outbound_ops(&[
            OutboundOp::MarkSending { id: "c-1".to_owned() },
            OutboundOp::MarkSending { id: "c-2".to_owned() },
        ])
        .await
        .unwrap();
    assert_eq!(marked, vec![false, true]);
    assert_eq!(store.outbound_detail("c-1").await.unwrap().unwrap().state, "cancelled");
    assert_eq!(store.outbound_detail("c-2").await.unwrap().unwrap().state, "sending");
    store.close().await;
}

/// What a scheduler drops from memory as cancelled elsewhere: a cancelled message only — not one of its own whose
/// send failed and whose requeue has not committed yet (still `sending`), nor a queued one.
async fn only_cancelled_messages_are_reported_gone(db: TestDb) {
    let store = db.open().await;
    store.enqueue_outbound(&[queued_row("g-1"), queued_row("g-2"), queued_row("g-3")]).await.unwrap();
    let loaded = store.claim_queued("pn-q", "owner-a", 10).await.unwrap();
    assert_eq!(loaded.len(), 3);
    store.apply_outbound_ops(&[OutboundOp::MarkSending { id: "g-1".to_owned() }]).await.unwrap();
    assert!(matches!(store.cancel_outbound("g-2").await.unwrap(), CancelOutcome::Cancelled));
    let ids: Vec<String> = ["g-1", "g-2", "g-3"].map(str::to_owned).to_vec();
    assert_eq!(store.outbound_not_queued(&ids).await.unwrap(), vec!["g-2".to_owned()]);
    store.close().await;
}

/// A send whose outcome stayed unknown past the grace period goes back to the queue held by no scheduler:
/// the scheduler that sent it (which dropped it from memory) loads it again.
async fn a_resent_message_is_loaded_again(db: TestDb) {
    let store = db.open().await;
    store.enqueue_outbound(&[queued_row("r-1")]).await.unwrap();
    assert_eq!(store.claim_queued("pn-q", "owner-a", 10).await.unwrap().len(), 1);
    let ops = [OutboundOp::MarkSending { id: "r-1".to_owned() }, OutboundOp::Resend { id: "r-1".to_owned() }];
    assert_eq!(store.apply_outbound_ops(&ops).await.unwrap(), vec![true, true]);
    let again = store.claim_queued("pn-q", "owner-a", 10).await.unwrap();
    assert_eq!(again.len(), 1, "the same owner loads it again");
    assert!(again[0].possibly_duplicated);
    assert_eq!(store.outbound_detail("r-1").await.unwrap().unwrap().state, "queued");
    // Only a message being sent is resent.
    let late = store.apply_outbound_ops(&[OutboundOp::Resend { id: "r-1".to_owned() }]).await.unwrap();
    assert_eq!(late, vec![false]);
    store.close().await;
}

/// What a scheduler loading a message (after a restart, on another instance) counts toward
/// `outbound.max_attempts`: failures that count, not every send (waits for a rate limit, a send stopped
/// before it left); the message's `attempts` still shows every send.
async fn only_counted_failures_use_up_attempts(db: TestDb) {
    let store = db.open().await;
    store.enqueue_outbound(&[queued_row("a-1")]).await.unwrap();
    assert_eq!(store.claim_queued("pn-q", "owner-a", 10).await.unwrap()[0].attempts, 0);
    let id = || "a-1".to_owned();
    let requeue = |counts: bool| OutboundOp::Requeue { id: id(), not_before: None, error: None, counts };
    let ops = [
        OutboundOp::MarkSending { id: id() },
        requeue(false), // 130429: a wait
        OutboundOp::MarkSending { id: id() },
        requeue(true), // a transient error
        OutboundOp::MarkSending { id: id() },
        OutboundOp::Unmark { id: id() }, // stopped before it left
    ];
    assert_eq!(store.apply_outbound_ops(&ops).await.unwrap(), vec![true; 6]);
    let loaded = store.claim_queued("pn-q", "owner-b", 10).await.unwrap();
    assert_eq!(loaded[0].attempts, 1, "one failure counts");
    assert_eq!(store.outbound_detail("a-1").await.unwrap().unwrap().attempts, 2, "two sends went to Meta");
    store.close().await;
}

/// A contact's deliveries go out in order: while its first one waits for a retry, the next is not due (the
/// worker would otherwise wake at once, claim nothing, and loop until the retry).
async fn a_delivery_waiting_behind_a_retry_is_not_due(db: TestDb) {
    let store = db.open().await;
    let now = SystemTime::now();
    let callback = CallbackRecord {
        id: "cb-order".to_owned(),
        url: "http://127.0.0.1:9/hook".to_owned(),
        secret: "s".to_owned(),
        shape: "cloud".to_owned(),
        max_concurrent: 1,
        kinds: Vec::new(),
        phone_number_id: None,
        source: "api".to_owned(),
        scan_seq: 0,
        created_at: now,
    };
    assert!(store.put_callback(&callback, false).await.unwrap());
    let delivery =
        |seq: i64, contact: &str| NewDelivery { seq, contact_key: contact.to_owned(), event_at: now };
    let queued = [delivery(5, "x"), delivery(6, "x"), delivery(7, "y")];
    assert!(store.queue_deliveries("cb-order", 0, 7, &queued).await.unwrap());
    let claimed = store.claim_deliveries("cb-order", 10, now + Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![5, 7]);
    let retry_at = now + Duration::from_secs(600);
    store.delivery_failed("cb-order", 5, None, retry_at, "503", false).await.unwrap();
    // An outcome is written only under the claim's own lease (another instance may hold the row now).
    let other_lease = Some(now + Duration::from_secs(99));
    assert!(!store.delivery_succeeded("cb-order", 7, other_lease).await.unwrap());
    assert!(!store.delivery_failed("cb-order", 7, other_lease, retry_at, "503", true).await.unwrap());
    assert!(store.delivery_succeeded("cb-order", 7, Some(claimed[1].lease_until)).await.unwrap());
    // Event 6 was due at once, but it waits for 5: the next due time is 5's retry.
    let due = store.next_delivery_due("cb-order").await.unwrap().unwrap();
    assert!(due >= retry_at - Duration::from_millis(1), "{due:?} is before the retry at {retry_at:?}");
    assert!(store.claim_deliveries("cb-order", 10, now + Duration::from_secs(30)).await.unwrap().is_empty());
    // A delivery's age counts from its event's commit, not from when the callback got to it.
    let old_event =
        NewDelivery { seq: 9, contact_key: "z".to_owned(), event_at: now - Duration::from_secs(3600) };
    assert!(store.queue_deliveries("cb-order", 7, 9, &[old_event]).await.unwrap());
    let claimed = store.claim_deliveries("cb-order", 10, now + Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![9]);
    assert!(claimed[0].queued_at <= now - Duration::from_secs(3599), "{:?}", claimed[0].queued_at);
    store.close().await;
}

/// Readers of the event log (the feed, subscriptions, callbacks) see an event only once it is on disk: with
/// SQLite's group flush a batch is committed before the WAL is flushed, and a subscriber that saw it then
/// could resume after a seq a power cut takes back (and hands out again).
async fn the_event_log_is_read_up_to_what_is_durable(db: TestDb) {
    let store = db.open().await;
    let before = store.max_seq().await.unwrap();
    let batch: Arc<[IntakeBatchItem]> = vec![item("flushed?", vec![event("f1"), event("f2")])].into();
    let seq = store.commit_intake_shared(batch).await.unwrap()[0].last_seq.unwrap();
    let read =
        |store: Store| async move { store.events_after(before, &EventFilter::default(), 10).await.unwrap() };
    match db.backend() {
        // Committed, not yet flushed: not read, and not the head of the log.
        Backend::Sqlite => {
            assert!(read(store.clone()).await.is_empty());
            assert_eq!(store.max_seq().await.unwrap(), before);
        }
        // A commit is durable when it returns.
        Backend::Postgres => assert_eq!(read(store.clone()).await.len(), 2),
    }
    store.sync_commits().await.unwrap();
    assert_eq!(read(store.clone()).await.len(), 2);
    assert_eq!(store.max_seq().await.unwrap(), seq);
    // What a start finds in the database is read at once.
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.max_seq().await.unwrap(), seq);
    assert_eq!(read(store.clone()).await.len(), 2);
    store.close().await;
}

/// A webhook submitted after the store has been closed under a running writer is answered with an error at
/// once (and so with a 500 to Meta, which retries), never left waiting.
async fn submit_fails_once_the_store_is_closed(db: TestDb) {
    let store = db.open().await;
    let (sender, _, _writer) =
        IntakeWriter::spawn(store.clone(), IntakeConfig::default(), CancellationToken::new()).await.unwrap();
    assert_eq!(sender.submit(item("before", vec![event("before")])).await.unwrap().item.events_inserted, 1);
    store.close().await;
    let answer =
        tokio::time::timeout(Duration::from_secs(60), sender.submit(item("after", vec![event("after")])))
            .await
            .expect("a submit after the store closed must be answered");
    assert!(answer.is_err(), "{answer:?}");
}

/// One batch of `POST /v1/messages` rows: a row whose idempotency key is already held — by an earlier batch or by
/// an earlier row of the same batch — is not inserted and reports the holder's id and request hash.
async fn enqueue_batch_keeps_one_row_per_idempotency_key(db: TestDb) {
    let store = db.open().await;
    let row = |id: &str, key: Option<&str>, hash: &str| NewQueued {
        id: id.to_owned(),
        phone_number_id: "pn-1".to_owned(),
        recipient: "15550001".to_owned(),
        kind: "text".to_owned(),
        body: format!(r#"{{"to":"15550001","type":"text","text":{{"body":"{id}"}}}}"#),
        callback_data: None,
        not_before: None,
        expires_at: Some(1),
        idempotency_key: key.map(str::to_owned),
        request_sha256: Some(hash.to_owned()),
    };
    let first = store.enqueue_outbound(&[row("m1", Some("k1"), "h1")]).await.unwrap();
    assert_eq!(first, vec![Enqueued::Inserted]);
    let batch = [
        row("m2", None, "h2"),
        row("m3", Some("k1"), "h3"),
        row("m4", Some("k4"), "h4"),
        row("m5", Some("k4"), "h5"),
        row("m6", None, "h6"),
    ];
    let out = store.enqueue_outbound(&batch).await.unwrap();
    let existing = |id: &str, hash: &str| Enqueued::Existing {
        id: id.to_owned(),
        request_sha256: Some(hash.to_owned()),
    };
    assert_eq!(
        out,
        vec![
            Enqueued::Inserted,
            existing("m1", "h1"),
            Enqueued::Inserted,
            existing("m4", "h4"),
            Enqueued::Inserted,
        ]
    );
    for (id, stored) in [("m1", true), ("m2", true), ("m3", false), ("m4", true), ("m5", false), ("m6", true)]
    {
        assert_eq!(store.outbound_detail(id).await.unwrap().is_some(), stored, "{id}");
    }
    store.close().await;
}

// ---------------------------------------------------------------------------------------------------------
// Finding lost sends' statuses by callback data: a window of the event log found through its primary key

/// Runs `sql` (several statements) on the test's database, beside the store.
async fn exec_sql(db: &TestDb, sql: &str) {
    match db {
        TestDb::Sqlite { dir } => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("wabridge.db"));
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        TestDb::Postgres { url, schema } => {
            let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// One event written with SQL: its seq, `created_at` (Unix ms) and, for a status event, the gateway id it
/// carries as callback data.
#[derive(Debug, Clone)]
struct LogRow {
    seq: i64,
    at: i64,
    callback: Option<String>,
}

impl LogRow {
    fn new(seq: i64, at: i64) -> Self {
        let callback = (seq % 3 == 0).then(|| format!("g{seq}"));
        Self { seq, at, callback }
    }
}

/// Writes `rows` into the event log (with explicit seqs; one raw body for all of them).
async fn write_log(db: &TestDb, rows: &[LogRow]) {
    let pg = db.backend() == Backend::Postgres;
    let mut sql = String::new();
    {
        let raw = if pg {
            "INSERT INTO raw_webhooks (id, received_at, body, body_sha256, signature_ok, status, processed_at) \
             OVERRIDING SYSTEM VALUE VALUES (1, 0, '\\x00'::bytea, '\\x01'::bytea, true, 'accepted', 0) \
             ON CONFLICT DO NOTHING;"
        } else {
            "INSERT OR IGNORE INTO raw_webhooks (id, received_at, body, body_sha256, signature_ok, status, \
             processed_at) VALUES (1, 0, x'00', x'01', 1, 'accepted', 0);"
        };
        sql.push_str(raw);
    }
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            let (kind, payload) = match &r.callback {
                Some(cb) => (
                    "status",
                    format!(
                        r#"{{"statuses":[{{"id":"wamid.{}","status":"sent","biz_opaque_callback_data":"{cb}"}}]}}"#,
                        r.seq
                    ),
                ),
                None => ("message", format!(r#"{{"messages":[{{"id":"wamid.in.{}"}}]}}"#, r.seq)),
            };
            format!("({}, 'k{}', '{kind}', 'messages', 'waba-1', 'pn-1', '{payload}', 1, {})", r.seq, r.seq, r.at)
        })
        .collect();
    sql.push_str(&format!(
        "INSERT INTO events (seq, dedupe_key, kind, field, waba_id, phone_number_id, payload, raw_id, created_at) \
         {} VALUES {};",
        if pg { "OVERRIDING SYSTEM VALUE" } else { "" },
        values.join(", ")
    ));
    exec_sql(db, &sql).await;
}

/// What the lookup must find among `rows` for `ids` since `since`: every status event of the window,
/// whatever its place in the log.
fn expected_statuses(rows: &[LogRow], ids: &[String], since: i64) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter(|r| r.at >= since)
        .filter_map(|r| {
            r.callback.clone().filter(|cb| ids.contains(cb)).map(|cb| (cb, format!("wamid.{}", r.seq)))
        })
        .collect()
}

/// The bisection over the primary key lands on the first seq stored at or after the time asked for, across
/// gaps of pruned seqs, before the first event and after the last; nothing on an empty log.
async fn first_seq_created_since_bisects_the_log(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.first_seq_created_since(0).await.unwrap(), None, "an empty log");
    let base = 1_700_000_000_000_i64;
    // Seqs 5 to 400, one a minute, with the seqs 60 to 179 pruned and every seventh missing (rolled back).
    let rows: Vec<LogRow> = (5..=400)
        .filter(|seq| !(60..180).contains(seq) && seq % 7 != 0)
        .map(|seq| LogRow::new(seq, base + seq * 60_000))
        .collect();
    write_log(&db, &rows).await;
    let max = rows.last().unwrap().seq;
    let mut at = base - 120_000;
    while at <= base + 402 * 60_000 {
        // The first event stored at `at` or later; the answer may be a free seq below it, never an event.
        let first = rows.iter().find(|r| r.at >= at).map_or(max + 1, |r| r.seq);
        let found = store.first_seq_created_since(at).await.unwrap().unwrap();
        assert!(
            found <= first && !rows.iter().any(|r| (found..first).contains(&r.seq)),
            "{found} for {first}"
        );
        at += 17_000;
    }
    assert_eq!(store.first_seq_created_since(i64::MIN).await.unwrap(), Some(5), "every event is newer");
    assert_eq!(store.first_seq_created_since(i64::MAX).await.unwrap(), Some(max + 1), "every event is older");
    store.close().await;
}

/// The statuses of the window are found — those older than it are not needed and not given — on an empty log,
/// a log all older or all newer than the window, across gaps of seqs, and when the clock went back by a few
/// minutes along the log (a step of the system clock, instances whose clocks differ). On SQLite, the scan
/// reads a range of the primary key, not the whole log.
async fn statuses_by_callback_data_reads_only_the_window(db: TestDb) {
    let store = db.open().await;
    let base = 1_700_000_000_000_i64;
    let ids: Vec<String> =
        (0..=1600).filter(|n| n % 2 == 0).map(|n| format!("g{n}")).chain(["g-unknown".to_owned()]).collect();
    assert!(store.statuses_by_callback_data(&ids, 0).await.unwrap().is_empty(), "an empty log");
    assert!(store.statuses_by_callback_data(&[], 0).await.unwrap().is_empty(), "no ids");

    let mut rows: Vec<LogRow> = (1..=300)
        .filter(|seq| !(40..100).contains(seq))
        .map(|seq| LogRow::new(seq, base + seq * 60_000))
        .collect();
    // Later commits stamped by a clock 4 minutes behind (within the lookup's margin), then one ahead again.
    rows.extend((301..=330).map(|seq| LogRow::new(seq, base + seq * 60_000 - 240_000)));
    rows.extend((331..=360).map(|seq| LogRow::new(seq, base + seq * 60_000)));
    write_log(&db, &rows).await;

    let found = |since: i64| {
        let (store, ids) = (&store, &ids);
        async move {
            store.statuses_by_callback_data(ids, since).await.unwrap().into_iter().collect::<BTreeSet<_>>()
        }
    };
    let all = expected_statuses(&rows, &ids, i64::MIN);
    assert!(all.len() > 40, "{}", all.len());
    assert_eq!(found(0).await, all, "every event is newer than the window's start");
    assert_eq!(found(base).await, all);
    assert!(found(base + 361 * 60_000).await.is_empty(), "every event is older");
    let mut since = base - 30_000;
    while since <= base + 362 * 60_000 {
        assert_eq!(found(since).await, expected_statuses(&rows, &ids, since), "since {since}");
        since += 41_000;
    }
    // A dense stretch later on (one event a second) whose clock went back 4 minutes after seq 1302: the
    // events stamped from then on sort below 1302 by time until they pass it, so a search for the window's
    // first seq lands after 1302 and must start earlier by its margin for 1302's status to be found.
    let later = base + 86_400_000;
    let step: Vec<LogRow> = (1001..=1600)
        .map(|seq| LogRow::new(seq, later + (seq - 1000) * 1000 - if seq > 1302 { 240_000 } else { 0 }))
        .collect();
    write_log(&db, &step).await;
    rows.extend(step);
    let at_1302 = later + 302_000;
    assert!(found(at_1302).await.contains(&("g1302".to_owned(), "wamid.1302".to_owned())));
    for since in (at_1302 - 30_000..=at_1302 + 30_000).step_by(1_500) {
        assert_eq!(found(since).await, expected_statuses(&rows, &ids, since), "since {since}");
    }
    // A status older than the window is left out even though its callback data is asked for.
    let old = base + 30 * 60_000;
    assert!(found(old + 1).await.iter().all(|(cb, _)| cb != "g30"));
    assert!(found(old).await.contains(&("g30".to_owned(), "wamid.30".to_owned())));

    if db.backend() == Backend::Sqlite {
        let plan = store.statuses_by_callback_data_plan(200, base + 200 * 60_000).await.unwrap();
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH events USING INTEGER PRIMARY KEY (rowid>?)")),
            "the scan reads a range of the primary key: {plan:?}"
        );
        assert!(!plan.iter().any(|step| step.starts_with("SCAN events")), "not the whole log: {plan:?}");
    }
    store.close().await;
}

/// A status webhook stored by the intake (stamped at commit) is found by the callback data of its status
/// while it is in the window, and not once the window starts after it.
async fn a_status_stored_by_intake_is_found_by_its_callback_data(db: TestDb) {
    let store = db.open().await;
    let status_event = |wamid: &str, cb: &str| NewEvent {
        kind: "status".to_owned(),
        payload: format!(
            r#"{{"statuses":[{{"id":"{wamid}","status":"sent","biz_opaque_callback_data":"{cb}"}}]}}"#
        ),
        ..event(&format!("status:{wamid}:sent"))
    };
    let now = || {
        i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()).unwrap()
    };
    let before = now();
    let items = [
        item("first", vec![event("m1"), status_event("wamid.a", "gw-a")]),
        item("second", vec![status_event("wamid.b", "gw-b"), event("m2")]),
    ];
    store.commit_intake(&items).await.unwrap();
    let after = now();
    let ids = ["gw-a".to_owned(), "gw-b".to_owned(), "gw-c".to_owned()];
    let mut found = store.statuses_by_callback_data(&ids, before - 60_000).await.unwrap();
    found.sort();
    assert_eq!(found, [("gw-a".to_owned(), "wamid.a".to_owned()), ("gw-b".to_owned(), "wamid.b".to_owned())]);
    assert!(store.statuses_by_callback_data(&ids, after + 1).await.unwrap().is_empty());
    assert_eq!(
        store.first_seq_created_since(after + 1).await.unwrap(),
        Some(store.max_seq().await.unwrap() + 1)
    );
    store.close().await;
}

// ---------------------------------------------------------------------------------------------------------
// Retention: each table is walked by its primary key, up to its first young row

/// The first column of every row `sql` returns (a query of the test's own, beside the store).
async fn query_ints(db: &TestDb, sql: &str) -> Vec<i64> {
    match db {
        TestDb::Sqlite { dir } => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("wabridge.db"));
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let found = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            found
        }
        TestDb::Postgres { url, schema } => {
            let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            let found = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            found
        }
    }
}

fn at_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
}

fn now_millis() -> i64 {
    i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Old and young events mixed, over more than one chunk (2,000 rows): a prune deletes the old ones up to the
/// first young event and leaves every young one; an old event stamped after a young one (the clock went
/// back) waits for a later pass, when the young one before it is old too. What a pending delivery needs is
/// kept, and `pruned_through` tells how far the deletes went.
async fn prune_reads_the_log_up_to_its_first_young_event(db: TestDb) {
    let store = db.open().await;
    let base = 1_700_000_000_000_i64;
    let (cutoff, later) = (base + 5_000_000, base + 9_000_000);
    // 1..=4500 old; 4501 young (by the first cutoff); 4502..=4510 old again; 4511..=4600 young for both.
    let stamp = |seq: i64| match seq {
        4501 => base + 8_000_000,
        4511.. => base + 20_000_000 + seq,
        _ => base + seq,
    };
    let rows: Vec<LogRow> = (1..=4600).map(|seq| LogRow::new(seq, stamp(seq))).collect();
    write_log(&db, &rows).await;
    let seqs_from = |from: i64| (from..=4600).collect::<Vec<_>>();

    assert_eq!(store.prune(at_millis(base), None).await.unwrap().events, 0, "nothing is older");
    // A delivery still needs the events after 3000.
    let counts = store.prune(at_millis(cutoff), Some(3000)).await.unwrap();
    assert_eq!(counts.events, 3000);
    assert_eq!(all_seqs(&store).await, seqs_from(3001));
    assert_eq!(wabridge_gateway::retention::pruned_through(&store).await.unwrap(), 3000);

    let counts = store.prune(at_millis(cutoff), None).await.unwrap();
    assert_eq!(counts.events, 1500, "the old events up to the first young one");
    assert_eq!(all_seqs(&store).await, seqs_from(4501), "4502..=4510 wait behind 4501");
    assert_eq!(wabridge_gateway::retention::pruned_through(&store).await.unwrap(), 4500);
    assert_eq!(store.prune(at_millis(cutoff), None).await.unwrap().events, 0, "a pass again finds nothing");

    // Once 4501 is old too, the events the clock put behind it go; the young ones stay.
    let counts = store.prune(at_millis(later), None).await.unwrap();
    assert_eq!(counts.events, 10);
    assert_eq!(all_seqs(&store).await, seqs_from(4511));
    assert_eq!(wabridge_gateway::retention::pruned_through(&store).await.unwrap(), 4510);
    store.close().await;
}

/// Raw bodies likewise, by id and received time: the old ones up to the first young body go, over more than
/// one chunk, except a rejected body (kept for re-processing) and a body a young event refers to.
async fn prune_reads_raw_bodies_up_to_the_first_young_one(db: TestDb) {
    let store = db.open().await;
    let pg = db.backend() == Backend::Postgres;
    let base = 1_700_000_000_000_i64;
    let (cutoff, later) = (base + 5_000_000, base + 9_000_000);
    // 1..=2100 old; 2101 young (by the first cutoff); 2102..=2104 old again; 2105..=2110 young for both.
    let received = |id: i64| match id {
        2101 => base + 8_000_000,
        2105.. => base + 20_000_000 + id,
        _ => base + id,
    };
    let values: Vec<String> = (1..=2110_i64)
        .map(|id| {
            let status = if id == 7 { "'rejected', 'invalid_envelope'" } else { "'accepted', NULL" };
            let (body, hash) = if pg {
                (format!("'\\x{id:04x}'::bytea"), format!("'\\x{id:064x}'::bytea"))
            } else {
                (format!("x'{id:04x}'"), format!("x'{id:064x}'"))
            };
            format!(
                "({id}, {}, {body}, {hash}, {}, {status}, 0)",
                received(id),
                if pg { "true" } else { "1" }
            )
        })
        .collect();
    let young_event = base + 20_000_000;
    exec_sql(
        &db,
        &format!(
            "INSERT INTO raw_webhooks (id, received_at, body, body_sha256, signature_ok, status, reject_reason, \
             processed_at) {} VALUES {}; \
             INSERT INTO events (seq, dedupe_key, kind, field, waba_id, payload, raw_id, created_at) {} \
             VALUES (1, 'young', 'message', 'messages', 'waba-1', '{{}}', 9, {young_event});",
            if pg { "OVERRIDING SYSTEM VALUE" } else { "" },
            values.join(", "),
            if pg { "OVERRIDING SYSTEM VALUE" } else { "" },
        ),
    )
    .await;
    let left = || query_ints(&db, "SELECT id FROM raw_webhooks ORDER BY id");
    let ids = |old: &[i64], from: i64| old.iter().copied().chain(from..=2110).collect::<Vec<_>>();

    let counts = store.prune(at_millis(cutoff), None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (0, 2098));
    assert_eq!(left().await, ids(&[7, 9], 2101), "2102..=2104 wait behind 2101");
    assert_eq!(store.prune(at_millis(cutoff), None).await.unwrap().raw_webhooks, 0);

    let counts = store.prune(at_millis(later), None).await.unwrap();
    assert_eq!((counts.events, counts.raw_webhooks), (0, 4));
    assert_eq!(left().await, ids(&[7, 9], 2105));
    assert_eq!(store.rejected_webhooks(10).await.unwrap().len(), 1);
    store.close().await;
}

/// Login sessions that expired or were revoked longer ago than `max_age_secs` are deleted by a retention
/// pass, over more than one chunk; live sessions and those that ended recently stay.
async fn retention_prunes_ended_login_sessions(db: TestDb) {
    let store = db.open().await;
    let now = now_millis();
    let (hour, minute) = (3_600_000, 60_000);
    let token = |n: u32| format!("{n:064x}");
    // Every third session is live; the others expired two hours ago.
    let values: Vec<String> = (0..2100_u32)
        .map(|n| {
            let expires_at = if n % 3 == 0 { now + hour } else { now - 2 * hour };
            format!("('{}', 'admin', {}, {expires_at})", token(n), now - 3 * hour)
        })
        .collect();
    exec_sql(
        &db,
        &format!(
            "INSERT INTO api_sessions (token_sha256, user_name, created_at, expires_at) VALUES {};",
            values.join(", ")
        ),
    )
    .await;
    // Through the store: expired a few minutes ago, revoked two hours ago, revoked now, and live.
    let (expired_lately, revoked_long_ago, revoked_lately, live) =
        (token(5_000), token(5_001), token(5_002), token(5_003));
    store.insert_session(&expired_lately, "admin", now - 10 * minute).await.unwrap();
    for t in [&revoked_long_ago, &revoked_lately, &live] {
        store.insert_session(t, "admin", now + hour).await.unwrap();
    }
    assert!(store.revoke_session(&revoked_long_ago).await.unwrap());
    assert!(store.revoke_session(&revoked_lately).await.unwrap());
    exec_sql(
        &db,
        &format!(
            "UPDATE api_sessions SET revoked_at = {} WHERE token_sha256 = '{revoked_long_ago}';",
            now - 2 * hour
        ),
    )
    .await;

    let config = wabridge_gateway::config::RetentionConfig { max_age_secs: 3600, ..Default::default() };
    wabridge_gateway::retention::prune_once(&store, &config, None).await.unwrap();
    let stored = query_ints(&db, "SELECT count(*) FROM api_sessions").await[0];
    assert_eq!(stored, 700 + 3, "the 700 live sessions of the 2,100 and three of the four");
    let count_of = |hash: &str| format!("SELECT count(*) FROM api_sessions WHERE token_sha256 = '{hash}'");
    for (hash, kept) in
        [(&expired_lately, true), (&revoked_long_ago, false), (&revoked_lately, true), (&live, true)]
    {
        assert_eq!(query_ints(&db, &count_of(hash)).await[0], i64::from(kept), "{hash}");
    }
    // Live sessions still log in, on either side of a chunk's end.
    for n in [0, 1998, 2001, 2097] {
        assert!(store.credential_by_hash(&token(n)).await.unwrap().is_some(), "{n}");
    }
    assert!(store.credential_by_hash(&live).await.unwrap().is_some());
    store.close().await;
}

/// Contacts whose last message is older than `max_age_secs` are deleted by a retention pass, over more than
/// one chunk, but never inside their 24-hour window: with an age of 0 the windows still open stay.
async fn retention_prunes_contacts_after_their_window(db: TestDb) {
    let store = db.open().await;
    let now = SystemTime::now();
    let ago = |secs: u64| now - Duration::from_secs(secs);
    let (hour, day) = (3600, 24 * 3600);
    let touch = |number: &str, wa_id: &str, at| InboundTouch {
        phone_number_id: number.to_owned(),
        wa_id: wa_id.to_owned(),
        at,
    };
    let named =
        [("alice", ago(40 * day)), ("bob", ago(day + hour)), ("carol", ago(day - hour)), ("dave", ago(60))];
    store
        .commit_intake(&[IntakeBatchItem {
            inbound: named.iter().map(|(wa_id, at)| touch("pn-1", wa_id, *at)).collect(),
            ..item("touches", Vec::new())
        }])
        .await
        .unwrap();
    // Many more, on two numbers: every other one wrote 40 days ago, the rest an hour ago.
    let now_ms = now_millis();
    let values: Vec<String> = (0..2100_i64)
        .map(|n| {
            let at = if n % 2 == 0 { now_ms - 40 * 86_400_000 } else { now_ms - 3_600_000 };
            format!("('pn-{}', '1555{n:07}', {at}, {at})", n % 2 + 1)
        })
        .collect();
    exec_sql(
        &db,
        &format!(
            "INSERT INTO contacts (phone_number_id, wa_id, last_inbound_at, updated_at) VALUES {};",
            values.join(", ")
        ),
    )
    .await;
    let count = || query_ints(&db, "SELECT count(*) FROM contacts");
    let present = |wa_id: &'static str| {
        let store = &store;
        async move { store.contact_last_inbound("pn-1", wa_id).await.unwrap().is_some() }
    };

    // Thirty days: the contacts of 40 days ago go.
    let mut config = wabridge_gateway::config::RetentionConfig::default();
    wabridge_gateway::retention::prune_once(&store, &config, None).await.unwrap();
    assert_eq!(count().await[0], 1050 + 3);
    assert!(!present("alice").await);
    assert!(present("bob").await && present("carol").await && present("dave").await);

    // No age at all: still nothing inside its window.
    config.max_age_secs = 0;
    wabridge_gateway::retention::prune_once(&store, &config, None).await.unwrap();
    assert_eq!(count().await[0], 1050 + 2);
    assert!(!present("bob").await);
    assert!(present("carol").await && present("dave").await);
    store.close().await;
}
