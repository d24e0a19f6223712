// SPDX-License-Identifier: GPL-2.0-only
//! The kernels kmt builds and the slab allocators each can be built with, as data: a version's
//! Debian source package, its patch series and its allocators' Kconfig fragments. Adding a kernel
//! is a row here, a `kernel/patches/<version>/` series and the selftest's known answers.

use crate::usage::UsageError;
use std::collections::BTreeMap;

/// A slab allocator, as a Kconfig fragment merged after the architecture's.
#[derive(Debug, PartialEq, Eq)]
pub struct Allocator {
    /// The name users type and the tracer reports (debugfs `kmemtrace/allocator`).
    pub name: &'static str,
    /// The fragment, relative to the repository.
    pub fragment: &'static str,
}

pub static SLAB: Allocator = Allocator {
    name: "slab",
    fragment: "kernel/config/allocator/slab.config",
};
pub static SLUB: Allocator = Allocator {
    name: "slub",
    fragment: "kernel/config/allocator/slub.config",
};
pub static SLUB_TINY: Allocator = Allocator {
    name: "slub-tiny",
    fragment: "kernel/config/allocator/slub-tiny.config",
};
pub static SLOB: Allocator = Allocator {
    name: "slob",
    fragment: "kernel/config/allocator/slob.config",
};

/// A kernel version kmt has a patch series for.
#[derive(Debug, PartialEq, Eq)]
pub struct KernelVersion {
    /// `VERSION.PATCHLEVEL`, as users type it (`--kernel 6.1`).
    pub name: &'static str,
    /// `VERSION` and `PATCHLEVEL` of the top Makefile.
    pub version: (u32, u32),
    /// Debian's source package and the tarball inside it.
    pub package: &'static str,
    pub tarball: &'static str,
    /// The Debian suite (a row of `fetch.rs`'s `SUITES`) kmt fetches the package from, into its
    /// cache, without installing it.
    pub suite: &'static str,
    /// The series directory (with `series` and `SOURCE`), relative to the repository.
    pub patches: &'static str,
    /// The series' `SOURCE` file (embedded): the Debian version the series was made against,
    /// which `kmt setup` installs.
    pub source: &'static str,
    /// The allocators this version can be built with, the default first.
    pub allocators: &'static [&'static Allocator],
    /// A Kconfig fragment of this version's own, merged after `common.config`.
    pub fragment: Option<&'static str>,
}

/// Every kernel, the default first.
pub static KERNELS: &[KernelVersion] = &[
    KernelVersion {
        name: "6.12",
        version: (6, 12),
        package: "linux-source-6.12",
        tarball: "/usr/src/linux-source-6.12.tar.xz",
        suite: "bookworm",
        patches: "kernel/patches/6.12",
        source: include_str!("../../kernel/patches/6.12/SOURCE"),
        allocators: &[&SLUB, &SLUB_TINY],
        fragment: None,
    },
    KernelVersion {
        name: "7.3",
        version: (7, 3),
        package: "linux-source-7.3",
        tarball: "/usr/src/linux-source-7.3.tar.xz",
        suite: "trixie-backports",
        patches: "kernel/patches/7.3",
        source: include_str!("../../kernel/patches/7.3/SOURCE"),
        allocators: &[&SLUB, &SLUB_TINY],
        fragment: None,
    },
    KernelVersion {
        name: "6.1",
        version: (6, 1),
        package: "linux-source-6.1",
        tarball: "/usr/src/linux-source-6.1.tar.xz",
        suite: "bookworm",
        patches: "kernel/patches/6.1",
        source: include_str!("../../kernel/patches/6.1/SOURCE"),
        allocators: &[&SLUB, &SLAB, &SLOB],
        fragment: Some("kernel/config/kernel-6.1.config"),
    },
];

/// The default kernel (Debian's 6.12) and its default allocator (SLUB).
pub fn default_kernel() -> &'static KernelVersion {
    &KERNELS[0]
}

impl KernelVersion {
    /// The allocator built when none is asked for: SLUB, every version's own default.
    pub fn default_allocator(&self) -> &'static Allocator {
        self.allocators[0]
    }

    /// The allocator called `name`, or a usage error that lists this version's.
    pub fn allocator(&self, name: &str) -> Result<&'static Allocator, UsageError> {
        self.allocators
            .iter()
            .copied()
            .find(|a| a.name == name)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "--allocator {name}: Linux {} has {}",
                    self.name,
                    self.allocator_names().join(", ")
                ))
            })
    }

    /// The Debian version of the source package the series was made against (`version=` of
    /// `SOURCE`), e.g. `6.12.117-1~deb12u1`.
    pub fn debian_version(&self) -> &'static str {
        self.source
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .find_map(|l| l.trim().strip_prefix("version="))
            .map(str::trim)
            .unwrap_or("")
    }

    /// This version's allocator names, the default first.
    pub fn allocator_names(&self) -> Vec<&'static str> {
        self.allocators.iter().map(|a| a.name).collect()
    }
}

