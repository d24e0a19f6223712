// SPDX-License-Identifier: GPL-2.0-only
//! Analysis: per-file decoding, the merge by sequence number and the replay.
//!
//! Two stages. The *producer* decodes every CPU file straight from its bytes, merges the streams
//! by sequence number (serial-number arithmetic on the wrapping `i32`: each stream's numbers are
//! unwrapped to `i64` relative to the previous record of the stream, the first one relative to the
//! first record of the trace), accounts gaps and numbers the call sites. The *replay* keeps the
//! open allocations and the per-call-site figures; with [`AnalyzeOptions::parallel`] (the default)
//! it runs on [`AnalyzeOptions::replay_threads`] threads, each owning the pointers that hash to
//! it, and their figures are added at the end. Batches of records flow from the producer (the
//! calling thread) through bounded channels and are reused, and the mapped files' pages are
//! released as the merge passes them, so memory is proportional to open allocations and call
//! sites, never to the number of events.

use crate::abi::{AllocType, ByteOrder, EVENT_ALLOC, TYPE_COUNT};
use crate::error::{nothing_decodes, Error, Result};
use crate::glob::Glob;
use crate::input::TraceInput;
use crate::meta;
use crate::report::*;
use crate::scan::{self, DamageRegion, Ev, Item, Scanner};
use crate::symbols::{plain_name, Symbols};
use crate::table::PtrTable;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// At most this many damaged regions are listed in a report (all are counted).
pub const MAX_DAMAGE_LISTED: usize = 100;
/// At most this many gaps are listed.
const MAX_GAPS_LISTED: usize = 20;
/// Records per replay batch (the replay prefetches table slots a few records ahead in a batch).
const BATCH: usize = 2048;
/// Bytes of a mapped file consumed before its pages are released.
const RELEASE_EVERY: usize = 8 << 20;
/// Batches in flight to each replay thread.
const IN_FLIGHT: usize = 16;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Decode every file in this byte order instead of detecting it.
    pub endian: Option<ByteOrder>,
    /// Globs on call-site function names; when non-empty only matching records are replayed.
    pub callsite_filter: Vec<String>,
    /// Build per-address rows ([`Report::allocations`]).
    pub alloc_rows: bool,
    /// Turn damage into [`Error::Damaged`].
    pub strict: bool,
    /// Sort keys for rows (see [`SORT_KEYS`]); empty means [`DEFAULT_SORT`].
    pub sort: Vec<String>,
    /// Examples kept per finding.
    pub examples: usize,
    /// Replay on other threads than the decoding one (else everything runs on the caller's).
    pub parallel: bool,
    /// Replay threads when `parallel` (pointers are sharded between them; the decoder and merge
    /// run on the calling thread).
    pub replay_threads: usize,
    /// Records per batch handed from the merge to the replay (default 2048). Any value gives the
    /// same report; tests vary it to exercise the hand-over.
    pub batch_records: Option<usize>,
    /// Keep only the first N call-site, function and allocation rows (after sorting); `None`
    /// keeps all. Cheaper than [`Report::truncate_rows`] for `--alloc` on big traces.
    pub max_rows: Option<usize>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            endian: None,
            callsite_filter: Vec::new(),
            alloc_rows: false,
            strict: false,
            sort: Vec::new(),
            examples: 5,
            parallel: true,
            replay_threads: 2,
            batch_records: None,
            max_rows: None,
        }
    }
}

/// A record as it leaves the producer: what the replay needs, in 48 bytes. The call site is
/// an index into [`Produced::sites`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rec {
    pub ptr: u64,
    pub bytes_req: u64,
    pub bytes_alloc: u64,
    pub seq: i32,
    pub site: u32,
    pub cpu: u32,
    pub node: i32,
    /// Position in the merged stream (wraps after 2^32 records), to order examples from shards.
    pub pos: u32,
    pub event_id: u8,
    pub type_id: u8,
}

/// The replay shard of a pointer: pointers are independent of each other, so their records can
/// be replayed on different threads and the figures added up.
#[inline(always)]
fn shard_of(ptr: u64, shards: usize) -> usize {
    // Multiply-shift range reduction (no division on the hot path). The multiplier differs from
    // the pointer table's: with the same hash, a shard would only ever use part of its table.
    let h = ptr.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 32;
    ((h * shards as u64) >> 32) as usize
}

/// Site index of call sites the filter leaves out.
const FILTERED: u32 = u32::MAX;

/// Everything the producer learns besides the records.
#[derive(Debug, Default)]
struct Produced {
    /// Call-site addresses by site index.
    sites: Vec<u64>,
    damage: Vec<DamageRegion>,
    damage_total: u64,
    damage_bytes: u64,
    unknown_records: u64,
    unknown_examples: Vec<Example>,
    records_per_file: Vec<u64>,
    records: u64,
    filtered_out: u64,
    lost: u64,
    gaps: Vec<Gap>,
    gap_count: u64,
    dup: u64,
    dup_examples: Vec<Example>,
    ooo: u64,
    ooo_examples: Vec<Example>,
    bad_seq: u64,
    bad_seq_examples: Vec<Example>,
}

struct Stream<'a> {
    sc: Scanner<'a>,
    /// The file's bytes and byte order, to decode the head.
    data: &'a [u8],
    order: ByteOrder,
    file: usize,
    cpu: u32,
    /// Whether `offset`/`key` hold the next record.
    live: bool,
    /// The next record's unwrapped sequence number.
    key: i64,
    /// Whether the head's sequence number lies outside its neighbours' in this file (corrupt):
    /// it is then merged right after the previous record and left out of the sequence accounting.
    bad: bool,
    /// Byte offset of the head.
    offset: usize,
    /// The last sequence number judged good, and its key.
    good_seq: i32,
    good_key: i64,
    records: u64,
    released: usize,
}

/// A step within one file larger than this (or backwards) gets its number checked against the
/// next record's.
const SUSPICIOUS_STEP: u32 = 64;

