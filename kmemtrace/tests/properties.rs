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
