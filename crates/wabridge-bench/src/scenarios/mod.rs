//! The benchmark scenarios.

mod fanout;
mod ingest;
mod noop;
mod ready;
mod sandbox;

pub use fanout::{FanoutArgs, fanout};
pub use ingest::{IngestArgs, ingest};
pub use noop::noop;
pub use ready::{ReadyArgs, ready};
pub use sandbox::sandbox;

use serde::Serialize;

use crate::load::LoadReport;

/// One result line.
#[derive(Debug, Serialize)]
pub struct Result {
    pub scenario: &'static str,
    /// What was measured under which settings (durability mode, levels, …).
    pub setup: serde_json::Value,
    #[serde(flatten)]
    pub load: LoadReport,
    pub machine: Machine,
}

/// Where a result was measured.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: &'static str,
}

impl Machine {
    /// This machine.
    #[must_use]
    pub fn here() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            os: std::env::consts::OS,
        }
    }
}
