// SPDX-License-Identifier: GPL-2.0-only
//! Bringing the guest's files back from the 9p share, treating all of it as hostile input.
//!
//! The guest runs code kmt did not write (a user's kernel tree, a reproducer from a bug report, a
//! pull request's workload), and QEMU runs as the user running kmt, often root. So:
//!
//! - QEMU exports the share with `security_model=mapped-xattr` ([`crate::qemu::plan9_args`]): the
//!   owners, modes and file types the guest asks for are kept in `user.virtfs.*` extended
//!   attributes, never applied to the host files. A guest's set-uid file, symbolic link, FIFO or
//!   device node is an ordinary 0600 file on the host.
//! - Only the names the contract gives (docs/contracts.md §1–2) are taken: `status`, `guest.log`,
//!   and in `trace/` the files `meta.json`, `kallsyms`, `cpu<N>.out` for the CPUs the guest
//!   was given, and `allocinfo.before` / `allocinfo.after` (kernels with memory allocation
//!   profiling). Each must be a regular file on the host, opened without following links, with one
//!   link, no more bytes than its kind may have, and (by the guest's mode in the xattr) a regular
//!   file without set-uid, set-gid, sticky or execute bits.
//! - What is taken is copied into new files that kmt creates (mode 0666 less the umask, owned by
//!   whoever runs kmt); the share's files are never moved, renamed or followed. Everything else
//!   the guest left is listed in the manifest as rejected, with the reason, and deleted with the
//!   run's scratch directory.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;

/// The trace directory's name on the share and in the output directory.
pub const TRACE_DIR: &str = "trace";

/// The largest file of each kind kmt takes (a guest could otherwise fill the host's disk).
const MAX_STATUS: u64 = 4 << 10;
const MAX_LOG: u64 = 64 << 20;
const MAX_META: u64 = 1 << 20;
const MAX_KALLSYMS: u64 = 256 << 20;
/// init refuses a /proc/allocinfo larger than this (guest-tools/init.c, ALLOCINFO_MAX).
const MAX_ALLOCINFO: u64 = 8 << 20;
const MAX_CPU_FILE: u64 = 16 << 30;

/// The guest's mode of a file, as QEMU's mapped-xattr security model records it.
const MODE_XATTR: &str = "user.virtfs.mode";

/// Something the guest left that kmt did not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The path relative to the share.
    pub path: String,
    /// Why it was not taken.
    pub why: String,
}

/// What came back from the share.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Intake {
    /// Files copied into the output directory (relative paths).
    pub taken: Vec<String>,
    /// What the guest left and kmt did not take.
    pub rejected: Vec<Rejected>,
}

/// How many bytes a file named `rel` may have, or None when the name is not one kmt takes.
/// `cpus` is the number of vCPUs the guest had. Pure.
pub fn allowed(rel: &str, cpus: u32) -> Option<u64> {
    match rel {
        "status" => Some(MAX_STATUS),
        "guest.log" => Some(MAX_LOG),
        _ => {
            let name = rel.strip_prefix(TRACE_DIR)?.strip_prefix('/')?;
            match name {
                "meta.json" => Some(MAX_META),
                "kallsyms" => Some(MAX_KALLSYMS),
                "allocinfo.before" | "allocinfo.after" => Some(MAX_ALLOCINFO),
                _ => {
                    let n = name.strip_prefix("cpu")?.strip_suffix(".out")?;
                    // Decimal, no sign, no leading zeros: cpu0.out … cpu<cpus-1>.out.
                    let ok = !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && (n == "0" || !n.starts_with('0'));
                    let cpu: u32 = n.parse().ok().filter(|_| ok)?;
                    (cpu < cpus).then_some(MAX_CPU_FILE)
                }
            }
        }
    }
}

