// SPDX-License-Identifier: GPL-2.0-only
//! The open-allocation table: pointer → value, open addressing with linear probing and
//! backward-shift deletion, Fibonacci hashing, load factor at most 1/2 (3/4 for a
//! [`PtrTable::dense_for_at_most`] one).
//!
//! Why not `HashMap`: the replay's cost is dominated by cache misses on this table (pointers are
//! random), and a flat table lets the replay prefetch the slot of a record a few records ahead.
//! Key 0 marks an empty slot; the replay never inserts a NULL pointer.

use aligned_vec::{AVec, RuntimeAlign};

/// A pointer-keyed table of `V`.
pub(crate) struct PtrTable<V: Copy + Default> {
    slots: AVec<(u64, V), RuntimeAlign>,
    len: usize,
    shift: u32,
    /// Grow at a load factor of 3/4 instead of 1/2.
    dense: bool,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const MIN_BITS: u32 = 14;

impl<V: Copy + Default> PtrTable<V> {
    /// A table of `2^bits` slots to start with (small tables stay in the L1 cache).
    pub fn with_bits(bits: u32) -> Self {
        let bits = bits.clamp(1, 63);
        PtrTable {
            slots: slots(1 << bits),
            len: 0,
            shift: 64 - bits,
            dense: false,
        }
    }

    /// A table for at most `entries` entries: the usual `2^14` slots, or fewer when that many
    /// could never be filled (a small trace need not clear and fault in a megabyte per table).
    pub fn for_at_most(entries: u64) -> Self {
        let slots = entries.saturating_mul(2).clamp(64, 1 << MIN_BITS);
        Self::with_bits(slots.next_power_of_two().ilog2())
    }

    /// A table that fills to 3/4 before it grows: for tables that are only ever added to, such
    /// as the per-address rows, which can number in the millions. Probe runs get longer, but
    /// the table (and its growth, when the old and the new table coexist) needs a third less
    /// memory in the worst case and half in the best.
    /// Sized as [`PtrTable::for_at_most`].
    pub fn dense_for_at_most(entries: u64) -> Self {
        PtrTable {
            dense: true,
            ..Self::for_at_most(entries)
        }
    }

    /// Whether `n` entries are more than this table may hold before it grows.
    #[inline(always)]
    fn over(&self, n: usize) -> bool {
        if self.dense {
            n * 4 > self.slots.len() * 3
        } else {
            n * 2 > self.slots.len()
        }
    }

