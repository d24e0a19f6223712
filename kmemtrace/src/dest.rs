// SPDX-License-Identifier: GPL-2.0-only
//! Writing a new trace directory (`synth`, `convert`, `import-perf`) without risking anything of
//! the user's.
//!
//! The destination must be absent or an empty directory: a non-empty directory, a regular file
//! and a symbolic link (refused, not followed) are errors before anything is written. The output
//! goes into a staging directory beside the destination (`.NAME.kmemtrace-staging-PID-N`), which
//! is renamed onto the destination when it is complete and removed on every other way out (an
//! error of the input half-way, a failed write). So a refused destination, or a failure, leaves
//! the destination exactly as it was: absent, or the empty directory it was. (A process killed
//! while writing leaves the hidden staging directory beside it, never a half-written
//! destination.)
//!
//! The rename is the last check: `rename(2)` moves a directory only onto a missing name or an
//! empty directory, so a destination that someone filled meanwhile is refused, not replaced.

use crate::error::{io_in, io_out, Error, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A staging directory for the destination `dst`; see the module documentation.
pub(crate) struct Staging {
    /// The destination, as the user named it (normalised: no trailing `/`, no `.` components).
    dst: PathBuf,
    /// The staging directory beside it.
    dir: PathBuf,
    /// The permission bits of an existing empty destination, which the finished directory keeps.
    mode: Option<u32>,
    /// Whether the staging directory has become the destination.
    committed: bool,
}

/// What `md` is, for [`Error::DestinationNotADirectory`].
fn kind_of(md: &std::fs::Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// `None` when `dst` does not exist, its permission bits when it is an empty directory; an error
/// for anything else. Symbolic links are not followed.
fn check_destination(dst: &Path) -> Result<Option<u32>> {
    match std::fs::symlink_metadata(dst) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_out(dst, "cannot inspect the destination")(e)),
        Ok(md) if md.is_dir() => {
            let mut entries =
                std::fs::read_dir(dst).map_err(io_out(dst, "cannot list the destination"))?;
            if entries.next().is_some() {
                return Err(Error::DestinationNotEmpty { path: dst.into() });
            }
            Ok(Some(md.permissions().mode() & 0o7777))
        }
        Ok(md) => Err(Error::DestinationNotADirectory {
            path: dst.into(),
            what: kind_of(&md),
        }),
    }
}

