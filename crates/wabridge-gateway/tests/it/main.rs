//! Integration tests of the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod callbacks;
mod cloud_compat;
mod durability;
mod events;
mod health;
mod intake;
mod intake_limits;
mod intake_shutdown;
mod media;
mod news;
mod reconcile;
mod reload;
mod retention;
mod sending;
mod sending_limits;
mod sending_resilience;
mod settings;
mod status_events;
mod store;
mod templates;
mod tls;
mod v1_api;
