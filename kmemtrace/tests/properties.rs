// SPDX-License-Identifier: GPL-2.0-only
//! Property tests of the decoder and the analysis.

mod common;

use common::*;
use kmemtrace::{
    analyze, check_input, decode_all, AllocFields, AllocType, AnalyzeOptions, ByteOrder, Error,
    Record, TraceInput,
};
use proptest::prelude::*;

fn order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Little), Just(ByteOrder::Big)]
}

fn encode_features(f: &[(u8, Vec<u8>)], order: ByteOrder) -> Vec<u8> {
    let mut v = Vec::new();
    for (id, data) in f {
        let size = (3 + data.len()) as u16;
        v.extend_from_slice(&match order {
            ByteOrder::Little => size.to_le_bytes(),
            ByteOrder::Big => size.to_be_bytes(),
        });
        v.push(*id);
        v.extend_from_slice(data);
    }
    v
}

/// The ABI v1 encoding of `r` in `order`, written from the ABI table field by field at its
/// offset: independent of the crate's encoder, so that a property comparing with it fails when
/// the crate's encoding (or `convert`'s) is wrong, not only when it is inconsistent.
fn abi_bytes(r: &Record, order: ByteOrder) -> Vec<u8> {
    let base = if r.alloc.is_some() { 48 } else { 24 };
    let mut b = vec![0u8; base];
    let mut put = |at: usize, le: &[u8]| {
        let f = &mut b[at..at + le.len()];
        f.copy_from_slice(le);
        if order == ByteOrder::Big {
            f.reverse();
        }
    };
    put(0, &[r.alloc.is_none() as u8]);
    put(1, &[r.type_id as u8]);
    put(2, &((base + r.features.len()) as u16).to_le_bytes());
    put(4, &r.seq.to_le_bytes());
    put(8, &r.call_site.to_le_bytes());
    put(16, &r.ptr.to_le_bytes());
    if let Some(a) = &r.alloc {
        put(24, &a.bytes_req.to_le_bytes());
        put(32, &a.bytes_alloc.to_le_bytes());
        put(40, &a.gfp_flags.to_le_bytes());
        put(44, &a.numa_node.to_le_bytes());
    }
    b.extend_from_slice(&r.features);
    b
}

fn record() -> impl Strategy<Value = (Record, Vec<(u8, Vec<u8>)>)> {
    strategies::record_with_features(6)
}

/// Records per replay batch in the analysis (`BATCH` in `analyze.rs`): the split property
/// generates record counts that reach and straddle it, in one batch and in two shards' batches.
const BATCH: usize = 2048;

/// A generated trace: its records in sequence order (each with the CPU that logs it), and what
/// the analysis must count in it.
#[derive(Debug, Clone)]
struct Events {
    evs: Vec<(u32, Record)>,
    /// Sequence numbers skipped between consecutive records.
    lost: u64,
}

impl Events {
    fn per_cpu(&self, cpu: u32) -> Vec<Record> {
        self.evs
            .iter()
            .filter(|e| e.0 == cpu)
            .map(|e| e.1.clone())
            .collect()
    }

    /// Whether the numbering passes `i32::MAX` to `i32::MIN` (the signed wrap) or -1 to 0 (the
    /// unsigned one).
    fn wraps(&self) -> (bool, bool) {
        let w = |f: fn(i32, i32) -> bool| self.evs.windows(2).any(|p| f(p[0].1.seq, p[1].1.seq));
        (w(|a, b| b < a), w(|a, b| a < 0 && b >= 0))
    }
}

