//! Integration tests of the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod intake;
mod retention;
mod store;
mod tls;
