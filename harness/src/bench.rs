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

/// kmt-bench's lines in a guest log (`kmt-bench: ` stripped), in order, up to `done`; `Err` when
/// it failed (an `error:` line) or did not say `done`.
fn bench_lines(log: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.trim().strip_prefix("kmt-bench: ") else {
            continue;
        };
        if rest == "done" {
            return Ok(out);
        }
        if let Some(e) = rest.strip_prefix("error: ") {
            return Err(format!("kmt-bench failed: {e}"));
        }
        out.push(rest);
    }
    Err("kmt-bench did not finish (no `kmt-bench: done` in guest.log)".into())
}

/// The value in `key=VALUE` of a kmt-bench line.
fn field<'a>(line: &'a str, name: &str) -> Result<&'a str, String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .ok_or_else(|| format!("no {name}= in {line:?}"))
}

/// The number in `key=N` of a kmt-bench line.
fn field_num(line: &str, name: &str) -> Result<u64, String> {
    field(line, name)?
        .parse()
        .map_err(|_| format!("{name} is not a number in {line:?}"))
}

/// The samples in a guest log, in order; `Err` when the bench did not say `done` or a line of
/// its is malformed.
pub fn parse(log: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for rest in bench_lines(log)? {
        // Other lines (what each ftrace reader read) are for the log.
        if !rest.starts_with("round=") {
            continue;
        }
        let num = |name: &str| field_num(rest, name);
        out.push(Sample {
            round: num("round")? as u32,
            mode: field(rest, "mode")?.to_string(),
            ops: num("ops")?,
            ns: num("ns")?,
            lost: num("lost")?,
        });
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

/// The operations run while kmemtrace was on: the trace holds the events of both kmemtrace
/// modes' windows (`kmemtrace` and `kmemtrace-stacks`), and nothing else.
pub fn traced_ops(samples: &[Sample]) -> u64 {
    samples
        .iter()
        .filter(|s| s.mode == "kmemtrace" || s.mode == "kmemtrace-stacks")
        .map(|s| s.ops)
        .sum()
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

/// One `kmt-bench: load step=K rate=R ops=N ns=T produced=P written=W settle_ns=S overrun=O`
/// line (guest-tools/kmt-bench.c, the `load` workload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadStep {
    pub step: u32,
    /// Target operations per second per worker; 0: as fast as the workers could.
    pub rate: u64,
    pub ops: u64,
    pub ns: u64,
    /// Trace bytes the step added on the share once the collector caught up.
    pub produced: u64,
    /// Of them, bytes on the share when the step ended.
    pub written: u64,
    pub settle_ns: u64,
    /// Bytes the kernel dropped during the step and its catching up.
    pub overrun: u64,
}

/// The number of CPUs (one worker each) and the steps in a guest log of the `load` workload.
pub fn parse_load(log: &str) -> Result<(u32, Vec<LoadStep>), String> {
    let mut cpus = None;
    let mut steps = Vec::new();
    for rest in bench_lines(log).map_err(|e| e.replace("kmt-bench did", "kmt-bench load did"))? {
        let Some(kv) = rest.strip_prefix("load ") else {
            continue;
        };
        let num = |name: &str| field_num(kv, name);
        if kv.starts_with("cpus=") {
            cpus = Some(num("cpus")? as u32);
            continue;
        }
        steps.push(LoadStep {
            step: num("step")? as u32,
            rate: num("rate")?,
            ops: num("ops")?,
            ns: num("ns")?,
            produced: num("produced")?,
            written: num("written")?,
            settle_ns: num("settle_ns")?,
            overrun: num("overrun")?,
        });
    }
    let cpus = cpus.ok_or("kmt-bench load did not say how many CPUs it loaded")?;
    if steps.is_empty() {
        return Err("kmt-bench load printed no step".into());
    }
    Ok((cpus, steps))
}

/// Steps of the load workload (guest-tools/kmt-bench.c `LOAD_STEPS`).
pub const LOAD_STEPS: u64 = 8;

/// What a step left in the relay buffers and the collector's own buffers at its end without
/// being behind: the collector's 1 MiB write buffer and a 512 KiB sub-buffer not yet handed over
/// per CPU, and half a second of production (poll's 250 ms wait, the write to 9p).
pub fn backlog_allowance(cpus: u32, produced: u64, ns: u64) -> u64 {
    let half_second = (produced as f64 * 0.5e9 / ns.max(1) as f64) as u64;
    u64::from(cpus) * (1 << 20) * 3 / 2 + half_second
}

/// One step's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadFigures {
    pub step: u32,
    /// Target operations per second per worker; 0: as fast as the workers could.
    pub rate: u64,
    pub ops_per_s: f64,
    /// Trace records per second the step made (its bytes on the share and dropped, over the
    /// trace's mean record).
    pub events_per_s: f64,
    pub produced_mb_per_s: f64,
    /// What reached the share during the step, per second.
    pub written_mb_per_s: f64,
    /// Bytes not yet on the share when the step ended.
    pub backlog: u64,
    pub settle_s: f64,
    pub overrun: u64,
    /// No byte dropped and the backlog within [`backlog_allowance`].
    pub sustained: bool,
}

/// The load run's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSummary {
    pub cpus: u32,
    /// The trace's bytes per record.
    pub record_bytes: f64,
    pub steps: Vec<LoadFigures>,
    /// The highest event rate of a sustained step.
    pub max_sustained_events_per_s: Option<f64>,
    /// The lowest event rate of a step that was not.
    pub min_unsustained_events_per_s: Option<f64>,
    /// The collector's throughput where it was behind: the highest written rate of a step that
    /// was not sustained, in records per second.
    pub drain_events_per_s: Option<f64>,
}

