// SPDX-License-Identifier: GPL-2.0-only
//! `kmt bench`: what a traced allocation costs, against ftrace's kmem events, in one boot.
//!
//! The guest's `kmt-bench` (guest-tools/kmt-bench.c, the `bench` workload) times the same
//! allocation-heavy operation in every tracing mode, round after round with the order rotated,
//! and prints one line per round and mode. The host reads them from guest.log ([`parse`]) and
//! the number of kmem events one operation causes from the trace (which covers exactly the
//! kmemtrace windows), and works out ([`summarize`], pure) per mode: the median time per
//! operation, the added time per operation over `off` (the median of the per-round paired
//! differences, so that a drift of the machine between rounds cancels), the added time per kmem
//! event, and its ratio to ftrace's. Under TCG absolute times mean little; the ratios between
//! modes in the same guest are the figures.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use crate::arch::Arch;
use crate::cache::Cache;
use crate::kernel::KernelRequest;
use crate::outcome::Outcome;
use crate::run::{self, AccelChoice, RunRequest};

/// One `kmt-bench: round=R mode=M ops=N ns=T lost=L` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub round: u32,
    pub mode: String,
    pub ops: u64,
    pub ns: u64,
    pub lost: u64,
}

/// The samples in a guest log, in order; `Err` when the bench did not say `done` or a line of
/// its is malformed.
pub fn parse(log: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    let mut done = false;
    for line in log.lines() {
        let Some(rest) = line.trim().strip_prefix("kmt-bench: ") else {
            continue;
        };
        if rest == "done" {
            done = true;
            continue;
        }
        if let Some(e) = rest.strip_prefix("error: ") {
            return Err(format!("kmt-bench failed: {e}"));
        }
        // Other lines (what each ftrace reader read) are for the log.
        if !rest.starts_with("round=") {
            continue;
        }
        let field = |name: &str| {
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("no {name}= in {line:?}"))
        };
        let num = |name: &str| -> Result<u64, String> {
            field(name)?
                .parse()
                .map_err(|_| format!("{name} is not a number in {line:?}"))
        };
        out.push(Sample {
            round: num("round")? as u32,
            mode: field("mode")?.to_string(),
            ops: num("ops")?,
            ns: num("ns")?,
            lost: num("lost")?,
        });
    }
    if !done {
        return Err("kmt-bench did not finish (no `kmt-bench: done` in guest.log)".into());
    }
    if out.is_empty() {
        return Err("kmt-bench printed no sample".into());
    }
    Ok(out)
}

/// One mode's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeFigures {
    pub mode: String,
    pub rounds: usize,
    /// Median nanoseconds per operation.
    pub ns_per_op: f64,
    /// Median over the rounds of (this mode − off) per operation; 0 for off.
    pub added_ns_per_op: f64,
    /// `added_ns_per_op` / kmem events per operation.
    pub added_ns_per_event: f64,
    /// `added_ns_per_event` / ftrace's (`null` for ftrace itself, off, or when ftrace added nothing).
    pub ratio_to_ftrace: Option<f64>,
    /// Events the mode lost over all rounds (ftrace's overruns and drops).
    pub lost: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per mode (in the order they first appear), given the kmem events one operation causes.
pub fn summarize(samples: &[Sample], events_per_op: f64) -> Vec<ModeFigures> {
    let per_op = |s: &Sample| s.ns as f64 / s.ops.max(1) as f64;
    let mut modes: Vec<&str> = Vec::new();
    for s in samples {
        if !modes.contains(&s.mode.as_str()) {
            modes.push(&s.mode);
        }
    }
    let off_in = |round: u32| {
        samples
            .iter()
            .find(|s| s.round == round && s.mode == "off")
            .map(per_op)
    };
    let mut figures: Vec<ModeFigures> = modes
        .iter()
        .map(|&m| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.mode == m).collect();
            let added = if m == "off" {
                0.0
            } else {
                median(
                    mine.iter()
                        .filter_map(|s| Some(per_op(s) - off_in(s.round)?))
                        .collect(),
                )
            };
            ModeFigures {
                mode: m.to_string(),
                rounds: mine.len(),
                ns_per_op: median(mine.iter().map(|s| per_op(s)).collect()),
                added_ns_per_op: added,
                added_ns_per_event: if events_per_op > 0.0 {
                    added / events_per_op
                } else {
                    0.0
                },
                ratio_to_ftrace: None,
                lost: mine.iter().map(|s| s.lost).sum(),
            }
        })
        .collect();
    let ftrace = figures
        .iter()
        .find(|f| f.mode == "ftrace")
        .map(|f| f.added_ns_per_event)
        .filter(|&a| a > 0.0);
    for f in &mut figures {
        if f.mode != "ftrace" && f.mode != "off" {
            f.ratio_to_ftrace = ftrace.map(|a| f.added_ns_per_event / a);
        }
    }
    figures
}

