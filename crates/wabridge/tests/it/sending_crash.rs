//! `kill -9` of `wabridge serve` during a 10,000-message send (levels lifted) loses no accepted message,
//! and after a restart every message ends read, delivered, failed, expired, or reconciled — on SQLite and
//! on PostgreSQL. The sandbox runs in this test process, so it outlives the gateway and keeps retrying its
//! webhooks while the gateway is down, as Meta would.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wabridge_gateway::config::Config;
use wabridge_gateway::store::{create_schema, drop_schema};
use wabridge_sandbox::{Sandbox, SandboxConfig};

const TOTAL: usize = 10_000;
const PASSWORD: &str = "crash-admin-password";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server(Child);

impl Server {
    fn start(config_file: &std::path::Path, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_wabridge"))
            .args([
                "serve",
                "-c",
                &config_file.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{url}/v1/health")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "wabridge serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn api_key(http: &reqwest::Client, url: &str) -> String {
    let login: Value = http
        .post(format!("{url}/v1/users/login"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["users"][0]["token"].as_str().unwrap();
    let key: Value = http
        .post(format!("{url}/v1/keys"))
        .bearer_auth(token)
        .json(&json!({"scopes": ["send"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    key["keys"][0]["key"].as_str().unwrap().to_owned()
}

async fn crash_during_send(database: &str) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut sandbox_config = SandboxConfig::for_tests();
    sandbox_config.numbers.truncate(1);
    sandbox_config.numbers[0].mps = Some(100_000);
    sandbox_config.limits.pair_interval = Duration::from_millis(1);
    sandbox_config.limits.pair_burst = 1_000;
    sandbox_config.limits.messaging_limit = None;
    sandbox_config.webhooks.callback_urls = vec![format!("{url}/webhook")];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = Sandbox::start(sandbox_config, listener).await.unwrap();
    let dir = std::env::temp_dir().join(format!("wabridge-send-crash-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wabridge.toml");
    std::fs::write(
        &file,
        format!(
            r#"data_dir = "{dir}"
{database}
[meta]
access_token = "{token}"
graph_url = "{graph}"
app_secrets = ["sandbox-secret"]
[[numbers]]
id = "{number}"
waba_id = "{waba}"
level_mps = 2000
[admin]
password = "{PASSWORD}"
[outbound]
pair_interval_ms = 1
pair_burst = 1000
messaging_limit = 0
unknown_outcome_grace_ms = 3000
lease_ms = 1500
in_flight = 64
"#,
            dir = dir.display(),
            token = sandbox.access_token(),
            graph = sandbox.base_url(),
            number = sandbox.phone_number_ids()[0],
            waba = sandbox.waba_id(),
        ),
    )
    .unwrap();
    let config = Config::load(Some(&file), Vec::new()).unwrap();

    let mut server = Server::start(&file, port);
    wait_ready(&url).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let key = api_key(&http, &url).await;
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let (accepted, http, url, key) = (accepted.clone(), http.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for n in (task..TOTAL).step_by(16) {
                let body = json!({"to": format!("1631555{:04}", n % 200), "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}}});
                match http.post(format!("{url}/v1/messages")).bearer_auth(&key).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = r.json().await.unwrap();
                        accepted.lock().unwrap().push(v["messages"][0]["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
        }));
    }
    // Kill while messages are being accepted and sent.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sandbox.control().counters().accepted < 3_000 {
        assert!(Instant::now() < deadline, "sending did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    let sent_before = sandbox.control().counters().accepted;
    drop(server);

    // Restart on the same store; send the rest of the 10,000.
    let _again = Server::start(&file, port);
    wait_ready(&url).await;
    let key = api_key(&http, &url).await;
    let mut all = accepted.clone();
    for n in accepted.len()..TOTAL {
        let body = json!({"to": format!("1631555{:04}", n % 200), "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}});
        let r = http.post(format!("{url}/v1/messages")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        all.push(v["messages"][0]["id"].as_str().unwrap().to_owned());
    }

    // Every accepted message is in the store and ends in a final state.
    let store = wabridge_gateway::open_store(&config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let counts = store.outbound_state_counts().await.unwrap();
        let pending: i64 = counts
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "read" | "delivered" | "failed" | "expired"))
            .map(|(_, n)| n)
            .sum();
        if pending == 0 {
            println!(
                "after the crash: {counts:?}; {sent_before} sent before the kill, {} accepted before it",
                accepted.len()
            );
            break;
        }
        assert!(Instant::now() < deadline, "messages never settled: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut missing = Vec::new();
    let mut flagged = 0;
    let mut reconciled = 0;
    for id in &all {
        match store.outbound_detail(id).await.unwrap() {
            None => missing.push(id.clone()),
            Some(d) => {
                flagged += usize::from(d.possibly_duplicated);
                reconciled += usize::from(d.reconciled);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} accepted messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), TOTAL);
    println!(
        "{TOTAL} messages: {reconciled} reconciled from statuses, {flagged} resent as possibly duplicated"
    );
    store.close().await;
    sandbox.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_send_loses_no_message_sqlite() {
    crash_during_send("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_send_loses_no_message_postgres() {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("notice: TEST_POSTGRES_URL is not set; skipping the PostgreSQL sending crash test");
        return;
    };
    let schema = format!("wabridge_send_crash_{}", std::process::id());
    create_schema(&url, &schema).await.unwrap();
    crash_during_send(&format!(
        "[database]\nurl = \"{url}\"\npostgres_schema = \"{schema}\"\nmax_connections = 8"
    ))
    .await;
    drop_schema(&url, &schema).await.unwrap();
}
