//! The scheduler through trouble: an outage of Meta fails nothing and sending resumes, while a message that keeps
//! failing as others go through still fails; a message scheduled for
//! later holds back no later message to the same user; a level read that failed at start is tried again;
//! bursts of inbound messages are all counted; a number's lease is given up on a graceful stop, and what was
//! held before a lost lease is forgotten; a cancelled message waiting for its retry holds back nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use wabridge_gateway::outbound::{QueueWriter, WriteError, sending_lease_key};
use wabridge_gateway::store::{Enqueued, NewQueued, OutboundOp};
use wabridge_sandbox::{ChaosConfig, FaultInjection, FaultScope, SentFilter};
use wabridge_types::ids::PhoneNumberId;
use wabridge_types::limits::ThroughputLevel;
use wabridge_types::send::OutboundMessage;

use crate::support::backend::{Backend, TestDb, each_backend, run};
use crate::support::fake_meta;
use crate::support::sending::{NUMBER, Pair, config, sandbox_config, template};

each_backend!(
    outage_fails_nothing_and_sending_resumes,
    a_message_failing_while_others_go_through_ends_failed,
    scheduled_message_does_not_hold_back_later_ones,
    level_read_that_failed_at_start_is_retried,
    inbound_bursts_are_all_counted,
    lease_is_released_on_graceful_stop,
    messages_held_before_a_lost_lease_are_forgotten,
    cancelling_a_message_waiting_for_its_retry_releases_its_recipient,
    a_new_lease_term_keeps_a_recipients_order_behind_a_send_still_in_flight,
);

const WAIT: Duration = Duration::from_secs(20);
const GONE_OUT: &[&str] = &["sent", "delivered", "read"];

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn unix_millis() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn fault(code: i64, next_n: Option<u64>) -> Option<FaultInjection> {
    Some(FaultInjection { code, next_n, every_nth: None, scope: FaultScope::Messages })
}

/// Sends `body` and returns the gateway id of the queued message.
async fn queue(pair: &Pair, body: &serde_json::Value) -> String {
    let (code, r) = pair.send(body).await;
    assert_eq!(code, 201, "{r}");
    r["messages"][0]["id"].as_str().unwrap().to_owned()
}

