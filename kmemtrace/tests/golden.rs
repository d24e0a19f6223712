// SPDX-License-Identifier: GPL-2.0-only
//! Golden bytes: records written by hand from the ABI table (`tests/common/golden.rs`) against
//! every decoder the crate has and against `convert`. The other tests encode with the crate's
//! own encoder, so a layout misunderstanding shared by encoder and decoders passes them; it
//! cannot pass these.

mod common;

use common::golden::*;
use common::input;
use kmemtrace::{analyze, convert_bytes, decode_all, AllocType, AnalyzeOptions, ByteOrder};

#[test]
fn golden_records_decode_to_their_hand_written_fields_in_both_orders() {
    assert_eq!(
        decode_all(&ALLOC_LE, ByteOrder::Little),
        vec![alloc_record()]
    );
    assert_eq!(decode_all(&ALLOC_BE, ByteOrder::Big), vec![alloc_record()]);
    assert_eq!(decode_all(&FREE_LE, ByteOrder::Little), vec![free_record()]);
    assert_eq!(decode_all(&FREE_BE, ByteOrder::Big), vec![free_record()]);
    assert_eq!(
        decode_all(&FEAT_ALLOC_LE, ByteOrder::Little),
        vec![feat_alloc_record(false)]
    );
    assert_eq!(
        decode_all(&FEAT_ALLOC_BE, ByteOrder::Big),
        vec![feat_alloc_record(true)]
    );
    let (le, be) = golden_streams();
    let want = |big| vec![alloc_record(), free_record(), feat_alloc_record(big)];
    assert_eq!(decode_all(&le, ByteOrder::Little), want(false));
    assert_eq!(decode_all(&be, ByteOrder::Big), want(true));
}

#[test]
fn golden_streams_have_their_byte_order_detected() {
    let (le, be) = golden_streams();
    assert_eq!(kmemtrace::detect_byte_order(&le), Some(ByteOrder::Little));
    assert_eq!(kmemtrace::detect_byte_order(&be), Some(ByteOrder::Big));
}

#[test]
fn convert_turns_the_golden_little_endian_bytes_into_the_golden_big_endian_ones() {
    let (le, be) = golden_streams();
    for (one_le, one_be) in [
        (&ALLOC_LE[..], &ALLOC_BE[..]),
        (&FREE_LE, &FREE_BE),
        (&FEAT_ALLOC_LE, &FEAT_ALLOC_BE),
        (&le, &be),
    ] {
        assert_eq!(
            convert_bytes(one_le, ByteOrder::Little, ByteOrder::Big),
            one_be
        );
        assert_eq!(
            convert_bytes(one_be, ByteOrder::Big, ByteOrder::Little),
            one_le
        );
        // Converting to the order a stream is already in changes nothing.
        assert_eq!(
            convert_bytes(one_le, ByteOrder::Little, ByteOrder::Little),
            one_le
        );
        assert_eq!(
            convert_bytes(one_be, ByteOrder::Big, ByteOrder::Big),
            one_be
        );
    }
}

/// The analysis reads records with its own decoder (not `decode_all`'s): each golden record,
/// analysed alone in either order, must show its hand-written fields in the report.
#[test]
fn the_analysis_reads_the_golden_fields_in_both_orders() {
    let opts = AnalyzeOptions {
        alloc_rows: true,
        ..AnalyzeOptions::default()
    };
    for (bytes, order) in [
        (&ALLOC_LE[..], ByteOrder::Little),
        (&ALLOC_BE, ByteOrder::Big),
    ] {
        let r = analyze(&input(vec![(0, bytes.to_vec())]), &opts).unwrap();
        assert_eq!(r.trace.byte_order, Some(order));
        let s = &r.summary;
        assert_eq!((s.records, s.allocs, s.frees), (1, 1, 0));
        assert_eq!(s.bytes_requested, 0x3132_3334_3536_3738);
        assert_eq!(s.bytes_allocated, 0x4142_4344_4546_4748);
        // numa_node 0x61626364 is not CPU 0's node 0.
        assert_eq!(s.cross_cpu_allocs, 1);
        assert_eq!(r.types[AllocType::KmemCache as usize].allocs, 1);
        assert_eq!(r.callsites.len(), 1);
        assert_eq!(r.callsites[0].call_site, 0x1112_1314_1516_1718);
        let rows = r.allocations.as_ref().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ptr, 0x2122_2324_2526_2728);
    }
    for (bytes, order) in [
        (&FREE_LE[..], ByteOrder::Little),
        (&FREE_BE, ByteOrder::Big),
    ] {
        let r = analyze(&input(vec![(3, bytes.to_vec())]), &opts).unwrap();
        assert_eq!(r.trace.byte_order, Some(order));
        let s = &r.summary;
        assert_eq!(
            (s.records, s.allocs, s.frees, s.unknown_frees),
            (1, 0, 1, 1)
        );
        assert_eq!(r.types[AllocType::Pages as usize].frees, 1);
        assert_eq!(r.callsites[0].call_site, 0x8182_8384_8586_8788);
        let f = r
            .findings
            .iter()
            .find(|f| f.kind == kmemtrace::FindingKind::UnknownFree)
            .unwrap();
        let e = &f.examples[0];
        assert_eq!(e.seq, Some(0x7172_7374));
        assert_eq!(e.cpu, Some(3));
        assert_eq!(e.ptr, Some(0x9192_9394_9596_9798));
        assert_eq!(e.call_site, Some(0x8182_8384_8586_8788));
    }
    for (bytes, order) in [
        (&FEAT_ALLOC_LE[..], ByteOrder::Little),
        (&FEAT_ALLOC_BE, ByteOrder::Big),
    ] {
        let r = analyze(&input(vec![(0, bytes.to_vec())]), &opts).unwrap();
        assert_eq!(r.trace.byte_order, Some(order));
        let s = &r.summary;
        assert_eq!((s.records, s.allocs, s.damaged_bytes), (1, 1, 0));
        assert_eq!(s.bytes_requested, 0xd1d2_d3d4_d5d6_d7d8);
        assert_eq!(s.bytes_allocated, 0xe1e2_e3e4_e5e6_e7e8);
        // numa_node -2 is a node, and not CPU 0's.
        assert_eq!(s.cross_cpu_allocs, 1);
        assert_eq!(r.types[AllocType::Kmalloc as usize].allocs, 1);
        assert_eq!(r.callsites[0].call_site, 0xb1b2_b3b4_b5b6_b7b8);
        assert_eq!(
            r.allocations.as_ref().unwrap()[0].ptr,
            0xc1c2_c3c4_c5c6_c7c8
        );
    }
}
