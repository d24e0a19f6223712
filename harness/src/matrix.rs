// SPDX-License-Identifier: GPL-2.0-only
//! `kmt matrix`: workloads × architectures, each `repeat` times back to back, with a tally of
//! outcomes per (architecture, workload). With `--repeat 50` it is the soak test: any outcome but
//! `ok` is a flake, listed with the run directory that holds its console log.
//!
//! ```text
//! OUT/<arch>-<workload>/            one run (repeat 1)
//! OUT/<arch>-<workload>/run-<i>/    the i-th run (repeat > 1)
//! OUT/matrix.json                   every run's outcome and time, and the tallies
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::arch::Arch;
use crate::cache::Cache;
use crate::error::{RunError, UsageError};
use crate::kernel::KernelRequest;
use crate::kernels::{Allocator, KernelVersion};
use crate::outcome::Outcome;
use crate::run::{self, AccelChoice, RunRequest, RunResult};

/// What `kmt matrix` was asked to do.
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    pub arches: Vec<&'static Arch>,
    pub workloads: Vec<String>,
    /// Runs of each (architecture, workload), back to back (at least 1).
    pub repeat: u32,
    pub out: PathBuf,
    pub repo: PathBuf,
    pub accel: AccelChoice,
    /// The kernel version and allocator of every run.
    pub kernel: &'static KernelVersion,
    pub allocator: &'static Allocator,
    /// Return addresses per record (`kmt run --stack-depth`).
    pub stack_depth: u32,
}

/// One planned run.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub arch: &'static Arch,
    pub workload: String,
    /// 1-based.
    pub index: u32,
    pub req: RunRequest,
}

/// Every run, architecture by architecture, workload by workload, repeats back to back. Pure.
pub fn plan(req: &MatrixRequest) -> Vec<PlannedRun> {
    let repeat = req.repeat.max(1);
    let mut runs = Vec::new();
    for &arch in &req.arches {
        for w in &req.workloads {
            for index in 1..=repeat {
                let dir = run_dir(&req.out, arch, w);
                let out = if repeat == 1 {
                    dir
                } else {
                    dir.join(format!("run-{index}"))
                };
                runs.push(PlannedRun {
                    arch,
                    workload: w.clone(),
                    index,
                    req: RunRequest {
                        kernel: KernelRequest {
                            kernel: req.kernel,
                            allocator: req.allocator,
                            ..KernelRequest::new(arch, req.repo.clone())
                        },
                        workload: w.clone(),
                        param: None,
                        exec: None,
                        out: Some(out),
                        accel: req.accel,
                        timeout: None,
                        smp: 2,
                        memory_mib: 512,
                        append: Vec::new(),
                        stack_depth: req.stack_depth,
                        install_missing: true,
                        prebuilt: None,
                    },
                });
            }
        }
    }
    runs
}

/// Checks the whole matrix before the first run: the output directory and every run.
pub fn validate(req: &MatrixRequest) -> Result<(), UsageError> {
    run::check_out_dir(&req.out)?;
    for p in plan(req) {
        run::validate(&p.req)?;
    }
    Ok(())
}

/// How the runs of one (architecture, workload) ended.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Tally {
    pub arch: String,
    pub workload: String,
    pub runs: u32,
    pub ok: u32,
    /// Each run that did not end `ok`: its index, outcome and output directory.
    pub failures: Vec<Failure>,
    /// The slowest and median whole-run times, seconds.
    pub median_s: f64,
    pub max_s: f64,
}

/// A run that did not end `ok`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub index: u32,
    pub outcome: Outcome,
    pub out_dir: PathBuf,
}

/// One finished run, as `matrix.json` records it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub arch: &'static str,
    pub workload: String,
    pub index: u32,
    pub outcome: Outcome,
    pub total_s: f64,
    pub out_dir: PathBuf,
}

/// The tallies of `runs`, in the order their (architecture, workload) first appears. Pure.
pub fn tally(runs: &[RunLine]) -> Vec<Tally> {
    let mut out: Vec<Tally> = Vec::new();
    let mut times: Vec<Vec<f64>> = Vec::new();
    for r in runs {
        let i = match out
            .iter()
            .position(|t| t.arch == r.arch && t.workload == r.workload)
        {
            Some(i) => i,
            None => {
                out.push(Tally {
                    arch: r.arch.to_string(),
                    workload: r.workload.clone(),
                    ..Default::default()
                });
                times.push(Vec::new());
                out.len() - 1
            }
        };
        let t = &mut out[i];
        t.runs += 1;
        if r.outcome == Outcome::Ok {
            t.ok += 1;
        } else {
            t.failures.push(Failure {
                index: r.index,
                outcome: r.outcome,
                out_dir: r.out_dir.clone(),
            });
        }
        times[i].push(r.total_s);
    }
    for (t, mut ts) in out.iter_mut().zip(times) {
        ts.sort_by(f64::total_cmp);
        t.median_s = ts.get(ts.len() / 2).copied().unwrap_or(0.0);
        t.max_s = ts.last().copied().unwrap_or(0.0);
    }
    out
}

/// The header of `kmt matrix`'s table.
pub const MATRIX_HEADER: &str =
    "arch     workload  outcome               events  overruns  kernel_s  image_s  boot_s  total_s";

/// One line of `kmt matrix`'s table.
pub fn matrix_line(r: &RunResult) -> String {
    let m = &r.manifest;
    let (events, overruns) = match &m.trace {
        Some(t) => (
            t.events.to_string(),
            t.total_overruns.map_or("?".to_string(), |o| o.to_string()),
        ),
        None => ("-".to_string(), "-".to_string()),
    };
    format!(
        "{:<8} {:<9} {:<20} {:>7} {:>9} {:>9.1} {:>8.1} {:>7.1} {:>8.1}",
        m.arch,
        m.workload,
        format!("{} ({})", r.outcome, r.outcome.exit_code()),
        events,
        overruns,
        m.phases.kernel_s,
        m.phases.image_s,
        m.phases.boot_s,
        m.phases.total_s,
    )
}