/// The value of the `/metrics` line that starts with `series` (name and labels), if present.
async fn metric(pair: &Pair, series: &str) -> Option<f64> {
    let text = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Waits until the metric `series` has the value `want`.
async fn wait_metric(pair: &Pair, series: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = metric(pair, series).await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {got:?}, expected {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Meta answers 131016 (service unavailable) to every send for longer than three attempts take: nothing that
/// was accepted fails, the number keeps asking, and once Meta answers again every message goes out.
async fn outage_fails_nothing_and_sending_resumes(db: TestDb) {
    let mut cfg = config(&db);
    cfg.outbound.max_attempts = 3;
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let control = pair.sandbox.control();
    control.set_fault(fault(131_016, None));
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(queue(&pair, &template(NUMBER, &format!("163155509{i}0"))).await);
    }
    // 131016 asks for 5 s between tries: three attempts of a message take 8-12 s, after which it used to
    // fail. Watch until one message was sent more often than `max_attempts` allows (four sends, 15 s or more)
    // and none failed; the deadline is generous, for a loaded machine, and is only reached if the number
    // stops asking.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut most_sends = 0;
        for id in &ids {
            let m = pair.message(id).await;
            assert_ne!(m["state"], "failed", "an outage failed an accepted message: {m}");
            most_sends = most_sends.max(m["attempts"].as_i64().unwrap_or(0));
        }
        let refused = control.counters().rejected.get(&131_016).copied().unwrap_or(0);
        if most_sends > 3 && refused >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the number stopped asking during the outage: {refused} refusals, at most {most_sends} sends of a message"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    control.set_fault(None);
    for id in &ids {
        let m = pair.wait_state(id, GONE_OUT, Duration::from_secs(30)).await;
        assert!(m["wamid"].is_string(), "{m}");
    }
    pair.stop().await;
}

/// A Meta that answers 503 without an error body to every send to `POISON` and accepts the others; counts the
/// requests for `POISON`. Returns its URL.
async fn meta_refusing_one_recipient(poison_requests: Arc<AtomicUsize>) -> String {
    use axum::http::StatusCode;
    fake_meta::serve_sends(move |body: String| {
        let poison_requests = poison_requests.clone();
        async move {
            if body.contains(POISON) {
                poison_requests.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::SERVICE_UNAVAILABLE, String::new());
            }
            let to: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            (StatusCode::OK, fake_meta::accepted(to["to"].as_str().unwrap_or_default()))
        }
    })
    .await
}

const POISON: &str = "16315550981";

/// One message keeps failing with an error about the number (503 without an error body) while another message
/// of the number goes through: that shows the error is about the message, which then fails (`max_attempts` 1),
/// answered through the Cloud-compatible route as 131016 "Service unavailable" — not code 0, Meta's
/// AuthException, which a Cloud SDK would read as its own access token refused.
async fn a_message_failing_while_others_go_through_ends_failed(db: TestDb) {
    let poison_requests = Arc::new(AtomicUsize::new(0));
    let mut c = fake_meta::gateway_config(&db, meta_refusing_one_recipient(poison_requests.clone()).await);
    c.outbound.max_attempts = 1;
    let gateway = crate::support::gateway::start(c).await;
    let client = fake_meta::sdk(&gateway);
    let text = |to: &str| -> OutboundMessage {
        serde_json::from_value(json!({"messaging_product": "whatsapp", "to": to, "type": "text",
            "text": {"body": "hi"}}))
        .unwrap()
    };
    let number = PhoneNumberId::new(NUMBER);
    let poison = {
        let (client, number, message) = (client.clone(), number.clone(), text(POISON));
        tokio::spawn(async move { client.send_message(&number, &message).await })
    };
    // Its first failure alone says nothing (the whole number could be down): the number backs off.
    let deadline = Instant::now() + WAIT;
    while poison_requests.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the message never reached Meta");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another message goes through...
    client.send_message(&number, &text("16315550982")).await.unwrap();
    // ...and the poisonous one fails at its next refusal.
    let e = poison.await.unwrap().unwrap_err();
    assert_eq!((e.code(), e.status()), (Some(131_016), Some(500)), "{e}");
    gateway.shutdown().await.unwrap();
}

/// A message scheduled an hour ahead does not hold back messages to the same user that are due now; those go
/// out in the order they were queued, and a message scheduled a moment ahead goes out once its time comes.
async fn scheduled_message_does_not_hold_back_later_ones(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let to = "16315550951";
    let mut later = template(NUMBER, to);
    later["send_at"] = json!(unix_secs() + 3600);
    let later_id = queue(&pair, &later).await;
    let mut soon = template(NUMBER, to);
    soon["send_at"] = json!(unix_secs() + 2);
    let soon_id = queue(&pair, &soon).await;
    let first = queue(&pair, &template(NUMBER, to)).await;
    let second = queue(&pair, &template(NUMBER, to)).await;
    let first_m = pair.wait_state(&first, GONE_OUT, WAIT).await;
    let second_m = pair.wait_state(&second, GONE_OUT, WAIT).await;
    pair.wait_state(&soon_id, GONE_OUT, WAIT).await;
    assert_eq!(pair.message(&later_id).await["state"], "queued");
    // FIFO among the due ones: Meta saw `first` before `second`.
    let sent = pair.sandbox.control().sent(&SentFilter { to: Some(to.to_owned()), ..SentFilter::default() });
    let seq = |wamid: &serde_json::Value| sent.iter().find(|s| s.id == wamid.as_str().unwrap()).unwrap().seq;
    assert!(seq(&first_m["wamid"]) < seq(&second_m["wamid"]), "due messages to one user left out of order");
    pair.stop().await;
}

/// Every Graph call takes longer than the level read waits at start; once Meta answers in time again, the
/// read is tried again and the number's level (HIGH, 1,000/s) applies.
async fn level_read_that_failed_at_start_is_retried(db: TestDb) {
    let sandbox = sandbox_config(|s| {
        s.numbers[0].level = ThroughputLevel::High;
        s.chaos.latency = Duration::from_secs(4);
    });
    let pair = Pair::start(config(&db), sandbox).await;
    let series = format!("wabridge_outbound_level_mps{{phone_number_id=\"{NUMBER}\"}}");
    // The read at start gives up after 3 s: meanwhile the number sends at the standard level.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(metric(&pair, &series).await, Some(80.0), "the read cannot have succeeded yet");
    pair.sandbox.control().set_chaos(ChaosConfig::default());
    wait_metric(&pair, &series, 1000.0).await;
    pair.stop().await;
}

/// 5,000 inbound messages told to the sending side in a tight loop (as a burst of webhooks does): every one is
/// counted against the number's level.
async fn inbound_bursts_are_all_counted(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let outbound = &pair.gateway.state().outbound;
    for i in 0..5_000 {
        outbound.inbound(NUMBER, vec![format!("1631{i:07}")]);
    }
    let series = format!("wabridge_outbound_inbound_counted_total{{phone_number_id=\"{NUMBER}\"}}");
    wait_metric(&pair, &series, 5000.0).await;
    pair.stop().await;
}

/// After a graceful stop, the next instance can take the number at once: the lease is not left to run out.
async fn lease_is_released_on_graceful_stop(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    // A message goes out: this instance holds the number's lease.
    let id = queue(&pair, &template(NUMBER, "16315550961")).await;
    pair.wait_state(&id, GONE_OUT, WAIT).await;
    let Pair { gateway, sandbox, .. } = pair;
    let key = sending_lease_key(sandbox.waba_id());
    gateway.shutdown().await.unwrap();
    sandbox.shutdown().await;
    let store = wabridge_gateway::open_store(&config(&db)).await.unwrap();
    let taken = store.acquire_number_lease(&key, "next-instance", unix_millis() + 60_000).await.unwrap();
    store.close().await;
    assert!(taken, "the stopped instance still holds the number's lease");
}

/// A message waits an hour for its retry at the head of its recipient's queue; another instance takes the
/// number's lease and sends it. When this instance takes the number back, the stale copy is gone: a new
/// message to the same user goes out.
async fn messages_held_before_a_lost_lease_are_forgotten(db: TestDb) {
    let mut cfg = config(&db);
    // Renewed every 300 ms: the loss and the return of the lease show quickly.
    cfg.outbound.lease_ms = 900;
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let to = "16315550971";
    let held = held_an_hour(&pair, to).await;
    // Another instance takes the number's lease (for two seconds) and sends that message.
    let store = wabridge_gateway::open_store(&config(&db)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        store.clear_number_leases().await.unwrap();
        let key = sending_lease_key(pair.sandbox.waba_id());
        if store.acquire_number_lease(&key, "other-instance", unix_millis() + 2_000).await.unwrap() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease could not be taken");
    }
    let changed = store
        .apply_outbound_ops(&[
            OutboundOp::MarkSending { id: held.clone() },
            OutboundOp::Sent { id: held.clone(), wamid: "wamid.sent-by-the-other-instance".to_owned() },
        ])
        .await
        .unwrap();
    assert_eq!(changed, [true, true]);
    store.close().await;
    // This instance takes the number back when that lease runs out, and sends to the same user again.
    let next = queue(&pair, &template(NUMBER, to)).await;
    pair.wait_state(&next, GONE_OUT, WAIT).await;
    assert_eq!(pair.message(&held).await["state"], "sent");
    pair.stop().await;
}

/// Queues a template to `to` that Meta refuses once with 131064 (messaging limit reached), which asks for an
/// hour before the retry: it waits at the head of its recipient's queue. Its id.
async fn held_an_hour(pair: &Pair, to: &str) -> String {
    pair.sandbox.control().set_fault(fault(131_064, Some(1)));
    let held = queue(pair, &template(NUMBER, to)).await;
    pair.wait_message(&held, WAIT, "a retry an hour ahead", |m| {
        m["state"] == "queued" && m["errors"].to_string().contains("131064")
    })
    .await;
    held
}

/// A message waits an hour for its retry at the head of its recipient's queue; cancelling it lets the next
/// message to that user go at once, not after the hour.
async fn cancelling_a_message_waiting_for_its_retry_releases_its_recipient(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let to = "16315550981";
    let held = held_an_hour(&pair, to).await;
    // The next message to the same user waits behind it...
    let next = queue(&pair, &template(NUMBER, to)).await;
    assert_eq!(pair.message(&next).await["state"], "queued");
    // ...until it is cancelled: then it goes.
    assert_eq!(pair.cancel(&held).await, 200);
    pair.wait_state(&next, GONE_OUT, WAIT).await;
    assert_eq!(pair.message(&held).await["state"], "cancelled");
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "the cancelled message was not sent");
    pair.stop().await;
}

