// SPDX-License-Identifier: GPL-2.0-only
use super::*;
use crate::abi::{AllocFields, AllocType, Record};
use crate::report::*;
use crate::symbols::Symbols;
use crate::synth::{synth_in_memory, SynthOptions};
use std::cmp::Reverse;

fn alloc(seq: i32, ty: AllocType, site: u64, ptr: u64, req: u64, al: u64, node: i32) -> Record {
    Record {
        type_id: ty,
        seq,
        call_site: site,
        ptr,
        alloc: Some(AllocFields {
            bytes_req: req,
            bytes_alloc: al,
            gfp_flags: 0,
            numa_node: node,
        }),
        features: vec![],
    }
}

fn free(seq: i32, ty: AllocType, site: u64, ptr: u64) -> Record {
    Record {
        type_id: ty,
        seq,
        call_site: site,
        ptr,
        alloc: None,
        features: vec![],
    }
}

fn input_of(cpus: &[(u32, Vec<Record>)], order: ByteOrder) -> TraceInput {
    TraceInput::from_streams(cpus.iter().map(|(c, rs)| {
        let mut b = Vec::new();
        for r in rs {
            r.encode_into(order, &mut b);
        }
        (*c, b)
    }))
}

/// The size histogram counts each allocation once by request and once by allocated size,
/// failed ones included, and the sharded replay adds the shards' classes up.
#[test]
fn size_histogram_counts_requests_against_allocations() {
    use AllocType::*;
    let cpu0 = vec![
        alloc(1, Kmalloc, 0x100, 0x1000, 100, 128, -1),
        alloc(2, Kmalloc, 0x100, 0x2000, 129, 192, -1),
        alloc(3, Kmalloc, 0x100, 0, 0, 0, -1), // failed, zero bytes
        alloc(4, Pages, 0x200, 0x10000, 4096, 4096, -1),
        free(5, Kmalloc, 0x300, 0x1000),
    ];
    let input = input_of(&[(0, cpu0)], ByteOrder::Little);
    let row = |min, max, requests, bytes_requested, allocations, bytes_allocated| SizeRow {
        min,
        max,
        requests,
        bytes_requested,
        allocations,
        bytes_allocated,
    };
    let expected = vec![
        row(0, 0, 1, 0, 1, 0),
        row(64, 127, 1, 100, 0, 0),
        row(128, 255, 1, 129, 2, 128 + 192),
        row(4096, 8191, 1, 4096, 1, 4096),
    ];
    for parallel in [false, true] {
        let opts = AnalyzeOptions {
            parallel,
            ..AnalyzeOptions::default()
        };
        assert_eq!(analyze(&input, &opts).unwrap().sizes, expected);
    }
    assert_eq!(size_class_bounds(64), (1 << 63, u64::MAX));
    assert_eq!(size_class(u64::MAX), 64);
}

/// A slab page and its first object share an address, and a large kmalloc logs a page
/// allocation and a kmalloc at the same address: neither is a lost free.
#[test]
fn pages_and_slab_objects_at_one_address_are_separate_allocations() {
    use AllocType::*;
    let cpu0 = vec![
        alloc(1, Pages, 0x400, 0x10000, 4096, 4096, -1), // the slab's page
        alloc(2, KmemCache, 0x200, 0x10000, 64, 64, -1), // its first object
        alloc(3, Pages, 0x400, 0x20000, 16384, 16384, -1), // a large kmalloc's pages
        alloc(4, Kmalloc, 0x100, 0x20000, 10000, 16384, -1), // and the kmalloc itself
        free(5, KmemCache, 0x300, 0x10000),
        free(6, Pages, 0x500, 0x10000),
        free(7, Kmalloc, 0x300, 0x20000),
        free(8, Pages, 0x500, 0x20000),
        free(9, Pages, 0x500, 0x30000), // a page free matches no slab object
    ];
    let input = input_of(&[(0, cpu0)], ByteOrder::Little);
    let r = analyze(&input, &AnalyzeOptions::default()).unwrap();
    let s = &r.summary;
    assert_eq!(s.lost_frees, 0);
    assert_eq!(s.mismatched_frees, 0);
    assert_eq!(s.unknown_frees, 1);
    assert_eq!(s.live_allocations, 0);
    assert_eq!(s.bytes_freed, 4096 + 64 + 16384 + 16384);
}

