// SPDX-License-Identifier: GPL-2.0-only
//! `kmt compare`: the same workload on two kernels (two source trees, two sets of Kconfig
//! fragments, or two kernel command lines), `repeat` times each, on one or more architectures,
//! then `kmemtrace diff` of the two sets of runs per architecture.
//!
//! A change counts only when it is outside the spread of the repeats: each figure's values over
//! the base runs and over the new runs are two ranges, and only disjoint ranges whose medians
//! differ by more than the wider range are a change (see [`kmemtrace::diff`]). The runs alternate base, new, base, new… so that a slow drift of
//! the machine falls on both sides.
//!
//! Everything lands in one directory:
//!
//! ```text
//! OUT/compare.json                  what was compared, and the verdict per architecture
//! OUT/compare.md                    every architecture's diff as markdown (a PR comment)
//! OUT/<arch>/base/run-<i>/          kmt run output directories (manifest, trace, report…)
//! OUT/<arch>/new/run-<i>/
//! OUT/<arch>/diff.txt, diff.md, diff.json, diff.svg
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::arch::Arch;
use crate::cache::Cache;
use crate::error::{RunError, UsageError};
use crate::kernel::KernelRequest;
use crate::kernels::{Allocator, KernelVersion};
use crate::outcome::Outcome;
use crate::run::{self, AccelChoice, RunRequest};

/// What differs between the two sides (anything left empty is shared).
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// The kernel version (its Debian source package and patch series).
    #[serde(serialize_with = "version_name")]
    pub kernel: &'static KernelVersion,
    /// The slab allocator.
    #[serde(serialize_with = "allocator_name")]
    pub allocator: &'static Allocator,
    /// A kernel tree instead of Debian's source package.
    pub kernel_src: Option<PathBuf>,
    /// Extra Kconfig fragments.
    pub configs: Vec<PathBuf>,
    /// Extra kernel command-line arguments.
    pub append: Vec<String>,
}

fn version_name<S: serde::Serializer>(k: &&KernelVersion, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name)
}

fn allocator_name<S: serde::Serializer>(a: &&Allocator, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name)
}

impl Default for Side {
    /// The default kernel (6.12) with its default allocator (SLUB), nothing else.
    fn default() -> Side {
        let kernel = crate::kernels::default_kernel();
        Side {
            kernel,
            allocator: kernel.default_allocator(),
            kernel_src: None,
            configs: Vec::new(),
            append: Vec::new(),
        }
    }
}

/// How a side is named in the diff: what sets it apart (kernel version and allocator when the
/// sides differ in them, the tree, the fragments, the command line), else "default kernel".
pub fn side_label(s: &Side, base: &Side, new: &Side) -> String {
    let mut parts = Vec::new();
    if base.kernel != new.kernel || base.allocator != new.allocator {
        parts.push(format!("Linux {} {}", s.kernel.name, s.allocator.name));
    }
    if let Some(k) = &s.kernel_src {
        parts.push(k.display().to_string());
    }
    parts.extend(s.configs.iter().map(|c| format!("+{}", c.display())));
    parts.extend(s.append.iter().cloned());
    if parts.is_empty() {
        "default kernel".to_string()
    } else {
        parts.join(" ")
    }
}

/// Which side a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideName {
    Base,
    New,
}

impl SideName {
    pub fn name(self) -> &'static str {
        match self {
            SideName::Base => "base",
            SideName::New => "new",
        }
    }
}

/// What `kmt compare` was asked to do.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub arches: Vec<&'static Arch>,
    pub repo: PathBuf,
    pub base: Side,
    pub new: Side,
    pub workload: String,
    pub param: Option<u64>,
    /// The `exec` workload's program (the same on both sides).
    pub exec: Option<crate::program::Exec>,
    /// Runs per side and architecture (at least 1).
    pub repeat: u32,
    pub out: PathBuf,
    pub accel: AccelChoice,
    pub timeout: Option<Duration>,
    pub smp: u32,
    pub memory_mib: u32,
    /// Return addresses per record on both sides (`kmt run --stack-depth`).
    pub stack_depth: u32,
    pub install_missing: bool,
    /// Call-site globs the diff is restricted to (empty: every record).
    pub callsite_filter: Vec<String>,
    /// `--fail-on` expressions, checked with [`kmemtrace::Threshold::parse`] before any run.
    pub fail_on: Vec<String>,
    /// Call-site rows in the text and markdown diffs.
    pub lines: usize,
}

/// The call-site filter a workload is compared with by default: the selftest's own functions for
/// the selftest (the rest of the kernel allocates concurrently and differently on every run),
/// nothing for the others.
pub fn default_callsite_filter(workload: &str) -> Vec<String> {
    crate::workload::find(workload)
        .map(|w| w.callsite_filter.iter().map(|g| g.to_string()).collect())
        .unwrap_or_default()
}