/// A plausible event stream in sequence order: allocations and frees over a small pointer space
/// (0 included, for failed allocations and NULL frees) so that frees meet their allocations, on
/// three CPUs and three NUMA preferences. The numbering starts anywhere, near both wraps
/// included, and steps by 1 or, now and then, skips numbers (lost events); the count is small or
/// around one or two replay batches.
fn events() -> impl Strategy<Value = Events> {
    let len = prop_oneof![
        4 => 0usize..200,
        1 => BATCH - 3..BATCH + 4,
        1 => 2 * BATCH - 40..2 * BATCH + 200,
    ];
    let start = prop_oneof![
        Just(1i32),
        (i32::MAX - 300)..=i32::MAX,
        -300i32..=-1,
        any::<i32>(),
    ];
    let step = prop_oneof![30 => Just(1u32), 2 => 2u32..10, 1 => Just(100_000u32)];
    let ev = (
        0u32..3,
        any::<bool>(),
        0u8..3,
        0u64..12,
        0u64..4,
        1u64..300,
        -1i32..2,
        step,
    );
    (
        start,
        len.prop_flat_map(move |n| proptest::collection::vec(ev.clone(), n)),
    )
        .prop_map(|(start, v)| {
            let (mut seq, mut lost) = (start, 0u64);
            let evs = v
                .into_iter()
                .enumerate()
                .map(|(i, (cpu, is_alloc, t, p, site, sz, node, step))| {
                    if i > 0 {
                        seq = seq.wrapping_add(step as i32);
                        lost += step as u64 - 1;
                    }
                    let ty = AllocType::from_id(t).unwrap();
                    let (ptr, site) = (p * 64, 0x1000 + site * 0x10);
                    let mut r = if is_alloc {
                        alloc(seq, ty, site, ptr, sz, sz.next_power_of_two())
                    } else {
                        free(seq, ty, site, ptr)
                    };
                    if let Some(a) = &mut r.alloc {
                        a.numa_node = node;
                    }
                    (cpu, r)
                })
                .collect();
            Events { evs, lost }
        })
}

/// How often a property met the cases its strategy is meant to generate.
#[derive(Default)]
struct Seen(std::cell::RefCell<std::collections::BTreeMap<&'static str, u32>>);

impl Seen {
    fn note(&self, what: &'static str, happened: bool) {
        *self.0.borrow_mut().entry(what).or_default() += happened as u32;
    }

    /// Fail unless every case noted happened at least once.
    fn assert_all(&self) {
        let m = self.0.borrow();
        let never: Vec<_> = m
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| *k)
            .collect();
        assert!(never.is_empty(), "never generated: {never:?} (seen: {m:?})");
    }
}

/// Run `test` on `strategy` like `proptest!` does (the `PROPTEST_*` environment included, the
/// failure persisted), then demand that it met every case in `seen`.
fn run_counting<S: Strategy>(
    name: &str,
    strategy: S,
    seen: &Seen,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
    let config = Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        test_name: Some(Box::leak(name.to_string().into_boxed_str())),
        ..Config::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{name}: {e}");
    }
    seen.assert_all();
}

