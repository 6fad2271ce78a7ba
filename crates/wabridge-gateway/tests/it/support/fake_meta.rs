//! A stand-in for Meta written by a test (an axum router), and a gateway sending to it with one number and an
//! application token, with the Cloud API SDK pointed at the gateway.

use serde_json::json;
use wabridge_cloud::{Client, RetryPolicy};
use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;

use super::backend::TestDb;
use super::sending::{NUMBER, config};

/// The token applications use with the gateway in these tests.
pub const APP_TOKEN: &str = "an-app-token";

/// Serves `app` on a free port; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Serves a Meta whose template list is empty, whose other calls but sends are answered 503, and whose sends
/// (`POST …/messages`, their JSON body) `answer` answers with a status and a JSON body; its base URL.
pub async fn serve_sends<F, Fut>(answer: F) -> String
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (axum::http::StatusCode, String)> + Send + 'static,
{
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let answer = answer.clone();
        async move {
            let json = [(header::CONTENT_TYPE, "application/json")];
            if uri.path().ends_with("/message_templates") {
                return (StatusCode::OK, json, r#"{"data":[]}"#.to_owned());
            }
            if !uri.path().ends_with("/messages") {
                return (StatusCode::SERVICE_UNAVAILABLE, json, String::new());
            }
            let (status, body) = answer(body).await;
            (status, json, body)
        }
    });
    serve(app).await
}

/// Meta's answer to an accepted send to `to`, with a fresh wamid.
#[must_use]
pub fn accepted(to: &str) -> String {
    json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.{}", uuid::Uuid::new_v4().simple())}]})
    .to_string()
}

/// The test gateway's configuration sending to the Meta at `graph_url` for [`NUMBER`], with [`APP_TOKEN`].
#[must_use]
pub fn gateway_config(db: &TestDb, graph_url: String) -> Config {
    let mut c = config(db);
    c.meta.access_token = Some("the-gateway-token".to_owned().into());
    c.meta.graph_url = graph_url;
    c.numbers = vec![wabridge_gateway::config::NumberConfig {
        id: NUMBER.to_owned(),
        waba_id: "102290129340398".to_owned(),
        display_phone_number: None,
        level_mps: None,
    }];
    c.api.tokens = vec![APP_TOKEN.to_owned().into()];
    c
}

/// The Cloud API SDK pointed at `gateway` with [`APP_TOKEN`], trying each call once.
#[must_use]
pub fn sdk(gateway: &Gateway) -> Client {
    Client::builder()
        .base_url(gateway.url())
        .access_token(APP_TOKEN.to_owned())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap()
}
