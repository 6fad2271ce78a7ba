//! Bearer tokens (190, HTTP 401) and `appsecret_proof` (100).

use wabridge_cloud::Client;
use wabridge_sandbox::SandboxConfig;
use wabridge_types::send::OutboundMessage;

use crate::support::{Harness, USER, client_for, code};

#[tokio::test]
async fn unknown_or_missing_token_is_190_with_401() {
    let h = Harness::for_tests().await;
    let stranger = Client::builder()
        .base_url(h.sandbox.base_url())
        .access_token("not-a-token")
        .no_proxy()
        .build()
        .unwrap();
    let result = stranger.send_message(&h.number(), &OutboundMessage::text(USER, "hi")).await;
    assert_eq!(code(result), (190, 401));
    let response = reqwest::Client::new().get(h.url(h.number().as_str())).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
    // The token is also accepted as `access_token=` in the query.
    let response = reqwest::Client::new()
        .get(format!("{}?access_token={}", h.url(h.number().as_str()), h.sandbox.access_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.sandbox.control().counters().rejected[&190], 2);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn appsecret_proof_is_enforced_when_configured() {
    let config = SandboxConfig { require_appsecret_proof: true, ..SandboxConfig::for_tests() };
    let h = Harness::start(config).await;
    let message = OutboundMessage::text(USER, "hi");
    // No proof.
    assert_eq!(code(h.client.send_message(&h.number(), &message).await), (100, 400));
    // A proof made with the wrong secret.
    let wrong = client_for(&h.sandbox, Some("another-secret"));
    let error = wrong.send_message(&h.number(), &message).await.unwrap_err();
    assert_eq!(error.code(), Some(100));
    assert!(error.graph_error().unwrap().details().unwrap().contains("appsecret_proof"));
    // The right one.
    let right = client_for(&h.sandbox, h.sandbox.app_secret());
    right.send_message(&h.number(), &message).await.unwrap();
    // The media download URL is not a Graph call: the token alone fetches it (the SDK sends no proof there).
    let id = right.upload_media(&h.number(), vec![1u8; 10], "image/jpeg", "a.jpg").await.unwrap();
    let info = right.media_info(&id).await.unwrap();
    assert_eq!(right.download_media(&info.url).await.unwrap().as_ref(), &[1u8; 10]);
    h.sandbox.shutdown().await;
}

/// Not required, but checked when given: a proof made with another secret is refused (an app secret is
/// configured, as in `for_tests`); no proof, or the right one, goes through.
#[tokio::test]
async fn a_wrong_appsecret_proof_is_refused_even_when_proofs_are_optional() {
    let h = Harness::for_tests().await;
    assert!(h.sandbox.app_secret().is_some());
    let message = OutboundMessage::text(USER, "hi");
    let wrong = client_for(&h.sandbox, Some("another-secret"));
    let error = wrong.send_message(&h.number(), &message).await.unwrap_err();
    assert_eq!((error.code(), error.status()), (Some(100), Some(400)));
    assert!(error.graph_error().unwrap().details().unwrap().contains("appsecret_proof"));
    assert_eq!(code(wrong.throughput(&h.number()).await), (100, 400));
    h.client.send_message(&h.number(), &message).await.unwrap();
    client_for(&h.sandbox, h.sandbox.app_secret()).send_message(&h.number(), &message).await.unwrap();
    // Without an app secret there is nothing to check a proof against.
    let config = SandboxConfig { app_secret: None, ..SandboxConfig::for_tests() };
    let unsigned = Harness::start(config).await;
    client_for(&unsigned.sandbox, Some("any-secret")).throughput(&unsigned.number()).await.unwrap();
    unsigned.sandbox.shutdown().await;
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn several_tokens_can_be_configured() {
    let config =
        SandboxConfig { access_tokens: vec!["first".into(), "second".into()], ..SandboxConfig::for_tests() };
    let h = Harness::start(config).await;
    let second =
        Client::builder().base_url(h.sandbox.base_url()).access_token("second").no_proxy().build().unwrap();
    second.throughput(&h.number()).await.unwrap();
    h.sandbox.shutdown().await;
}
