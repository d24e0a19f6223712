// SPDX-License-Identifier: GPL-2.0-only
//! Host trials: kmemtrace against an independent implementation on real kernel events.
//!
//! - `host::perf_agreement`: `perf kmem record` traces this host's kernel while `ls` runs; the
//!   very same events are analysed by `perf kmem --caller --alloc stat` and, through
//!   `perf script | kmemtrace import-perf`, by kmemtrace. Both must agree exactly on every
//!   allocating call site's and every address's allocations and bytes, and on the totals. Frees
//!   the two define differently, so the test reads the `perf script` events itself and replays
//!   them twice, under perf's rules ([`perf_model`]), which must give every figure perf prints
//!   (bytes freed, ping-pong per call site and per address), and under kmemtrace's
//!   ([`kmemtrace_model`]), which must give kmemtrace's free-side figures exactly (frees, bytes
//!   freed, cross-CPU, NULL, unknown, mismatched and lost frees, live allocations and bytes, in
//!   total, per call site and per address). The trace converted to big-endian must give the same
//!   report.
//! - `host::perf_output_parses`: the parser of perf's tables, on a sample of its output (pure).
//! - `host::replays_follow_their_rules`: both replays, and kmemtrace in both byte orders, on a
//!   hand-made script with what this host's trace lacks (pages at a slab object's address, an
//!   allocation for another node, a second free of an address, …), against figures worked out by
//!   hand (pure).
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
        Trial::test("host::replays_follow_their_rules", replays_trial),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// One row of perf's call-site or address table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PerfRow {
    bytes_allocated: u64,
    bytes_requested: u64,
    hits: u64,
    pingpong: u64,
}

impl PerfRow {
    /// A row with these bytes allocated and requested, hits and ping-pongs (for hand-worked
    /// expectations).
    fn new(bytes_allocated: u64, bytes_requested: u64, hits: u64, pingpong: u64) -> Self {
        PerfRow {
            bytes_allocated,
            bytes_requested,
            hits,
            pingpong,
        }
    }
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

/// Where kmemtrace's `report` and perf's disagree on the allocation side (empty: they agree).
///
/// Both tools define these figures alike, so they must be equal: allocations, bytes requested and
/// allocated, per call site that allocates, per address, and in total; cross-CPU allocations.
/// Frees they define differently (see [`perf_model`] and [`kmemtrace_model`]); each tool's free
/// side is checked against a replay of the events under its own rules instead.
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
    // (bytes allocated, bytes requested, hits): what both tools count alike per row.
    let alloc_side = |row: &PerfRow| (row.bytes_allocated, row.bytes_requested, row.hits);
    let ours: BTreeMap<String, (u64, u64, u64)> = r
        .callsites
        .iter()
        .filter(|c| c.stats.hits > 0)
        .map(|c| {
            let st = &c.stats;
            (
                perf_name(c.symbol.as_deref(), c.call_site),
                (st.bytes_allocated, st.bytes_requested, st.hits),
            )
        })
        .collect();
    let theirs = p.callsites.iter().map(|(k, v)| (k.clone(), alloc_side(v)));
    let sides = ("kmemtrace", "perf");
    rows_agree("call site", sides, &ours, &theirs.collect(), &mut d);
    let ours: BTreeMap<u64, (u64, u64, u64)> = r
        .allocations
        .iter()
        .flatten()
        .map(|a| (a.ptr, (a.bytes_allocated, a.bytes_requested, a.hits)))
        .collect();
    let theirs = p.ptrs.iter().map(|(k, v)| (*k, alloc_side(v)));
    rows_agree("address", sides, &ours, &theirs.collect(), &mut d);
    d
}

/// Every row that differs between `a` and `b` (named by `names`), or is in only one of them.
fn rows_agree<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    names: (&str, &str),
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    d: &mut Vec<String>,
) {
    for (k, x) in a {
        match b.get(k) {
            None => d.push(format!("{what} {k:?}: only {} has it ({x:?})", names.0)),
            Some(y) if x != y => d.push(format!(
                "{what} {k:?}: {} {x:?}, {} {y:?}",
                names.0, names.1
            )),
            Some(_) => {}
        }
    }
    for (k, y) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
        d.push(format!("{what} {k:?}: only {} has it ({y:?})", names.1));
    }
}

