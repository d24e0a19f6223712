// SPDX-License-Identifier: GPL-2.0-only
//! ABI v1 and v2 record layout: constants, byte order, decoding and encoding of one record.
//!
//! Records are packed, unaligned and written in the traced machine's byte order:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | `event_id` (0 alloc, 1 free) |
//! | 1 | 1 | `type_id` (0 kmalloc, 1 kmem_cache, 2 pages) |
//! | 2 | 2 | `event_size` (header included) |
//! | 4 | 4 | `seq_num` (signed, wraps) |
//! | 8 | 8 | `call_site` |
//! | 16 | 8 | `ptr` |
//! | 24 | 8 | `bytes_req` (alloc only) |
//! | 32 | 8 | `bytes_alloc` (alloc only) |
//! | 40 | 4 | `gfp_flags` (alloc only) |
//! | 44 | 4 | `numa_node` (alloc only, signed, -1 = any) |
//!
//! Anything past the mandatory fields is a chain of features
//! (`u16 feature_size, u8 feature_id, feature_size - 3 bytes`) covered by `event_size`. The one
//! feature defined so far is [`feature::STACK`] (ABI version 2): the return addresses above the
//! call site.

use serde::{Deserialize, Serialize};

/// The ABI version this crate reads and writes.
pub const ABI_VERSION: u32 = 1;
/// Byte offsets of a record's fields: the table above, the one definition of the layout that
/// the decoder, the scanner and the encoder use. Each field ends where the next begins.
pub mod field {
    /// `event_id`, 1 byte.
    pub const EVENT_ID: usize = 0;
    /// `type_id`, 1 byte.
    pub const TYPE_ID: usize = 1;
    /// `event_size`, 2 bytes.
    pub const EVENT_SIZE: usize = 2;
    /// `seq_num`, 4 bytes.
    pub const SEQ_NUM: usize = 4;
    /// `call_site`, 8 bytes.
    pub const CALL_SITE: usize = 8;
    /// `ptr`, 8 bytes.
    pub const PTR: usize = 16;
    /// `bytes_req`, 8 bytes (alloc only).
    pub const BYTES_REQ: usize = 24;
    /// `bytes_alloc`, 8 bytes (alloc only).
    pub const BYTES_ALLOC: usize = 32;
    /// `gfp_flags`, 4 bytes (alloc only).
    pub const GFP_FLAGS: usize = 40;
    /// `numa_node`, 4 bytes (alloc only).
    pub const NUMA_NODE: usize = 44;
}

/// Feature ids (docs/abi.md, "Features").
pub mod feature {
    /// The call stack above `call_site`: `u8 depth`, then `depth` return addresses of 8 bytes in
    /// the record's byte order, the caller of `call_site`'s function first.
    pub const STACK: u8 = 1;
    /// Bytes of a stack feature before its addresses (`feature_size`, `feature_id`, `depth`).
    pub const STACK_HEAD: usize = 4;
}

/// Bytes of the header every record starts with (`event_id`, `type_id`, `event_size`).
pub const HEADER_SIZE: usize = field::SEQ_NUM;
/// Size of a free record (the common header).
pub const FREE_SIZE: usize = field::PTR + 8;
/// Size of an allocation record without features.
pub const ALLOC_SIZE: usize = field::NUMA_NODE + 4;
// The sizes the kernel's records have (`event_size` detection depends on them).
const _: () = assert!(HEADER_SIZE == 4 && FREE_SIZE == 24 && ALLOC_SIZE == 48);
/// `event_id` of an allocation.
pub const EVENT_ALLOC: u8 = 0;
/// `event_id` of a free.
pub const EVENT_FREE: u8 = 1;
/// Number of known `type_id`s (0, 1, 2).
pub const TYPE_COUNT: usize = 3;

/// Byte order of a trace (the traced machine's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// x86_64, arm64 (usually), ppc64le.
    Little,
    /// ppc64 (big-endian), s390x.
    Big,
}

impl ByteOrder {
    /// The other byte order.
    pub fn swapped(self) -> Self {
        match self {
            ByteOrder::Little => ByteOrder::Big,
            ByteOrder::Big => ByteOrder::Little,
        }
    }