/// Every allocator any version has, once each, in table order (what `--allocator` accepts
/// before the version's own list decides).
pub fn all_allocator_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for n in KERNELS.iter().flat_map(|k| k.allocator_names()) {
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

/// Every version's name as a sentence lists them: "6.12, 7.3 and 6.1".
fn names_listed() -> String {
    match names().split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Every version's name, the default first.
pub fn names() -> Vec<&'static str> {
    KERNELS.iter().map(|k| k.name).collect()
}

/// The version called `name` (`6.1`, `6.12`), or a usage error listing them.
pub fn by_name(name: &str) -> Result<&'static KernelVersion, UsageError> {
    KERNELS.iter().find(|k| k.name == name).ok_or_else(|| {
        UsageError::new(format!(
            "--kernel {name}: kmt has patch series for Linux {}",
            names_listed()
        ))
    })
}

/// `VERSION` and `PATCHLEVEL` from the text of a kernel tree's top Makefile.
pub fn makefile_version(text: &str) -> Option<(u32, u32)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().parse::<u32>().ok())?
        })
    };
    Some((field("VERSION")?, field("PATCHLEVEL")?))
}

/// The version of a tree whose Makefile says `version`, or a usage error naming the tree's
/// version and the supported ones.
pub fn for_tree(
    version: Option<(u32, u32)>,
    tree: &std::path::Path,
) -> Result<&'static KernelVersion, UsageError> {
    let found = version.and_then(|v| KERNELS.iter().find(|k| k.version == v));
    found.ok_or_else(|| {
        let what = match version {
            Some((a, b)) => format!("is Linux {a}.{b}"),
            None => "has no VERSION and PATCHLEVEL in its Makefile".into(),
        };
        UsageError::new(format!(
            "--kernel-src {}: the tree {what}; kmt has patch series for Linux {}",
            tree.display(),
            names_listed()
        ))
    })
}

/// Chooses the kernel and allocator of a build from the options: `--kernel` (default 6.12, or
/// the version of the `--kernel-src` tree, which must agree with `--kernel` when both are given)
/// and `--allocator` (default SLUB). Pure: the tree's Makefile version is passed in.
pub fn select(
    kernel: Option<&str>,
    allocator: Option<&str>,
    tree: Option<(&std::path::Path, Option<(u32, u32)>)>,
) -> Result<(&'static KernelVersion, &'static Allocator), UsageError> {
    let asked = kernel.map(by_name).transpose()?;
    let k = match (asked, tree) {
        (asked, Some((path, version))) => {
            let of_tree = for_tree(version, path)?;
            if let Some(a) = asked.filter(|a| *a != of_tree) {
                return Err(UsageError::new(format!(
                    "--kernel {} but --kernel-src {} is Linux {}",
                    a.name,
                    path.display(),
                    of_tree.name
                )));
            }
            of_tree
        }
        (Some(a), None) => a,
        (None, None) => default_kernel(),
    };
    let a = match allocator {
        Some(name) => k.allocator(name)?,
        None => k.default_allocator(),
    };
    Ok((k, a))
}

/// `kernel/patches/<version>/SOURCE`: `key=value` lines naming the Debian package, version and tarball
/// checksum the series was made against.
pub fn parse_source(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_kernel_pins_the_debian_version_of_its_source_file() {
        for k in KERNELS {
            let v = k.debian_version();
            assert!(
                v.starts_with(&format!("{}.", k.name)) && v.contains('-'),
                "{}: {v:?}",
                k.name
            );
            assert!(k.source.contains(&format!("package={}\n", k.package)));
            assert!(k.source.contains(&format!("tarball={}\n", k.tarball)));
        }
    }

    #[test]
    fn defaults_are_6_12_with_slub() {
        let (k, a) = select(None, None, None).unwrap();
        assert_eq!((k.name, a.name), ("6.12", "slub"));
        let (k, a) = select(Some("6.1"), None, None).unwrap();
        assert_eq!((k.name, a.name), ("6.1", "slub"));
    }

    #[test]
    fn an_allocator_the_kernel_lacks_is_a_usage_error_listing_the_valid_ones() {
        let e = select(Some("6.12"), Some("slob"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--allocator slob: Linux 6.12 has slub, slub-tiny"
        );
        let e = select(Some("6.1"), Some("slub-tiny"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--allocator slub-tiny: Linux 6.1 has slub, slab, slob"
        );
        let e = select(Some("5.10"), None, None).unwrap_err();
        assert!(e.to_string().contains("Linux 6.12, 7.3 and 6.1"), "{e}");
    }

    #[test]
    fn a_tree_picks_its_version_or_says_which_are_supported() {
        let mk = "# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n";
        assert_eq!(makefile_version(mk), Some((6, 1)));
        let t = Path::new("/src/linux");
        let (k, a) = select(None, Some("slab"), Some((t, makefile_version(mk)))).unwrap();
        assert_eq!((k.name, a.name), ("6.1", "slab"));
        let e = select(Some("6.12"), None, Some((t, Some((6, 1))))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--kernel 6.12 but --kernel-src /src/linux is Linux 6.1"
        );
        let e = select(None, None, Some((t, Some((5, 15))))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--kernel-src /src/linux: the tree is Linux 5.15; kmt has patch series for Linux 6.12, 7.3 and 6.1"
        );
        assert!(select(None, None, Some((t, None))).is_err());
    }

    #[test]
    fn every_row_names_files_that_exist() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for k in KERNELS {
            for f in ["series", "SOURCE"] {
                assert!(repo.join(k.patches).join(f).is_file(), "{} {f}", k.name);
            }
            for a in k.allocators {
                assert!(repo.join(a.fragment).is_file(), "{}", a.fragment);
            }
            if let Some(f) = k.fragment {
                assert!(repo.join(f).is_file(), "{f}");
            }
        }
    }
}