    #[inline(always)]
    fn index(&self, key: u64) -> usize {
        (key.wrapping_mul(K) >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Hint the CPU to fetch the slot `key` hashes to.
    #[inline(always)]
    pub fn prefetch(&self, key: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.slots.as_ptr().wrapping_add(self.index(key)) as *const i8;
            // SAFETY: a prefetch never faults and has no observable effect besides the cache;
            // the address is inside the slot array.
            #[allow(unused_unsafe)]
            unsafe {
                core::arch::x86_64::_mm_prefetch(p, core::arch::x86_64::_MM_HINT_T0)
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Grow now so that `additional` more entries fit without growing.
    pub fn reserve(&mut self, additional: usize) {
        while self.over(self.len + additional) {
            self.grow();
        }
    }

    /// The value of `key`, if present (never for key 0).
    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<&V> {
        let mask = self.mask();
        let mut i = self.index(key);
        loop {
            let s = &self.slots[i];
            if s.0 == key && key != 0 {
                return Some(&s.1);
            }
            if s.0 == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert or replace; returns the previous value. `key` must not be 0.
    #[inline]
    pub fn insert(&mut self, key: u64, v: V) -> Option<V> {
        debug_assert!(key != 0);
        if self.over(self.len + 1) {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.index(key);
        loop {
            let s = &mut self.slots[i];
            if s.0 == key {
                return Some(std::mem::replace(&mut s.1, v));
            }
            if s.0 == 0 {
                *s = (key, v);
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`, inserted as `V::default()` if absent. `key` must not be 0.
    #[inline]
    pub fn entry(&mut self, key: u64) -> &mut V {
        debug_assert!(key != 0);
        if self.over(self.len + 1) {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.index(key);
        loop {
            let k = self.slots[i].0;
            if k == key {
                break;
            }
            if k == 0 {
                self.slots[i].0 = key;
                self.len += 1;
                break;
            }
            i = (i + 1) & mask;
        }
        &mut self.slots[i].1
    }

    /// Remove and return the value of `key`.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<V> {
        if key == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = self.index(key);
        loop {
            let k = self.slots[i].0;
            if k == key {
                break;
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
        let v = self.slots[i].1;
        // Backward-shift deletion: move later members of the probe run into the hole.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let k = self.slots[j].0;
            if k == 0 {
                break;
            }
            let home = self.index(k);
            // Move if the hole lies cyclically within [home, j).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = (0, V::default());
        self.len -= 1;
        Some(v)
    }

    #[cold]
    fn grow(&mut self) {
        let bits = 64 - self.shift + 1;
        let old = std::mem::replace(&mut self.slots, slots(1 << bits));
        self.shift = 64 - bits;
        self.len = 0;
        for &(k, v) in old.iter() {
            if k != 0 {
                self.insert(k, v);
            }
        }
    }

    /// Entries, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots.iter().filter(|s| s.0 != 0).map(|s| (s.0, &s.1))
    }
}

/// The size of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// `n` empty slots. A table of 2 MiB or more is aligned to 2 MiB and asked to live on transparent
/// huge pages: the replay touches its slots at random, and with 4 KiB pages nearly every touch of
/// a table of several MiB is a TLB miss (and the first one a page fault). With huge pages
/// `report --caller --alloc` on a perf-imported trace takes 10-14% less CPU.
fn slots<V: Copy + Default>(n: usize) -> AVec<(u64, V), RuntimeAlign> {
    let bytes = n * std::mem::size_of::<(u64, V)>();
    let huge = bytes >= HUGE_PAGE;
    let mut v: AVec<(u64, V), RuntimeAlign> =
        AVec::with_capacity(if huge { HUGE_PAGE } else { 64 }, n);
    #[cfg(target_os = "linux")]
    if huge {
        // SAFETY: MADV_HUGEPAGE only advises the kernel how to back this vector's own
        // allocation (2 MiB-aligned, at least `bytes` long, not yet touched); it changes neither
        // contents nor access rights, and a failure (THP disabled) is harmless.
        unsafe {
            libc::madvise(v.as_mut_ptr().cast(), bytes, libc::MADV_HUGEPAGE);
        }
    }
    v.resize(n, (0, V::default()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_hashmap_under_random_operations() {
        like_a_hashmap(PtrTable::for_at_most(u64::MAX));
    }

    #[test]
    fn a_table_sized_for_a_small_trace_starts_small_and_still_grows() {
        assert_eq!(PtrTable::<u32>::for_at_most(0).slots.len(), 64);
        assert_eq!(PtrTable::<u32>::for_at_most(500).slots.len(), 1024);
        assert_eq!(
            PtrTable::<u32>::for_at_most(u64::MAX).slots.len(),
            1 << MIN_BITS
        );
        assert_eq!(PtrTable::<u32>::dense_for_at_most(40).slots.len(), 128);
        like_a_hashmap(PtrTable::for_at_most(3));
        like_a_hashmap(PtrTable::dense_for_at_most(3));
    }

    #[test]
    fn a_dense_table_behaves_like_a_hashmap_and_stays_smaller() {
        like_a_hashmap(PtrTable::dense_for_at_most(u64::MAX));
        let (mut sparse, mut dense) = (
            PtrTable::<u32>::for_at_most(u64::MAX),
            PtrTable::<u32>::dense_for_at_most(u64::MAX),
        );
        for k in 1..=90_000u64 {
            sparse.insert(k << 6, 0);
            dense.insert(k << 6, 0);
        }
        // 90 000 entries: 2^18 slots at a load of at most 1/2, 2^17 at most 3/4.
        assert_eq!((sparse.slots.len(), dense.slots.len()), (1 << 18, 1 << 17));
    }

    fn like_a_hashmap(mut t: PtrTable<u32>) {
        let mut m: HashMap<u64, u32> = HashMap::new();
        let mut x = 88172645463325252u64;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A small key space so inserts, replacements and removes all happen; low bits zero
            // like real pointers.
            let key = ((x % 5000) + 1) << 6;
            if x & 0x100 == 0 {
                assert_eq!(t.insert(key, i), m.insert(key, i));
            } else {
                assert_eq!(t.remove(key), m.remove(&key));
            }
            assert_eq!(t.get(key), m.get(&key));
            assert_eq!(t.len(), m.len());
        }
        let mut a: Vec<_> = t.iter().map(|(k, v)| (k, *v)).collect();
        let mut b: Vec<_> = m.into_iter().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(t.remove(0), None);
        assert_eq!(t.get(0), None);
    }
}
