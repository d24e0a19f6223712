// SPDX-License-Identifier: GPL-2.0-only
//! `kmt bisect`: find the commit of a user's kernel tree that changed an allocation figure.
//!
//! The good commit is run `repeat` times as the base. Every commit tested after it is run
//! `repeat` times too and judged against the base exactly as `kmt compare` judges its new side:
//! `kmemtrace diff` with the `--fail-on` thresholds, a change counting only beyond the spread of
//! the repeats. A crossed threshold is *bad*, none is *good*; a commit whose series does not
//! apply, whose kernel does not build or whose guest does not boot or crash-free finish is
//! *skipped* (`git bisect run`'s 125), with the reason in the log. The search ([`next`]) is pure.
//!
//! Everything lands in one directory, rewritten after every step so that an interrupted bisect
//! continues where it stopped:
//!
//! ```text
//! OUT/bisect.json                  the request, every step with its verdict and figures, the result
//! OUT/bisect.md                    the result as a mailing-list report (also printed)
//! OUT/commits/<hash12>/run-<i>/    kmt run output directories
//! OUT/first-bad/diff.{txt,md,json} kmemtrace diff of the first bad commit's parent and itself
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::cache::Cache;
use crate::error::{io, RunError, UsageError};
use crate::kernel::{self, KernelBuild, KernelRequest};
use crate::kernels::{self, Allocator, KernelVersion};
use crate::outcome::Outcome;
use crate::run::{self, AccelChoice, RunRequest};
use crate::tree::{Commit, Tree, TreeError};

/// What a tested commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No threshold crossed.
    Good,
    /// A threshold crossed.
    Bad,
    /// Could not be judged (the series does not apply, the kernel does not build or boot).
    Skip,
}

/// What the search does next, over the commits after GOOD up to BAD (`commits[n-1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Test this index.
    Test(usize),
    /// The first bad commit is this index.
    Found(usize),
    /// Only skipped commits are left between the last good and the first bad: the first bad
    /// commit is one of these (ascending; the last is bad).
    OnlySkipped(Vec<usize>),
}

/// The next step of the search, given the verdicts so far (`verdicts[i]` for `commits[i]`; the
/// good commit lies before index 0). The untested commit nearest the middle of the window
/// between the last good and the first bad is tested next; skipped ones are stepped around.
/// `verdicts[n-1]` must be `Bad` (the caller checks BAD first). Pure.
pub fn next(verdicts: &[Option<Verdict>]) -> Next {
    let n = verdicts.len();
    let hi = (0..n)
        .find(|&i| verdicts[i] == Some(Verdict::Bad))
        .unwrap_or(n.saturating_sub(1));
    // The last good commit before the first bad (-1: GOOD itself).
    let lo = (0..hi)
        .rev()
        .find(|&i| verdicts[i] == Some(Verdict::Good))
        .map(|i| i as isize)
        .unwrap_or(-1);
    let window: Vec<usize> = ((lo + 1) as usize..hi).collect();
    let untested: Vec<usize> = window
        .iter()
        .copied()
        .filter(|&i| verdicts[i].is_none())
        .collect();
    if untested.is_empty() {
        return if window.is_empty() {
            Next::Found(hi)
        } else {
            // Everything between is skipped.
            Next::OnlySkipped(window.into_iter().chain([hi]).collect())
        };
    }
    let mid2 = (lo + hi as isize) as f64 / 2.0;
    let pick = untested
        .iter()
        .copied()
        .min_by(|&a, &b| {
            let da = (a as f64 - mid2).abs();
            let db = (b as f64 - mid2).abs();
            da.total_cmp(&db).then(a.cmp(&b))
        })
        .expect("untested is not empty");
    Next::Test(pick)
}

/// The steps a bisect over `n` commits takes at most when nothing is skipped: ⌈log2(n)⌉, and
/// one more for BAD itself.
pub fn max_steps(n: usize) -> u32 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()) + 1
}

/// One figure a threshold looks at, over one commit's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateFigure {
    /// The `--fail-on` expression.
    pub expr: String,
    /// The row it applies to (`null`: a summary figure).
    pub row: Option<String>,
    /// The figure.
    pub field: String,
    /// Its value in each base run, then in each of this commit's runs.
    pub base: Vec<i64>,
    pub new: Vec<i64>,
    /// Whether the threshold was crossed (beyond the spread of the repeats).
    pub crossed: bool,
}

/// What a step was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// GOOD, the base every other commit is judged against.
    Base,
    /// BAD, which must cross a threshold.
    Bad,
    /// A commit the search chose.
    Probe,
    /// The first bad commit, run again.
    ConfirmBad,
    /// Its parent, run again.
    ConfirmParent,
}

/// One tested commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub commit: Commit,
    pub role: Role,
    /// `null` for the base.
    pub verdict: Option<Verdict>,
    /// Why it was skipped, or what was found.
    pub message: String,
    /// The run directories, relative to OUT.
    pub runs: Vec<String>,
    /// The thresholds' figures (empty for the base and for skipped steps).
    pub figures: Vec<GateFigure>,
    /// Whether the kernel was built for this step (false: from the cache).
    pub built: bool,
    pub build_s: f64,
    pub total_s: f64,
}

/// `bisect.json`'s echo of the request: a resume must ask for the same bisect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asked {
    pub tree: String,
    pub good: String,
    pub bad: String,
    pub arch: String,
    pub kernel: Option<String>,
    pub allocator: Option<String>,
    pub configs: Vec<String>,
    pub append: Vec<String>,
    pub workload: String,
    pub param: Option<u64>,
    pub exec: Option<String>,
    pub repeat: u32,
    pub confirm: u32,
    pub fail_on: Vec<String>,
    pub callsite_filter: Vec<String>,
}