/// Per step and in all, given the trace's bytes per record.
pub fn summarize_load(cpus: u32, steps: &[LoadStep], record_bytes: f64) -> LoadSummary {
    const MB: f64 = 1e6;
    let figures: Vec<LoadFigures> = steps
        .iter()
        .map(|s| {
            let secs = s.ns.max(1) as f64 / 1e9;
            let backlog = s.produced.saturating_sub(s.written);
            // What the step made: what reached the share and what the kernel dropped.
            let made = s.produced.saturating_add(s.overrun);
            LoadFigures {
                step: s.step,
                rate: s.rate,
                ops_per_s: s.ops as f64 / secs,
                events_per_s: if record_bytes > 0.0 {
                    made as f64 / record_bytes / secs
                } else {
                    0.0
                },
                produced_mb_per_s: made as f64 / MB / secs,
                written_mb_per_s: s.written as f64 / MB / secs,
                backlog,
                settle_s: s.settle_ns as f64 / 1e9,
                overrun: s.overrun,
                sustained: s.overrun == 0 && backlog <= backlog_allowance(cpus, s.produced, s.ns),
            }
        })
        .collect();
    let best = |it: &mut dyn Iterator<Item = f64>, max: bool| {
        it.fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| if max { a.max(x) } else { a.min(x) }))
        })
    };
    let per_record = |mb_per_s: f64| {
        if record_bytes > 0.0 {
            mb_per_s * MB / record_bytes
        } else {
            0.0
        }
    };
    LoadSummary {
        cpus,
        record_bytes,
        max_sustained_events_per_s: best(
            &mut figures
                .iter()
                .filter(|f| f.sustained)
                .map(|f| f.events_per_s),
            true,
        ),
        min_unsustained_events_per_s: best(
            &mut figures
                .iter()
                .filter(|f| !f.sustained)
                .map(|f| f.events_per_s),
            false,
        ),
        drain_events_per_s: best(
            &mut figures
                .iter()
                .filter(|f| !f.sustained)
                .map(|f| per_record(f.written_mb_per_s)),
            true,
        ),
        steps: figures,
    }
}

