//! The event log's readers, on both backends: `GET /v1/events` (paging, filters, errors), WebSocket
//! subscribers (auth before the upgrade, filters, resume by cursor exactly once, the slow subscriber under a
//! burst), the receiver client (reconnects and resumes, also across a gateway restart) and the hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use wabridge_cloud::receiver::{ReceivedEvent, Receiver, ReceiverConfig};
use wabridge_gateway::config::Config;
use wabridge_gateway::events::{EventHook, HookAction};
use wabridge_gateway::store::StoredEvent;
use wabridge_gateway::{Gateway, GatewayBuilder};
use wabridge_types::webhook::Envelope;

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway;

each_backend!(
    log_api_pages_and_filters,
    websocket_refuses_bad_credentials_before_upgrade,
    subscriber_resumes_with_its_cursor_exactly_once,
    websocket_filters_by_number_and_kind,
    receiver_resumes_after_handler_error_and_restart,
    slow_subscriber_catches_up_while_fast_one_stays_prompt,
    hook_suppresses_and_modifies_on_every_path,
    silent_peer_is_closed_and_answering_peer_kept,
    feed_follows_the_log_unread_while_nobody_listens,
    a_subscriber_counts_against_the_connection_limit,
    a_revoked_key_ends_its_subscription,
    the_upgrade_tells_how_far_retention_went,
    a_catch_up_page_slower_than_the_ping_interval_completes,
);

pub const TOKEN: &str = "test-api-token";
pub const WABA: &str = "102290129340398";
pub const NUMBER_ID: &str = "106540352242922";
pub const OTHER_NUMBER_ID: &str = "106540352242999";

/// The test configuration with an API token and fast keep-alive.
pub fn config(db: &TestDb) -> Config {
    let mut config = gateway::config(db);
    config.api.tokens = vec![TOKEN.into()];
    config.events.ping_interval_ms = 200;
    config.events.idle_timeout_ms = 5_000;
    config.events.poll_interval_ms = 50;
    config
}

/// A webhook body carrying one inbound text message per `(id, contact)` to `number`.
pub fn messages_body(number: &str, messages: &[(String, String)]) -> String {
    let ts = 1_700_000_000;
    let msgs: Vec<Value> = messages
        .iter()
        .map(|(id, from)| json!({"from": from, "id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": "hi"}}))
        .collect();
    let contacts: Vec<Value> =
        messages.iter().map(|(_, from)| json!({"profile": {"name": "U"}, "wa_id": from})).collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        "contacts": contacts, "messages": msgs}}]}]})
    .to_string()
}

/// A webhook body with one status of `wamid` for `to`.
pub fn status_body(wamid: &str, status: &str, to: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER_ID},
        "statuses": [{"id": wamid, "status": status, "timestamp": "1700000000", "recipient_id": to}]}}]}]})
    .to_string()
}

/// Commits `body` through the intake writer, as `POST /webhook` does.
pub async fn submit(gw: &Gateway, body: &str) {
    let bytes = Bytes::from(body.to_owned());
    let envelope = Envelope::from_slice(&bytes).unwrap();
    let item = wabridge_gateway::intake::batch_item(&bytes, envelope.events());
    gw.state().intake.submit(item).await.unwrap();
}