/// Every named figure that differs between the two sides.
fn figures_agree(names: (&str, &str), figures: &[(&str, u64, u64)], d: &mut Vec<String>) {
    for (what, x, y) in figures {
        if x != y {
            d.push(format!("{what}: {} {x}, {} {y}", names.0, names.1));
        }
    }
}

/// Allocator family of a kmem event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Kmalloc,
    Cache,
    Page,
}

/// One kmem event of `perf script`, read by the test's own parser ([`read_event`]), not by
/// kmemtrace's importer: a mistake there shows up as a disagreement with these replays.
#[derive(Debug, Clone)]
struct Event {
    cpu: u32,
    family: Family,
    alloc: bool,
    /// The call site as perf's tables name it (see [`perf_name`]); `0x0` for page events.
    site: String,
    /// `ptr=`, or `pfn * 4096` for page events.
    ptr: u64,
    bytes_req: u64,
    bytes_alloc: u64,
    /// `node=`, -1 when absent.
    node: i32,
}

/// Read one `perf script` line: `Ok(None)` when it is not one of the eight kmem events
/// kmemtrace imports, `Err` when it is one but a field does not read.
fn read_event(line: &str) -> Result<Option<Event>, String> {
    let Some(k) = line.find(" kmem:") else {
        return Ok(None);
    };
    let bad = |what: &str| format!("perf script: cannot read {what} in {line:?}");
    let (name, fields) = line[k + 6..].split_once(':').ok_or_else(|| bad("event"))?;
    let (family, alloc) = match name {
        "kmalloc" | "kmalloc_node" => (Family::Kmalloc, true),
        "kmem_cache_alloc" | "kmem_cache_alloc_node" => (Family::Cache, true),
        "kfree" => (Family::Kmalloc, false),
        "kmem_cache_free" => (Family::Cache, false),
        "mm_page_alloc" => (Family::Page, true),
        "mm_page_free" => (Family::Page, false),
        _ => return Ok(None),
    };
    let cpu = line[..k]
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        .ok_or_else(|| bad("the CPU"))?;
    let field = |key: &str| {
        fields
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| bad(key))
    };
    let hex = |key: &str| -> Result<u64, String> {
        match field(key)? {
            "(nil)" => Ok(0),
            v => v
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(key)),
        }
    };
    let dec = |key: &str| -> Result<u64, String> { field(key)?.parse().map_err(|_| bad(key)) };
    let mut e = Event {
        cpu,
        family,
        alloc,
        site: "0x0".into(),
        ptr: 0,
        bytes_req: 0,
        bytes_alloc: 0,
        node: -1,
    };
    if family == Family::Page {
        e.ptr = hex("pfn")? * 4096;
        if alloc {
            e.bytes_req = 4096 << dec("order")?;
            e.bytes_alloc = e.bytes_req;
        }
        return Ok(Some(e));
    }
    let cs = field("call_site")?;
    e.site = match cs.rsplit_once("+0x") {
        Some((f, off)) => format!("{f}+{off}"),
        None => {
            let a = cs
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            format!("{:#x}", a.ok_or_else(|| bad("call_site"))?)
        }
    };
    e.ptr = hex("ptr")?;
    if alloc {
        e.bytes_req = dec("bytes_req")?;
        e.bytes_alloc = dec("bytes_alloc")?;
        e.node = field("node").map_or(Ok(-1), |v| v.parse().map_err(|_| bad("node")))?;
    }
    Ok(Some(e))
}

/// NUMA node of every CPU, to both tools on this trial: perf asks the host (which has one node),
/// kmemtrace reads `node: -1` for every CPU from the imported `meta.json`, which it takes as 0.
/// An allocation counts as cross-CPU when its `node=` is neither -1 nor that.
const CPU_NODE: i32 = 0;