/// Why the guest's mode (from the xattr) makes a file unacceptable, if it does. Pure.
pub fn mode_problem(mode: u32) -> Option<String> {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFLNK => Some("a symbolic link"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFDIR => Some("a directory"),
        _ => Some("not a regular file"),
    };
    if let Some(k) = kind {
        return Some(format!("{k} in the guest (mode {mode:o})"));
    }
    let special = mode & 0o7111;
    (special != 0).then(|| {
        format!(
            "the guest gave it mode {:o} (set-uid, set-gid, sticky or execute bits)",
            mode & 0o7777
        )
    })
}

/// The guest's mode of the open file, from the mapped-xattr attribute (None when there is none,
/// as for files the host made).
fn guest_mode(f: &File) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let name = CString::new(MODE_XATTR).ok()?;
    let mut buf = [0u8; 4];
    // SAFETY: fgetxattr writes at most buf.len() bytes into buf; fd and name are valid.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    // QEMU stores the mode as a little-endian 32-bit value.
    (n == 4).then(|| u32::from_le_bytes(buf))
}

/// Opens `path` for reading without following a link and without blocking on a FIFO.
fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Takes one file: checks it and copies it to `to`, which must not exist. Err(why) when it is
/// not taken.
fn take_file(from: &Path, to: &Path, limit: u64) -> Result<(), String> {
    let f = open_nofollow(from).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => "a symbolic link on the host".to_string(),
        _ => format!("cannot open it: {e}"),
    })?;
    let meta = f.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file on the host".into());
    }
    if meta.nlink() != 1 {
        return Err(format!("it has {} hard links", meta.nlink()));
    }
    if meta.mode() & 0o7111 != 0 {
        return Err(format!(
            "host mode {:o} has set-uid, set-gid, sticky or execute bits",
            meta.mode() & 0o7777
        ));
    }
    if let Some(why) = guest_mode(&f).and_then(mode_problem) {
        return Err(why);
    }
    if meta.len() > limit {
        return Err(format!(
            "{} bytes, more than the {limit} a file of its kind may have",
            meta.len()
        ));
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    // Never more than the limit, even if the file grows under us.
    io::copy(&mut io::Read::take(&f, limit), &mut out)
        .map_err(|e| format!("cannot copy it to {}: {e}", to.display()))?;
    Ok(())
}

/// What a refused entry is, for the report: its type and mode in the guest where QEMU recorded
/// them, else on the host. Reads only metadata, never the content.
fn describe(path: &Path, ft: fs::FileType) -> Option<String> {
    if ft.is_symlink() {
        return Some("a symbolic link on the host".into());
    }
    if !ft.is_file() {
        return Some("not a regular file on the host".into());
    }
    let f = open_nofollow(path).ok()?;
    let links = f.metadata().map(|m| m.nlink()).unwrap_or(1);
    if links > 1 {
        return Some(format!("it has {links} hard links"));
    }
    guest_mode(&f).map(|mode| {
        mode_problem(mode)
            .unwrap_or_else(|| format!("a regular file in the guest (mode {:o})", mode & 0o7777))
    })
}

/// Every entry under `dir`, as paths relative to `root`, directories before their contents,
/// sorted. Does not follow links.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, fs::FileType)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        out.push((rel, ft));
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Copies what the contract allows from `share` into `out_dir` and lists the rest. `ours` are
/// the names kmt itself put on the share (the job, the program), which are neither taken nor
/// reported. `cpus` is the guest's vCPU count.
pub fn take(share: &Path, out_dir: &Path, cpus: u32, ours: &[&str]) -> Intake {
    let mut intake = Intake::default();
    let mut entries = Vec::new();
    walk(share, share, &mut entries);
    for (rel, ft) in entries {
        if ours.contains(&rel.as_str()) {
            continue;
        }
        if rel == TRACE_DIR {
            if ft.is_dir() {
                if let Err(e) = fs::create_dir(out_dir.join(TRACE_DIR)) {
                    intake.rejected.push(Rejected {
                        path: rel,
                        why: format!("cannot create it in the output directory: {e}"),
                    });
                }
            } else {
                intake.rejected.push(Rejected {
                    path: rel,
                    why: "not a directory on the host".into(),
                });
            }
            continue;
        }
        if ft.is_dir() {
            intake.rejected.push(Rejected {
                path: rel,
                why: "a directory the contract does not name".into(),
            });
            continue;
        }
        let Some(limit) = allowed(&rel, cpus) else {
            let what = describe(&share.join(&rel), ft)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            intake.rejected.push(Rejected {
                path: rel,
                why: format!("a name the contract does not give{what}"),
            });
            continue;
        };
        if rel.starts_with(TRACE_DIR) && !out_dir.join(TRACE_DIR).is_dir() {
            continue;
        }
        let to = out_dir.join(&rel);
        match take_file(&share.join(&rel), &to, limit) {
            Ok(()) => intake.taken.push(rel),
            Err(why) => {
                // A partial copy is not the guest's file: leave nothing of it.
                if fs::symlink_metadata(&to).is_ok_and(|m| m.is_file()) {
                    let _ = fs::remove_file(&to);
                }
                intake.rejected.push(Rejected { path: rel, why });
            }
        }
    }
    intake
}