/// Commits `n` messages to `number`, `per_body` per webhook, with ids `{tag}.{i}` from the contacts in turn.
pub async fn commit_messages(
    gw: &Gateway,
    tag: &str,
    n: usize,
    per_body: usize,
    number: &str,
    contacts: &[&str],
) {
    let mut pending = Vec::new();
    for start in (0..n).step_by(per_body) {
        let messages: Vec<(String, String)> = (start..(start + per_body).min(n))
            .map(|i| (format!("wamid.{tag}.{i}"), contacts[i % contacts.len()].to_owned()))
            .collect();
        let body = messages_body(number, &messages);
        pending.push(body);
    }
    for body in pending {
        submit(gw, &body).await;
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket URL of `gw` with `query`.
pub fn ws_url(gw: &Gateway, query: &str) -> String {
    format!("{}/v1/events/ws?{query}", gw.url().replacen("http", "ws", 1))
}

/// Connects with the test token.
pub async fn connect(gw: &Gateway, query: &str) -> Socket {
    let mut request = ws_url(gw, query).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Reads text frames until `n` events arrived (or panics after `within`).
pub async fn read_events(socket: &mut Socket, n: usize, within: Duration) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived in time", out.len()));
        match frame {
            Some(Ok(Message::Text(t))) => out.push(serde_json::from_str::<Value>(t.as_str()).unwrap()),
            Some(Ok(_)) => {}
            other => panic!("socket ended after {} events: {other:?}", out.len()),
        }
    }
    out
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn log_api_pages_and_filters(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    commit_messages(&gw, "page", 25, 5, NUMBER_ID, &["111", "222"]).await;
    submit(&gw, &status_body("wamid.out.1", "delivered", "111")).await;
    commit_messages(&gw, "other", 4, 4, OTHER_NUMBER_ID, &["333"]).await;
    let base = format!("{}/v1/events", gw.url());

    // Paging with next_after walks the whole log in order.
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let (status, page) = get_json(&format!("{base}?after={after}&limit=7"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            assert_eq!(page["next_after"], after);
            assert_eq!(page["pruned_through"], 0, "nothing was pruned");
            break;
        }
        assert!(events.len() <= 7);
        after = page["next_after"].as_i64().unwrap();
        all.extend(events);
    }
    assert_eq!(seqs(&all), (1..=30).collect::<Vec<_>>());
    let first = &all[0];
    assert_eq!(first["kind"], "message");
    assert_eq!(first["field"], "messages");
    assert_eq!(first["waba_id"], WABA);
    assert_eq!(first["phone_number_id"], NUMBER_ID);
    assert_eq!(first["contact"], "111");
    assert_eq!(first["payload"]["messages"][0]["id"], "wamid.page.0");
    assert!(first["created_at"].as_i64().unwrap() > 0);

    // Filters.
    let (_, page) = get_json(&format!("{base}?kind=status"), Some(TOKEN)).await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), vec![26]);
    let (_, page) = get_json(&format!("{base}?contact=222&limit=100"), Some(TOKEN)).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 12);
    let (_, page) =
        get_json(&format!("{base}?phone_number_id={OTHER_NUMBER_ID}&kind=message,status"), Some(TOKEN)).await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), vec![27, 28, 29, 30]);

    // Errors in the On-Premises shape.
    let (status, body) = get_json(&format!("{base}?after=abc"), Some(TOKEN)).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], 1009);
    assert_eq!(body["errors"][0]["title"], "Parameter value is not valid");
    assert!(body["meta"]["version"].as_str().unwrap().starts_with("wabridge-"));
    let (status, body) = get_json(&format!("{base}?limit=100000"), Some(TOKEN)).await;
    assert_eq!((status, body["errors"][0]["code"].clone()), (400, json!(1009)));
    let (status, body) = get_json(&base, None).await;
    assert_eq!((status, body["errors"][0]["code"].clone()), (401, json!(1005)));
    let (status, _) = get_json(&base, Some("wrong")).await;
    assert_eq!(status, 401);
    // /metrics stays outside the API's auth.
    assert_eq!(reqwest::get(format!("{}/metrics", gw.url())).await.unwrap().status(), 200);
    gw.shutdown().await.unwrap();
}

