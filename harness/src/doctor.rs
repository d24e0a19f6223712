// SPDX-License-Identifier: GPL-2.0-only
//! Prerequisites: what kmt needs on the host, how to tell it is there, and which Debian package
//! brings it.

use std::path::Path;

use std::fs;
use std::time::Duration;

use crate::arch::Arch;
use crate::cache::Cache;
use crate::kernel::KernelBuild;
use crate::kernels::KernelVersion;
use crate::proc::{Cmd, CommandFailed};
use crate::qemu;
use crate::scratch::Scratch;
use crate::vm::Guard;

/// How to tell a prerequisite is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A program on PATH.
    Program(String),
    /// A file at a fixed path.
    File(String),
    /// A Debian package at an exact version, and a file it installs: the kernel source the
    /// patch series was made against (its `SOURCE`), so that every machine builds the same
    /// kernel whatever point release the archive has moved on to.
    PackageVersion {
        package: String,
        version: String,
        file: String,
    },
}

/// One thing kmt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prereq {
    pub what: String,
    pub probe: Probe,
    pub package: String,
}

fn p(what: &str, probe: Probe, package: &str) -> Prereq {
    Prereq {
        what: what.into(),
        probe,
        package: package.into(),
    }
}
fn prog(name: &str) -> Probe {
    Probe::Program(name.into())
}
fn file(path: &str) -> Probe {
    Probe::File(path.into())
}

/// The prerequisites for building `kernels` and booting them on `arches`.
pub fn prerequisites(arches: &[&Arch], kernels: &[&KernelVersion]) -> Vec<Prereq> {
    let mut v = vec![
        p("make", prog("make"), "make"),
        p("C compiler", prog("gcc"), "gcc"),
        p(
            "static C library",
            file("/usr/include/stdio.h"),
            "libc6-dev",
        ),
        p("flex (Kconfig)", prog("flex"), "flex"),
        p("bison (Kconfig)", prog("bison"), "bison"),
        p("bc (kernel build)", prog("bc"), "bc"),
        p("perl (kernel build)", prog("perl"), "perl"),
        p(
            "libelf headers (kernel build)",
            file("/usr/include/gelf.h"),
            "libelf-dev",
        ),
        p(
            "OpenSSL headers (kernel build)",
            file("/usr/include/openssl/ssl.h"),
            "libssl-dev",
        ),
        p("xz (kernel source)", prog("xz"), "xz-utils"),
        p("patch", prog("patch"), "patch"),
        p("cpio", prog("cpio"), "cpio"),
    ];
    for k in kernels {
        let version = k.debian_version();
        v.push(Prereq {
            what: format!("Linux {} source {version}", k.name),
            probe: Probe::PackageVersion {
                package: k.package.into(),
                version: version.into(),
                file: k.tarball.into(),
            },
            package: format!("{}={version}", k.package),
        });
    }
    for a in arches {
        v.push(p(
            &format!("QEMU for {}", a.name),
            prog(a.qemu),
            a.qemu_package,
        ));
        if !a.is_host() {
            v.push(p(
                &format!("C cross compiler for {}", a.name),
                prog(&a.cc()),
                a.cross_packages[0],
            ));
            let libc = format!("/usr/{}/lib/libc.a", a.cross_prefix.trim_end_matches('-'));
            v.push(p(
                &format!("static C library for {}", a.name),
                file(&libc),
                a.cross_packages[1],
            ));
        }
    }
    v
}

fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            d.join(name)
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether a prerequisite is there.
pub fn present(p: &Prereq) -> bool {
    match &p.probe {
        Probe::Program(n) => on_path(n),
        Probe::File(f) => Path::new(f).exists(),
        Probe::PackageVersion {
            package,
            version,
            file,
        } => Path::new(file).exists() && installed_version(package).is_some_and(|v| v == *version),
    }
}

/// The installed version of a Debian package, if it is installed.
fn installed_version(package: &str) -> Option<String> {
    let out = Cmd::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status} ${Version}", package])
        .read()
        .ok()?;
    out.trim()
        .strip_prefix("installed ")
        .map(|v| v.trim().to_string())
}

/// The missing prerequisites.
pub fn missing(arches: &[&Arch], kernels: &[&KernelVersion]) -> Vec<Prereq> {
    prerequisites(arches, kernels)
        .into_iter()
        .filter(|p| !present(p))
        .collect()
}

/// The packages to install for `missing`, deduplicated, in order.
pub fn packages(missing: &[Prereq]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for m in missing {
        if !v.contains(&m.package) {
            v.push(m.package.clone());
        }
    }
    v
}

/// What `apt-get install` is given besides the packages. `--no-install-recommends`: with
/// recommends, apt on Debian 12 with backports' qemu-utils fails to resolve qemu-system-* (seen
/// on these machines). `--allow-downgrades`: the pinned kernel source may be older than the one
/// installed.
const APT_INSTALL: &[&str] = &[
    "install",
    "-y",
    "--no-install-recommends",
    "--allow-downgrades",
];

/// The exact command that installs `packages`, as one command that works pasted after `sudo`
/// (both `apt-get`s run as root).
pub fn install_line(packages: &[String]) -> String {
    format!(
        "sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get {} {}'",
        APT_INSTALL.join(" "),
        packages.join(" ")
    )
}

