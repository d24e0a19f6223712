// SPDX-License-Identifier: GPL-2.0-only
// Proptest strategies shared by the integration tests (through `common::strategies`) and the
// crate's own unit tests in `src/scan.rs` (by `include!`, since unit tests cannot use
// `tests/common`). The including module brings `proptest`, `AllocFields`, `AllocType` and
// `Record` into scope.

/// A record of any type and field values, without features, and a feature chain of up to two
/// entries of `u8` id and fewer than `max_data` bytes, for the caller to encode per byte order.
pub fn record_with_features(
    max_data: usize,
) -> impl proptest::strategy::Strategy<Value = (Record, Vec<(u8, Vec<u8>)>)> {
    use proptest::prelude::*;
    (
        0u8..3,
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((any::<u64>(), any::<u64>(), any::<u32>(), any::<i32>())),
        proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..max_data)),
            0..3,
        ),
    )
        .prop_map(|(t, seq, call_site, ptr, alloc, feats)| {
            let record = Record {
                type_id: AllocType::from_id(t).unwrap(),
                seq,
                call_site,
                ptr,
                alloc: alloc.map(|(bytes_req, bytes_alloc, gfp_flags, numa_node)| AllocFields {
                    bytes_req,
                    bytes_alloc,
                    gfp_flags,
                    numa_node,
                }),
                features: vec![],
            };
            (record, feats)
        })
}
