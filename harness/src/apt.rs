// SPDX-License-Identifier: GPL-2.0-only
//! apt and dpkg as kmt uses them: a private sources list and state of its own (so the system's
//! apt configuration is never edited), and Debian's version order.

use crate::proc::Cmd;
use std::path::Path;

/// The options that point apt at kmt's private sources list and state under `dir`.
pub fn private_apt_options(dir: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        format!(
            "Dir::Etc::sourcelist={}",
            dir.join("sources.list").display()
        ),
        "-o".into(),
        "Dir::Etc::sourceparts=/nonexistent".into(),
        "-o".into(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        "-o".into(),
        format!("Dir::Cache={}", dir.join("cache").display()),
    ]
}

/// Debian's version order (`dpkg --compare-versions`).
pub fn dpkg_compare(a: &str, b: &str) -> std::cmp::Ordering {
    if a == b {
        std::cmp::Ordering::Equal
    } else if dpkg_older(a, b) {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Greater
    }
}

/// Whether Debian version `a` is older than `b`.
pub fn dpkg_older(a: &str, b: &str) -> bool {
    Cmd::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .read()
        .is_ok()
}