/// The result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Found {
    /// The first bad commit, or `null` when none could be named.
    pub first_bad: Option<Commit>,
    /// Its parent (what it is compared with).
    pub parent: Option<Commit>,
    /// The first bad commit crossed and its parent did not on `confirm` further runs each.
    pub confirmed: bool,
    /// When only skipped commits were left: every commit that may be the first bad.
    pub candidates: Vec<Commit>,
    pub message: String,
}

/// `bisect.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Log {
    pub kmt_bisect: u32,
    pub asked: Asked,
    /// The commits after GOOD up to BAD, oldest first.
    pub range: Vec<Commit>,
    pub steps: Vec<Step>,
    pub result: Option<Found>,
    /// How to run one step again by hand.
    pub reproduce: Vec<String>,
}

/// What `kmt bisect` was asked to do.
#[derive(Debug, Clone)]
pub struct BisectRequest {
    pub tree: PathBuf,
    pub good: String,
    pub bad: String,
    pub arch: &'static Arch,
    /// `--kernel`: the version every commit must be (default: each commit's Makefile decides).
    pub kernel: Option<&'static KernelVersion>,
    /// `--allocator` (default: each version's default).
    pub allocator: Option<String>,
    pub repo: PathBuf,
    pub configs: Vec<PathBuf>,
    pub append: Vec<String>,
    pub workload: String,
    pub param: Option<u64>,
    pub exec: Option<crate::program::Exec>,
    pub repeat: u32,
    pub confirm: u32,
    pub fail_on: Vec<String>,
    pub callsite_filter: Vec<String>,
    pub out: PathBuf,
    pub accel: AccelChoice,
    pub timeout: Option<Duration>,
    pub smp: u32,
    pub memory_mib: u32,
    pub install_missing: bool,
    pub lines: usize,
}

impl Role {
    /// The word used in the log.
    pub fn name(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Bad => "bad",
            Role::Probe => "probe",
            Role::ConfirmBad => "confirm-bad",
            Role::ConfirmParent => "confirm-parent",
        }
    }
}

impl BisectRequest {
    fn asked(&self, good: &Commit, bad: &Commit) -> Asked {
        let s = |p: &PathBuf| p.display().to_string();
        Asked {
            tree: s(&self.tree),
            good: good.hash.clone(),
            bad: bad.hash.clone(),
            arch: self.arch.name.into(),
            kernel: self.kernel.map(|k| k.name.into()),
            allocator: self.allocator.clone(),
            configs: self.configs.iter().map(s).collect(),
            append: self.append.clone(),
            workload: self.workload.clone(),
            param: self.param,
            exec: self.exec.as_ref().map(|e| s(&e.program)),
            repeat: self.repeat,
            confirm: self.confirm,
            fail_on: self.fail_on.clone(),
            callsite_filter: self.callsite_filter.clone(),
        }
    }
}

/// The result of `kmt bisect`.
#[derive(Debug)]
pub struct BisectResult {
    /// Ok when a first bad commit was found and confirmed; [`Outcome::BisectInconclusive`]
    /// when not; a run's failure when the base could not be run.
    pub outcome: Outcome,
    pub log: Log,
    pub report: String,
}

/// Why a commit was skipped, or the error that stops the bisect.
enum StepFailure {
    Skip(String),
    Stop(RunError),
}

/// The version and allocator `commit` builds with, or why it is skipped.
fn pick_kernel(
    req: &BisectRequest,
    tree: &Tree,
    commit: &Commit,
) -> Result<(&'static KernelVersion, &'static Allocator), String> {
    let makefile = tree.makefile(commit).map_err(|e| e.to_string())?;
    let version = kernels::makefile_version(&makefile);
    let k = kernels::KERNELS
        .iter()
        .find(|k| Some(k.version) == version)
        .ok_or_else(|| match version {
            Some((a, b)) => format!(
                "the commit is Linux {a}.{b}; kmt has series for Linux {}",
                kernels::names().join(" and ")
            ),
            None => "the commit's Makefile has no VERSION and PATCHLEVEL".into(),
        })?;
    if let Some(want) = req.kernel.filter(|w| *w != k) {
        return Err(format!(
            "the commit is Linux {}, not --kernel {}",
            k.name, want.name
        ));
    }
    let a = match &req.allocator {
        Some(name) => k.allocator(name).map_err(|e| e.to_string())?,
        None => k.default_allocator(),
    };
    Ok((k, a))
}

/// Checks `commit` out in kmt's clone with the series and builds it incrementally.
fn build_commit(
    req: &BisectRequest,
    tree: &Tree,
    commit: &Commit,
    cache: &Cache,
) -> Result<(KernelRequest, KernelBuild), StepFailure> {
    let (version, allocator) = pick_kernel(req, tree, commit).map_err(StepFailure::Skip)?;
    let kreq = KernelRequest {
        arch: req.arch,
        kernel: version,
        allocator,
        repo: req.repo.clone(),
        kernel_src: Some(tree.clone.clone()),
        extra_fragments: req.configs.clone(),
    };
    let series =
        kernel::series(&req.repo, version).map_err(|e| StepFailure::Stop(RunError::Kernel(e)))?;
    let patched = tree.checkout(commit, &series).map_err(|e| match e {
        TreeError::Command(c) => StepFailure::Skip(format!(
            "the kmemtrace series for Linux {} does not apply: {}",
            version.name,
            c.tail.trim()
        )),
        e => StepFailure::Stop(RunError::Usage(UsageError::new(e.to_string()))),
    })?;
    let key = kernel::build_dir_key(&kreq).map_err(|e| StepFailure::Stop(e.into()))?;
    let log = tree
        .root
        .join("logs")
        .join(format!("build-{}.log", commit.short()));
    let _ = fs::remove_file(&log);
    let build_dir = tree.build_dir(&key);
    let inc = kernel::Incremental {
        src: &tree.clone,
        identity: format!("git tree {patched}"),
        build_dir: &build_dir,
        log: &log,
    };
    match kernel::build_incremental(&kreq, &inc, cache) {
        Ok(b) => Ok((kreq, b)),
        Err(_) if run::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) => Err(
            StepFailure::Stop(RunError::Interrupted("during a kernel build".into())),
        ),
        Err(kernel::KernelError::Command(c)) => Err(StepFailure::Skip(format!(
            "the kernel does not build: {} (log: {})",
            first_error(&c.tail).unwrap_or(c.status),
            c.log.display()
        ))),
        Err(e) => Err(StepFailure::Skip(format!(
            "the kernel does not build: {}",
            crate::error::chain(&e)
        ))),
    }
}