/// Keep-alive: a peer that never answers the pings (it does not read its socket) is closed once the idle
/// timeout has passed; a peer that reads (and so answers with pongs) stays connected well beyond it.
async fn silent_peer_is_closed_and_answering_peer_kept(db: TestDb) {
    let mut config = config(&db);
    config.events.ping_interval_ms = 100;
    config.events.idle_timeout_ms = 600;
    let gw = gateway::start(config).await;
    let mut silent = connect(&gw, "after=0").await;
    let mut answering = connect(&gw, "after=0").await;

    // The answering peer reads for five idle timeouts (tungstenite answers each ping with a pong).
    let until = Instant::now() + Duration::from_millis(3_000);
    let mut pings = 0;
    while let Ok(Some(frame)) = tokio::time::timeout_at(until.into(), answering.next()).await {
        match frame.unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(pings >= 10, "only {pings} pings in 3 s at a 100 ms interval");

    // Meanwhile the server closed the silent peer: it counts one subscriber, and the silent socket ends (with the
    // close frame "peer idle (no pong)", or an error when the client's queued pongs meet the closed connection).
    assert_eq!(gw.state().metrics.ws_subscribers.get(), 1);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => {}
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                assert_eq!(frame.reason.as_str(), "peer idle (no pong)");
                break;
            }
            Ok(Some(Err(_)) | None) => break,
            other => panic!("expected the silent socket to end, got {other:?}"),
        }
    }

    // The answering one is still served.
    commit_messages(&gw, "alive", 1, 1, NUMBER_ID, &["111"]).await;
    assert_eq!(seqs(&read_events(&mut answering, 1, Duration::from_secs(10)).await), vec![1]);
    gw.shutdown().await.unwrap();
}

async fn websocket_refuses_bad_credentials_before_upgrade(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    let refused = |result: Result<_, WsError>| match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    };
    // No credential, a wrong one (header or query): 401 before any upgrade.
    assert_eq!(refused(tokio_tungstenite::connect_async(ws_url(&gw, "")).await), 401);
    let mut request = ws_url(&gw, "").into_client_request().unwrap();
    request.headers_mut().insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(refused(tokio_tungstenite::connect_async(request).await), 401);
    assert_eq!(refused(tokio_tungstenite::connect_async(ws_url(&gw, "access_token=nope")).await), 401);
    // A bad query: 400.
    assert_eq!(
        refused(
            tokio_tungstenite::connect_async(ws_url(&gw, &format!("access_token={TOKEN}&after=-1"))).await
        ),
        400
    );
    // The right token, in the header or (browsers) in the query.
    let mut ok = connect(&gw, "after=0").await;
    let (mut by_query, _) =
        tokio_tungstenite::connect_async(ws_url(&gw, &format!("access_token={TOKEN}&after=0")))
            .await
            .unwrap();
    commit_messages(&gw, "auth", 1, 1, NUMBER_ID, &["111"]).await;
    assert_eq!(seqs(&read_events(&mut ok, 1, Duration::from_secs(10)).await), vec![1]);
    assert_eq!(seqs(&read_events(&mut by_query, 1, Duration::from_secs(10)).await), vec![1]);
    gw.shutdown().await.unwrap();

    // No token configured: every attempt is refused.
    let mut config = config(&db);
    config.api.tokens.clear();
    let gw = gateway::start(config).await;
    assert_eq!(
        refused(tokio_tungstenite::connect_async(ws_url(&gw, &format!("access_token={TOKEN}"))).await),
        401
    );
    let report =
        wabridge_gateway::startup_report(&gw.state().config, &gw.url(), &gw.state().store).join("\n");
    assert!(report.contains("static tokens: none"), "{report}");
    assert!(report.contains("/v1/users/login with Basic admin:<admin password>"), "{report}");
    assert!(report.contains("/v1/keys as admin"), "{report}");
    gw.shutdown().await.unwrap();
}

