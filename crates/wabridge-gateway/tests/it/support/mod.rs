//! Test support shared by the integration tests.

pub mod backend;
pub mod fake_meta;
pub mod gateway;
pub mod raw_http;
pub mod sending;