/// Tests one commit: checks it out with the series, builds, runs it `times` times and judges
/// the runs against `base` (none for the base itself).
#[allow(clippy::too_many_arguments)]
fn test_commit(
    req: &BisectRequest,
    tree: &Tree,
    cache: &Cache,
    thresholds: &[kmemtrace::Threshold],
    base: Option<&Loaded>,
    commit: &Commit,
    role: Role,
    times: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<Step, RunError> {
    let started = Instant::now();
    progress(&format!(
        "{} {} {}",
        role.name(),
        commit.short(),
        commit.subject
    ));
    let t = Instant::now();
    let built = build_commit(req, tree, commit, cache);
    let build_s = t.elapsed().as_secs_f64();
    let mut step = Step {
        commit: commit.clone(),
        role,
        verdict: None,
        message: String::new(),
        runs: Vec::new(),
        figures: Vec::new(),
        built: false,
        build_s,
        total_s: 0.0,
    };
    let ran = built.and_then(|(kreq, b)| {
        step.built = b.built;
        run_commit(req, &kreq, &b, commit, times, cache, progress)
    });
    match ran {
        Err(StepFailure::Stop(e)) => return Err(e),
        Err(StepFailure::Skip(why)) => {
            step.verdict = Some(Verdict::Skip);
            step.message = why;
        }
        Ok(runs) => match base.filter(|_| role != Role::Base) {
            None => {
                step.runs = runs;
                step.message = "the base".into();
            }
            Some(base) => {
                step.runs = runs;
                let (crossed, figures, _) = Loaded::read(req, thresholds, &step.runs)
                    .and_then(|new| judge(thresholds, base, &new))
                    .map_err(|e| {
                        RunError::Collector(format!("cannot judge {}: {e}", commit.short()))
                    })?;
                let n = figures.iter().filter(|f| f.crossed).count();
                step.verdict = Some(if crossed { Verdict::Bad } else { Verdict::Good });
                step.message = if crossed {
                    format!("{n} threshold(s) crossed")
                } else {
                    "no threshold crossed".into()
                };
                step.figures = figures;
            }
        },
    }
    step.total_s = started.elapsed().as_secs_f64();
    progress(&format!(
        "{} {}: {}",
        commit.short(),
        verdict_word(step.verdict),
        step.message
    ));
    Ok(step)
}

/// `kmt bisect-step`'s exit code for a verdict, as `git bisect run` reads it.
pub fn step_exit_code(v: Option<Verdict>) -> i32 {
    match v {
        Some(Verdict::Bad) => 1,
        Some(Verdict::Skip) => 125,
        _ => 0,
    }
}

/// The step-only mode's state directory when none is given: one per tree and command line
/// (`args`, the arguments as typed), in the cache.
pub fn default_state_dir(cache: &Cache, tree: &Path, args: &[String]) -> PathBuf {
    let tree = fs::canonicalize(tree).unwrap_or_else(|_| tree.to_path_buf());
    let mut k = crate::cache::KeyBuilder::default();
    k.text("tree", &tree.to_string_lossy());
    for a in args.iter().skip(1) {
        k.text("arg", a);
    }
    cache.root.join("bisect-step").join(k.key())
}

/// What `kmt bisect-step` found for the checked-out commit.
#[derive(Debug)]
pub struct StepResult {
    pub step: Step,
    /// Whether this call tested it (false: the state directory already had its verdict).
    pub tested: bool,
}

/// The step-only mode, for `git bisect run`: judges the commit checked out in the user's tree
/// against `--good` (whose runs are made once and kept in `req.out`, the state directory,
/// with every commit tested so far).
pub fn step_only(
    req: &BisectRequest,
    cache: &Cache,
    progress: &mut dyn FnMut(&str),
) -> Result<StepResult, RunError> {
    let thresholds = validate(req)?;
    let usage = |e: TreeError| RunError::Usage(UsageError::new(e.to_string()));
    let tree = Tree::open(&req.tree, cache).map_err(usage)?;
    let good = tree.resolve(&req.good).map_err(usage)?;
    let head = tree.resolve("HEAD").map_err(usage)?;
    let dirty = crate::proc::Cmd::new("git")
        .arg("-C")
        .arg(&tree.user)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .read()
        .unwrap_or_default();
    if !dirty.trim().is_empty() {
        tracing::warn!(
            "the tree has uncommitted changes: kmt builds the commit HEAD names, without them"
        );
    }
    fs::create_dir_all(&req.out).map_err(io("create", &req.out))?;
    let path = req.out.join("steps.json");
    let mut steps: Vec<Step> = match fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            RunError::Usage(UsageError::new(format!(
                "{}: not kmt's step state: {e}",
                path.display()
            )))
        })?,
        Err(_) => Vec::new(),
    };
    let save = |steps: &Vec<Step>| -> Result<(), RunError> {
        let json = serde_json::to_string_pretty(steps).unwrap_or_default() + "\n";
        fs::write(&path, json).map_err(io("write", &path))
    };
    if let Some(s) = steps
        .iter()
        .find(|s| s.role != Role::Base && s.commit == head)
    {
        return Ok(StepResult {
            step: s.clone(),
            tested: false,
        });
    }
    if !steps
        .iter()
        .any(|s| s.role == Role::Base && s.commit == good)
    {
        let base = test_commit(
            req,
            &tree,
            cache,
            &thresholds,
            None,
            &good,
            Role::Base,
            req.repeat,
            progress,
        )?;
        if base.verdict == Some(Verdict::Skip) {
            return Err(RunError::Usage(UsageError::new(format!(
                "--good {} cannot be run, so nothing can be judged: {}",
                good.short(),
                base.message
            ))));
        }
        steps.push(base);
        save(&steps)?;
    }
    let base = read_base(req, &thresholds, &steps, &good)?;
    // HEAD may be GOOD itself: its runs are then judged against its base runs, and pass.
    let step = test_commit(
        req,
        &tree,
        cache,
        &thresholds,
        Some(&base),
        &head,
        Role::Probe,
        req.repeat,
        progress,
    )?;
    steps.push(step.clone());
    save(&steps)?;
    Ok(StepResult { step, tested: true })
}

