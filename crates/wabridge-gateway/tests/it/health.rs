//! `GET /v1/health` on both backends: `uninitialized` (sends refused with 1011) until start-up is done,
//! then `connected` or `connecting`, with paused numbers shown as alerts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wabridge_gateway::Gateway;
use wabridge_sandbox::{FaultInjection, FaultScope};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{NUMBER, Pair, config, sandbox_config, template};

each_backend!(
    uninitialized_until_ready_then_connected,
    connecting_without_cloud_api,
    paused_numbers_are_alerts
);

const TOKEN: &str = "health-test-token";

async fn health(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/v1/health")).send().await.unwrap().json().await.unwrap()
}

async fn uninitialized_until_ready_then_connected(db: TestDb) {
    let mut c = config(&db);
    c.api.tokens = vec![TOKEN.to_owned().into()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Every Graph call takes 2 s: loading the templates keeps the gateway uninitialized meanwhile.
    let sandbox_cfg = sandbox_config(|s| s.chaos.latency = Duration::from_millis(2000));
    let sandbox =
        wabridge_gateway::outbound::embedded::start_sandbox(&mut c, &url, Some(sandbox_cfg)).await.unwrap();
    let starting = tokio::spawn(Gateway::start(c, listener));
    let http = reqwest::Client::new();
    let first = loop {
        if let Ok(r) = http.get(format!("{url}/v1/health")).send().await {
            break r.json::<Value>().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(first["health"]["gateway_status"], "uninitialized", "{first}");
    assert!(first["meta"]["version"].is_string());
    let refused =
        http.post(format!("{url}/v1/messages")).bearer_auth(TOKEN).json(&template(NUMBER, "+16315551234"));
    let refused = refused.send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], 1011, "{body}");
    assert_eq!(body["errors"][0]["title"], "Service not ready");
    assert!(!starting.is_finished(), "checked while the templates were loading");
    let gateway = starting.await.unwrap().unwrap();
    // The Cloud API check itself takes the sandbox's 2 s against a 3 s bound: on a loaded machine one check
    // can miss it (`connecting`), so ask until it is `connected`.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let h = health(&http, &url).await;
        if h["health"]["gateway_status"] == "connected" || std::time::Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["health"]["gateway_status"], "connected", "{ready}");
    assert!(ready["health"]["ready_after_ms"].as_u64().unwrap() >= 2000, "{ready}");
    assert_eq!(ready["health"]["alerts"], json!([]));
    let sent =
        http.post(format!("{url}/v1/messages")).bearer_auth(TOKEN).json(&template(NUMBER, "+16315551234"));
    assert_eq!(sent.send().await.unwrap().status(), 201);
    gateway.shutdown().await.unwrap();
    sandbox.shutdown().await;
}

async fn connecting_without_cloud_api(db: TestDb) {
    let mut c = config(&db);
    // A Cloud API that refuses connections: start-up finishes, the status is `connecting`.
    c.meta.access_token = Some("token".to_owned().into());
    c.meta.graph_url = "http://127.0.0.1:9".into();
    c.numbers = vec![wabridge_gateway::config::NumberConfig {
        id: NUMBER.into(),
        waba_id: "1234".into(),
        display_phone_number: None,
        level_mps: None,
    }];
    let gateway = crate::support::gateway::start(c).await;
    let h = health(&reqwest::Client::new(), &gateway.url()).await;
    assert_eq!(h["health"]["gateway_status"], "connecting", "{h}");
    assert_eq!(h["health"]["alerts"][0]["type"], "templates_not_loaded", "{h}");
    gateway.shutdown().await.unwrap();
}

async fn paused_numbers_are_alerts(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    // 190: the token is refused; sending pauses until an operator acts, and health says so.
    pair.sandbox.control().set_fault(Some(FaultInjection {
        code: 190,
        next_n: None,
        every_nth: None,
        scope: FaultScope::Messages,
    }));
    let (code, _) = pair.send(&template(NUMBER, "+16315551234")).await;
    assert_eq!(code, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&pair.http, &pair.url).await;
        let alerts = h["health"]["alerts"].as_array().unwrap().clone();
        if alerts.iter().any(|a| a["type"] == "sending_paused" && a["phone_number_id"] == NUMBER) {
            break;
        }
        assert!(Instant::now() < deadline, "no sending_paused alert: {h}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pair.stop().await;
}