/// Sets a file's guest mode the way QEMU's mapped-xattr model does (for tests).
pub fn set_guest_mode(path: &Path, mode: u32) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let name = CString::new(MODE_XATTR)?;
    let v = mode.to_le_bytes();
    // SAFETY: the pointers are valid for the lengths given.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_the_contract_s_names_are_allowed() {
        assert!(allowed("status", 2).is_some());
        assert!(allowed("guest.log", 2).is_some());
        assert!(allowed("trace/meta.json", 2).is_some());
        assert!(allowed("trace/kallsyms", 2).is_some());
        assert!(allowed("trace/allocinfo.before", 2).is_some());
        assert!(allowed("trace/allocinfo.after", 2).is_some());
        assert!(allowed("trace/allocinfo", 2).is_none());
        assert!(allowed("trace/cpu0.out", 2).is_some());
        assert!(allowed("trace/cpu1.out", 2).is_some());
        for bad in [
            "trace/cpu2.out",
            "trace/cpu7.out",
            "trace/cpu01.out",
            "trace/cpu.out",
            "trace/cpu-1.out",
            "trace/cpu+1.out",
            "trace/suid-demo",
            "trace/sub/cpu0.out",
            "cpu0.out",
            "job",
            "trace",
            "tracex/cpu0.out",
        ] {
            assert_eq!(allowed(bad, 2), None, "{bad}");
        }
    }

    #[test]
    fn guest_modes_that_are_not_plain_files_are_refused() {
        assert_eq!(mode_problem(libc::S_IFREG | 0o644), None);
        assert!(mode_problem(libc::S_IFREG | 0o4755)
            .unwrap()
            .contains("set-uid"));
        assert!(mode_problem(libc::S_IFREG | 0o755).is_some());
        assert!(mode_problem(libc::S_IFLNK | 0o777)
            .unwrap()
            .contains("symbolic link"));
        assert!(mode_problem(libc::S_IFIFO | 0o644)
            .unwrap()
            .contains("FIFO"));
        assert!(mode_problem(libc::S_IFCHR | 0o644)
            .unwrap()
            .contains("character device"));
    }

    fn share_with_trace() -> tempfile::TempDir {
        let share = tempfile::tempdir().unwrap();
        fs::create_dir(share.path().join("trace")).unwrap();
        fs::write(share.path().join("trace/cpu0.out"), [0u8; 24]).unwrap();
        fs::write(share.path().join("trace/meta.json"), "{}").unwrap();
        fs::write(share.path().join("status"), "ok\n").unwrap();
        fs::write(share.path().join("job"), "workload=selftest\n").unwrap();
        share
    }

    #[test]
    fn the_contract_s_files_are_copied_with_ordinary_modes() {
        let share = share_with_trace();
        fs::set_permissions(
            share.path().join("trace/cpu0.out"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        assert_eq!(i.taken, ["status", "trace/cpu0.out", "trace/meta.json"]);
        assert!(i.rejected.is_empty(), "{:?}", i.rejected);
        let m = fs::metadata(out.path().join("trace/cpu0.out")).unwrap();
        assert_eq!(m.len(), 24);
        assert_eq!(m.mode() & 0o7111, 0);
        assert!(!out.path().join("job").exists());
        // Copied, not moved: the share is left as it was.
        assert!(share.path().join("trace/cpu0.out").is_file());
    }

    #[test]
    fn a_guest_symlink_is_neither_followed_nor_carried() {
        let share = share_with_trace();
        let secret = tempfile::NamedTempFile::new().unwrap();
        fs::write(secret.path(), "host secret").unwrap();
        std::os::unix::fs::symlink(secret.path(), share.path().join("trace/cpu1.out")).unwrap();
        std::os::unix::fs::symlink(secret.path(), share.path().join("guest.log")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        let rejected: Vec<&str> = i.rejected.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(rejected, ["guest.log", "trace/cpu1.out"]);
        assert!(i.rejected.iter().all(|r| r.why.contains("symbolic link")));
        assert!(fs::symlink_metadata(out.path().join("trace/cpu1.out")).is_err());
        assert!(fs::symlink_metadata(out.path().join("guest.log")).is_err());
    }

    #[test]
    fn set_uid_executable_and_hard_linked_files_are_refused() {
        let share = share_with_trace();
        let suid = share.path().join("trace/cpu1.out");
        fs::write(&suid, "x").unwrap();
        fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(share.path().join("job"), share.path().join("guest.log")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        let why = |p: &str| {
            i.rejected
                .iter()
                .find(|r| r.path == p)
                .map(|r| r.why.clone())
                .unwrap_or_default()
        };
        assert!(
            why("trace/cpu1.out").contains("set-uid"),
            "{:?}",
            i.rejected
        );
        assert!(why("guest.log").contains("hard links"), "{:?}", i.rejected);
        assert!(!out.path().join("trace/cpu1.out").exists());
        assert!(!out.path().join("guest.log").exists());
    }

    #[test]
    fn a_fifo_on_the_host_does_not_block_and_is_refused() {
        let share = share_with_trace();
        let fifo = CString::new(
            share
                .path()
                .join("trace/cpu1.out")
                .as_os_str()
                .as_bytes()
                .to_vec(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        assert_eq!(i.rejected.len(), 1, "{:?}", i.rejected);
        assert!(i.rejected[0].why.contains("not a regular file"));
    }

    #[test]
    fn the_guest_s_recorded_mode_is_honoured() {
        let share = share_with_trace();
        let planted = share.path().join("trace/cpu1.out");
        fs::write(&planted, "/etc/hostname").unwrap();
        // What QEMU's mapped-xattr model makes of a guest's symlink: a plain host file whose
        // attribute says it is a link. Skipped where the filesystem has no user xattrs.
        if set_guest_mode(&planted, libc::S_IFLNK | 0o777).is_err() {
            eprintln!("no user xattrs on this filesystem; skipped");
            return;
        }
        set_guest_mode(&share.path().join("trace/cpu0.out"), libc::S_IFREG | 0o644).unwrap();
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        assert_eq!(i.rejected.len(), 1, "{:?}", i.rejected);
        assert!(i.rejected[0].why.contains("symbolic link in the guest"));
        assert!(out.path().join("trace/cpu0.out").is_file());
    }

    #[test]
    fn unexpected_names_and_directories_are_reported() {
        let share = share_with_trace();
        fs::write(share.path().join("trace/cpu7.out"), "x").unwrap();
        fs::create_dir(share.path().join("trace/sub")).unwrap();
        fs::write(share.path().join("trace/sub/f"), "x").unwrap();
        fs::write(share.path().join("planted"), "x").unwrap();
        let out = tempfile::tempdir().unwrap();
        let i = take(share.path(), out.path(), 2, &["job"]);
        let rejected: Vec<&str> = i.rejected.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            rejected,
            ["planted", "trace/cpu7.out", "trace/sub", "trace/sub/f"]
        );
        assert!(!out.path().join("planted").exists());
    }
}