/// The first compiler or linker error of a build log's tail (make's own lines left out).
pub fn first_error(tail: &str) -> Option<String> {
    tail.lines()
        .find(|l| l.contains("error:") || l.contains("Error:") || l.contains("undefined reference"))
        .map(|l| l.trim().to_string())
}

/// Where a commit's runs go.
fn commit_dir(out: &Path, c: &Commit) -> PathBuf {
    out.join("commits").join(c.short())
}

/// Runs `commit` `times` more times (numbered after the runs it has), returning the new run
/// directories relative to `out`.
fn run_commit(
    req: &BisectRequest,
    kreq: &KernelRequest,
    build: &KernelBuild,
    commit: &Commit,
    times: u32,
    cache: &Cache,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, StepFailure> {
    let dir = commit_dir(&req.out, commit);
    fs::create_dir_all(&dir).map_err(|e| StepFailure::Stop(io("create", &dir)(e)))?;
    let first = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) as u32 + 1;
    let mut runs = Vec::new();
    for i in first..first + times {
        let rel = format!("commits/{}/run-{i}", commit.short());
        let rreq = RunRequest {
            kernel: kreq.clone(),
            workload: req.workload.clone(),
            param: req.param,
            exec: req.exec.clone(),
            out: Some(req.out.join(&rel)),
            accel: req.accel,
            timeout: req.timeout,
            smp: req.smp,
            memory_mib: req.memory_mib,
            append: req.append.clone(),
            stack_depth: 0,
            install_missing: req.install_missing,
            prebuilt: Some(build.clone()),
        };
        let res = run::run(&rreq, cache);
        progress(&format!(
            "{} {} run {i}: {} ({:.1} s)",
            commit.short(),
            commit.subject,
            res.outcome,
            res.manifest.phases.total_s
        ));
        match res.outcome {
            Outcome::Ok => runs.push(rel),
            Outcome::Interrupted
            | Outcome::HarnessError
            | Outcome::UsageError
            | Outcome::PrerequisitesMissing
            | Outcome::ImageBuildFailed => {
                return Err(StepFailure::Stop(RunError::Collector(format!(
                    "{rel}: {}: {}",
                    res.outcome, res.message
                ))))
            }
            o => {
                return Err(StepFailure::Skip(format!(
                    "run {i} failed ({o}): {} (in {rel})",
                    res.message.lines().next().unwrap_or("")
                )))
            }
        }
    }
    Ok(runs)
}

fn load_reports(
    out: &Path,
    runs: &[String],
    filter: &[String],
) -> Result<Vec<kmemtrace::Report>, String> {
    let opts = kmemtrace::AnalyzeOptions {
        callsite_filter: filter.to_vec(),
        ..Default::default()
    };
    runs.iter()
        .map(|r| {
            let t = out.join(r).join("trace");
            kmemtrace::load_side(&t, &opts).map_err(|e| format!("{}: {e}", t.display()))
        })
        .collect()
}

/// A gate's key: its expression and the row it was evaluated on.
type GateKey = (String, Option<String>);

/// Runs read for judging, once: their reports and each gate's value in each of them (the gate
/// evaluated on that run alone).
struct Loaded {
    reports: Vec<kmemtrace::Report>,
    values: BTreeMap<GateKey, Vec<i64>>,
}

fn diff_options(thresholds: &[kmemtrace::Threshold]) -> kmemtrace::DiffOptions {
    kmemtrace::DiffOptions {
        by_address: false,
        fail_on: thresholds.to_vec(),
        ..Default::default()
    }
}

impl Loaded {
    fn read(
        req: &BisectRequest,
        thresholds: &[kmemtrace::Threshold],
        runs: &[String],
    ) -> Result<Loaded, String> {
        let reports = load_reports(&req.out, runs, &req.callsite_filter)?;
        let opts = diff_options(thresholds);
        let mut values: BTreeMap<GateKey, Vec<i64>> = BTreeMap::new();
        for r in &reports {
            let one = std::slice::from_ref(r);
            if let Ok(d1) = kmemtrace::diff("", one, "", one, &opts) {
                for g in d1.gates {
                    values
                        .entry((g.expr, g.row))
                        .or_default()
                        .push(g.delta.base);
                }
            }
        }
        Ok(Loaded { reports, values })
    }
}

/// The diff of `base` and `new` runs with the thresholds, and each gate's value per run.
fn judge(
    thresholds: &[kmemtrace::Threshold],
    base: &Loaded,
    new: &Loaded,
) -> Result<(bool, Vec<GateFigure>, kmemtrace::Diff), String> {
    let d = kmemtrace::diff(
        "base",
        &base.reports,
        "new",
        &new.reports,
        &diff_options(thresholds),
    )
    .map_err(|e| e.to_string())?;
    let figures = d
        .gates
        .iter()
        .map(|g| {
            let k = (g.expr.clone(), g.row.clone());
            GateFigure {
                expr: g.expr.clone(),
                row: g.row.clone(),
                field: g.field.clone(),
                base: base.values.get(&k).cloned().unwrap_or_default(),
                new: new.values.get(&k).cloned().unwrap_or_default(),
                crossed: g.crossed,
            }
        })
        .collect();
    Ok((d.gates.iter().any(|g| g.crossed), figures, d))
}

