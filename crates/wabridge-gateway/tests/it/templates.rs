//! The template cache on both backends: listed by `/v1/templates`, kept current by template webhooks, and
//! template sends checked against it with a clear error at once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};
use wabridge_types::template::TemplateStatus;

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{NUMBER, Pair, config, sandbox_config, template};

each_backend!(templates_are_listed_checked_and_refreshed, a_send_the_cache_would_refuse_reads_meta_again);

async fn list(pair: &Pair) -> Vec<Value> {
    let v: Value = pair.get_json("/v1/templates").await;
    v["templates"].as_array().unwrap().clone()
}

/// Waits (10 s at most) until the cache holds hello_world in `expected` status.
async fn settles_on(pair: &Pair, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&list(pair).await, "hello_world") != expected {
        assert!(Instant::now() < deadline, "the cache did not settle on {expected}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn status_of(templates: &[Value], name: &str) -> String {
    let t = templates.iter().find(|t| t["name"] == name && t["language"] == "en_US").unwrap();
    t["status"].as_str().unwrap().to_owned()
}

async fn templates_are_listed_checked_and_refreshed(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let templates = list(&pair).await;
    let hello = templates.iter().find(|t| t["name"] == "hello_world").expect("hello_world is cached");
    assert_eq!(hello["waba_id"], pair.sandbox.waba_id());
    assert_eq!(hello["status"], "APPROVED");

    let to = "+16315551234";
    let mut missing = template(NUMBER, to);
    missing["template"]["name"] = json!("no_such_template");
    let (code, body) = pair.send(&missing).await;
    assert_eq!((code, body["errors"][0]["code"].as_u64()), (400, Some(2001)), "{body}");
    let mut language = template(NUMBER, to);
    language["template"]["language"]["code"] = json!("xx_XX");
    let (code, body) = pair.send(&language).await;
    assert_eq!(code, 400);
    assert!(body["errors"][0]["details"].as_str().unwrap().contains("en_US"), "{body}");
    let mut count = template(NUMBER, to);
    count["template"] = json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]});
    let (code, body) = pair.send(&count).await;
    assert_eq!((code, body["errors"][0]["code"].as_u64()), (400, Some(2000)), "{body}");
    let mut kinds = count.clone();
    kinds["template"]["components"] = json!([
        {"type": "body", "parameters": [{"type": "image", "image": {"id": "1"}}, {"type": "text", "text": "a"},
                                        {"type": "text", "text": "b"}]}]);
    let (code, body) = pair.send(&kinds).await;
    assert_eq!((code, body["errors"][0]["code"].as_u64()), (400, Some(2012)), "{body}");

    // Meta pauses hello_world: its webhook updates the cache, and sends are refused until it is approved.
    let control = pair.sandbox.control();
    let id = control.template_id("hello_world", "en_US").unwrap();
    control.set_template_status(&id, TemplateStatus::Paused).unwrap();
    settles_on(&pair, "PAUSED").await;
    let (code, body) = pair.send(&template(NUMBER, to)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["errors"][0]["details"].as_str().unwrap().contains("PAUSED"), "{body}");
    control.set_template_status(&id, TemplateStatus::Approved).unwrap();
    settles_on(&pair, "APPROVED").await;
    assert_eq!(pair.send(&template(NUMBER, to)).await.0, 201);

    // Webhooks may come late, twice, or name a status outside the known ones: the cache settles on what
    // Meta says (each status webhook makes it read the WABA's templates again). Each webhook is posted as
    // Meta would, signed with the app secret.
    let secret = pair.sandbox.app_secret().expect("the sandbox signs its webhooks").to_owned();
    let webhook = |event: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": pair.sandbox.waba_id(), "time": 1,
            "changes": [{"field": "message_template_status_update", "value": {"event": event,
                "message_template_id": id.as_str(), "message_template_name": "hello_world",
                "message_template_language": "en_US", "reason": "NONE"}}]}]})
        .to_string()
    };
    let post = |body: String| {
        let signature = sign(secret.as_bytes(), body.as_bytes());
        pair.http.post(format!("{}/webhook", pair.url)).header(SIGNATURE_HEADER, signature).body(body).send()
    };
    // An event outside the known statuses leaves an approved template sendable.
    assert_eq!(post(webhook("REINSTATED")).await.unwrap().status(), 200);
    assert_eq!(status_of(&list(&pair).await, "hello_world"), "APPROVED");
    assert_eq!(pair.send(&template(NUMBER, to)).await.0, 201);
    control.set_template_status(&id, TemplateStatus::Disabled).unwrap();
    settles_on(&pair, "DISABLED").await;
    // An older PAUSED arriving late, then again: DISABLED stays (Meta's word).
    let paused = webhook("PAUSED");
    assert_eq!(post(paused.clone()).await.unwrap().status(), 200);
    settles_on(&pair, "DISABLED").await;
    assert_eq!(post(paused).await.unwrap().status(), 200);
    settles_on(&pair, "DISABLED").await;
    pair.stop().await;
}

/// The cache may be behind Meta with no webhook to tell it (a template approved or created while the webhooks
/// did not reach the gateway): a send it would refuse makes it read the WABA again first.
async fn a_send_the_cache_would_refuse_reads_meta_again(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let control = pair.sandbox.control();
    let id = control.template_id("hello_world", "en_US").unwrap();
    control.set_template_status(&id, TemplateStatus::Paused).unwrap();
    settles_on(&pair, "PAUSED").await;
    // The read of Meta that webhook scheduled (2 s later) comes first, and finds PAUSED too.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status_of(&list(&pair).await, "hello_world"), "PAUSED");
    // Approved again at Meta, but the webhook saying so never reaches the gateway.
    for url in control.callbacks() {
        control.remove_callback(&url);
    }
    control.set_template_status(&id, TemplateStatus::Approved).unwrap();
    assert_eq!(status_of(&list(&pair).await, "hello_world"), "PAUSED");
    let (code, body) = pair.send(&template(NUMBER, "+16315551234")).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(status_of(&list(&pair).await, "hello_world"), "APPROVED");
    pair.stop().await;
}