impl Staging {
    /// Check `dst` (absent or an empty directory) and make the staging directory beside it,
    /// creating missing parent directories.
    pub(crate) fn new(dst: &Path) -> Result<Staging> {
        // "out/" and "out/." name the directory "out": rename(2) needs a last component.
        let mut dst: PathBuf = dst.components().collect();
        let mode = check_destination(&dst)?;
        if dst.file_name().is_none() {
            // "..", "x/..": an existing (empty) directory; its real name is what is replaced.
            dst = std::fs::canonicalize(&dst).map_err(io_out(&dst, "cannot resolve"))?;
        }
        let Some(name) = dst.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(Error::DestinationNotEmpty { path: dst });
        };
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_out(&parent, "cannot create"))?;
        let pid = std::process::id();
        let mut n = 0u32;
        let dir = loop {
            let dir = parent.join(format!(".{name}.kmemtrace-staging-{pid}-{n}"));
            // Created 0777 minus the umask, as the destination itself would be.
            match std::fs::DirBuilder::new().create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io_out(&dir, "cannot create a staging directory")(e)),
            }
        };
        Ok(Staging {
            dst,
            dir,
            mode,
            committed: false,
        })
    }

    /// The name a file of the destination is shown by in messages: the path it will have.
    pub(crate) fn shown(&self, name: &str) -> PathBuf {
        self.dst.join(name)
    }

    /// Create the new file `name` in the staging directory, buffered.
    pub(crate) fn create(&self, name: &str) -> Result<std::io::BufWriter<std::fs::File>> {
        let f = std::fs::File::create_new(self.dir.join(name))
            .map_err(io_out(self.shown(name), "cannot create"))?;
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    }

    /// Write the new file `name` with `bytes`.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut w = self.create(name)?;
        w.write_all(bytes)
            .and_then(|_| w.flush())
            .map_err(io_out(self.shown(name), "cannot write"))
    }

    /// Copy the input file `from` to the new file `name` (a read error is the input's, a write
    /// error the output's).
    pub(crate) fn copy(&self, from: &Path, name: &str) -> Result<()> {
        let bytes = std::fs::read(from).map_err(io_in(from, "cannot read"))?;
        self.write(name, &bytes).map_err(|e| match e {
            Error::Io {
                path, side, source, ..
            } => Error::Io {
                path,
                what: "cannot copy to",
                side,
                source,
            },
            e => e,
        })
    }

    /// Rename the finished staging directory onto the destination.
    pub(crate) fn commit(mut self) -> Result<()> {
        if let Some(mode) = self.mode {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode))
                .map_err(io_out(&self.dir, "cannot set the permissions of"))?;
        }
        match std::fs::rename(&self.dir, &self.dst) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            // Filled (or replaced by a file) since it was checked: still refused, not replaced.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Err(Error::DestinationNotEmpty {
                    path: self.dst.clone(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                Err(Error::DestinationNotADirectory {
                    path: self.dst.clone(),
                    what: std::fs::symlink_metadata(&self.dst)
                        .map_or("not a directory", |md| kind_of(&md)),
                })
            }
            Err(e) => Err(io_out(
                &self.dst,
                "cannot rename the staging directory onto",
            )(e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Only what this process wrote is in there.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_committed_staging_directory_becomes_the_destination() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("a/b/out/");
        let s = Staging::new(&dst).unwrap();
        s.write("x", b"1").unwrap();
        assert!(!dst.exists());
        s.commit().unwrap();
        assert_eq!(entries(&dst), ["x"]);
        assert_eq!(entries(&t.path().join("a/b")), ["out"]);
    }

    #[test]
    fn an_empty_destination_is_replaced_and_keeps_its_permissions() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("out");
        std::fs::create_dir(&dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o750)).unwrap();
        let s = Staging::new(&dst).unwrap();
        s.write("x", b"1").unwrap();
        s.commit().unwrap();
        assert_eq!(entries(&dst), ["x"]);
        let mode = std::fs::metadata(&dst).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn a_dropped_staging_directory_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("out");
        std::fs::create_dir(&dst).unwrap();
        let s = Staging::new(&dst).unwrap();
        s.write("x", b"1").unwrap();
        drop(s);
        assert_eq!(entries(t.path()), ["out"]);
        assert!(entries(&dst).is_empty());
    }

    #[test]
    fn a_destination_filled_meanwhile_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("out");
        let s = Staging::new(&dst).unwrap();
        s.write("x", b"1").unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(dst.join("mine"), b"keep").unwrap();
        assert!(matches!(s.commit(), Err(Error::DestinationNotEmpty { .. })));
        assert_eq!(entries(&dst), ["mine"]);
        assert_eq!(entries(t.path()), ["out"]);
    }

    #[test]
    fn files_and_symbolic_links_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        std::fs::write(&file, b"mine").unwrap();
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&empty, &link).unwrap();
        let dangling = t.path().join("dangling");
        std::os::unix::fs::symlink(t.path().join("nowhere"), &dangling).unwrap();
        for (p, what) in [
            (&file, "a regular file"),
            (&link, "a symbolic link"),
            (&dangling, "a symbolic link"),
        ] {
            match Staging::new(p) {
                Err(Error::DestinationNotADirectory { what: w, .. }) => assert_eq!(w, what),
                Err(e) => panic!("{}: {e}", p.display()),
                Ok(_) => panic!("{}: accepted", p.display()),
            }
        }
        assert_eq!(entries(t.path()), ["dangling", "empty", "file", "link"]);
        assert!(entries(&empty).is_empty());
    }
}
