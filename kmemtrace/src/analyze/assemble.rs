// SPDX-License-Identifier: GPL-2.0-only
//! The report assembly: the merge's accounting ([`Produced`]) and the replay's figures
//! ([`ReplayOut`]) made into a [`Report`], one function per section.
//!
//! Grouping of call-site rows (today by function, in [`site_rows`]) lives here: the replay keeps
//! figures per call-site address only.

use super::merge::Produced;
use super::replay::{
    Found, PageAcc, PtrAcc, ReplayOut, SiteAcc, SizeAcc, Timeline, TypeTotals, MEM_USES,
};
use super::AnalyzeOptions;
use crate::abi::{AllocType, ByteOrder, TYPE_COUNT};
use crate::callers;
use crate::input::TraceInput;
use crate::meta::{self, Meta};
use crate::pageuse::PageUse;
use crate::report::*;
use crate::symbols::Symbols;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// What [`super::analyze`] decided before the merge, as the report states it.
pub(super) struct Plan {
    /// Sort keys of the rows.
    pub(super) sort: Vec<String>,
    /// Sort keys of the per-allocation rows (the same, unless none were given).
    pub(super) alloc_sort: Vec<String>,
    /// Each file's detected byte order.
    pub(super) detected: Vec<Option<ByteOrder>>,
    /// The trace's byte order.
    pub(super) order: ByteOrder,
    /// Page size used for page orders.
    pub(super) page_size: u64,
    /// The allocator whose rules judged the frees, and where it came from.
    pub(super) allocator: crate::rules::Allocator,
    pub(super) allocator_source: AllocatorSource,
}