/// One run of the plan.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub arch: &'static Arch,
    pub side: SideName,
    /// 1-based repeat number.
    pub index: u32,
    pub req: RunRequest,
}

/// Where one side's runs of an architecture go.
pub fn side_dir(out: &Path, arch: &Arch, side: SideName) -> PathBuf {
    out.join(arch.name).join(side.name())
}

/// Every run, per architecture alternating base and new. Pure.
pub fn plan(req: &CompareRequest) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for &arch in &req.arches {
        for index in 1..=req.repeat.max(1) {
            for (side, s) in [(SideName::Base, &req.base), (SideName::New, &req.new)] {
                runs.push(PlannedRun {
                    arch,
                    side,
                    index,
                    req: RunRequest {
                        kernel: KernelRequest {
                            arch,
                            kernel: s.kernel,
                            allocator: s.allocator,
                            repo: req.repo.clone(),
                            kernel_src: s.kernel_src.clone(),
                            extra_fragments: s.configs.clone(),
                        },
                        workload: req.workload.clone(),
                        param: req.param,
                        exec: req.exec.clone(),
                        out: Some(side_dir(&req.out, arch, side).join(format!("run-{index}"))),
                        accel: req.accel,
                        timeout: req.timeout,
                        smp: req.smp,
                        memory_mib: req.memory_mib,
                        append: s.append.clone(),
                        stack_depth: req.stack_depth,
                        install_missing: req.install_missing,
                        prebuilt: None,
                    },
                });
            }
        }
    }
    runs
}

/// One architecture's result.
#[derive(Debug, Clone, Serialize)]
pub struct ArchResult {
    pub arch: &'static str,
    pub outcome: Outcome,
    pub message: String,
    /// Whether any figure changed beyond the spread of the repeats.
    pub changed: bool,
    /// `--fail-on` thresholds crossed.
    pub thresholds_crossed: usize,
    /// The diff, when every run of both sides succeeded.
    #[serde(skip)]
    pub diff: Option<kmemtrace::Diff>,
}

impl ArchResult {
    /// An architecture whose runs or analysis failed: no diff.
    fn failed(arch: &'static str, outcome: Outcome, message: String) -> Self {
        ArchResult {
            arch,
            outcome,
            message,
            changed: false,
            thresholds_crossed: 0,
            diff: None,
        }
    }

    /// An architecture whose runs were diffed: ok, or threshold_crossed.
    fn of_diff(arch: &'static str, d: kmemtrace::Diff) -> Self {
        let crossed = d.gates.iter().filter(|g| g.crossed).count();
        ArchResult {
            arch,
            outcome: if crossed > 0 {
                Outcome::ThresholdCrossed
            } else {
                Outcome::Ok
            },
            message: match (crossed, d.changed()) {
                (0, false) => "no significant change".to_string(),
                (0, true) => "changes found, no threshold crossed".to_string(),
                (n, _) => format!("{n} threshold(s) crossed"),
            },
            changed: d.changed(),
            thresholds_crossed: crossed,
            diff: Some(d),
        }
    }
}

/// `compare.json`.
#[derive(Debug, Clone, Serialize)]
struct CompareManifest<'a> {
    kmt_compare: u32,
    workload: &'a str,
    param: Option<u64>,
    repeat: u32,
    base: &'a Side,
    new: &'a Side,
    callsite_filter: &'a [String],
    fail_on: &'a [String],
    results: &'a [ArchResult],
}

/// The result of `kmt compare`.
#[derive(Debug)]
pub struct CompareResult {
    /// Ok; the first failed run's outcome; or [`Outcome::ThresholdCrossed`].
    pub outcome: Outcome,
    pub arches: Vec<ArchResult>,
    pub out: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), RunError> {
    fs::write(path, text).map_err(crate::error::io("write", path))
}