impl Stream<'_> {
    /// The head record's fields.
    fn head(&self) -> Ev {
        scan::decode_at(self.data, self.offset, self.order)
    }

    /// The head record's fields, big-endian if `BIG` (the trace's byte order).
    #[inline(always)]
    fn head_as<const BIG: bool>(&self) -> Ev {
        scan::decode_as::<BIG>(self.data, self.offset)
    }

    /// The head record's call site and pointer.
    #[inline(always)]
    fn site_and_ptr<const BIG: bool>(&self) -> (u64, u64) {
        scan::site_and_ptr_as::<BIG>(self.data, self.offset)
    }

    /// Unwrap `seq` relative to the last good record of this stream (or to `base` for the
    /// first one) and make the record at `offset` the head.
    #[inline(always)]
    fn set_head(&mut self, seq: i32, offset: usize, base: &mut Option<i32>) {
        let d = seq.wrapping_sub(self.good_seq);
        if self.records == 0 {
            let b = *base.get_or_insert(seq);
            self.good_key = seq.wrapping_sub(b) as i64;
            self.good_seq = seq;
            self.key = self.good_key;
        } else if d as u32 > SUSPICIOUS_STEP && self.corrupt(d) {
            // Keep the record's place in its file; its number is not to be trusted.
            self.key = self.good_key;
            self.bad = true;
        } else {
            self.good_key += d as i64;
            self.good_seq = seq;
            self.key = self.good_key;
            self.bad = false;
        }
        self.records += 1;
        self.offset = offset;
        self.live = true;
    }

    /// Whether a record `d` numbers after the last good one is corrupt: the next record of the
    /// file is in order with the last good one but this one lies outside them.
    #[cold]
    fn corrupt(&self, d: i32) -> bool {
        let Some(next) = self.next_seq() else {
            return false;
        };
        let span = next.wrapping_sub(self.good_seq);
        span >= 0 && (d < 0 || d > span)
    }

    /// The sequence number of the record after the head, without consuming it.
    #[cold]
    fn next_seq(&self) -> Option<i32> {
        let mut sc = self.sc.clone();
        loop {
            match sc.next()? {
                Item::Rec { ev, .. } => return Some(ev.seq),
                _ => continue,
            }
        }
    }

    /// Advance to the next known record, accounting damage and unknown records in `out`.
    #[inline(always)]
    fn advance<const BIG: bool>(
        &mut self,
        input: &TraceInput,
        out: &mut Produced,
        base: &mut Option<i32>,
        examples: usize,
    ) {
        let at = self.sc.pos();
        if let Some(seq) = self.sc.next_plain_seq::<BIG>() {
            self.set_head(seq, at, base);
            if self.sc.pos() - self.released >= RELEASE_EVERY {
                self.release(input);
            }
            return;
        }
        self.advance_slow(input, out, base, examples);
    }

    #[cold]
    fn release(&mut self, input: &TraceInput) {
        let pos = self.sc.pos();
        let f = &input.files[self.file];
        f.release(self.released, pos);
        if self.live {
            f.prefault(pos, RELEASE_EVERY);
        }
        self.released = pos;
    }

    #[inline(never)]
    fn advance_slow(
        &mut self,
        input: &TraceInput,
        out: &mut Produced,
        base: &mut Option<i32>,
        examples: usize,
    ) {
        self.live = false;
        while let Some(item) = self.sc.next() {
            match item {
                Item::Rec { ev, offset } => {
                    self.set_head(ev.seq, offset, base);
                    break;
                }
                Item::Unknown {
                    offset,
                    event_id,
                    type_id,
                    size,
                } => {
                    out.unknown_records += 1;
                    if out.unknown_examples.len() < examples {
                        out.unknown_examples.push(Example {
                            file: Some(input.files[self.file].name.clone()),
                            offset: Some(offset as u64),
                            detail: Some(format!(
                                "event_id {event_id} type_id {type_id} event_size {size}"
                            )),
                            ..Example::default()
                        });
                    }
                }
                Item::Damage {
                    offset,
                    length,
                    kind,
                    detail,
                } => {
                    out.damage_total += 1;
                    out.damage_bytes += length as u64;
                    if out.damage.len() < MAX_DAMAGE_LISTED {
                        out.damage.push(DamageRegion {
                            file: input.files[self.file].name.clone(),
                            offset: offset as u64,
                            length: length as u64,
                            kind,
                            detail,
                        });
                    }
                }
            }
        }
        if !self.live {
            // Sorts after every live stream in the merge.
            self.key = i64::MAX;
        }
        if !self.live || self.sc.pos() - self.released >= RELEASE_EVERY {
            self.release(input);
        }
    }
}

/// Decide the byte order of each file and of the trace.
fn byte_orders(
    input: &TraceInput,
    opts: &AnalyzeOptions,
) -> Result<(Vec<Option<ByteOrder>>, ByteOrder)> {
    let detected: Vec<Option<ByteOrder>> = input
        .files
        .iter()
        .map(|f| scan::detect_byte_order(f.bytes()))
        .collect();
    if let Some(o) = opts.endian {
        return Ok((detected, o));
    }
    let names = |o: ByteOrder| -> Vec<String> {
        input
            .files
            .iter()
            .zip(&detected)
            .filter(|(_, d)| **d == Some(o))
            .map(|(f, _)| f.name.clone())
            .collect()
    };
    let (little, big) = (names(ByteOrder::Little), names(ByteOrder::Big));
    let order = match (little.is_empty(), big.is_empty()) {
        (false, false) => return Err(Error::MixedByteOrder { little, big }),
        (false, true) => ByteOrder::Little,
        (true, false) => ByteOrder::Big,
        (true, true) => input
            .meta
            .as_ref()
            .and_then(|m| m.byte_order)
            .unwrap_or(ByteOrder::Little),
    };
    Ok((detected, order))
}

/// The call-site filter (verdicts are cached per address by the producer's site table).
struct Filter<'a> {
    globs: Vec<Glob>,
    symbols: &'a Symbols,
}

impl Filter<'_> {
    fn pass(&self, call_site: u64) -> bool {
        match self.symbols.resolve(call_site) {
            Some((name, _)) => {
                let n = plain_name(name);
                self.globs.iter().any(|g| g.is_match(n) || g.is_match(name))
            }
            None => false,
        }
    }
}