/// What `kmt bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub arches: Vec<&'static Arch>,
    pub kernel: KernelRequest,
    /// Operations per round and mode.
    pub ops: u64,
    pub out: PathBuf,
    pub accel: AccelChoice,
    pub smp: u32,
    pub memory_mib: u32,
    pub install_missing: bool,
}

/// One architecture's result.
#[derive(Debug, Clone, Serialize)]
pub struct ArchBench {
    pub arch: &'static str,
    pub outcome: Outcome,
    pub message: String,
    pub ops_per_round: u64,
    /// kmem events in the trace (the kmemtrace windows) per operation in them.
    pub events_per_op: f64,
    pub modes: Vec<ModeFigures>,
    pub samples: Vec<Sample>,
    /// The run's output directory.
    pub run: PathBuf,
}

/// Runs the bench workload once per architecture and works out the figures; `bench.json` in
/// `req.out` holds them all.
pub fn bench(
    req: &BenchRequest,
    cache: &Cache,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ArchBench>, crate::error::RunError> {
    run::check_out_dir(&req.out)?;
    run::prepare_out_dir(&req.out)?;
    let mut results = Vec::new();
    for &arch in &req.arches {
        let dir = req.out.join(arch.name);
        let rreq = RunRequest {
            kernel: KernelRequest {
                arch,
                ..req.kernel.clone()
            },
            workload: "bench".into(),
            param: Some(req.ops),
            exec: None,
            out: Some(dir.clone()),
            accel: req.accel,
            timeout: None,
            smp: req.smp,
            memory_mib: req.memory_mib,
            append: Vec::new(),
            install_missing: req.install_missing,
            prebuilt: None,
        };
        let res = run::run(&rreq, cache);
        progress(&format!(
            "{} bench: {} ({:.1} s)",
            arch.name, res.outcome, res.manifest.phases.total_s
        ));
        let mut r = ArchBench {
            arch: arch.name,
            outcome: res.outcome,
            message: res.message.clone(),
            ops_per_round: req.ops,
            events_per_op: 0.0,
            modes: Vec::new(),
            samples: Vec::new(),
            run: dir.clone(),
        };
        if res.outcome == Outcome::Ok {
            let log = fs::read_to_string(dir.join("guest.log")).unwrap_or_default();
            match parse(&log) {
                Ok(samples) => {
                    let ops: u64 = samples
                        .iter()
                        .filter(|s| s.mode == "kmemtrace")
                        .map(|s| s.ops)
                        .sum();
                    let events = res.manifest.trace.as_ref().map_or(0, |t| t.events);
                    r.events_per_op = events as f64 / ops.max(1) as f64;
                    r.modes = summarize(&samples, r.events_per_op);
                    r.samples = samples;
                }
                Err(e) => {
                    r.outcome = Outcome::CollectorFailed;
                    r.message = format!("{e} (see {})", dir.join("guest.log").display());
                }
            }
        }
        let interrupted = r.outcome == Outcome::Interrupted;
        results.push(r);
        if interrupted {
            break;
        }
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "kmt_bench": 1,
        "kernel": req.kernel.kernel.name,
        "allocator": req.kernel.allocator.name,
        "results": &results,
    }))
    .unwrap_or_default()
        + "\n";
    let p = req.out.join("bench.json");
    fs::write(&p, json).map_err(crate::error::io("write", &p))?;
    Ok(results)
}