async fn subscriber_resumes_with_its_cursor_exactly_once(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    commit_messages(&gw, "a", 50, 10, NUMBER_ID, &["111", "222", "333"]).await;
    // Read 20 of the 50 stored, then go away.
    let mut socket = connect(&gw, "after=0").await;
    let mut received = read_events(&mut socket, 20, Duration::from_secs(10)).await;
    drop(socket);
    // Events keep coming while it is away.
    commit_messages(&gw, "b", 50, 7, NUMBER_ID, &["111", "222", "333"]).await;
    let cursor = received.last().unwrap()["seq"].as_i64().unwrap();
    let mut socket = connect(&gw, &format!("after={cursor}")).await;
    // Catch-up and live overlap: events committed while it catches up arrive once.
    let writer = {
        let state = gw.state().clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let body = messages_body(NUMBER_ID, &[(format!("wamid.c.{i}"), "444".to_owned())]);
                let bytes = Bytes::from(body);
                let envelope = Envelope::from_slice(&bytes).unwrap();
                state
                    .intake
                    .submit(wabridge_gateway::intake::batch_item(&bytes, envelope.events()))
                    .await
                    .unwrap();
            }
        })
    };
    received.extend(read_events(&mut socket, 100, Duration::from_secs(20)).await);
    writer.await.unwrap();
    assert_eq!(seqs(&received), (1..=120).collect::<Vec<_>>(), "every event once, in order");
    // Nothing more (no duplicate) comes.
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => return Some(t),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    assert!(!matches!(extra, Ok(Some(_))), "unexpected extra frame {extra:?}");
    assert!(gw.state().metrics.events_fanned_out.get() >= 120);
    assert!(gw.state().metrics.render().contains("wabridge_ws_subscribers 1"));
    gw.shutdown().await.unwrap();
}

/// With no subscriber the feed moves its head without reading or publishing events; a subscriber that
/// arrives later from now gets exactly what is committed after it, and one with a cursor gets the rest.
async fn feed_follows_the_log_unread_while_nobody_listens(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    commit_messages(&gw, "quiet", 30, 4, NUMBER_ID, &["111", "222"]).await;
    let end = gw.state().store.max_seq().await.unwrap();
    assert_eq!(end, 30);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.state().feed.head() < end {
        assert!(Instant::now() < deadline, "head stayed at {} of {end}", gw.state().feed.head());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gw.state().metrics.events_published.get(), 0, "nothing is serialized for nobody");

    let mut live = connect(&gw, "").await;
    let mut replay = connect(&gw, "after=25").await;
    commit_messages(&gw, "loud", 5, 1, NUMBER_ID, &["333"]).await;
    let got = read_events(&mut live, 5, Duration::from_secs(10)).await;
    assert_eq!(seqs(&got), (31..=35).collect::<Vec<_>>(), "from now: only what came after");
    let got = read_events(&mut replay, 10, Duration::from_secs(10)).await;
    assert_eq!(seqs(&got), (26..=35).collect::<Vec<_>>(), "from a cursor: the rest, once, in order");
    assert!(gw.state().metrics.events_published.get() >= 5);
    gw.shutdown().await.unwrap();
}

async fn websocket_filters_by_number_and_kind(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    let mut number = connect(&gw, &format!("phone_number_id={OTHER_NUMBER_ID}")).await;
    let mut statuses = connect(&gw, "kind=status").await;
    commit_messages(&gw, "f", 6, 3, NUMBER_ID, &["111"]).await;
    submit(&gw, &status_body("wamid.out.9", "read", "111")).await;
    commit_messages(&gw, "g", 2, 2, OTHER_NUMBER_ID, &["222"]).await;
    let got = read_events(&mut number, 2, Duration::from_secs(10)).await;
    assert_eq!(seqs(&got), vec![8, 9]);
    assert!(got.iter().all(|e| e["phone_number_id"] == OTHER_NUMBER_ID));
    let got = read_events(&mut statuses, 1, Duration::from_secs(10)).await;
    assert_eq!((got[0]["seq"].as_i64(), got[0]["kind"].as_str()), (Some(7), Some("status")));
    gw.shutdown().await.unwrap();
}

