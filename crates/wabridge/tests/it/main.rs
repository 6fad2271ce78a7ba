//! Tests of the `wabridge` binary itself: what a user runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod migrate;
mod sending_crash;
mod signals;
mod sigterm;
mod walkthrough;

/// `wabridge serve` in a fresh directory `wabridge-{name}-{pid}` under the temp dir (a store left by an
/// earlier run removed), listening on a free port, with nothing from the environment but `PATH` and
/// `RUST_LOG=error`: add its variables and stdio, then spawn. Returns the command, the directory and the port.
fn serve_command(name: &str) -> (std::process::Command, std::path::PathBuf, u16) {
    let dir = std::env::temp_dir().join(format!("wabridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wabridge"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error");
    (command, dir, port)
}
