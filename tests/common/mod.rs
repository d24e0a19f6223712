// SPDX-License-Identifier: GPL-2.0-only
//! What the trial binaries (`tests/e2e.rs`, `tests/host.rs`) share.

use std::path::PathBuf;

/// The repository: from the environment at run time (cargo and nextest set it; a nextest archive
/// run elsewhere remaps it), else where this binary was built.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