    /// `"little"` or `"big"`, as in `meta.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ByteOrder::Little => "little",
            ByteOrder::Big => "big",
        }
    }

    /// Parse `"little"`/`"le"` or `"big"`/`"be"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "little" | "le" => Some(ByteOrder::Little),
            "big" | "be" => Some(ByteOrder::Big),
            _ => None,
        }
    }

    #[inline(always)]
    pub(crate) fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    #[inline(always)]
    pub(crate) fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    #[inline(always)]
    pub(crate) fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        }
    }

    fn put_u16(self, v: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    fn put_u32(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    fn put_u64(self, v: u64) -> [u8; 8] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }
}

impl std::fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allocator family of a record (`type_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AllocType {
    /// 0: kmalloc / kfree.
    Kmalloc,
    /// 1: kmem_cache_alloc / kmem_cache_free.
    KmemCache,
    /// 2: the page allocator (`__get_free_pages` et al.).
    Pages,
}

impl AllocType {
    /// All types, indexed by `type_id`.
    pub const ALL: [AllocType; TYPE_COUNT] =
        [AllocType::Kmalloc, AllocType::KmemCache, AllocType::Pages];

    /// From a `type_id`, `None` when unknown.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }

    /// The `type_id`.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The name used in reports (`kmalloc`, `kmem_cache`, `pages`).
    pub fn name(self) -> &'static str {
        match self {
            AllocType::Kmalloc => "kmalloc",
            AllocType::KmemCache => "kmem_cache",
            AllocType::Pages => "pages",
        }
    }
}

/// Allocation-only fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocFields {
    /// Bytes requested by the caller.
    pub bytes_req: u64,
    /// Bytes actually allocated.
    pub bytes_alloc: u64,
    /// GFP flags of the call.
    pub gfp_flags: u32,
    /// Requested NUMA node, -1 for no preference.
    pub numa_node: i32,
}

/// One decoded record of a known kind (alloc or free of a known type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Allocator family.
    pub type_id: AllocType,
    /// Global sequence number (wraps).
    pub seq: i32,
    /// Return address of the caller.
    pub call_site: u64,
    /// Address of the memory (may be 0).
    pub ptr: u64,
    /// `Some` for an allocation, `None` for a free.
    pub alloc: Option<AllocFields>,
    /// Feature bytes after the mandatory fields (kept verbatim, not interpreted).
    pub features: Vec<u8>,
}

impl Record {
    /// `event_size` this record encodes to.
    pub fn event_size(&self) -> usize {
        let base = if self.alloc.is_some() {
            ALLOC_SIZE
        } else {
            FREE_SIZE
        };
        base + self.features.len()
    }

    /// Append the encoding of this record in `order` to `out`.
    ///
    /// `features` are copied verbatim; see [`swap_features`] to re-encode them.
    pub fn encode_into(&self, order: ByteOrder, out: &mut Vec<u8>) {
        let size = self.event_size();
        let mut r = [0u8; ALLOC_SIZE];
        let mut put = |at: usize, bytes: &[u8]| r[at..at + bytes.len()].copy_from_slice(bytes);
        put(
            field::EVENT_ID,
            &[if self.alloc.is_some() {
                EVENT_ALLOC
            } else {
                EVENT_FREE
            }],
        );
        put(field::TYPE_ID, &[self.type_id.id()]);
        put(
            field::EVENT_SIZE,
            &order.put_u16(size.min(u16::MAX as usize) as u16),
        );
        put(field::SEQ_NUM, &order.put_u32(self.seq as u32));
        put(field::CALL_SITE, &order.put_u64(self.call_site));
        put(field::PTR, &order.put_u64(self.ptr));
        let len = match &self.alloc {
            Some(a) => {
                put(field::BYTES_REQ, &order.put_u64(a.bytes_req));
                put(field::BYTES_ALLOC, &order.put_u64(a.bytes_alloc));
                put(field::GFP_FLAGS, &order.put_u32(a.gfp_flags));
                put(field::NUMA_NODE, &order.put_u32(a.numa_node as u32));
                ALLOC_SIZE
            }
            None => FREE_SIZE,
        };
        out.extend_from_slice(&r[..len]);
        out.extend_from_slice(&self.features);
    }

    /// The encoding of this record in `order`.
    pub fn encode(&self, order: ByteOrder) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.event_size());
        self.encode_into(order, &mut v);
        v
    }
}

/// What the header at some offset says, before any validation beyond bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub event_id: u8,
    pub type_id: u8,
    pub event_size: usize,
}

#[inline(always)]
pub(crate) fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

/// Read a header at `at`; `None` if fewer than 4 bytes remain.
#[inline(always)]
pub(crate) fn header(b: &[u8], at: usize, order: ByteOrder) -> Option<Header> {
    if b.len().checked_sub(at)? < HEADER_SIZE {
        return None;
    }
    Some(Header {
        event_id: b[at + field::EVENT_ID],
        type_id: b[at + field::TYPE_ID],
        event_size: order.u16(arr(b, at + field::EVENT_SIZE)) as usize,
    })
}

/// Minimum `event_size` for a known event id.
#[inline(always)]
pub(crate) fn min_size(event_id: u8) -> Option<usize> {
    match event_id {
        EVENT_ALLOC => Some(ALLOC_SIZE),
        EVENT_FREE => Some(FREE_SIZE),
        _ => None,
    }
}

/// Whether `feat` (the bytes after the mandatory fields) is a well-formed feature chain.
pub(crate) fn features_ok(feat: &[u8], order: ByteOrder) -> bool {
    let mut i = 0;
    while i < feat.len() {
        if feat.len() - i < 3 {
            return false;
        }
        let sz = order.u16(arr(feat, i)) as usize;
        if sz < 3 || sz > feat.len() - i {
            return false;
        }
        i += sz;
    }
    true
}

/// Re-encode a feature chain from one byte order to the other: swaps each `feature_size`, and
/// the addresses of a well-formed [`feature::STACK`]; other features' data bytes are opaque and
/// copied. Returns `None` if the chain is malformed.
pub fn swap_features(feat: &[u8], from: ByteOrder) -> Option<Vec<u8>> {
    if !features_ok(feat, from) {
        return None;
    }
    let mut out = feat.to_vec();
    let mut i = 0;
    while i < feat.len() {
        let sz = from.u16(arr(feat, i));
        out[i..i + 2].copy_from_slice(&from.swapped().put_u16(sz));
        let one = &feat[i..i + sz as usize];
        if stack_depth(one, from).is_some() {
            for at in (feature::STACK_HEAD..one.len()).step_by(8) {
                let a = from.u64(arr(one, at));
                out[i + at..i + at + 8].copy_from_slice(&from.swapped().put_u64(a));
            }
        }
        i += sz as usize;
    }
    Some(out)
}

/// The depth of `one` (a single feature, its size bytes first) when it is a well-formed stack
/// feature: id [`feature::STACK`] and a size that is exactly its depth's addresses.
fn stack_depth(one: &[u8], order: ByteOrder) -> Option<usize> {
    if one.len() < feature::STACK_HEAD || one[2] != feature::STACK {
        return None;
    }
    let depth = one[3] as usize;
    (order.u16(arr(one, 0)) as usize == feature::STACK_HEAD + 8 * depth
        && one.len() == feature::STACK_HEAD + 8 * depth)
        .then_some(depth)
}

/// The addresses of the first well-formed stack feature in a feature chain, the caller of
/// `call_site`'s function first; `None` when the chain has none (a record of ABI version 1, or
/// stacks off). A malformed chain has none.
pub fn stack_frames(feat: &[u8], order: ByteOrder) -> Option<impl Iterator<Item = u64> + '_> {
    let mut i = 0;
    while feat.len().saturating_sub(i) >= 3 {
        let sz = order.u16(arr(feat, i)) as usize;
        if sz < 3 || sz > feat.len() - i {
            return None;
        }
        let one = &feat[i..i + sz];
        if stack_depth(one, order).is_some() {
            return Some(
                one[feature::STACK_HEAD..]
                    .chunks_exact(8)
                    .map(move |c| order.u64(arr(c, 0))),
            );
        }
        i += sz;
    }
    None
}

/// A stack feature holding `frames` (at most 255, the rest dropped), in `order`.
pub fn stack_feature(frames: &[u64], order: ByteOrder) -> Vec<u8> {
    let frames = &frames[..frames.len().min(u8::MAX as usize)];
    let size = feature::STACK_HEAD + 8 * frames.len();
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&order.put_u16(size as u16));
    v.push(feature::STACK);
    v.push(frames.len() as u8);
    for &f in frames {
        v.extend_from_slice(&order.put_u64(f));
    }
    v
}

/// Decode the record at `at`, which the caller has validated: known event and type, `event_size`
/// at least the minimum and within `b`.
#[inline(always)]
pub(crate) fn decode_known(b: &[u8], at: usize, h: Header, order: ByteOrder) -> Record {
    let r = &b[at..at + h.event_size];
    let base = min_size(h.event_id).unwrap_or(FREE_SIZE);
    Record {
        type_id: AllocType::from_id(h.type_id).unwrap_or(AllocType::Kmalloc),
        seq: order.u32(arr(r, field::SEQ_NUM)) as i32,
        call_site: order.u64(arr(r, field::CALL_SITE)),
        ptr: order.u64(arr(r, field::PTR)),
        alloc: (h.event_id == EVENT_ALLOC).then(|| AllocFields {
            bytes_req: order.u64(arr(r, field::BYTES_REQ)),
            bytes_alloc: order.u64(arr(r, field::BYTES_ALLOC)),
            gfp_flags: order.u32(arr(r, field::GFP_FLAGS)),
            numa_node: order.u32(arr(r, field::NUMA_NODE)) as i32,
        }),
        features: r[base..].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_alloc() -> Record {
        Record {
            type_id: AllocType::KmemCache,
            seq: -5,
            call_site: 0xffff_ffff_8100_1234,
            ptr: 0xffff_8880_0000_1000,
            alloc: Some(AllocFields {
                bytes_req: 100,
                bytes_alloc: 128,
                gfp_flags: 0xcc0,
                numa_node: -1,
            }),
            features: vec![],
        }
    }

    #[test]
    fn alloc_record_is_48_bytes_and_round_trips_in_both_orders() {
        let r = sample_alloc();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let b = r.encode(order);
            assert_eq!(b.len(), ALLOC_SIZE);
            let h = header(&b, 0, order).unwrap();
            assert_eq!(h.event_size, 48);
            assert_eq!(decode_known(&b, 0, h, order), r);
        }
    }

    #[test]
    fn wrong_order_reads_event_size_as_0x3000() {
        let b = sample_alloc().encode(ByteOrder::Big);
        assert_eq!(header(&b, 0, ByteOrder::Little).unwrap().event_size, 0x3000);
    }

    #[test]
    fn features_are_swapped_per_chain_entry() {
        let feat = [5u8, 0, 7, 0xaa, 0xbb, 3, 0, 9];
        assert!(features_ok(&feat, ByteOrder::Little));
        let be = swap_features(&feat, ByteOrder::Little).unwrap();
        assert_eq!(be, [0, 5, 7, 0xaa, 0xbb, 0, 3, 9]);
        assert!(!features_ok(&[2, 0, 1], ByteOrder::Little));
        assert!(!features_ok(&[1], ByteOrder::Little));
    }

    /// A stack after an unknown feature is found, read in its own byte order, and converted
    /// address by address; the unknown feature's bytes stay as they were.
    #[test]
    fn a_stack_is_found_after_unknown_features_and_swapped_address_by_address() {
        let frames = [0xffff_ffff_8100_0010u64, 0xc000_0000_0012_3456];
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let mut feat = [order.put_u16(5).to_vec(), vec![7, 0xaa, 0xbb]].concat();
            feat.extend(stack_feature(&frames, order));
            assert!(features_ok(&feat, order));
            assert_eq!(feat.len(), 5 + 4 + 16);
            let got: Vec<u64> = stack_frames(&feat, order).unwrap().collect();
            assert_eq!(got, frames);
            let other = swap_features(&feat, order).unwrap();
            assert_eq!(&other[2..5], &[7, 0xaa, 0xbb]);
            let back: Vec<u64> = stack_frames(&other, order.swapped()).unwrap().collect();
            assert_eq!(back, frames);
            assert_eq!(swap_features(&other, order.swapped()).unwrap(), feat);
        }
    }

    #[test]
    fn no_or_malformed_stacks_read_as_none() {
        let o = ByteOrder::Little;
        assert!(stack_frames(&[], o).is_none());
        assert!(stack_frames(&[5, 0, 7, 0xaa, 0xbb], o).is_none());
        // Depth 2 but one address: not a stack, and not swapped as one.
        let mut bad = stack_feature(&[1, 2], o);
        bad.truncate(bad.len() - 8);
        bad[0] = bad.len() as u8;
        assert!(stack_frames(&bad, o).is_none());
        assert_eq!(swap_features(&bad, o).unwrap()[4..], bad[4..]);
        assert_eq!(stack_feature(&[], o), vec![4, 0, 1, 0]);
        assert_eq!(stack_frames(&stack_feature(&[], o), o).unwrap().count(), 0);
    }
}