/// What `perf kmem --caller --alloc stat` prints for `events`, by perf's rules (perf 6.1,
/// `builtin-kmem.c`). Page events are not its slab statistics. Per address perf keeps the CPU and
/// size of the latest allocation, and never forgets an address: an allocation adds to its row
/// (and to its call site's); a free of an address ever allocated adds that latest size to the
/// bytes freed, counts a ping-pong for the address and for its latest call site when its CPU is
/// not the remembered one, and forgets the CPU, so that a second free of the address is a
/// ping-pong again. A free of an address never allocated counts nowhere.
fn perf_model(events: &[Event]) -> PerfKmem {
    struct Addr {
        row: PerfRow,
        site: String,
        cpu: Option<u32>,
        last_alloc: u64,
    }
    let mut addrs: BTreeMap<u64, Addr> = BTreeMap::new();
    let mut p = PerfKmem::default();
    let (mut req, mut alloc, mut freed, mut allocs, mut cross) = (0, 0, 0, 0, 0);
    let add = |row: &mut PerfRow, e: &Event| {
        row.hits += 1;
        row.bytes_requested += e.bytes_req;
        row.bytes_allocated += e.bytes_alloc;
    };
    for e in events.iter().filter(|e| e.family != Family::Page) {
        if e.alloc {
            let a = addrs.entry(e.ptr).or_insert_with(|| Addr {
                row: PerfRow::default(),
                site: String::new(),
                cpu: None,
                last_alloc: 0,
            });
            add(&mut a.row, e);
            a.site.clone_from(&e.site);
            a.cpu = Some(e.cpu);
            a.last_alloc = e.bytes_alloc;
            add(p.callsites.entry(e.site.clone()).or_default(), e);
            req += e.bytes_req;
            alloc += e.bytes_alloc;
            allocs += 1;
            cross += (e.node != -1 && e.node != CPU_NODE) as u64;
        } else if let Some(a) = addrs.get_mut(&e.ptr) {
            freed += a.last_alloc;
            if a.cpu != Some(e.cpu) {
                a.row.pingpong += 1;
                if let Some(s) = p.callsites.get_mut(&a.site) {
                    s.pingpong += 1;
                }
            }
            a.cpu = None;
        }
    }
    p.ptrs = addrs.into_iter().map(|(k, a)| (k, a.row)).collect();
    p.requested = Some(req);
    p.allocated = Some(alloc);
    p.freed = Some(freed);
    p.fragmentation = Some(alloc - req);
    p.cross_allocs = Some((cross, allocs));
    p
}

/// Where the replay of perf's rules and perf's own output differ.
fn perf_model_disagreements(model: &PerfKmem, p: &PerfKmem) -> Vec<String> {
    let mut d = Vec::new();
    let v = |x: Option<u64>| x.unwrap_or(u64::MAX);
    let cross = |p: &PerfKmem| p.cross_allocs.unwrap_or((u64::MAX, u64::MAX));
    figures_agree(
        ("perf's rules replayed", "perf"),
        &[
            ("bytes requested", v(model.requested), v(p.requested)),
            ("bytes allocated", v(model.allocated), v(p.allocated)),
            ("bytes freed", v(model.freed), v(p.freed)),
            ("fragmentation", v(model.fragmentation), v(p.fragmentation)),
            ("allocations", cross(model).1, cross(p).1),
            ("cross-CPU allocations", cross(model).0, cross(p).0),
        ],
        &mut d,
    );
    let names = ("perf's rules replayed", "perf");
    rows_agree("call site", names, &model.callsites, &p.callsites, &mut d);
    rows_agree("address", names, &model.ptrs, &p.ptrs, &mut d);
    d
}

/// A call site's figures in kmemtrace's report that the free side decides.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct KmtSite {
    hits: u64,
    frees: u64,
    freed: u64,
    cross_cpu_frees: u64,
    mismatched_frees: u64,
    live_allocations: u64,
    live_bytes: u64,
}

/// An address's figures in kmemtrace's report that the free side decides.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct KmtAddr {
    hits: u64,
    cross_cpu_frees: u64,
    live: bool,
}

/// kmemtrace's free-side figures: from a replay ([`kmemtrace_model`]) or from a report.
#[derive(Debug, Default, PartialEq, Eq)]
struct KmtFigures {
    allocs: u64,
    frees: u64,
    bytes_freed: u64,
    cross_cpu_allocs: u64,
    cross_cpu_frees: u64,
    null_frees: u64,
    unknown_frees: u64,
    mismatched_frees: u64,
    cache_objects_kfreed: u64,
    lost_frees: u64,
    failed_allocs: u64,
    live_allocations: u64,
    live_bytes: u64,
    /// By call site as perf names it.
    sites: BTreeMap<String, KmtSite>,
    addrs: BTreeMap<u64, KmtAddr>,
}

