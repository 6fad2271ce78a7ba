//! Integration tests of the sandbox: the real server on 127.0.0.1:0, driven through the
//! `wabridge-cloud` SDK (raw HTTP where the SDK has no call, or refuses to send what is tested), with a
//! webhook receiver that checks every signature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod chaos;
mod control;
mod limits;
mod media;
mod messages;
mod numbers;
mod paths;
mod templates;
mod webhooks;
