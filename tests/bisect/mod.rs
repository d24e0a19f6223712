// SPDX-License-Identifier: GPL-2.0-only
//! The `kmt bisect` trials: a git history made from Debian's linux-source-6.12 (the base commit
//! is the tarball as it is, then small commits), with one planted commit that grows the
//! allocation `alloc_pipe_info` makes per pipe, which the `pipes` example program reaches.
//!
//! - `middle`: 16 commits; the 8th does not build (`#error`, fixed by the 9th), the 10th is the
//!   planted one. The search probes the 8th first: it must skip it and still name the 10th,
//!   confirmed.
//! - `last`: 7 commits, the planted one last (the bad end is itself the first bad commit).
//!
//! Every other commit appends a comment to a C file every tiny kernel compiles, so that each
//! step really rebuilds something. The history is made once (under a lock) in the kmt cache,
//! `$KMT_CACHE_DIR/e2e/bisect-linux`, with fixed author and committer dates, so that its commit
//! hashes are the same on every machine and every clone of this repository (and kmt's clone of
//! it, its build directories and its kernels are reused by the next CI run); the trials only
//! read it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use kmt::arch::Arch;
use kmt::bisect::{BisectRequest, Role, Verdict};
use kmt::cache::Cache;
use kmt::outcome::Outcome;
use kmt::run::AccelChoice;
use libtest_mimic::Failed;

use crate::common::repo;

/// The planted commit's subject.
pub const PLANTED: &str = "pipe: allocate 512 more bytes with each pipe_inode_info";
const BROKEN: &str = "open: a change that does not build";

/// Files every tiny kernel of the three architectures compiles.
const FILES: &[&str] = &[
    "kernel/fork.c",
    "kernel/exit.c",
    "fs/read_write.c",
    "init/main.c",
    "lib/string.c",
    "kernel/sys.c",
    "fs/file.c",
    "kernel/signal.c",
    "fs/exec.c",
    "mm/mmap.c",
    "fs/namei.c",
];

/// One commit of a history, as a shell snippet run in the tree and a subject.
enum Change {
    /// A comment appended to `FILES[i]`.
    Harmless(usize),
    Plant,
    Break,
    Fix,
}

impl Change {
    fn script(&self) -> (String, String) {
        match self {
            Change::Harmless(i) => {
                let f = FILES[i % FILES.len()];
                (
                    format!("printf '\\n/* kmt bisect trial: harmless change {i} */\\n' >> {f}"),
                    format!("{}: harmless change {i}", f.trim_end_matches(".c")),
                )
            }
            Change::Plant => (
                "sed -i 's/pipe = kzalloc(sizeof(struct pipe_inode_info), GFP_KERNEL_ACCOUNT);/pipe = kzalloc(sizeof(struct pipe_inode_info) + 512, GFP_KERNEL_ACCOUNT);/' fs/pipe.c && grep -q 'pipe_inode_info) + 512' fs/pipe.c".into(),
                PLANTED.into(),
            ),
            Change::Break => (
                "printf '\\n#error \"kmt bisect trial: this commit does not build\"\\n' >> fs/open.c".into(),
                BROKEN.into(),
            ),
            Change::Fix => (
                "sed -i '/kmt bisect trial: this commit does not build/d' fs/open.c".into(),
                "open: build again".into(),
            ),
        }
    }
}

fn histories() -> Vec<(&'static str, Vec<Change>)> {
    use Change::*;
    let harmless = |r: std::ops::Range<usize>| r.map(Harmless);
    let middle = harmless(0..7)
        .chain([Break, Fix, Plant])
        .chain(harmless(7..13))
        .collect();
    let last = harmless(0..6).chain([Plant]).collect();
    vec![("middle", middle), ("last", last)]
}

fn sh(dir: &Path, script: &str, log: &Path) -> Result<(), Failed> {
    kmt::proc::Cmd::new("sh")
        .arg("-ec")
        .arg(script)
        .dir(dir)
        .env("GIT_AUTHOR_NAME", "kmt trial")
        .env("GIT_AUTHOR_EMAIL", "trial@localhost")
        .env("GIT_COMMITTER_NAME", "kmt trial")
        .env("GIT_COMMITTER_EMAIL", "trial@localhost")
        .env("GIT_AUTHOR_DATE", "2026-12-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-12-01T00:00:00Z")
        .run_logged("making the bisect trial's history", log)
        .map_err(|e| e.to_string().into())
}