/// `allocated - requested`, clamped to `i64` (byte sums saturate on absurd input instead of
/// overflowing).
fn frag(allocated: u64, requested: u64) -> i64 {
    (allocated as i128 - requested as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `function+0xoffset` of an address, when there are symbols.
fn describe(syms: Option<&Symbols>, addr: u64) -> Option<String> {
    syms.and_then(|s| s.describe(addr))
}

/// The report of one analysis.
pub(super) fn build_report(
    input: &TraceInput,
    opts: &AnalyzeOptions,
    plan: Plan,
    mut p: Produced,
    out: ReplayOut,
) -> Report {
    let ReplayOut { r, live_types } = out;
    let syms = input.symbols.as_ref().filter(|s| !s.is_empty());
    let meta = input.meta.as_ref();

    // The replay's figures and the merge's are disjoint fields of one summary.
    let mut summary = r.s.clone();
    summary += &p.s;
    summary.fragmentation_bytes = frag(summary.bytes_allocated, summary.bytes_requested);

    let groups = opts.group_by.needs_stacks().then(|| {
        group_rows(
            opts.group_by,
            &r.sites,
            &p.sites,
            &p.site_stacks,
            syms,
            &plan.sort,
            opts.max_rows,
        )
    });
    let (callsites, functions) = site_rows(&r.sites, &p.sites, syms, &plan.sort, opts.max_rows);
    let allocations = r
        .ptrs
        .as_ref()
        .map(|ptrs| alloc_rows(ptrs, &p.sites, syms, &plan.alloc_sort, opts.max_rows));
    let findings = findings(input, opts, &plan.detected, &mut p, r.found, syms);
    let overruns = meta.and_then(|m| m.total_overruns);

    let files = input
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileInfo {
            file: f.name.clone(),
            cpu: f.cpu,
            node: meta::node_of(meta, f.cpu),
            bytes: f.bytes().len() as u64,
            records: p.records_per_file[i],
            detected_byte_order: plan.detected[i],
        })
        .collect();

    Report {
        schema_version: SCHEMA_VERSION,
        trace: TraceInfo {
            directory: input.dir.as_ref().map(|d| d.display().to_string()),
            byte_order: Some(plan.order),
            files,
            machine: meta.and_then(|m| m.machine.clone()),
            kernel_release: meta.and_then(|m| m.kernel_release.clone()),
            allocator: Some(plan.allocator),
            allocator_source: Some(plan.allocator_source),
            page_size: plan.page_size,
            symbols: syms.is_some(),
            callsite_filter: opts.callsite_filter.clone(),
            sort: plan.sort,
        },
        summary,
        types: type_rows(&r.types, &live_types),
        callsites,
        functions,
        allocations,
        pages: page_rows(&r.pages),
        sizes: size_rows(&r.sizes),
        findings,
        lost: LostEvents {
            lost_events: p.s.lost_events,
            gaps: p.gap_count,
            examples: p.gaps,
            total_overruns: overruns,
            duplicate_seqs: p.s.duplicate_seqs,
            out_of_order_seqs: p.s.out_of_order_seqs,
        },
        damage: DamageReport {
            regions_total: p.s.damaged_regions,
            bytes: p.s.damaged_bytes,
            regions: p.damage,
        },
        memory: Some(memory_report(&r.timeline, syms.is_some())),
        groups,
    }
}

/// Memory by use from the replay's timeline: per use the totals, live and peak bytes; the slab
/// overhead at the end and at its peak; the peak of pages taken from the page allocator.
fn memory_report(t: &Timeline, classified: bool) -> MemoryReport {
    const SLAB_OBJECTS: usize = 0;
    let page = |u: PageUse| 1 + u as usize;
    let overhead = |live: &[i64; MEM_USES]| live[page(PageUse::Slab)] - live[SLAB_OBJECTS];
    let pages = |live: &[i64; MEM_USES]| {
        live[page(PageUse::Slab)] + live[page(PageUse::LargeKmalloc)] + live[page(PageUse::Other)]
    };
    let mut live = [0i64; MEM_USES];
    let mut peak = [0i64; MEM_USES];
    let (mut peak_overhead, mut peak_pages) = (None::<i64>, 0i64);
    for d in &t.deltas {
        for ((l, p), x) in live.iter_mut().zip(peak.iter_mut()).zip(d) {
            *l = l.saturating_add(*x);
            *p = (*p).max(*l);
        }
        let o = overhead(&live);
        peak_overhead = Some(peak_overhead.map_or(o, |p| p.max(o)));
        peak_pages = peak_pages.max(pages(&live));
    }
    // Slab objects first, then the pages: the slab allocator's, the large kmallocs', the
    // tracer's, everyone else's.
    let rows = [
        ("slab_objects", SLAB_OBJECTS),
        (PageUse::Slab.name(), page(PageUse::Slab)),
        (PageUse::LargeKmalloc.name(), page(PageUse::LargeKmalloc)),
        (PageUse::Tracer.name(), page(PageUse::Tracer)),
        (PageUse::Other.name(), page(PageUse::Other)),
    ];
    let uses: Vec<MemoryRow> = rows
        .iter()
        .map(|&(name, i)| MemoryRow {
            use_: name.to_string(),
            allocs: t.counts[i][0],
            frees: t.counts[i][1],
            bytes_allocated: t.counts[i][2],
            bytes_freed: t.counts[i][3],
            live_bytes: live[i].max(0) as u64,
            peak_live_bytes: peak[i].max(0) as u64,
        })
        .collect();
    MemoryReport {
        pages_classified: classified,
        peak_resolution_records: 1 << t.shift,
        uses,
        slab_overhead_bytes: classified.then(|| overhead(&live)),
        peak_slab_overhead_bytes: classified.then(|| peak_overhead.unwrap_or(0)),
        peak_page_bytes: peak_pages.max(0) as u64,
    }
}

/// One row per allocator family, every family listed.
fn type_rows(types: &[TypeTotals; TYPE_COUNT], live: &[(u64, u64); TYPE_COUNT]) -> Vec<TypeRow> {
    AllocType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tt = types[i];
            TypeRow {
                type_id: Some(*t),
                allocs: tt.allocs,
                frees: tt.frees,
                bytes_requested: tt.bytes_requested,
                bytes_allocated: tt.bytes_allocated,
                bytes_freed: tt.bytes_freed,
                fragmentation_bytes: frag(tt.bytes_allocated, tt.bytes_requested),
                live_allocations: live[i].0,
                live_bytes: live[i].1,
            }
        })
        .collect()
}

/// A call site's figures; its totals are the sums of its types'.
fn site_stats(a: &SiteAcc) -> SiteStats {
    let mut st = SiteStats {
        freed: a.freed,
        cross_cpu_frees: a.cross_cpu_frees,
        cross_cpu_allocs: a.cross_cpu_allocs,
        mismatched_frees: a.mismatched_frees,
        live_allocations: a.live_allocations,
        live_bytes: a.live_bytes,
        ..SiteStats::default()
    };
    for (t, ta) in a.types.iter().enumerate() {
        st.hits += ta.allocs;
        st.bytes_requested = st.bytes_requested.saturating_add(ta.bytes_requested);
        st.bytes_allocated = st.bytes_allocated.saturating_add(ta.bytes_allocated);
        st.frees += ta.frees;
        if ta.allocs + ta.frees > 0 {
            st.by_type.push(TypeSplit {
                type_id: AllocType::from_id(t as u8),
                allocs: ta.allocs,
                frees: ta.frees,
                bytes_requested: ta.bytes_requested,
                bytes_allocated: ta.bytes_allocated,
            });
        }
    }
    st.fragmentation_bytes = frag(st.bytes_allocated, st.bytes_requested);
    st
}