#[test]
fn replay_semantics_by_example() {
    use AllocType::*;
    let cpu0 = vec![
        alloc(1, Kmalloc, 0x100, 0xa000, 10, 16, -1),
        alloc(2, KmemCache, 0x200, 0xb000, 24, 24, 1), // node 1 from a node-0 CPU
        free(4, Kmalloc, 0x300, 0xb000),               // cache object kfreed (allowed on SLUB)
        free(5, Kmalloc, 0x300, 0),                    // NULL free
        free(6, Kmalloc, 0x300, 0xdead),               // unknown free
        alloc(7, Kmalloc, 0x100, 0xc000, 100, 128, -1),
        alloc(8, Kmalloc, 0x100, 0xc000, 5, 8, -1), // lost free of seq 7
        alloc(12, Pages, 0x400, 0x10000, 8192, 8192, -1), // seqs 10, 11 lost
    ];
    let cpu1 = vec![
        free(3, Kmalloc, 0x300, 0xa000),
        alloc(9, Kmalloc, 0x100, 0xe000, 0, 8, -1),
    ];
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let input = input_of(&[(0, cpu0.clone()), (1, cpu1.clone())], order);
        let r = analyze(&input, &AnalyzeOptions::default()).unwrap();
        let s = &r.summary;
        assert_eq!((s.allocs, s.frees), (6, 4));
        assert_eq!(s.bytes_requested, 10 + 24 + 100 + 5 + 8192);
        assert_eq!(s.bytes_allocated, 16 + 24 + 128 + 8 + 8 + 8192);
        assert_eq!(s.bytes_freed, 16 + 24);
        assert_eq!(
            s.fragmentation_bytes,
            (16 + 24 + 128 + 8 + 8 + 8192) - (10 + 24 + 100 + 5 + 8192)
        );
        assert_eq!(s.cross_cpu_allocs, 1);
        assert_eq!(s.cross_cpu_frees, 1);
        assert_eq!(s.null_frees, 1);
        assert_eq!(s.unknown_frees, 1);
        assert_eq!((s.mismatched_frees, s.cache_objects_kfreed), (0, 1));
        assert_eq!(s.lost_frees, 1);
        assert_eq!(s.zero_byte_requests, 1);
        assert_eq!((s.live_allocations, s.live_bytes), (3, 8 + 8 + 8192));
        assert_eq!(s.lost_events, 2);
        assert_eq!(
            r.lost.examples,
            vec![Gap {
                after_seq: 9,
                missing: 2
            }]
        );
        assert_eq!(
            r.pages,
            vec![PageOrderRow {
                order: 1,
                allocs: 1,
                frees: 0,
                bytes_allocated: 8192,
                live_allocations: 1
            }]
        );
        let kinds: Vec<_> = r.findings.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FindingKind::UnknownFree,
                FindingKind::LostFree,
                FindingKind::ZeroByteRequest,
                FindingKind::LostEvents
            ]
        );
        let site = r.callsites.iter().find(|c| c.call_site == 0x100).unwrap();
        assert_eq!(
            (
                site.stats.hits,
                site.stats.cross_cpu_frees,
                site.stats.live_allocations
            ),
            (4, 1, 2)
        );
    }
}

/// `input` with a meta.json that names `allocator` (or none).
fn with_allocator(mut input: TraceInput, allocator: Option<&str>) -> TraceInput {
    input.meta = Some(crate::meta::Meta {
        allocator: allocator.map(String::from),
        ..Default::default()
    });
    input
}

