//! Token providers: asked before each call, asked to refresh once after Meta refuses the token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::json;
use wabridge_cloud::{AccessToken, Client, CloudError, TokenError, TokenProvider};
use wabridge_types::PhoneNumberId;
use wabridge_types::send::OutboundMessage;
use wabridge_types::signature::appsecret_proof;

use crate::harness::{APP_SECRET, MockServer, PHONE_ID};

#[derive(Clone, Default)]
struct Rotating {
    asked: Arc<Mutex<Vec<bool>>>,
    generation: Arc<AtomicUsize>,
}

impl TokenProvider for Rotating {
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        self.asked.lock().unwrap().push(refresh);
        if refresh {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        let token = format!("token-{}", self.generation.load(Ordering::SeqCst));
        Box::pin(async move { Ok(AccessToken::new(token)) })
    }
}

fn expired() -> serde_json::Value {
    json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException",
                     "code": 190, "error_subcode": 463, "fbtrace_id": "T"}})
}

async fn send(client: &Client) -> Result<wabridge_types::response::SendResponse, CloudError> {
    client.send_message(&PhoneNumberId::new(PHONE_ID), &OutboundMessage::text("16505551234", "hi")).await
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once() {
    let server = MockServer::start().await;
    server.reply(401, &expired()).reply(200, &json!({"messages": [{"id": "wamid.A"}]}));
    let provider = Rotating::default();
    let client = Client::builder()
        .base_url(server.url())
        .token_provider(provider.clone())
        .app_secret(APP_SECRET)
        .no_proxy()
        .build()
        .unwrap();
    send(&client).await.unwrap();

    assert_eq!(*provider.asked.lock().unwrap(), [false, true]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer token-0"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer token-1"));
    // The proof follows the token.
    assert_eq!(reqs[1].query_value("appsecret_proof"), Some(appsecret_proof(APP_SECRET, "token-1").as_str()));
}

#[tokio::test]
async fn a_token_refused_again_is_an_error() {
    let server = MockServer::start().await;
    server.reply(401, &expired()).reply(401, &expired()).reply(200, &json!({"messages": []}));
    let provider = Rotating::default();
    let client =
        Client::builder().base_url(server.url()).token_provider(provider.clone()).no_proxy().build().unwrap();
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.code(), Some(190));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_fixed_token_is_not_asked_again() {
    let server = MockServer::start().await;
    server.reply(401, &expired()).reply(200, &json!({"messages": []}));
    let client = server.client().build().unwrap();
    assert_eq!(send(&client).await.unwrap_err().code(), Some(190));
    assert_eq!(server.requests().len(), 1);
}

struct Failing;

impl TokenProvider for Failing {
    fn token(&self, _refresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async { Err("vault unreachable".into()) })
    }
}

#[tokio::test]
async fn a_failing_provider_sends_nothing() {
    let server = MockServer::start().await;
    let client = Client::builder().base_url(server.url()).token_provider(Failing).no_proxy().build().unwrap();
    let err = send(&client).await.unwrap_err();
    assert!(matches!(err, CloudError::Token(_)));
    assert!(err.classification().needs_operator);
    assert!(server.requests().is_empty());
}

/// An app secret read before each call: a rotated secret proves the next call, with no new client.
#[derive(Clone, Default)]
struct RotatingSecret(Arc<Mutex<Option<String>>>);

impl wabridge_cloud::AppSecretProvider for RotatingSecret {
    fn app_secret(&self) -> Option<wabridge_cloud::AppSecret> {
        self.0.lock().unwrap().clone().map(wabridge_cloud::AppSecret::new)
    }
}

#[tokio::test]
async fn the_proof_follows_the_app_secret_provider() {
    let server = MockServer::start().await;
    for _ in 0..3 {
        server.reply(200, &json!({"messages": [{"id": "wamid.A"}]}));
    }
    let secret = RotatingSecret::default();
    let client = Client::builder()
        .base_url(server.url())
        .access_token("token-0")
        .app_secret_provider(secret.clone())
        .no_proxy()
        .build()
        .unwrap();
    send(&client).await.unwrap();
    *secret.0.lock().unwrap() = Some("first-secret".to_owned());
    send(&client).await.unwrap();
    *secret.0.lock().unwrap() = Some("second-secret".to_owned());
    send(&client).await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs[0].query_value("appsecret_proof"), None, "no secret, no proof");
    assert_eq!(
        reqs[1].query_value("appsecret_proof"),
        Some(appsecret_proof("first-secret", "token-0").as_str())
    );
    assert_eq!(
        reqs[2].query_value("appsecret_proof"),
        Some(appsecret_proof("second-secret", "token-0").as_str())
    );
}
