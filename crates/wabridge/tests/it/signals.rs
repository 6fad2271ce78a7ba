//! Signals reach `wabridge serve` from its first moment. While it is still starting — it already answers
//! (`/v1/health` says `uninitialized`) and may already take webhooks and send, but its template cache is still
//! loading from a Cloud API that does not answer — a SIGHUP does not kill it, and a SIGTERM stops it
//! gracefully (exit status 0) once it has started.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(sent.success(), "kill -{name}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_while_starting_are_handled() {
    // A Cloud API that takes connections and never answers: the template cache waits for its request timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let graph = format!("http://{}", silent.local_addr().unwrap());
    let (mut command, dir, port) = crate::serve_command("signals");
    let mut child = command
        .env("WABRIDGE_META__ACCESS_TOKEN", "a-token-meta-never-sees")
        .env("WABRIDGE_META__GRAPH_URL", &graph)
        .env("WABRIDGE_META__APP_SECRETS", r#"["an-app-secret"]"#)
        .env("WABRIDGE_NUMBERS", r#"[{id = "106540352242922", waba_id = "102290129340398"}]"#)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let health = format!("http://127.0.0.1:{port}/v1/health");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(&health).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
        {
            assert_eq!(body["health"]["gateway_status"], "uninitialized", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "wabridge serve did not answer while starting");
        assert!(child.try_wait().unwrap().is_none(), "wabridge serve exited while starting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    signal(pid, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "a SIGHUP while starting killed wabridge serve");
    assert!(http.get(&health).send().await.is_ok());

    signal(pid, "TERM");
    // It stops once its start is over (the template request times out after 30 s), and stops cleanly.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "wabridge serve did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}
