// SPDX-License-Identifier: GPL-2.0-only
//! The merge: every CPU file decoded in place and merged by sequence number into [`Rec`]s.

use super::replay::Replay;
use super::{Rec, MAX_DAMAGE_LISTED};
use crate::abi::{self, ByteOrder};
use crate::glob::Glob;
use crate::input::TraceInput;
use crate::pageuse::{self, PageUse};
use crate::report::{Example, Gap, Summary};
use crate::scan::{self, DamageRegion, Ev, Item, Scanner};
use crate::symbols::{plain_name, Symbols};
use crate::table::PtrTable;
use std::collections::HashMap;

/// At most this many gaps are listed.
const MAX_GAPS_LISTED: usize = 20;
/// Bytes of a mapped file consumed before its pages are released.
const RELEASE_EVERY: usize = 8 << 20;

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
pub(super) struct Produced {
    /// The summary's figures that the merge counts (`records`, `lost_events`, the sequence and
    /// damage counts; the replay's are zero here).
    pub(super) s: Summary,
    /// Call-site addresses by site index.
    pub(super) sites: Vec<u64>,
    /// With stacks read: each site index's stack (outward from the call site; empty for the
    /// records without one). A call site and a stack make one site, so an address can have
    /// several indices. Empty when stacks are not read.
    pub(super) site_stacks: Vec<Box<[u64]>>,
    pub(super) damage: Vec<DamageRegion>,
    pub(super) unknown_examples: Vec<Example>,
    pub(super) records_per_file: Vec<u64>,
    pub(super) gaps: Vec<Gap>,
    pub(super) gap_count: u64,
    pub(super) dup_examples: Vec<Example>,
    pub(super) ooo_examples: Vec<Example>,
    pub(super) bad_seq_examples: Vec<Example>,
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

