//! An async Rust SDK for the WhatsApp Business Cloud API.
//!
//! - [`Client`]: send any message, mark messages read (with a typing indicator), upload, look up, download
//!   and delete media, list (all pages), create and delete templates, list phone numbers, read a number's
//!   throughput level, register and deregister, read and update the business profile, and manage the
//!   WABA's webhook subscription. Every call returns `Result<_, `[`CloudError`]`>`; Meta's errors come back
//!   as the typed [`wabridge_types::GraphError`] with a classification that says whether retrying helps.
//! - [`RetryPolicy`] (opt-in): retries retryable errors with exponential backoff and jitter, never sooner
//!   than the error class asks (131056 waits at least 6 s).
//! - [`limiter`]: per-number GCRA at the number's level (80 / 1,000 / 20 messages per second) and the
//!   per-recipient pair limit, usable on its own.
//! - [`webhook`]: typed webhook events and, with the `axum` feature, a router that answers Meta's
//!   verification, checks `X-Hub-Signature-256` and calls your handler.
//!
//! The access token goes only in the `Authorization` header; it never appears in a URL, a log line or
//! `Debug` output.
//!
//! ```no_run
//! use wabridge_cloud::Client;
//! use wabridge_types::{PhoneNumberId, send::OutboundMessage};
//!
//! # async fn run() -> Result<(), wabridge_cloud::CloudError> {
//! let client = Client::builder().access_token("EAAG…").build()?;
//! let from = PhoneNumberId::new("106540352242922");
//! let sent = client.send_message(&from, &OutboundMessage::text("16505551234", "Your order has shipped")).await?;
//! println!("sent {:?}", sent.message_id());
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
pub mod limiter;
mod ops;
#[cfg(feature = "receiver")]
pub mod receiver;
mod request;
mod retry;
pub mod time;
mod token;
pub mod webhook;

pub use client::{
    Client, ClientBuilder, DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_MEDIA_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_USER_AGENT,
};
pub use error::{CloudError, MediaError, is_appsecret_proof_refusal, is_unreachable_node};
pub use ops::{BUSINESS_PROFILE_FIELDS, MediaDownload, TemplateFilter, check_media};
pub use retry::RetryPolicy;
pub use token::{AccessToken, AppSecret, AppSecretProvider, StaticToken, TokenError, TokenProvider};
pub use wabridge_types;
