//! Access to `shared/reference`, which sits beside the repository (CI always has it).

use std::path::PathBuf;

/// The path of a file under `shared/reference`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference")).join(name)
}

/// A reference JSON file, parsed.
pub fn json(name: &str) -> serde_json::Value {
    let p = path(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading {} (shared/ must sit beside the repository): {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}