async fn receiver_resumes_after_handler_error_and_restart(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    let addr = gw.addr();
    commit_messages(&gw, "r", 30, 5, NUMBER_ID, &["111", "222"]).await;
    let handled = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let failed_once = Arc::new(AtomicBool::new(false));
    let receiver = Arc::new(Receiver::new(
        ReceiverConfig::new(gw.url(), TOKEN)
            .after(0)
            .backoff(Duration::from_millis(20), Duration::from_millis(200)),
    ));
    let stop = CancellationToken::new();
    let task = {
        let (handled, failed_once, receiver, stop) =
            (handled.clone(), failed_once.clone(), receiver.clone(), stop.clone());
        tokio::spawn(async move {
            receiver
                .run(
                    move |event: ReceivedEvent| {
                        let (handled, failed_once) = (handled.clone(), failed_once.clone());
                        async move {
                            assert!(event.message().is_some(), "typed message");
                            // The handler fails once on seq 10: the event must come again, then go on.
                            if event.seq == 10 && !failed_once.swap(true, Ordering::SeqCst) {
                                return Err("not now");
                            }
                            handled.lock().unwrap().push(event.seq);
                            Ok(())
                        }
                    },
                    stop,
                )
                .await
        })
    };
    let mut cursor = receiver.cursor();
    tokio::time::timeout(Duration::from_secs(20), cursor.wait_for(|c| *c >= 30)).await.unwrap().unwrap();
    // Restart the gateway on the same address; events committed meanwhile are picked up after reconnecting.
    gw.shutdown().await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let gw = Gateway::start(config(&db), listener).await.unwrap();
    commit_messages(&gw, "s", 30, 6, NUMBER_ID, &["111", "222"]).await;
    tokio::time::timeout(Duration::from_secs(20), cursor.wait_for(|c| *c >= 60)).await.unwrap().unwrap();
    stop.cancel();
    assert_eq!(task.await.unwrap().unwrap(), 60);
    assert!(failed_once.load(Ordering::SeqCst));
    assert_eq!(*handled.lock().unwrap(), (1..=60).collect::<Vec<_>>(), "each handled once, in order");
    gw.shutdown().await.unwrap();
}

/// Connects with a tiny receive buffer, so a slow reader really holds the server back.
async fn connect_slow(gw: &Gateway, query: &str) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(gw.addr()).await.unwrap();
    let mut request = ws_url(gw, query).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await.unwrap().0
}

async fn slow_subscriber_catches_up_while_fast_one_stays_prompt(db: TestDb) {
    const BURST: usize = 10_000;
    let mut config = config(&db);
    // A small broadcast buffer, so the slow subscriber surely lags and must catch up from the store.
    config.events.broadcast_capacity = 16;
    let gw = gateway::start(config).await;
    let mut slow = connect_slow(&gw, "after=0").await;
    let mut fast = connect(&gw, "after=0").await;

    // The slow subscriber reads 10 events/s while the burst is committed.
    let slow_reader = tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(BURST);
        let started = Instant::now();
        while seqs.len() < BURST {
            let frame = tokio::time::timeout(Duration::from_secs(30), slow.next())
                .await
                .expect("slow: socket silent");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    seqs.push(serde_json::from_str::<Value>(t.as_str()).unwrap()["seq"].as_i64().unwrap());
                }
                Some(Ok(_)) => continue,
                other => panic!("slow subscriber lost its connection after {} events: {other:?}", seqs.len()),
            }
            // 10 events/s for the first 2 s (well into and past the burst), then it speeds up so the test
            // ends in seconds; by then it is thousands of events behind the feed.
            if started.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        seqs
    });

    // The fast subscriber: commit → receipt latency of each probe message, measured during the burst.
    let burst = {
        let state = gw.state().clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for chunk in 0..(BURST / 100) {
                let state = state.clone();
                tasks.push(tokio::spawn(async move {
                    let messages: Vec<(String, String)> = (0..100)
                        .map(|i| (format!("wamid.burst.{chunk}.{i}"), format!("1{}", i % 7)))
                        .collect();
                    let bytes = Bytes::from(messages_body(NUMBER_ID, &messages));
                    let envelope = Envelope::from_slice(&bytes).unwrap();
                    state
                        .intake
                        .submit(wabridge_gateway::intake::batch_item(&bytes, envelope.events()))
                        .await
                        .unwrap();
                    Instant::now()
                }));
            }
            let mut committed = Vec::new();
            for t in tasks {
                committed.push(t.await.unwrap());
            }
            committed
        })
    };
    let started = Instant::now();
    let fast_events = read_events(&mut fast, BURST, Duration::from_secs(30)).await;
    let fast_done = started.elapsed();
    let committed = burst.await.unwrap();
    let last_commit = committed.iter().max().unwrap().duration_since(started);
    assert_eq!(seqs(&fast_events), (1..=BURST as i64).collect::<Vec<_>>());
    // The fast subscriber had everything promptly after the last commit — not held back by the slow one
    // (which at that point had read about 20 events). A generous bound: this asserts behaviour, not speed.
    let trailing = fast_done.saturating_sub(last_commit);
    eprintln!(
        "fast subscriber: burst committed in {last_commit:?}, all received {trailing:?} after the last commit"
    );
    assert!(trailing < Duration::from_secs(10), "fast subscriber lagged {trailing:?} behind the burst");

    // A probe after the burst, while the slow one is still far behind: it reaches the fast one at once.
    let probe = Instant::now();
    commit_messages(&gw, "probe", 1, 1, NUMBER_ID, &["999"]).await;
    let got = read_events(&mut fast, 1, Duration::from_secs(5)).await;
    assert_eq!(got[0]["contact"], "999");
    let latency = probe.elapsed();
    eprintln!("fast subscriber: probe commit → receipt {latency:?}");
    assert!(latency < Duration::from_secs(5), "probe took {latency:?}");

    let slow_seqs = tokio::time::timeout(Duration::from_secs(60), slow_reader).await.unwrap().unwrap();
    assert_eq!(slow_seqs, (1..=BURST as i64).collect::<Vec<_>>(), "slow subscriber: all, in order, once");
    gw.shutdown().await.unwrap();
}

