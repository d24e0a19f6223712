// SPDX-License-Identifier: GPL-2.0-only
//! The `kmt` binary's usage errors, run as a user would: exit 2, a message on stderr, and
//! nothing created (no `kmt-runs/`, no output directory, no cache), in milliseconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs kmt in an empty directory with an empty cache; returns its output and the directory.
fn kmt(args: &[&str]) -> (Output, tempfile::TempDir, Duration) {
    let cwd = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kmt"))
        .args(["--repo", repo().to_str().unwrap()])
        .args(args)
        .current_dir(cwd.path())
        .env("KMT_CACHE_DIR", cwd.path().join("cache"))
        .output()
        .unwrap();
    (out, cwd, started.elapsed())
}

fn assert_refused(args: &[&str], says: &str) {
    let (out, cwd, took) = kmt(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{args:?} created {left:?}");
}

/// Regression: `--workload nosuch` exited 1 and left a `kmt-runs/` folder.
#[test]
fn an_unknown_workload_exits_2_and_creates_nothing() {
    assert_refused(
        &["run", "--arch", "x86_64", "--workload", "nosuch"],
        "nosuch",
    );
    assert_refused(&["matrix", "--workload", "nosuch"], "nosuch");
}

/// Regression: `kmt run --smp 0 --timeout 1` built a kernel for minutes before failing.
#[test]
fn out_of_range_numbers_exit_2_before_any_build() {
    assert_refused(
        &["run", "--arch", "arm64", "--smp", "0", "--timeout", "1"],
        "--smp 0",
    );
    assert_refused(&["run", "--arch", "arm64", "--timeout", "0"], "--timeout 0");
    assert_refused(&["run", "--arch", "arm64", "--memory", "1"], "--memory 1");
    assert_refused(
        &["run", "--arch", "arm64", "--stack-depth", "33"],
        "--stack-depth",
    );
    assert_refused(&["matrix", "--stack-depth", "64"], "--stack-depth");
    assert_refused(
        &[
            "compare",
            "--arch",
            "arm64",
            "--smp",
            "64",
            "--new-append",
            "x=1",
        ],
        "--smp 64",
    );
}

#[test]
fn missing_files_exit_2_before_any_build() {
    assert_refused(
        &["run", "--arch", "arm64", "--config", "/no/such.config"],
        "/no/such.config",
    );
    assert_refused(
        &["run", "--arch", "arm64", "--exec", "/no/such/program"],
        "/no/such/program",
    );
    assert_refused(
        &[
            "compare",
            "--arch",
            "arm64",
            "--new-kernel-src",
            "/no/such/tree",
        ],
        "/no/such/tree",
    );
}

#[test]
fn a_bad_threshold_exits_2_before_any_run() {
    assert_refused(
        &["compare", "--arch", "arm64", "--fail-on", "nosuch:+1"],
        "nosuch",
    );
}

/// Regression: a refused `--out` got a manifest.json, replacing the user's.
#[test]
fn a_refused_out_dir_keeps_the_user_s_files() {
    let mine = tempfile::tempdir().unwrap();
    std::fs::write(mine.path().join("manifest.json"), "mine").unwrap();
    let out = mine.path().to_str().unwrap();
    for cmd in ["run", "compare", "matrix"] {
        let (o, _cwd, _) = kmt(&[cmd, "--arch", "arm64", "--out", out]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(stderr.contains("not empty"), "{cmd}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(mine.path().join("manifest.json")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(mine.path()).unwrap().count(), 1, "{cmd}");
    }
}

/// The man page and the completions come from the same clap definitions as `--help`, and the
/// man page's EXIT STATUS lists every outcome's code; neither needs the repository.
#[test]
fn man_page_and_completions_are_generated() {
    let (man, _cwd, _) = kmt(&["man"]);
    let man = String::from_utf8_lossy(&man.stdout).to_string();
    assert!(man.contains(".TH kmt 1"), "{man}");
    assert!(man.contains(".SH \"EXIT STATUS\"") && man.contains(".SH \"ENVIRONMENT\""));
    for o in kmt::outcome::Outcome::ALL {
        assert!(
            man.contains(&format!("\\fB{} {}\\fR", o.exit_code(), o.name())),
            "{o}"
        );
    }
    assert!(man.contains("KMT_CACHE_DIR") && man.contains("compare"));
    let (run, _cwd, _) = kmt(&["man", "run"]);
    assert!(String::from_utf8_lossy(&run.stdout).contains(".TH kmt-run 1"));
    let (nosuch, _cwd, _) = kmt(&["man", "nosuch"]);
    assert_eq!(nosuch.status.code(), Some(2));
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_kmt"))
        .args(["completions", "bash"])
        .current_dir(std::env::temp_dir())
        .env_remove("KMT_REPO")
        .output()
        .unwrap();
    assert!(elsewhere.status.success());
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains("_kmt()"));
}

/// An allocator the chosen kernel lacks, or a kernel kmt has no series for, is a usage error
/// that lists the valid ones, before anything is built.
#[test]
fn an_allocator_the_kernel_lacks_exits_2_listing_the_valid_ones() {
    assert_refused(
        &[
            "run",
            "--arch",
            "x86_64",
            "--kernel",
            "6.12",
            "--allocator",
            "slob",
        ],
        "--allocator slob: Linux 6.12 has slub, slub-tiny",
    );
    assert_refused(
        &["kernel", "--arch", "x86_64", "--allocator", "slab"],
        "Linux 6.12 has slub, slub-tiny",
    );
    assert_refused(
        &["matrix", "--kernel", "6.1", "--allocator", "slub-tiny"],
        "Linux 6.1 has slub, slab, slob",
    );
    assert_refused(
        &["compare", "--arch", "x86_64", "--new-kernel", "5.10"],
        "[possible values: 6.12, 7.3, 6.1]",
    );
    assert_refused(
        &["run", "--arch", "x86_64", "--allocator", "slob2"],
        "[possible values: slub, slub-tiny, slab, slob]",
    );
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("Makefile"),
        "VERSION = 5\nPATCHLEVEL = 15\nSUBLEVEL = 0\n",
    )
    .unwrap();
    assert_refused(
        &[
            "run",
            "--arch",
            "x86_64",
            "--kernel-src",
            tree.path().to_str().unwrap(),
        ],
        "the tree is Linux 5.15; kmt has patch series for Linux 6.12, 7.3 and 6.1",
    );
}

/// Regression: `kmt doctor | head` panicked ("failed printing to stdout: Broken pipe", exit 101).
/// With stdout a pipe whose reader is already gone, every command that prints ends its output
/// quietly and exits with its own code.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [&["doctor"][..], &["man"], &["completions", "bash"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let cwd = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kmt"))
            .args(["--repo", repo().to_str().unwrap()])
            .args(args)
            .current_dir(cwd.path())
            .env("KMT_CACHE_DIR", cwd.path().join("cache"))
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // doctor: 0, or 10 when something is missing on this host; never 101 or a signal.
        let code = out.status.code();
        let expected = if args[0] == "doctor" {
            &[0, 10][..]
        } else {
            &[0]
        };
        assert!(
            code.is_some_and(|c| expected.contains(&c)),
            "{args:?}: {:?}: {stderr}",
            out.status
        );
    }
}

