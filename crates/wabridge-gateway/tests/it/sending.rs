//! Sending end to end against the sandbox, on both backends: the API's answers, the queue's states, the
//! scheduler's pacing (no limit errors) and its handling of each error class.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use wabridge_sandbox::{FaultInjection, FaultScope, Inbound, SentFilter};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{
    NUMBER, NUMBER2, Pair, config, read_with_three_statuses, sandbox_config, template,
};

each_backend!(
    template_goes_through_with_statuses_and_ids,
    requests_are_checked_with_clear_errors,
    window_closed_unless_forced_or_user_wrote,
    a_free_form_message_scheduled_past_the_window_is_refused,
    idempotency_key_gives_the_same_answer,
    idempotent_retry_is_answered_the_same_when_the_backlog_is_full,
    scheduled_cancelled_expired_and_full_backlog,
    cancelled_after_loading_is_never_sent,
    backlog_at_level_80_has_no_limit_errors,
    error_classes_retry_pause_or_fail,
    rate_limit_waits_do_not_use_up_attempts,
    a_nul_character_fails_only_its_own_request,
);

const WAIT: Duration = Duration::from_secs(20);

async fn template_goes_through_with_statuses_and_ids(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let mut body = template(NUMBER, "+1 631-555-1234");
    body["biz_opaque_callback_data"] = json!("order-42");
    let (code, resp) = pair.send(&body).await;
    assert_eq!(code, 201, "{resp}");
    assert_eq!(resp["meta"]["api_status"], "stable");
    let id = resp["messages"][0]["id"].as_str().unwrap().to_owned();
    let m = pair.wait_message(&id, WAIT, "read with three statuses", read_with_three_statuses).await;
    assert_eq!(m["to"], "16315551234");
    assert_eq!(m["biz_opaque_callback_data"], "order-42", "the application's callback data is kept");
    let wamid = m["wamid"].as_str().unwrap().to_owned();
    let timeline: Vec<&str> =
        m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["sent", "delivered", "read"]);
    // Meta got the gateway id as callback data; status events carry it with the wamid.
    let sent = pair.sandbox.control().sent_message(&wamid).unwrap();
    assert_eq!(sent.biz_opaque_callback_data.as_deref(), Some(id.as_str()));
    let events: Value = pair.get_json("/v1/events?kinds=status").await;
    let text = events.to_string();
    assert!(text.contains(&id) && text.contains(&wamid), "{text}");
    let metrics = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wabridge_outbound_sent_total 1"), "{metrics}");
    assert!(!metrics.contains("16315551234"), "no phone number in metrics");
    pair.stop().await;
}