/// The call-site rows and, with symbols, the function rows (the call sites grouped by the
/// function they are in), sorted and cut to `max_rows`.
fn site_rows(
    acc: &[SiteAcc],
    addrs: &[u64],
    syms: Option<&Symbols>,
    sort: &[String],
    max_rows: Option<usize>,
) -> (Vec<CallsiteRow>, Vec<FunctionRow>) {
    // With stacks an address can have several sites: one row per address all the same.
    let mut merged: Vec<(u64, SiteAcc)> = Vec::with_capacity(acc.len());
    let mut row_of: HashMap<u64, usize> = HashMap::with_capacity(acc.len());
    for (a, &addr) in acc.iter().zip(addrs) {
        match row_of.get(&addr) {
            Some(&i) => merged[i].1 += a,
            None => {
                row_of.insert(addr, merged.len());
                merged.push((addr, a.clone()));
            }
        }
    }
    let mut callsites: Vec<CallsiteRow> = merged
        .iter()
        .map(|(addr, a)| CallsiteRow {
            call_site: *addr,
            symbol: describe(syms, *addr),
            stats: site_stats(a),
        })
        .collect();
    let mut functions = Vec::new();
    if let Some(s) = syms {
        let mut by_fn: BTreeMap<String, FunctionRow> = BTreeMap::new();
        for c in &callsites {
            let name = s
                .resolve(c.call_site)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| "[unknown]".into());
            let row = by_fn.entry(name.clone()).or_insert_with(|| FunctionRow {
                function: name,
                call_sites: 0,
                stats: SiteStats::default(),
            });
            row.call_sites += 1;
            row.stats += &c.stats;
        }
        functions = by_fn.into_values().collect();
    }
    sort_rows(&mut callsites, sort);
    sort_rows(&mut functions, sort);
    if let Some(n) = max_rows {
        callsites.truncate(n);
        functions.truncate(n);
    }
    (callsites, functions)
}

/// The `--group-by caller|stack` rows: each site (a call site with one stack) charged to its
/// group, the groups' figures summed, sorted and cut to `max_rows`. Sites that saw nothing (a
/// call site whose records all had stacks) are left out.
fn group_rows(
    by: GroupBy,
    acc: &[SiteAcc],
    addrs: &[u64],
    stacks: &[Box<[u64]>],
    syms: Option<&Symbols>,
    sort: &[String],
    max_rows: Option<usize>,
) -> GroupTable {
    let name_of = |a: u64| {
        syms.and_then(|s| s.resolve(a))
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| format!("{a:#x}"))
    };
    let frame = |a: u64| describe(syms, a).unwrap_or_else(|| format!("{a:#x}"));
    let mut rows: BTreeMap<String, (GroupRow, Vec<u64>)> = BTreeMap::new();
    let mut with_stacks = 0;
    for (i, a) in acc.iter().enumerate() {
        let st = site_stats(a);
        if st.hits == 0 && st.frees == 0 && st.freed == 0 {
            continue;
        }
        let addr = addrs[i];
        let stack: &[u64] = stacks.get(i).map_or(&[], |s| s);
        if !stack.is_empty() {
            with_stacks += 1;
        }
        let (key, frames, frame_addrs) = match by {
            GroupBy::Stack => {
                let addrs: Vec<u64> = std::iter::once(addr).chain(stack.iter().copied()).collect();
                let frames: Vec<String> = addrs.iter().map(|&a| frame(a)).collect();
                let mut outward = frames.clone();
                outward.reverse();
                (outward.join(";"), frames, addrs)
            }
            _ => (
                name_of(callers::charged_frame(addr, stack, syms)),
                Vec::new(),
                Vec::new(),
            ),
        };
        let (row, seen) = rows.entry(key.clone()).or_insert_with(|| {
            (
                GroupRow {
                    key,
                    frames,
                    addrs: frame_addrs,
                    call_sites: 0,
                    stats: SiteStats::default(),
                },
                Vec::new(),
            )
        });
        if !seen.contains(&addr) {
            seen.push(addr);
            row.call_sites += 1;
        }
        row.stats += &st;
    }
    let mut rows: Vec<GroupRow> = rows.into_values().map(|(r, _)| r).collect();
    sort_rows(&mut rows, sort);
    if let Some(n) = max_rows {
        rows.truncate(n);
    }
    GroupTable {
        by,
        sites_with_stacks: with_stacks,
        rows,
    }
}

