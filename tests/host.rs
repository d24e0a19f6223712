//! Host trials: kmemtrace against an independent implementation on real kernel events.
//!
//! - `host::perf_agreement`: `perf kmem record` traces this host's kernel while `ls` runs; the
//!   very same events are analysed by `perf kmem --caller --alloc stat` and, through
//!   `perf script | kmemtrace import-perf`, by kmemtrace. Both must agree exactly on every
//!   allocating call site's and every address's allocations and bytes, and on the totals.
//!   Where the two define a figure differently, kmemtrace's can only be the smaller (below).
//! - `host::perf_output_parses`: the parser of perf's tables, on a sample of its output (pure).
//!
//! Needs `perf` (Debian: `apt-get install linux-perf`) and the right to trace the kernel (root,
//! or `sysctl kernel.perf_event_paranoid=-1`); a missing one fails the trial with what to do.
//! `KMT_SKIP_E2E=1` marks the perf trial ignored, as it does the QEMU trials.

mod common;
use common::repo;
use std::collections::BTreeMap;

use kmemtrace::{AnalyzeOptions, ByteOrder, Report};
use kmt::proc::Cmd;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let skip = std::env::var("KMT_SKIP_E2E").is_ok_and(|v| v == "1");
    let trials = vec![
        Trial::test("host::perf_agreement", perf_agreement_trial).with_ignored_flag(skip),
        Trial::test("host::perf_output_parses", parse_trial),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// One row of perf's call-site or address table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PerfRow {
    bytes_allocated: u64,
    bytes_requested: u64,
    hits: u64,
    pingpong: u64,
}

/// What `perf kmem --caller --alloc stat` prints.
#[derive(Debug, Default, PartialEq, Eq)]
struct PerfKmem {
    /// By call site as perf prints it: `name+hexoff`, or `0x…` when unresolved.
    callsites: BTreeMap<String, PerfRow>,
    /// By address.
    ptrs: BTreeMap<u64, PerfRow>,
    requested: Option<u64>,
    allocated: Option<u64>,
    freed: Option<u64>,
    fragmentation: Option<u64>,
    /// `Cross CPU allocations: X/Y`.
    cross_allocs: Option<(u64, u64)>,
}

/// Parse perf's tables and summary; `Err` names the first line that does not parse.
fn parse_perf_kmem(text: &str) -> Result<PerfKmem, String> {
    let mut p = PerfKmem::default();
    #[derive(PartialEq)]
    enum Table {
        None,
        Callsites,
        Ptrs,
    }
    let mut table = Table::None;
    let num = |s: &str, line: &str| -> Result<u64, String> {
        // `Total_alloc/Per` columns: the total is before the slash.
        let s = s.split('/').next().unwrap_or("").trim();
        s.parse()
            .map_err(|_| format!("perf output: cannot read {s:?} in {line:?}"))
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Callsite") {
            table = Table::Callsites;
            continue;
        }
        if t.starts_with("Alloc Ptr") {
            table = Table::Ptrs;
            continue;
        }
        if t.starts_with("---") || t.is_empty() {
            continue;
        }
        if let Some((k, v)) = t.split_once(':') {
            if !t.contains('|') {
                let v = v.trim();
                match k {
                    "Total bytes requested" => p.requested = Some(num(v, line)?),
                    "Total bytes allocated" => p.allocated = Some(num(v, line)?),
                    "Total bytes freed" => p.freed = Some(num(v, line)?),
                    "Total bytes wasted on internal fragmentation" => {
                        p.fragmentation = Some(num(v, line)?)
                    }
                    "Cross CPU allocations" => {
                        let (x, y) = v
                            .split_once('/')
                            .ok_or_else(|| format!("perf output: {line:?}"))?;
                        p.cross_allocs = Some((num(x, line)?, num(y, line)?));
                    }
                    _ => {}
                }
                table = Table::None;
                continue;
            }
        }
        let cols: Vec<&str> = t.split('|').map(str::trim).collect();
        if cols.len() < 6 || table == Table::None {
            continue;
        }
        let row = PerfRow {
            bytes_allocated: num(cols[1], line)?,
            bytes_requested: num(cols[2], line)?,
            hits: num(cols[3], line)?,
            pingpong: num(cols[4], line)?,
        };
        if table == Table::Callsites {
            p.callsites.insert(cols[0].to_string(), row);
        } else {
            let a = u64::from_str_radix(cols[0].trim_start_matches("0x"), 16)
                .map_err(|_| format!("perf output: bad address in {line:?}"))?;
            p.ptrs.insert(a, row);
        }
    }
    Ok(p)
}

