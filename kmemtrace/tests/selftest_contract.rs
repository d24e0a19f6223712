// SPDX-License-Identifier: GPL-2.0-only
//! The kernel selftest's known answers (`kernel/selftest-expected/6.12-slub.json`, docs/contracts.md §3)
//! replayed from a hand-built record sequence of the same shape, with unrelated kernel
//! allocations interleaved: `--callsite-filter 'kmemtrace_selftest_*'` must isolate exactly the
//! expected summary, in both byte orders; then `release` must free the leak (`after_release`).

mod common;

use common::*;
use kmemtrace::{analyze, AllocType, AnalyzeOptions, ByteOrder, Record, Symbols, TraceInput};

const SELFTEST_FN: u64 = 0xffff_ffff_8150_0000;
const REMOTE_FN: u64 = 0xffff_ffff_8150_1000;
const OTHER_FN: u64 = 0xffff_ffff_8120_0000;
const SLAB_FN: u64 = 0xffff_ffff_8130_0000;
const RELEASE_FN: u64 = 0xffff_ffff_8150_2000;
/// The deliberate leak's address.
const LEAK: u64 = 0xffff_8880_0200_0000;

fn sequence() -> Vec<(u32, Record)> {
    use AllocType::*;
    let site = SELFTEST_FN + 0x40;
    let seq = std::cell::Cell::new(100);
    let next = || {
        let s = seq.get();
        seq.set(s + 1);
        s
    };
    let mut out: Vec<(u32, Record)> = Vec::new();
    // A record of another call site, numbered in turn.
    let other = |cpu: u32, mut r: Record, out: &mut Vec<(u32, Record)>| {
        r.seq = next();
        out.push((cpu, r));
    };
    let push = |cpu: u32, mut r: Record, out: &mut Vec<(u32, Record)>| {
        r.seq = next();
        out.push((cpu, r));
        // Unrelated allocation and free logged concurrently by the rest of the kernel.
        let noise = 0xffff_8888_0000_0000 + seq.get() as u64 * 64;
        other(1, alloc(0, Kmalloc, OTHER_FN + 0x10, noise, 64, 64), out);
        other(0, free(0, Kmalloc, OTHER_FN + 0x20, noise), out);
    };
    let kmallocs = [
        (1, 8),
        (8, 8),
        (24, 32),
        (100, 128),
        (200, 256),
        (500, 512),
        (1000, 1024),
        (3000, 4096),
        (4096, 4096),
    ];
    for (i, (req, al)) in kmallocs.iter().enumerate() {
        let p = 0xffff_8880_0100_0000 + i as u64 * 0x2000;
        push(0, alloc(0, Kmalloc, site, p, *req, *al), &mut out);
        push(0, free(0, Kmalloc, site + 8, p), &mut out);
    }
    // The leak and the cross-CPU free.
    push(0, alloc(0, Kmalloc, site, LEAK, 333, 512), &mut out);
    push(
        0,
        alloc(0, Kmalloc, site, 0xffff_8880_0300_0000, 128, 128),
        &mut out,
    );
    push(
        1,
        free(0, Kmalloc, REMOTE_FN + 0x18, 0xffff_8880_0300_0000),
        &mut out,
    );
    // kfree(NULL).
    push(0, free(0, Kmalloc, site + 8, 0), &mut out);
    // The large kmalloc: above the largest kmalloc cache, an order-2 block from the page
    // allocator, logged once as a kmalloc (its page records have slab call sites, filtered out).
    let large = 0xffff_8880_0500_0000;
    other(
        0,
        alloc(0, Pages, SLAB_FN + 0x40, large, 16384, 16384),
        &mut out,
    );
    push(
        0,
        alloc(0, Kmalloc, site + 0x30, large, 12000, 16384),
        &mut out,
    );
    push(0, free(0, Kmalloc, site + 0x38, large), &mut out);
    other(0, free(0, Pages, SLAB_FN + 0x80, large), &mut out);
    // 17 cache objects: 16 freed with kmem_cache_free, one with kfree (mismatched).
    for i in 0..17u64 {
        let p = 0xffff_8880_0400_0000 + i * 72;
        push(0, alloc(0, KmemCache, site + 0x10, p, 72, 72), &mut out);
        let ty = if i == 16 { Kmalloc } else { KmemCache };
        push(0, free(0, ty, site + 0x18, p), &mut out);
    }
    // kmem_cache_alloc_bulk() of 8 and kmem_cache_free_bulk() of them: one record per object.
    for i in 0..8u64 {
        let p = 0xffff_8880_0600_0000 + i * 72;
        push(0, alloc(0, KmemCache, site + 0x40, p, 72, 72), &mut out);
    }
    for i in 0..8u64 {
        let p = 0xffff_8880_0600_0000 + i * 72;
        push(0, free(0, KmemCache, site + 0x48, p), &mut out);
    }
    for order in 0..4u64 {
        let p = 0xffff_8880_1000_0000 + order * 0x10_0000;
        let bytes = 4096 << order;
        push(0, alloc(0, Pages, site + 0x20, p, bytes, bytes), &mut out);
        push(0, free(0, Pages, site + 0x28, p), &mut out);
    }
    out
}

