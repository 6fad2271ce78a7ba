//! Integration tests of the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod callbacks;
mod events;
mod intake;
mod reconcile;
mod retention;
mod sending;
mod sending_limits;
mod status_events;
mod store;
mod tls;