/// The run directories of the steps `pick` selects, in order.
fn runs_where(steps: &[Step], pick: impl Fn(&Step) -> bool) -> Vec<String> {
    steps
        .iter()
        .filter(|s| pick(s))
        .flat_map(|s| s.runs.iter().cloned())
        .collect()
}

/// The base runs of `steps`, read once for every step judged against them.
fn read_base(
    req: &BisectRequest,
    thresholds: &[kmemtrace::Threshold],
    steps: &[Step],
    good: &Commit,
) -> Result<Loaded, RunError> {
    let runs = runs_where(steps, |s| s.role == Role::Base && s.commit == *good);
    Loaded::read(req, thresholds, &runs)
        .map_err(|e| RunError::Collector(format!("cannot read the base runs: {e}")))
}

/// Mean and relative standard deviation (in %, sample) of `v`.
pub fn mean_stddev(v: &[i64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    if v.len() < 2 || mean == 0.0 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 100.0 * var.sqrt() / mean.abs())
}

/// The table 0-day/LKP reports use, which kernel developers read on the mailing lists: per
/// figure the base's mean `± stddev%`, the `%change` of the means, the new side's mean. Pure.
pub fn lkp_table(base_label: &str, new_label: &str, figures: &[GateFigure]) -> String {
    let mut s = format!("{base_label:>16} {new_label:>27}\n");
    s.push_str(&format!("{:-<16} {:-<27}\n", "", ""));
    s.push_str(&format!(
        "{:>16} {:>11} {:>15}\n",
        "%stddev", "%change", "%stddev"
    ));
    s.push_str(&format!("{:>13} {:>10} {:>16}\n", "\\", "|", "\\"));
    for f in figures {
        let (bm, bs) = mean_stddev(&f.base);
        let (nm, ns) = mean_stddev(&f.new);
        let change = if bm != 0.0 {
            format!("{:+.1}%", 100.0 * (nm - bm) / bm.abs())
        } else {
            "n/a".into()
        };
        let name = match &f.row {
            Some(r) => format!("{r}.{}", f.field),
            None => f.field.clone(),
        };
        // LKP leaves the column empty below 1 %.
        let pm = |sd: f64| {
            if sd >= 1.0 {
                format!("± {:>2.0}%", sd)
            } else {
                String::new()
            }
        };
        s.push_str(&format!(
            "{bm:>10.0} {:>5} {change:>10} {nm:>10.0} {:>5}  {name}{}\n",
            pm(bs),
            pm(ns),
            if f.crossed { "  (crossed)" } else { "" }
        ));
    }
    s
}

