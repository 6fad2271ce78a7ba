//! Test support shared by the integration tests.

pub mod backend;
pub mod gateway;
pub mod sending;