/// The load table of one architecture.
pub fn render_load(arch: &str, smp: u32, l: &LoadSummary) -> String {
    let mut s = format!(
        "{arch}: load with {} workers on {smp} vCPUs, {:.1} bytes per record\n",
        l.cpus, l.record_bytes
    );
    s.push_str(&format!(
        "  {:>4} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}  {}\n",
        "step",
        "rate",
        "ops/s",
        "events/s",
        "made MB/s",
        "wrote MB/s",
        "backlog",
        "settle s",
        "overrun",
        "sustained"
    ));
    for f in &l.steps {
        s.push_str(&format!(
            "  {:>4} {:>8} {:>9.1} {:>10.0} {:>10.2} {:>10.2} {:>10} {:>8.1} {:>10}  {}\n",
            f.step,
            if f.rate == 0 {
                "max".to_string()
            } else {
                f.rate.to_string()
            },
            f.ops_per_s,
            f.events_per_s,
            f.produced_mb_per_s,
            f.written_mb_per_s,
            f.backlog,
            f.settle_s,
            f.overrun,
            if f.sustained { "yes" } else { "no" }
        ));
    }
    let rate = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0} events/s"));
    s.push_str(&format!(
        "  highest sustained: {}; lowest not sustained: {}; collector behind at: {}\n\n",
        rate(l.max_sustained_events_per_s),
        rate(l.min_unsustained_events_per_s),
        rate(l.drain_events_per_s)
    ));
    s
}

/// What `kmt bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub arches: Vec<&'static Arch>,
    pub kernel: KernelRequest,
    /// Operations per round and mode.
    pub ops: u64,
    /// Run the `load` workload instead, this many seconds per step.
    pub load: Option<u64>,
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
    /// With `--load`: the steps and the verdict.
    pub load: Option<LoadSummary>,
    pub load_steps: Vec<LoadStep>,
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
            workload: if req.load.is_some() { "load" } else { "bench" }.into(),
            param: Some(req.load.unwrap_or(req.ops)),
            exec: None,
            out: Some(dir.clone()),
            accel: req.accel,
            // The load's steps run in guest wall-clock time, TCG or not: the boot's allowance
            // and eight steps with their catching up (at most 120 s each).
            timeout: req.load.map(|secs| {
                std::time::Duration::from_secs(
                    300 * u64::from(arch.tcg_slowness) + LOAD_STEPS * (secs + 125),
                )
            }),
            smp: req.smp,
            memory_mib: req.memory_mib,
            append: Vec::new(),
            stack_depth: 0,
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
            load: None,
            load_steps: Vec::new(),
            run: dir.clone(),
        };
        // Overruns are what the load looks for: its trace may well not be whole.
        let loaded =
            req.load.is_some() && matches!(res.outcome, Outcome::Ok | Outcome::TraceDamaged);
        if loaded {
            let log = fs::read_to_string(dir.join("guest.log")).unwrap_or_default();
            match parse_load(&log) {
                Ok((cpus, steps)) => {
                    let t = res.manifest.trace.clone().unwrap_or_default();
                    let record_bytes = t.bytes as f64 / t.events.max(1) as f64;
                    r.events_per_op = 0.0;
                    r.load = Some(summarize_load(cpus, &steps, record_bytes));
                    r.load_steps = steps;
                    r.outcome = Outcome::Ok;
                    r.message.clear();
                }
                Err(e) => {
                    r.outcome = Outcome::CollectorFailed;
                    r.message = format!("{e} (see {})", dir.join("guest.log").display());
                }
            }
        } else if res.outcome == Outcome::Ok {
            let log = fs::read_to_string(dir.join("guest.log")).unwrap_or_default();
            match parse(&log) {
                Ok(samples) => {
                    let ops = traced_ops(&samples);
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
        "smp": req.smp,
        "load_seconds_per_step": req.load,
        "results": &results,
    }))
    .unwrap_or_default()
        + "\n";
    let p = req.out.join("bench.json");
    fs::write(&p, json).map_err(crate::error::io("write", &p))?;
    Ok(results)
}