/// Whether kmt runs as root (so it can install packages itself).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Installs `packages` with apt (as root).
pub fn install(packages: &[String], log: &Path) -> Result<(), CommandFailed> {
    Cmd::new("apt-get")
        .arg("update")
        .run_logged("apt-get update", log)?;
    Cmd::new("apt-get")
        .args(APT_INSTALL.iter())
        .args(packages.iter())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run_logged("apt-get install", log)
}

/// What `/dev/kvm` allows, before any probe boots a guest with it.
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Checks the prerequisites for `kernels` on `arches`; installs what is missing when allowed and
/// root.
pub fn ensure_prerequisites(
    arches: &[&Arch],
    kernels: &[&KernelVersion],
    allowed: bool,
    log: &Path,
) -> Result<(), String> {
    let lacking = missing(arches, kernels);
    if lacking.is_empty() {
        return Ok(());
    }
    let pkgs = packages(&lacking);
    let what: Vec<String> = lacking.iter().map(|m| m.what.clone()).collect();
    if allowed && is_root() {
        eprintln!("kmt: installing missing packages: {}", pkgs.join(" "));
        install(&pkgs, log).map_err(|e| e.to_string())?;
        let still = missing(arches, kernels);
        if still.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "still missing after installing: {}",
            still
                .iter()
                .map(|m| m.what.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(format!(
        "missing: {}\ninstall with:\n  {}",
        what.join(", "),
        install_line(&pkgs)
    ))
}

/// Does KVM actually run a guest here? Boots the kernel with no initramfs under KVM: it must
/// reach its "no root" panic and reboot (ending QEMU) within a bound. The answer is cached per
/// kernel, because a guest that hangs costs the whole bound.
pub fn kvm_works(arch: &Arch, kernel: &KernelBuild, cache: &Cache) -> bool {
    if !arch.is_host() || !kvm_device_usable() {
        return false;
    }
    let record = cache.root.join("kvm-probe").join(&kernel.key);
    if let Ok(s) = fs::read_to_string(&record) {
        return s.trim() == "works";
    }
    let Ok(tmp) = Scratch::new("kmt-kvm-probe-") else {
        return false;
    };
    let console = tmp.path().join("console.log");
    let args = qemu::kvm_probe_args(arch, &kernel.image, &console);
    let works = Guard::spawn(arch.qemu, &args, &tmp.path().join("qemu.log"))
        .and_then(|mut g| g.wait_for(Duration::from_secs(20)))
        .ok()
        .flatten()
        .is_some()
        && fs::read_to_string(&console).is_ok_and(|c| c.contains("Kernel panic"));
    let _ = fs::create_dir_all(record.parent().unwrap_or(Path::new(".")));
    let _ = fs::write(&record, if works { "works\n" } else { "hangs or fails\n" });
    tracing::info!(
        "KVM probe: {}",
        if works {
            "works"
        } else {
            "does not work; using TCG"
        }
    );
    works
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{lookup, ARCHES};

    #[test]
    fn every_arch_needs_its_qemu() {
        let all: Vec<&Arch> = ARCHES.iter().collect();
        let kernels: Vec<&KernelVersion> = crate::kernels::KERNELS.iter().collect();
        let pre = prerequisites(&all, &kernels);
        for k in &kernels {
            assert!(
                pre.iter().any(|p| p.package.starts_with(k.package)),
                "{}",
                k.name
            );
        }
        for a in ARCHES {
            assert!(
                pre.iter().any(|p| p.package == a.qemu_package),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn cross_arches_need_a_cross_compiler_and_static_libc() {
        let pre = prerequisites(&[lookup("ppc64").unwrap()], &[]);
        let pkgs = packages(&pre);
        assert!(pkgs.contains(&"gcc-powerpc64-linux-gnu".to_string()));
        assert!(pkgs.contains(&"libc6-dev-ppc64-cross".to_string()));
        assert!(pre
            .iter()
            .any(|p| p.probe == Probe::File("/usr/powerpc64-linux-gnu/lib/libc.a".into())));
    }

    #[test]
    fn the_install_line_is_exact_and_deduplicated() {
        let m = vec![
            p("a", prog("a"), "pkg-a"),
            p("b", prog("b"), "pkg-b"),
            p("c", prog("c"), "pkg-a"),
        ];
        assert_eq!(
            install_line(&packages(&m)),
            "sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --allow-downgrades pkg-a pkg-b'"
        );
    }

    #[test]
    fn kernel_sources_are_installed_at_the_version_their_series_pins() {
        let k = &crate::kernels::KERNELS[0];
        let pre = prerequisites(&[], &[k]);
        let src = pre
            .iter()
            .find(|p| p.package.starts_with(k.package))
            .unwrap();
        assert_eq!(src.package, format!("{}={}", k.package, k.debian_version()));
        assert!(
            matches!(&src.probe, Probe::PackageVersion { version, .. } if version == k.debian_version())
        );
    }

    #[test]
    fn a_program_that_surely_exists_is_found() {
        assert!(on_path("sh"));
        assert!(!on_path("kmt-no-such-program"));
    }
}
