// SPDX-License-Identifier: GPL-2.0-only
//! kmt: build a kmemtrace kernel, boot it under QEMU, collect the trace over virtio-9p and
//! analyse it with the `kmemtrace` crate, for every architecture in [`arch::ARCHES`].
//!
//! The binary (`src/main.rs`) is a thin clap layer over [`run::run`] and friends; the test matrix
//! calls the same functions.
//!
//! Nothing here prints on stdout (the binary's results go through its one writer, which a
//! closed stdout does not make panic); progress and logs go to stderr.
#![cfg_attr(not(test), deny(clippy::print_stdout))]

pub mod analysis;
pub mod apt;
pub mod arch;
pub mod bench;
pub mod bisect;
pub mod cache;
pub mod compare;
pub mod cpio;
pub mod doctor;
pub mod error;
pub mod fetch;
pub mod image;
pub mod kernel;
pub mod kernels;
pub mod known_answers;
pub mod manifest;
pub mod matrix;
#[cfg(test)]
#[path = "../../kmemtrace/src/module_graph.rs"]
mod module_graph;
pub mod outcome;
pub mod proc;
pub mod program;
pub mod qemu;
pub mod run;
pub mod scratch;
pub mod share;
pub mod tree;
pub mod usage;
pub mod verdict;
pub mod vm;
pub mod workload;

use std::path::{Path, PathBuf};

/// Finds the kmt repository (the directory with `kernel/config/` and `guest-tools/`):
/// `$KMT_REPO`, else the current directory or one of its parents, else where this crate was built.
pub fn find_repo() -> Option<PathBuf> {
    let is_repo = |p: &Path| p.join("kernel/config").is_dir() && p.join("guest-tools").is_dir();
    if let Some(r) = std::env::var_os("KMT_REPO").map(PathBuf::from) {
        return is_repo(&r).then_some(r);
    }
    let cwd = std::env::current_dir().ok()?;
    if let Some(found) = cwd.ancestors().find(|p| is_repo(p)) {
        return Some(found.to_path_buf());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    is_repo(built).then(|| built.to_path_buf())
}