/// The per-address rows, sorted by the sort keys the table has ([`ALLOC_SORT_KEYS`]) and cut to
/// `max_rows`; only the rows kept get their symbol.
fn alloc_rows(
    ptrs: &crate::table::PtrTable<PtrAcc>,
    addrs: &[u64],
    syms: Option<&Symbols>,
    sort: &[String],
    max_rows: Option<usize>,
) -> Vec<AllocRow> {
    let order = alloc_row_order(sort);
    let rows = ptrs
        .iter()
        .filter(|(_, a)| a.hits > 0)
        .map(|(ptr, a)| AllocRow {
            ptr,
            hits: a.hits,
            bytes_requested: a.bytes_requested,
            bytes_allocated: a.bytes_allocated,
            fragmentation_bytes: frag(a.bytes_allocated, a.bytes_requested),
            cross_cpu_frees: a.cross_cpu_frees,
            call_site: addrs[a.site as usize],
            symbol: None,
            live: a.live,
        });
    let mut rows = first_rows(rows, max_rows, &order);
    for r in &mut rows {
        r.symbol = describe(syms, r.call_site);
    }
    rows
}

/// The first `n` of `items` in `order` (all of them without `n`), sorted. With a limit at most
/// 2n items are held at once: when the buffer fills, it is cut back to its best n.
fn first_rows<T>(
    items: impl Iterator<Item = T>,
    n: Option<usize>,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    let mut v = Vec::new();
    let keep_best = |v: &mut Vec<T>, n: usize| {
        if v.len() > n {
            if n > 0 {
                v.select_nth_unstable_by(n - 1, &order);
            }
            v.truncate(n);
        }
    };
    match n {
        None => v.extend(items),
        Some(n) => {
            let cap = n.saturating_mul(2).max(1);
            for x in items {
                v.push(x);
                if v.len() >= cap {
                    keep_best(&mut v, n);
                }
            }
            keep_best(&mut v, n);
        }
    }
    v.sort_unstable_by(&order);
    v
}

/// One row per page order seen.
fn page_rows(pages: &BTreeMap<u32, PageAcc>) -> Vec<PageOrderRow> {
    pages
        .iter()
        .map(|(o, a)| PageOrderRow {
            order: *o,
            allocs: a.allocs,
            frees: a.frees,
            bytes_allocated: a.bytes_allocated,
            live_allocations: a.live_allocations,
        })
        .collect()
}

/// One row per size class used by a request or an allocation.
fn size_rows(sizes: &[SizeAcc]) -> Vec<SizeRow> {
    sizes
        .iter()
        .enumerate()
        .filter(|(_, a)| a.requests + a.allocations > 0)
        .map(|(k, a)| {
            let (min, max) = size_class_bounds(k);
            SizeRow {
                min,
                max,
                requests: a.requests,
                bytes_requested: a.bytes_requested,
                allocations: a.allocations,
                bytes_allocated: a.bytes_allocated,
            }
        })
        .collect()
}

/// A finding before symbols: count, examples, busiest call sites.
type Pending = (u64, Vec<Example>, Vec<FindingSite>);

