// SPDX-License-Identifier: GPL-2.0-only
//! The replay: records paired into allocations, and the figures of a shard of pointers.

use super::Rec;
use crate::abi::{AllocType, EVENT_ALLOC, TYPE_COUNT};
use crate::pageuse::PageUse;
use crate::report::*;
use crate::rules::{self, Allocator, Rule, Verdict};
use crate::table::PtrTable;
use std::collections::BTreeMap;

/// An open allocation.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Open {
    pub(super) bytes_alloc: u64,
    pub(super) site: u32,
    pub(super) cpu: u32,
    pub(super) seq: i32,
    pub(super) type_id: u8,
    /// A page allocation's [`PageUse`]; `MEM_SLAB_OBJECTS` marks a slab object.
    pub(super) page_use: u8,
}

/// The uses memory is counted by in [`Timeline`]: slab objects, then one per [`PageUse`].
pub(super) const MEM_USES: usize = 1 + PageUse::ALL.len();
/// The [`Timeline`] index of slab objects (page uses follow at `1 + PageUse as usize`).
pub(super) const MEM_SLAB_OBJECTS: u8 = u8::MAX;
/// A large kmalloc's object: its memory is its pages' (`PageUse::LargeKmalloc`), so it is not
/// counted again.
pub(super) const MEM_LARGE_OBJECT: u8 = u8::MAX - 1;

fn bytes_i64(b: u64) -> i64 {
    i64::try_from(b).unwrap_or(i64::MAX)
}

fn mem_index(page_use: u8) -> usize {
    if page_use == MEM_SLAB_OBJECTS {
        0
    } else {
        1 + PageUse::from_index(page_use) as usize
    }
}

/// Live bytes per use over the trace, as the change in each bucket of `2^shift` records of the
/// merged stream (by [`Rec::pos`]), so that shards that own different pointers add up bucket by
/// bucket and a peak of the sum can be read from the sum. The buckets double in size when there
/// would be more than [`Timeline::MAX_BUCKETS`]: memory stays bounded whatever the trace's
/// length, and peaks are read at bucket boundaries (the resolution the report states: every
/// record for traces of up to 16384 replayed records).
#[derive(Clone, Debug, Default)]
pub(super) struct Timeline {
    pub(super) shift: u32,
    pub(super) deltas: Vec<[i64; MEM_USES]>,
    /// The unwrapped position of the last record seen (`Rec::pos` wraps after 2^32).
    last: u64,
    /// Per use: allocations, frees, bytes allocated, bytes freed.
    pub(super) counts: [[u64; 4]; MEM_USES],
}

impl Timeline {
    /// The finest resolution: exact peaks (after every record) until the trace outgrows
    /// [`Self::MAX_BUCKETS`] records.
    pub(super) const MIN_SHIFT: u32 = 0;
    pub(super) const MAX_BUCKETS: usize = 1 << 14;

    fn new() -> Self {
        Timeline {
            shift: Self::MIN_SHIFT,
            ..Timeline::default()
        }
    }

    /// Add `delta` bytes live of `use_` at stream position `pos`.
    #[inline]
    fn add(&mut self, pos: u32, use_: usize, delta: i64) {
        let mut p = (self.last & !u64::from(u32::MAX)) | u64::from(pos);
        if p < self.last {
            p += 1 << 32;
        }
        self.last = p;
        let mut b = (p >> self.shift) as usize;
        while b >= Self::MAX_BUCKETS {
            self.coarsen();
            b = (p >> self.shift) as usize;
        }
        if b >= self.deltas.len() {
            self.deltas.resize(b + 1, [0; MEM_USES]);
        }
        self.deltas[b][use_] = self.deltas[b][use_].saturating_add(delta);
    }

    /// Halve the number of buckets (twice their size).
    fn coarsen(&mut self) {
        let d = std::mem::take(&mut self.deltas);
        self.deltas = d
            .chunks(2)
            .map(|c| {
                let mut s = c[0];
                if let Some(x) = c.get(1) {
                    for (a, b) in s.iter_mut().zip(x) {
                        *a = a.saturating_add(*b);
                    }
                }
                s
            })
            .collect();
        self.shift += 1;
    }

