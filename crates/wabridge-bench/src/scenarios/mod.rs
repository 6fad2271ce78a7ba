//! The benchmark scenarios.

mod enqueue;
mod fanout;
mod ingest;
mod noop;
mod outbound;
mod ready;
mod sandbox;

pub use enqueue::{EnqueueArgs, enqueue};
pub use fanout::{FanoutArgs, fanout};
pub use ingest::{IngestArgs, ingest};
pub use noop::noop;
pub use outbound::{OutboundArgs, outbound};
pub use ready::{ReadyArgs, ready};
pub use sandbox::sandbox;

use serde::Serialize;

/// `listener` with `TCP_NODELAY` on every accepted connection, as the gateway's and the sandbox's own.
fn nodelay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, impl FnMut(&mut tokio::net::TcpStream) + Send + 'static> {
    axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

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

/// The machine's 1, 5 and 15-minute load averages (Linux), to tell a busy machine's figures apart.
#[must_use]
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