/// Invariant: splitting each CPU's stream into any number of files (same CPU number, order
/// kept) and decoding on one to three replay threads with any batch size gives the same report
/// as one file per CPU on one thread, in either byte order; and that report counts every record,
/// the lost events as the numbers skipped, and no duplicate, out-of-order or corrupt number,
/// also across the wrap of the sequence number. The strategy reaches one and two batches of
/// records, gaps and both wraps (checked: the test fails if a kind of case never occurs).
#[test]
fn any_split_into_files_gives_the_same_report() {
    let seen = Seen::default();
    let strategy = (
        events(),
        proptest::collection::vec(0usize..5000, 0..4),
        order(),
        1usize..4,
        prop_oneof![
            Just(None),
            (1usize..5).prop_map(Some),
            (BATCH - 1..BATCH + 2).prop_map(Some)
        ],
    );
    run_counting(
        "any_split_into_files_gives_the_same_report",
        strategy,
        &seen,
        |(ev, cuts, order, threads, batch)| {
            let n = ev.evs.len();
            let (signed_wrap, unsigned_wrap) = ev.wraps();
            seen.note("more records than a batch", n > BATCH);
            seen.note("more records than two batches", n > 2 * BATCH);
            seen.note("a batch and one record", n == BATCH + 1);
            seen.note("exactly a batch", n == BATCH);
            seen.note("lost events", ev.lost > 0);
            seen.note("a large gap", ev.lost >= 100_000);
            seen.note("wrap of i32", signed_wrap);
            seen.note("wrap of u32", unsigned_wrap);
            seen.note("small batches", batch.is_some_and(|b| b < 5));

            let whole = TraceInput::from_streams(
                (0..3).map(|c| (c, encode(&ev.per_cpu(c), ByteOrder::Little))),
            );
            let base = analyze(
                &whole,
                &AnalyzeOptions {
                    parallel: false,
                    ..Default::default()
                },
            )
            .unwrap();
            let s = &base.summary;
            prop_assert_eq!(s.records, n as u64);
            let allocs = ev.evs.iter().filter(|e| e.1.alloc.is_some()).count() as u64;
            prop_assert_eq!((s.allocs, s.frees), (allocs, n as u64 - allocs));
            prop_assert_eq!(s.lost_events, ev.lost);
            prop_assert_eq!(
                (s.duplicate_seqs, s.out_of_order_seqs, s.bad_seqs),
                (0, 0, 0)
            );

            let mut streams = Vec::new();
            for c in 0..3u32 {
                let recs = ev.per_cpu(c);
                let mut points: Vec<usize> = cuts.iter().map(|x| x % (recs.len() + 1)).collect();
                points.push(0);
                points.push(recs.len());
                points.sort();
                points.dedup();
                for w in points.windows(2) {
                    streams.push((c, encode(&recs[w[0]..w[1]], order)));
                }
            }
            let split = TraceInput::from_streams(streams);
            let opts = AnalyzeOptions {
                replay_threads: threads,
                batch_records: batch,
                ..Default::default()
            };
            let r = analyze(&split, &opts).unwrap();
            prop_assert_eq!(r.without_trace(), base.without_trace());
            Ok(())
        },
    );
}

/// Bytes that are partly a trace: records (with features), records of unknown ids, records
/// cut short and garbage, in any order; or garbage alone.
fn damaged_stream() -> impl Strategy<Value = (Vec<u8>, ByteOrder)> {
    let piece = prop_oneof![
        6 => record().prop_map(|(r, f)| (0u8, r, f, Vec::new())),
        1 => (2u8..=255, any::<u8>(), proptest::collection::vec(any::<u8>(), 20..60))
            .prop_map(|(e, t, rest)| (1u8, free(0, AllocType::Kmalloc, 0, 0), vec![(e, vec![t])], rest)),
        1 => (record(), 1usize..47).prop_map(|((r, f), cut)| (2u8, r, f, vec![0; cut])),
        2 => proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|g| (3u8, free(0, AllocType::Kmalloc, 0, 0), Vec::new(), g)),
    ];
    let pieces = (proptest::collection::vec(piece, 0..30), order()).prop_map(|(pieces, order)| {
        let mut b = Vec::new();
        for (kind, mut r, f, extra) in pieces {
            match kind {
                0 | 2 => {
                    r.features = encode_features(&f, order);
                    let e = abi_bytes(&r, order);
                    let keep = if kind == 0 {
                        e.len()
                    } else {
                        extra.len().min(e.len() - 1)
                    };
                    b.extend_from_slice(&e[..keep]);
                }
                1 => {
                    // A well-framed record of an unknown event id: (event id, [type id]).
                    let (e, t) = (f[0].0, f[0].1[0]);
                    let size = (4 + extra.len()) as u16;
                    b.extend_from_slice(&[e, t]);
                    b.extend_from_slice(&match order {
                        ByteOrder::Little => size.to_le_bytes(),
                        ByteOrder::Big => size.to_be_bytes(),
                    });
                    b.extend_from_slice(&extra);
                }
                _ => b.extend_from_slice(&extra),
            }
        }
        (b, order)
    });
    prop_oneof![
        1 => (proptest::collection::vec(any::<u8>(), 0..2000), order()),
        3 => pieces,
    ]
}