/// On a current-thread runtime (unlike [`each_backend!`]'s), every insert below is queued before the writer
/// task runs, so they all land in one batch and its failure is certain, not a matter of timing.
mod a_failed_insert_batch_is_committed_row_by_row {
    use crate::support::backend::{Backend, run};

    #[tokio::test]
    async fn sqlite() {
        run(Backend::Sqlite, super::failed_insert_batch).await;
    }

    #[tokio::test]
    async fn postgres() {
        run(Backend::Postgres, super::failed_insert_batch).await;
    }
}

/// The outbound writer, driven directly: a row the store refuses (an id already taken; on PostgreSQL also a NUL
/// character, which its text cannot hold) fails its batch; the writer then inserts the rows one by one, so only
/// the bad rows fail, and of two rows with one idempotency key the first inserts and the second finds it.
async fn failed_insert_batch(db: TestDb) {
    let store = db.open().await;
    let row = |id: &str, key: Option<&str>| NewQueued {
        id: id.to_owned(),
        phone_number_id: NUMBER.to_owned(),
        recipient: "16315550990".to_owned(),
        kind: "template".to_owned(),
        body: "{}".to_owned(),
        callback_data: Some(format!("data-{id}")),
        not_before: None,
        expires_at: None,
        idempotency_key: key.map(str::to_owned),
        request_sha256: key.map(|_| "same-request".to_owned()),
    };
    store.enqueue_outbound(&[row("taken", None)]).await.unwrap();
    let stop = CancellationToken::new();
    let (writer, tasks) = QueueWriter::spawn(&store, 64, &stop);
    let mut rows =
        vec![row("a", None), row("k1", Some("key-1")), row("taken", None), row("k2", Some("key-1"))];
    if db.backend() == Backend::Postgres {
        let mut nul = row("nul", None);
        nul.callback_data = Some("x\u{0}".to_owned());
        rows.push(nul);
    }
    rows.push(row("b", None));
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let results = futures_util::future::join_all(rows.into_iter().map(|r| writer.insert(r))).await;
    for (id, result) in ids.iter().zip(&results) {
        match id.as_str() {
            "a" | "k1" | "b" => {
                assert_eq!(result.as_ref().ok(), Some(&Enqueued::Inserted), "{id}: {result:?}")
            }
            "k2" => {
                let earlier =
                    Enqueued::Existing { id: "k1".into(), request_sha256: Some("same-request".into()) };
                assert_eq!(result.as_ref().ok(), Some(&earlier), "{id}: {result:?}");
            }
            _ => assert!(matches!(result, Err(WriteError::Store(_))), "{id}: {result:?}"),
        }
    }
    for id in ["a", "k1", "b"] {
        let stored = store.outbound_detail(id).await.unwrap().unwrap();
        assert_eq!(stored.callback_data.as_deref(), Some(format!("data-{id}").as_str()));
    }
    assert!(store.outbound_detail("k2").await.unwrap().is_none());
    assert_eq!(
        store.outbound_detail("taken").await.unwrap().unwrap().callback_data.as_deref(),
        Some("data-taken")
    );
    let counts = store.outbound_state_counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 4, "taken, a, k1, b: {counts:?}");
    stop.cancel();
    drop(writer);
    for task in tasks {
        task.await.unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn cancelling_through_another_instance_releases_the_recipient() {
    run(Backend::Postgres, cancelled_through_another_instance).await;
}

/// The same, with the cancellation reaching an instance that does not send for the number: the sending one
/// finds it in the store at its next poll.
async fn cancelled_through_another_instance(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let to = "16315550982";
    let held = held_an_hour(&pair, to).await;
    assert!(pair.gateway.state().outbound.sends_here(NUMBER));
    let second = crate::support::gateway::start((*pair.gateway.state().config).clone()).await;
    assert!(!second.state().outbound.sends_here(NUMBER));
    let next = queue(&pair, &template(NUMBER, to)).await;
    let url = format!("{}/v1/messages/{held}", second.url());
    let status = pair.http.delete(url).bearer_auth(&pair.key).send().await.unwrap().status();
    assert_eq!(status, 200);
    pair.wait_state(&next, GONE_OUT, WAIT).await;
    assert_eq!(pair.message(&held).await["state"], "cancelled");
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "the cancelled message was not sent");
    second.shutdown().await.unwrap();
    pair.stop().await;
}