    /// Add another shard's timeline (at the coarser of the two resolutions).
    pub(super) fn merge(&mut self, mut b: Timeline) {
        if self.deltas.is_empty() && self.shift < b.shift {
            self.shift = b.shift;
        }
        while self.shift < b.shift {
            self.coarsen();
        }
        while b.shift < self.shift {
            b.coarsen();
        }
        if self.deltas.len() < b.deltas.len() {
            self.deltas.resize(b.deltas.len(), [0; MEM_USES]);
        }
        for (x, y) in self.deltas.iter_mut().zip(&b.deltas) {
            for (a, c) in x.iter_mut().zip(y) {
                *a = a.saturating_add(*c);
            }
        }
        for (x, y) in self.counts.iter_mut().zip(&b.counts) {
            for (a, c) in x.iter_mut().zip(y) {
                *a = a.saturating_add(*c);
            }
        }
        self.last = self.last.max(b.last);
    }
}

// The accumulators, named like the report's figures they become (`assemble`), each adding a
// shard's own kind with `+=` (`ReplayOut::merge`; `summable!` writes it for the flat ones).

summable! {
    /// One type's share of a call site (becomes a [`TypeSplit`]).
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct TypeAcc {
        pub(super) allocs: u64,
        pub(super) frees: u64,
        pub(super) bytes_requested: u64,
        pub(super) bytes_allocated: u64,
    }
}

/// One call site (becomes a [`SiteStats`]; the totals per site are summed from `types`).
#[derive(Clone, Debug, Default)]
pub(super) struct SiteAcc {
    pub(super) types: [TypeAcc; TYPE_COUNT],
    pub(super) freed: u64,
    pub(super) cross_cpu_frees: u64,
    pub(super) cross_cpu_allocs: u64,
    pub(super) mismatched_frees: u64,
    pub(super) live_allocations: u64,
    pub(super) live_bytes: u64,
}

impl std::ops::AddAssign<&SiteAcc> for SiteAcc {
    fn add_assign(&mut self, b: &SiteAcc) {
        for (x, y) in self.types.iter_mut().zip(&b.types) {
            *x += y;
        }
        self.freed += b.freed;
        self.cross_cpu_frees += b.cross_cpu_frees;
        self.cross_cpu_allocs += b.cross_cpu_allocs;
        self.mismatched_frees += b.mismatched_frees;
        self.live_allocations += b.live_allocations;
        self.live_bytes = self.live_bytes.saturating_add(b.live_bytes);
    }
}

/// One address (becomes an [`AllocRow`]). Shards own disjoint addresses: nothing to add.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PtrAcc {
    pub(super) hits: u64,
    pub(super) bytes_requested: u64,
    pub(super) bytes_allocated: u64,
    pub(super) cross_cpu_frees: u64,
    pub(super) site: u32,
    pub(super) live: bool,
}

summable! {
    /// One allocator family (becomes a [`TypeRow`]; all but `bytes_freed` summed from the sites').
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct TypeTotals {
        pub(super) allocs: u64,
        pub(super) frees: u64,
        pub(super) bytes_requested: u64,
        pub(super) bytes_allocated: u64,
        pub(super) bytes_freed: u64,
    }
}

summable! {
    /// One size class (becomes a [`SizeRow`]).
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct SizeAcc {
        pub(super) requests: u64,
        pub(super) bytes_requested: u64,
        pub(super) allocations: u64,
        pub(super) bytes_allocated: u64,
    }
}

summable! {
    /// One page order (becomes a [`PageOrderRow`]).
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct PageAcc {
        pub(super) allocs: u64,
        pub(super) frees: u64,
        pub(super) bytes_allocated: u64,
        pub(super) live_allocations: u64,
    }
}