    /// The head record's stack feature, if it has one.
    fn stack_frames(&self) -> Option<impl Iterator<Item = u64> + '_> {
        let h = abi::header(self.data, self.offset, self.order)?;
        let base = abi::min_size(h.event_id)?;
        let end = self.offset.checked_add(h.event_size)?;
        if h.event_size <= base || end > self.data.len() {
            return None;
        }
        abi::stack_frames(&self.data[self.offset + base..end], self.order)
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
                    out.s.unknown_records += 1;
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
                    out.s.damaged_regions += 1;
                    out.s.damaged_bytes += length as u64;
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

/// The call-site filter (verdicts are cached per address by the producer's site table).
pub(super) struct Filter<'a> {
    pub(super) globs: Vec<Glob>,
    pub(super) symbols: &'a Symbols,
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
pub(super) fn produce(
    input: &TraceInput,
    order: ByteOrder,
    filter: Option<&Filter<'_>>,
    stacks: bool,
    examples: usize,
    shards: usize,
    batch_len: usize,
    replay: Option<&mut Replay>,
    send: impl FnMut(usize, Vec<Rec>) -> Option<Vec<Rec>>,
) -> Produced {
    let mut sites = SiteIndex {
        symbols: input.symbols.as_ref(),
        stacks,
        ..SiteIndex::default()
    };
    match order {
        ByteOrder::Little => produce_as::<false>(
            input, order, filter, &mut sites, examples, shards, batch_len, replay, send,
        ),
        ByteOrder::Big => produce_as::<true>(
            input, order, filter, &mut sites, examples, shards, batch_len, replay, send,
        ),
    }
}

/// [`produce`] for the byte order `BIG`.
#[allow(clippy::too_many_arguments)]
fn produce_as<const BIG: bool>(
    input: &TraceInput,
    order: ByteOrder,
    filter: Option<&Filter<'_>>,
    sites: &mut SiteIndex<'_>,
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

    // A fixed buffer filled by index: `Vec::push` would keep a reallocation path (and the
    // register spills around it) in the loop.
    let mut batch: Vec<Rec> = vec![Rec::default(); if shards == 0 { batch_len } else { 0 }];
    let mut batched = 0;
    // Records handed to the replay (those the filter keeps): their positions.
    let mut replayed: u64 = 0;
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
            out.s.records += 1;
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
            let site = if sites.stacks {
                sites.get_stacked(call_site, s.stack_frames(), &mut out, filter)
            } else {
                sites.get(call_site, &mut out.sites, filter)
            };
            if site == FILTERED {
                out.s.filtered_out += 1;
            } else {
                replayed += 1;
                let ev = s.head_as::<BIG>();
                let rec = Rec {
                    ptr: ev.ptr,
                    bytes_req: ev.bytes_req,
                    bytes_alloc: ev.bytes_alloc,
                    seq: ev.seq,
                    site,
                    cpu: s.cpu,
                    node: ev.node,
                    pos: replayed as u32,
                    event_id: ev.event_id,
                    type_id: ev.type_id,
                    page_use: sites.uses[site as usize],
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
struct SiteIndex<'a> {
    table: PtrTable<u32>,
    /// The index of call site 0, which the table cannot hold.
    zero: Option<u32>,
    /// Per site index, the [`PageUse`] of page allocations made there (from its function's
    /// name, so [`PageUse::Other`] for every site without `symbols`).
    uses: Vec<u8>,
    symbols: Option<&'a Symbols>,
    /// Read stacks: a call site with a stack is a site of its own.
    stacks: bool,
    /// `[call_site, frames…]` to site index, for the records with a stack.
    stacked: HashMap<Box<[u64]>, u32>,
    /// The key being looked up (reused).
    key: Vec<u64>,
}

impl Default for SiteIndex<'_> {
    fn default() -> Self {
        SiteIndex {
            table: PtrTable::with_bits(9),
            zero: None,
            uses: Vec::new(),
            symbols: None,
            stacks: false,
            stacked: HashMap::new(),
            key: Vec::new(),
        }
    }
}

impl SiteIndex<'_> {
    #[inline(always)]
    fn get(&mut self, call_site: u64, sites: &mut Vec<u64>, filter: Option<&Filter<'_>>) -> u32 {
        match self.table.get(call_site) {
            Some(i) => *i,
            None => self.add(call_site, sites, filter),
        }
    }

    /// The site of a call site with the stack `frames` (the call site's own without one); the
    /// filter judges the call site.
    fn get_stacked(
        &mut self,
        call_site: u64,
        frames: Option<impl Iterator<Item = u64>>,
        out: &mut Produced,
        filter: Option<&Filter<'_>>,
    ) -> u32 {
        let plain = self.get(call_site, &mut out.sites, filter);
        if out.site_stacks.len() < out.sites.len() {
            out.site_stacks.resize(out.sites.len(), Box::default());
        }
        if plain == FILTERED {
            return FILTERED;
        }
        self.key.clear();
        self.key.push(call_site);
        self.key.extend(frames.into_iter().flatten());
        if self.key.len() == 1 {
            return plain;
        }
        if let Some(&i) = self.stacked.get(self.key.as_slice()) {
            return i;
        }
        out.sites.push(call_site);
        out.site_stacks.push(self.key[1..].into());
        self.uses.push(self.uses[plain as usize]);
        let i = (out.sites.len() - 1) as u32;
        self.stacked.insert(self.key.as_slice().into(), i);
        i
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
            let page_use = self
                .symbols
                .and_then(|s| s.resolve(call_site))
                .map_or(PageUse::Other, |(name, _)| pageuse::classify(name));
            self.uses.push(page_use as u8);
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
    out.s.bad_seqs += 1;
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
        out.s.lost_events += (d - 1) as u64;
        out.gap_count += 1;
        if out.gaps.len() < MAX_GAPS_LISTED {
            out.gaps.push(Gap {
                after_seq: lseq,
                missing: (d - 1) as u64,
            });
        }
    } else if d == 0 {
        out.s.duplicate_seqs += 1;
        if out.dup_examples.len() < examples {
            out.dup_examples.push(example_of(ev, cpu, None));
        }
    } else {
        out.s.out_of_order_seqs += 1;
        if out.ooo_examples.len() < examples {
            out.ooo_examples
                .push(example_of(ev, cpu, Some(format!("after seq {lseq}"))));
        }
    }
}
