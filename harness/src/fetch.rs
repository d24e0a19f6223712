// SPDX-License-Identifier: GPL-2.0-only
//! Kernel sources: Debian's `linux-source-<version>` packages, downloaded by apt through a private
//! sources list and state in kmt's cache (Debian 12's own suites for 6.12 and 6.1, trixie-backports
//! for 7.3, which a Debian 12 machine does not use), checked by apt against the archive's signed
//! indices, unpacked with `dpkg-deb` and never installed. The system's apt configuration and
//! packages are not touched, and no root is needed.
//!
//! The series names the version it was made against (`SOURCE`); when the archive no longer has
//! it (a newer point release replaced it), the newest of the same series (`7.3.y`) is fetched
//! instead, said in a warning and recorded with its sha256 in the entry, and the build's
//! manifest names it; whether the series applies to it decides the rest (a `patch` failure names
//! the patch and `--kernel-src`).

use crate::cache::{Cache, CacheError, KeyBuilder};
use crate::kernels::KernelVersion;
use crate::proc::{Cmd, CommandFailed};
use std::fs;
use std::path::{Path, PathBuf};

/// The cache kind of fetched sources: one entry per package and version.
const KIND: &str = "debs";

/// The file in an entry that says what it holds (`key=value` lines, like `SOURCE`).
const ABOUT: &str = "kmt-source";

/// Why a source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The archive has no version to fetch, or what it gave is not usable.
    #[error("cannot fetch {package} {version}: {why}")]
    Unavailable {
        package: &'static str,
        version: String,
        why: String,
    },
    /// A file of kmt's private apt state or of the entry could not be written or read.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// apt-get, dpkg-deb or sha256sum failed.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.into(),
        source,
    }
}

/// A fetched source tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub tarball: PathBuf,
    /// The Debian version fetched: the pinned one, or the newer point release that replaced it.
    pub version: String,
}

/// The cache key of `package` at `version`.
fn entry_key(package: &str, version: &str) -> String {
    let mut k = KeyBuilder::default();
    k.text("package", package).text("version", version);
    k.key()
}

/// The tarball's file name inside the package (`/usr/src/linux-source-7.3.tar.xz`).
fn tarball_name(kernel: &KernelVersion) -> &'static str {
    kernel.tarball.rsplit('/').next().unwrap_or(kernel.tarball)
}

/// What an entry holds, read from its `kmt-source` file.
fn read_entry(dir: &Path, kernel: &KernelVersion) -> Option<Fetched> {
    let about = crate::kernels::parse_source(&fs::read_to_string(dir.join(ABOUT)).ok()?);
    let tarball = dir.join(tarball_name(kernel));
    (about.get("package").map(String::as_str) == Some(kernel.package) && tarball.is_file()).then(
        || Fetched {
            tarball,
            version: about.get("version").cloned().unwrap_or_default(),
        },
    )
}

/// The fetched source of `kernel` already in the cache, without the network: the pinned
/// version's, else the newest fetched in its place.
pub fn find(cache: &Cache, kernel: &KernelVersion) -> Option<Fetched> {
    let pinned = kernel.debian_version();
    if let Ok(Some(dir)) = cache.lookup(KIND, &entry_key(kernel.package, pinned)) {
        return read_entry(&dir, kernel);
    }
    let mut found: Vec<Fetched> = fs::read_dir(cache.root.join(KIND))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_entry(&e.path(), kernel))
        .collect();
    found.sort_by(|a, b| crate::apt::dpkg_compare(&a.version, &b.version));
    found.pop()
}

/// The suites kernel sources come from, by the name `KernelVersion::suite` gives, and the lines
/// of kmt's private sources list for each.
pub const SUITES: &[(&str, &[&str])] = &[
    (
        "bookworm",
        &[
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ],
    ),
    (
        "trixie-backports",
        &["deb http://deb.debian.org/debian trixie-backports main"],
    ),
];

/// The sources list of kmt's private apt state for `suite` (empty for a suite not in `SUITES`).
pub fn sources_list(suite: &str) -> String {
    SUITES
        .iter()
        .filter(|(name, _)| *name == suite)
        .flat_map(|(_, lines)| lines.iter().map(|l| format!("{l}\n")))
        .collect()
}

/// The versions of a package in `apt-cache madison` output, as listed (newest first).
pub fn madison_versions(out: &str, package: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::trim);
            (f.next()? == package).then(|| f.next().map(String::from))?
        })
        .collect()
}

/// Which version to fetch: the pinned one when the archive has it, else the newest of the same
/// upstream series (`7.3.` for 7.3), else none.
pub fn choose_version(available: &[String], pinned: &str, series: &str) -> Option<String> {
    if available.iter().any(|v| v == pinned) {
        return Some(pinned.to_string());
    }
    let prefix = format!("{series}.");
    let mut same: Vec<&String> = available
        .iter()
        .filter(|v| v.starts_with(&prefix))
        .collect();
    same.sort_by(|a, b| crate::apt::dpkg_compare(a, b));
    same.pop().cloned()
}

/// Why a source could not be fetched.
fn fetch_failed(kernel: &KernelVersion, why: String) -> FetchError {
    FetchError::Unavailable {
        package: kernel.package,
        version: kernel.debian_version().to_string(),
        why,
    }
}

