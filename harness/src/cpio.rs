// SPDX-License-Identifier: GPL-2.0-only
//! The initramfs: a manifest (gen_init_cpio's line format) and a cpio "newc" writer.
//!
//! Pure: parsing takes text, writing takes entries with their contents and returns bytes, so the
//! same manifest always gives the same archive (every mtime is 0).

use std::path::{Path, PathBuf};

/// One thing in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    /// A device node: `kind` is `b'c'` or `b'b'`.
    Node {
        path: String,
        mode: u32,
        kind: u8,
        major: u32,
        minor: u32,
    },
    /// A regular file whose bytes come from `source` (relative to the guest-tools build dir).
    File {
        path: String,
        source: PathBuf,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
        mode: u32,
    },
}

/// A manifest line that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {what}")]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

/// Parses a manifest: `dir PATH MODE UID GID`, `nod PATH MODE UID GID c|b MAJ MIN`,
/// `file PATH SOURCE MODE UID GID`, `slink PATH TARGET MODE UID GID`; `#` starts a comment.
/// Owners must be 0: the guest runs everything as root and a reproducible image wants no others.
pub fn parse_manifest(file: &Path, text: &str) -> Result<Vec<Entry>, ManifestError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |what: String| ManifestError {
            file: file.to_path_buf(),
            line: i + 1,
            what,
        };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let mode =
            |s: &str| u32::from_str_radix(s, 8).map_err(|_| err(format!("bad octal mode {s:?}")));
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| err(format!("bad number {s:?}")))
        };
        let owners = |u: &str, g: &str| {
            if u == "0" && g == "0" {
                Ok(())
            } else {
                Err(err(format!("owner {u}:{g}: only 0 0 is supported")))
            }
        };
        let want = |n: usize| {
            if w.len() == n {
                Ok(())
            } else {
                Err(err(format!(
                    "`{}` takes {} fields, found {}",
                    w[0],
                    n - 1,
                    w.len() - 1
                )))
            }
        };
        let entry = match w[0] {
            "dir" => {
                want(5)?;
                owners(w[3], w[4])?;
                Entry::Dir {
                    path: w[1].into(),
                    mode: mode(w[2])?,
                }
            }
            "nod" => {
                want(8)?;
                owners(w[3], w[4])?;
                let kind = match w[5] {
                    "c" => b'c',
                    "b" => b'b',
                    k => return Err(err(format!("device kind {k:?} is neither c nor b"))),
                };
                Entry::Node {
                    path: w[1].into(),
                    mode: mode(w[2])?,
                    kind,
                    major: num(w[6])?,
                    minor: num(w[7])?,
                }
            }
            "file" => {
                want(6)?;
                owners(w[4], w[5])?;
                Entry::File {
                    path: w[1].into(),
                    source: w[2].into(),
                    mode: mode(w[3])?,
                }
            }
            "slink" => {
                want(6)?;
                owners(w[4], w[5])?;
                Entry::Symlink {
                    path: w[1].into(),
                    target: w[2].into(),
                    mode: mode(w[3])?,
                }
            }
            other => return Err(err(format!("unknown entry type {other:?}"))),
        };
        out.push(entry);
    }
    Ok(out)
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

/// Writes a newc archive. `contents` gives the bytes of each `File` entry, in order.
pub fn write_newc(entries: &[Entry], mut contents: impl FnMut(&Entry) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, e) in (1u32..).zip(entries) {
        let (path, mode, rdev, data) = match e {
            Entry::Dir { path, mode } => (path, S_IFDIR | mode, (0, 0), Vec::new()),
            Entry::Node {
                path,
                mode,
                kind,
                major,
                minor,
            } => {
                let t = if *kind == b'c' { S_IFCHR } else { S_IFBLK };
                (path, t | mode, (*major, *minor), Vec::new())
            }
            Entry::File { path, mode, .. } => (path, S_IFREG | mode, (0, 0), contents(e)),
            Entry::Symlink { path, target, mode } => {
                (path, S_IFLNK | mode, (0, 0), target.as_bytes().to_vec())
            }
        };
        let nlink = if matches!(e, Entry::Dir { .. }) { 2 } else { 1 };
        push_member(
            &mut out,
            ino,
            path.trim_start_matches('/'),
            mode,
            nlink,
            rdev,
            &data,
        );
    }
    push_member(&mut out, 0, "TRAILER!!!", 0, 1, (0, 0), &[]);
    out
}

fn push_member(
    out: &mut Vec<u8>,
    ino: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: 0 for a reproducible archive
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\
# comment
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
file /init init 0755 0 0   # trailing comment
slink /bin/sh /init 0777 0 0
";

    #[test]
    fn manifest_parses() {
        let e = parse_manifest(Path::new("m"), MANIFEST).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[1],
            Entry::Node {
                path: "/dev/console".into(),
                mode: 0o600,
                kind: b'c',
                major: 5,
                minor: 1
            }
        );
    }

    #[test]
    fn manifest_errors_name_the_line() {
        let e = parse_manifest(Path::new("m"), "dir /a 0755 0 0\nfile /x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("m:2:"), "{e}");
        assert!(parse_manifest(Path::new("m"), "dir /a 0999 0 0").is_err());
        assert!(parse_manifest(Path::new("m"), "dir /a 0755 1 0").is_err());
        assert!(parse_manifest(Path::new("m"), "pipe /a 0755 0 0").is_err());
    }

    #[test]
    fn the_repository_manifest_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/initramfs.manifest");
        let text = std::fs::read_to_string(&path).unwrap();
        let e = parse_manifest(&path, &text).unwrap();
        assert!(e
            .iter()
            .any(|e| matches!(e, Entry::File { path, .. } if path == "/init")));
        assert!(e
            .iter()
            .any(|e| matches!(e, Entry::Node { path, .. } if path == "/dev/console")));
    }

    #[test]
    fn newc_layout_is_aligned_and_ends_with_trailer() {
        let e = parse_manifest(Path::new("m"), MANIFEST).unwrap();
        let a = write_newc(&e, |_| b"hello".to_vec());
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        let trailer = a.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
        assert!(trailer > 0);
        // The file's data follows its name, 4-aligned.
        let name = a.windows(5).position(|w| w == b"init\0").unwrap();
        let data = a.windows(5).position(|w| w == b"hello").unwrap();
        assert_eq!(data % 4, 0);
        assert!(data > name);
    }

    #[test]
    fn newc_is_readable_by_cpio() {
        // The system cpio is the independent judge; skip where it is not installed.
        let Ok(out) = std::process::Command::new("cpio").arg("--version").output() else {
            return;
        };
        assert!(out.status.success());
        let e = parse_manifest(Path::new("m"), MANIFEST).unwrap();
        let a = write_newc(&e, |_| b"hello".to_vec());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.cpio");
        std::fs::write(&f, &a).unwrap();
        let list = duct::cmd!("cpio", "-itv", "-F", &f)
            .stderr_null()
            .read()
            .unwrap();
        let names: Vec<&str> = list
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert!(list.contains("dev/console"), "{list}");
        assert!(list.contains("-rwxr-xr-x"), "{list}");
        assert!(names.contains(&"init"), "{list}");
        assert!(list.contains("bin/sh -> /init"), "{list}");
    }
}