/// What apt and dpkg say the machine has: its sources and every package's state and version.
fn apt_state() -> String {
    let mut s = String::new();
    for dir in ["/etc/apt/sources.list.d", "/etc/apt/preferences.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                s += &format!(
                    "{}\n{}",
                    f.display(),
                    std::fs::read_to_string(&f).unwrap_or_default()
                );
            }
        }
    }
    s += &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\n"])
        .output()
        .unwrap();
    s + &String::from_utf8_lossy(&out.stdout)
}

/// Linux 7.3 comes from trixie-backports, which a Debian 12 machine does not use: kmt fetches
/// it into its cache and neither adds the suite to the system's sources nor installs anything.
#[test]
fn fetching_7_3_touches_neither_apt_sources_nor_packages() {
    let before = apt_state();
    let (out, cwd, _) = kmt(&["setup", "--arch", "x86_64", "--kernel", "7.3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        apt_state(),
        before,
        "kmt setup --kernel 7.3 changed apt's sources or packages"
    );
    let debs = cwd.path().join("cache/debs");
    let entry = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("kmt-source").is_file())
        .expect("a fetched source entry");
    let about = std::fs::read_to_string(entry.join("kmt-source")).unwrap();
    assert!(about.contains("package=linux-source-7.3\n"), "{about}");
    assert!(entry.join("linux-source-7.3.tar.xz").is_file());
    assert!(!Path::new("/usr/src/linux-source-7.3.tar.xz").exists());
}
