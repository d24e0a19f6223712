//! The kernel selftest's known answers (`kernel/selftest-expected.json`, docs/contracts.md §3)
//! replayed from a hand-built record sequence of the same shape, with unrelated kernel
//! allocations interleaved: `--callsite-filter 'kmemtrace_selftest_*'` must isolate exactly the
//! expected summary, in both byte orders.

mod common;

use common::*;
use kmemtrace::{analyze, AllocType, AnalyzeOptions, ByteOrder, Record, Symbols, TraceInput};

const SELFTEST_FN: u64 = 0xffff_ffff_8150_0000;
const REMOTE_FN: u64 = 0xffff_ffff_8150_1000;
const OTHER_FN: u64 = 0xffff_ffff_8120_0000;

fn sequence() -> Vec<(u32, Record)> {
    use AllocType::*;
    let site = SELFTEST_FN + 0x40;
    let mut seq = 100;
    let mut out: Vec<(u32, Record)> = Vec::new();
    let mut push = |cpu: u32, mut r: Record, out: &mut Vec<(u32, Record)>| {
        r.seq = seq;
        seq += 1;
        out.push((cpu, r));
        // Unrelated allocation and free logged concurrently by the rest of the kernel.
        let noise = 0xffff_8888_0000_0000 + seq as u64 * 64;
        out.push((1, alloc(seq, Kmalloc, OTHER_FN + 0x10, noise, 64, 64)));
        seq += 1;
        out.push((0, free(seq, Kmalloc, OTHER_FN + 0x20, noise)));
        seq += 1;
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
    push(
        0,
        alloc(0, Kmalloc, site, 0xffff_8880_0200_0000, 333, 512),
        &mut out,
    );
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
    // 17 cache objects: 16 freed with kmem_cache_free, one with kfree (mismatched).
    for i in 0..17u64 {
        let p = 0xffff_8880_0400_0000 + i * 72;
        push(0, alloc(0, KmemCache, site + 0x10, p, 72, 72), &mut out);
        let ty = if i == 16 { Kmalloc } else { KmemCache };
        push(0, free(0, ty, site + 0x18, p), &mut out);
    }
    for order in 0..4u64 {
        let p = 0xffff_8880_1000_0000 + order * 0x10_0000;
        let bytes = 4096 << order;
        push(0, alloc(0, Pages, site + 0x20, p, bytes, bytes), &mut out);
        push(0, free(0, Pages, site + 0x28, p), &mut out);
    }
    out
}

#[test]
fn selftest_known_answers_through_the_callsite_filter() {
    let expected_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kernel/selftest-expected.json"
    );
    let Ok(text) = std::fs::read_to_string(expected_path) else {
        eprintln!("{expected_path} absent: nothing to compare");
        return;
    };
    let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(exp["callsite_filter"], "kmemtrace_selftest_*");
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let seq = sequence();
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
            (SELFTEST_FN, "kmemtrace_selftest_run"),
            (REMOTE_FN, "kmemtrace_selftest_remote_free"),
            (REMOTE_FN + 0x1000, "zzz_after"),
        ]));
        let r = analyze(
            &input,
            &AnalyzeOptions {
                callsite_filter: vec![exp["callsite_filter"].as_str().unwrap().into()],
                ..AnalyzeOptions::default()
            },
        )
        .unwrap();
        let summary = serde_json::to_value(&r.summary).unwrap();
        for part in [&exp["identical"], &exp["per_arch"]["x86_64"]] {
            for (k, v) in part.as_object().unwrap() {
                assert_eq!(&summary[k], v, "{k} ({order})");
            }
        }
        for t in &r.types {
            let name = t.type_id.unwrap().name();
            let e = &exp["per_type"][name];
            assert_eq!(t.allocs, e["allocs"].as_u64().unwrap(), "{name}");
            assert_eq!(t.frees, e["frees"].as_u64().unwrap(), "{name}");
            assert_eq!(
                t.bytes_requested,
                e["bytes_requested"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                t.bytes_allocated,
                e["bytes_allocated"].as_u64().unwrap(),
                "{name}"
            );
        }
        for p in &r.pages {
            let o = p.order.to_string();
            assert_eq!(
                p.allocs,
                exp["per_type"]["pages"]["allocs_by_order"][&o]
                    .as_u64()
                    .unwrap()
            );
            assert_eq!(
                p.frees,
                exp["per_type"]["pages"]["frees_by_order"][&o]
                    .as_u64()
                    .unwrap()
            );
        }
        assert_eq!(r.pages.len(), 4);
        assert!(r.summary.filtered_out > 0);
        assert!(r
            .functions
            .iter()
            .all(|f| f.function.starts_with("kmemtrace_selftest_")));
    }
}
