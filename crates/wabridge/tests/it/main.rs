//! Tests of the `wabridge` binary itself: what a user runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod sending_crash;
mod signals;
mod walkthrough;
