// SPDX-License-Identifier: GPL-2.0-only
//! Prerequisites: what kmt needs on the host, how to tell it is there, and which Debian package
//! brings it.

use std::path::Path;

use std::fs;
use std::time::Duration;

use crate::apt::{dpkg_older, private_apt_options};
use crate::arch::Arch;
use crate::cache::Cache;
use crate::kernel::KernelBuild;
use crate::kernels::{self, KernelVersion};
use crate::proc::{Cmd, CommandFailed};
use crate::qemu;
use crate::scratch::Scratch;
use crate::usage::UsageError;
use crate::vm::Guard;

/// How to tell a prerequisite is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A program on PATH.
    Program(String),
    /// A file at a fixed path.
    File(String),
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

/// What `kmt doctor` checks, per dimension: the architectures (kernel versions) named, else
/// with `all` every one, else what the default `kmt run` needs: the `host`'s architecture (and
/// the default kernel). A default run that just worked therefore passes `kmt doctor` too. Without
/// a named or known host architecture, and without `all`, there is nothing to default to.
pub fn doctor_scope(
    arches: &[&'static Arch],
    kernels: &[&'static KernelVersion],
    all: bool,
    host: Option<&'static Arch>,
) -> Result<(Vec<&'static Arch>, Vec<&'static KernelVersion>), UsageError> {
    let arches = match (arches, all, host) {
        ([_, ..], _, _) => arches.to_vec(),
        ([], true, _) => crate::arch::ARCHES.iter().collect(),
        ([], false, Some(h)) => vec![h],
        ([], false, None) => {
            return Err(UsageError::new(format!(
                "this host's architecture is not one kmt boots; pass --arch ({}) or --all",
                crate::arch::names().join(", ")
            )))
        }
    };
    let kernels = match (kernels, all) {
        ([_, ..], _) => kernels.to_vec(),
        ([], true) => kernels::KERNELS.iter().collect(),
        ([], false) => vec![kernels::default_kernel()],
    };
    Ok((arches, kernels))
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
    if !kernels.is_empty() {
        // Kernel sources are fetched into kmt's cache, not installed (fetch.rs).
        v.push(p("apt-get (kernel source)", prog("apt-get"), "apt"));
        v.push(p("dpkg-deb (kernel source)", prog("dpkg-deb"), "dpkg"));
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

/// The kernel sources, which kmt fetches into its cache (not packages to install): for each of
/// `kernels` a line for `kmt doctor`; a build, or `kmt setup`, fetches a missing one.
pub fn fetched_sources(kernels: &[&KernelVersion], cache: &Cache) -> Vec<String> {
    kernels
        .iter()
        .map(|k| {
            let suite = k.suite;
            let what = format!("Linux {} source", k.name);
            match crate::fetch::find(cache, k) {
                Some(f) => format!(
                    "ok      {what:<40} ({} {}, fetched from {suite} into kmt's cache)",
                    k.package, f.version
                ),
                None => format!(
                    "later   {what:<40} ({} {}: kmt setup or its first build fetches it from {suite})",
                    k.package,
                    k.debian_version()
                ),
            }
        })
        .collect()
}

/// Fetches the sources of `kernels` that kmt fetches itself into `cache` (`kmt setup`).
pub fn fetch_sources(
    kernels: &[&KernelVersion],
    cache: &Cache,
    log: &Path,
) -> Result<(), crate::fetch::FetchError> {
    for k in kernels {
        let f = crate::fetch::fetch(cache, k, log)?;
        eprintln!("kmt: {} {} is in kmt's cache", k.package, f.version);
    }
    Ok(())
}

/// Whether a prerequisite is there.
pub fn present(p: &Prereq) -> bool {
    match &p.probe {
        Probe::Program(n) => on_path(n),
        Probe::File(f) => Path::new(f).exists(),
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
/// on these machines). `--no-remove`, and no `--allow-downgrades`: apt itself refuses to remove
/// or downgrade anything the user has; kmt simulates first to say what and why.
const APT_INSTALL: &[&str] = &["install", "-y", "--no-install-recommends", "--no-remove"];

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

/// The packages a simulated `apt-get -s install` would remove (`Remv NAME [VERSION]`) or
/// downgrade (`Inst NAME [OLD] (NEW …)` with NEW older than OLD, as `older` judges), each as
/// `NAME OLD` or `NAME OLD -> NEW`.
pub fn harmed(simulation: &str, older: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut v = Vec::new();
    for line in simulation.lines() {
        let mut w = line.split_whitespace();
        let (Some(verb), Some(name)) = (w.next(), w.next()) else {
            continue;
        };
        let rest: Vec<&str> = w.collect();
        let old = rest
            .first()
            .and_then(|s| s.strip_prefix('['))
            .and_then(|s| s.strip_suffix(']'));
        match (verb, old) {
            ("Remv", Some(old)) => v.push(format!("{name} {old} (removed)")),
            ("Remv", None) => v.push(format!("{name} (removed)")),
            ("Inst", Some(old)) => {
                let new = rest.get(1).and_then(|s| s.strip_prefix('('));
                if let Some(new) = new.filter(|n| older(n, old)) {
                    v.push(format!("{name} {old} (downgraded to {new})"));
                }
            }
            _ => {}
        }
    }
    v
}

/// Where kmt keeps its own apt lists for the one suite it may add: bookworm-backports, read
/// through a private sources list so the system's apt configuration is never edited.
const PRIVATE_APT: &str = "/var/cache/kmt/apt";

/// The private sources list: the system's Debian 12 suites and bookworm-backports.
const PRIVATE_SOURCES: &str = "\
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
";

/// Whether the installed version of `package` came from bookworm-backports.
fn from_backports(package: &str) -> bool {
    installed_version(package).is_some_and(|v| v.contains("~bpo12"))
}

/// What stops an install: apt failed, or it would remove or downgrade what the user has.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Apt(#[from] CommandFailed),
    #[error("cannot write kmt's private apt list under {}: {source}", .path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("installing {packages} would remove or downgrade packages you have: {harmed}; kmt never does that. Install them yourself if you want them, e.g.:\n  {line}", packages = .packages.join(" "), harmed = .harmed.join(", "), line = install_line(.packages))]
    WouldHarm {
        packages: Vec<String>,
        harmed: Vec<String>,
    },
}

/// Simulates installing `packages` with apt's `options`, and installs them only when nothing
/// the user has would be removed or downgraded.
fn install_checked(
    options: &[String],
    target: Option<&str>,
    packages: &[String],
    log: &Path,
) -> Result<(), InstallError> {
    let target: Vec<String> = target
        .map(|t| vec!["-t".into(), t.into()])
        .unwrap_or_default();
    let sim = Cmd::new("apt-get")
        .args(options.iter())
        .args(target.iter())
        .args(["-s", "install", "--no-install-recommends"])
        .args(packages.iter())
        .read()?;
    // kmt's own pinned packages (`NAME=VERSION`, the kernel source its series was made
    // against) may move to their pin; nothing else may be removed or downgraded.
    let pinned: Vec<&str> = packages
        .iter()
        .filter_map(|p| p.split_once('=').map(|(n, _)| n))
        .collect();
    let (own, harm): (Vec<String>, Vec<String>) =
        harmed(&sim, dpkg_older).into_iter().partition(|h| {
            h.ends_with(')')
                && !h.ends_with("(removed)")
                && pinned.contains(&h.split(' ').next().unwrap_or(""))
        });
    let allow: &[&str] = if own.is_empty() {
        &[]
    } else {
        &["--allow-downgrades"]
    };
    if !harm.is_empty() {
        return Err(InstallError::WouldHarm {
            packages: packages.to_vec(),
            harmed: harm,
        });
    }
    Cmd::new("apt-get")
        .args(options.iter())
        .args(target.iter())
        .args(APT_INSTALL.iter())
        .args(allow.iter())
        .args(packages.iter())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run_logged("apt-get install", log)?;
    Ok(())
}

/// Installs `packages` with apt (as root), never removing or downgrading a package. On a
/// machine whose qemu-utils came from bookworm-backports (Debian 12 images often carry 10.x),
/// bookworm's QEMU 7.2 cannot be installed beside it: the QEMU packages then come from the same
/// backports suite, through kmt's private sources list.
pub fn install(packages: &[String], log: &Path) -> Result<(), InstallError> {
    Cmd::new("apt-get")
        .arg("update")
        .run_logged("apt-get update", log)?;
    let (qemu, rest): (Vec<String>, Vec<String>) = packages
        .iter()
        .cloned()
        .partition(|p| p.starts_with("qemu-"));
    if qemu.is_empty() || !from_backports("qemu-utils") {
        return install_checked(&[], None, packages, log);
    }
    if !rest.is_empty() {
        install_checked(&[], None, &rest, log)?;
    }
    let dir = Path::new(PRIVATE_APT);
    for sub in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub)).map_err(|source| InstallError::Io {
            path: dir.join(sub),
            source,
        })?;
    }
    fs::write(dir.join("sources.list"), PRIVATE_SOURCES).map_err(|source| InstallError::Io {
        path: dir.join("sources.list"),
        source,
    })?;
    let options = private_apt_options(dir);
    Cmd::new("apt-get")
        .args(options.iter())
        .arg("update")
        .run_logged(
            "apt-get update (kmt's private list with bookworm-backports)",
            log,
        )?;
    install_checked(&options, Some("bookworm-backports"), &qemu, log)
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

    /// Defect: kmt's automatic install removed the machine's backports qemu-utils 10.0.2 to
    /// install bookworm's QEMU 7.2. The simulation apt printed then is what `harmed` must catch.
    #[test]
    fn setup_never_removes_a_users_package() {
        let sim = "Reading package lists...\n\
                   Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\n\
                   Inst qemu-system-common (1:7.2+dfsg-7+deb12u18+b2 Debian:12.13/stable [amd64])\n\
                   Inst libfoo [2.0-1] (1.0-1 Debian:12.13/stable [amd64])\n\
                   Inst libbar [1.0-1] (2.0-1 Debian:12.13/stable [amd64])\n\
                   Conf qemu-system-common (1:7.2+dfsg-7+deb12u18+b2 Debian:12.13/stable [amd64])\n";
        let older = |a: &str, b: &str| a < b;
        assert_eq!(
            harmed(sim, older),
            [
                "qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 (removed)",
                "libfoo 2.0-1 (downgraded to 1.0-1)"
            ]
        );
        assert!(harmed("Inst new (1.0 Debian [amd64])\n", older).is_empty());
        assert!(APT_INSTALL.contains(&"--no-remove"));
        assert!(!APT_INSTALL.iter().any(|a| a.contains("downgrade")));
        assert!(install_line(&["qemu-system-x86".into()]).contains("--no-remove"));
    }

    /// Regression: `kmt doctor` exited 10 right after a successful default run, because it
    /// checked every architecture and kernel. By default it checks what that run needs.
    #[test]
    fn doctor_checks_what_the_default_run_needs_unless_told_otherwise() {
        let names = |(a, k): (Vec<&Arch>, Vec<&KernelVersion>)| {
            let a: Vec<&str> = a.iter().map(|a| a.name).collect();
            let k: Vec<&str> = k.iter().map(|k| k.name).collect();
            (a, k)
        };
        let [x86, arm, ppc] = ["x86_64", "arm64", "ppc64"].map(|n| lookup(n).unwrap());
        let default = kernels::default_kernel();
        let old = kernels::by_name("6.1").unwrap();
        let scope = |a: &[&'static Arch], k: &[&'static KernelVersion], all, host| {
            names(doctor_scope(a, k, all, host).unwrap())
        };
        // Nothing named: the host's architecture and the kernel `kmt run` builds by default.
        assert_eq!(
            scope(&[], &[], false, Some(arm)),
            (vec!["arm64"], vec![default.name])
        );
        assert_eq!(default.name, "6.12");
        // --all: every architecture and kernel.
        let every = (
            ARCHES.iter().map(|a| a.name).collect::<Vec<_>>(),
            kernels::KERNELS.iter().map(|k| k.name).collect::<Vec<_>>(),
        );
        assert_eq!(scope(&[], &[], true, Some(x86)), every);
        assert_eq!(scope(&[], &[], true, None), every);
        // --arch and --kernel name their dimension; the other keeps its default (or --all).
        assert_eq!(
            scope(&[ppc, x86], &[], false, Some(x86)),
            (vec!["ppc64", "x86_64"], vec!["6.12"])
        );
        assert_eq!(
            scope(&[], &[old], false, Some(x86)),
            (vec!["x86_64"], vec!["6.1"])
        );
        assert_eq!(scope(&[ppc], &[], true, None).1, every.1);
        // A host kmt does not boot: name an architecture or ask for all.
        let e = doctor_scope(&[], &[], false, None).unwrap_err();
        assert!(
            e.to_string().contains("--arch") && e.to_string().contains("--all"),
            "{e}"
        );
    }

    #[test]
    fn every_arch_needs_its_qemu() {
        let all: Vec<&Arch> = ARCHES.iter().collect();
        let kernels: Vec<&KernelVersion> = crate::kernels::KERNELS.iter().collect();
        let pre = prerequisites(&all, &kernels);
        for k in &kernels {
            // A kernel source is fetched into kmt's cache, never a package to install.
            assert!(
                !pre.iter().any(|p| p.package.starts_with(k.package)),
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
            "sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-remove pkg-a pkg-b'"
        );
    }

    #[test]
    fn a_program_that_surely_exists_is_found() {
        assert!(on_path("sh"));
        assert!(!on_path("kmt-no-such-program"));
    }
}