/// Checks the arguments before anything is cloned, built, booted or written.
pub fn validate(req: &BisectRequest) -> Result<Vec<kmemtrace::Threshold>, UsageError> {
    if req.fail_on.is_empty() {
        return Err(UsageError::new(
            "kmt bisect needs at least one --fail-on EXPR: the figure that tells bad from good",
        ));
    }
    let t = req
        .fail_on
        .iter()
        .map(|e| kmemtrace::Threshold::parse(e).map_err(|e| UsageError::new(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if !req.tree.join(".git").exists() {
        return Err(UsageError::new(format!(
            "--kernel-src {}: kmt bisect needs a git work tree",
            req.tree.display()
        )));
    }
    Ok(t)
}

/// Loads OUT/bisect.json when OUT holds a bisect of the same request (resume), refuses any
/// other non-empty OUT, and returns None for a new or empty one.
fn resume(out: &Path, asked: &Asked) -> Result<Option<Log>, UsageError> {
    let path = out.join("bisect.json");
    if path.is_file() {
        let text = fs::read_to_string(&path)
            .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
        let log: Log = serde_json::from_str(&text).map_err(|e| {
            UsageError::new(format!("{}: not a kmt bisect log: {e}", path.display()))
        })?;
        if &log.asked != asked {
            return Err(UsageError::new(format!(
                "{} holds another bisect (its request differs); give a new --out, or the same arguments to resume it",
                out.display()
            )));
        }
        return Ok(Some(log));
    }
    run::check_out_dir(out)?;
    Ok(None)
}

/// Runs (or resumes) the bisect.
pub fn bisect(
    req: &BisectRequest,
    cache: &Cache,
    progress: &mut dyn FnMut(&str),
) -> Result<BisectResult, RunError> {
    let thresholds = validate(req)?;
    let usage = |e: TreeError| RunError::Usage(UsageError::new(e.to_string()));
    let tree = Tree::open(&req.tree, cache).map_err(usage)?;
    let good = tree.resolve(&req.good).map_err(usage)?;
    let bad = tree.resolve(&req.bad).map_err(usage)?;
    let range = tree.range(&good, &bad).map_err(usage)?;
    let asked = req.asked(&good, &bad);
    let mut log = match resume(&req.out, &asked)? {
        Some(l) => {
            progress(&format!(
                "resuming: {} step(s) already in the log",
                l.steps.len()
            ));
            l
        }
        None => Log {
            kmt_bisect: 1,
            asked,
            range: range.clone(),
            steps: Vec::new(),
            result: None,
            reproduce: Vec::new(),
        },
    };
    fs::create_dir_all(&req.out).map_err(io("create", &req.out))?;
    progress(&format!(
        "{} commit(s) after {} up to {}: at most {} step(s) after the base, without skips",
        range.len(),
        good.short(),
        bad.short(),
        max_steps(range.len())
    ));
    // Runs of a step the log does not hold were interrupted: start that step again.
    let logged: Vec<&str> = log
        .steps
        .iter()
        .flat_map(|s| s.runs.iter().map(String::as_str))
        .collect();
    if let Ok(dirs) = fs::read_dir(req.out.join("commits")) {
        for d in dirs.flatten() {
            for r in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let rel = format!(
                    "commits/{}/{}",
                    d.file_name().to_string_lossy(),
                    r.file_name().to_string_lossy()
                );
                if !logged.contains(&rel.as_str()) {
                    let _ = fs::remove_dir_all(r.path());
                }
            }
        }
    }
    let save = |log: &Log| -> Result<(), RunError> {
        let p = req.out.join("bisect.json");
        let tmp = req.out.join(".bisect.json.tmp");
        let json = serde_json::to_string_pretty(log).unwrap_or_default() + "\n";
        fs::write(&tmp, json).map_err(io("write", &tmp))?;
        fs::rename(&tmp, &p).map_err(io("write", &p))
    };

    // The base's runs, read once, for every commit judged after it.
    let mut base_read: Option<Loaded> = None;
    let mut test =
        |log: &mut Log, commit: &Commit, role: Role, times: u32| -> Result<Step, RunError> {
            if role != Role::Base && base_read.is_none() {
                base_read = Some(read_base(req, &thresholds, &log.steps, &good)?);
            }
            let step = test_commit(
                req,
                &tree,
                cache,
                &thresholds,
                base_read.as_ref(),
                commit,
                role,
                times,
                progress,
            )?;
            log.steps.push(step.clone());
            save(log)?;
            Ok(step)
        };

    let done = |log: &Log, role: Role, c: &Commit| {
        log.steps
            .iter()
            .find(|s| s.role == role && s.commit == *c)
            .cloned()
    };
    // The base.
    let base = match done(&log, Role::Base, &good) {
        Some(s) => s,
        None => test(&mut log, &good, Role::Base, req.repeat)?,
    };
    if base.verdict == Some(Verdict::Skip) {
        return finish(
            req,
            log,
            Found {
                first_bad: None,
                parent: None,
                confirmed: false,
                candidates: Vec::new(),
                message: format!(
                    "--good {} cannot be run, so nothing can be judged: {}",
                    good.short(),
                    base.message
                ),
            },
            &thresholds,
        );
    }
    // BAD must be bad.
    let n = range.len();
    let mut verdicts: Vec<Option<Verdict>> = vec![None; n];
    for s in log
        .steps
        .iter()
        .filter(|s| matches!(s.role, Role::Bad | Role::Probe))
    {
        if let Some(i) = range.iter().position(|c| *c == s.commit) {
            verdicts[i] = s.verdict;
        }
    }
    if verdicts[n - 1].is_none() {
        verdicts[n - 1] = test(&mut log, &bad, Role::Bad, req.repeat)?.verdict;
    }
    match verdicts[n - 1] {
        Some(Verdict::Bad) => {}
        v => {
            let s = done(&log, Role::Bad, &bad)
                .map(|s| s.message)
                .unwrap_or_default();
            return finish(
                req,
                log,
                Found {
                    first_bad: None,
                    parent: None,
                    confirmed: false,
                    candidates: Vec::new(),
                    message: if v == Some(Verdict::Good) {
                        format!(
                            "--bad {} crosses no threshold against --good {}: nothing to bisect",
                            bad.short(),
                            good.short()
                        )
                    } else {
                        format!("--bad {} cannot be judged: {s}", bad.short())
                    },
                },
                &thresholds,
            );
        }
    }
    let first = loop {
        match next(&verdicts) {
            Next::Test(i) => {
                verdicts[i] = test(&mut log, &range[i], Role::Probe, req.repeat)?.verdict;
            }
            Next::Found(i) => break i,
            Next::OnlySkipped(c) => {
                let candidates: Vec<Commit> = c.iter().map(|&i| range[i].clone()).collect();
                return finish(
                    req,
                    log,
                    Found {
                        first_bad: None,
                        parent: None,
                        confirmed: false,
                        message: format!(
                            "only skipped commits are left: the first bad commit is one of {}",
                            candidates
                                .iter()
                                .map(|c| c.short())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        candidates,
                    },
                    &thresholds,
                );
            }
        }
    };
    let first_bad = range[first].clone();
    let parent = if first == 0 {
        good.clone()
    } else {
        range[first - 1].clone()
    };
    // Confirmation: the first bad commit crosses again, its parent does not.
    let mut confirmed = true;
    let mut why = Vec::new();
    for (c, role, want) in [
        (&first_bad, Role::ConfirmBad, Verdict::Bad),
        (&parent, Role::ConfirmParent, Verdict::Good),
    ] {
        let s = match done(&log, role, c) {
            Some(s) => s,
            None => test(&mut log, c, role, req.confirm)?,
        };
        if s.verdict != Some(want) {
            confirmed = false;
            why.push(format!(
                "{} was {} on its confirmation runs ({})",
                c.short(),
                verdict_word(s.verdict),
                s.message
            ));
        }
    }
    let message = if confirmed {
        format!(
            "{} is the first bad commit, confirmed on {} further run(s) of it and of its parent",
            first_bad.short(),
            req.confirm
        )
    } else {
        format!(
            "{} looked like the first bad commit, but it is NOT confirmed: {}",
            first_bad.short(),
            why.join("; ")
        )
    };
    finish(
        req,
        log,
        Found {
            first_bad: Some(first_bad),
            parent: Some(parent),
            confirmed,
            candidates: Vec::new(),
            message,
        },
        &thresholds,
    )
}

fn verdict_word(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Good) => "good",
        Some(Verdict::Bad) => "bad",
        Some(Verdict::Skip) => "skip",
        None => "base",
    }
}

/// The command that runs one step again by hand: `git bisect run` with the step-only mode.
pub fn reproduce(req: &BisectRequest, good: &str, bad: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "bisect-step".into(),
        "--kernel-src".into(),
        ".".into(),
        "--good".into(),
        good.into(),
        "--arch".into(),
        req.arch.name.into(),
    ];
    let mut opt = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    if let Some(k) = req.kernel {
        opt("kernel", k.name.into());
    }
    if let Some(a) = &req.allocator {
        opt("allocator", a.clone());
    }
    match &req.exec {
        Some(e) => {
            opt("exec", e.program.display().to_string());
            for a in &e.args {
                opt("exec-arg", a.clone());
            }
        }
        None => opt("workload", req.workload.clone()),
    }
    if let Some(p) = req.param {
        opt("param", p.to_string());
    }
    opt("repeat", req.repeat.to_string());
    for c in &req.configs {
        opt("config", c.display().to_string());
    }
    for a in &req.append {
        opt("append", a.clone());
    }
    if req.callsite_filter != crate::compare::default_callsite_filter(&req.workload) {
        for g in &req.callsite_filter {
            opt("callsite-filter", g.clone());
        }
    }
    for f in &req.fail_on {
        opt("fail-on", f.clone());
    }
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let step = crate::qemu::shell_line("kmt", &args);
    vec![
        format!(
            "cd {}",
            crate::qemu::shell_line(&req.tree.display().to_string(), &[])
        ),
        format!("git checkout {bad}   # or any commit: the step judges what is checked out"),
        step.clone(),
        format!("git bisect start {bad} {good} && git bisect run {step}"),
    ]
}

