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
//!
//! One module per stage, meeting at two hand-off types: [`merge`] turns the files into [`Rec`]s
//! and a `Produced` (the sequence and damage accounting), [`replay`] turns `Rec`s into a
//! `ReplayOut` (allocator rules live in `Replay::record`), [`assemble`] turns both into the
//! [`Report`] (grouping of call sites into rows lives there). This module decides the byte order
//! and the filter and runs the stages on their threads.

mod assemble;
mod merge;
mod replay;
#[cfg(test)]
mod tests;

use crate::abi::ByteOrder;
use crate::error::{nothing_decodes, Error, Result};
use crate::glob::Glob;
use crate::input::TraceInput;
use crate::meta;
use crate::report::{
    parse_sort_keys, AllocatorSource, GroupBy, Report, DEFAULT_ALLOC_SORT, DEFAULT_SORT,
};
use crate::rules::Allocator;
use crate::scan;
use assemble::{build_report, Plan};
use merge::{produce, Filter};
use replay::{Replay, ReplayOut};

/// At most this many damaged regions are listed in a report (all are counted).
pub const MAX_DAMAGE_LISTED: usize = 100;
/// Records per replay batch (the replay prefetches table slots a few records ahead in a batch).
const BATCH: usize = 2048;
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
    /// Sort keys for rows (see [`crate::report::SORT_KEYS`]); empty means [`DEFAULT_SORT`], and
    /// [`crate::report::DEFAULT_ALLOC_SORT`] for the per-allocation rows.
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
    /// Judge frees by this allocator's rules instead of the one `meta.json` names.
    pub allocator: Option<Allocator>,
    /// What [`Report::groups`] holds: with `caller` or `stack` the merge reads each record's
    /// stack feature; with `callsite` or `function` it skips it, as a reader that does not know
    /// it would.
    pub group_by: GroupBy,
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
            allocator: None,
            group_by: GroupBy::Callsite,
        }
    }
}

/// A record as it leaves the producer: what the replay needs, in 48 bytes. The call site is
/// an index into [`merge::Produced::sites`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rec {
    pub ptr: u64,
    pub bytes_req: u64,
    pub bytes_alloc: u64,
    pub seq: i32,
    pub site: u32,
    pub cpu: u32,
    pub node: i32,
    /// Position among the replayed records of the merged stream (wraps after 2^32 records): to
    /// order examples from shards and to place changes of live memory in time.
    pub pos: u32,
    pub event_id: u8,
    pub type_id: u8,
    /// The call site's [`crate::pageuse::PageUse`] (meaningful for page allocations only).
    pub page_use: u8,
}

/// The replay shard of a pointer: pointers are independent of each other, so their records can
/// The allocator whose rules judge the frees, and where that came from: the option, else
/// `meta.json`, else [`Allocator::ASSUMED`]. A name in `meta.json` this version does not know is
/// [`Error::UnknownAllocator`] (judging by the wrong rules would be silently wrong).
fn judged_by(
    meta: Option<&meta::Meta>,
    option: Option<Allocator>,
) -> Result<(Allocator, AllocatorSource)> {
    if let Some(a) = option {
        return Ok((a, AllocatorSource::Option));
    }
    match meta.and_then(|m| m.allocator.as_deref()) {
        Some(name) => Allocator::parse(name)
            .map(|a| (a, AllocatorSource::Meta))
            .ok_or_else(|| Error::UnknownAllocator(name.to_string())),
        None => Ok((Allocator::ASSUMED, AllocatorSource::Assumed)),
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

/// Analyse a loaded trace.
///
/// Errors: files in different byte orders ([`Error::MixedByteOrder`], unless
/// [`AnalyzeOptions::endian`] is set), a call-site filter without symbols, a bad glob or sort key,
/// a trace of which not one record decodes ([`Error::NothingDecodes`]; an empty trace is not
/// one), and in strict mode any damage. Everything else wrong with the data is reported, not an
/// error.
pub fn analyze(input: &TraceInput, opts: &AnalyzeOptions) -> Result<Report> {
    let strings = |keys: &[&str]| keys.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (sort, alloc_sort) = if opts.sort.is_empty() {
        (strings(DEFAULT_SORT), strings(DEFAULT_ALLOC_SORT))
    } else {
        let keys = parse_sort_keys(&opts.sort)?;
        (keys.clone(), keys)
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
    let (allocator, allocator_source) = judged_by(meta, opts.allocator)?;
    // No record is shorter than a free.
    let max_records = input.total_bytes() / crate::abi::FREE_SIZE as u64;
    let new_replay = || {
        Replay::new(
            nodes.clone(),
            page_size,
            opts.alloc_rows,
            opts.examples,
            max_records,
            allocator,
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
                opts.group_by.needs_stacks(),
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
            opts.group_by.needs_stacks(),
            opts.examples,
            0,
            batch_len,
            Some(&mut replay),
            |_, _| None,
        );
        (produced, vec![replay])
    };

    // Every byte damage: not an empty trace (which has no bytes), but no trace at all.
    if let (0, 0, Some(d)) = (p.s.records, p.s.unknown_records, p.damage.first()) {
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
                more: p.s.damaged_regions - 1,
            });
        }
    }
    let sites = p.sites.len();
    let plan = Plan {
        sort,
        alloc_sort,
        detected,
        order,
        page_size,
        allocator,
        allocator_source,
    };
    Ok(build_report(
        input,
        opts,
        plan,
        p,
        replays
            .into_iter()
            .map(|r| r.finish(sites))
            .reduce(ReplayOut::merge)
            .expect("at least one replay shard"),
    ))
}