/// A Meta that records the text of every message it is sent, in order; the first request for the text `first`
/// waits until `release` turns true, then is answered 503 (retryable) — the others are accepted.
async fn meta_holding_the_first_send(
    received: Arc<std::sync::Mutex<Vec<String>>>,
    release: tokio::sync::watch::Receiver<bool>,
) -> String {
    use axum::http::StatusCode;
    fake_meta::serve_sends(move |body: String| {
        let (received, mut release) = (received.clone(), release.clone());
        async move {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let text = v["text"]["body"].as_str().unwrap_or_default().to_owned();
            let held = {
                let mut received = received.lock().unwrap();
                received.push(text.clone());
                text == "first" && received.iter().filter(|t| *t == "first").count() == 1
            };
            if held {
                let _ = release.wait_for(|r| *r).await;
                return (StatusCode::SERVICE_UNAVAILABLE, String::new());
            }
            (StatusCode::OK, fake_meta::accepted(v["to"].as_str().unwrap_or_default()))
        }
    })
    .await
}

/// A send to a user is still on its way when the instance's lease term ends and a new one begins (the lease
/// was lost for a moment). The new term does not send the user's next message alongside it: when the first
/// one's answer is an error to retry, it is sent again before the next one (FIFO per recipient across terms).
async fn a_new_lease_term_keeps_a_recipients_order_behind_a_send_still_in_flight(db: TestDb) {
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (release, released) = tokio::sync::watch::channel(false);
    let waba = "102290129340398";
    let mut c = fake_meta::gateway_config(&db, meta_holding_the_first_send(received.clone(), released).await);
    assert_eq!(c.numbers[0].waba_id, waba);
    // Renewed every 300 ms: the loss and the return of the lease show quickly.
    c.outbound.lease_ms = 900;
    let store = wabridge_gateway::open_store(&c).await.unwrap();
    let gateway = crate::support::gateway::start(c).await;
    let client = fake_meta::sdk(&gateway);
    let number = PhoneNumberId::new(NUMBER);
    let send = |body: &str| {
        let message: OutboundMessage = serde_json::from_value(json!({"messaging_product": "whatsapp",
            "to": "16315550991", "type": "text", "text": {"body": body}}))
        .unwrap();
        let (client, number) = (client.clone(), number.clone());
        tokio::spawn(async move { client.send_message(&number, &message).await })
    };
    let seen = |text: &str| received.lock().unwrap().iter().filter(|t| *t == text).count();
    let _first = send("first");
    let deadline = Instant::now() + WAIT;
    while seen("first") == 0 {
        assert!(Instant::now() < deadline, "the first message never reached Meta");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another instance holds the lease for a moment: this instance's term ends, and a new one begins once
    // that lease has run out.
    let outbound = &gateway.state().outbound;
    let deadline = Instant::now() + WAIT;
    loop {
        store.clear_number_leases().await.unwrap();
        if store
            .acquire_number_lease(&sending_lease_key(waba), "other-instance", unix_millis() + 600)
            .await
            .unwrap()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the lease could not be taken");
    }
    while outbound.sends_here(NUMBER) {
        assert!(Instant::now() < deadline, "the lease was not given up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while !outbound.sends_here(NUMBER) {
        assert!(Instant::now() < deadline, "the lease was not taken back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The next message to the same user, loaded by the new term while the first is still on its way: it
    // waits (before the fix it went at once; a second is ample for that to show).
    let _second = send("second");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seen("second"), 0, "sent while the user's previous message was on its way: {received:?}");
    // The first one's answer comes: 503, to be retried. It is sent again first, then the second one.
    release.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen("second") == 0 || seen("first") < 2 {
        assert!(Instant::now() < deadline, "not both sent: {received:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = received.lock().unwrap().clone();
    let last_first = order.iter().rposition(|t| t == "first").unwrap();
    let first_second = order.iter().position(|t| t == "second").unwrap();
    assert!(last_first < first_second, "the user's messages left out of order: {order:?}");
    store.close().await;
    gateway.shutdown().await.unwrap();
}
