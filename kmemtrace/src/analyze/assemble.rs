// SPDX-License-Identifier: GPL-2.0-only
//! The report assembly: the merge's accounting and the replay's figures made into a [`Report`].

use super::merge::Produced;
use super::replay::{PtrAcc, ReplayOut, SiteAcc};
use super::AnalyzeOptions;
use crate::abi::{AllocType, ByteOrder};
use crate::input::TraceInput;
use crate::meta;
use crate::report::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// `allocated - requested`, clamped to `i64` (byte sums saturate on absurd input instead of
/// overflowing).
fn frag(allocated: u64, requested: u64) -> i64 {
    (allocated as i128 - requested as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn site_stats(a: &SiteAcc) -> SiteStats {
    let mut st = SiteStats {
        freed: a.freed,
        cross_cpu_frees: a.cross_frees,
        cross_cpu_allocs: a.cross_allocs,
        mismatched_frees: a.mismatched,
        live_allocations: a.live,
        live_bytes: a.live_bytes,
        ..SiteStats::default()
    };
    for (t, ta) in a.types.iter().enumerate() {
        st.hits += ta.allocs;
        st.bytes_requested = st.bytes_requested.saturating_add(ta.req);
        st.bytes_allocated = st.bytes_allocated.saturating_add(ta.alloc);
        st.frees += ta.frees;
        if ta.allocs + ta.frees > 0 {
            st.by_type.push(TypeSplit {
                type_id: AllocType::from_id(t as u8),
                allocs: ta.allocs,
                frees: ta.frees,
                bytes_requested: ta.req,
                bytes_allocated: ta.alloc,
            });
        }
    }
    st.fragmentation_bytes = frag(st.bytes_allocated, st.bytes_requested);
    st
}

fn add_stats(into: &mut SiteStats, s: &SiteStats) {
    into.hits += s.hits;
    into.bytes_requested = into.bytes_requested.saturating_add(s.bytes_requested);
    into.bytes_allocated = into.bytes_allocated.saturating_add(s.bytes_allocated);
    into.fragmentation_bytes = into
        .fragmentation_bytes
        .saturating_add(s.fragmentation_bytes);
    into.frees += s.frees;
    into.freed += s.freed;
    into.cross_cpu_frees += s.cross_cpu_frees;
    into.cross_cpu_allocs += s.cross_cpu_allocs;
    into.mismatched_frees += s.mismatched_frees;
    into.live_allocations += s.live_allocations;
    into.live_bytes = into.live_bytes.saturating_add(s.live_bytes);
    for t in &s.by_type {
        match into.by_type.iter_mut().find(|x| x.type_id == t.type_id) {
            Some(x) => {
                x.allocs += t.allocs;
                x.frees += t.frees;
                x.bytes_requested = x.bytes_requested.saturating_add(t.bytes_requested);
                x.bytes_allocated = x.bytes_allocated.saturating_add(t.bytes_allocated);
            }
            None => into.by_type.push(t.clone()),
        }
    }
    into.by_type.sort_by_key(|t| t.type_id);
}

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    input: &TraceInput,
    opts: &AnalyzeOptions,
    sort: Vec<String>,
    detected: Vec<Option<ByteOrder>>,
    order: ByteOrder,
    page_size: u64,
    p: Produced,
    out: ReplayOut,
) -> Report {
    let ReplayOut { r, live_types } = out;
    let syms = input.symbols.as_ref().filter(|s| !s.is_empty());
    let describe = |a: u64| syms.and_then(|s| s.describe(a));
    let meta = input.meta.as_ref();

    let mut summary = r.s.clone();
    summary.fragmentation_bytes = frag(summary.bytes_allocated, summary.bytes_requested);
    summary.lost_events = p.lost;
    summary.records = p.records;
    summary.filtered_out = p.filtered_out;
    summary.unknown_records = p.unknown_records;
    summary.duplicate_seqs = p.dup;
    summary.out_of_order_seqs = p.ooo;
    summary.bad_seqs = p.bad_seq;
    summary.damaged_regions = p.damage_total;
    summary.damaged_bytes = p.damage_bytes;

    let types = AllocType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tt = r.types[i];
            TypeRow {
                type_id: Some(*t),
                allocs: tt.allocs,
                frees: tt.frees,
                bytes_requested: tt.req,
                bytes_allocated: tt.alloc,
                bytes_freed: tt.freed,
                fragmentation_bytes: frag(tt.alloc, tt.req),
                live_allocations: live_types[i].0,
                live_bytes: live_types[i].1,
            }
        })
        .collect();

    let mut callsites: Vec<CallsiteRow> = r
        .sites
        .iter()
        .zip(&p.sites)
        .map(|(a, addr)| CallsiteRow {
            call_site: *addr,
            symbol: describe(*addr),
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
            add_stats(&mut row.stats, &c.stats);
        }
        functions = by_fn.into_values().collect();
    }
    sort_rows(&mut callsites, &sort);
    sort_rows(&mut functions, &sort);
    if let Some(n) = opts.max_rows {
        callsites.truncate(n);
        functions.truncate(n);
    }

    let allocations = r.ptrs.as_ref().map(|ptrs| {
        // Order by bytes, hits, address; only the rows kept get materialised. With a row limit
        // the best rows are picked in one pass, keeping the worst of them on top of a heap.
        let rank = |(ptr, a): (u64, &PtrAcc)| (Reverse(a.alloc), Reverse(a.hits), ptr);
        let used = ptrs.iter().filter(|(_, a)| a.hits > 0);
        let v: Vec<(u64, &PtrAcc)> = match opts.max_rows {
            Some(n) => {
                let mut best = BinaryHeap::with_capacity(n.saturating_add(1).min(1 << 16));
                for e in used {
                    let key = rank(e);
                    if best.len() < n {
                        best.push(key);
                    } else if let Some(mut worst) = best.peek_mut() {
                        if key < *worst {
                            *worst = key;
                        }
                    }
                }
                best.into_sorted_vec()
                    .into_iter()
                    .filter_map(|(_, _, ptr)| Some((ptr, ptrs.get(ptr)?)))
                    .collect()
            }
            None => {
                let mut v: Vec<(u64, &PtrAcc)> = used.collect();
                v.sort_unstable_by_key(|e| rank(*e));
                v
            }
        };
        v.into_iter()
            .map(|(ptr, a)| {
                let addr = p.sites[a.site as usize];
                AllocRow {
                    ptr,
                    hits: a.hits,
                    bytes_requested: a.req,
                    bytes_allocated: a.alloc,
                    fragmentation_bytes: frag(a.alloc, a.req),
                    cross_cpu_frees: a.cross_frees,
                    call_site: addr,
                    symbol: describe(addr),
                    live: a.live,
                }
            })
            .collect()
    });

    let pages = r
        .pages
        .iter()
        .map(|(o, a)| PageOrderRow {
            order: *o,
            allocs: a.allocs,
            frees: a.frees,
            bytes_allocated: a.bytes,
            live_allocations: a.live,
        })
        .collect();

    let sizes = r
        .sizes
        .iter()
        .enumerate()
        .filter(|(_, a)| a.requests + a.allocations > 0)
        .map(|(k, a)| {
            let (min, max) = size_class_bounds(k);
            SizeRow {
                min,
                max,
                requests: a.requests,
                bytes_requested: a.req,
                allocations: a.allocations,
                bytes_allocated: a.alloc,
            }
        })
        .collect();

    // Findings, in FindingKind order.
    let mut found: BTreeMap<FindingKind, (u64, Vec<Example>, Vec<FindingSite>)> = r
        .found
        .into_iter()
        .map(|(k, f)| {
            // The busiest call sites, then by address.
            let mut sites: Vec<FindingSite> = f
                .by_site
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .filter_map(|(i, &count)| {
                    Some(FindingSite {
                        call_site: *p.sites.get(i)?,
                        symbol: None,
                        count,
                    })
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
                    call_site: p.sites.get(rec.site as usize).copied(),
                    symbol: None,
                    ptr: Some(rec.ptr),
                    detail,
                    ..Example::default()
                })
                .collect();
            (k, (f.count, ex, sites))
        })
        .collect();
    let mut put = |kind: FindingKind, count: u64, examples: Vec<Example>| {
        if count > 0 {
            found.insert(kind, (count, examples, Vec::new()));
        }
    };
    put(
        FindingKind::LostEvents,
        p.lost,
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
    put(FindingKind::DuplicateSeq, p.dup, p.dup_examples);
    put(FindingKind::OutOfOrderSeq, p.ooo, p.ooo_examples);
    put(FindingKind::BadSeq, p.bad_seq, p.bad_seq_examples);
    put(
        FindingKind::DamagedRecords,
        p.damage_total,
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
        p.unknown_records,
        p.unknown_examples,
    );
    let mut meta_examples = Vec::new();
    if let Some(m) = meta {
        for f in &input.files {
            let listed = m.cpus.iter().find(|c| c.cpu == f.cpu).and_then(|c| c.bytes);
            if let Some(mb) = listed.filter(|mb| *mb != f.bytes().len() as u64) {
                meta_examples.push(Example {
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
    }
    if let Some(mo) = meta.and_then(|m| m.byte_order) {
        let disagree: Vec<&str> = input
            .files
            .iter()
            .zip(&detected)
            .filter(|(_, d)| d.is_some_and(|d| d != mo))
            .map(|(f, _)| f.name.as_str())
            .collect();
        meta_examples.extend(disagree.iter().map(|f| Example {
            file: Some(f.to_string()),
            detail: Some(format!(
                "meta.json says byte_order {mo}, the data is {}",
                mo.swapped()
            )),
            ..Example::default()
        }));
    }
    let meta_count = meta_examples.len() as u64;
    meta_examples.truncate(opts.examples);
    put(FindingKind::MetaMismatch, meta_count, meta_examples);
    let findings = found
        .into_iter()
        .map(|(kind, (count, examples, sites))| Finding {
            kind,
            count,
            description: kind.description().into(),
            by_call_site: sites
                .into_iter()
                .map(|mut x| {
                    x.symbol = describe(x.call_site);
                    x
                })
                .collect(),
            examples: examples
                .into_iter()
                .map(|mut e| {
                    if e.symbol.is_none() {
                        e.symbol = e.call_site.and_then(describe);
                    }
                    e
                })
                .collect(),
        })
        .collect();

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
            detected_byte_order: detected[i],
        })
        .collect();

    Report {
        schema_version: SCHEMA_VERSION,
        trace: TraceInfo {
            directory: input.dir.as_ref().map(|d| d.display().to_string()),
            byte_order: Some(order),
            files,
            machine: meta.and_then(|m| m.machine.clone()),
            kernel_release: meta.and_then(|m| m.kernel_release.clone()),
            page_size,
            symbols: syms.is_some(),
            callsite_filter: opts.callsite_filter.clone(),
            sort,
        },
        summary,
        types,
        callsites,
        functions,
        allocations,
        pages,
        sizes,
        findings,
        lost: LostEvents {
            lost_events: p.lost,
            gaps: p.gap_count,
            examples: p.gaps,
            total_overruns: overruns,
            duplicate_seqs: p.dup,
            out_of_order_seqs: p.ooo,
        },
        damage: DamageReport {
            regions_total: p.damage_total,
            bytes: p.damage_bytes,
            regions: p.damage,
        },
    }
}
