//! `kill -9` of a running `wabridge serve` under a stream of webhooks loses no acknowledged event, on
//! SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wabridge_gateway::config::Config;
use wabridge_gateway::store::{EventFilter, create_schema, drop_schema};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

const SECRET: &str = "crash-test-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `wabridge serve`, killed with SIGKILL when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(env: &[(String, String)]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_wabridge"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Server { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/metrics", self.url)).await
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

    /// SIGKILL: no shutdown code runs.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(task: usize, n: usize) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"K"}},"wa_id":"1650555{task:04}"}}],"messages":[{{"from":"1650555{task:04}","id":"wamid.K{task}N{n}","timestamp":"1750000000","type":"text","text":{{"body":"crash {n}"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

/// Streams webhooks from 16 tasks, kills the server once at least `before_kill` were acknowledged, and
/// checks that the store holds every acknowledged one.
async fn crash_loses_nothing(env: Vec<(String, String)>, config: Config) {
    let mut server = Server::start(&env);
    server.wait_ready().await;
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let (acked, client, url) = (acked.clone(), client.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let b = body(task, n);
                let sent = client
                    .post(format!("{url}/webhook"))
                    .header(SIGNATURE_HEADER, sign(SECRET.as_bytes(), b.as_bytes()))
                    .body(b)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(format!("msg:wamid.K{task}N{n}"));
                    }
                    // The server is gone: the stream ends.
                    _ => break,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 1500 {
        assert!(Instant::now() < deadline, "too few webhooks acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Everything acknowledged before the kill is in the store.
    let store = wabridge_gateway::open_store(&config).await.unwrap();
    let events = store.events_after(0, &EventFilter::default(), 1_000_000).await.unwrap();
    let stored: HashSet<String> = events.into_iter().map(|e| e.dedupe_key).collect();
    let missing: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!("{} acknowledged, {} stored (the rest were in flight at the kill)", acked.len(), stored.len());
    store.close().await;

    // The same data directory serves again after the crash.
    let mut again = Server::start(&env);
    again.wait_ready().await;
    again.kill9();
}

fn base_env() -> Vec<(String, String)> {
    vec![("WABRIDGE_META__APP_SECRETS".into(), format!("[\"{SECRET}\"]"))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_event_sqlite() {
    let dir = std::env::temp_dir().join(format!("wabridge-crash-{}", std::process::id()));
    let mut env = base_env();
    env.push(("WABRIDGE_DATA_DIR".into(), dir.display().to_string()));
    let config = Config::load(None, env.clone()).unwrap();
    crash_loses_nothing(env, config).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_event_postgres() {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("notice: TEST_POSTGRES_URL is not set; skipping the PostgreSQL crash test");
        return;
    };
    let schema = format!("wabridge_crash_{}", std::process::id());
    create_schema(&url, &schema).await.unwrap();
    let mut env = base_env();
    env.push(("WABRIDGE_DATABASE__URL".into(), url.clone()));
    env.push(("WABRIDGE_DATABASE__POSTGRES_SCHEMA".into(), schema.clone()));
    let config = Config::load(None, env.clone()).unwrap();
    crash_loses_nothing(env, config).await;
    drop_schema(&url, &schema).await.unwrap();
}
