//! Echo bot: receives Meta's webhooks and sends every incoming text back to its sender.
//!
//! Configuration from the environment:
//! - `WHATSAPP_TOKEN`: the access token (required);
//! - `WHATSAPP_APP_SECRET`: the app secret, to check webhook signatures and send `appsecret_proof`
//!   (required);
//! - `WHATSAPP_VERIFY_TOKEN`: the verify token entered in the App Dashboard (required);
//! - `WHATSAPP_BASE_URL`: the Graph host (optional; the sandbox's address, for instance);
//! - `ECHO_BOT_LISTEN`: the address to listen on (optional, default `0.0.0.0:8080`).
//!
//! Run with `cargo run -p wabridge-cloud --example echo_bot --features axum` and point the app's webhook at
//! `http://<host>:8080/webhook`.

use std::env;

use wabridge_cloud::webhook::{Event, IncomingMessage, WebhookConfig, router};
use wabridge_cloud::{Client, CloudError, RetryPolicy};
use wabridge_types::send::{MarkRead, OutboundMessage};
use wabridge_types::webhook::MessageContent;

fn required(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("set {name}"))
}

/// Echoes one message when it is a text; other messages are ignored.
async fn echo(client: &Client, incoming: &IncomingMessage) -> Result<(), CloudError> {
    let MessageContent::Text(text) = &incoming.message.content else { return Ok(()) };
    let Some(number) = &incoming.context.phone_number_id else { return Ok(()) };
    let message = &incoming.message;
    client.mark_read(number, &MarkRead::new(message.id.clone()).with_typing_indicator()).await?;
    let reply = OutboundMessage::text(message.from.as_str(), text.body.clone()).reply_to(message.id.clone());
    let sent = client.send_message(number, &reply).await?;
    tracing::info!(wamid = ?sent.message_id(), "echoed a text");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    let mut builder = Client::builder()
        .access_token(required("WHATSAPP_TOKEN")?)
        .app_secret(required("WHATSAPP_APP_SECRET")?)
        .retry(RetryPolicy::default());
    if let Ok(base_url) = env::var("WHATSAPP_BASE_URL") {
        builder = builder.base_url(base_url);
    }
    let client = builder.build()?;
    let config = WebhookConfig::new(required("WHATSAPP_VERIFY_TOKEN")?, required("WHATSAPP_APP_SECRET")?);

    let app = router(config, move |event: Event| {
        let client = client.clone();
        async move {
            let Event::Message(incoming) = event else { return Ok(()) };
            match echo(&client, &incoming).await {
                Ok(()) => Ok(()),
                // A transient failure answers 500, so Meta delivers the webhook again and we try again.
                Err(e) if e.is_retryable() => Err(e),
                // A permanent one would fail again on every redelivery: log it and acknowledge.
                Err(e) => {
                    tracing::warn!(error = %e, "could not echo; dropping");
                    Ok(())
                }
            }
        }
    });

    let listen = env::var("ECHO_BOT_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "echo bot listening on /webhook");
    axum::serve(listener, app).await?;
    Ok(())
}