/// Suppresses events of contact 666 and tags every other one's payload.
#[derive(Debug)]
pub struct TestHook;

impl EventHook for TestHook {
    fn on_event(&self, event: &mut StoredEvent) -> HookAction {
        if event.contact.as_deref() == Some("666") {
            return HookAction::Suppress;
        }
        let mut payload: Value = serde_json::from_str(&event.payload).unwrap();
        payload["hooked"] = json!(true);
        event.payload = payload.to_string();
        event.seq = -1; // ignored: the hook cannot move an event in the log
        if event.contact.as_deref() == Some("222") {
            // A pseudonymizing hook: filters still match the stored contact.
            event.contact = Some("masked".into());
        }
        HookAction::Deliver
    }
}

async fn hook_suppresses_and_modifies_on_every_path(db: TestDb) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = GatewayBuilder::new(config(&db)).event_hook(TestHook).start(listener).await.unwrap();
    let mut live = connect(&gw, "").await;
    let mut live_222 = connect(&gw, "contact=222").await;
    commit_messages(&gw, "h", 9, 3, NUMBER_ID, &["111", "666", "222"]).await;
    // Filters match the event as stored, on the live path as on catch-up; the frames show the hooked contact.
    let check_222 = |events: &[Value]| {
        assert_eq!(seqs(events), vec![3, 6, 9]);
        assert!(events.iter().all(|e| e["contact"] == "masked"), "{events:?}");
    };
    check_222(&read_events(&mut live_222, 3, Duration::from_secs(10)).await);
    check_222(&read_events(&mut connect(&gw, "after=0&contact=222").await, 3, Duration::from_secs(10)).await);
    let check = |events: &[Value]| {
        assert_eq!(seqs(events), vec![1, 3, 4, 6, 7, 9]);
        assert!(events.iter().all(|e| e["payload"]["hooked"] == true && e["contact"] != "666"));
    };
    // Live path.
    check(&read_events(&mut live, 6, Duration::from_secs(10)).await);
    // Catch-up path.
    let mut catch_up = connect(&gw, "after=0").await;
    check(&read_events(&mut catch_up, 6, Duration::from_secs(10)).await);
    // The page API.
    let (_, page) = get_json(&format!("{}/v1/events", gw.url()), Some(TOKEN)).await;
    check(page["events"].as_array().unwrap());
    assert_eq!(page["next_after"], 9);
    gw.shutdown().await.unwrap();
}