impl KmtFigures {
    fn of_report(r: &Report) -> KmtFigures {
        let s = &r.summary;
        KmtFigures {
            allocs: s.allocs,
            frees: s.frees,
            bytes_freed: s.bytes_freed,
            cross_cpu_allocs: s.cross_cpu_allocs,
            cross_cpu_frees: s.cross_cpu_frees,
            null_frees: s.null_frees,
            unknown_frees: s.unknown_frees,
            mismatched_frees: s.mismatched_frees,
            cache_objects_kfreed: s.cache_objects_kfreed,
            lost_frees: s.lost_frees,
            failed_allocs: s.failed_allocs,
            live_allocations: s.live_allocations,
            live_bytes: s.live_bytes,
            sites: r
                .callsites
                .iter()
                .map(|c| {
                    let st = &c.stats;
                    let site = KmtSite {
                        hits: st.hits,
                        frees: st.frees,
                        freed: st.freed,
                        cross_cpu_frees: st.cross_cpu_frees,
                        mismatched_frees: st.mismatched_frees,
                        live_allocations: st.live_allocations,
                        live_bytes: st.live_bytes,
                    };
                    (perf_name(c.symbol.as_deref(), c.call_site), site)
                })
                .collect(),
            addrs: r
                .allocations
                .iter()
                .flatten()
                .map(|a| {
                    let addr = KmtAddr {
                        hits: a.hits,
                        cross_cpu_frees: a.cross_cpu_frees,
                        live: a.live,
                    };
                    (a.ptr, addr)
                })
                .collect(),
        }
    }

    /// Where `self` (named `names.0`) and `other` differ.
    fn disagreements(&self, other: &KmtFigures, names: (&str, &str)) -> Vec<String> {
        let mut d = Vec::new();
        let (a, b) = (self, other);
        figures_agree(
            names,
            &[
                ("allocations", a.allocs, b.allocs),
                ("frees", a.frees, b.frees),
                ("bytes freed", a.bytes_freed, b.bytes_freed),
                (
                    "cross-CPU allocations",
                    a.cross_cpu_allocs,
                    b.cross_cpu_allocs,
                ),
                ("cross-CPU frees", a.cross_cpu_frees, b.cross_cpu_frees),
                ("NULL frees", a.null_frees, b.null_frees),
                ("unknown frees", a.unknown_frees, b.unknown_frees),
                ("mismatched frees", a.mismatched_frees, b.mismatched_frees),
                (
                    "cache objects kfreed",
                    a.cache_objects_kfreed,
                    b.cache_objects_kfreed,
                ),
                ("lost frees", a.lost_frees, b.lost_frees),
                ("failed allocations", a.failed_allocs, b.failed_allocs),
                ("live allocations", a.live_allocations, b.live_allocations),
                ("live bytes", a.live_bytes, b.live_bytes),
            ],
            &mut d,
        );
        rows_agree("call site", names, &a.sites, &b.sites, &mut d);
        rows_agree("address", names, &a.addrs, &b.addrs, &mut d);
        d
    }
}

