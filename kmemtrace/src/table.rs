//! The open-allocation table: pointer → value, open addressing with linear probing and
//! backward-shift deletion, Fibonacci hashing, load factor at most 1/2.
//!
//! Why not `HashMap`: the replay's cost is dominated by cache misses on this table (pointers are
//! random), and a flat table lets the replay prefetch the slot of a record a few records ahead.
//! Key 0 marks an empty slot; the replay never inserts a NULL pointer.

/// A pointer-keyed table of `V`.
pub(crate) struct PtrTable<V: Copy + Default> {
    slots: Vec<(u64, V)>,
    len: usize,
    shift: u32,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const MIN_BITS: u32 = 14;

impl<V: Copy + Default> PtrTable<V> {
    pub fn new() -> Self {
        PtrTable {
            slots: vec![(0, V::default()); 1 << MIN_BITS],
            len: 0,
            shift: 64 - MIN_BITS,
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
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Insert or replace; returns the previous value. `key` must not be 0.
    #[inline]
    pub fn insert(&mut self, key: u64, v: V) -> Option<V> {
        debug_assert!(key != 0);
        if (self.len + 1) * 2 > self.slots.len() {
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
        if (self.len + 1) * 2 > self.slots.len() {
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
        let old = std::mem::take(&mut self.slots);
        let bits = 64 - self.shift + 1;
        self.slots = vec![(0, V::default()); 1 << bits];
        self.shift = 64 - bits;
        self.len = 0;
        for (k, v) in old {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_hashmap_under_random_operations() {
        let mut t: PtrTable<u32> = PtrTable::new();
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
            assert_eq!(t.len(), m.len());
        }
        let mut a: Vec<_> = t.iter().map(|(k, v)| (k, *v)).collect();
        let mut b: Vec<_> = m.into_iter().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(t.remove(0), None);
    }
}
