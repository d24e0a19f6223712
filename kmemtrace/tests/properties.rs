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

/// Feature chains: entries of `u16 size, u8 id, size-3 bytes`, encoded later per byte order.
fn features() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..6)),
        0..3,
    )
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

fn record() -> impl Strategy<Value = (Record, Vec<(u8, Vec<u8>)>)> {
    (
        0u8..3,
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((any::<u64>(), any::<u64>(), any::<u32>(), any::<i32>())),
        features(),
    )
        .prop_map(|(t, seq, call_site, ptr, alloc, feats)| {
            (
                Record {
                    type_id: AllocType::from_id(t).unwrap(),
                    seq,
                    call_site,
                    ptr,
                    alloc: alloc.map(|(bytes_req, bytes_alloc, gfp_flags, numa_node)| {
                        AllocFields {
                            bytes_req,
                            bytes_alloc,
                            gfp_flags,
                            numa_node,
                        }
                    }),
                    features: vec![],
                },
                feats,
            )
        })
}

/// A plausible event stream in sequence order: allocations and frees over a small pointer space
/// so that frees meet their allocations.
fn events() -> impl Strategy<Value = Vec<(u32, Record)>> {
    proptest::collection::vec(
        (0u32..3, any::<bool>(), 0u8..3, 0u64..12, 0u64..4, 1u64..300),
        0..200,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (cpu, is_alloc, t, p, site, sz))| {
                let ty = AllocType::from_id(t).unwrap();
                let seq = i as i32 + 1;
                let ptr = p * 64;
                let site = 0x1000 + site * 0x10;
                let r = if is_alloc {
                    alloc(seq, ty, site, ptr, sz, sz.next_power_of_two())
                } else {
                    free(seq, ty, site, ptr)
                };
                (cpu, r)
            })
            .collect()
    })
}

proptest! {
    /// Invariant: any record, with any well-formed feature chain, decodes to itself in both byte
    /// orders (features kept verbatim).
    #[test]
    fn round_trip_in_both_byte_orders(recs in proptest::collection::vec(record(), 1..20), order in order()) {
        let recs: Vec<Record> = recs
            .into_iter()
            .map(|(mut r, f)| {
                r.features = encode_features(&f, order);
                r
            })
            .collect();
        let bytes = encode(&recs, order);
        prop_assert_eq!(decode_all(&bytes, order), recs.clone());
        // And the converted stream decodes to the same records (features re-encoded).
        let other = kmemtrace::convert_bytes(&bytes, order, order.swapped());
        let back = kmemtrace::convert_bytes(&other, order.swapped(), order);
        prop_assert_eq!(back, bytes);
    }

    /// Invariant: splitting each CPU's stream into any number of files (same CPU number, order
    /// kept) and decoding on one or two threads gives the same report, in either byte order.
    #[test]
    fn any_split_into_files_gives_the_same_report(
        evs in events(),
        cuts in proptest::collection::vec(0usize..200, 0..4),
        order in order(),
    ) {
        let per_cpu = |cpu: u32| -> Vec<Record> { evs.iter().filter(|e| e.0 == cpu).map(|e| e.1.clone()).collect() };
        let whole = TraceInput::from_streams((0..3).map(|c| (c, encode(&per_cpu(c), ByteOrder::Little))));
        let base = analyze(&whole, &AnalyzeOptions { parallel: false, ..Default::default() }).unwrap();

        let mut streams = Vec::new();
        for c in 0..3u32 {
            let recs = per_cpu(c);
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
        let r = analyze(&split, &AnalyzeOptions::default()).unwrap();
        prop_assert_eq!(r.without_trace(), base.without_trace());
    }

    /// Invariant: arbitrary bytes never panic the detector, the scanner, check or the analysis,
    /// and every byte is accounted as a record, an unknown record or damage; the analysis fails
    /// only when not one record decodes from bytes that are all damage, starting at byte 0.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), order in order()) {
        let _ = kmemtrace::detect_byte_order(&bytes);
        let input = TraceInput::from_streams(vec![(0, bytes.clone())]);
        let _ = check_input(&input);
        let recs = decode_all(&bytes, order);
        match analyze(&input, &AnalyzeOptions { endian: Some(order), ..Default::default() }) {
            Ok(r) => {
                prop_assert_eq!(recs.len() as u64, r.summary.records);
                let rec_bytes: u64 = recs.iter().map(|r| r.event_size() as u64).sum();
                prop_assert!(rec_bytes + r.damage.bytes <= bytes.len() as u64);
                prop_assert!(bytes.is_empty() || r.summary.records + r.summary.unknown_records > 0);
            }
            Err(Error::NothingDecodes { bytes: n, first, .. }) => {
                prop_assert!(recs.is_empty());
                prop_assert_eq!(n, bytes.len() as u64);
                prop_assert_eq!(first.offset, 0);
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
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