/// Examples of one finding kind: the records, turned into [`Example`]s at the end.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub(super) count: u64,
    pub(super) examples: Vec<(Rec, Option<String>)>,
    /// Occurrences by site index.
    pub(super) by_site: Vec<u64>,
}

/// The replay state machine.
///
/// Open allocations live in two address spaces: slab objects (`kmalloc`, `kmem_cache`) and
/// pages. They overlap legitimately: a slab's first object has its page's address, and a large
/// kmalloc logs a page allocation and a kmalloc at the same address. A page record is matched
/// only with page records, a slab record only with slab records.
pub(super) struct Replay {
    pub(super) open: PtrTable<Open>,
    pub(super) open_pages: PtrTable<Open>,
    pub(super) sites: Vec<SiteAcc>,
    pub(super) ptrs: Option<PtrTable<PtrAcc>>,
    pub(super) nodes: Vec<i32>,
    pub(super) page_shift: u32,
    pub(super) pages: BTreeMap<u32, PageAcc>,
    pub(super) sizes: [SizeAcc; SIZE_CLASSES],
    pub(super) types: [TypeTotals; TYPE_COUNT],
    pub(super) s: Summary,
    pub(super) found: BTreeMap<FindingKind, Found>,
    pub(super) examples: usize,
    /// The allocator's rules (`crate::rules::table`), by allocation and free `type_id`.
    pub(super) rules: [[Verdict; TYPE_COUNT]; TYPE_COUNT],
    /// Live bytes by use over the trace (slab objects, slab pages, other pages, …).
    pub(super) timeline: Timeline,
}

impl Replay {
    /// A replay of at most `max_records` records (what sizes its tables to start with).
    pub(super) fn new(
        nodes: Vec<i32>,
        page_size: u64,
        alloc_rows: bool,
        examples: usize,
        max_records: u64,
        allocator: Allocator,
    ) -> Self {
        Replay {
            open: PtrTable::for_at_most(max_records),
            open_pages: PtrTable::for_at_most(max_records),
            sites: Vec::new(),
            ptrs: alloc_rows.then(|| PtrTable::dense_for_at_most(max_records)),
            nodes,
            page_shift: page_size.max(1).ilog2(),
            pages: BTreeMap::new(),
            sizes: [SizeAcc::default(); SIZE_CLASSES],
            types: Default::default(),
            s: Summary::default(),
            found: BTreeMap::new(),
            examples,
            rules: rules::table(allocator),
            timeline: Timeline::new(),
        }
    }

    /// The open-allocation table of a record's address space.
    #[inline(always)]
    fn table(&self, type_id: usize) -> &PtrTable<Open> {
        if type_id == AllocType::Pages as usize {
            &self.open_pages
        } else {
            &self.open
        }
    }

    #[inline(always)]
    fn table_mut(&mut self, type_id: usize) -> &mut PtrTable<Open> {
        if type_id == AllocType::Pages as usize {
            &mut self.open_pages
        } else {
            &mut self.open
        }
    }

    /// The other address space's table (slab objects for a page record, pages for a slab one).
    #[cold]
    fn other_table_mut(&mut self, type_id: usize) -> &mut PtrTable<Open> {
        if type_id == AllocType::Pages as usize {
            &mut self.open
        } else {
            &mut self.open_pages
        }
    }

    /// Count a finding; `detail` is only formatted for the examples kept (findings such as lost
    /// frees can number in the hundreds of thousands).
    #[cold]
    fn note(&mut self, kind: FindingKind, r: &Rec, detail: impl FnOnce() -> Option<String>) {
        let f = self.found.entry(kind).or_default();
        f.count += 1;
        let si = r.site as usize;
        if si >= f.by_site.len() {
            f.by_site.resize(si + 1, 0);
        }
        f.by_site[si] += 1;
        if f.examples.len() < self.examples {
            f.examples.push((*r, detail()));
        }
    }

    fn node_of(&self, cpu: u32) -> i32 {
        self.nodes.get(cpu as usize).copied().unwrap_or(0)
    }

