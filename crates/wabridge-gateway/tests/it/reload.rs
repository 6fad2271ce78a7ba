//! Reloading without a restart, on both backends: API tokens, app secrets and the Cloud API access token
//! change at once; TLS certificates are reloaded by the same call (`tls.rs`).

use crate::support::backend::{TestDb, each_backend};
use crate::support::gateway::{APP_SECRET, post_webhook};
use crate::support::sending::{NUMBER, Pair, config, sandbox_config};

each_backend!(tokens_secrets_and_access_token_reload, a_reload_without_an_access_token_keeps_the_current_one);

async fn status(pair: &Pair, path: &str, token: &str) -> u16 {
    let resp = pair.http.get(format!("{}{path}", pair.url)).bearer_auth(token).send().await.unwrap();
    resp.status().as_u16()
}

async fn tokens_secrets_and_access_token_reload(db: TestDb) {
    let mut c = config(&db);
    c.api.tokens = vec!["old-token".to_owned().into()];
    let pair = Pair::start(c, sandbox_config(|_| {})).await;
    assert_eq!(status(&pair, "/v1/templates", "old-token").await, 200);
    let webhook = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    assert_eq!(post_webhook(&pair.http, &pair.url, webhook).await, 200);

    let mut fresh = (*pair.gateway.state().config).clone();
    fresh.api.tokens = vec!["new-token".to_owned().into()];
    fresh.meta.app_secrets = vec!["a-new-app-secret".to_owned().into()];
    fresh.meta.access_token = Some("not-the-sandbox-token".to_owned().into());
    pair.gateway.reload(&fresh).unwrap();
    assert_eq!(status(&pair, "/v1/templates", "old-token").await, 401);
    assert_eq!(status(&pair, "/v1/templates", "new-token").await, 200);
    // Webhooks signed with the old secret are refused, with the new one accepted.
    assert_eq!(post_webhook(&pair.http, &pair.url, webhook).await, 401);
    let signed = wabridge_types::signature::sign(b"a-new-app-secret", webhook.as_bytes());
    let resp = pair
        .http
        .post(format!("{}/webhook", pair.url))
        .header(wabridge_types::signature::SIGNATURE_HEADER, signed)
        .body(webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The Cloud API now refuses the gateway's token…
    let profile = format!("/v1/settings/business/profile?phone_number_id={NUMBER}");
    let resp = pair.http.get(format!("{}{profile}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["details"].as_str().unwrap().contains("190"), "{body}");
    // …until the right one is loaded again.
    fresh.meta.access_token = pair.gateway.state().config.meta.access_token.clone();
    fresh.meta.app_secrets = vec![APP_SECRET.to_owned().into()];
    pair.gateway.reload(&fresh).unwrap();
    assert_eq!(status(&pair, &profile, &pair.key).await, 200);
    assert_eq!(post_webhook(&pair.http, &pair.url, webhook).await, 200);
    pair.stop().await;
}

/// A reloaded configuration without `meta.access_token` (a variable missing from the environment of the
/// reload, say) does not leave the gateway without one: the current token stays; the rest is applied.
async fn a_reload_without_an_access_token_keeps_the_current_one(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let profile = format!("/v1/settings/business/profile?phone_number_id={NUMBER}");
    assert_eq!(status(&pair, &profile, &pair.key).await, 200);
    let mut fresh = (*pair.gateway.state().config).clone();
    fresh.meta.access_token = None;
    fresh.api.tokens = vec!["new-token".to_owned().into()];
    pair.gateway.reload(&fresh).unwrap();
    assert_eq!(status(&pair, &profile, &pair.key).await, 200, "the access token was removed");
    assert_eq!(status(&pair, "/v1/templates", "new-token").await, 200);
    pair.stop().await;
}