/// The rules table judges each cross-family free, by the allocator meta.json names, or
/// `--allocator`, or SLUB when the trace does not say; the report says which and why.
#[test]
fn frees_are_judged_by_the_traces_allocator() {
    use crate::rules::{Allocator, Rule};
    use AllocType::*;
    let cpu0 = vec![
        alloc(1, KmemCache, 0x100, 0xa000, 24, 24, -1),
        free(2, Kmalloc, 0x200, 0xa000), // cache object kfreed: SLOB only
        alloc(3, Kmalloc, 0x100, 0xb000, 10, 16, -1),
        free(4, KmemCache, 0x200, 0xb000), // kmalloc freed by kmem_cache_free: always
        alloc(5, Pages, 0x300, 0x10000, 4096, 4096, -1),
        free(6, Kmalloc, 0x200, 0x10000), // pages freed with kfree: always
        alloc(7, Kmalloc, 0x100, 0x20000, 100, 128, -1),
        free(8, Pages, 0x400, 0x20000), // slab memory freed as pages: always
        alloc(9, Pages, 0x300, 0x30000, 16384, 16384, -1), // a large kmalloc: both spaces
        alloc(10, Kmalloc, 0x100, 0x30000, 12000, 16384, -1),
        free(11, Kmalloc, 0x200, 0x30000),
        free(12, Pages, 0x400, 0x30000),
    ];
    let rules = |r: &Report| -> Vec<String> {
        let f = r
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::MismatchedFree);
        f.map(|f| {
            f.examples
                .iter()
                .map(|e| {
                    let d = e.detail.as_deref().unwrap_or("");
                    d.split("rule ")
                        .nth(1)
                        .unwrap()
                        .split(':')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let always = [
        Rule::KmallocCacheFreed.name(),
        Rule::PagesFreedAsSlab.name(),
        Rule::SlabFreedAsPages.name(),
    ];
    for order in [ByteOrder::Little, ByteOrder::Big] {
        for (meta, option, judged, source, mismatched) in [
            (None, None, Allocator::Slub, AllocatorSource::Assumed, 3),
            (
                Some("slab"),
                None,
                Allocator::Slab,
                AllocatorSource::Meta,
                3,
            ),
            (
                Some("slub-tiny"),
                None,
                Allocator::SlubTiny,
                AllocatorSource::Meta,
                3,
            ),
            (
                Some("slob"),
                None,
                Allocator::Slob,
                AllocatorSource::Meta,
                4,
            ),
            (
                Some("slub"),
                Some(Allocator::Slob),
                Allocator::Slob,
                AllocatorSource::Option,
                4,
            ),
            (
                Some("slob"),
                Some(Allocator::Slab),
                Allocator::Slab,
                AllocatorSource::Option,
                3,
            ),
        ] {
            let input = with_allocator(input_of(&[(0, cpu0.clone())], order), meta);
            let opts = AnalyzeOptions {
                allocator: option,
                ..Default::default()
            };
            let r = analyze(&input, &opts).unwrap();
            let s = &r.summary;
            let what = format!("{meta:?} {option:?} {order:?}");
            assert_eq!(r.trace.allocator, Some(judged), "{what}");
            assert_eq!(r.trace.allocator_source, Some(source), "{what}");
            assert_eq!(s.mismatched_frees, mismatched, "{what}");
            assert_eq!(s.cache_objects_kfreed, 1, "{what}");
            assert_eq!(
                (s.unknown_frees, s.live_allocations, s.lost_frees),
                (0, 0, 0),
                "{what}"
            );
            assert_eq!(
                s.bytes_freed,
                24 + 16 + 4096 + 128 + 16384 + 16384,
                "{what}"
            );
            let mut want: Vec<&str> = always.to_vec();
            if judged == Allocator::Slob {
                want.insert(0, Rule::CacheObjectKfreed.name());
            }
            assert_eq!(rules(&r), want, "{what}");
            assert!(
                crate::render::trace_line(&r).contains(source.describe()),
                "{what}"
            );
        }
    }
    let e = analyze(
        &with_allocator(input_of(&[(0, cpu0)], ByteOrder::Little), Some("slub2")),
        &AnalyzeOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"slub2\""), "{e}");
}

#[test]
fn synth_summary_is_reproduced_exactly() {
    for (order, cpus, wrap, lose, nodes) in [
        (ByteOrder::Little, 1, false, 0, 1),
        (ByteOrder::Big, 2, true, 7, 1),
        (ByteOrder::Little, 4, true, 1000, 2),
        (ByteOrder::Big, 3, false, 3, 3),
    ] {
        let opts = SynthOptions {
            events: 30_000,
            cpus,
            order,
            wrap,
            lose,
            nodes,
            max_live: 3000,
            seed: cpus as u64,
            ..SynthOptions::default()
        };
        let (input, out) = synth_in_memory(&opts);
        for parallel in [true, false] {
            let r = analyze(
                &input,
                &AnalyzeOptions {
                    parallel,
                    ..AnalyzeOptions::default()
                },
            )
            .unwrap();
            assert_eq!(r.summary, out.summary, "{opts:?} parallel={parallel}");
            assert_eq!(r.trace.byte_order, Some(order));
        }
    }
}

#[test]
fn sharded_replay_gives_the_single_thread_report() {
    let (input, _) = synth_in_memory(&SynthOptions {
        events: 40_000,
        cpus: 3,
        max_live: 500,
        ..SynthOptions::default()
    });
    let one = AnalyzeOptions {
        parallel: false,
        alloc_rows: true,
        examples: 3,
        ..AnalyzeOptions::default()
    };
    let base = analyze(&input, &one).unwrap();
    for (replay_threads, batch_records) in [
        (1, None),
        (2, None),
        (3, None),
        (2, Some(1)),
        (3, Some(7)),
        (2, Some(100_000)),
    ] {
        let opts = AnalyzeOptions {
            parallel: true,
            replay_threads,
            batch_records,
            ..one.clone()
        };
        assert_eq!(
            analyze(&input, &opts).unwrap(),
            base,
            "{replay_threads} replay threads, batches of {batch_records:?}"
        );
    }
}

#[test]
fn callsite_filter_keeps_only_matching_functions() {
    let (input, _) = synth_in_memory(&SynthOptions {
        events: 5000,
        ..SynthOptions::default()
    });
    let r = analyze(
        &input,
        &AnalyzeOptions {
            callsite_filter: vec!["alloc_skb".into(), "kstr*".into()],
            ..AnalyzeOptions::default()
        },
    )
    .unwrap();
    assert!(r.summary.filtered_out > 0);
    assert_eq!(r.summary.records, 5000);
    for f in &r.functions {
        assert!(
            f.function == "alloc_skb" || f.function.starts_with("kstr"),
            "{}",
            f.function
        );
    }
    let no_syms = TraceInput::from_streams(vec![(0, vec![])]);
    assert!(matches!(
        analyze(
            &no_syms,
            &AnalyzeOptions {
                callsite_filter: vec!["x".into()],
                ..Default::default()
            }
        ),
        Err(Error::FilterWithoutSymbols)
    ));
}

#[test]
fn mixed_byte_orders_are_an_error_unless_overridden() {
    let r = vec![alloc(1, AllocType::Kmalloc, 1, 2, 3, 4, -1)];
    let mut input = input_of(&[(0, r.clone())], ByteOrder::Little);
    input
        .files
        .extend(input_of(&[(1, r)], ByteOrder::Big).files);
    let e = analyze(&input, &AnalyzeOptions::default()).unwrap_err();
    assert!(matches!(e, Error::MixedByteOrder { .. }), "{e}");
    let rep = analyze(
        &input,
        &AnalyzeOptions {
            endian: Some(ByteOrder::Little),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rep.summary.records, 1);
    assert_eq!(rep.summary.damaged_regions, 1);
}

#[test]
fn a_corrupt_sequence_number_does_not_derail_the_merge() {
    use AllocType::*;
    // cpu0 allocates, cpu1 frees; one of cpu0's numbers has a flipped high byte.
    let mut cpu0 = Vec::new();
    let mut cpu1 = Vec::new();
    for i in 0..50 {
        let seq = 2 * i + 1;
        cpu0.push(alloc(seq, Kmalloc, 0x100, 0x1000 + i as u64 * 64, 8, 8, -1));
        cpu1.push(free(seq + 1, Kmalloc, 0x200, 0x1000 + i as u64 * 64));
    }
    cpu0[20].seq ^= 0x4000_0000;
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let r = analyze(
            &input_of(&[(0, cpu0.clone()), (1, cpu1.clone())], order),
            &AnalyzeOptions::default(),
        )
        .unwrap();
        let s = &r.summary;
        assert_eq!(
            (s.bad_seqs, s.lost_events, s.out_of_order_seqs),
            (1, 1, 0),
            "{s:?}"
        );
        assert_eq!(
            (s.unknown_frees, s.lost_frees, s.live_allocations),
            (0, 0, 0),
            "{s:?}"
        );
        let f = r
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::BadSeq)
            .unwrap();
        assert_eq!(f.examples[0].offset, Some(20 * 48));
        assert_eq!(f.examples[0].file.as_deref(), Some("cpu0.out"));
    }
}

#[test]
fn duplicate_sequence_numbers_are_counted_and_replayed() {
    let a = vec![alloc(1, AllocType::Kmalloc, 1, 0x10, 3, 4, -1)];
    let b = vec![alloc(1, AllocType::Kmalloc, 1, 0x20, 3, 4, -1)];
    let r = analyze(
        &input_of(&[(0, a), (1, b)], ByteOrder::Little),
        &AnalyzeOptions::default(),
    )
    .unwrap();
    assert_eq!((r.summary.duplicate_seqs, r.summary.allocs), (1, 2));
}

#[test]
fn strict_mode_turns_damage_into_an_error_naming_file_and_offset() {
    let mut b = Vec::new();
    alloc(1, AllocType::Kmalloc, 1, 0x10, 3, 4, -1).encode_into(ByteOrder::Little, &mut b);
    b.extend_from_slice(&[0u8; 10]);
    let input = TraceInput::from_streams(vec![(0, b)]);
    let e = analyze(
        &input,
        &AnalyzeOptions {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cpu0.out at byte 48: partial_record: event_id 0 type_id 0 event_size 0 with 10 bytes left (and 0 more damaged regions)"
    );
    let r = analyze(&input, &AnalyzeOptions::default()).unwrap();
    assert_eq!((r.summary.allocs, r.damage.bytes), (1, 10));
}

/// Memory by use: slab pages, large-kmalloc pages and the tracer's pages are told apart by the
/// function that allocated them; the overhead is slab pages less the small objects in them; the
/// peaks are the sum of the shards' timelines, read at bucket boundaries.
#[test]
fn memory_by_use_keeps_slab_objects_and_their_pages_apart() {
    use AllocType::*;
    let syms = crate::Symbols::parse(
        "0000000000001000 t alloc_slab_page\n0000000000002000 t ___kmalloc_large_node\n\
         0000000000003000 t relay_open_buf\n0000000000004000 t pipe_write\n\
         0000000000005000 T foo\n0000000000006000 T kfree\n",
    );
    let mut recs = Vec::new();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    // One slab page (8 KiB), 10 objects of 192 bytes in it.
    recs.push(alloc(next(), Pages, 0x1010, 0xa000, 8192, 8192, -1));
    for i in 0..10 {
        recs.push(alloc(
            next(),
            Kmalloc,
            0x5010,
            0xa000 + i * 192,
            150,
            192,
            -1,
        ));
    }
    // A large kmalloc: its page record, then its kmalloc record, at one address.
    recs.push(alloc(next(), Pages, 0x2010, 0x20000, 16384, 16384, -1));
    recs.push(alloc(next(), Kmalloc, 0x5020, 0x20000, 12000, 16384, -1));
    // The tracer's buffer and a pipe's page.
    recs.push(alloc(next(), Pages, 0x3010, 0x40000, 4096, 4096, -1));
    recs.push(alloc(next(), Pages, 0x4010, 0x50000, 4096, 4096, -1));
    // Padding: what follows is in later buckets at every resolution.
    for i in 0..1100u64 {
        recs.push(alloc(
            next(),
            Kmalloc,
            0x5030,
            0x100000 + i * 64,
            64,
            64,
            -1,
        ));
        recs.push(free(next(), Kmalloc, 0x6010, 0x100000 + i * 64));
    }
    // Half the objects freed, then the large kmalloc and its pages, then the pipe page.
    for i in 0..5 {
        recs.push(free(next(), Kmalloc, 0x6010, 0xa000 + i * 192));
    }
    recs.push(free(next(), Pages, 0x6020, 0x20000));
    recs.push(free(next(), Kmalloc, 0x6010, 0x20000));
    recs.push(free(next(), Pages, 0x6020, 0x50000));
    let mut input = input_of(&[(0, recs)], ByteOrder::Little);
    input.symbols = Some(syms);
    let mut reports = Vec::new();
    for (parallel, replay_threads) in [(false, 1), (true, 2), (true, 3)] {
        let opts = AnalyzeOptions {
            parallel,
            replay_threads,
            ..AnalyzeOptions::default()
        };
        reports.push(analyze(&input, &opts).unwrap().memory.unwrap());
    }
    let m = &reports[0];
    assert!(reports.iter().all(|r| r == m), "{reports:#?}");
    assert!(m.pages_classified);
    assert_eq!(m.peak_resolution_records, 1);
    let row = |n: &str| m.row(n).unwrap().clone();
    let names: Vec<&str> = m.uses.iter().map(|u| u.use_.as_str()).collect();
    assert_eq!(
        names,
        [
            "slab_objects",
            "slab_pages",
            "large_kmalloc_pages",
            "tracer_pages",
            "other_pages"
        ]
    );
    let objects = row("slab_objects");
    // The large kmalloc's object is counted by its pages, not again as a slab object.
    assert_eq!((objects.allocs, objects.frees), (10 + 1100, 5 + 1100));
    assert_eq!(objects.live_bytes, 5 * 192);
    // The peak, exact: 10 objects and one of the padding's.
    assert_eq!(objects.peak_live_bytes, 10 * 192 + 64);
    assert_eq!(row("slab_pages").live_bytes, 8192);
    assert_eq!(row("large_kmalloc_pages").peak_live_bytes, 16384);
    assert_eq!(row("large_kmalloc_pages").live_bytes, 0);
    assert_eq!(row("tracer_pages").live_bytes, 4096);
    assert_eq!(
        (row("other_pages").allocs, row("other_pages").frees),
        (1, 1)
    );
    assert_eq!(m.slab_overhead_bytes, Some(8192 - 5 * 192));
    // The highest: the slab page before its first object.
    assert_eq!(m.peak_slab_overhead_bytes, Some(8192));
    assert_eq!(m.peak_page_bytes, 8192 + 16384 + 4096);

    // Without symbols nothing is classified and the slab figures are absent.
    input.symbols = None;
    let m = analyze(&input, &AnalyzeOptions::default())
        .unwrap()
        .memory
        .unwrap();
    assert!(!m.pages_classified);
    assert_eq!(m.slab_overhead_bytes, None);
    assert_eq!(m.row("other_pages").unwrap().allocs, 4);
}

/// Reports that must not depend on the bytes of the files (stacks make them longer).
fn without_files(mut r: Report) -> Report {
    r.trace.files.clear();
    r.trace.directory = None;
    r
}

/// The ABI's extension rule, as a property: a trace with stacks, read by the analysis with
/// stacks ignored (`--group-by callsite` or `function`), gives exactly the report of the same
/// trace without them, in both byte orders and with the replay sharded or not; read with
/// stacks (`caller`, `stack`), everything but the group table is the same too.
#[test]
fn stacks_ignored_give_the_report_without_stacks() {
    for (order, seed) in [(ByteOrder::Little, 3), (ByteOrder::Big, 4)] {
        let base = SynthOptions {
            events: 20_000,
            cpus: 2,
            order,
            seed,
            max_live: 2000,
            wrap: true,
            lose: 5,
            ..SynthOptions::default()
        };
        let (plain, out) = synth_in_memory(&base);
        let (stacked, out2) = synth_in_memory(&SynthOptions {
            stack_depth: 6,
            ..base.clone()
        });
        assert_eq!(out.summary, out2.summary);
        for parallel in [true, false] {
            let opts = AnalyzeOptions {
                parallel,
                alloc_rows: true,
                ..AnalyzeOptions::default()
            };
            let want = without_files(analyze(&plain, &opts).unwrap());
            assert_eq!(want.summary, out.summary);
            for by in [
                GroupBy::Callsite,
                GroupBy::Function,
                GroupBy::Caller,
                GroupBy::Stack,
            ] {
                let o = AnalyzeOptions {
                    group_by: by,
                    ..opts.clone()
                };
                let mut got = without_files(analyze(&stacked, &o).unwrap());
                assert_eq!(got.groups.is_some(), by.needs_stacks(), "{by:?}");
                got.groups = None;
                assert_eq!(got, want, "{order:?} {by:?} parallel={parallel}");
            }
        }
    }
}

/// Every allocation lands in exactly one group; `kmemdup` and `kstrdup` (wrappers) are
/// charged to the callers their stacks go out through, never to themselves; two paths per
/// call site make at most two stacks per call site.
#[test]
fn groups_add_up_and_look_through_wrappers() {
    let (input, out) = synth_in_memory(&SynthOptions {
        events: 20_000,
        stack_depth: 4,
        ..SynthOptions::default()
    });
    let by = |g: GroupBy| {
        analyze(
            &input,
            &AnalyzeOptions {
                group_by: g,
                ..AnalyzeOptions::default()
            },
        )
        .unwrap()
    };
    let callers = by(GroupBy::Caller);
    let g = callers.groups.as_ref().unwrap();
    assert!(g.sites_with_stacks > 0);
    let hits: u64 = g.rows.iter().map(|r| r.stats.hits).sum();
    assert_eq!(hits, out.summary.allocs);
    let bytes: u64 = g.rows.iter().map(|r| r.stats.bytes_allocated).sum();
    assert_eq!(bytes, out.summary.bytes_allocated);
    assert!(
        g.rows.iter().all(|r| !crate::callers::is_wrapper(&r.key)),
        "{:?}",
        g.rows.iter().map(|r| &r.key).collect::<Vec<_>>()
    );
    // kmemdup's and kstrdup's allocations went to the functions their stacks go out through.
    assert!(g
        .rows
        .iter()
        .any(|r| r.key == "ksys_write" || r.key == "do_sys_openat2"));
    let stacks = by(GroupBy::Stack);
    let s = stacks.groups.as_ref().unwrap();
    let hits: u64 = s.rows.iter().map(|r| r.stats.hits).sum();
    assert_eq!(hits, out.summary.allocs);
    assert!(
        s.rows.len() <= 2 * stacks.callsites.len(),
        "{}",
        s.rows.len()
    );
    let first = &s.rows[0];
    assert_eq!(first.frames.len(), 5, "{first:?}");
    let mut outward = first.frames.clone();
    outward.reverse();
    assert_eq!(first.key, outward.join(";"));
}

/// The pipes example by hand: two allocations at one call site in
/// `kmalloc_array_noprof.constprop.0`, called from `alloc_pipe_info` and from `sched_init`;
/// one without a stack stays at the call site.
#[test]
fn the_caller_behind_a_wrapper_is_charged() {
    use AllocType::*;
    let order = ByteOrder::Big;
    let with = |mut r: Record, frames: &[u64]| {
        r.features = crate::abi::stack_feature(frames, order);
        r
    };
    let cpu0 = vec![
        with(
            alloc(1, Kmalloc, 0x1010, 0x8000, 640, 1024, -1),
            &[0x2040, 0x3010],
        ),
        with(alloc(2, Kmalloc, 0x1010, 0x9000, 640, 1024, -1), &[0x4020]),
        alloc(3, Kmalloc, 0x1010, 0xa000, 64, 64, -1),
        with(free(4, Kmalloc, 0x5000, 0x8000), &[0x3010]),
    ];
    let mut input = input_of(&[(0, cpu0)], order);
    input.symbols = Some(Symbols::from_pairs([
        (0x1000, "kmalloc_array_noprof.constprop.0"),
        (0x2000, "alloc_pipe_info"),
        (0x3000, "do_pipe2"),
        (0x4000, "sched_init"),
        (0x5000, "kfree"),
        (0x6000, "_etext"),
    ]));
    let r = analyze(
        &input,
        &AnalyzeOptions {
            group_by: GroupBy::Caller,
            ..AnalyzeOptions::default()
        },
    )
    .unwrap();
    let g = r.groups.unwrap();
    let row = |k: &str| g.rows.iter().find(|r| r.key == k).unwrap().stats.clone();
    assert_eq!(row("alloc_pipe_info").bytes_allocated, 1024);
    assert_eq!(row("alloc_pipe_info").freed, 1);
    assert_eq!(row("sched_init").hits, 1);
    assert_eq!(row("kmalloc_array_noprof.constprop.0").hits, 1);
    assert_eq!(r.callsites.len(), 2, "{:?}", r.callsites);
    assert_eq!(r.callsites[0].stats.hits, 3);
}

/// Collapsed stacks: outermost first, the call site's function last, offsets folded; per value
/// the lines add up to the summary's figure.
#[test]
fn folded_stacks_add_up_to_the_summary() {
    use crate::render::{render_folded, Value};
    let (input, out) = synth_in_memory(&SynthOptions {
        events: 10_000,
        stack_depth: 3,
        anomalies: false,
        ..SynthOptions::default()
    });
    let r = analyze(
        &input,
        &AnalyzeOptions {
            group_by: GroupBy::Stack,
            ..AnalyzeOptions::default()
        },
    )
    .unwrap();
    let sum = |v: Value| -> u64 {
        render_folded(&r, v)
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum(Value::BytesAllocated), out.summary.bytes_allocated);
    assert_eq!(sum(Value::BytesRequested), out.summary.bytes_requested);
    assert_eq!(sum(Value::Allocs), out.summary.allocs);
    assert_eq!(sum(Value::LiveBytes), out.summary.live_bytes);
    let text = render_folded(&r, Value::Allocs);
    for line in text.lines() {
        let (stack, _) = line.rsplit_once(' ').unwrap();
        let frames: Vec<&str> = stack.split(';').collect();
        assert_eq!(frames.len(), 4, "{line}");
        assert!(frames.iter().all(|f| !f.contains("+0x")), "{line}");
    }
    // Without stacks: one frame per line, the call sites' functions.
    let (plain, _) = synth_in_memory(&SynthOptions {
        events: 2_000,
        ..SynthOptions::default()
    });
    let r = analyze(
        &plain,
        &AnalyzeOptions {
            group_by: GroupBy::Stack,
            ..AnalyzeOptions::default()
        },
    )
    .unwrap();
    assert!(render_folded(&r, Value::Allocs)
        .lines()
        .all(|l| !l.contains(';')));
}

/// `--alloc --sort` used to be ignored: the per-allocation table came out by bytes, hits and
/// address whatever the keys. Each key now orders it (`frees` excepted, which an address does not
/// have), the default order is unchanged, and a row limit keeps the first rows of the full order.
#[test]
fn the_alloc_table_follows_the_sort_keys() {
    let (input, _) = synth_in_memory(&SynthOptions {
        events: 20_000,
        seed: 5,
        ..SynthOptions::default()
    });
    let rows = |sort: &[&str], max_rows: Option<usize>| {
        let opts = AnalyzeOptions {
            alloc_rows: true,
            sort: sort.iter().map(|s| s.to_string()).collect(),
            max_rows,
            ..AnalyzeOptions::default()
        };
        analyze(&input, &opts).unwrap().allocations.unwrap()
    };
    let ptrs = |rows: &[AllocRow]| rows.iter().map(|r| r.ptr).collect::<Vec<_>>();
    let by_ptr = rows(&["ptr"], None);
    let by_hits = rows(&["hit"], None);
    assert_ne!(ptrs(&by_ptr), ptrs(&by_hits));
    assert!(by_ptr.windows(2).all(|w| w[0].ptr < w[1].ptr));
    assert!(by_hits
        .windows(2)
        .all(|w| (Reverse(w[0].hits), w[0].ptr) < (Reverse(w[1].hits), w[1].ptr)));
    let keyed = |key: &str, f: fn(&AllocRow) -> i128| {
        let v = rows(&[key], None);
        assert!(
            v.windows(2)
                .all(|w| (f(&w[0]), w[0].ptr) < (f(&w[1]), w[1].ptr)),
            "--sort {key}"
        );
        v
    };
    keyed("bytes", |r| -(r.bytes_allocated as i128));
    keyed("req", |r| -(r.bytes_requested as i128));
    let by_frag = keyed("frag", |r| -(r.fragmentation_bytes as i128));
    keyed("pingpong", |r| -(r.cross_cpu_frees as i128));
    keyed("live", |r| -(r.live as i128));
    keyed("callsite", |r| r.call_site as i128);
    assert_ne!(ptrs(&by_frag), ptrs(&rows(&["bytes"], None)));
    // Keys apply in order; `frees` is skipped here.
    let v = rows(&["frees", "callsite", "hits"], None);
    assert!(v
        .windows(2)
        .all(|w| (w[0].call_site, Reverse(w[0].hits), w[0].ptr)
            < (w[1].call_site, Reverse(w[1].hits), w[1].ptr)));
    // No keys: bytes, hits, address, as before.
    let default = rows(&[], None);
    assert!(default.windows(2).all(|w| {
        let k = |r: &AllocRow| (Reverse(r.bytes_allocated), Reverse(r.hits), r.ptr);
        k(&w[0]) < k(&w[1])
    }));
    // With a limit, the first rows of the same order.
    for (sort, n) in [
        (&["ptr"][..], 7),
        (&["frag", "hit"], 50),
        (&[], 1),
        (&["live"], 0),
    ] {
        let mut all = rows(sort, None);
        all.truncate(n);
        assert_eq!(rows(sort, Some(n)), all, "{sort:?} {n}");
    }
}