/// Fetches `kernel`'s source (a version with a `suite`) into the cache, or finds it there.
pub fn fetch(cache: &Cache, kernel: &KernelVersion, log: &Path) -> Result<Fetched, FetchError> {
    let suite = kernel.suite;
    if sources_list(suite).is_empty() {
        return Err(fetch_failed(kernel, format!("kmt knows no suite {suite}")));
    }
    let pinned = kernel.debian_version();
    if let Some(f) = find(cache, kernel).filter(|f| f.version == pinned) {
        return Ok(f);
    }
    let apt_dir = cache.root.join(format!("apt-{suite}"));
    for d in ["lists/partial", "cache/archives/partial"] {
        let p = apt_dir.join(d);
        fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let list = apt_dir.join("sources.list");
    fs::write(&list, sources_list(suite)).map_err(io(&list))?;
    let options = crate::apt::private_apt_options(&apt_dir);
    Cmd::new("apt-get")
        .args(&options)
        .arg("update")
        .run_logged(
            &format!("apt-get update ({suite}, kmt's private list)"),
            log,
        )?;
    let madison = Cmd::new("apt-cache")
        .args(&options)
        .args(["madison", kernel.package])
        .read()?;
    let available = madison_versions(&madison, kernel.package);
    let version = choose_version(&available, pinned, kernel.name).ok_or_else(|| {
        fetch_failed(
            kernel,
            format!(
                "{suite} has {} (none of Linux {}): pass --kernel-src DIR with a {} tree",
                if available.is_empty() {
                    "no version of it".to_string()
                } else {
                    available.join(", ")
                },
                kernel.name,
                kernel.name
            ),
        )
    })?;
    if version != pinned {
        tracing::warn!(
            "{suite} no longer has {} {pinned}, which the series was made against: fetching {version}, \
             the newest {}.y (the build's manifest names it)",
            kernel.package,
            kernel.name
        );
    }
    let key = entry_key(kernel.package, &version);
    let (dir, _) = cache.get_or_build::<FetchError>(KIND, &key, |staging| {
        Cmd::new("apt-get")
            .args(&options)
            .arg("download")
            .arg(format!("{}={version}", kernel.package))
            .dir(staging)
            .run_logged(&format!("downloading {} {version}", kernel.package), log)?;
        let deb = fs::read_dir(staging)
            .map_err(io(staging))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| fetch_failed(kernel, "apt-get download left no .deb".into()))?;
        let unpacked = staging.join("unpacked");
        Cmd::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&unpacked)
            .run_logged("unpacking the source package", log)?;
        let inside = unpacked.join(kernel.tarball.trim_start_matches('/'));
        let tarball = staging.join(tarball_name(kernel));
        fs::rename(&inside, &tarball).map_err(io(&inside))?;
        for p in [&unpacked, &deb] {
            let _ = fs::remove_dir_all(p).or_else(|_| fs::remove_file(p));
        }
        let sha = Cmd::new("sha256sum").arg(&tarball).read()?;
        let sha = sha.split_whitespace().next().unwrap_or("");
        let about = staging.join(ABOUT);
        fs::write(
            &about,
            format!(
                "# Fetched by kmt from Debian's {suite} with apt (signed indices), never installed.\n\
                 package={}\nversion={version}\nsha256={sha}\n",
                kernel.package
            ),
        )
        .map_err(io(&about))?;
        Ok(())
    })?;
    read_entry(&dir, kernel)
        .ok_or_else(|| fetch_failed(kernel, format!("{} is not whole", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADISON: &str = "\
linux-source-7.3 | 7.3.6-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages
linux-source-7.3 | 7.3.4-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages
linux-source-7.30 | 7.30.1-1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages
";

    #[test]
    fn madison_lists_the_packages_versions_only() {
        assert_eq!(
            madison_versions(MADISON, "linux-source-7.3"),
            ["7.3.6-1~bpo13+1", "7.3.4-1~bpo13+1"]
        );
        assert!(madison_versions("", "linux-source-7.3").is_empty());
    }

    #[test]
    fn the_pinned_version_when_the_archive_has_it() {
        let v = madison_versions(MADISON, "linux-source-7.3");
        assert_eq!(
            choose_version(&v, "7.3.4-1~bpo13+1", "7.3").as_deref(),
            Some("7.3.4-1~bpo13+1")
        );
    }

    #[test]
    fn the_newest_point_release_of_the_series_when_the_pin_is_gone() {
        let v: Vec<String> = ["7.3.5-1~bpo13+1", "7.3.10-1~bpo13+1", "7.4.1-1~bpo13+1"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            choose_version(&v, "7.3.4-1~bpo13+1", "7.3").as_deref(),
            Some("7.3.10-1~bpo13+1")
        );
        assert_eq!(choose_version(&v[2..], "7.3.4-1~bpo13+1", "7.3"), None);
    }

    #[test]
    fn the_private_list_names_only_the_suite() {
        assert_eq!(
            sources_list("trixie-backports"),
            "deb http://deb.debian.org/debian trixie-backports main\n"
        );
        assert!(sources_list("bookworm").contains("bookworm-security main\n"));
        assert_eq!(sources_list("sid"), "");
    }

    #[test]
    fn every_kernel_comes_from_a_known_suite() {
        for k in crate::kernels::KERNELS {
            assert!(!sources_list(k.suite).is_empty(), "{}: {}", k.name, k.suite);
        }
    }
}