/// kmemtrace's figures for `events` by its documented rules (`Summary` and `SiteStats` in
/// `kmemtrace/src/report.rs`), replayed in input order (the importer numbers the records in it).
/// Slab objects and pages are two address spaces: a free pairs with an open allocation of its own
/// space at its address (kmalloc and kmem_cache share one), else with one of the other space there.
/// Freeing an allocation with another family's free still closes it; the trace says no allocator,
/// so SLUB's rules judge it (`kmemtrace/docs/report-schema.md`): `kfree()` of a `kmem_cache_alloc()`
/// object is allowed and counted as such, every other mix-up is a mismatched free. A free of NULL
/// is a NULL free; of an address with no open allocation in either space, an unknown free; else it
/// closes the allocation: its `bytes_alloc` is
/// freed, counted at the allocation's call site, and it is a cross-CPU free when logged on
/// another CPU than the allocation. An allocation of NULL failed and opens nothing; one at an
/// address still open replaces it (a lost free). Every free record counts as a free at its own
/// call site. What is open at the end is live. Addresses are rows whatever their space.
fn kmemtrace_model(events: &[Event]) -> KmtFigures {
    struct Open<'a> {
        bytes_alloc: u64,
        cpu: u32,
        family: Family,
        site: &'a str,
    }
    let mut f = KmtFigures::default();
    let mut open: BTreeMap<(bool, u64), Open<'_>> = BTreeMap::new();
    for e in events {
        let key = (e.family == Family::Page, e.ptr);
        if e.alloc {
            f.allocs += 1;
            f.sites.entry(e.site.clone()).or_default().hits += 1;
            f.cross_cpu_allocs += (e.node != -1 && e.node != CPU_NODE) as u64;
            if e.ptr == 0 {
                f.failed_allocs += 1;
                continue;
            }
            let a = f.addrs.entry(e.ptr).or_default();
            a.hits += 1;
            a.live = true;
            let o = Open {
                bytes_alloc: e.bytes_alloc,
                cpu: e.cpu,
                family: e.family,
                site: &e.site,
            };
            f.lost_frees += open.insert(key, o).is_some() as u64;
            continue;
        }
        f.frees += 1;
        f.sites.entry(e.site.clone()).or_default().frees += 1;
        if e.ptr == 0 {
            f.null_frees += 1;
            continue;
        }
        let other_space = (e.family != Family::Page, e.ptr);
        let Some(o) = open.remove(&key).or_else(|| open.remove(&other_space)) else {
            f.unknown_frees += 1;
            continue;
        };
        let cross = (o.cpu != e.cpu) as u64;
        let cache_kfree = o.family == Family::Cache && e.family == Family::Kmalloc;
        f.cache_objects_kfreed += cache_kfree as u64;
        let mismatched = (o.family != e.family && !cache_kfree) as u64;
        f.bytes_freed += o.bytes_alloc;
        f.cross_cpu_frees += cross;
        f.mismatched_frees += mismatched;
        let s = f.sites.entry(o.site.to_string()).or_default();
        s.freed += 1;
        s.cross_cpu_frees += cross;
        s.mismatched_frees += mismatched;
        let a = f.addrs.entry(e.ptr).or_default();
        a.cross_cpu_frees += cross;
        a.live = false;
    }
    for o in open.values() {
        f.live_allocations += 1;
        f.live_bytes += o.bytes_alloc;
        let s = f.sites.entry(o.site.to_string()).or_default();
        s.live_allocations += 1;
        s.live_bytes += o.bytes_alloc;
    }
    f
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
    let events: Vec<Event> = script
        .lines()
        .filter_map(|l| read_event(l).transpose())
        .collect::<Result<_, _>>()?;
    let trace = dir.join("trace");
    let n = kmemtrace::import_perf::import_perf(script.as_bytes(), &trace, ByteOrder::Little)
        .map_err(|e| e.to_string())?;
    drop(script);
    let opts = AnalyzeOptions {
        alloc_rows: true,
        ..AnalyzeOptions::default()
    };
    let analyze = |t: &std::path::Path| -> Result<Report, String> {
        let input = kmemtrace::load_dir(t).map_err(|e| e.to_string())?;
        kmemtrace::analyze(&input, &opts).map_err(|e| e.to_string())
    };
    let report = analyze(&trace)?;
    let stat = Cmd::new("perf")
        .args(["kmem", "-i"])
        .arg(&data)
        .args(["--caller", "--alloc", "stat"])
        .read()
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("perf-kmem-stat.txt"), &stat).map_err(|e| e.to_string())?;
    let perf = parse_perf_kmem(&stat)?;
    let perf_rules = perf_model(&events);
    let kmemtrace_rules = kmemtrace_model(&events);
    let ours = KmtFigures::of_report(&report);
    let s = &report.summary;
    let pingpong: u64 = perf.callsites.values().map(|r| r.pingpong).sum();
    eprintln!(
        "host perf agreement: {n} events ({} read by the test), {} allocating call sites, {} \
         addresses, in {}\n  perf: bytes freed {:?}, ping-pong {pingpong}, cross-CPU allocations \
         {:?}\n  kmemtrace: allocations {}, frees {}, bytes freed {}, cross-CPU frees {}, NULL \
         frees {}, unknown frees {}, mismatched frees {}, lost frees {}, live {} ({} bytes)",
        events.len(),
        perf.callsites.len(),
        perf.ptrs.len(),
        dir.display(),
        perf.freed,
        perf.cross_allocs,
        s.allocs,
        s.frees,
        s.bytes_freed,
        s.cross_cpu_frees,
        s.null_frees,
        s.unknown_frees,
        s.mismatched_frees,
        s.lost_frees,
        s.live_allocations,
        s.live_bytes,
    );
    if n < 10_000 || report.summary.records != n || events.len() as u64 != n {
        return Err(format!(
            "imported {n} events, the test read {}, the report {}: the workload should give \
             tens of thousands, the same to each",
            events.len(),
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
    let mut d = disagreements(&report, &perf);
    d.extend(perf_model_disagreements(&perf_rules, &perf));
    d.extend(kmemtrace_rules.disagreements(&ours, ("kmemtrace's rules replayed", "kmemtrace")));
    // The same trace in the other byte order must give the same report.
    let big = dir.join("trace-big");
    kmemtrace::convert_dir(&trace, &big, ByteOrder::Big).map_err(|e| e.to_string())?;
    let big_report = analyze(&big)?;
    if big_report.trace.byte_order != Some(ByteOrder::Big) {
        d.push(format!(
            "the converted trace was read as {:?}",
            big_report.trace.byte_order
        ));
    }
    if big_report.without_trace() != report.without_trace() {
        let theirs = KmtFigures::of_report(&big_report);
        let mut why = ours.disagreements(&theirs, ("little-endian", "big-endian"));
        if why.is_empty() {
            why.push("the reports differ outside the free-side figures".into());
        }
        d.extend(why.into_iter().map(|w| format!("byte order: {w}")));
    }
    if !d.is_empty() {
        return Err(format!(
            "{} disagreements (first 20):\n{}",
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
    let row = PerfRow::new;
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

/// A hand-made `perf script` with what this host's trace lacks or rarely has: a page allocation
/// at a slab object's address, an allocation for another node, a free after a free, a lost free,
/// a kfree of a cache object (allowed), a kfree of pages (a mismatched free), a NULL and an
/// unknown free.
const SCRIPT: &str = "\
 p 1 [000] 1.00: kmem:kmalloc: call_site=f+0x10 ptr=0xffff888100001000 bytes_req=30 bytes_alloc=32 gfp_flags=GFP_KERNEL node=-1 accounted=false
 p 1 [001] 1.01: kmem:kfree: call_site=g+0x4 ptr=0xffff888100001000
 p 1 [000] 1.02: kmem:kfree: call_site=g+0x4 ptr=0xffff888100001000
 p 1 [000] 1.03: kmem:kfree: call_site=g+0x4 ptr=(nil)
 p 1 [001] 1.04: kmem:kmem_cache_alloc: call_site=h+0x8 ptr=0xffff888100002000 name=c bytes_req=64 bytes_alloc=64 gfp_flags=GFP_KERNEL node=1 accounted=false
 p 1 [001] 1.05: kmem:kmem_cache_alloc: call_site=h+0x8 ptr=0xffff888100002000 name=c bytes_req=64 bytes_alloc=64 gfp_flags=GFP_KERNEL node=0 accounted=false
 p 1 [001] 1.06: kmem:kfree: call_site=g+0x4 ptr=0xffff888100002000
 p 1 [000] 1.07: kmem:kmalloc: call_site=f+0x10 ptr=0xffff888100003000 bytes_req=30 bytes_alloc=32 gfp_flags=GFP_KERNEL node=-1 accounted=false
 p 1 [000] 1.08: kmem:mm_page_alloc: page=0x1 pfn=0xffff888100003 order=1 migratetype=0 gfp_flags=GFP_KERNEL
 p 1 [001] 1.09: kmem:mm_page_free: page=0x1 pfn=0xffff888100003 order=1
 p 1 [000] 1.10: kmem:kmem_cache_free: call_site=k+0xc ptr=0xffff888100004000 name=c
 p 1 [000] 1.11: sched:sched_switch: prev_comm=p
 p 1 [000] 1.12: kmem:mm_page_alloc: page=0x2 pfn=0xffff888100005 order=0 migratetype=0 gfp_flags=GFP_KERNEL
 p 1 [000] 1.13: kmem:kfree: call_site=g+0x4 ptr=0xffff888100005000
";

/// Both replays on [`SCRIPT`] give the figures worked out by hand from their rules, and kmemtrace
/// on the imported script gives its replay's, in both byte orders.
fn replays_trial() -> Result<(), Failed> {
    let events: Vec<Event> = SCRIPT
        .lines()
        .filter_map(|l| read_event(l).transpose())
        .collect::<Result<_, _>>()?;
    if events.len() != 13 {
        return Err(format!("read {} events, not 13", events.len()).into());
    }
    let row = PerfRow::new;
    // perf: the second free of the first object adds its size again and is a ping-pong again
    // (its CPU was forgotten); pages, the NULL and the unknown free count nowhere.
    let want = PerfKmem {
        callsites: [
            ("f+10".to_string(), row(64, 60, 2, 2)),
            ("h+8".to_string(), row(128, 128, 2, 0)),
        ]
        .into(),
        ptrs: [
            (0xffff888100001000, row(32, 30, 1, 2)),
            (0xffff888100002000, row(128, 128, 2, 0)),
            (0xffff888100003000, row(32, 30, 1, 0)),
        ]
        .into(),
        requested: Some(188),
        allocated: Some(192),
        freed: Some(32 + 32 + 64),
        fragmentation: Some(4),
        cross_allocs: Some((1, 4)),
    };
    let d = perf_model_disagreements(&perf_model(&events), &want);
    if !d.is_empty() {
        return Err(format!("perf's rules:\n{}", d.join("\n")).into());
    }
    // kmemtrace: the page free closes the page, not the kmalloc at the same address; the kfree
    // of the cache object is allowed (SLUB), the kfree of the page at 0x...5000 is not.
    let model = kmemtrace_model(&events);
    let got = (
        (model.allocs, model.frees, model.bytes_freed),
        (model.cross_cpu_allocs, model.cross_cpu_frees),
        (
            model.null_frees,
            model.unknown_frees,
            model.mismatched_frees,
            model.cache_objects_kfreed,
        ),
        (model.lost_frees, model.failed_allocs),
        (model.live_allocations, model.live_bytes),
    );
    let want = (
        (6, 7, 32 + 64 + 8192 + 4096),
        (1, 2),
        (1, 2, 1, 1),
        (1, 0),
        (1, 32),
    );
    if got != want {
        return Err(format!("kmemtrace's rules: {got:?}, wanted {want:?}").into());
    }
    let site = |hits, frees, freed, cross, mismatched, live, live_bytes| KmtSite {
        hits,
        frees,
        freed,
        cross_cpu_frees: cross,
        mismatched_frees: mismatched,
        live_allocations: live,
        live_bytes,
    };
    let want_sites: BTreeMap<String, KmtSite> = [
        ("f+10", site(2, 0, 1, 1, 0, 1, 32)),
        ("g+4", site(0, 5, 0, 0, 0, 0, 0)),
        ("h+8", site(2, 0, 1, 0, 0, 0, 0)),
        ("0x0", site(2, 1, 2, 1, 1, 0, 0)),
        ("k+c", site(0, 1, 0, 0, 0, 0, 0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if model.sites != want_sites {
        return Err(format!("kmemtrace's rules, call sites: {:#?}", model.sites).into());
    }
    let opts = AnalyzeOptions {
        alloc_rows: true,
        ..AnalyzeOptions::default()
    };
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let (input, _) = kmemtrace::import_perf::import_perf_in_memory(SCRIPT.as_bytes(), order);
        let report = kmemtrace::analyze(&input, &opts).map_err(|e| e.to_string())?;
        let names = ("kmemtrace's rules replayed", "kmemtrace");
        let d = model.disagreements(&KmtFigures::of_report(&report), names);
        if !d.is_empty() {
            return Err(format!("{order:?}:\n{}", d.join("\n")).into());
        }
    }
    Ok(())
}
