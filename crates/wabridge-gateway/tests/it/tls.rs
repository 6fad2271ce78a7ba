//! HTTPS with rustls from PEM files: a signed webhook over TLS is stored; plain HTTP to the TLS port fails;
//! the certificate reloads without a restart; the receiver client follows the event log over `wss://`.

use std::path::PathBuf;

use wabridge_gateway::config::TlsConfig;

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway;

each_backend!(webhooks_over_https, receiver_over_wss, a_client_trickling_its_body_is_cut_off);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls")).join(name)
}

async fn webhooks_over_https(db: TestDb) {
    let mut config = gateway::config(&db);
    config.tls = Some(TlsConfig { cert: fixture("server.pem"), key: fixture("server.key") });
    let gw = gateway::start(config).await;
    let url = gw.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},"messages":[{"from":"3","id":"wamid.TLS1","timestamp":"1750000000","type":"text","text":{"body":"over TLS"}}]},"field":"messages"}]}]}"#;
    assert_eq!(gateway::post_webhook(&client, &url, body).await, 200);
    assert_eq!(gw.state().store.max_seq().await.unwrap(), 1);

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let plain = url.replacen("https://", "http://", 1);
    assert!(reqwest::Client::new().get(format!("{plain}/metrics")).send().await.is_err());

    // Reloading the certificate: a broken pair is refused and changes nothing; a good one serves new
    // connections.
    let mut fresh = (*gw.state().config).clone();
    fresh.tls = Some(TlsConfig { cert: fixture("server.pem"), key: fixture("ca.pem") });
    assert!(gw.reload(&fresh).is_err());
    fresh.tls = Some(TlsConfig { cert: fixture("server.pem"), key: fixture("server.key") });
    gw.reload(&fresh).unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    let fresh_client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let metrics = fresh_client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    gw.shutdown().await.unwrap();

    // A key file that holds no key is a clear start-up error.
    let mut config = gateway::config(&db);
    config.tls = Some(TlsConfig { cert: fixture("server.pem"), key: fixture("ca.pem") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = wabridge_gateway::Gateway::start(config, listener).await.unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");
}

/// The receiver client over `wss://`, trusting the test CA: it receives what the gateway stores; without the
/// CA (public roots only) it never connects.
async fn receiver_over_wss(db: TestDb) {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;
    use wabridge_cloud::receiver::{ReceivedEvent, Receiver, ReceiverConfig};

    let mut config = crate::events::config(&db);
    config.tls = Some(TlsConfig { cert: fixture("server.pem"), key: fixture("server.key") });
    let gw = gateway::start(config).await;
    assert!(gw.url().starts_with("https://"));
    let body = crate::events::messages_body(crate::events::NUMBER_ID, &[("wamid.WSS1".into(), "111".into())]);
    crate::events::submit(&gw, &body).await;

    let run = |receiver: Arc<Receiver>, stop: CancellationToken, seen: Arc<Mutex<Vec<String>>>| {
        tokio::spawn(async move {
            receiver
                .run(
                    move |event: ReceivedEvent| {
                        let seen = seen.clone();
                        async move {
                            let id = event.message().map(|m| m.id.to_string()).unwrap_or_default();
                            seen.lock().unwrap().push(id);
                            Ok::<(), String>(())
                        }
                    },
                    stop,
                )
                .await
        })
    };

    // Trusting the test CA: the event arrives over TLS.
    let ca = std::fs::read(fixture("ca.pem")).unwrap();
    let trusted = ReceiverConfig::new(gw.url(), crate::events::TOKEN)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .root_certificates_pem(&ca)
        .unwrap();
    let (receiver, stop, seen) =
        (Arc::new(Receiver::new(trusted)), CancellationToken::new(), Arc::new(Mutex::new(Vec::new())));
    let task = run(receiver.clone(), stop.clone(), seen.clone());
    let mut cursor = receiver.cursor();
    tokio::time::timeout(Duration::from_secs(20), cursor.wait_for(|c| *c >= 1)).await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["wamid.WSS1".to_owned()]);
    stop.cancel();
    task.await.unwrap().unwrap();

    // Public roots only: the handshake fails, so nothing is received (it keeps retrying until stopped).
    let untrusted = ReceiverConfig::new(gw.url(), crate::events::TOKEN)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    let (receiver, stop, seen) =
        (Arc::new(Receiver::new(untrusted)), CancellationToken::new(), Arc::new(Mutex::new(Vec::new())));
    let task = run(receiver.clone(), stop.clone(), seen.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let _ = task.await.unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(*receiver.cursor().borrow(), 0);

    // A PEM without a certificate is a clear configuration error.
    assert!(ReceiverConfig::new(gw.url(), "t").root_certificates_pem(b"not a pem").is_err());
    gw.shutdown().await.unwrap();
}

/// A client that sends part of a request head and then nothing is disconnected after the header-read
/// timeout (plain HTTP here; TLS connections go through the same code after the handshake), while a
/// whole request on another connection is answered.
#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let limits = wabridge_gateway::tls::Limits {
        header_read_timeout: Duration::from_millis(300),
        ..wabridge_gateway::tls::Limits::default()
    };
    let (addr, shutdown, server) = serve_ok(limits).await;

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();

    // A complete request is answered meanwhile.
    let mut fast = tokio::net::TcpStream::connect(addr).await.unwrap();
    fast.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    fast.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The slow one is closed by the server (end of stream, after an error answer at most); without the
    // timeout this read would never end, and the bound below would fail the test.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("200 OK"), "{rest}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// Past `max_connections`, a new connection waits (unanswered) until one closes, then is served.
#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let limits =
        wabridge_gateway::tls::Limits { max_connections: 1, ..wabridge_gateway::tls::Limits::default() };
    let (addr, shutdown, server) = serve_ok(limits).await;
    let get = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // The first connection takes the only slot (and keeps it while open).
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    first.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second is accepted by the kernel but not served while the first is open.
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    second.write_all(get).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(waited.is_err(), "served past the limit");
    drop(first);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), second.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// A webhook whose body trickles (headers promptly, then part of the body and nothing) is cut off at
/// `http.body_read_timeout_secs`, and the gateway answers others meanwhile.
async fn a_client_trickling_its_body_is_cut_off(db: TestDb) {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut config = gateway::config(&db);
    config.http.body_read_timeout_secs = 1;
    let gw = gateway::start(config).await;
    let addr = gw.url().trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"object\"")
        .await
        .unwrap();
    let health = reqwest::get(format!("{}/v1/health", gw.url())).await.unwrap();
    assert_eq!(health.status(), 200);
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    gw.shutdown().await.unwrap();
}

/// A plain-HTTP server of `GET /` → `ok` within `limits`, on a port of its own.
async fn serve_ok(
    limits: wabridge_gateway::tls::Limits,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<std::io::Result<()>>)
{
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let drain = std::time::Duration::from_secs(5);
    let server =
        tokio::spawn(wabridge_gateway::tls::serve(listener, router, None, shutdown.clone(), drain, limits));
    (addr, shutdown, server)
}
