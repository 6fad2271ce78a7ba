//! Several instances on one PostgreSQL database: what a webhook tells the gateway reaches every instance,
//! whichever one Meta's request reached — the instance sending for the number counts inbound messages
//! received by another, and every instance's template cache takes a status change received by another.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wabridge_gateway::Gateway;
use wabridge_types::signature::{SIGNATURE_HEADER, sign};
use wabridge_types::template::TemplateStatus;

use crate::support::backend::{Backend, TestDb, run};
use crate::support::sending::{NUMBER, Pair, config, sandbox_config, template};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn inbound_messages_received_by_another_instance_count_where_the_number_is_sent() {
    run(Backend::Postgres, inbound_received_elsewhere).await;
}

#[tokio::test]
async fn a_template_status_received_by_another_instance_reaches_every_cache() {
    run(Backend::Postgres, template_status_received_elsewhere).await;
}

/// The value of the `/metrics` line of `base_url` that starts with `series`, if present.
async fn metric(http: &reqwest::Client, base_url: &str, series: &str) -> Option<f64> {
    let text = http.get(format!("{base_url}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The pair (its gateway sends for the numbers: it has sent once) and a second instance on its database.
async fn two_instances(db: &TestDb) -> (Pair, Gateway) {
    let pair = Pair::start(config(db), sandbox_config(|_| {})).await;
    let (code, r) = pair.send(&template(NUMBER, "+16315551234")).await;
    assert_eq!(code, 201, "{r}");
    pair.wait_state(r["messages"][0]["id"].as_str().unwrap(), &["sent", "delivered", "read"], WAIT).await;
    assert!(pair.gateway.state().outbound.sends_here(NUMBER));
    let second = crate::support::gateway::start((*pair.gateway.state().config).clone()).await;
    assert!(!second.state().outbound.sends_here(NUMBER));
    (pair, second)
}

async fn inbound_received_elsewhere(db: TestDb) {
    let (pair, second) = two_instances(&db).await;
    let series = format!("wabridge_outbound_inbound_counted_total{{phone_number_id=\"{NUMBER}\"}}");
    let before = metric(&pair.http, &pair.url, &series).await.unwrap_or(0.0);
    // Three users write; Meta's requests reach the instance that does not send for the number.
    let secret = pair.sandbox.app_secret().expect("the sandbox signs its webhooks").to_owned();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for i in 0..3 {
        let user = format!("1631555{:04}", 900 + i);
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": pair.sandbox.waba_id(),
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
                "contacts": [{"profile": {"name": "User"}, "wa_id": user}],
                "messages": [{"from": user, "id": format!("wamid.news{i}"), "timestamp": now.to_string(),
                    "type": "text", "text": {"body": "hi"}}]}}]}]})
        .to_string();
        let status = pair
            .http
            .post(format!("{}/webhook", second.url()))
            .header(SIGNATURE_HEADER, sign(secret.as_bytes(), body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    // The sending instance counts each of them, once.
    let deadline = Instant::now() + WAIT;
    loop {
        let got = metric(&pair.http, &pair.url, &series).await.unwrap_or(0.0);
        if got >= before + 3.0 {
            assert_eq!(got, before + 3.0, "counted more than once");
            break;
        }
        assert!(Instant::now() < deadline, "{series} is {got}, expected {}", before + 3.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(wabridge_gateway::news::POLL * 5).await;
    assert_eq!(metric(&pair.http, &pair.url, &series).await, Some(before + 3.0), "counted more than once");
    second.shutdown().await.unwrap();
    pair.stop().await;
}

async fn template_status_received_elsewhere(db: TestDb) {
    let (pair, second) = two_instances(&db).await;
    // Meta pauses hello_world; its webhook reaches the pair's instance only. A send through the other
    // instance is refused at once.
    let control = pair.sandbox.control();
    let id = control.template_id("hello_world", "en_US").unwrap();
    control.set_template_status(&id, TemplateStatus::Paused).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = pair
            .http
            .post(format!("{}/v1/messages", second.url()))
            .bearer_auth(&pair.key)
            .json(&template(NUMBER, "+16315551299"))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        if code == 400 {
            assert!(body["errors"][0]["details"].as_str().unwrap().contains("PAUSED"), "{body}");
            break;
        }
        assert_eq!(code, 201, "{body}");
        // A send accepted before the news arrived: leave it out of the queue.
        let _ = pair.cancel(body["messages"][0]["id"].as_str().unwrap()).await;
        assert!(Instant::now() < deadline, "the other instance still accepts the paused template");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await.unwrap();
    pair.stop().await;
}