/// A call site as perf names it: `name+0x24` → `name+24`, unresolved → `0x…`.
fn perf_name(symbol: Option<&str>, address: u64) -> String {
    match symbol.and_then(|s| s.rsplit_once("+0x")) {
        Some((name, off)) => format!("{name}+{off}"),
        None => symbol
            .map(str::to_string)
            .unwrap_or_else(|| format!("{address:#x}")),
    }
}

/// Everything on which kmemtrace's `report` and perf's disagree (empty: they agree).
///
/// Exact: allocations, bytes requested and allocated, per call site that allocates, per address,
/// and in total; cross-CPU allocations. kmemtrace's own definitions, which perf does not share:
/// a free counts (cross-CPU, bytes freed) only when it closes an open allocation, whereas perf
/// counts every free of an address ever allocated, again after it was freed (an unknown free to
/// kmemtrace), so there kmemtrace's figure may only be smaller.
fn disagreements(r: &Report, p: &PerfKmem) -> Vec<String> {
    let mut d = Vec::new();
    let s = &r.summary;
    let mut exact = |what: &str, ours: u64, theirs: Option<u64>| {
        if Some(ours) != theirs {
            d.push(format!("{what}: kmemtrace {ours}, perf {theirs:?}"));
        }
    };
    exact("bytes requested", s.bytes_requested, p.requested);
    exact("bytes allocated", s.bytes_allocated, p.allocated);
    exact(
        "fragmentation",
        s.fragmentation_bytes.max(0) as u64,
        p.fragmentation,
    );
    exact("allocations", s.allocs, p.cross_allocs.map(|c| c.1));
    exact(
        "cross-CPU allocations",
        s.cross_cpu_allocs,
        p.cross_allocs.map(|c| c.0),
    );
    if p.freed.is_none_or(|f| s.bytes_freed > f) {
        d.push(format!(
            "bytes freed: kmemtrace {} above perf's {:?}",
            s.bytes_freed, p.freed
        ));
    }
    let ours: BTreeMap<String, PerfRow> = r
        .callsites
        .iter()
        .filter(|c| c.stats.hits > 0)
        .map(|c| {
            let st = &c.stats;
            (
                perf_name(c.symbol.as_deref(), c.call_site),
                PerfRow {
                    bytes_allocated: st.bytes_allocated,
                    bytes_requested: st.bytes_requested,
                    hits: st.hits,
                    pingpong: st.cross_cpu_frees,
                },
            )
        })
        .collect();
    rows_agree("call site", &ours, &p.callsites, &mut d);
    let ours: BTreeMap<u64, PerfRow> = r
        .allocations
        .iter()
        .flatten()
        .map(|a| {
            (
                a.ptr,
                PerfRow {
                    bytes_allocated: a.bytes_allocated,
                    bytes_requested: a.bytes_requested,
                    hits: a.hits,
                    pingpong: a.cross_cpu_frees,
                },
            )
        })
        .collect();
    rows_agree("address", &ours, &p.ptrs, &mut d);
    d
}

fn rows_agree<K: Ord + std::fmt::Debug>(
    what: &str,
    ours: &BTreeMap<K, PerfRow>,
    theirs: &BTreeMap<K, PerfRow>,
    d: &mut Vec<String>,
) {
    for (k, o) in ours {
        match theirs.get(k) {
            None => d.push(format!("{what} {k:?}: only kmemtrace has it ({o:?})")),
            Some(t) => {
                let same = (o.bytes_allocated, o.bytes_requested, o.hits)
                    == (t.bytes_allocated, t.bytes_requested, t.hits);
                if !same || o.pingpong > t.pingpong {
                    d.push(format!("{what} {k:?}: kmemtrace {o:?}, perf {t:?}"));
                }
            }
        }
    }
    for k in theirs.keys().filter(|k| !ours.contains_key(k)) {
        d.push(format!("{what} {k:?}: only perf has it"));
    }
}

