//! `/v1/settings/application` on both backends: a document read with GET can be sent back as it is.

use serde_json::{Value, json};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{Pair, config, sandbox_config};

each_backend!(a_settings_document_read_can_be_sent_back);

async fn call(pair: &Pair, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/v1/settings/application", pair.url);
    let mut req = pair.http.request(method, url).bearer_auth(&pair.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// With a `webhooks.url` set, GET shows its generated `webhooks.secret`: the document sent back as it is (the
/// On-Premises way to change one setting) is taken, and the secret stays; another secret is refused.
async fn a_settings_document_read_can_be_sent_back(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let url = json!({"webhooks": {"url": "http://127.0.0.1:9/hook"}});
    assert_eq!(call(&pair, reqwest::Method::PATCH, Some(url)).await.0, 200);
    let (code, read) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(code, 200, "{read}");
    let mut doc = read["settings"]["application"].clone();
    let secret = doc["webhooks"]["secret"].as_str().unwrap().to_owned();
    doc["callback_backoff_delay_ms"] = json!(6000);
    let (code, r) = call(&pair, reqwest::Method::PATCH, Some(doc)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["callback_backoff_delay_ms"], 6000);
    assert_eq!(r["settings"]["application"]["webhooks"]["secret"], secret.as_str());
    let callback = pair.gateway.state().store.callback("application").await.unwrap().unwrap();
    assert_eq!(callback.secret, secret);
    // The secret is the gateway's to make.
    let other = json!({"webhooks": {"secret": "chosen-by-me"}});
    let (code, r) = call(&pair, reqwest::Method::PATCH, Some(other)).await;
    assert_eq!((code, &r["errors"][0]["code"]), (400, &json!(1009)), "{r}");
    let (_, now) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(now["settings"]["application"]["webhooks"]["secret"], secret.as_str());
    pair.stop().await;
}