/// Writes the diff of the first bad commit and its parent, the report and the final log.
fn finish(
    req: &BisectRequest,
    mut log: Log,
    found: Found,
    thresholds: &[kmemtrace::Threshold],
) -> Result<BisectResult, RunError> {
    let mut report = format!(
        "kmt bisect: {} on {}, --fail-on {}\n\n",
        req.workload,
        req.arch.name,
        req.fail_on.join(" --fail-on ")
    );
    let runs_of = |c: &Commit| runs_where(&log.steps, |s| s.commit == *c);
    if let (Some(f), Some(p)) = (&found.first_bad, &found.parent) {
        report.push_str(&format!(
            "first bad commit: {} (\"{}\")\n{}\n\n",
            f.short(),
            f.subject,
            if found.confirmed {
                "confirmed"
            } else {
                "NOT CONFIRMED"
            }
        ));
        let (pr, fr) = (runs_of(p), runs_of(f));
        if !pr.is_empty() && !fr.is_empty() {
            let judged = Loaded::read(req, thresholds, &pr).and_then(|parent| {
                judge(thresholds, &parent, &Loaded::read(req, thresholds, &fr)?)
            });
            match judged {
                Ok((_, figures, d)) => {
                    let dir = req.out.join("first-bad");
                    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                    let t = kmemtrace::diff::DiffTextOptions { lines: req.lines };
                    let mut d = d;
                    d.base.label = format!("{} (parent)", p.short());
                    d.new.label = format!("{} (first bad)", f.short());
                    let put = |name: &str, text: String| {
                        fs::write(dir.join(name), text).map_err(io("write", dir.join(name)))
                    };
                    put("diff.txt", kmemtrace::diff::render_diff_text(&d, &t))?;
                    put("diff.md", kmemtrace::diff::render_diff_markdown(&d, &t))?;
                    put("diff.json", d.to_json())?;
                    report.push_str(&format!(
                        "{} runs of the parent against {} runs of the first bad commit:\n\n{}\n",
                        pr.len(),
                        fr.len(),
                        lkp_table(
                            &p.short()[..7.min(p.short().len())],
                            &f.short()[..7.min(f.short().len())],
                            &figures
                        )
                    ));
                    report.push_str(&format!(
                        "the whole diff: {}\n\n",
                        dir.join("diff.txt").display()
                    ));
                }
                Err(e) => report.push_str(&format!("(no diff: {e})\n\n")),
            }
        }
    }
    report.push_str(&format!("{}\n\nsteps:\n", found.message));
    for s in &log.steps {
        let figs: Vec<String> = s
            .figures
            .iter()
            .map(|f| {
                let (b, _) = mean_stddev(&f.base);
                let (n, _) = mean_stddev(&f.new);
                format!(
                    "{} {:.0} -> {:.0}",
                    f.row
                        .as_deref()
                        .map(|r| format!("{r}.{}", f.field))
                        .unwrap_or(f.field.clone()),
                    b,
                    n
                )
            })
            .collect();
        report.push_str(&format!(
            "  {:<14} {} {:<5} {:>3} run(s) {:>6.1} s (build {:.1} s{})  {}{}\n",
            s.role.name(),
            s.commit.short(),
            verdict_word(s.verdict),
            s.runs.len(),
            s.total_s,
            s.build_s,
            if s.built || s.verdict == Some(Verdict::Skip) {
                ""
            } else {
                ", cached"
            },
            s.commit.subject,
            if figs.is_empty() {
                if s.verdict == Some(Verdict::Skip) {
                    format!(": {}", s.message)
                } else {
                    String::new()
                }
            } else {
                format!("  [{}]", figs.join(", "))
            }
        ));
    }
    let good = log.asked.good.clone();
    let bad = log.asked.bad.clone();
    log.reproduce = reproduce(req, &good[..12.min(good.len())], &bad[..12.min(bad.len())]);
    report.push_str("\nto run one step again by hand (0 good, 1 bad, 125 skip):\n");
    for l in &log.reproduce {
        report.push_str(&format!("  {l}\n"));
    }
    let outcome = if found.confirmed && found.first_bad.is_some() {
        Outcome::Ok
    } else {
        Outcome::BisectInconclusive
    };
    log.result = Some(found);
    let json = serde_json::to_string_pretty(&log).unwrap_or_default() + "\n";
    let p = req.out.join("bisect.json");
    fs::write(&p, json).map_err(io("write", &p))?;
    let md = req.out.join("bisect.md");
    fs::write(&md, format!("```\n{report}```\n")).map_err(io("write", &md))?;
    Ok(BisectResult {
        outcome,
        log,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    /// Drives [`next`] against a planted history: `first_bad` is the first index whose
    /// verdict is bad; `skip` are indices that cannot be built.
    fn search(n: usize, first_bad: usize, skip: &[usize]) -> (Next, usize) {
        let mut v = vec![None; n];
        v[n - 1] = Some(if skip.contains(&(n - 1)) { Skip } else { Bad });
        let mut steps = 0;
        loop {
            match next(&v) {
                Next::Test(i) => {
                    assert!(v[i].is_none(), "index {i} tested twice");
                    steps += 1;
                    v[i] = Some(if skip.contains(&i) {
                        Skip
                    } else if i >= first_bad {
                        Bad
                    } else {
                        Good
                    });
                }
                other => return (other, steps),
            }
        }
    }

    #[test]
    fn the_planted_commit_is_found_wherever_it_is() {
        for n in 1..=40 {
            for first in 0..n {
                let (r, steps) = search(n, first, &[]);
                assert_eq!(r, Next::Found(first), "n={n} first={first}");
                assert!(
                    steps < max_steps(n) as usize,
                    "n={n} first={first} steps={steps}"
                );
            }
        }
    }

    #[test]
    fn skipped_commits_are_stepped_around() {
        // 16 commits, the 8th (index 7) bad, index 5 does not build.
        assert_eq!(search(16, 7, &[5]).0, Next::Found(7));
        // The skipped commit sits right before the first bad: ambiguous, as git bisect says.
        assert_eq!(search(16, 7, &[6]).0, Next::OnlySkipped(vec![6, 7]));
        // The first bad commit itself does not build: its successor is named with it.
        assert_eq!(search(16, 7, &[7]).0, Next::OnlySkipped(vec![7, 8]));
        assert_eq!(search(16, 0, &[3, 4, 9]).0, Next::Found(0));
        assert_eq!(search(16, 15, &[3, 4, 9]).0, Next::Found(15));
    }

    #[test]
    fn max_steps_is_log2_plus_the_bad_commit() {
        assert_eq!(max_steps(1), 1);
        assert_eq!(max_steps(2), 2);
        assert_eq!(max_steps(16), 5);
        assert_eq!(max_steps(17), 6);
    }

    #[test]
    fn the_lkp_table_has_change_and_stddev_columns() {
        let f = GateFigure {
            expr: "callsite:alloc_pipe_info:bytes_allocated:+10%".into(),
            row: Some("alloc_pipe_info".into()),
            field: "bytes_allocated".into(),
            base: vec![1000, 1000, 1000],
            new: vec![1500, 1600, 1400],
            crossed: true,
        };
        let t = lkp_table("abc1234", "def5678", &[f]);
        assert!(t.contains("%change"), "{t}");
        assert!(t.contains("+50.0%"), "{t}");
        assert!(t.contains("±"), "{t}");
        assert!(
            t.contains("alloc_pipe_info.bytes_allocated  (crossed)"),
            "{t}"
        );
        assert_eq!(mean_stddev(&[1500, 1600, 1400]).0, 1500.0);
        assert!((mean_stddev(&[1500, 1600, 1400]).1 - 100.0 / 1500.0 * 100.0).abs() < 1e-9);
    }

    fn asked() -> Asked {
        Asked {
            tree: "/src/linux".into(),
            good: "a".repeat(40),
            bad: "b".repeat(40),
            arch: "x86_64".into(),
            kernel: None,
            allocator: None,
            configs: Vec::new(),
            append: Vec::new(),
            workload: "fork".into(),
            param: None,
            exec: None,
            repeat: 1,
            confirm: 2,
            fail_on: vec!["bytes_allocated:+5%".into()],
            callsite_filter: Vec::new(),
        }
    }

    /// An interrupted bisect resumes from its log with the same arguments; other arguments, or
    /// a directory that is not a bisect's, are refused without writing to it.
    #[test]
    fn a_bisect_resumes_only_its_own_log() {
        let d = tempfile::tempdir().unwrap();
        assert!(resume(&d.path().join("new"), &asked()).unwrap().is_none());
        let log = Log {
            kmt_bisect: 1,
            asked: asked(),
            range: Vec::new(),
            steps: Vec::new(),
            result: None,
            reproduce: Vec::new(),
        };
        fs::write(
            d.path().join("bisect.json"),
            serde_json::to_string(&log).unwrap(),
        )
        .unwrap();
        assert!(resume(d.path(), &asked()).unwrap().is_some());
        let other = Asked {
            repeat: 3,
            ..asked()
        };
        let e = resume(d.path(), &other).unwrap_err();
        assert!(e.to_string().contains("another bisect"), "{e}");
        let mine = tempfile::tempdir().unwrap();
        fs::write(mine.path().join("notes.txt"), "mine").unwrap();
        assert!(resume(mine.path(), &asked()).is_err());
        assert_eq!(fs::read_dir(mine.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_build_failure_is_told_by_its_first_error() {
        let tail =
            "  CC      fs/open.o\nfs/open.c:1663:2: error: #error \"no\"\n make[4]: *** Error 1\n";
        assert_eq!(
            first_error(tail).as_deref(),
            Some("fs/open.c:1663:2: error: #error \"no\"")
        );
        assert_eq!(
            first_error("make: *** [Makefile:236: __sub-make] Error 2"),
            None
        );
    }

    #[test]
    fn step_exit_codes_are_git_bisect_run_s() {
        assert_eq!(step_exit_code(Some(Good)), 0);
        assert_eq!(step_exit_code(Some(Bad)), 1);
        assert_eq!(step_exit_code(Some(Skip)), 125);
    }
}
