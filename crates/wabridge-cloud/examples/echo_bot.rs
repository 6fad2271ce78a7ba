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
//!
//! The webhook handler only queues the texts to echo, so Meta gets its 200 at once (it wants answers well
//! under a second); a worker task sends the echoes, retrying as the client's policy says. Redelivering a
//! webhook never helps an echo that was already tried: a send whose outcome is unknown (a timeout after the
//! request left) may have reached the user, and sending it again would echo twice. So the handler answers
//! 500 — asking Meta to deliver again — only when it could not even queue the message, and the worker
//! skips messages it already echoed (Meta may deliver a webhook more than once anyway).

use std::collections::{HashSet, VecDeque};
use std::env;

use tokio::sync::mpsc;
use wabridge_cloud::webhook::{Event, IncomingMessage, WebhookConfig, router};
use wabridge_cloud::{Client, CloudError, RetryPolicy};
use wabridge_types::send::{MarkRead, OutboundMessage};
use wabridge_types::webhook::MessageContent;

/// Messages waiting for their echo; beyond it, webhooks answer 500 and Meta delivers them again later.
const QUEUE: usize = 1024;
/// How many echoed message ids are remembered to skip redeliveries.
const REMEMBERED: usize = 10_000;

fn required(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("set {name}"))
}

/// The ids of the last messages echoed, oldest first out.
#[derive(Default)]
struct Echoed {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Echoed {
    /// Remembers `id`; false when it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

/// Echoes one message when it is a text; other messages are ignored.
async fn echo(client: &Client, incoming: &IncomingMessage) -> Result<(), CloudError> {
    let MessageContent::Text(text) = &incoming.message.content else { return Ok(()) };
    let Some(number) = &incoming.context.phone_number_id else { return Ok(()) };
    let message = &incoming.message;
    // The read receipt is a courtesy: its failure must not cost the echo.
    if let Err(e) = client.mark_read(number, &MarkRead::new(message.id.clone()).with_typing_indicator()).await
    {
        tracing::warn!(error = %e, "could not mark the message read");
    }
    let reply = OutboundMessage::text(message.from.as_str(), text.body.clone()).reply_to(message.id.clone());
    let sent = client.send_message(number, &reply).await?;
    tracing::info!(wamid = ?sent.message_id(), "echoed a text");
    Ok(())
}

/// Sends the queued echoes one after the other, each at most once.
async fn echo_worker(client: Client, mut queue: mpsc::Receiver<IncomingMessage>) {
    let mut echoed = Echoed::default();
    while let Some(incoming) = queue.recv().await {
        if !echoed.insert(incoming.message.id.as_str()) {
            tracing::debug!("message already echoed; skipping a redelivery");
            continue;
        }
        match echo(&client, &incoming).await {
            Ok(()) => {}
            // Meta may have accepted it: trying again could echo twice.
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(error = %e, "echo outcome unknown (it may have been sent); not sent again");
            }
            Err(e) => tracing::warn!(error = %e, retryable = e.is_retryable(), "could not echo; dropping"),
        }
    }
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
    let config = WebhookConfig::new(required("WHATSAPP_VERIFY_TOKEN")?, required("WHATSAPP_APP_SECRET")?)?;

    let (queue, waiting) = mpsc::channel::<IncomingMessage>(QUEUE);
    let worker = tokio::spawn(echo_worker(client, waiting));

    let app = router(config, move |event: Event| {
        let queue = queue.clone();
        async move {
            let Event::Message(incoming) = event else { return Ok(()) };
            // Nothing was tried yet when the queue is full: Meta's redelivery is then safe, and welcome.
            queue.try_send(incoming).map_err(|_| "the echo queue is full")
        }
    });

    let listen = env::var("ECHO_BOT_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "echo bot listening on /webhook");
    axum::serve(listener, app).await?;
    worker.abort();
    Ok(())
}