    fn page_order(&self, bytes: u64) -> u32 {
        let pages = bytes.div_ceil(1u64 << self.page_shift).max(1);
        pages
            .checked_next_power_of_two()
            .map_or(64, u64::trailing_zeros)
    }

    /// Whether a slab object at `ptr` is a large kmalloc: its pages were just allocated there
    /// by a large-kmalloc function (the page record comes first).
    #[cold]
    fn is_large_kmalloc(&self, ptr: u64) -> bool {
        self.open_pages
            .get(ptr)
            .is_some_and(|o| o.page_use == PageUse::LargeKmalloc as u8)
    }

    /// Count an allocation (or free) of `bytes` of a use in the timeline.
    #[inline]
    fn count_live(&mut self, pos: u32, page_use: u8, bytes: u64, alloc: bool) {
        if page_use == MEM_LARGE_OBJECT {
            return;
        }
        let mi = mem_index(page_use);
        let c = &mut self.timeline.counts[mi];
        if alloc {
            c[0] += 1;
            c[2] = c[2].saturating_add(bytes);
            self.timeline.add(pos, mi, bytes_i64(bytes));
        } else {
            c[1] += 1;
            c[3] = c[3].saturating_add(bytes);
            self.timeline.add(pos, mi, -bytes_i64(bytes));
        }
    }

    /// Replay a batch, prefetching the table slot of the record a few places ahead.
    pub(super) fn batch(&mut self, b: &[Rec]) {
        const AHEAD: usize = 12;
        for (i, r) in b.iter().enumerate() {
            if let Some(n) = b.get(i + AHEAD) {
                self.table(n.type_id as usize).prefetch(n.ptr);
                if let Some(p) = &self.ptrs {
                    p.prefetch(n.ptr);
                }
            }
            self.record(r);
        }
    }

