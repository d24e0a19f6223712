// SPDX-License-Identifier: GPL-2.0-only
//! Per-run scratch directories under the system's temp directory (the 9p share, the QMP socket,
//! the initramfs of a probe), and the removal of those a killed kmt left behind.
//!
//! Each scratch directory holds a `kmt.lock` file that its run keeps locked (an advisory `flock`,
//! released by the kernel however the process ends). At the next start, any `kmt-*` scratch
//! directory whose lock nobody holds, or that never got one and is older than a minute, is what
//! a killed kmt left: it is removed (without following links the guest may have planted).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The prefixes of kmt's scratch directories.
pub const PREFIXES: &[&str] = &["kmt-run-", "kmt-kvm-probe-"];

const LOCK: &str = "kmt.lock";

/// A scratch directory, removed when dropped; its lock is held until then.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    /// A new scratch directory named `<prefix>XXXXXX` under `base`, locked.
    pub fn new_in(base: &Path, prefix: &str) -> io::Result<Scratch> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(base)?;
        let lock = File::create(dir.path().join(LOCK))?;
        lock.lock()?;
        Ok(Scratch { dir, _lock: lock })
    }

    /// A new scratch directory under the system's temp directory.
    pub fn new(prefix: &str) -> io::Result<Scratch> {
        Scratch::new_in(&std::env::temp_dir(), prefix)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the scratch directories under `base` that no running kmt holds; returns them.
pub fn sweep_in(base: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(base) else {
        return removed;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        // Only real directories of ours: never follow a link someone put in /tmp.
        let Ok(meta) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !meta.is_dir() || !owned_by_us(&meta) {
            continue;
        }
        let stale = match File::open(e.path().join(LOCK)) {
            Ok(lock) => lock.try_lock().is_ok(),
            // A directory made a moment ago may not have its lock yet.
            Err(_) => meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
        };
        if stale && fs::remove_dir_all(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Sweeps the system's temp directory, logging what it removed.
pub fn sweep() {
    for p in sweep_in(&std::env::temp_dir()) {
        tracing::info!("removed {}, left by a kmt that was killed", p.display());
    }
}

fn owned_by_us(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    meta.uid() == unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_run_s_scratch_is_removed_a_live_one_is_kept() {
        let base = tempfile::tempdir().unwrap();
        let live = Scratch::new_in(base.path(), "kmt-run-").unwrap();
        // What a killed kmt leaves: the directory and its lock file, no lock held.
        let dead = base.path().join("kmt-run-dead");
        fs::create_dir(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        fs::create_dir(dead.join("share")).unwrap();
        std::os::unix::fs::symlink("/etc", dead.join("share/etc")).unwrap();
        // Not ours by name.
        let other = base.path().join("someone-else");
        fs::create_dir(&other).unwrap();
        // Just made, not yet locked: kept.
        let young = base.path().join("kmt-run-young");
        fs::create_dir(&young).unwrap();
        let removed = sweep_in(base.path());
        assert_eq!(removed, [dead]);
        assert!(live.path().is_dir());
        assert!(other.is_dir() && young.is_dir());
        assert!(
            Path::new("/etc").is_dir(),
            "the planted link was not followed"
        );
    }

    #[test]
    fn a_dropped_scratch_is_gone() {
        let base = tempfile::tempdir().unwrap();
        let s = Scratch::new_in(base.path(), "kmt-run-").unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
    }
}