/// Diff the runs of one architecture and write `diff.*` into `dir`.
fn diff_arch(
    req: &CompareRequest,
    arch: &Arch,
    thresholds: &[kmemtrace::Threshold],
) -> Result<kmemtrace::Diff, String> {
    let opts = kmemtrace::AnalyzeOptions {
        callsite_filter: req.callsite_filter.clone(),
        ..Default::default()
    };
    let load = |side: SideName| -> Result<Vec<kmemtrace::Report>, String> {
        (1..=req.repeat.max(1))
            .map(|i| {
                let t = side_dir(&req.out, arch, side)
                    .join(format!("run-{i}"))
                    .join("trace");
                kmemtrace::load_side(&t, &opts).map_err(|e| format!("{}: {e}", t.display()))
            })
            .collect()
    };
    let label = |s: &Side| side_label(s, &req.base, &req.new);
    let d = kmemtrace::diff(
        &format!("base: {}", label(&req.base)),
        &load(SideName::Base)?,
        &format!("new: {}", label(&req.new)),
        &load(SideName::New)?,
        &kmemtrace::DiffOptions {
            by_address: false,
            fail_on: thresholds.to_vec(),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let dir = req.out.join(arch.name);
    let put = |path: &Path, text: &str| write(path, text).map_err(|e| e.chain());
    let t = kmemtrace::diff::DiffTextOptions { lines: req.lines };
    put(
        &dir.join("diff.txt"),
        &kmemtrace::diff::render_diff_text(&d, &t),
    )?;
    put(
        &dir.join("diff.md"),
        &kmemtrace::diff::render_diff_markdown(&d, &t),
    )?;
    put(&dir.join("diff.json"), &d.to_json())?;
    let title = format!(
        "kmemtrace diff, {} {}: {} → {}",
        arch.name, req.workload, d.base.label, d.new.label
    );
    let p = kmemtrace::PlotOptions {
        lines: req.lines,
        title: Some(title),
    };
    put(&dir.join("diff.svg"), &kmemtrace::diff_svg(&d, &p))?;
    Ok(d)
}

/// Parse the thresholds, or say which one is wrong (before anything is built or booted).
pub fn thresholds(req: &CompareRequest) -> Result<Vec<kmemtrace::Threshold>, UsageError> {
    req.fail_on
        .iter()
        .map(|e| kmemtrace::Threshold::parse(e).map_err(|e| UsageError::new(e.to_string())))
        .collect()
}

/// Checks every argument before anything is built, booted or written: the thresholds, the
/// output directory, and each planned run as [`run::validate`] checks a `kmt run`.
pub fn validate(req: &CompareRequest) -> Result<Vec<kmemtrace::Threshold>, UsageError> {
    if req.arches.is_empty() {
        return Err(UsageError::new("no architecture to compare on"));
    }
    let t = thresholds(req)?;
    run::check_out_dir(&req.out)?;
    for p in plan(req) {
        run::validate(&p.req)?;
    }
    Ok(t)
}

/// Runs the plan and diffs each architecture. A failed run stops that architecture (its diff is
/// not made) and gives the overall outcome; `progress` hears about each run as it ends.
pub fn compare(
    req: &CompareRequest,
    cache: &Cache,
    mut progress: impl FnMut(&PlannedRun, &run::RunResult),
) -> Result<CompareResult, RunError> {
    let thresholds = validate(req)?;
    run::prepare_out_dir(&req.out)?;
    let mut results = Vec::new();
    let mut worst = Outcome::Ok;
    let runs = plan(req);
    for &arch in &req.arches {
        let mut failed: Option<(Outcome, String)> = None;
        for p in runs.iter().filter(|p| p.arch.name == arch.name) {
            let res = run::run(&p.req, cache);
            progress(p, &res);
            if res.outcome != Outcome::Ok {
                failed = Some((
                    res.outcome,
                    format!(
                        "{} run {} failed: {}: {} (in {})",
                        p.side.name(),
                        p.index,
                        res.outcome,
                        res.message,
                        res.out_dir.display()
                    ),
                ));
                break;
            }
        }
        let diffed = match failed {
            Some(f) => Err(f),
            None => diff_arch(req, arch, &thresholds).map_err(|e| (Outcome::AnalysisFailed, e)),
        };
        let r = match diffed {
            Ok(d) => ArchResult::of_diff(arch.name, d),
            Err((outcome, message)) => ArchResult::failed(arch.name, outcome, message),
        };
        // A failed run outranks a crossed threshold: the comparison is incomplete.
        let rank = |o: Outcome| match o {
            Outcome::Ok => 0,
            Outcome::ThresholdCrossed => 1,
            _ => 2,
        };
        if rank(r.outcome) > rank(worst) {
            worst = r.outcome;
        }
        let interrupted = r.outcome == Outcome::Interrupted;
        results.push(r);
        if interrupted {
            break;
        }
    }
    let md: String = results
        .iter()
        .map(|r| match &r.diff {
            Some(d) => format!(
                "## {}\n\n{}",
                r.arch,
                kmemtrace::diff::render_diff_markdown(
                    d,
                    &kmemtrace::diff::DiffTextOptions { lines: req.lines }
                )
                .trim_start_matches("### kmemtrace diff\n\n")
            ),
            None => format!("## {}\n\n**{}**: {}\n", r.arch, r.outcome, r.message),
        })
        .collect::<Vec<_>>()
        .join("\n");
    write(
        &req.out.join("compare.md"),
        &format!(
            "# kmt compare: {} ({} run(s) per side)\n\n{md}",
            req.workload,
            req.repeat.max(1)
        ),
    )?;
    let manifest = CompareManifest {
        kmt_compare: 1,
        workload: &req.workload,
        param: req.param,
        repeat: req.repeat.max(1),
        base: &req.base,
        new: &req.new,
        callsite_filter: &req.callsite_filter,
        fail_on: &req.fail_on,
        results: &results,
    };
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    write(&req.out.join("compare.json"), &json)?;
    Ok(CompareResult {
        outcome: worst,
        arches: results,
        out: req.out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_that_differ_in_allocator_are_named_by_it() {
        let slab = Side {
            kernel: crate::kernels::by_name("6.1").unwrap(),
            allocator: &crate::kernels::SLAB,
            ..Side::default()
        };
        let slub = Side {
            allocator: &crate::kernels::SLUB,
            ..slab.clone()
        };
        assert_eq!(side_label(&slab, &slab, &slub), "Linux 6.1 slab");
        assert_eq!(side_label(&slub, &slab, &slub), "Linux 6.1 slub");
        let d = Side::default();
        assert_eq!(side_label(&d, &d, &d), "default kernel");
    }
    use crate::arch::ARCHES;

    fn request(repeat: u32) -> CompareRequest {
        CompareRequest {
            arches: vec![&ARCHES[0], &ARCHES[2]],
            repo: PathBuf::from("/repo"),
            base: Side::default(),
            new: Side {
                append: vec!["kmemtrace.selftest_grow=1".into()],
                configs: vec![PathBuf::from("/x.config")],
                ..Side::default()
            },
            workload: "selftest".into(),
            param: None,
            exec: None,
            repeat,
            out: PathBuf::from("/out"),
            accel: AccelChoice::Tcg,
            timeout: None,
            smp: 2,
            memory_mib: 512,
            stack_depth: 4,
            install_missing: false,
            callsite_filter: default_callsite_filter("selftest"),
            fail_on: vec!["bytes_allocated:+5%".into()],
            lines: 20,
        }
    }

    #[test]
    fn the_plan_alternates_sides_per_arch_and_keeps_each_side_s_kernel() {
        let p = plan(&request(2));
        let order: Vec<(&str, &str, u32)> = p
            .iter()
            .map(|r| (r.arch.name, r.side.name(), r.index))
            .collect();
        let (a, b) = (ARCHES[0].name, ARCHES[2].name);
        assert_eq!(
            order,
            vec![
                (a, "base", 1),
                (a, "new", 1),
                (a, "base", 2),
                (a, "new", 2),
                (b, "base", 1),
                (b, "new", 1),
                (b, "base", 2),
                (b, "new", 2),
            ]
        );
        assert!(p[0].req.append.is_empty() && p[0].req.kernel.extra_fragments.is_empty());
        assert_eq!(p[1].req.append, vec!["kmemtrace.selftest_grow=1"]);
        assert!(
            p.iter().all(|r| r.req.stack_depth == 4),
            "both sides trace the same stacks"
        );
        assert_eq!(
            p[1].req.kernel.extra_fragments,
            vec![PathBuf::from("/x.config")]
        );
        assert_eq!(
            p[3].req.out,
            Some(PathBuf::from(format!("/out/{a}/new/run-2")))
        );
    }

    #[test]
    fn repeat_zero_means_once() {
        assert_eq!(plan(&request(0)).len(), 4);
    }

    #[test]
    fn bad_thresholds_are_refused_before_any_run() {
        let mut r = request(1);
        r.fail_on = vec!["bytes_allocated:+5%".into(), "nosuch:+1".into()];
        let e = thresholds(&r).unwrap_err();
        assert!(e.to_string().contains("nosuch"), "{e}");
    }

    /// Regression: a compare into a non-empty directory must refuse before any run, and write
    /// nothing there.
    #[test]
    fn a_refused_compare_directory_is_not_written_to() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compare.json"), "mine").unwrap();
        let mut r = request(1);
        r.repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        r.new.configs = Vec::new();
        r.out = d.path().to_path_buf();
        let cache = Cache {
            root: d.path().join("no-cache"),
        };
        let e = compare(&r, &cache, |_, _| {}).unwrap_err();
        assert_eq!(e.outcome(), Outcome::UsageError, "{e}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("compare.json")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_selftest_is_compared_on_its_own_call_sites() {
        assert_eq!(
            default_callsite_filter("selftest"),
            vec!["kmemtrace_selftest_*"]
        );
        assert!(default_callsite_filter("fork").is_empty());
    }
}