/// Invariant: arbitrary bytes never panic the detector, the scanner, check or the analysis,
/// and every byte is accounted, exactly once and in order, as a record, an unknown record or
/// damage: the report's damaged regions and the records between them tile the input (each known
/// record is the ABI encoding of what it decoded to), so records + unknown records + damaged
/// bytes = the input's bytes. The analysis fails only when not one record decodes from bytes
/// that are all damage, starting at byte 0. (The strategy is checked to reach both outcomes,
/// unknown records and damage among records.)
#[test]
fn garbage_never_panics() {
    let seen = Seen::default();
    run_counting(
        "garbage_never_panics",
        damaged_stream(),
        &seen,
        |(bytes, order)| {
            let _ = kmemtrace::detect_byte_order(&bytes);
            let input = TraceInput::from_streams(vec![(0, bytes.clone())]);
            let _ = check_input(&input);
            let recs = decode_all(&bytes, order);
            let analysed = analyze(
                &input,
                &AnalyzeOptions {
                    endian: Some(order),
                    ..Default::default()
                },
            );
            seen.note(
                "nothing decodes",
                matches!(analysed, Err(Error::NothingDecodes { .. })),
            );
            match analysed {
                Ok(r) => {
                    prop_assert_eq!(recs.len() as u64, r.summary.records);
                    prop_assert!(
                        bytes.is_empty() || r.summary.records + r.summary.unknown_records > 0
                    );
                    seen.note(
                        "records and damage",
                        r.summary.records > 0 && r.damage.bytes > 0,
                    );
                    seen.note("unknown records", r.summary.unknown_records > 0);
                    let regions = &r.damage.regions;
                    prop_assert_eq!(
                        regions.len() as u64,
                        r.damage.regions_total,
                        "all regions listed"
                    );
                    let (mut at, mut next_region, mut known, mut unknown) = (0usize, 0, 0, 0u64);
                    let (mut known_bytes, mut unknown_bytes, mut damaged_bytes) =
                        (0u64, 0u64, 0u64);
                    while at < bytes.len() {
                        if let Some(d) = regions.get(next_region).filter(|d| d.offset == at as u64)
                        {
                            prop_assert!(d.length > 0);
                            at += d.length as usize;
                            damaged_bytes += d.length;
                            next_region += 1;
                            continue;
                        }
                        prop_assert!(
                            bytes.len() - at >= 24,
                            "a record at {} of {}",
                            at,
                            bytes.len()
                        );
                        let s = [bytes[at + 2], bytes[at + 3]];
                        let size = match order {
                            ByteOrder::Little => u16::from_le_bytes(s),
                            ByteOrder::Big => u16::from_be_bytes(s),
                        } as usize;
                        prop_assert!(
                            size >= 24 && at + size <= bytes.len(),
                            "size {} at {}",
                            size,
                            at
                        );
                        if bytes[at] <= 1 && bytes[at + 1] < 3 {
                            prop_assert!(known < recs.len(), "more records than decoded at {}", at);
                            prop_assert_eq!(
                                &bytes[at..at + size],
                                &abi_bytes(&recs[known], order)[..]
                            );
                            known += 1;
                            known_bytes += size as u64;
                        } else {
                            unknown += 1;
                            unknown_bytes += size as u64;
                        }
                        at += size;
                    }
                    prop_assert_eq!(at, bytes.len());
                    prop_assert_eq!(next_region, regions.len());
                    prop_assert_eq!(known, recs.len());
                    prop_assert_eq!(unknown, r.summary.unknown_records);
                    prop_assert_eq!(damaged_bytes, r.damage.bytes);
                    prop_assert_eq!(damaged_bytes, r.summary.damaged_bytes);
                    prop_assert_eq!(
                        known_bytes + unknown_bytes + damaged_bytes,
                        bytes.len() as u64
                    );
                }
                Err(Error::NothingDecodes {
                    bytes: n, first, ..
                }) => {
                    prop_assert!(recs.is_empty());
                    prop_assert_eq!(n, bytes.len() as u64);
                    prop_assert_eq!(first.offset, 0);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
            Ok(())
        },
    );
}

proptest! {
    /// Invariant: any record, with any well-formed feature chain, encodes to the ABI's bytes
    /// ([`abi_bytes`]) and decodes to itself in both byte orders (features kept verbatim);
    /// `convert` to the other order gives exactly that order's ABI bytes (feature sizes
    /// re-encoded, so the stream differs from its input), and back the original bytes.
    #[test]
    fn round_trip_in_both_byte_orders(recs in proptest::collection::vec(record(), 1..20), order in order()) {
        let in_order = |o: ByteOrder| -> Vec<Record> {
            recs.iter()
                .map(|(r, f)| Record { features: encode_features(f, o), ..r.clone() })
                .collect()
        };
        let (these, those) = (in_order(order), in_order(order.swapped()));
        let abi = |rs: &[Record], o| rs.iter().flat_map(|r| abi_bytes(r, o)).collect::<Vec<u8>>();
        let bytes = abi(&these, order);
        prop_assert_eq!(&encode(&these, order), &bytes);
        prop_assert_eq!(decode_all(&bytes, order), these.clone());
        let other = kmemtrace::convert_bytes(&bytes, order, order.swapped());
        prop_assert_eq!(&other, &abi(&those, order.swapped()));
        prop_assert_ne!(&other, &bytes);
        prop_assert_eq!(decode_all(&other, order.swapped()), those);
        let back = kmemtrace::convert_bytes(&other, order.swapped(), order);
        prop_assert_eq!(back, bytes);
    }

    /// Invariant: garbage spliced between valid records keeps every record before it, invents
    /// none, and (unless the garbage happens to frame an unknown-id record, which is skipped by
    /// its size as the ABI's extension rule demands) loses at most the record it runs into.
    #[test]
    fn damage_in_the_middle_is_resynchronised(
        garbage in proptest::collection::vec(any::<u8>(), 1..100),
        order in order(),
    ) {
        let good: Vec<Record> = (0..20).map(|i| alloc(i, AllocType::Kmalloc, 0x10, 0x1000 + i as u64 * 64, 8, 8)).collect();
        let mut bytes = encode(&good[..10], order);
        bytes.extend_from_slice(&garbage);
        bytes.extend_from_slice(&encode(&good[10..], order));
        let recs = decode_all(&bytes, order);
        prop_assert!(recs.starts_with(&good[..10]));
        prop_assert!(recs[10..].iter().all(|r| good[10..].contains(r) || garbage.len() >= 24));
        let r = analyze(&TraceInput::from_streams(vec![(0, bytes)]), &AnalyzeOptions { endian: Some(order), ..Default::default() }).unwrap();
        if r.summary.unknown_records == 0 {
            prop_assert!(recs.len() >= 19, "{} records", recs.len());
            prop_assert!(recs.ends_with(&good[11..]));
        }
    }
}

/// The sum of `f` over `rows`.
fn total<T>(rows: &[T], f: impl Fn(&T) -> u64) -> u64 {
    rows.iter().map(f).sum()
}

/// The figures of a [`kmemtrace::SiteStats`] that add up over rows, by name.
fn site_figures(s: &kmemtrace::SiteStats) -> [(&'static str, i128); 11] {
    [
        ("hits", s.hits as i128),
        ("bytes_requested", s.bytes_requested as i128),
        ("bytes_allocated", s.bytes_allocated as i128),
        ("fragmentation_bytes", s.fragmentation_bytes as i128),
        ("frees", s.frees as i128),
        ("freed", s.freed as i128),
        ("cross_cpu_frees", s.cross_cpu_frees as i128),
        ("cross_cpu_allocs", s.cross_cpu_allocs as i128),
        ("mismatched_frees", s.mismatched_frees as i128),
        ("live_allocations", s.live_allocations as i128),
        ("live_bytes", s.live_bytes as i128),
    ]
}

/// [`site_figures`] summed over rows.
fn summed<'a>(stats: impl Iterator<Item = &'a kmemtrace::SiteStats>) -> Vec<(&'static str, i128)> {
    let mut acc: Option<Vec<(&'static str, i128)>> = None;
    for s in stats {
        let f = site_figures(s);
        match &mut acc {
            None => acc = Some(f.to_vec()),
            Some(a) => a.iter_mut().zip(f).for_each(|(x, y)| x.1 += y.1),
        }
    }
    acc.unwrap_or_else(|| site_figures(&Default::default()).to_vec())
}

proptest! {
    /// Invariant: with every row kept (`max_rows: None`, `alloc_rows`), the rows add up to the
    /// summary: the type rows, the call-site rows, the function rows (the call sites grouped by
    /// symbol) and the size classes to every total they share with it; the page orders to the
    /// page type's row; the per-address rows to the allocations that got an address; each call
    /// site's split by type to the call site and, over the call sites, to the type rows; each
    /// finding's call sites to its count (at most 4 call sites here, under `FINDING_SITES`). A
    /// row limit keeps the first rows of the full report and only those.
    #[test]
    fn the_rows_add_up_to_the_summary(ev in events(), order in order(), limit in 0usize..6) {
        let mut input = TraceInput::from_streams((0..3).map(|c| (c, encode(&ev.per_cpu(c), order))));
        // Call sites 0x1000 and 0x1010 are in one function, 0x1020 and 0x1030 in another, the
        // slab allocator's (so that its page allocations are slab pages).
        input.symbols = Some(kmemtrace::Symbols::from_pairs([(0x1000u64, "fa"), (0x1020, "alloc_slab_page")]));
        let opts = AnalyzeOptions { alloc_rows: true, ..Default::default() };
        let r = analyze(&input, &opts).unwrap();
        let s = &r.summary;
        let t = &r.types;
        prop_assert_eq!(t.len(), 3);
        prop_assert_eq!(total(t, |x| x.allocs), s.allocs);
        prop_assert_eq!(total(t, |x| x.frees), s.frees);
        prop_assert_eq!(total(t, |x| x.bytes_requested), s.bytes_requested);
        prop_assert_eq!(total(t, |x| x.bytes_allocated), s.bytes_allocated);
        prop_assert_eq!(total(t, |x| x.bytes_freed), s.bytes_freed);
        prop_assert_eq!(total(t, |x| x.live_allocations), s.live_allocations);
        prop_assert_eq!(total(t, |x| x.live_bytes), s.live_bytes);
        prop_assert_eq!(t.iter().map(|x| x.fragmentation_bytes).sum::<i64>(), s.fragmentation_bytes);

        // Every free closes an allocation unless it is a NULL or an unknown free.
        let closed = s.frees - s.null_frees - s.unknown_frees;
        let want = vec![
            ("hits", s.allocs as i128),
            ("bytes_requested", s.bytes_requested as i128),
            ("bytes_allocated", s.bytes_allocated as i128),
            ("fragmentation_bytes", s.fragmentation_bytes as i128),
            ("frees", s.frees as i128),
            ("freed", closed as i128),
            ("cross_cpu_frees", s.cross_cpu_frees as i128),
            ("cross_cpu_allocs", s.cross_cpu_allocs as i128),
            ("mismatched_frees", s.mismatched_frees as i128),
            ("live_allocations", s.live_allocations as i128),
            ("live_bytes", s.live_bytes as i128),
        ];
        prop_assert_eq!(&summed(r.callsites.iter().map(|c| &c.stats)), &want);
        prop_assert_eq!(&summed(r.functions.iter().map(|f| &f.stats)), &want);
        prop_assert_eq!(total(&r.functions, |f| f.call_sites), r.callsites.len() as u64);
        let distinct_sites: std::collections::BTreeSet<u64> = ev.evs.iter().map(|e| e.1.call_site).collect();
        prop_assert_eq!(r.callsites.len(), distinct_sites.len());

        for c in &r.callsites {
            let bt = &c.stats.by_type;
            prop_assert_eq!(total(bt, |x| x.allocs), c.stats.hits);
            prop_assert_eq!(total(bt, |x| x.frees), c.stats.frees);
            prop_assert_eq!(total(bt, |x| x.bytes_requested), c.stats.bytes_requested);
            prop_assert_eq!(total(bt, |x| x.bytes_allocated), c.stats.bytes_allocated);
        }
        for row in t {
            let of_type = || r.callsites.iter().flat_map(|c| &c.stats.by_type).filter(|x| x.type_id == row.type_id);
            prop_assert_eq!(of_type().map(|x| x.allocs).sum::<u64>(), row.allocs);
            prop_assert_eq!(of_type().map(|x| x.frees).sum::<u64>(), row.frees);
            prop_assert_eq!(of_type().map(|x| x.bytes_requested).sum::<u64>(), row.bytes_requested);
            prop_assert_eq!(of_type().map(|x| x.bytes_allocated).sum::<u64>(), row.bytes_allocated);
        }

        let z = &r.sizes;
        prop_assert_eq!(total(z, |x| x.requests), s.allocs);
        prop_assert_eq!(total(z, |x| x.allocations), s.allocs);
        prop_assert_eq!(total(z, |x| x.bytes_requested), s.bytes_requested);
        prop_assert_eq!(total(z, |x| x.bytes_allocated), s.bytes_allocated);

        let pages = &t[AllocType::Pages as usize];
        prop_assert_eq!(total(&r.pages, |x| x.allocs), pages.allocs);
        prop_assert_eq!(total(&r.pages, |x| x.bytes_allocated), pages.bytes_allocated);
        prop_assert_eq!(total(&r.pages, |x| x.live_allocations), pages.live_allocations);
        // Page allocations closed: by page frees, or (a mismatched free) by a slab free.
        prop_assert!(total(&r.pages, |x| x.frees) <= pages.frees + s.mismatched_frees);

        // Allocations that returned NULL have no address row.
        let failed: Vec<&AllocFields> = ev.evs.iter().filter(|e| e.1.ptr == 0).filter_map(|e| e.1.alloc.as_ref()).collect();
        prop_assert_eq!(failed.len() as u64, s.failed_allocs);
        let a = r.allocations.as_deref().unwrap();
        prop_assert_eq!(total(a, |x| x.hits) + s.failed_allocs, s.allocs);
        prop_assert_eq!(total(a, |x| x.bytes_requested) + total(&failed, |f| f.bytes_req), s.bytes_requested);
        prop_assert_eq!(total(a, |x| x.bytes_allocated) + total(&failed, |f| f.bytes_alloc), s.bytes_allocated);
        prop_assert_eq!(total(a, |x| x.cross_cpu_frees), s.cross_cpu_frees);

        // Memory by use: every successful allocation in one use (no large kmallocs here), the
        // frees that closed one, the live bytes; peaks at least the end.
        let m = r.memory.as_ref().unwrap();
        prop_assert!(m.pages_classified);
        prop_assert_eq!(total(&m.uses, |x| x.allocs) + s.failed_allocs, s.allocs);
        prop_assert_eq!(total(&m.uses, |x| x.bytes_allocated) + total(&failed, |f| f.bytes_alloc), s.bytes_allocated);
        prop_assert_eq!(total(&m.uses, |x| x.frees), closed);
        prop_assert_eq!(total(&m.uses, |x| x.bytes_freed), s.bytes_freed);
        prop_assert_eq!(total(&m.uses, |x| x.live_bytes), s.live_bytes);
        let slab = |n: &str| m.row(n).map_or(0, |x| x.live_bytes) as i64;
        prop_assert_eq!(m.slab_overhead_bytes, Some(slab("slab_pages") - slab("slab_objects")));
        prop_assert!(m.peak_slab_overhead_bytes >= m.slab_overhead_bytes);
        for u in &m.uses {
            prop_assert!(u.peak_live_bytes >= u.live_bytes, "{:?}", u);
        }
        prop_assert!(m.peak_page_bytes >= total(&m.uses, |x| x.live_bytes) - slab("slab_objects") as u64 - slab("tracer_pages") as u64);

        for f in &r.findings {
            if !f.by_call_site.is_empty() {
                prop_assert_eq!(total(&f.by_call_site, |x| x.count), f.count, "{:?}", f.kind);
            }
        }

        let mut cut = analyze(&input, &AnalyzeOptions { max_rows: Some(limit), ..opts.clone() }).unwrap();
        let mut want = r.clone();
        want.truncate_rows(limit);
        cut.trace = want.trace.clone();
        prop_assert_eq!(cut, want);
    }
}
