//! The integration tests of `wabridge-cloud`, one binary with a module per concern. Every client test talks
//! HTTP to an in-process server on 127.0.0.1 that records each request and answers canned responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod harness;
mod limiter;
mod media;
mod messages;
mod numbers;
#[cfg(feature = "receiver")]
mod receiver;
mod retry;
mod templates;
mod token;
#[cfg(feature = "axum")]
mod webhook;