/// The tally table, one line per (architecture, workload).
pub fn render_tally(tallies: &[Tally]) -> String {
    let mut s = String::from("arch     workload  runs    ok  failed  median_s   max_s\n");
    for t in tallies {
        s.push_str(&format!(
            "{:<8} {:<9} {:>4} {:>5} {:>7} {:>9.1} {:>7.1}\n",
            t.arch,
            t.workload,
            t.runs,
            t.ok,
            t.runs - t.ok,
            t.median_s,
            t.max_s
        ));
        for f in &t.failures {
            s.push_str(&format!(
                "  run {}: {} (console log: {})\n",
                f.index,
                f.outcome,
                f.out_dir.join("console.log").display()
            ));
        }
    }
    s
}

/// `matrix.json`.
#[derive(Debug, Serialize)]
struct MatrixManifest<'a> {
    kmt_matrix: u32,
    repeat: u32,
    runs: &'a [RunLine],
    tallies: &'a [Tally],
}

/// The result of `kmt matrix`.
#[derive(Debug)]
pub struct MatrixResult {
    /// Ok, or the first failed run's outcome.
    pub outcome: Outcome,
    pub runs: Vec<RunLine>,
    pub tallies: Vec<Tally>,
}

/// Runs the matrix; `progress` hears of each run as it ends. Stops at Ctrl-C.
pub fn run_matrix(
    req: &MatrixRequest,
    cache: &Cache,
    mut progress: impl FnMut(&PlannedRun, &RunResult),
) -> Result<MatrixResult, RunError> {
    validate(req)?;
    run::prepare_out_dir(&req.out)?;
    let mut runs = Vec::new();
    let mut worst = Outcome::Ok;
    for p in plan(req) {
        let res = run::run(&p.req, cache);
        progress(&p, &res);
        if res.outcome != Outcome::Ok && worst == Outcome::Ok {
            worst = res.outcome;
        }
        runs.push(RunLine {
            arch: p.arch.name,
            workload: p.workload.clone(),
            index: p.index,
            outcome: res.outcome,
            total_s: res.manifest.phases.total_s,
            out_dir: res.out_dir.clone(),
        });
        if res.outcome == Outcome::Interrupted {
            break;
        }
    }
    let tallies = tally(&runs);
    let m = MatrixManifest {
        kmt_matrix: 1,
        repeat: req.repeat.max(1),
        runs: &runs,
        tallies: &tallies,
    };
    let path = req.out.join("matrix.json");
    let json = serde_json::to_string_pretty(&m).unwrap_or_default() + "\n";
    std::fs::write(&path, json).map_err(crate::error::io("write", &path))?;
    Ok(MatrixResult {
        outcome: worst,
        runs,
        tallies,
    })
}

/// The directory of an (architecture, workload)'s runs.
pub fn run_dir(out: &Path, arch: &Arch, workload: &str) -> PathBuf {
    out.join(format!("{}-{workload}", arch.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ARCHES;

    fn request(repeat: u32) -> MatrixRequest {
        MatrixRequest {
            arches: vec![&ARCHES[0], &ARCHES[1]],
            workloads: vec!["selftest".into(), "boot".into()],
            repeat,
            out: PathBuf::from("/out"),
            repo: PathBuf::from("/repo"),
            accel: AccelChoice::Tcg,
            kernel: crate::kernels::by_name("6.1").unwrap(),
            allocator: &crate::kernels::SLOB,
            stack_depth: 8,
        }
    }

    #[test]
    fn every_run_builds_the_asked_kernel_and_allocator() {
        for p in plan(&request(2)) {
            assert_eq!(p.req.kernel.kernel.name, "6.1");
            assert_eq!(p.req.kernel.allocator.name, "slob");
            assert_eq!(p.req.stack_depth, 8);
        }
    }

    #[test]
    fn one_run_each_keeps_the_old_directories_repeats_go_below() {
        let p = plan(&request(1));
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[0].req.out,
            Some(run_dir(Path::new("/out"), &ARCHES[0], "selftest"))
        );
        let p = plan(&request(3));
        assert_eq!(p.len(), 12);
        assert_eq!(
            p[2].req.out,
            Some(PathBuf::from(format!(
                "/out/{}-selftest/run-3",
                ARCHES[0].name
            )))
        );
        assert_eq!((p[3].workload.as_str(), p[3].index), ("boot", 1));
    }

    #[test]
    fn tallies_count_outcomes_and_list_flakes() {
        let line = |arch: &'static str, i: u32, o: Outcome, s: f64| RunLine {
            arch,
            workload: "selftest".into(),
            index: i,
            outcome: o,
            total_s: s,
            out_dir: PathBuf::from(format!("/o/{arch}/run-{i}")),
        };
        let runs = [
            line("x86_64", 1, Outcome::Ok, 4.0),
            line("x86_64", 2, Outcome::Timeout, 90.0),
            line("x86_64", 3, Outcome::Ok, 5.0),
            line("arm64", 1, Outcome::Ok, 2.0),
        ];
        let t = tally(&runs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].runs, t[0].ok), (3, 2));
        assert_eq!(t[0].failures[0].index, 2);
        assert_eq!(t[0].median_s, 5.0);
        assert_eq!(t[0].max_s, 90.0);
        let text = render_tally(&t);
        assert!(text.contains("run 2: timeout (console log: /o/x86_64/run-2/console.log)"));
    }
}