fn example_of(ev: &Ev, cpu: u32, detail: Option<String>) -> Example {
    Example {
        seq: Some(ev.seq),
        cpu: Some(cpu),
        call_site: Some(ev.call_site),
        symbol: None,
        ptr: Some(ev.ptr),
        detail,
        ..Example::default()
    }
}

/// Decode every file, merge by sequence number, account sequence numbers and call sites. With a
/// `replay`, replay every record into it here, a batch at a time; else hand batches of each of
/// the `shards` shards' records to `send` (which returns an emptied batch to reuse, or `None` to
/// stop).
#[allow(clippy::too_many_arguments)]
fn produce(
    input: &TraceInput,
    order: ByteOrder,
    filter: Option<&Filter<'_>>,
    examples: usize,
    shards: usize,
    batch_len: usize,
    replay: Option<&mut Replay>,
    send: impl FnMut(usize, Vec<Rec>) -> Option<Vec<Rec>>,
) -> Produced {
    match order {
        ByteOrder::Little => produce_as::<false>(
            input, order, filter, examples, shards, batch_len, replay, send,
        ),
        ByteOrder::Big => produce_as::<true>(
            input, order, filter, examples, shards, batch_len, replay, send,
        ),
    }
}

/// [`produce`] for the byte order `BIG`.
#[allow(clippy::too_many_arguments)]
fn produce_as<const BIG: bool>(
    input: &TraceInput,
    order: ByteOrder,
    filter: Option<&Filter<'_>>,
    examples: usize,
    shards: usize,
    batch_len: usize,
    mut replay: Option<&mut Replay>,
    mut send: impl FnMut(usize, Vec<Rec>) -> Option<Vec<Rec>>,
) -> Produced {
    let shards = if replay.is_some() { 0 } else { shards.max(1) };
    let mut out = Produced::default();
    let mut streams: Vec<Stream<'_>> = input
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| Stream {
            sc: Scanner::new(f.bytes(), order),
            data: f.bytes(),
            order,
            file: i,
            cpu: f.cpu,
            live: false,
            key: 0,
            bad: false,
            offset: 0,
            good_seq: 0,
            good_key: 0,
            records: 0,
            released: 0,
        })
        .collect();
    let mut base: Option<i32> = None;
    for s in &mut streams {
        input.files[s.file].prefault(0, RELEASE_EVERY);
        s.advance::<BIG>(input, &mut out, &mut base, examples);
    }

    let mut sites = SiteIndex::default();
    // A fixed buffer filled by index: `Vec::push` would keep a reallocation path (and the
    // register spills around it) in the loop.
    let mut batch: Vec<Rec> = vec![Rec::default(); if shards == 0 { batch_len } else { 0 }];
    let mut batched = 0;
    // Batches for the shards' threads.
    let mut outgoing: Vec<Vec<Rec>> = (0..shards).map(|_| Vec::with_capacity(batch_len)).collect();
    let mut last: Option<(i64, i32)> = None;
    // Few streams: pick the smallest head for every record, without data-dependent branches
    // (CPUs interleave finely and a branch on "same stream again?" mispredicts). Many streams:
    // emit runs from the smallest head while it stays at or below the runner-up.
    let few = streams.len() <= 8;
    loop {
        let (i, second) = if let [a, b] = &streams[..] {
            // The usual two CPUs; ties go to the first, as below.
            ((b.key < a.key) as usize, i64::MIN)
        } else if few {
            let (mut bi, mut bk) = (0, i64::MAX);
            for (j, s) in streams.iter().enumerate() {
                let lt = s.key < bk;
                bi = if lt { j } else { bi };
                bk = if lt { s.key } else { bk };
            }
            (bi, i64::MIN)
        } else {
            let mut best: Option<(i64, usize)> = None;
            let mut second = i64::MAX;
            for (i, s) in streams.iter().enumerate() {
                if !s.live {
                    continue;
                }
                match best {
                    None => best = Some((s.key, i)),
                    Some((bk, _)) if s.key < bk => {
                        second = bk;
                        best = Some((s.key, i));
                    }
                    _ => second = second.min(s.key),
                }
            }
            (best.map_or(usize::MAX, |b| b.1), second)
        };
        let Some(s) = streams.get_mut(i).filter(|s| s.live) else {
            break;
        };
        // Emit the head (the smallest key), then more while at or below the runner-up.
        loop {
            let key = s.key;
            out.records += 1;
            if s.bad {
                note_bad_seq(&mut out, input, s, examples);
            } else {
                if let Some((lk, lseq)) = last {
                    let d = key - lk;
                    if d != 1 {
                        account_seq(&mut out, d, lseq, s, examples);
                    }
                }
                // A good head's sequence number is the stream's last good one.
                last = Some((key, s.good_seq));
            }
            let (call_site, ptr) = s.site_and_ptr::<BIG>();
            let site = sites.get(call_site, &mut out.sites, filter);
            if site == FILTERED {
                out.filtered_out += 1;
            } else {
                let ev = s.head_as::<BIG>();
                let rec = Rec {
                    ptr: ev.ptr,
                    bytes_req: ev.bytes_req,
                    bytes_alloc: ev.bytes_alloc,
                    seq: ev.seq,
                    site,
                    cpu: s.cpu,
                    node: ev.node,
                    pos: out.records as u32,
                    event_id: ev.event_id,
                    type_id: ev.type_id,
                };
                match shards {
                    0 => {
                        batch[batched] = rec;
                        batched += 1;
                        if batched == batch.len() {
                            if let Some(r) = replay.as_deref_mut() {
                                r.batch(&batch);
                            }
                            batched = 0;
                        }
                    }
                    n => {
                        let k = shard_of(ptr, n);
                        let b = &mut outgoing[k];
                        b.push(rec);
                        if b.len() >= batch_len {
                            match send(k, std::mem::take(b)) {
                                Some(mut e) => {
                                    e.clear();
                                    e.reserve(batch_len);
                                    *b = e;
                                }
                                None => return out,
                            }
                        }
                    }
                }
            }
            s.advance::<BIG>(input, &mut out, &mut base, examples);
            if !(s.live && s.key <= second) {
                break;
            }
        }
    }
    if let Some(r) = replay {
        r.batch(&batch[..batched]);
    }
    for (k, b) in outgoing.into_iter().enumerate() {
        if !b.is_empty() {
            send(k, b);
        }
    }
    out.records_per_file = streams.iter().map(|s| s.records).collect();
    out
}