/// A WebSocket subscriber holds its connection's place under `http.max_connections` for as long as it stays
/// (hyper is done with the connection once upgraded): with a limit of one, another client waits until the
/// subscriber leaves.
async fn a_subscriber_counts_against_the_connection_limit(db: TestDb) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = config(&db);
    config.http.max_connections = 1;
    let gw = gateway::start(config).await;
    let subscriber = connect(&gw, "after=0").await;
    let addr = gw.url().trim_start_matches("http://").to_owned();
    let mut other = tokio::net::TcpStream::connect(&addr).await.unwrap();
    other.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(500), other.read(&mut buf)).await;
    assert!(waited.is_err(), "served while the subscriber held the only place");
    drop(subscriber);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), other.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    gw.shutdown().await.unwrap();
}

/// The credential is asked again while a socket lasts: revoking the key a subscriber connected with closes its
/// socket (1008) at the next ping, while a subscriber with a valid credential goes on.
async fn a_revoked_key_ends_its_subscription(db: TestDb) {
    let mut config = config(&db);
    config.events.ping_interval_ms = 100;
    let gw = gateway::start(config).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/keys", gw.url()))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "listener", "scopes": ["events"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["keys"][0]["key"].as_str().unwrap().to_owned();
    let id = created["keys"][0]["id"].as_str().unwrap().to_owned();
    let request = ws_url(&gw, &format!("access_token={key}&after=0"));
    let mut keyed = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let mut other = connect(&gw, "after=0").await;

    // Several pings pass with the key valid: the socket stays.
    let until = Instant::now() + Duration::from_millis(500);
    while let Ok(Some(frame)) = tokio::time::timeout_at(until.into(), keyed.next()).await {
        assert!(
            matches!(frame.unwrap(), Message::Ping(_)),
            "the socket must stay open while the key is valid"
        );
    }
    let revoked = http.delete(format!("{}/v1/keys/{id}", gw.url())).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), keyed.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => {}
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                break;
            }
            other => panic!("expected the revoked key's socket to be closed, got {other:?}"),
        }
    }
    commit_messages(&gw, "still", 1, 1, NUMBER_ID, &["111"]).await;
    assert_eq!(seqs(&read_events(&mut other, 1, Duration::from_secs(10)).await), vec![1]);
    gw.shutdown().await.unwrap();
}

/// A subscriber resuming below what retention deleted can tell: the upgrade's answer carries the mark.
async fn the_upgrade_tells_how_far_retention_went(db: TestDb) {
    let gw = gateway::start(config(&db)).await;
    commit_messages(&gw, "old", 3, 1, NUMBER_ID, &["111"]).await;
    let pruned_header = |gw: &Gateway| {
        let mut request = ws_url(gw, "after=0").into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        async move {
            let (_socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
            response.headers()["x-wabridge-pruned-through"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(pruned_header(&gw).await, "0");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut retention = gw.state().config.retention.clone();
    retention.max_age_secs = 0;
    let store = &gw.state().store;
    assert_eq!(wabridge_gateway::retention::prune_once(store, &retention, None).await.unwrap().0, 3);
    assert_eq!(pruned_header(&gw).await, "3");
    gw.shutdown().await.unwrap();
}

/// A page read from the store while catching up is not abandoned when a ping falls due (or a frame arrives)
/// before it completes: with a ping every millisecond and pages of 3,000 events, the subscriber still gets
/// every event.
async fn a_catch_up_page_slower_than_the_ping_interval_completes(db: TestDb) {
    let mut config = config(&db);
    config.events.ping_interval_ms = 1;
    config.events.page_size = 3_000;
    let gw = gateway::start(config).await;
    commit_messages(&gw, "many", 6_000, 100, NUMBER_ID, &["111", "222"]).await;
    let mut socket = connect(&gw, "after=0").await;
    let events = read_events(&mut socket, 6_000, Duration::from_secs(60)).await;
    assert_eq!(seqs(&events), (1..=6_000).collect::<Vec<i64>>());
    gw.shutdown().await.unwrap();
}
