//! The event-stream receiver against a scripted WebSocket server: what it does with a frame it cannot read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_util::sync::CancellationToken;
use wabridge_cloud::receiver::{Receiver, ReceiverConfig};

fn frame(seq: i64) -> Message {
    let event = serde_json::json!({
        "seq": seq, "kind": "change", "field": "account_update", "phone_number_id": null,
        "contact": null, "payload": {}
    });
    Message::text(event.to_string())
}

/// Serves `scripts[n]` to the n-th connection (then closes it), recording each connection's `after`.
// tungstenite's handshake callback returns its whole error response by value.
#[allow(clippy::result_large_err)]
async fn scripted_server(scripts: Vec<Vec<Message>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        for script in scripts {
            let (tcp, _) = listener.accept().await.unwrap();
            let recorded = recorded.clone();
            let callback = move |request: &Request, response: Response| {
                let query = request.uri().query().unwrap_or_default().to_owned();
                recorded.lock().unwrap().push(query);
                Ok(response)
            };
            let mut socket = tokio_tungstenite::accept_hdr_async(tcp, callback).await.unwrap();
            for message in script {
                socket.send(message).await.unwrap();
            }
            let _ = socket.close(None).await;
        }
    });
    (url, seen)
}

/// A frame the client cannot read is never skipped: the next event would move the cursor past it. The
/// receiver reconnects after the last event it handled and reads on from there.
#[tokio::test]
async fn an_unreadable_frame_is_not_skipped() {
    let scripts =
        vec![vec![frame(1), Message::text("{\"not\":\"an event\"}"), frame(3)], vec![frame(2), frame(3)]];
    let (url, seen) = scripted_server(scripts).await;
    let config =
        ReceiverConfig::new(url, "token").backoff(Duration::from_millis(10), Duration::from_millis(50));
    let receiver = Receiver::new(config);
    let mut cursor = receiver.cursor();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let run = {
        let handled = handled.clone();
        let cancel = cancel.clone();
        async move {
            receiver
                .run(
                    move |event| {
                        handled.lock().unwrap().push(event.seq);
                        async { Ok::<(), String>(()) }
                    },
                    cancel,
                )
                .await
        }
    };
    let task = tokio::spawn(run);
    tokio::time::timeout(Duration::from_secs(10), cursor.wait_for(|seq| *seq == 3)).await.unwrap().unwrap();
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(*handled.lock().unwrap(), vec![1, 2, 3]);
    let queries = seen.lock().unwrap().clone();
    assert!(queries[0].starts_with("after=0") && queries[1].starts_with("after=1"), "{queries:?}");
}