async fn requests_are_checked_with_clear_errors(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let code_of = |r: &Value| r["errors"][0]["code"].as_i64().unwrap_or(0);
    // `to` that is neither E.164 nor a wa_id.
    let (code, r) = pair.send(&template(NUMBER, "call me maybe")).await;
    assert_eq!((code, code_of(&r)), (400, 1009), "{r}");
    assert!(r["errors"][0]["details"].as_str().unwrap().contains("to:"));
    // Missing `to`.
    let (code, r) = pair.send(&json!({"from": NUMBER, "type": "text", "text": {"body": "x"}})).await;
    assert_eq!((code, code_of(&r)), (400, 1008), "{r}");
    // Two numbers configured: `from` is required, and must be one of them.
    let mut no_from = template(NUMBER, "16315551234");
    no_from.as_object_mut().unwrap().remove("from");
    let (code, r) = pair.send(&no_from).await;
    assert_eq!((code, code_of(&r)), (400, 1008), "{r}");
    assert!(r["errors"][0]["details"].as_str().unwrap().contains(NUMBER2));
    let (code, r) = pair.send(&template("999", "16315551234")).await;
    assert_eq!((code, code_of(&r)), (400, 1009), "{r}");
    // Text too long (validated before queueing, field named).
    let long = "x".repeat(4097);
    let (code, r) =
        pair.send(&json!({"from": NUMBER, "to": "16315551234", "type": "text", "text": {"body": long}, "force": true})).await;
    assert_eq!((code, code_of(&r)), (400, 1001), "{r}");
    assert!(r["errors"][0]["details"].as_str().unwrap().contains("text.body"));
    // Every message type goes through validation: an interactive message with too many buttons.
    let buttons: Vec<Value> =
        (0..4).map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": "t"}})).collect();
    let interactive = json!({"from": NUMBER, "to": "16315551234", "type": "interactive", "force": true,
        "interactive": {"type": "button", "body": {"text": "pick"}, "action": {"buttons": buttons}}});
    let (code, r) = pair.send(&interactive).await;
    assert_eq!((code, code_of(&r)), (400, 1009), "{r}");
    // The Cloud body (with messaging_product) is accepted as well; another product is not.
    let mut cloud = template(NUMBER, "16315551234");
    cloud["messaging_product"] = json!("whatsapp");
    assert_eq!(pair.send(&cloud).await.0, 201);
    cloud["messaging_product"] = json!("sms");
    assert_eq!(pair.send(&cloud).await.0, 400);
    // Media, location, reaction, contacts: accepted (forced past the window).
    for extra in [
        json!({"type": "image", "image": {"link": "https://example.com/a.jpg"}}),
        json!({"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}}),
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana", "first_name": "Ana"}}]}),
    ] {
        let mut m = json!({"from": NUMBER, "to": "16315551234", "force": true});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (code, r) = pair.send(&m).await;
        assert_eq!(code, 201, "{m} → {r}");
    }
    pair.stop().await;
}

async fn window_closed_unless_forced_or_user_wrote(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let text = json!({"from": NUMBER, "to": "16315550101", "type": "text", "text": {"body": "hello"}});
    let (code, r) = pair.send(&text).await;
    assert_eq!(code, 400, "{r}");
    assert!(r["errors"][0]["details"].as_str().unwrap().contains("24-hour"), "{r}");
    // Forced: accepted now; Meta (the sandbox) then fails it with 131047, reported on the message.
    let mut forced = text.clone();
    forced["force"] = json!(true);
    let (code, r) = pair.send(&forced).await;
    assert_eq!(code, 201, "{r}");
    let m = pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["failed"], WAIT).await;
    assert!(m["errors"].to_string().contains("131047"), "{m}");
    // Once the user wrote, a free-form message is fine.
    pair.sandbox.control().inject_inbound(Inbound::text("16315550101", "hi")).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (code, r) = pair.send(&text).await;
        if code == 201 {
            pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the window never opened: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The On-Premises API took `preview_url` beside `text`; it reaches Meta inside `text`.
    let preview = json!({"from": NUMBER, "to": "16315550101", "type": "text",
                         "text": {"body": "see https://example.com"}, "preview_url": true});
    let (code, r) = pair.send(&preview).await;
    assert_eq!(code, 201, "{r}");
    let m = pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    let sent = pair.sandbox.control().sent_message(m["wamid"].as_str().unwrap()).unwrap();
    assert_eq!(sent.body["text"]["preview_url"], true, "{}", sent.body);
    assert!(sent.body.get("preview_url").is_none(), "{}", sent.body);
    pair.stop().await;
}

/// The window is checked at the time the message is to be sent: a free-form message scheduled after the
/// user's window closes is refused at once (1026, as a closed window is), not accepted to fail later with
/// Meta's 131047; scheduled inside the window it is accepted, and a template is accepted whenever.
async fn a_free_form_message_scheduled_past_the_window_is_refused(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let to = "16315550111";
    pair.sandbox.control().inject_inbound(Inbound::text(to, "hi")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let text = |send_at: u64| json!({"from": NUMBER, "to": to, "type": "text", "text": {"body": "see you"}, "send_at": send_at});
    // In an hour: inside the window (once the user's message is in).
    let deadline = std::time::Instant::now() + WAIT;
    let inside = loop {
        let (code, r) = pair.send(&text(now + 3600)).await;
        if code == 201 {
            break r["messages"][0]["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the window never opened: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(pair.message(&inside).await["state"], "queued");
    // In two days: the window will have closed.
    let (code, r) = pair.send(&text(now + 2 * 86_400)).await;
    assert_eq!((code, &r["errors"][0]["code"]), (400, &json!(1026)), "{r}");
    assert_eq!(r["errors"][0]["title"], "Receiver Incapable", "{r}");
    let details = r["errors"][0]["details"].as_str().unwrap();
    assert!(details.contains("24-hour") && details.contains("send_at"), "{r}");
    // The same in RFC 3339.
    let mut rfc = text(0);
    rfc["send_at"] = json!("2099-01-01T00:00:00Z");
    assert_eq!(pair.send(&rfc).await.0, 400);
    // A template, or a forced message, is accepted for then.
    let mut later = template(NUMBER, to);
    later["send_at"] = json!(now + 2 * 86_400);
    let (code, r) = pair.send(&later).await;
    assert_eq!(code, 201, "{r}");
    let mut forced = text(now + 2 * 86_400);
    forced["force"] = json!(true);
    let (code, r) = pair.send(&forced).await;
    assert_eq!(code, 201, "{r}");
    pair.stop().await;
}

async fn idempotency_key_gives_the_same_answer(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let body = template(NUMBER, "16315550202");
    let (c1, r1) = pair.send_with(&body, Some("key-1")).await;
    let (c2, r2) = pair.send_with(&body, Some("key-1")).await;
    assert_eq!((c1, c2), (201, 201));
    assert_eq!(r1["messages"][0]["id"], r2["messages"][0]["id"]);
    let (c3, r3) = pair.send_with(&template(NUMBER, "16315550203"), Some("key-1")).await;
    assert_eq!(c3, 409, "{r3}");
    assert!(r3["errors"][0]["details"].as_str().unwrap().contains("Idempotency-Key"));
    pair.wait_state(r1["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    let sent = pair.sandbox.control().sent(&SentFilter::default());
    assert_eq!(sent.len(), 1, "one message reached Meta");
    pair.stop().await;
}

/// The answer to a queued request may be lost on its way: its retry, with the same Idempotency-Key and body,
/// gets the same answer even when a new request would now be refused (here: the number's backlog is full).
async fn idempotent_retry_is_answered_the_same_when_the_backlog_is_full(db: TestDb) {
    let mut cfg = config(&db);
    cfg.outbound.max_backlog_per_number = 1;
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut later = template(NUMBER, "16315550321");
    later["send_at"] = json!(now + 3600);
    let (c1, r1) = pair.send_with(&later, Some("retry-1")).await;
    assert_eq!(c1, 201, "{r1}");
    // A new message is refused: the backlog holds one.
    let mut other = template(NUMBER, "16315550322");
    other["send_at"] = json!(now + 3600);
    assert_eq!(pair.send(&other).await.0, 503);
    let (c2, r2) = pair.send_with(&later, Some("retry-1")).await;
    assert_eq!((c2, &r2["messages"][0]["id"]), (201, &r1["messages"][0]["id"]), "{r2}");
    // Another body under the same key is still a conflict.
    assert_eq!(pair.send_with(&other, Some("retry-1")).await.0, 409);
    pair.stop().await;
}

/// A message scheduled a moment ahead is loaded by its scheduler at once; cancelled before its time, it never
/// reaches Meta.
async fn cancelled_after_loading_is_never_sent(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let to = "16315550311";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut soon = template(NUMBER, to);
    soon["send_at"] = json!(now + 2);
    let (code, r) = pair.send(&soon).await;
    assert_eq!(code, 201, "{r}");
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pair.cancel(&id).await, 200);
    // Past its time, and then some: a message sent after it goes through, and the cancelled one did not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = pair.send(&template(NUMBER, "16315550312")).await;
    pair.wait_state(after["messages"][0]["id"].as_str().unwrap(), &["sent", "delivered", "read"], WAIT).await;
    let m = pair.message(&id).await;
    assert_eq!(m["state"], "cancelled", "{m}");
    assert!(m["wamid"].is_null(), "{m}");
    let filter = SentFilter { to: Some(to.to_owned()), ..SentFilter::default() };
    assert!(pair.sandbox.control().sent(&filter).is_empty(), "the cancelled message reached Meta");
    pair.stop().await;
}

async fn scheduled_cancelled_expired_and_full_backlog(db: TestDb) {
    let mut cfg = config(&db);
    cfg.outbound.max_backlog_per_number = 3;
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Scheduled an hour ahead: stays queued; DELETE cancels it; a second DELETE says it is too late.
    let mut later = template(NUMBER, "16315550301");
    later["send_at"] = json!(now + 3600);
    let (_, r) = pair.send(&later).await;
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pair.message(&id).await["state"], "queued");
    assert_eq!(pair.cancel(&id).await, 200);
    assert_eq!(pair.message(&id).await["state"], "cancelled");
    assert_eq!(pair.cancel(&id).await, 409);
    // Scheduled soon (RFC 3339) is sent after its time.
    let mut soon = template(NUMBER, "16315550302");
    soon["send_at"] = json!("2000-01-01T00:00:00Z");
    let (code, r) = pair.send(&soon).await;
    assert_eq!(code, 201, "{r}");
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
    // A ttl that runs out while Meta answers "too many messages" → expired, never sent.
    pair.sandbox.control().set_fault(Some(FaultInjection {
        code: 130429,
        next_n: None,
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let mut otp = template(NUMBER, "16315550303");
    otp["ttl"] = json!(1);
    let (_, r) = pair.send(&otp).await;
    let otp_id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    let m = pair.wait_state(&otp_id, &["expired"], WAIT).await;
    assert!(m["wamid"].is_null());
    // The application hears of it as of any failure: a `failed` status event of its message (code 410).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page: Value = pair.get_json("/v1/events?kind=status").await;
        let found =
            page["events"].as_array().unwrap().iter().map(|e| &e["payload"]["statuses"][0]).find(|s| {
                s["id"] == otp_id.as_str() && s["status"] == "failed" && s["wabridge"]["origin"] == "gateway"
            });
        if let Some(s) = found {
            assert_eq!(
                (&s["errors"][0]["code"], &s["recipient_id"]),
                (&json!(410), &json!("16315550303")),
                "{s}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed status event: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.sandbox.control().set_fault(None);
    // A full backlog answers 1016 at once.
    for i in 0..3 {
        let mut m = template(NUMBER, &format!("163155504{i:02}"));
        m["send_at"] = json!(now + 3600);
        assert_eq!(pair.send(&m).await.0, 201);
    }
    let (code, r) = pair.send(&template(NUMBER, "16315550499")).await;
    assert_eq!((code, r["errors"][0]["code"].clone()), (503, json!(1016)), "{r}");
    assert_eq!(pair.send(&template(NUMBER2, "16315550499")).await.0, 201, "the other number has room");
    pair.stop().await;
}

async fn backlog_at_level_80_has_no_limit_errors(db: TestDb) {
    let mut cfg = config(&db);
    cfg.outbound.pair_interval_ms = 50;
    cfg.outbound.pair_burst = 1;
    let sandbox = sandbox_config(|s| {
        s.limits.pair_interval = Duration::from_millis(50);
        s.limits.pair_burst = 1;
    });
    let pair = Pair::start(cfg, sandbox).await;
    let mut ids = Vec::new();
    let mut sends = Vec::new();
    for n in 0..60 {
        for r in 0..20 {
            let mut body = template(NUMBER, &format!("1631555{r:04}"));
            body["template"]["components"] = json!([]);
            body["biz_opaque_callback_data"] = json!(format!("{r}:{n}"));
            sends.push(body);
        }
    }
    // One round per n: each recipient's messages are queued in order n = 0, 1, 2…
    for chunk in sends.chunks(20) {
        let answers = futures_util::future::join_all(chunk.iter().map(|b| pair.send(b))).await;
        for (code, r) in answers {
            assert_eq!(code, 201, "{r}");
            ids.push(r["messages"][0]["id"].as_str().unwrap().to_owned());
        }
    }
    let started = std::time::Instant::now();
    for id in &ids {
        pair.wait_state(id, &["sent", "delivered", "read"], Duration::from_secs(60)).await;
    }
    let elapsed = started.elapsed();
    let counters = pair.sandbox.control().counters();
    assert_eq!(counters.rejected.get(&130_429), None, "{counters:?}");
    assert_eq!(counters.rejected.get(&131_056), None, "{counters:?}");
    assert_eq!(counters.accepted, 1200);
    // FIFO per recipient: Meta saw each recipient's messages in the order they were queued.
    let sent = pair.sandbox.control().sent(&SentFilter { limit: Some(5000), ..SentFilter::default() });
    let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut order: Vec<_> = sent.iter().collect();
    order.sort_by_key(|s| s.seq);
    let mut ours = HashSet::new();
    for s in order {
        ours.insert(s.biz_opaque_callback_data.clone().unwrap());
        let id = s.biz_opaque_callback_data.as_deref().unwrap();
        let m = pair.message(id).await;
        let n: i64 =
            m["biz_opaque_callback_data"].as_str().unwrap().split(':').nth(1).unwrap().parse().unwrap();
        let last = seen.insert(s.to.clone(), n).unwrap_or(-1);
        assert!(n > last, "recipient {} got {n} after {last}", s.to);
    }
    assert_eq!(ours.len(), 1200);
    eprintln!("1200 messages at level 80 in {elapsed:?}");
    pair.stop().await;
}

async fn error_classes_retry_pause_or_fail(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let control = pair.sandbox.control();
    // A message error fails the message with Meta's error.
    control.set_unreachable("16315550666", true);
    let (_, r) = pair.send(&template(NUMBER, "16315550666")).await;
    let m = pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["failed"], WAIT).await;
    assert!(m["errors"].to_string().contains("131026"), "{m}");
    // 131056 and 130429 and a transient error: retried, then sent.
    for code in [131_056, 130_429, 131_000] {
        control.set_fault(Some(FaultInjection {
            code,
            next_n: Some(2),
            every_nth: None,
            scope: FaultScope::Messages,
        }));
        let (_, r) = pair.send(&template(NUMBER, &format!("1631555{}", code % 10_000))).await;
        let m = pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["read"], WAIT).await;
        assert!(m["attempts"].as_i64().unwrap() >= 3, "{code}: {m}");
    }
    // An auth error pauses the number and raises an alert; nothing fails; it goes out once fixed.
    control.set_fault(Some(FaultInjection {
        code: 190,
        next_n: None,
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let (_, r) = pair.send(&template(NUMBER, "16315550777")).await;
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics =
            pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
        if metrics.contains("wabridge_outbound_alerts_total{class=\"auth\"}") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Still waiting to go out (queued, or being retried after the pause): never failed.
    let state = pair.message(&id).await["state"].clone();
    assert!(state == "queued" || state == "sending", "an auth error never fails the backlog: {state}");
    let events: Value = pair.get_json("/v1/events?kinds=alert").await;
    assert!(events.to_string().contains("sending_paused"), "{events}");
    control.set_fault(None);
    pair.wait_state(&id, &["read"], WAIT).await;
    // 80007 pauses the WABA: the other number waits too, then both go out.
    control.set_fault(Some(FaultInjection {
        code: 80_007,
        next_n: Some(1),
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let (_, r) = pair.send(&template(NUMBER, "16315550888")).await;
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["queued"], WAIT).await;
    pair.stop().await;
}

/// Refusals by Meta's rate limits are waits, not failed attempts: after three 130429, a transient error still
/// has its retries (`max_attempts` 3), and the message goes out.
async fn rate_limit_waits_do_not_use_up_attempts(db: TestDb) {
    let mut cfg = config(&db);
    cfg.outbound.max_attempts = 3;
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let control = pair.sandbox.control();
    let fault = |code, n| {
        Some(FaultInjection { code, next_n: Some(n), every_nth: None, scope: FaultScope::Messages })
    };
    control.set_fault(fault(130_429, 3));
    let (_, r) = pair.send(&template(NUMBER, "16315550901")).await;
    let id = r["messages"][0]["id"].as_str().unwrap().to_owned();
    // Once the three are spent (the limiter waits before the next try), a transient error comes next.
    let deadline = std::time::Instant::now() + WAIT;
    while control.counters().rejected.get(&130_429).copied().unwrap_or(0) < 3 {
        assert!(std::time::Instant::now() < deadline, "the 130429 were not all answered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    control.set_fault(fault(131_000, 1));
    let m = pair.wait_state(&id, &["read", "failed"], WAIT).await;
    assert_eq!(m["state"], "read", "{m}");
    pair.stop().await;
}

/// PostgreSQL's text cannot hold a NUL character. A request holding one is refused as invalid (1009) before it
/// reaches the store, on both backends; the valid sends that arrive at the same time — and may share its
/// group commit — are all queued and stored. An id with a NUL is an unknown id, not an internal error.
async fn a_nul_character_fails_only_its_own_request(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let bad = |i: usize| {
        let mut body = template(NUMBER, &format!("163155{i:05}"));
        match (i / 6) % 3 {
            0 => body["biz_opaque_callback_data"] = json!("x\u{0}"),
            1 => body["type"] = json!("x\u{0}"),
            _ => body["template"]["name"] = json!("hello\u{0}world"),
        }
        body
    };
    let field = ["biz_opaque_callback_data", "type", "template.name"];
    let requests: Vec<(bool, Value)> = (0..48)
        .map(|i| {
            if i % 6 == 3 {
                (false, bad(i))
            } else {
                let mut body = template(NUMBER, &format!("163155{i:05}"));
                body["biz_opaque_callback_data"] = json!(format!("valid-{i}"));
                (true, body)
            }
        })
        .collect();
    let answers = futures_util::future::join_all(requests.iter().map(|(_, body)| pair.send(body))).await;
    let mut stored = 0_i64;
    for (i, ((valid, _), (code, r))) in requests.iter().zip(&answers).enumerate() {
        if *valid {
            assert_eq!(*code, 201, "valid send {i}: {r}");
            let id = r["messages"][0]["id"].as_str().unwrap();
            let m = pair.message(id).await;
            assert_eq!(m["biz_opaque_callback_data"], format!("valid-{i}"), "{m}");
            stored += 1;
        } else {
            assert_eq!((*code, r["errors"][0]["code"].as_i64()), (400, Some(1009)), "send {i}: {r}");
            let details = r["errors"][0]["details"].as_str().unwrap();
            assert!(details.starts_with(field[(i / 6) % 3]) && details.contains("NUL"), "{details}");
        }
    }
    assert_eq!(stored, 40);
    // Nothing was stored for the refused ones: every stored message is one of the valid sends.
    let counts = pair.gateway.state().store.outbound_state_counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), stored, "{counts:?}");
    // A message id with a NUL is no message's id.
    let (url, http) = (&pair.url, &pair.http);
    for req in [http.get(format!("{url}/v1/messages/%00")), http.delete(format!("{url}/v1/messages/a%00b"))] {
        let resp = req.bearer_auth(&pair.key).send().await.unwrap();
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((code, body["errors"][0]["code"].as_i64()), (404, Some(1006)), "{body}");
    }
    pair.stop().await;
}
