//! A gateway sending to an in-process sandbox, with an admin login and an API key ready.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;
use wabridge_sandbox::{Sandbox, SandboxConfig};

use super::backend::TestDb;
use super::gateway;

/// The admin password of the test gateways.
pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// The sandbox's first and second numbers.
pub const NUMBER: &str = "106540352242922";
pub const NUMBER2: &str = "106540352242923";

/// A running pair.
pub struct Pair {
    pub gateway: Gateway,
    pub sandbox: Sandbox,
    pub url: String,
    /// An API key with every scope.
    pub key: String,
    pub http: reqwest::Client,
}

/// The test gateway's configuration with an admin password and fast retries.
pub fn config(db: &TestDb) -> Config {
    let mut c = gateway::config(db);
    c.admin.password = Some(ADMIN_PASSWORD.to_owned().into());
    c.outbound.retry_base_ms = 20;
    c.outbound.retry_max_ms = 200;
    c.outbound.operator_pause_ms = 200;
    c.outbound.poll_interval_ms = 200;
    // One instance counts its own backlog exactly; a read from the store racing a send could be one off for
    // a moment, which the tests of the limit at 3 would see. The test of several instances sets it short.
    c.outbound.backlog_refresh_ms = 3_600_000;
    c
}

/// A sandbox for tests (millisecond delays) with `f` applied.
pub fn sandbox_config(f: impl FnOnce(&mut SandboxConfig)) -> SandboxConfig {
    let mut s = SandboxConfig::for_tests();
    f(&mut s);
    s
}

impl Pair {
    /// Starts the sandbox, then the gateway pointed at it (webhooks come back signed).
    pub async fn start(mut config: Config, sandbox: SandboxConfig) -> Pair {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sandbox = wabridge_gateway::outbound::embedded::start_sandbox(&mut config, &url, Some(sandbox))
            .await
            .unwrap();
        let gateway = Gateway::start(config, listener).await.unwrap();
        let http = reqwest::Client::new();
        let login: Value = http
            .post(format!("{url}/v1/users/login"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["users"][0]["token"].as_str().unwrap().to_owned();
        let key: Value = http
            .post(format!("{url}/v1/keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "tests", "scopes": ["send", "events", "admin"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = key["keys"][0]["key"].as_str().unwrap().to_owned();
        Pair { gateway, sandbox, url, key, http }
    }

    /// `POST /v1/messages` → (status, body).
    pub async fn send(&self, body: &Value) -> (u16, Value) {
        self.send_with(body, None).await
    }

    /// `POST /v1/messages` with an optional `Idempotency-Key`.
    pub async fn send_with(&self, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/v1/messages", self.url)).bearer_auth(&self.key).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// `GET {path}` on the gateway with the API key → the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `DELETE /v1/messages/{id}` → the status code.
    pub async fn cancel(&self, id: &str) -> u16 {
        let url = format!("{}/v1/messages/{id}", self.url);
        self.http.delete(url).bearer_auth(&self.key).send().await.unwrap().status().as_u16()
    }

    /// `GET /v1/messages/{id}` → the message object.
    pub async fn message(&self, id: &str) -> Value {
        let v = self.get_json(&format!("/v1/messages/{id}")).await;
        v["messages"][0].clone()
    }

    /// Waits until message `id` is in one of `states`; panics after `limit`.
    pub async fn wait_state(&self, id: &str, states: &[&str], limit: Duration) -> Value {
        self.wait_message(id, limit, &format!("a state in {states:?}"), |m| {
            states.contains(&m["state"].as_str().unwrap_or(""))
        })
        .await
    }

    /// Polls message `id` until `done` holds for it (`what` names the condition when it never does).
    pub async fn wait_message(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.message(id).await;
            if done(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "message {id} did not reach {what}: {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops both.
    pub async fn stop(self) {
        self.gateway.shutdown().await.unwrap();
        self.sandbox.shutdown().await;
    }
}

/// A message that was read and whose timeline holds all three statuses. Meta does not order its webhooks and the
/// sandbox posts `delivered` and `read` concurrently, so `read` may be stored before `delivered`: tests wait for
/// the whole timeline, which the API lists in lifecycle order whatever the arrival order.
pub fn read_with_three_statuses(m: &Value) -> bool {
    m["state"] == "read" && m["statuses"].as_array().is_some_and(|s| s.len() == 3)
}

/// A template message (needs no open window) from `from` to `to`.
pub fn template(from: &str, to: &str) -> Value {
    json!({"from": from, "to": to, "type": "template",
           "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}
