//! Sends whose outcome is unknown after a crash (state `sending` at start): reconciled from the statuses that
//! carry the gateway id in `biz_opaque_callback_data`, or sent again after the grace period and flagged.

use std::time::Duration;

use serde_json::{Value, json};
use wabridge_gateway::store::{NewQueued, OutboundOp};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{NUMBER, Pair, config, read_with_three_statuses, sandbox_config, template};

each_backend!(sending_message_whose_status_arrives_is_reconciled, sending_message_without_status_is_resent,);

const WAIT: Duration = Duration::from_secs(20);
const TO: &str = "16315550101";

/// Puts one message in the store as a process killed during its request left it: `sending`.
async fn leave_in_sending(config: &wabridge_gateway::config::Config, id: &str) {
    let store = wabridge_gateway::open_store(config).await.unwrap();
    let body = template(NUMBER, TO);
    store
        .enqueue_outbound(&[NewQueued {
            id: id.to_owned(),
            phone_number_id: NUMBER.to_owned(),
            recipient: TO.to_owned(),
            kind: "template".to_owned(),
            body: json!({"messaging_product": "whatsapp", "to": TO, "type": "template",
                         "template": body["template"]})
            .to_string(),
            callback_data: Some("app-data".to_owned()),
            not_before: None,
            expires_at: None,
            idempotency_key: None,
            request_sha256: None,
        }])
        .await
        .unwrap();
    store.apply_outbound_ops(&[OutboundOp::MarkSending { id: id.to_owned() }]).await.unwrap();
    store.close().await;
}

/// Sends the message to the sandbox directly, as the killed process did before it could record the answer.
async fn send_as_before_the_crash(pair: &Pair, id: &str) -> String {
    let body = json!({"messaging_product": "whatsapp", "to": TO, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}, "biz_opaque_callback_data": id});
    let url = format!("{}/v23.0/{NUMBER}/messages", pair.sandbox.base_url());
    let resp = pair.http.post(url).bearer_auth(pair.sandbox.access_token()).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    v["messages"][0]["id"].as_str().unwrap().to_owned()
}

async fn sending_message_whose_status_arrives_is_reconciled(db: TestDb) {
    let mut config = config(&db);
    // Long enough that a resend would show, short enough that the scheduler looks every second.
    config.outbound.unknown_outcome_grace_ms = 4_000;
    let id = "reconcile-me";
    leave_in_sending(&config, id).await;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let wamid = send_as_before_the_crash(&pair, id).await;
    let m = pair.wait_message(id, WAIT, "read with three statuses", read_with_three_statuses).await;
    assert_eq!(m["wamid"], wamid.as_str(), "{m}");
    assert_eq!(m["reconciled"], true, "{m}");
    assert_eq!(m["possibly_duplicated"], false, "{m}");
    assert_eq!(m["attempts"], 1, "not sent again: {m}");
    let timeline: Vec<&str> =
        m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["sent", "delivered", "read"]);
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "one message reached Meta");
    // Counted once the scheduler's write is done (the store shows it a moment before the counter moves).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics =
            pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
        if metrics.contains("wabridge_outbound_reconciled_total 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.stop().await;
}

async fn sending_message_without_status_is_resent(db: TestDb) {
    let mut config = config(&db);
    config.outbound.unknown_outcome_grace_ms = 300;
    let id = "resend-me";
    leave_in_sending(&config, id).await;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let m = pair.wait_message(id, WAIT, "read with three statuses", read_with_three_statuses).await;
    assert_eq!(m["reconciled"], false, "{m}");
    assert_eq!(m["possibly_duplicated"], true, "{m}");
    assert_eq!(m["attempts"], 2, "sent again after the grace period: {m}");
    assert_eq!(m["biz_opaque_callback_data"], "app-data");
    assert_eq!(pair.sandbox.control().counters().accepted, 1);
    let metrics = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wabridge_outbound_resent_total 1"), "{metrics}");
    pair.stop().await;
}