/// The text table: one block per architecture.
pub fn render(results: &[ArchBench], smp: u32) -> String {
    let mut s = String::new();
    for r in results {
        if r.outcome != Outcome::Ok {
            s.push_str(&format!("{}: {}: {}\n\n", r.arch, r.outcome, r.message));
            continue;
        }
        if let Some(l) = &r.load {
            s.push_str(&render_load(r.arch, smp, l));
            continue;
        }
        s.push_str(&format!(
            "{}: {} ops per round, {:.1} kmem events per op\n",
            r.arch, r.ops_per_round, r.events_per_op
        ));
        s.push_str(&format!(
            "  {:<16} {:>6} {:>12} {:>14} {:>16} {:>10} {:>6}\n",
            "mode", "rounds", "ns/op", "added ns/op", "added ns/event", "vs ftrace", "lost"
        ));
        for m in &r.modes {
            s.push_str(&format!(
                "  {:<16} {:>6} {:>12.0} {:>14.0} {:>16.1} {:>10} {:>6}\n",
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
        let t = render(
            &[ArchBench {
                arch: "x86_64",
                outcome: Outcome::Ok,
                message: String::new(),
                ops_per_round: 100,
                events_per_op: 50.0,
                modes: f,
                samples: Vec::new(),
                load: None,
                load_steps: Vec::new(),
                run: PathBuf::new(),
            }],
            2,
        );
        assert!(t.contains("0.45x"), "{t}");
    }

    /// The trace holds both kmemtrace modes' events, so both modes' operations divide them;
    /// a mode name that only starts like them does not count.
    #[test]
    fn events_per_op_count_both_kmemtrace_modes() {
        let log = LOG.replace("kmt-bench: done\n", "")
            + "kmt-bench: round=1 mode=kmemtrace-stacks ops=100 ns=2000000 lost=0\n\
               kmt-bench: round=1 mode=kmemtrace-x ops=7 ns=1 lost=0\n\
               kmt-bench: done\n";
        assert_eq!(traced_ops(&parse(&log).unwrap()), 300);
    }

    const LOAD: &str = "kmt-init: running load 10\nkmt-bench: load cpus=2 workers=2 seconds=10\n\
        kmt-bench: load step=0 rate=0 ops=4000 ns=10000000000 produced=40000000 written=20000000 settle_ns=9000000000 overrun=0\n\
        kmt-bench: load step=1 rate=25 ops=500 ns=10000000000 produced=5000000 written=4000000 settle_ns=300000000 overrun=0\n\
        kmt-bench: load step=2 rate=50 ops=1000 ns=10000000000 produced=10000000 written=9000000 settle_ns=400000000 overrun=0\n\
        kmt-bench: load step=3 rate=75 ops=1500 ns=10000000000 produced=15000000 written=14000000 settle_ns=0 overrun=4096\n\
        kmt-bench: done\n";

    #[test]
    fn load_lines_are_read_and_unfinished_or_anonymous_loads_are_errors() {
        let (cpus, steps) = parse_load(LOAD).unwrap();
        assert_eq!(cpus, 2);
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[3].overrun, 4096);
        assert_eq!(steps[1].rate, 25);
        assert!(parse_load(&LOAD.replace("kmt-bench: done\n", "")).is_err());
        assert!(
            parse_load(&LOAD.replace("kmt-bench: load cpus=2 workers=2 seconds=10\n", ""))
                .unwrap_err()
                .contains("CPUs")
        );
        assert!(parse_load(&LOAD.replace("written=4000000", "written=x")).is_err());
    }

    /// Step 0 left 20 MB behind (not sustained), 1 and 2 left 1 MB (within 3 MiB + half a
    /// second), 3 dropped bytes; 10-byte records.
    #[test]
    fn steps_are_sustained_only_without_backlog_or_overrun() {
        let (cpus, steps) = parse_load(LOAD).unwrap();
        let l = summarize_load(cpus, &steps, 10.0);
        let sustained: Vec<bool> = l.steps.iter().map(|f| f.sustained).collect();
        assert_eq!(sustained, [false, true, true, false]);
        assert_eq!(l.steps[0].backlog, 20_000_000);
        assert_eq!(l.steps[2].events_per_s, 100_000.0);
        assert_eq!(l.max_sustained_events_per_s, Some(100_000.0));
        // Step 3 made what reached the share and the 4096 bytes dropped.
        let worst = l.min_unsustained_events_per_s.unwrap();
        assert!((worst - 150_040.96).abs() < 1e-6, "{worst}");
        // Behind at step 0, it wrote 2 MB/s: 200 000 records per second.
        assert_eq!(l.drain_events_per_s, Some(200_000.0));
        assert_eq!(l.steps[0].ops_per_s, 400.0);
        assert_eq!(
            backlog_allowance(2, 10_000_000, 10_000_000_000),
            3_145_728 + 500_000
        );
        let t = render_load("x86_64", 2, &l);
        assert!(t.contains("highest sustained: 100000 events/s"), "{t}");
        assert!(t.contains("max"), "{t}");
    }
}