/// The text table: one block per architecture.
pub fn render(results: &[ArchBench]) -> String {
    let mut s = String::new();
    for r in results {
        if r.outcome != Outcome::Ok {
            s.push_str(&format!("{}: {}: {}\n\n", r.arch, r.outcome, r.message));
            continue;
        }
        s.push_str(&format!(
            "{}: {} ops per round, {:.1} kmem events per op\n",
            r.arch, r.ops_per_round, r.events_per_op
        ));
        s.push_str(&format!(
            "  {:<10} {:>6} {:>12} {:>14} {:>16} {:>10} {:>6}\n",
            "mode", "rounds", "ns/op", "added ns/op", "added ns/event", "vs ftrace", "lost"
        ));
        for m in &r.modes {
            s.push_str(&format!(
                "  {:<10} {:>6} {:>12.0} {:>14.0} {:>16.1} {:>10} {:>6}\n",
                m.mode,
                m.rounds,
                m.ns_per_op,
                m.added_ns_per_op,
                m.added_ns_per_event,
                m.ratio_to_ftrace
                    .map_or("-".to_string(), |x| format!("{x:.2}x")),
                m.lost
            ));
        }
        s.push('\n');
    }
    s
}

/// The directory `kmt bench` writes to when `--out` is not given.
pub fn default_out(arch: &Arch) -> PathBuf {
    run::default_out_dir(arch, "bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "init: job\nkmt-bench: ftrace reader cpu0 read 4096 bytes\nkmt-bench: round=1 mode=off ops=100 ns=1000000 lost=0\n\
        kmt-bench: round=1 mode=kmemtrace ops=100 ns=1500000 lost=0\n\
        kmt-bench: round=1 mode=ftrace ops=100 ns=2000000 lost=3\n\
        kmt-bench: round=2 mode=kmemtrace ops=100 ns=1700000 lost=0\n\
        kmt-bench: round=2 mode=ftrace ops=100 ns=2400000 lost=0\n\
        kmt-bench: round=2 mode=off ops=100 ns=1200000 lost=0\n\
        kmt-bench: done\n";

    #[test]
    fn lines_are_read_and_an_unfinished_bench_is_an_error() {
        let s = parse(LOG).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[2].lost, 3);
        assert_eq!(s[5].mode, "off");
        assert!(parse(&LOG.replace("kmt-bench: done\n", "")).is_err());
        assert!(parse("kmt-bench: error: fork: no memory\n")
            .unwrap_err()
            .contains("fork"));
        assert!(parse("kmt-bench: round=x mode=off ops=1 ns=1 lost=0\nkmt-bench: done").is_err());
    }

    /// Paired per round: kmemtrace adds 5000 ns/op in both rounds (15000−10000, 17000−12000)
    /// although the machine got 20 % slower between them; ftrace adds 10000 and 12000.
    #[test]
    fn added_cost_is_paired_per_round_and_divided_by_events() {
        let f = summarize(&parse(LOG).unwrap(), 50.0);
        let by = |m: &str| f.iter().find(|x| x.mode == m).unwrap().clone();
        assert_eq!(by("off").added_ns_per_op, 0.0);
        assert_eq!(by("kmemtrace").added_ns_per_op, 5000.0);
        assert_eq!(by("kmemtrace").added_ns_per_event, 100.0);
        assert_eq!(by("ftrace").added_ns_per_op, 11000.0);
        assert_eq!(by("ftrace").lost, 3);
        let r = by("kmemtrace").ratio_to_ftrace.unwrap();
        assert!((r - 5000.0 / 11000.0).abs() < 1e-12, "{r}");
        assert_eq!(by("ftrace").ratio_to_ftrace, None);
        assert_eq!(by("off").ns_per_op, 11000.0);
        let t = render(&[ArchBench {
            arch: "x86_64",
            outcome: Outcome::Ok,
            message: String::new(),
            ops_per_round: 100,
            events_per_op: 50.0,
            modes: f,
            samples: Vec::new(),
            run: PathBuf::new(),
        }]);
        assert!(t.contains("0.45x"), "{t}");
    }
}