/// Call-site addresses to site indices, numbered in order of first appearance; the filter's
/// verdict is cached as [`FILTERED`]. A small flat table: it is looked up once per record.
struct SiteIndex {
    table: PtrTable<u32>,
    /// The index of call site 0, which the table cannot hold.
    zero: Option<u32>,
}

impl Default for SiteIndex {
    fn default() -> Self {
        SiteIndex {
            table: PtrTable::with_bits(9),
            zero: None,
        }
    }
}

impl SiteIndex {
    #[inline(always)]
    fn get(&mut self, call_site: u64, sites: &mut Vec<u64>, filter: Option<&Filter<'_>>) -> u32 {
        match self.table.get(call_site) {
            Some(i) => *i,
            None => self.add(call_site, sites, filter),
        }
    }

    #[cold]
    #[inline(never)]
    fn add(&mut self, call_site: u64, sites: &mut Vec<u64>, filter: Option<&Filter<'_>>) -> u32 {
        if call_site == 0 {
            if let Some(i) = self.zero {
                return i;
            }
        }
        let i = if filter.is_none_or(|f| f.pass(call_site)) {
            sites.push(call_site);
            (sites.len() - 1) as u32
        } else {
            FILTERED
        };
        if call_site == 0 {
            self.zero = Some(i);
        } else {
            self.table.insert(call_site, i);
        }
        i
    }
}

/// A record whose sequence number is outside its file neighbours'.
#[cold]
#[inline(never)]
fn note_bad_seq(out: &mut Produced, input: &TraceInput, s: &Stream<'_>, examples: usize) {
    out.bad_seq += 1;
    if out.bad_seq_examples.len() < examples {
        let ev = s.head();
        let mut e = example_of(&ev, s.cpu, None);
        e.file = Some(input.files[s.file].name.clone());
        e.offset = Some(s.offset as u64);
        e.detail = Some(format!(
            "seq {} after seq {} and before seq {} in its file",
            ev.seq,
            s.good_seq,
            s.next_seq()
                .map_or_else(|| "none".to_string(), |x| x.to_string())
        ));
        out.bad_seq_examples.push(e);
    }
}

/// A step in the merged sequence other than +1 to the head of `s`: a gap, a duplicate or a step
/// back.
#[cold]
#[inline(never)]
fn account_seq(out: &mut Produced, d: i64, lseq: i32, s: &Stream<'_>, examples: usize) {
    let (ev, cpu) = (&s.head(), s.cpu);
    if d > 1 {
        out.lost += (d - 1) as u64;
        out.gap_count += 1;
        if out.gaps.len() < MAX_GAPS_LISTED {
            out.gaps.push(Gap {
                after_seq: lseq,
                missing: (d - 1) as u64,
            });
        }
    } else if d == 0 {
        out.dup += 1;
        if out.dup_examples.len() < examples {
            out.dup_examples.push(example_of(ev, cpu, None));
        }
    } else {
        out.ooo += 1;
        if out.ooo_examples.len() < examples {
            out.ooo_examples
                .push(example_of(ev, cpu, Some(format!("after seq {lseq}"))));
        }
    }
}

/// An open allocation.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    bytes_alloc: u64,
    site: u32,
    cpu: u32,
    seq: i32,
    type_id: u8,
}

#[derive(Clone, Copy, Debug, Default)]
struct TypeAcc {
    allocs: u64,
    frees: u64,
    req: u64,
    alloc: u64,
}