/// The history's work tree, made on first use: Debian's tarball as the base commit (tag
/// `kmt-base`), one branch per history.
pub fn history() -> Result<PathBuf, Failed> {
    let top = e2e_cache();
    fs::create_dir_all(&top).map_err(|e| e.to_string())?;
    let dir = top.join("bisect-linux");
    let lock = File::create(top.join("bisect-linux.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    // The marker holds what the history was made of: a changed definition makes it again.
    let done = top.join("bisect-linux.done");
    let recipe: String = histories()
        .iter()
        .flat_map(|(name, changes)| {
            changes.iter().map(move |c| {
                let (script, subject) = c.script();
                format!("{name}: {subject}: {script}\n")
            })
        })
        .collect();
    if fs::read_to_string(&done).is_ok_and(|d| d == recipe) {
        return Ok(dir);
    }
    let log = top.join("bisect-linux.log");
    let _ = fs::remove_file(&log);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The source kmt setup fetched into the cache (harness/src/fetch.rs).
    let kernel = kmt::kernels::default_kernel();
    let tarball = kmt::fetch::find(&Cache::from_env(), kernel)
        .ok_or_else(|| format!("{} is not in kmt's cache: run kmt setup", kernel.package))?
        .tarball;
    let tarball = tarball.display();
    // Debian's .gitignore ignores everything at the top: add with -f.
    sh(
        &dir,
        &format!(
            "tar xf {tarball} --strip-components=1; git init -q; git add -A -f; \
             git commit -q -m 'Linux 6.12 as Debian ships it (linux-source-6.12)'; git tag kmt-base"
        ),
        &log,
    )?;
    for (name, changes) in histories() {
        sh(
            &dir,
            &format!("git checkout -q -f -B {name} kmt-base"),
            &log,
        )?;
        for c in changes {
            let (script, subject) = c.script();
            sh(
                &dir,
                &format!("{script}; git commit -q -am '{subject}'"),
                &log,
            )?;
        }
    }
    fs::write(&done, recipe).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Where the trials keep what outlives a clone of this repository: `$KMT_CACHE_DIR/e2e`.
fn e2e_cache() -> PathBuf {
    Cache::from_env().root.join("e2e")
}

fn git(dir: &Path, args: &[&str]) -> Result<String, Failed> {
    kmt::proc::Cmd::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .read()
        .map_err(|e| e.to_string().into())
}

/// The bisect request of a trial: the pipes program, once per boot, one run per commit and one
/// confirmation run each (the figure is deterministic: every pipe makes one allocation there).
pub fn request(
    arch: &'static Arch,
    tree: &Path,
    bad: &str,
    out: &Path,
) -> Result<BisectRequest, Failed> {
    let program = crate::build_example(arch, "pipes")?;
    Ok(BisectRequest {
        tree: tree.to_path_buf(),
        good: "kmt-base".into(),
        bad: bad.into(),
        arch,
        kernel: None,
        allocator: None,
        repo: repo(),
        configs: Vec::new(),
        append: Vec::new(),
        workload: "exec".into(),
        param: Some(1),
        exec: Some(kmt::program::Exec {
            program,
            args: vec!["100".into()],
        }),
        repeat: 1,
        confirm: 1,
        fail_on: vec!["callsite:alloc_pipe_info:bytes_requested:+50%".into()],
        callsite_filter: vec!["alloc_pipe_info".into()],
        out: out.to_path_buf(),
        accel: AccelChoice::Auto,
        timeout: None,
        smp: 2,
        memory_mib: 512,
        install_missing: false,
        lines: 20,
    })
}

/// `kmt bisect` over one history names the planted commit, confirmed, skips the commit that
/// does not build, writes its diff and report, and leaves the user's tree as it was.
pub fn bisect_trial(arch: &'static Arch, history_name: &str) -> Result<(), Failed> {
    let tree = history()?;
    let before = (
        git(&tree, &["rev-parse", "HEAD"])?,
        git(&tree, &["status", "--porcelain"])?,
    );
    let out = repo()
        .join("target/kmt-e2e")
        .join(format!("bisect-{}-{history_name}", arch.name));
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| e.to_string())?;
    }
    let req = request(arch, &tree, history_name, &out)?;
    let mut progress = |m: &str| eprintln!("{} bisect {history_name}: {m}", arch.name);
    let res = kmt::bisect::bisect(&req, &Cache::from_env(), &mut progress)
        .map_err(|e| format!("{}: {}", e.outcome(), e.chain()))?;
    eprintln!("{}", res.report);
    let found = res.log.result.clone().ok_or("no result in the log")?;
    let mut problems = Vec::new();
    if res.outcome != Outcome::Ok || !found.confirmed {
        problems.push(format!("outcome {} ({})", res.outcome, found.message));
    }
    let first = found.first_bad.as_ref().map(|c| c.subject.as_str());
    if first != Some(PLANTED) {
        problems.push(format!("first bad commit {first:?}, want {PLANTED:?}"));
    }
    let planted = git(
        &tree,
        &["log", "--format=%H", "--grep", PLANTED, history_name],
    )?;
    if found.first_bad.as_ref().map(|c| c.hash.as_str()) != Some(planted.trim()) {
        problems.push(format!(
            "first bad commit is not {} of {history_name}",
            planted.trim()
        ));
    }
    let skipped: Vec<&str> = res
        .log
        .steps
        .iter()
        .filter(|s| s.verdict == Some(Verdict::Skip))
        .map(|s| s.commit.subject.as_str())
        .collect();
    let want_skipped: Vec<&str> = if history_name == "middle" {
        vec![BROKEN]
    } else {
        vec![]
    };
    if skipped != want_skipped {
        problems.push(format!("skipped {skipped:?}, want {want_skipped:?}"));
    }
    if let Some(s) = res
        .log
        .steps
        .iter()
        .find(|s| s.verdict == Some(Verdict::Skip))
    {
        if !s.message.contains("does not build") {
            problems.push(format!("the skip says {:?}, want why", s.message));
        }
    }
    let probes = res
        .log
        .steps
        .iter()
        .filter(|s| s.role == Role::Probe)
        .count();
    let max = kmt::bisect::max_steps(res.log.range.len()) as usize + skipped.len();
    if probes + 1 > max {
        problems.push(format!(
            "{probes} probes for {} commits",
            res.log.range.len()
        ));
    }
    for f in [
        "bisect.json",
        "bisect.md",
        "first-bad/diff.txt",
        "first-bad/diff.md",
    ] {
        if !out.join(f).is_file() {
            problems.push(format!("no {f}"));
        }
    }
    let diff = fs::read_to_string(out.join("first-bad/diff.txt")).unwrap_or_default();
    if !diff.contains("alloc_pipe_info") {
        problems.push("the first bad commit's diff does not name alloc_pipe_info".into());
    }
    if !res.report.contains("%change") || !res.report.contains("git bisect run") {
        problems.push("the report has no %change table or no reproduction line".into());
    }
    let after = (
        git(&tree, &["rev-parse", "HEAD"])?,
        git(&tree, &["status", "--porcelain"])?,
    );
    if after != before {
        problems.push(format!("the user's tree changed: {before:?} -> {after:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}; see {}",
            arch.name,
            problems.join("; "),
            out.display()
        )
        .into())
    }
}

/// The step-only mode under `git bisect run`, in a copy of the history (git bisect checks
/// commits out): it names the planted commit of `last`.
pub fn step_trial(arch: &'static Arch) -> Result<(), Failed> {
    let tree = history()?;
    let top = e2e_cache();
    let copy = top.join(format!("bisect-step-{}", arch.name));
    if copy.exists() {
        fs::remove_dir_all(&copy).map_err(|e| e.to_string())?;
    }
    let log = top.join(format!("bisect-step-{}.log", arch.name));
    let _ = fs::remove_file(&log);
    sh(
        &top,
        &format!(
            "git clone -q --shared -b last {} {}",
            tree.display(),
            copy.display()
        ),
        &log,
    )?;
    let kmt_bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("kmt")))
        .filter(|p| p.is_file())
        .ok_or("cannot find the kmt binary next to the test binary's directory (cargo builds it for harness/tests)")?;
    let program = crate::build_example(arch, "pipes")?;
    let state = top.join(format!("bisect-step-{}.state", arch.name));
    if state.exists() {
        fs::remove_dir_all(&state).map_err(|e| e.to_string())?;
    }
    let step = format!(
        "{} --repo {} -q bisect-step --kernel-src . --good kmt-base --arch {} --exec {} --exec-arg 100 --param 1 \
         --callsite-filter alloc_pipe_info --fail-on callsite:alloc_pipe_info:bytes_requested:+50% --no-install --state {}",
        kmt_bin.display(),
        repo().display(),
        arch.name,
        program.display(),
        state.display()
    );
    sh(
        &copy,
        &format!("git bisect start last kmt-base; git bisect run {step} > ../bisect-step-{}.out 2>&1 || true; git bisect log >> ../bisect-step-{}.out; git bisect reset >/dev/null", arch.name, arch.name),
        &log,
    )?;
    let said =
        fs::read_to_string(top.join(format!("bisect-step-{}.out", arch.name))).unwrap_or_default();
    let planted = git(&tree, &["log", "--format=%H", "--grep", PLANTED, "last"])?;
    let want = format!("{} is the first bad commit", planted.trim());
    if said.contains(&want) {
        Ok(())
    } else {
        Err(format!("git bisect run with kmt bisect-step did not say {want:?}:\n{said}").into())
    }
}
