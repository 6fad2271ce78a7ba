//! The integration tests of `wabridge-types`, one binary with a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod error;
mod reference;
mod response;
mod send;
mod signature;
mod webhook;
