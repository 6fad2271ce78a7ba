//! SIGTERM stops a running `wabridge serve` gracefully under a stream of signed webhooks, on SQLite and on
//! PostgreSQL: requests in flight when it arrives are answered 200, the process exits with status 0, every
//! acknowledged event is in the store, and the store serves again after a restart.
//!
//! "In flight" is made certain: before the signal, some requests have had their heads read by the server and
//! their bodies asked for (`Expect: 100-continue` answered); their bodies go only after the server logged
//! that it is shutting down.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wabridge_gateway::config::Config;
use wabridge_gateway::store::{EventFilter, create_schema, drop_schema};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

const SECRET: &str = "sigterm-test-secret";
/// Requests held in flight across the signal.
const HELD: usize = 8;
/// Tasks streaming webhooks until the server stops answering.
const STREAMS: usize = 8;
/// What `wabridge serve` logs when a SIGTERM or SIGINT arrives.
const SHUTTING_DOWN: &str = "shutting down: finishing requests and commits in flight";

/// A running `wabridge serve` with its log lines; killed (SIGKILL) if still running when dropped.
struct Serve {
    child: Child,
    port: u16,
    log: Receiver<String>,
}

impl Serve {
    /// `wabridge serve` in `dir` on a free port, with `env` and the app secret, logging `wabridge::serve` at
    /// info level (on stdout, with what it prints at start).
    fn start(dir: &Path, env: &[(String, String)]) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wabridge"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn,wabridge::serve=info")
            .env("WABRIDGE_META__APP_SECRETS", format!("[\"{SECRET}\"]"))
            // Held requests wait for the stream to get going first: not into the body-read deadline.
            .env("WABRIDGE_HTTP__BODY_READ_TIMEOUT_SECS", "600")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Also shown, for a failure's diagnosis.
                eprintln!("[wabridge serve] {line}");
                let _ = tx.send(line);
            }
        });
        Serve { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/metrics", self.url())).await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("wabridge serve exited early: {status}");
            }
            assert!(Instant::now() < deadline, "wabridge serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
    }

    /// Waits for a log line holding `needle`.
    async fn wait_for_log(&mut self, needle: &'static str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.log.try_recv() {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => continue,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => panic!("wabridge serve ended without logging {needle:?}"),
            }
            assert!(Instant::now() < deadline, "wabridge serve did not log {needle:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "wabridge serve did not stop after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(name: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"T"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"wamid.{name}","timestamp":"1750000000","type":"text","text":{{"body":"term {name}"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

/// Reads one response head, byte by byte up to its blank line; its status, or `None` when the connection
/// ended first.
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8_lossy(&head).split_whitespace().nth(1)?.parse().ok()
}

/// A signed webhook whose head the server has read and whose body it asked for (`100 Continue`); the body
/// is sent by [`finish_held`].
async fn start_held(port: u16, name: &str) -> (TcpStream, String) {
    let body = body(name);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         {SIGNATURE_HEADER}: {}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        sign(SECRET.as_bytes(), body.as_bytes()),
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut stream).await, Some(100), "the server did not ask for the body of {name}");
    (stream, body)
}

async fn finish_held(mut stream: TcpStream, body: String) -> Option<u16> {
    stream.write_all(body.as_bytes()).await.ok()?;
    read_status(&mut stream).await
}

/// The dedupe keys of every stored event.
async fn stored_keys(config: &Config) -> HashSet<String> {
    let store = wabridge_gateway::open_store(config).await.unwrap();
    let events = store.events_after(0, &EventFilter::default(), 1_000_000).await.unwrap();
    store.close().await;
    events.into_iter().map(|e| e.dedupe_key).collect()
}

fn assert_all_stored(acked: &HashSet<String>, stored: &HashSet<String>, when: &str) {
    let missing: Vec<&String> = acked.difference(stored).collect();
    assert!(
        missing.is_empty(),
        "{when}: {} acknowledged events not stored, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

async fn sigterm_finishes_in_flight(dir: &Path, env: Vec<(String, String)>, config: Config) {
    let mut serve = Serve::start(dir, &env);
    serve.wait_ready().await;

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut streams = Vec::new();
    for task in 0..STREAMS {
        let (acked, client, url) = (acked.clone(), client.clone(), serve.url());
        streams.push(tokio::spawn(async move {
            for n in 0.. {
                let name = format!("S{task}N{n}");
                let b = body(&name);
                let sent = client
                    .post(format!("{url}/webhook"))
                    .header(SIGNATURE_HEADER, sign(SECRET.as_bytes(), b.as_bytes()))
                    .body(b)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(format!("msg:wamid.{name}"));
                    }
                    // The server stopped taking requests: the stream ends.
                    _ => break,
                }
            }
        }));
    }
    let mut held = Vec::new();
    for i in 0..HELD {
        held.push(start_held(serve.port, &format!("HELD{i}")).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "too few webhooks acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    serve.terminate();
    serve.wait_for_log(SHUTTING_DOWN).await;
    assert!(serve.child.try_wait().unwrap().is_none(), "exited with requests in flight");
    let finishing: Vec<_> =
        held.into_iter().map(|(stream, body)| tokio::spawn(finish_held(stream, body))).collect();
    for (i, f) in finishing.into_iter().enumerate() {
        assert_eq!(f.await.unwrap(), Some(200), "HELD{i}, in flight when SIGTERM arrived");
        acked.lock().unwrap().insert(format!("msg:wamid.HELD{i}"));
    }
    for s in streams {
        s.await.unwrap();
    }
    let status = serve.wait_exit().await;
    assert!(status.success(), "wabridge serve after SIGTERM: {status:?}");
    let acked = acked.lock().unwrap().clone();
    assert_all_stored(&acked, &stored_keys(&config).await, "after SIGTERM");
    println!("{HELD} held in flight across SIGTERM, {} acknowledged in all, all stored", acked.len());

    // It starts again on the same store, and stops again cleanly.
    let mut again = Serve::start(dir, &env);
    again.wait_ready().await;
    again.terminate();
    let status = again.wait_exit().await;
    assert!(status.success(), "wabridge serve restarted, after SIGTERM: {status:?}");
    assert_all_stored(&acked, &stored_keys(&config).await, "after a restart");
}

/// A fresh directory for `serve` to run in.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wabridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_webhooks_in_flight_sqlite() {
    let dir = fresh_dir("sigterm-sqlite");
    // The zero configuration: SQLite under `./data` of the working directory.
    let config =
        Config::load(None, [("WABRIDGE_DATA_DIR".to_owned(), dir.join("data").display().to_string())])
            .unwrap();
    sigterm_finishes_in_flight(&dir, Vec::new(), config).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_webhooks_in_flight_postgres() {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("notice: TEST_POSTGRES_URL is not set; skipping the PostgreSQL SIGTERM test");
        return;
    };
    let dir = fresh_dir("sigterm-postgres");
    let schema = format!("wabridge_sigterm_{}", std::process::id());
    let _ = drop_schema(&url, &schema).await;
    create_schema(&url, &schema).await.unwrap();
    let env = vec![
        ("WABRIDGE_DATABASE__URL".to_owned(), url.clone()),
        ("WABRIDGE_DATABASE__POSTGRES_SCHEMA".to_owned(), schema.clone()),
    ];
    let config = Config::load(None, env.clone()).unwrap();
    let outcome = {
        let dir = dir.clone();
        tokio::spawn(async move { sigterm_finishes_in_flight(&dir, env, config).await }).await
    };
    drop_schema(&url, &schema).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
