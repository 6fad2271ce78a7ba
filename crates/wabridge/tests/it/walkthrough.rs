//! The README's walk-through, call for call, against the real binary: `wabridge serve` with no configuration
//! (the built-in sandbox, a generated admin password printed once), log in, create an API key, send with the
//! closed window refused and a template accepted, watch sent / delivered / read on `/v1/events/ws`, inject a
//! reply from a simulated user, answer it, and poll `/v1/events` as the alternative.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const USER: &str = "16315551234";

struct Serve {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `wabridge serve` printed that the walk-through uses.
struct Printed {
    url: String,
    sandbox: String,
    password: String,
}

/// Reads the start report until the admin password line (the last one printed), within 60 s. The rest of
/// the output is drained in the background, so the child never writes to a closed pipe.
fn read_report(stdout: ChildStdout) -> Printed {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once the report is read nobody listens: the lines are dropped, the pipe stays drained.
            let _ = tx.send(line);
        }
    });
    let (mut url, mut sandbox) = (None, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("wabridge serve printed its admin password within 60 s");
        if let Some(rest) = line.strip_prefix("wabridge gateway listening on ") {
            url = Some(rest.trim().to_owned());
        }
        if let Some((_, rest)) = line.split_once("built-in sandbox at ") {
            sandbox = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.contains("admin password (generated now, shown ONCE") {
            let password = line.rsplit(": ").next().unwrap().trim().to_owned();
            return Printed { url: url.unwrap(), sandbox: sandbox.unwrap(), password };
        }
    }
}

fn start() -> (Serve, Printed) {
    // A store left by an earlier run would keep its admin password: start from nothing, as a new user does.
    let (mut command, dir, _port) = crate::serve_command("walkthrough");
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let serve = Serve { child, dir };
    let printed = read_report(stdout);
    (serve, printed)
}

/// The next frame's `(kind, status, gateway id, text)`, as the README's `jq` filter shows it.
async fn next_event<S>(ws: &mut S) -> (String, Option<String>, Option<String>, Option<String>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["contact"], USER, "{e}");
        let s = |v: &Value| v.as_str().map(str::to_owned);
        return (
            e["kind"].as_str().unwrap().to_owned(),
            s(&e["payload"]["statuses"][0]["status"]),
            s(&e["payload"]["statuses"][0]["biz_opaque_callback_data"]),
            s(&e["payload"]["messages"][0]["text"]["body"]),
        );
    }
}

async fn expect_statuses<S>(ws: &mut S, id: &str)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    for status in ["sent", "delivered", "read"] {
        let (kind, got, gateway_id, _) = next_event(ws).await;
        assert_eq!(kind, "status");
        assert_eq!(got.as_deref(), Some(status));
        assert_eq!(gateway_id.as_deref(), Some(id), "the status carries the gateway id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_works_as_printed() {
    let (_serve, printed) = start();
    tokio::time::timeout(Duration::from_secs(180), walk_through(printed))
        .await
        .expect("the walk-through finished within 180 s");
}

async fn walk_through(printed: Printed) {
    let Printed { url, sandbox, password } = printed;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // 2. Log in.
    let login: Value = http
        .post(format!("{url}/v1/users/login"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["users"][0]["token"].as_str().expect("a token").to_owned();
    assert!(login["users"][0]["expires_after"].is_string(), "{login}");

    // 3. An API key for the application.
    let resp = http
        .post(format!("{url}/v1/keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "my-app", "scopes": ["send", "events"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let key: Value = resp.json().await.unwrap();
    let key = key["keys"][0]["key"].as_str().unwrap().to_owned();

    // 4. Watch the events on the WebSocket.
    let mut request =
        format!("{}/v1/events/ws", url.replacen("http", "ws", 1)).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // 5. Send: free-form text to a closed window is refused, the template accepted and followed.
    let send = |body: Value| {
        let req = http.post(format!("{url}/v1/messages")).bearer_auth(&key).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (code, refused) =
        send(json!({"to": "+1 631-555-1234", "type": "text", "text": {"body": "Hello!"}})).await;
    assert_eq!((code, refused["errors"][0]["code"].as_i64()), (400, Some(1026)), "{refused}");
    let (code, sent) = send(json!({"to": "+1 631-555-1234", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}))
    .await;
    assert_eq!(code, 201, "{sent}");
    let first = sent["messages"][0]["id"].as_str().unwrap().to_owned();
    expect_statuses(&mut ws, &first).await;
    let m: Value = http
        .get(format!("{url}/v1/messages/{first}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &m["messages"][0];
    assert_eq!(m["state"], "read", "{m}");
    assert!(m["wamid"].as_str().unwrap().starts_with("wamid."), "{m}");
    let timeline: Vec<&str> =
        m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["sent", "delivered", "read"]);

    // 6. A simulated user replies through the sandbox's control API.
    let reply = "Hi! Can I move my booking to 9 pm?";
    let resp = http
        .post(format!("{sandbox}/_sandbox/inbound"))
        .json(&json!({"from": USER, "type": "text", "text": {"body": reply}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (kind, _, _, text) = next_event(&mut ws).await;
    assert_eq!((kind.as_str(), text.as_deref()), ("message", Some(reply)));

    // 7. Answer it: the window is open now, free-form text goes through.
    let (code, answer) =
        send(json!({"to": USER, "type": "text", "text": {"body": "Done: your table is now at 9 pm."}})).await;
    assert_eq!(code, 201, "{answer}");
    expect_statuses(&mut ws, answer["messages"][0]["id"].as_str().unwrap()).await;

    // Polling instead of the WebSocket: the reply after seq 3.
    let page: Value = http
        .get(format!("{url}/v1/events?after=3&kind=message"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["next_after"], 4);
    assert_eq!(page["events"][0]["payload"]["messages"][0]["text"]["body"], reply);
}