/// Every finding, in [`FindingKind`] order: the replay's, the merge's (it keeps its examples;
/// `p`'s example lists are taken) and the metadata's.
fn findings(
    input: &TraceInput,
    opts: &AnalyzeOptions,
    detected: &[Option<ByteOrder>],
    p: &mut Produced,
    replayed: BTreeMap<FindingKind, Found>,
    syms: Option<&Symbols>,
) -> Vec<Finding> {
    let meta = input.meta.as_ref();
    let mut found: BTreeMap<FindingKind, Pending> = replayed
        .into_iter()
        .map(|(k, f)| (k, replay_finding(f, &p.sites)))
        .collect();
    let mut put = |kind: FindingKind, count: u64, examples: Vec<Example>| {
        if count > 0 {
            found.insert(kind, (count, examples, Vec::new()));
        }
    };
    put(
        FindingKind::LostEvents,
        p.s.lost_events,
        p.gaps
            .iter()
            .take(opts.examples)
            .map(|g| Example {
                seq: Some(g.after_seq),
                detail: Some(format!(
                    "{} sequence numbers missing after {}",
                    g.missing, g.after_seq
                )),
                ..Example::default()
            })
            .collect(),
    );
    let overruns = meta.and_then(|m| m.total_overruns);
    put(
        FindingKind::Overruns,
        overruns.unwrap_or(0),
        vec![Example {
            detail: Some(format!("total_overruns = {} bytes", overruns.unwrap_or(0))),
            ..Example::default()
        }],
    );
    put(
        FindingKind::DuplicateSeq,
        p.s.duplicate_seqs,
        std::mem::take(&mut p.dup_examples),
    );
    put(
        FindingKind::OutOfOrderSeq,
        p.s.out_of_order_seqs,
        std::mem::take(&mut p.ooo_examples),
    );
    put(
        FindingKind::BadSeq,
        p.s.bad_seqs,
        std::mem::take(&mut p.bad_seq_examples),
    );
    put(
        FindingKind::DamagedRecords,
        p.s.damaged_regions,
        p.damage
            .iter()
            .take(opts.examples)
            .map(|d| Example {
                file: Some(d.file.clone()),
                offset: Some(d.offset),
                detail: Some(format!(
                    "{}: {} bytes: {}",
                    d.kind.name(),
                    d.length,
                    d.detail
                )),
                ..Example::default()
            })
            .collect(),
    );
    put(
        FindingKind::UnknownRecord,
        p.s.unknown_records,
        std::mem::take(&mut p.unknown_examples),
    );
    if let Some(m) = meta {
        let mut meta_examples = meta_mismatches(input, m, detected);
        let meta_count = meta_examples.len() as u64;
        meta_examples.truncate(opts.examples);
        put(FindingKind::MetaMismatch, meta_count, meta_examples);
    }
    found
        .into_iter()
        .map(|(kind, (count, examples, sites))| Finding {
            kind,
            count,
            description: kind.description().into(),
            by_call_site: sites
                .into_iter()
                .map(|mut x| {
                    x.symbol = describe(syms, x.call_site);
                    x
                })
                .collect(),
            examples: examples
                .into_iter()
                .map(|mut e| {
                    if e.symbol.is_none() {
                        e.symbol = e.call_site.and_then(|a| describe(syms, a));
                    }
                    e
                })
                .collect(),
        })
        .collect()
}

/// A replay finding: its busiest call sites (then by address) and its examples.
fn replay_finding(f: Found, addrs: &[u64]) -> Pending {
    // By address: with stacks an address can have several sites.
    let mut by_addr: BTreeMap<u64, u64> = BTreeMap::new();
    for (i, &n) in f.by_site.iter().enumerate().filter(|(_, &n)| n > 0) {
        if let Some(&a) = addrs.get(i) {
            *by_addr.entry(a).or_default() += n;
        }
    }
    let mut sites: Vec<FindingSite> = by_addr
        .into_iter()
        .map(|(call_site, count)| FindingSite {
            call_site,
            symbol: None,
            count,
        })
        .collect();
    sites.sort_by_key(|x| (Reverse(x.count), x.call_site));
    sites.truncate(FINDING_SITES);
    let ex = f
        .examples
        .into_iter()
        .map(|(rec, detail)| Example {
            seq: Some(rec.seq),
            cpu: Some(rec.cpu),
            call_site: addrs.get(rec.site as usize).copied(),
            symbol: None,
            ptr: Some(rec.ptr),
            detail,
            ..Example::default()
        })
        .collect();
    (f.count, ex, sites)
}

/// Where `meta.json` disagrees with the files: a CPU's byte count, the byte order.
fn meta_mismatches(input: &TraceInput, m: &Meta, detected: &[Option<ByteOrder>]) -> Vec<Example> {
    let mut out = Vec::new();
    for f in &input.files {
        let listed = m.cpus.iter().find(|c| c.cpu == f.cpu).and_then(|c| c.bytes);
        if let Some(mb) = listed.filter(|mb| *mb != f.bytes().len() as u64) {
            out.push(Example {
                file: Some(f.name.clone()),
                offset: Some(mb.min(f.bytes().len() as u64)),
                detail: Some(format!(
                    "meta.json says {mb} bytes for cpu {}, the file has {}",
                    f.cpu,
                    f.bytes().len()
                )),
                ..Example::default()
            });
        }
    }
    if let Some(mo) = m.byte_order {
        let disagree: Vec<&str> = input
            .files
            .iter()
            .zip(detected)
            .filter(|(_, d)| d.is_some_and(|d| d != mo))
            .map(|(f, _)| f.name.as_str())
            .collect();
        out.extend(disagree.iter().map(|f| Example {
            file: Some(f.to_string()),
            detail: Some(format!(
                "meta.json says byte_order {mo}, the data is {}",
                mo.swapped()
            )),
            ..Example::default()
        }));
    }
    out
}