    #[inline]
    fn record(&mut self, r: &Rec) {
        let t = (r.type_id as usize).min(TYPE_COUNT - 1);
        let si = r.site;
        if si as usize >= self.sites.len() {
            self.sites.resize(si as usize + 1, SiteAcc::default());
        }
        // Allocation and free counts and byte sums are kept per site and type only; the totals
        // are summed from them at the end.
        if r.event_id == EVENT_ALLOC {
            let site = &mut self.sites[si as usize];
            let ta = &mut site.types[t];
            ta.allocs += 1;
            ta.bytes_requested = ta.bytes_requested.saturating_add(r.bytes_req);
            ta.bytes_allocated = ta.bytes_allocated.saturating_add(r.bytes_alloc);
            let sr = &mut self.sizes[size_class(r.bytes_req)];
            sr.requests += 1;
            sr.bytes_requested = sr.bytes_requested.saturating_add(r.bytes_req);
            let sa = &mut self.sizes[size_class(r.bytes_alloc)];
            sa.allocations += 1;
            sa.bytes_allocated = sa.bytes_allocated.saturating_add(r.bytes_alloc);
            if r.node != -1 && r.node != self.node_of(r.cpu) {
                self.s.cross_cpu_allocs += 1;
                self.sites[si as usize].cross_cpu_allocs += 1;
            }
            if r.bytes_req == 0 {
                self.s.zero_byte_requests += 1;
                self.note(FindingKind::ZeroByteRequest, r, || None);
            }
            if r.bytes_alloc < r.bytes_req {
                self.s.short_allocs += 1;
                let d = || {
                    Some(format!(
                        "bytes_req {} bytes_alloc {}",
                        r.bytes_req, r.bytes_alloc
                    ))
                };
                self.note(FindingKind::ShortAlloc, r, d);
            }
            if t == AllocType::Pages as usize {
                let o = self.page_order(r.bytes_alloc);
                let p = self.pages.entry(o).or_default();
                p.allocs += 1;
                p.bytes_allocated = p.bytes_allocated.saturating_add(r.bytes_alloc);
            }
            if r.ptr == 0 {
                self.s.failed_allocs += 1;
                return;
            }
            if let Some(p) = &mut self.ptrs {
                let a = p.entry(r.ptr);
                a.hits += 1;
                a.bytes_requested = a.bytes_requested.saturating_add(r.bytes_req);
                a.bytes_allocated = a.bytes_allocated.saturating_add(r.bytes_alloc);
                a.site = si;
                a.live = true;
            }
            let page_use = if t == AllocType::Pages as usize {
                r.page_use
            } else if r.bytes_alloc >> self.page_shift != 0 && self.is_large_kmalloc(r.ptr) {
                MEM_LARGE_OBJECT
            } else {
                MEM_SLAB_OBJECTS
            };
            self.count_live(r.pos, page_use, r.bytes_alloc, true);
            let new = Open {
                bytes_alloc: r.bytes_alloc,
                site: si,
                cpu: r.cpu,
                seq: r.seq,
                type_id: t as u8,
                page_use,
            };
            if let Some(old) = self.table_mut(t).insert(r.ptr, new) {
                // Freed unseen at some point: no longer live from here (not a free).
                if old.page_use != MEM_LARGE_OBJECT {
                    self.timeline
                        .add(r.pos, mem_index(old.page_use), -bytes_i64(old.bytes_alloc));
                }
                self.s.lost_frees += 1;
                let d = || {
                    Some(format!(
                        "still open from seq {} on cpu {}",
                        old.seq, old.cpu
                    ))
                };
                self.note(FindingKind::LostFree, r, d);
            }
        } else {
            self.sites[si as usize].types[t].frees += 1;
            if r.ptr == 0 {
                self.s.null_frees += 1;
                return;
            }
            // A free that finds nothing open in its own address space at its address but an
            // allocation of the other space there frees that one with the wrong family's free
            // (kfree() of pages, free_pages() of a slab object): a mismatched free by the rules.
            let Some(o) = self
                .table_mut(t)
                .remove(r.ptr)
                .or_else(|| self.other_table_mut(t).remove(r.ptr))
            else {
                self.s.unknown_frees += 1;
                self.note(FindingKind::UnknownFree, r, || None);
                return;
            };
            self.s.bytes_freed = self.s.bytes_freed.saturating_add(o.bytes_alloc);
            self.count_live(r.pos, o.page_use, o.bytes_alloc, false);
            let tt = &mut self.types[o.type_id as usize];
            tt.bytes_freed = tt.bytes_freed.saturating_add(o.bytes_alloc);
            let cross = o.cpu != r.cpu;
            let verdict = self.rules[o.type_id as usize][t];
            if verdict.rule == Some(Rule::CacheObjectKfreed) {
                self.s.cache_objects_kfreed += 1;
            }
            let mismatched = verdict.error;
            let site = &mut self.sites[o.site as usize];
            site.freed += 1;
            if cross {
                site.cross_cpu_frees += 1;
                self.s.cross_cpu_frees += 1;
            }
            if let Some(p) = &mut self.ptrs {
                let a = p.entry(r.ptr);
                a.live = false;
                a.cross_cpu_frees += cross as u64;
            }
            if o.type_id as usize == AllocType::Pages as usize {
                let order = self.page_order(o.bytes_alloc);
                self.pages.entry(order).or_default().frees += 1;
            }
            if mismatched {
                self.sites[o.site as usize].mismatched_frees += 1;
                self.s.mismatched_frees += 1;
                let d = || {
                    Some(format!(
                        "{} allocation (seq {} on cpu {}) freed as {}; rule {}: {}",
                        AllocType::ALL[o.type_id as usize].name(),
                        o.seq,
                        o.cpu,
                        AllocType::ALL[t].name(),
                        verdict.rule.map_or("", Rule::name),
                        verdict.rule.map_or("", Rule::description),
                    ))
                };
                self.note(FindingKind::MismatchedFree, r, d);
            }
        }
    }