#[derive(Clone, Debug, Default)]
struct SiteAcc {
    types: [TypeAcc; TYPE_COUNT],
    freed: u64,
    cross_frees: u64,
    cross_allocs: u64,
    mismatched: u64,
    live: u64,
    live_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct PtrAcc {
    hits: u64,
    req: u64,
    alloc: u64,
    cross_frees: u64,
    site: u32,
    live: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct TypeTotals {
    allocs: u64,
    frees: u64,
    req: u64,
    alloc: u64,
    freed: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct SizeAcc {
    requests: u64,
    req: u64,
    allocations: u64,
    alloc: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct PageAcc {
    allocs: u64,
    frees: u64,
    bytes: u64,
    live: u64,
}

/// Examples of one finding kind: the records, turned into [`Example`]s at the end.
#[derive(Debug, Default)]
struct Found {
    count: u64,
    examples: Vec<(Rec, Option<String>)>,
    /// Occurrences by site index.
    by_site: Vec<u64>,
}

/// The replay state machine.
///
/// Open allocations live in two address spaces: slab objects (`kmalloc`, `kmem_cache`) and
/// pages. They overlap legitimately: a slab's first object has its page's address, and a large
/// kmalloc logs a page allocation and a kmalloc at the same address. A page record is matched
/// only with page records, a slab record only with slab records.
struct Replay {
    open: PtrTable<Open>,
    open_pages: PtrTable<Open>,
    sites: Vec<SiteAcc>,
    ptrs: Option<PtrTable<PtrAcc>>,
    nodes: Vec<i32>,
    page_shift: u32,
    pages: BTreeMap<u32, PageAcc>,
    sizes: [SizeAcc; SIZE_CLASSES],
    types: [TypeTotals; TYPE_COUNT],
    s: Summary,
    found: BTreeMap<FindingKind, Found>,
    examples: usize,
}

impl Replay {
    /// A replay of at most `max_records` records (what sizes its tables to start with).
    fn new(
        nodes: Vec<i32>,
        page_size: u64,
        alloc_rows: bool,
        examples: usize,
        max_records: u64,
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

    /// Replay a batch, prefetching the table slot of the record a few places ahead.
    fn batch(&mut self, b: &[Rec]) {
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
            ta.req = ta.req.saturating_add(r.bytes_req);
            ta.alloc = ta.alloc.saturating_add(r.bytes_alloc);
            let sr = &mut self.sizes[size_class(r.bytes_req)];
            sr.requests += 1;
            sr.req = sr.req.saturating_add(r.bytes_req);
            let sa = &mut self.sizes[size_class(r.bytes_alloc)];
            sa.allocations += 1;
            sa.alloc = sa.alloc.saturating_add(r.bytes_alloc);
            if r.node != -1 && r.node != self.node_of(r.cpu) {
                self.s.cross_cpu_allocs += 1;
                self.sites[si as usize].cross_allocs += 1;
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
                p.bytes = p.bytes.saturating_add(r.bytes_alloc);
            }
            if r.ptr == 0 {
                self.s.failed_allocs += 1;
                return;
            }
            if let Some(p) = &mut self.ptrs {
                let a = p.entry(r.ptr);
                a.hits += 1;
                a.req = a.req.saturating_add(r.bytes_req);
                a.alloc = a.alloc.saturating_add(r.bytes_alloc);
                a.site = si;
                a.live = true;
            }
            let new = Open {
                bytes_alloc: r.bytes_alloc,
                site: si,
                cpu: r.cpu,
                seq: r.seq,
                type_id: t as u8,
            };
            if let Some(old) = self.table_mut(t).insert(r.ptr, new) {
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
            let Some(o) = self.table_mut(t).remove(r.ptr) else {
                self.s.unknown_frees += 1;
                self.note(FindingKind::UnknownFree, r, || None);
                return;
            };
            self.s.bytes_freed = self.s.bytes_freed.saturating_add(o.bytes_alloc);
            self.types[o.type_id as usize].freed = self.types[o.type_id as usize]
                .freed
                .saturating_add(o.bytes_alloc);
            let cross = o.cpu != r.cpu;
            let mismatched = o.type_id as usize != t;
            let site = &mut self.sites[o.site as usize];
            site.freed += 1;
            if cross {
                site.cross_frees += 1;
                self.s.cross_cpu_frees += 1;
            }
            if let Some(p) = &mut self.ptrs {
                let a = p.entry(r.ptr);
                a.live = false;
                a.cross_frees += cross as u64;
            }
            if o.type_id as usize == AllocType::Pages as usize {
                let order = self.page_order(o.bytes_alloc);
                self.pages.entry(order).or_default().frees += 1;
            }
            if mismatched {
                self.sites[o.site as usize].mismatched += 1;
                self.s.mismatched_frees += 1;
                let d = || {
                    Some(format!(
                        "{} allocation (seq {} on cpu {}) freed as {}",
                        AllocType::ALL[o.type_id as usize].name(),
                        o.seq,
                        o.cpu,
                        AllocType::ALL[t].name()
                    ))
                };
                self.note(FindingKind::MismatchedFree, r, d);
            }
        }
    }

    fn finish(mut self, site_count: usize) -> ReplayOut {
        self.sites
            .resize(site_count.max(self.sites.len()), SiteAcc::default());
        for site in &self.sites {
            for (t, ta) in site.types.iter().enumerate() {
                let tt = &mut self.types[t];
                tt.allocs += ta.allocs;
                tt.frees += ta.frees;
                tt.req = tt.req.saturating_add(ta.req);
                tt.alloc = tt.alloc.saturating_add(ta.alloc);
                self.s.allocs += ta.allocs;
                self.s.frees += ta.frees;
                self.s.bytes_requested = self.s.bytes_requested.saturating_add(ta.req);
                self.s.bytes_allocated = self.s.bytes_allocated.saturating_add(ta.alloc);
            }
        }
        for (_, o) in self.open.iter().chain(self.open_pages.iter()) {
            self.s.live_allocations += 1;
            self.s.live_bytes = self.s.live_bytes.saturating_add(o.bytes_alloc);
            let site = &mut self.sites[o.site as usize];
            site.live += 1;
            site.live_bytes = site.live_bytes.saturating_add(o.bytes_alloc);
            if o.type_id as usize == AllocType::Pages as usize {
                let order = self.page_order(o.bytes_alloc);
                self.pages.entry(order).or_default().live += 1;
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
    fn merge(mut self, b: ReplayOut) -> ReplayOut {
        let (a, mut r) = (&mut self.r, b.r);
        if a.sites.len() < r.sites.len() {
            a.sites.resize(r.sites.len(), SiteAcc::default());
        }
        for (x, y) in a.sites.iter_mut().zip(&r.sites) {
            for (tx, ty) in x.types.iter_mut().zip(&y.types) {
                tx.allocs += ty.allocs;
                tx.frees += ty.frees;
                tx.req = tx.req.saturating_add(ty.req);
                tx.alloc = tx.alloc.saturating_add(ty.alloc);
            }
            x.freed += y.freed;
            x.cross_frees += y.cross_frees;
            x.cross_allocs += y.cross_allocs;
            x.mismatched += y.mismatched;
            x.live += y.live;
            x.live_bytes = x.live_bytes.saturating_add(y.live_bytes);
        }
        for (tx, ty) in a.types.iter_mut().zip(&r.types) {
            tx.allocs += ty.allocs;
            tx.frees += ty.frees;
            tx.req = tx.req.saturating_add(ty.req);
            tx.alloc = tx.alloc.saturating_add(ty.alloc);
            tx.freed = tx.freed.saturating_add(ty.freed);
        }
        for (x, y) in a.sizes.iter_mut().zip(&r.sizes) {
            x.requests += y.requests;
            x.req = x.req.saturating_add(y.req);
            x.allocations += y.allocations;
            x.alloc = x.alloc.saturating_add(y.alloc);
        }
        for (o, p) in &r.pages {
            let q = a.pages.entry(*o).or_default();
            q.allocs += p.allocs;
            q.frees += p.frees;
            q.bytes = q.bytes.saturating_add(p.bytes);
            q.live += p.live;
        }
        add_summary(&mut a.s, &r.s);
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

/// Add the replay-side fields of `b` to `a`.
fn add_summary(a: &mut Summary, b: &Summary) {
    a.allocs += b.allocs;
    a.frees += b.frees;
    a.bytes_requested = a.bytes_requested.saturating_add(b.bytes_requested);
    a.bytes_allocated = a.bytes_allocated.saturating_add(b.bytes_allocated);
    a.bytes_freed = a.bytes_freed.saturating_add(b.bytes_freed);
    a.cross_cpu_allocs += b.cross_cpu_allocs;
    a.cross_cpu_frees += b.cross_cpu_frees;
    a.null_frees += b.null_frees;
    a.unknown_frees += b.unknown_frees;
    a.mismatched_frees += b.mismatched_frees;
    a.live_allocations += b.live_allocations;
    a.live_bytes = a.live_bytes.saturating_add(b.live_bytes);
    a.lost_frees += b.lost_frees;
    a.failed_allocs += b.failed_allocs;
    a.short_allocs += b.short_allocs;
    a.zero_byte_requests += b.zero_byte_requests;
}

struct ReplayOut {
    r: Replay,
    live_types: [(u64, u64); TYPE_COUNT],
}

/// `allocated - requested`, clamped to `i64` (byte sums saturate on absurd input instead of
/// overflowing).
fn frag(allocated: u64, requested: u64) -> i64 {
    (allocated as i128 - requested as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn site_stats(a: &SiteAcc) -> SiteStats {
    let mut st = SiteStats {
        freed: a.freed,
        cross_cpu_frees: a.cross_frees,
        cross_cpu_allocs: a.cross_allocs,
        mismatched_frees: a.mismatched,
        live_allocations: a.live,
        live_bytes: a.live_bytes,
        ..SiteStats::default()
    };
    for (t, ta) in a.types.iter().enumerate() {
        st.hits += ta.allocs;
        st.bytes_requested = st.bytes_requested.saturating_add(ta.req);
        st.bytes_allocated = st.bytes_allocated.saturating_add(ta.alloc);
        st.frees += ta.frees;
        if ta.allocs + ta.frees > 0 {
            st.by_type.push(TypeSplit {
                type_id: AllocType::from_id(t as u8),
                allocs: ta.allocs,
                frees: ta.frees,
                bytes_requested: ta.req,
                bytes_allocated: ta.alloc,
            });
        }
    }
    st.fragmentation_bytes = frag(st.bytes_allocated, st.bytes_requested);
    st
}

fn add_stats(into: &mut SiteStats, s: &SiteStats) {
    into.hits += s.hits;
    into.bytes_requested = into.bytes_requested.saturating_add(s.bytes_requested);
    into.bytes_allocated = into.bytes_allocated.saturating_add(s.bytes_allocated);
    into.fragmentation_bytes = into
        .fragmentation_bytes
        .saturating_add(s.fragmentation_bytes);
    into.frees += s.frees;
    into.freed += s.freed;
    into.cross_cpu_frees += s.cross_cpu_frees;
    into.cross_cpu_allocs += s.cross_cpu_allocs;
    into.mismatched_frees += s.mismatched_frees;
    into.live_allocations += s.live_allocations;
    into.live_bytes = into.live_bytes.saturating_add(s.live_bytes);
    for t in &s.by_type {
        match into.by_type.iter_mut().find(|x| x.type_id == t.type_id) {
            Some(x) => {
                x.allocs += t.allocs;
                x.frees += t.frees;
                x.bytes_requested = x.bytes_requested.saturating_add(t.bytes_requested);
                x.bytes_allocated = x.bytes_allocated.saturating_add(t.bytes_allocated);
            }
            None => into.by_type.push(t.clone()),
        }
    }
    into.by_type.sort_by_key(|t| t.type_id);
}

/// Analyse a loaded trace.
///
/// Errors: files in different byte orders ([`Error::MixedByteOrder`], unless
/// [`AnalyzeOptions::endian`] is set), a call-site filter without symbols, a bad glob or sort key,
/// a trace of which not one record decodes ([`Error::NothingDecodes`]; an empty trace is not
/// one), and in strict mode any damage. Everything else wrong with the data is reported, not an
/// error.
pub fn analyze(input: &TraceInput, opts: &AnalyzeOptions) -> Result<Report> {
    let sort = if opts.sort.is_empty() {
        DEFAULT_SORT.iter().map(|s| s.to_string()).collect()
    } else {
        parse_sort_keys(&opts.sort)?
    };
    let (detected, order) = byte_orders(input, opts)?;
    let filter = if opts.callsite_filter.is_empty() {
        None
    } else {
        let globs = opts
            .callsite_filter
            .iter()
            .map(|g| Glob::new(g))
            .collect::<Result<Vec<_>>>()?;
        let symbols = input
            .symbols
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or(Error::FilterWithoutSymbols)?;
        Some(Filter { globs, symbols })
    };
    let meta = input.meta.as_ref();
    let max_cpu = input.files.iter().map(|f| f.cpu).max().unwrap_or(0) as usize;
    let nodes: Vec<i32> = (0..=max_cpu.min(1 << 16))
        .map(|c| meta::node_of(meta, c as u32))
        .collect();
    let page_size = meta
        .and_then(|m| m.page_size)
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    // No record is shorter than a free.
    let max_records = input.total_bytes() / crate::abi::FREE_SIZE as u64;
    let new_replay = || {
        Replay::new(
            nodes.clone(),
            page_size,
            opts.alloc_rows,
            opts.examples,
            max_records,
        )
    };
    let shards = if opts.parallel {
        opts.replay_threads.max(1)
    } else {
        1
    };
    let batch_len = opts.batch_records.unwrap_or(BATCH).max(1);

    let (p, replays) = if opts.parallel {
        std::thread::scope(|scope| {
            // Per shard: full batches go to its replay thread, emptied ones come back for reuse.
            let mut txs = Vec::new();
            let mut backs = Vec::new();
            let mut consumers = Vec::new();
            for _ in 0..shards {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Rec>>(IN_FLIGHT);
                let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<Rec>>(IN_FLIGHT + 2);
                let mut replay = new_replay();
                consumers.push(scope.spawn(move || {
                    for batch in rx {
                        replay.batch(&batch);
                        let _ = back_tx.try_send(batch);
                    }
                    replay
                }));
                txs.push(tx);
                backs.push(back_rx);
            }
            let produced = produce(
                input,
                order,
                filter.as_ref(),
                opts.examples,
                shards,
                batch_len,
                None,
                |k, b| {
                    txs[k].send(b).ok()?;
                    Some(backs[k].try_recv().unwrap_or_default())
                },
            );
            drop(txs);
            let replays: Vec<_> = consumers
                .into_iter()
                .map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect();
            (produced, replays)
        })
    } else {
        let mut replay = new_replay();
        let produced = produce(
            input,
            order,
            filter.as_ref(),
            opts.examples,
            0,
            batch_len,
            Some(&mut replay),
            |_, _| None,
        );
        (produced, vec![replay])
    };

    // Every byte damage: not an empty trace (which has no bytes), but no trace at all.
    if let (0, 0, Some(d)) = (p.records, p.unknown_records, p.damage.first()) {
        let files = input
            .files
            .iter()
            .map(|f| (f.name.clone(), f.bytes().len() as u64));
        return Err(nothing_decodes(files, order, d, input.dir.as_deref()));
    }
    if opts.strict {
        if let Some(d) = p.damage.first() {
            return Err(Error::Damaged {
                file: match &input.dir {
                    Some(dir) => dir.join(&d.file).display().to_string(),
                    None => d.file.clone(),
                },
                offset: d.offset,
                kind: d.kind.name(),
                detail: d.detail.clone(),
                more: p.damage_total - 1,
            });
        }
    }
    let sites = p.sites.len();
    Ok(build_report(
        input,
        opts,
        sort,
        detected,
        order,
        page_size,
        p,
        replays
            .into_iter()
            .map(|r| r.finish(sites))
            .reduce(ReplayOut::merge)
            .expect("at least one replay shard"),
    ))
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    input: &TraceInput,
    opts: &AnalyzeOptions,
    sort: Vec<String>,
    detected: Vec<Option<ByteOrder>>,
    order: ByteOrder,
    page_size: u64,
    p: Produced,
    out: ReplayOut,
) -> Report {
    let ReplayOut { r, live_types } = out;
    let syms = input.symbols.as_ref().filter(|s| !s.is_empty());
    let describe = |a: u64| syms.and_then(|s| s.describe(a));
    let meta = input.meta.as_ref();

    let mut summary = r.s.clone();
    summary.fragmentation_bytes = frag(summary.bytes_allocated, summary.bytes_requested);
    summary.lost_events = p.lost;
    summary.records = p.records;
    summary.filtered_out = p.filtered_out;
    summary.unknown_records = p.unknown_records;
    summary.duplicate_seqs = p.dup;
    summary.out_of_order_seqs = p.ooo;
    summary.bad_seqs = p.bad_seq;
    summary.damaged_regions = p.damage_total;
    summary.damaged_bytes = p.damage_bytes;

    let types = AllocType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tt = r.types[i];
            TypeRow {
                type_id: Some(*t),
                allocs: tt.allocs,
                frees: tt.frees,
                bytes_requested: tt.req,
                bytes_allocated: tt.alloc,
                bytes_freed: tt.freed,
                fragmentation_bytes: frag(tt.alloc, tt.req),
                live_allocations: live_types[i].0,
                live_bytes: live_types[i].1,
            }
        })
        .collect();

    let mut callsites: Vec<CallsiteRow> = r
        .sites
        .iter()
        .zip(&p.sites)
        .map(|(a, addr)| CallsiteRow {
            call_site: *addr,
            symbol: describe(*addr),
            stats: site_stats(a),
        })
        .collect();
    let mut functions = Vec::new();
    if let Some(s) = syms {
        let mut by_fn: BTreeMap<String, FunctionRow> = BTreeMap::new();
        for c in &callsites {
            let name = s
                .resolve(c.call_site)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| "[unknown]".into());
            let row = by_fn.entry(name.clone()).or_insert_with(|| FunctionRow {
                function: name,
                call_sites: 0,
                stats: SiteStats::default(),
            });
            row.call_sites += 1;
            add_stats(&mut row.stats, &c.stats);
        }
        functions = by_fn.into_values().collect();
    }
    sort_rows(&mut callsites, &sort);
    sort_rows(&mut functions, &sort);
    if let Some(n) = opts.max_rows {
        callsites.truncate(n);
        functions.truncate(n);
    }

    let allocations = r.ptrs.as_ref().map(|ptrs| {
        // Order by bytes, hits, address; only the rows kept get materialised. With a row limit
        // the best rows are picked in one pass, keeping the worst of them on top of a heap.
        let rank = |(ptr, a): (u64, &PtrAcc)| (Reverse(a.alloc), Reverse(a.hits), ptr);
        let used = ptrs.iter().filter(|(_, a)| a.hits > 0);
        let v: Vec<(u64, &PtrAcc)> = match opts.max_rows {
            Some(n) => {
                let mut best = BinaryHeap::with_capacity(n.saturating_add(1).min(1 << 16));
                for e in used {
                    let key = rank(e);
                    if best.len() < n {
                        best.push(key);
                    } else if let Some(mut worst) = best.peek_mut() {
                        if key < *worst {
                            *worst = key;
                        }
                    }
                }
                best.into_sorted_vec()
                    .into_iter()
                    .filter_map(|(_, _, ptr)| Some((ptr, ptrs.get(ptr)?)))
                    .collect()
            }
            None => {
                let mut v: Vec<(u64, &PtrAcc)> = used.collect();
                v.sort_unstable_by_key(|e| rank(*e));
                v
            }
        };
        v.into_iter()
            .map(|(ptr, a)| {
                let addr = p.sites[a.site as usize];
                AllocRow {
                    ptr,
                    hits: a.hits,
                    bytes_requested: a.req,
                    bytes_allocated: a.alloc,
                    fragmentation_bytes: frag(a.alloc, a.req),
                    cross_cpu_frees: a.cross_frees,
                    call_site: addr,
                    symbol: describe(addr),
                    live: a.live,
                }
            })
            .collect()
    });

    let pages = r
        .pages
        .iter()
        .map(|(o, a)| PageOrderRow {
            order: *o,
            allocs: a.allocs,
            frees: a.frees,
            bytes_allocated: a.bytes,
            live_allocations: a.live,
        })
        .collect();

    let sizes = r
        .sizes
        .iter()
        .enumerate()
        .filter(|(_, a)| a.requests + a.allocations > 0)
        .map(|(k, a)| {
            let (min, max) = size_class_bounds(k);
            SizeRow {
                min,
                max,
                requests: a.requests,
                bytes_requested: a.req,
                allocations: a.allocations,
                bytes_allocated: a.alloc,
            }
        })
        .collect();

    // Findings, in FindingKind order.
    let mut found: BTreeMap<FindingKind, (u64, Vec<Example>, Vec<FindingSite>)> = r
        .found
        .into_iter()
        .map(|(k, f)| {
            // The busiest call sites, then by address.
            let mut sites: Vec<FindingSite> = f
                .by_site
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .filter_map(|(i, &count)| {
                    Some(FindingSite {
                        call_site: *p.sites.get(i)?,
                        symbol: None,
                        count,
                    })
                })
                .collect();
            sites.sort_by_key(|x| (Reverse(x.count), x.call_site));
            sites.truncate(FINDING_SITES);
            let ex = f
                .examples
                .into_iter()
                .map(|(rec, detail)| Example {
                    seq: Some(rec.seq),
                    cpu: Some(rec.cpu),
                    call_site: p.sites.get(rec.site as usize).copied(),
                    symbol: None,
                    ptr: Some(rec.ptr),
                    detail,
                    ..Example::default()
                })
                .collect();
            (k, (f.count, ex, sites))
        })
        .collect();
    let mut put = |kind: FindingKind, count: u64, examples: Vec<Example>| {
        if count > 0 {
            found.insert(kind, (count, examples, Vec::new()));
        }
    };
    put(
        FindingKind::LostEvents,
        p.lost,
        p.gaps
            .iter()
            .take(opts.examples)
            .map(|g| Example {
                seq: Some(g.after_seq),
                detail: Some(format!(
                    "{} sequence numbers missing after {}",
                    g.missing, g.after_seq
                )),
                ..Example::default()
            })
            .collect(),
    );
    let overruns = meta.and_then(|m| m.total_overruns);
    put(
        FindingKind::Overruns,
        overruns.unwrap_or(0),
        vec![Example {
            detail: Some(format!("total_overruns = {} bytes", overruns.unwrap_or(0))),
            ..Example::default()
        }],
    );
    put(FindingKind::DuplicateSeq, p.dup, p.dup_examples);
    put(FindingKind::OutOfOrderSeq, p.ooo, p.ooo_examples);
    put(FindingKind::BadSeq, p.bad_seq, p.bad_seq_examples);
    put(
        FindingKind::DamagedRecords,
        p.damage_total,
        p.damage
            .iter()
            .take(opts.examples)
            .map(|d| Example {
                file: Some(d.file.clone()),
                offset: Some(d.offset),
                detail: Some(format!(
                    "{}: {} bytes: {}",
                    d.kind.name(),
                    d.length,
                    d.detail
                )),
                ..Example::default()
            })
            .collect(),
    );
    put(
        FindingKind::UnknownRecord,
        p.unknown_records,
        p.unknown_examples,
    );
    let mut meta_examples = Vec::new();
    if let Some(m) = meta {
        for f in &input.files {
            let listed = m.cpus.iter().find(|c| c.cpu == f.cpu).and_then(|c| c.bytes);
            if let Some(mb) = listed.filter(|mb| *mb != f.bytes().len() as u64) {
                meta_examples.push(Example {
                    file: Some(f.name.clone()),
                    offset: Some(mb.min(f.bytes().len() as u64)),
                    detail: Some(format!(
                        "meta.json says {mb} bytes for cpu {}, the file has {}",
                        f.cpu,
                        f.bytes().len()
                    )),
                    ..Example::default()
                });
            }
        }
    }
    if let Some(mo) = meta.and_then(|m| m.byte_order) {
        let disagree: Vec<&str> = input
            .files
            .iter()
            .zip(&detected)
            .filter(|(_, d)| d.is_some_and(|d| d != mo))
            .map(|(f, _)| f.name.as_str())
            .collect();
        meta_examples.extend(disagree.iter().map(|f| Example {
            file: Some(f.to_string()),
            detail: Some(format!(
                "meta.json says byte_order {mo}, the data is {}",
                mo.swapped()
            )),
            ..Example::default()
        }));
    }
    let meta_count = meta_examples.len() as u64;
    meta_examples.truncate(opts.examples);
    put(FindingKind::MetaMismatch, meta_count, meta_examples);
    let findings = found
        .into_iter()
        .map(|(kind, (count, examples, sites))| Finding {
            kind,
            count,
            description: kind.description().into(),
            by_call_site: sites
                .into_iter()
                .map(|mut x| {
                    x.symbol = describe(x.call_site);
                    x
                })
                .collect(),
            examples: examples
                .into_iter()
                .map(|mut e| {
                    if e.symbol.is_none() {
                        e.symbol = e.call_site.and_then(describe);
                    }
                    e
                })
                .collect(),
        })
        .collect();

    let files = input
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileInfo {
            file: f.name.clone(),
            cpu: f.cpu,
            node: meta::node_of(meta, f.cpu),
            bytes: f.bytes().len() as u64,
            records: p.records_per_file[i],
            detected_byte_order: detected[i],
        })
        .collect();

    Report {
        schema_version: SCHEMA_VERSION,
        trace: TraceInfo {
            directory: input.dir.as_ref().map(|d| d.display().to_string()),
            byte_order: Some(order),
            files,
            machine: meta.and_then(|m| m.machine.clone()),
            kernel_release: meta.and_then(|m| m.kernel_release.clone()),
            page_size,
            symbols: syms.is_some(),
            callsite_filter: opts.callsite_filter.clone(),
            sort,
        },
        summary,
        types,
        callsites,
        functions,
        allocations,
        pages,
        sizes,
        findings,
        lost: LostEvents {
            lost_events: p.lost,
            gaps: p.gap_count,
            examples: p.gaps,
            total_overruns: overruns,
            duplicate_seqs: p.dup,
            out_of_order_seqs: p.ooo,
        },
        damage: DamageReport {
            regions_total: p.damage_total,
            bytes: p.damage_bytes,
            regions: p.damage,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{AllocFields, Record};
    use crate::synth::{synth_in_memory, SynthOptions};

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
            free(4, Kmalloc, 0x300, 0xb000),               // mismatched (cache freed by kfree)
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
            assert_eq!(s.mismatched_frees, 1);
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
                    FindingKind::MismatchedFree,
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
}
