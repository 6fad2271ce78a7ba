//! A graceful shutdown answers and stores every webhook in flight. Requests are provably in flight when the
//! shutdown fires: the gateway has read their heads and its handler has started reading their bodies (it
//! answered `100 Continue`); their bodies are sent only after the shutdown began. Meanwhile a stream of
//! ordinary requests races the shutdown: each of them answered 200 must be stored too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wabridge_gateway::store::EventFilter;
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

use crate::intake::{now_secs, text_message};
use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway::{self, APP_SECRET};
use crate::support::raw_http::HeldRequest;

each_backend!(shutdown_answers_and_stores_every_request_in_flight);

/// Requests held in flight across the shutdown.
const HELD: usize = 16;
/// Tasks streaming complete requests until the gateway stops answering.
const STREAMS: usize = 4;

async fn shutdown_answers_and_stores_every_request_in_flight(db: TestDb) {
    let mut config = gateway::config(&db);
    // The held requests wait for the stream to get going first: on a loaded machine that must not run into
    // the body-read deadline (60 s by default).
    config.http.body_read_timeout_secs = 600;
    let gw = gateway::start(config).await;
    let (addr, url) = (gw.addr(), gw.url());
    let ts = now_secs();

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut streams = Vec::new();
    for task in 0..STREAMS {
        let (acked, client, url) = (acked.clone(), client.clone(), url.clone());
        streams.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("wamid.ST{task}N{n}");
                let body = text_message(&id, "16505551234", ts);
                let sent = client
                    .post(format!("{url}/webhook"))
                    .header(SIGNATURE_HEADER, sign(APP_SECRET.as_bytes(), body.as_bytes()))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(format!("msg:{id}"));
                    }
                    // The gateway stopped taking requests (refused, closed, or never answered): the stream ends.
                    _ => break,
                }
            }
        }));
    }

    let mut held = Vec::new();
    for i in 0..HELD {
        let body = text_message(&format!("wamid.HELD{i}"), "16505551234", ts);
        let headers = [
            (SIGNATURE_HEADER, sign(APP_SECRET.as_bytes(), body.as_bytes())),
            ("content-type", "application/json".to_owned()),
        ];
        held.push(HeldRequest::start(addr, "/webhook", &headers, body.into_bytes()).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "the stream of webhooks did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    gw.shutdown_token().cancel();
    // Let the server's tasks see the cancellation before the held bodies arrive, so that they are finished by
    // the shutdown path (what is asserted holds either way).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut answers = Vec::new();
    for request in held {
        answers.push(tokio::spawn(request.finish()));
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let status = tokio::time::timeout(Duration::from_secs(60), answer).await.expect("no answer").unwrap();
        assert_eq!(status, Some(200), "request HELD{i}, in flight when the shutdown began");
    }
    for s in streams {
        s.await.unwrap();
    }
    gw.wait().await.unwrap();

    let store = db.open().await;
    let events = store.events_after(0, &EventFilter::default(), 100_000).await.unwrap();
    store.close().await;
    let stored: HashSet<String> = events.into_iter().map(|e| e.dedupe_key).collect();
    let held_missing: Vec<usize> =
        (0..HELD).filter(|i| !stored.contains(&format!("msg:wamid.HELD{i}"))).collect();
    assert!(held_missing.is_empty(), "answered 200 in the shutdown but not stored: HELD{held_missing:?}");
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged webhooks not stored, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    println!(
        "{HELD} held in flight across the shutdown, {} streamed and acknowledged, all stored",
        acked.len()
    );
}