/// kernel/selftest-expected/6.12-slub.json. A missing or unreadable file is a failure: the known answers
/// are what this test checks.
fn expected() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kernel/selftest-expected/6.12-slub.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let exp: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(exp["callsite_filter"], "kmemtrace_selftest_*");
    exp
}

/// The members of `exp[name]`, which must be a non-empty object: a reshaped expectation fails
/// here instead of checking nothing.
fn section<'a>(
    exp: &'a serde_json::Value,
    name: &str,
) -> &'a serde_json::Map<String, serde_json::Value> {
    exp.pointer(name)
        .and_then(|v| v.as_object())
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| panic!("kernel/selftest-expected/6.12-slub.json has no {name} object"))
}

/// The sequence in `order`, with the kernel's symbols, analysed through the selftest's filter.
fn report_of(
    seq: &[(u32, Record)],
    order: ByteOrder,
    exp: &serde_json::Value,
) -> kmemtrace::Report {
    let streams = (0..2u32).map(|c| {
        let recs: Vec<Record> = seq
            .iter()
            .filter(|e| e.0 == c)
            .map(|e| e.1.clone())
            .collect();
        (c, encode(&recs, order))
    });
    let mut input = TraceInput::from_streams(streams);
    input.symbols = Some(Symbols::from_pairs([
        (OTHER_FN, "__alloc_skb"),
        (SLAB_FN, "___kmalloc_large_node"),
        (SELFTEST_FN, "kmemtrace_selftest_run"),
        (REMOTE_FN, "kmemtrace_selftest_remote_free"),
        (RELEASE_FN, "kmemtrace_selftest_release"),
        (RELEASE_FN + 0x1000, "zzz_after"),
    ]));
    analyze(
        &input,
        &AnalyzeOptions {
            callsite_filter: vec![exp["callsite_filter"].as_str().unwrap().into()],
            ..AnalyzeOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn selftest_known_answers_through_the_callsite_filter() {
    let exp = expected();
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let r = report_of(&sequence(), order, &exp);
        let summary = serde_json::to_value(&r.summary).unwrap();
        let mut checked = 0;
        for part in ["/identical", "/per_arch/x86_64"] {
            for (k, v) in section(&exp, part) {
                assert!(summary.get(k).is_some(), "{part}: the summary has no {k}");
                assert_eq!(&summary[k], v, "{k} ({order})");
                checked += 1;
            }
        }
        let types = section(&exp, "/per_type");
        assert_eq!(
            types.len(),
            r.types.len(),
            "one per_type entry per type row"
        );
        for t in &r.types {
            let name = t.type_id.unwrap().name();
            let e = &types[name];
            let field = |f: &str| {
                e[f].as_u64()
                    .unwrap_or_else(|| panic!("per_type.{name}.{f} is not a number"))
            };
            assert_eq!(t.allocs, field("allocs"), "{name}");
            assert_eq!(t.frees, field("frees"), "{name}");
            assert_eq!(t.bytes_requested, field("bytes_requested"), "{name}");
            assert_eq!(t.bytes_allocated, field("bytes_allocated"), "{name}");
            checked += 4;
        }
        let allocs_by_order = section(&exp, "/per_type/pages/allocs_by_order");
        let frees_by_order = section(&exp, "/per_type/pages/frees_by_order");
        assert_eq!(r.pages.len(), allocs_by_order.len());
        assert_eq!(r.pages.len(), frees_by_order.len());
        for p in &r.pages {
            let o = p.order.to_string();
            assert_eq!(Some(p.allocs), allocs_by_order[&o].as_u64(), "order {o}");
            assert_eq!(Some(p.frees), frees_by_order[&o].as_u64(), "order {o}");
            checked += 2;
        }
        // 11 identical, 4 per arch, 3 types x 4, 4 orders x 2.
        assert_eq!(checked, 35, "checks made ({order})");
        assert!(r.summary.filtered_out > 0);
        assert!(r
            .functions
            .iter()
            .all(|f| f.function.starts_with("kmemtrace_selftest_")));
    }
}

/// `after_release`: the run, then `release` frees the leak on the CPU that allocated it.
#[test]
fn after_release_frees_the_leak() {
    let exp = expected();
    let after = section(&exp, "/after_release");
    let mut seq = sequence();
    let last = seq.iter().map(|e| e.1.seq).max().unwrap();
    seq.push((
        0,
        free(last + 1, AllocType::Kmalloc, RELEASE_FN + 0x20, LEAK),
    ));
    let allocated = exp["per_arch"]["x86_64"]["bytes_allocated"].clone();
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let summary = serde_json::to_value(report_of(&seq, order, &exp).summary).unwrap();
        let mut checked = 0;
        for (k, v) in after {
            let want = match (k.as_str(), v) {
                ("what", _) => continue,
                ("bytes_freed", serde_json::Value::String(s)) => {
                    assert_eq!(s, "bytes_allocated of the run", "after_release.bytes_freed");
                    &allocated
                }
                _ => v,
            };
            assert!(want.is_u64(), "after_release.{k} is {want}, not a number");
            assert_eq!(&summary[k], want, "after_release {k} ({order})");
            checked += 1;
        }
        assert_eq!(checked, 5, "after_release checks ({order})");
    }
}