fn perf_agreement_trial() -> Result<(), Failed> {
    let dir = repo().join("target/kmt-e2e/host-perf");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if Cmd::new("perf").arg("version").read().is_err() {
        return Err("perf is missing: apt-get install --no-install-recommends linux-perf".into());
    }
    let data = dir.join("perf.data");
    let log = dir.join("perf.log");
    Cmd::new("perf")
        .args(["kmem", "record", "-o"])
        .arg(&data)
        .args([
            "--",
            "sh",
            "-c",
            "for i in $(seq 30); do ls -l /usr/bin >/dev/null; done",
        ])
        .run_logged("perf kmem record", &log)
        .map_err(|e| {
            format!(
                "{e}\n(tracing the kernel needs root or `sysctl kernel.perf_event_paranoid=-1`)"
            )
        })?;
    let script = Cmd::new("perf")
        .args(["script", "-i"])
        .arg(&data)
        .read()
        .map_err(|e| e.to_string())?;
    let trace = dir.join("trace");
    let n = kmemtrace::import_perf::import_perf(script.as_bytes(), &trace, ByteOrder::Little)
        .map_err(|e| e.to_string())?;
    drop(script);
    let input = kmemtrace::load_dir(&trace).map_err(|e| e.to_string())?;
    let opts = AnalyzeOptions {
        alloc_rows: true,
        ..AnalyzeOptions::default()
    };
    let report = kmemtrace::analyze(&input, &opts).map_err(|e| e.to_string())?;
    let stat = Cmd::new("perf")
        .args(["kmem", "-i"])
        .arg(&data)
        .args(["--caller", "--alloc", "stat"])
        .read()
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("perf-kmem-stat.txt"), &stat).map_err(|e| e.to_string())?;
    let perf = parse_perf_kmem(&stat)?;
    eprintln!(
        "host perf agreement: {n} events, {} allocating call sites, {} addresses, in {}",
        perf.callsites.len(),
        perf.ptrs.len(),
        dir.display()
    );
    if n < 10_000 || report.summary.records != n {
        return Err(format!(
            "imported {n} events, report read {}: the workload should give tens of thousands",
            report.summary.records
        )
        .into());
    }
    if perf.callsites.is_empty() || perf.ptrs.is_empty() {
        return Err(format!(
            "perf printed no tables; see {}",
            dir.join("perf-kmem-stat.txt").display()
        )
        .into());
    }
    let d = disagreements(&report, &perf);
    if !d.is_empty() {
        return Err(format!(
            "{} disagreements with perf kmem (first 20):\n{}",
            d.len(),
            d[..d.len().min(20)].join("\n")
        )
        .into());
    }
    Ok(())
}

/// A sample of `perf kmem --caller --alloc stat` (perf 6.1), shortened.
const SAMPLE: &str = "\
---------------------------------------------------------------------------------------------------------
 Callsite                           | Total_alloc/Per | Total_req/Per   | Hit      | Ping-pong | Frag
---------------------------------------------------------------------------------------------------------
 proc_sys_call_handler+148          |       176/8     |        44/2     |       22 |         0 | 75.000%
 futex_hash_allocate+dd             |     55296/2048  |     29376/1088  |       27 |         7 | 46.875%
 0xffffffff81789918                 |        64/64    |        64/64    |        1 |         1 |  0.000%
---------------------------------------------------------------------------------------------------------

---------------------------------------------------------------------------------------------------------
 Alloc Ptr                          | Total_alloc/Per | Total_req/Per   | Hit      | Ping-pong | Frag
---------------------------------------------------------------------------------------------------------
 0xffff8881ac70fee8                 |       104/8     |        26/2     |       13 |         0 | 75.000%
---------------------------------------------------------------------------------------------------------

SUMMARY (SLAB allocator)
========================
Total bytes requested: 812709351
Total bytes allocated: 826812536
Total bytes freed:     789285568
Net total bytes allocated: 37526968
Total bytes wasted on internal fragmentation: 14103185
Internal fragmentation: 1.705729%
Cross CPU allocations: 0/1807132
";

fn parse_trial() -> Result<(), Failed> {
    let p = parse_perf_kmem(SAMPLE)?;
    let row = |a, r, h, pp| PerfRow {
        bytes_allocated: a,
        bytes_requested: r,
        hits: h,
        pingpong: pp,
    };
    let want = PerfKmem {
        callsites: [
            ("proc_sys_call_handler+148".to_string(), row(176, 44, 22, 0)),
            (
                "futex_hash_allocate+dd".to_string(),
                row(55296, 29376, 27, 7),
            ),
            ("0xffffffff81789918".to_string(), row(64, 64, 1, 1)),
        ]
        .into(),
        ptrs: [(0xffff8881ac70fee8, row(104, 26, 13, 0))].into(),
        requested: Some(812709351),
        allocated: Some(826812536),
        freed: Some(789285568),
        fragmentation: Some(14103185),
        cross_allocs: Some((0, 1807132)),
    };
    if p != want {
        return Err(format!("parsed\n{p:#?}\nwanted\n{want:#?}").into());
    }
    for (sym, addr, want) in [
        (
            Some("getname_flags.part.0+0x24"),
            1,
            "getname_flags.part.0+24",
        ),
        (None, 0xffffffff81789918, "0xffffffff81789918"),
    ] {
        if perf_name(sym, addr) != want {
            return Err(format!("perf_name({sym:?}) = {}", perf_name(sym, addr)).into());
        }
    }
    if parse_perf_kmem(" Callsite | a\n x+1 | 1/1 | z/1 | 1 | 0 | 0%\n").is_ok() {
        return Err("a bad number parsed".into());
    }
    Ok(())
}