    pub(super) fn finish(mut self, site_count: usize) -> ReplayOut {
        self.sites
            .resize(site_count.max(self.sites.len()), SiteAcc::default());
        for site in &self.sites {
            for (t, ta) in site.types.iter().enumerate() {
                let tt = &mut self.types[t];
                tt.allocs += ta.allocs;
                tt.frees += ta.frees;
                tt.bytes_requested = tt.bytes_requested.saturating_add(ta.bytes_requested);
                tt.bytes_allocated = tt.bytes_allocated.saturating_add(ta.bytes_allocated);
                self.s.allocs += ta.allocs;
                self.s.frees += ta.frees;
                self.s.bytes_requested = self.s.bytes_requested.saturating_add(ta.bytes_requested);
                self.s.bytes_allocated = self.s.bytes_allocated.saturating_add(ta.bytes_allocated);
            }
        }
        for (_, o) in self.open.iter().chain(self.open_pages.iter()) {
            self.s.live_allocations += 1;
            self.s.live_bytes = self.s.live_bytes.saturating_add(o.bytes_alloc);
            let site = &mut self.sites[o.site as usize];
            site.live_allocations += 1;
            site.live_bytes = site.live_bytes.saturating_add(o.bytes_alloc);
            if o.type_id as usize == AllocType::Pages as usize {
                let order = self.page_order(o.bytes_alloc);
                self.pages.entry(order).or_default().live_allocations += 1;
            }
        }
        let mut live_types = [(0u64, 0u64); TYPE_COUNT];
        for (_, o) in self.open.iter().chain(self.open_pages.iter()) {
            live_types[o.type_id as usize].0 += 1;
            live_types[o.type_id as usize].1 = live_types[o.type_id as usize]
                .1
                .saturating_add(o.bytes_alloc);
        }
        ReplayOut {
            live_types,
            r: self,
        }
    }
}

impl ReplayOut {
    /// Add another shard's figures (disjoint pointers) to this one's.
    pub(super) fn merge(mut self, b: ReplayOut) -> ReplayOut {
        let (a, mut r) = (&mut self.r, b.r);
        if a.sites.len() < r.sites.len() {
            a.sites.resize(r.sites.len(), SiteAcc::default());
        }
        for (x, y) in a.sites.iter_mut().zip(&r.sites) {
            *x += y;
        }
        for (x, y) in a.types.iter_mut().zip(&r.types) {
            *x += y;
        }
        for (x, y) in a.sizes.iter_mut().zip(&r.sizes) {
            *x += y;
        }
        for (o, p) in &r.pages {
            *a.pages.entry(*o).or_default() += p;
        }
        a.s += &r.s;
        a.timeline.merge(std::mem::take(&mut r.timeline));
        for (k, f) in r.found {
            let g = a.found.entry(k).or_default();
            g.count += f.count;
            g.examples.extend(f.examples);
            g.examples.sort_by_key(|e| e.0.pos);
            g.examples.truncate(a.examples);
            if g.by_site.len() < f.by_site.len() {
                g.by_site.resize(f.by_site.len(), 0);
            }
            for (x, y) in g.by_site.iter_mut().zip(&f.by_site) {
                *x += y;
            }
        }
        if let (Some(pa), Some(pb)) = (&mut a.ptrs, &mut r.ptrs) {
            // The shards' addresses are disjoint. Insert the smaller table into the larger one,
            // made big enough first: a table walks its keys in hash order, and inserting many of
            // them into a smaller table piles them into one ever-growing probe run.
            if pa.len() < pb.len() {
                std::mem::swap(pa, pb);
            }
            pa.reserve(pb.len());
            for (k, v) in pb.iter() {
                *pa.entry(k) = *v;
            }
        }
        for (x, y) in self.live_types.iter_mut().zip(&b.live_types) {
            x.0 += y.0;
            x.1 = x.1.saturating_add(y.1);
        }
        self
    }
}

pub(super) struct ReplayOut {
    pub(super) r: Replay,
    pub(super) live_types: [(u64, u64); TYPE_COUNT],
}
