// SPDX-License-Identifier: GPL-2.0-only
//! The report: one aggregate value, serialised as the documented JSON contract
//! (`kmemtrace/docs/report-schema.md`), rendered as text by [`crate::render`].
//!
//! Everything except [`Report::trace`] depends only on the records, not on the byte order, the
//! directory or how the records were split into CPU files: two encodings of one trace give equal
//! reports once `trace` is set aside ([`Report::without_trace`]).

use crate::abi::{AllocType, ByteOrder};
use crate::error::{Error, Result};
use crate::rules::Allocator;
use crate::scan::DamageRegion;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A figure as a diff compares it: a count clamped into `i64`, or a signed byte difference.
pub trait Figure: Copy {
    /// The value as `i64` (counts beyond `i64::MAX` clamp).
    fn figure(self) -> i64;
}

impl Figure for u64 {
    fn figure(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}

impl Figure for i64 {
    fn figure(self) -> i64 {
        self
    }
}

/// The figures of a row type, named once: `figures!(Row: CONST, method => field, …)` gives
/// `Row::CONST`, the JSON names of the fields in output order, and `Row::method(&self)`, each
/// name with its value. The names are the field names, so a name and its value cannot part;
/// `report::tests::figure_lists_match_the_serialised_keys` checks each list against the JSON.
macro_rules! figures {
    ($row:ty: $names:ident, $values:ident => $($f:ident),+ $(,)?) => {
        impl $row {
            /// The figures a diff compares, in output order (their JSON names).
            pub const $names: &'static [&'static str] = &[$(stringify!($f)),+];
            /// Each figure with its value, in the order of the list beside it.
            pub fn $values(&self) -> Vec<(&'static str, i64)> {
                vec![$((stringify!($f), Figure::figure(self.$f))),+]
            }
        }
    };
}

/// A struct of counters that add up: declared through this macro it gets `+=` (saturating,
/// field by field), so a new counter is one field. Used for [`Summary`] (through `counters!`)
/// and the replay's accumulators.
macro_rules! summable {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fm:meta])* $fvis:vis $f:ident: $t:ty,)+
        }
    ) => {
        $(#[$m])*
        $vis struct $name {
            $($(#[$fm])* $fvis $f: $t,)+
        }

        impl std::ops::AddAssign<&$name> for $name {
            fn add_assign(&mut self, b: &$name) {
                $(self.$f = self.$f.saturating_add(b.$f);)+
            }
        }
    };
}
pub(crate) use summable;

/// [`summable!`] for a public struct of figures: also its figure list (`FIELDS`, `fields()`,
/// every field in declaration order).
macro_rules! counters {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $($(#[$fm:meta])* pub $f:ident: $t:ty,)+
        }
    ) => {
        summable! {
            $(#[$m])*
            pub struct $name {
                $($(#[$fm])* pub $f: $t,)+
            }
        }

        figures!($name: FIELDS, fields => $($f),+);
    };
}

/// Version of the JSON schema; bumped when the meaning of an existing key changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Addresses are written as `"0x…"` strings in JSON (64-bit values do not survive every JSON
/// reader as numbers).
pub mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise as `0x` + lower-case hex.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    /// Accept `"0x…"` strings (and plain numbers).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(n),
            Either::S(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
                .map_err(serde::de::Error::custom),
        }
    }
}

mod hex_u64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::hex_u64::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::hex_u64")] u64);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

/// The whole analysis of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where the records came from (the only byte-order and location dependent part).
    pub trace: TraceInfo,
    /// Whole-trace totals: the contract's fixed field names.
    pub summary: Summary,
    /// Totals per allocator family (`kmalloc`, `kmem_cache`, `pages`).
    pub types: Vec<TypeRow>,
    /// One row per call-site address, sorted by the sort keys.
    pub callsites: Vec<CallsiteRow>,
    /// Call sites grouped by function name (empty without symbols), sorted by the sort keys.
    pub functions: Vec<FunctionRow>,
    /// Per-address rows (`--alloc`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<Vec<AllocRow>>,
    /// Page allocator (type 2) figures by order.
    pub pages: Vec<PageOrderRow>,
    /// Allocations by size class (powers of two): how many requests fell in each class against
    /// how many allocations did, so that rounding up to the allocator's sizes shows. Absent from
    /// reports written before it existed (read as empty).
    #[serde(default)]
    pub sizes: Vec<SizeRow>,
    /// Each kind of inconsistent behaviour seen, with a count and examples.
    pub findings: Vec<Finding>,
    /// Sequence-number accounting.
    pub lost: LostEvents,
    /// Damaged byte ranges.
    pub damage: DamageReport,
    /// Memory by use: slab objects, and the page allocator's pages by what they are for, with
    /// live and peak bytes and the slab allocator's overhead. Absent from reports written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// With `--group-by caller` or `stack`: the allocations grouped by the frame they are
    /// charged to or by their whole stack. Absent otherwise (and from reports written before
    /// it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupTable>,
}

/// What the rows of a report are grouped by (`--group-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The call site's address (the allocator's caller): the historical report.
    #[default]
    Callsite,
    /// The first frame outside the allocation wrappers (`crate::callers::WRAPPERS`), from the
    /// stack feature; the call site when a record has no stack.
    Caller,
    /// The call site and its whole stack.
    Stack,
    /// The call site's function, offsets folded (the `functions` rows).
    Function,
}

impl GroupBy {
    /// The names `--group-by` takes.
    pub const NAMES: [&'static str; 4] = ["callsite", "caller", "stack", "function"];

    /// The value `--group-by NAME` means.
    pub fn parse(name: &str) -> Option<GroupBy> {
        Some(match name {
            "callsite" => GroupBy::Callsite,
            "caller" => GroupBy::Caller,
            "stack" => GroupBy::Stack,
            "function" => GroupBy::Function,
            _ => return None,
        })
    }

    /// Whether the merge must read the stack feature for it.
    pub fn needs_stacks(self) -> bool {
        matches!(self, GroupBy::Caller | GroupBy::Stack)
    }
}

/// The rows of a `--group-by caller|stack` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTable {
    /// `caller` or `stack`.
    pub by: GroupBy,
    /// Records whose call site had a stack (the others are grouped by their call site alone).
    pub sites_with_stacks: u64,
    /// Sorted by the sort keys.
    pub rows: Vec<GroupRow>,
}

/// One group: a caller's function, or one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The caller's function (`caller`), or the frames joined by `;`, outermost first, as
    /// collapsed stacks write them (`stack`; `function+0xoff` each).
    pub key: String,
    /// `stack`: the frames, the call site first, then outward (`function+0xoff`, or the address
    /// in hex when it does not resolve). Empty for `caller`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
    /// `stack`: the frames' addresses, in the order of `frames` (for `--format pprof`; not in
    /// the JSON, whose `frames` say it).
    #[serde(skip)]
    pub addrs: Vec<u64>,
    /// Distinct call-site addresses in the group.
    pub call_sites: u64,
    /// The figures, summed.
    #[serde(flatten)]
    pub stats: SiteStats,
}

impl Report {
    /// The report with `trace` cleared: what must be equal for two encodings of one trace.
    pub fn without_trace(&self) -> Report {
        Report {
            trace: TraceInfo::default(),
            ..self.clone()
        }
    }

    /// Keep the first `n` call-site, function and allocation rows.
    pub fn truncate_rows(&mut self, n: usize) {
        self.callsites.truncate(n);
        self.functions.truncate(n);
        if let Some(g) = &mut self.groups {
            g.rows.truncate(n);
        }
        if let Some(a) = &mut self.allocations {
            a.truncate(n);
        }
    }

    /// Parse `report.json` bytes (what [`Report::to_json`] writes; unknown keys are ignored).
    /// Nothing is checked beyond the shape: a report is data, and a side of `diff`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Pretty JSON (with a final newline).
    pub fn to_json(&self) -> String {
        let mut v = Vec::new();
        self.write_json(&mut v)
            .expect("a Report serialises into memory");
        String::from_utf8(v).expect("JSON is UTF-8")
    }

    /// [`Report::to_json`] written to `w` as it is produced: with `--alloc` on a big trace the
    /// text is hundreds of megabytes, which need not all be held at once.
    pub fn write_json(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut w, self)?;
        w.write_all(b"\n")?;
        w.flush()
    }
}

/// Provenance of the analysed records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceInfo {
    /// The trace directory, when the files came from one (file names below are relative to it).
    #[serde(default)]
    pub directory: Option<String>,
    /// Byte order the records were decoded in.
    pub byte_order: Option<ByteOrder>,
    /// One entry per CPU file.
    pub files: Vec<FileInfo>,
    /// `machine` from the metadata.
    pub machine: Option<String>,
    /// `kernel_release` from the metadata.
    pub kernel_release: Option<String>,
    /// The slab allocator whose rules judged the frees (`crate::rules`); absent from reports
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator: Option<Allocator>,
    /// Where [`TraceInfo::allocator`] came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator_source: Option<AllocatorSource>,
    /// Page size used for page orders.
    pub page_size: u64,
    /// Whether symbols were available.
    pub symbols: bool,
    /// The call-site filter globs (empty: every record).
    pub callsite_filter: Vec<String>,
    /// The sort keys applied to the rows.
    pub sort: Vec<String>,
}

/// Where the allocator that judged the frees came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocatorSource {
    /// `meta.json`'s `allocator` (the traced kernel's debugfs `kmemtrace/allocator`).
    Meta,
    /// `--allocator` (the option overrides `meta.json`).
    Option,
    /// The trace does not say: [`Allocator::ASSUMED`] (SLUB, the only allocator since 6.8).
    Assumed,
}

impl AllocatorSource {
    /// How reports say it.
    pub fn describe(self) -> &'static str {
        match self {
            AllocatorSource::Meta => "from meta.json",
            AllocatorSource::Option => "from --allocator",
            AllocatorSource::Assumed => {
                "assumed: the trace does not say; SLUB is the only allocator since Linux 6.8"
            }
        }
    }
}

/// One CPU file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Name as loaded.
    pub file: String,
    /// CPU that logged it.
    pub cpu: u32,
    /// NUMA node of that CPU (0 when the metadata does not say).
    pub node: i32,
    /// Size in bytes.
    pub bytes: u64,
    /// Known records decoded from it.
    pub records: u64,
    /// Byte order detected from its `event_size` fields (`null`: empty or undecodable).
    pub detected_byte_order: Option<ByteOrder>,
}

counters! {
    /// Whole-trace totals. Field names are a contract.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Summary {
        /// Allocation records replayed (failed ones, `ptr == 0`, included).
        pub allocs: u64,
        /// Free records replayed (NULL and unknown frees included).
        pub frees: u64,
        /// Sum of `bytes_req` over allocations.
        pub bytes_requested: u64,
        /// Sum of `bytes_alloc` over allocations.
        pub bytes_allocated: u64,
        /// Sum of `bytes_alloc` of the allocations that frees closed.
        pub bytes_freed: u64,
        /// `bytes_allocated - bytes_requested` (negative only with short allocations).
        pub fragmentation_bytes: i64,
        /// Allocations whose `numa_node` is neither -1 nor the logging CPU's node.
        pub cross_cpu_allocs: u64,
        /// Frees logged on another CPU than their allocation.
        pub cross_cpu_frees: u64,
        /// Frees of `ptr == 0`.
        pub null_frees: u64,
        /// Frees of a non-NULL `ptr` with no open allocation.
        pub unknown_frees: u64,
        /// Frees that are errors under the trace's allocator (`crate::rules`): another family's
        /// free than the allocation's, except `kfree()` of a `kmem_cache_alloc()` object on SLAB
        /// and SLUB.
        pub mismatched_frees: u64,
        /// `kmem_cache_alloc()` objects freed with `kfree()` (allowed on SLAB and SLUB; on SLOB
        /// also counted in `mismatched_frees`).
        #[serde(default)]
        pub cache_objects_kfreed: u64,
        /// Allocations still open at the end.
        pub live_allocations: u64,
        /// `bytes_alloc` of the allocations still open at the end.
        pub live_bytes: u64,
        /// Sequence numbers missing from the merged stream.
        pub lost_events: u64,
        /// Allocations at a `ptr` that was still open: the earlier allocation's free was lost.
        pub lost_frees: u64,
        /// Allocations that returned NULL (`ptr == 0`).
        pub failed_allocs: u64,
        /// Allocations with `bytes_alloc < bytes_req`.
        pub short_allocs: u64,
        /// Allocations with `bytes_req == 0`.
        pub zero_byte_requests: u64,
        /// Known records decoded (before the call-site filter).
        pub records: u64,
        /// Records left out by the call-site filter.
        pub filtered_out: u64,
        /// Well-framed records with an unknown event or type id, skipped.
        pub unknown_records: u64,
        /// Sequence numbers seen more than once.
        pub duplicate_seqs: u64,
        /// Records whose sequence number is lower than the one before in the merged stream.
        pub out_of_order_seqs: u64,
        /// Records whose sequence number lies outside the numbers of the records before and after
        /// them in their own file (a corrupt number): replayed in their file's order, left out of the
        /// sequence accounting.
        #[serde(default)]
        pub bad_seqs: u64,
        /// Damaged regions.
        pub damaged_regions: u64,
        /// Bytes in damaged regions.
        pub damaged_bytes: u64,
    }
}

/// Per allocator family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRow {
    /// `kmalloc`, `kmem_cache` or `pages`.
    #[serde(rename = "type")]
    pub type_id: Option<AllocType>,
    /// Allocation records of this type.
    pub allocs: u64,
    /// Free records of this type.
    pub frees: u64,
    /// Sum of `bytes_req`.
    pub bytes_requested: u64,
    /// Sum of `bytes_alloc`.
    pub bytes_allocated: u64,
    /// `bytes_alloc` of this type's allocations closed by a free.
    pub bytes_freed: u64,
    /// `bytes_allocated - bytes_requested`.
    pub fragmentation_bytes: i64,
    /// Open at the end.
    pub live_allocations: u64,
    /// Bytes open at the end.
    pub live_bytes: u64,
}

figures!(TypeRow: FIELDS, fields =>
    allocs, frees, bytes_requested, bytes_allocated, bytes_freed, fragmentation_bytes,
    live_allocations, live_bytes);

/// Figures of one call site (or one function), split by type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStats {
    /// Allocations made here.
    pub hits: u64,
    /// Sum of `bytes_req` of those.
    pub bytes_requested: u64,
    /// Sum of `bytes_alloc` of those.
    pub bytes_allocated: u64,
    /// `bytes_allocated - bytes_requested`.
    pub fragmentation_bytes: i64,
    /// Free records logged here (a `kfree` call site).
    pub frees: u64,
    /// Allocations made here that a free closed.
    pub freed: u64,
    /// Allocations made here freed on another CPU ("ping-pong").
    pub cross_cpu_frees: u64,
    /// Allocations made here for another node than the logging CPU's.
    pub cross_cpu_allocs: u64,
    /// Allocations made here freed with another type's free.
    pub mismatched_frees: u64,
    /// Allocations made here still open at the end.
    pub live_allocations: u64,
    /// Their `bytes_alloc`.
    pub live_bytes: u64,
    /// The same figures per type (types with no record here left out).
    pub by_type: Vec<TypeSplit>,
}

// A diff compares these six of a call site's figures (the text and markdown columns).
figures!(SiteStats: COMPARED, compared =>
    hits, bytes_requested, bytes_allocated, fragmentation_bytes, cross_cpu_frees, frees);

impl std::ops::AddAssign<&SiteStats> for SiteStats {
    /// Add another call site's figures (a function's rows sum their call sites').
    fn add_assign(&mut self, s: &SiteStats) {
        self.hits += s.hits;
        self.bytes_requested = self.bytes_requested.saturating_add(s.bytes_requested);
        self.bytes_allocated = self.bytes_allocated.saturating_add(s.bytes_allocated);
        self.fragmentation_bytes = self
            .fragmentation_bytes
            .saturating_add(s.fragmentation_bytes);
        self.frees += s.frees;
        self.freed += s.freed;
        self.cross_cpu_frees += s.cross_cpu_frees;
        self.cross_cpu_allocs += s.cross_cpu_allocs;
        self.mismatched_frees += s.mismatched_frees;
        self.live_allocations += s.live_allocations;
        self.live_bytes = self.live_bytes.saturating_add(s.live_bytes);
        for t in &s.by_type {
            match self.by_type.iter_mut().find(|x| x.type_id == t.type_id) {
                Some(x) => *x += t,
                None => self.by_type.push(t.clone()),
            }
        }
        self.by_type.sort_by_key(|t| t.type_id);
    }
}

/// One type's share of a call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSplit {
    /// The type.
    #[serde(rename = "type")]
    pub type_id: Option<AllocType>,
    /// Allocations.
    pub allocs: u64,
    /// Frees logged here.
    pub frees: u64,
    /// Sum of `bytes_req`.
    pub bytes_requested: u64,
    /// Sum of `bytes_alloc`.
    pub bytes_allocated: u64,
}

impl std::ops::AddAssign<&TypeSplit> for TypeSplit {
    /// Add the same type's share of another call site.
    fn add_assign(&mut self, t: &TypeSplit) {
        self.allocs += t.allocs;
        self.frees += t.frees;
        self.bytes_requested = self.bytes_requested.saturating_add(t.bytes_requested);
        self.bytes_allocated = self.bytes_allocated.saturating_add(t.bytes_allocated);
    }
}

/// One call-site address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsiteRow {
    /// The return address.
    #[serde(with = "hex_u64")]
    pub call_site: u64,
    /// `function+0xoffset`, when symbols are available.
    pub symbol: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub stats: SiteStats,
}

/// All call sites inside one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRow {
    /// Function name (`[unknown]` for addresses below every symbol).
    pub function: String,
    /// Distinct call-site addresses.
    pub call_sites: u64,
    /// The figures, summed.
    #[serde(flatten)]
    pub stats: SiteStats,
}

/// All allocations that were made at one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocRow {
    /// The address.
    #[serde(with = "hex_u64")]
    pub ptr: u64,
    /// Allocations at it.
    pub hits: u64,
    /// Sum of `bytes_req`.
    pub bytes_requested: u64,
    /// Sum of `bytes_alloc`.
    pub bytes_allocated: u64,
    /// `bytes_allocated - bytes_requested`.
    pub fragmentation_bytes: i64,
    /// Frees on another CPU than the allocation.
    pub cross_cpu_frees: u64,
    /// Call site of the last allocation at this address.
    #[serde(with = "hex_u64")]
    pub call_site: u64,
    /// Its symbol.
    pub symbol: Option<String>,
    /// Whether an allocation at this address is open at the end.
    pub live: bool,
}

/// Memory by use, so that slab objects and the pages that hold them are not added together.
///
/// Every figure counts the allocations made during the trace (as `live_bytes` does): memory
/// allocated before tracing started is not seen, so `slab_overhead_bytes` is the change over
/// the trace, exact only for a trace from boot, and may be negative (objects placed in slabs
/// the trace did not see being made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Whether page allocations were told apart by their caller (`crate::pageuse::TABLE`):
    /// this needs symbols; without them every page allocation is `other_pages` and the slab
    /// figures below are absent.
    pub pages_classified: bool,
    /// Peaks are read every this many replayed records of the merged stream: 1 (exact) up to
    /// 16384 records, then the power of two that keeps 16384 samples at most, so that memory
    /// stays bounded however long the trace is.
    pub peak_resolution_records: u64,
    /// `slab_objects` (kmalloc and kmem_cache objects in slabs; a large kmalloc, recognised by
    /// its pages at its address, counts in `large_kmalloc_pages` only), then one row per page
    /// use: `slab_pages`, `large_kmalloc_pages`, `tracer_pages`, `other_pages`.
    pub uses: Vec<MemoryRow>,
    /// At the end: live slab pages minus the live slab objects (the objects they hold).
    pub slab_overhead_bytes: Option<i64>,
    /// The same at its highest sample.
    pub peak_slab_overhead_bytes: Option<i64>,
    /// The peak of live pages of every use but the tracer's: memory taken from the page
    /// allocator (slab pages hold the slab objects, so those are not added again).
    pub peak_page_bytes: u64,
}

impl MemoryReport {
    /// The row of a use, by name.
    pub fn row(&self, name: &str) -> Option<&MemoryRow> {
        self.uses.iter().find(|r| r.use_ == name)
    }
}

/// The allocations of one use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRow {
    /// `slab_objects`, or a [`crate::pageuse::PageUse`] name.
    #[serde(rename = "use")]
    pub use_: String,
    /// Successful allocations (failed ones hold no memory).
    pub allocs: u64,
    /// Frees of allocations made during the trace.
    pub frees: u64,
    /// Bytes of those allocations (for pages, `PAGE_SIZE << order`).
    pub bytes_allocated: u64,
    /// Bytes of those frees.
    pub bytes_freed: u64,
    /// Allocated during the trace and not freed.
    pub live_bytes: u64,
    /// The highest live bytes at a sample (see `peak_resolution_records`).
    pub peak_live_bytes: u64,
}

/// Page allocations of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOrderRow {
    /// `log2(pages)`, pages = `ceil(bytes_alloc / page_size)`.
    pub order: u32,
    /// Allocations.
    pub allocs: u64,
    /// Allocations of this order closed by a free.
    pub frees: u64,
    /// Sum of `bytes_alloc`.
    pub bytes_allocated: u64,
    /// Open at the end.
    pub live_allocations: u64,
}

figures!(PageOrderRow: FIELDS, fields => allocs, frees, bytes_allocated, live_allocations);

/// One power-of-two size class of the size histogram: `[min, max]` bytes.
///
/// `requests` counts the allocations whose `bytes_req` is in the class, `allocations` those whose
/// `bytes_alloc` is: the same allocations, counted before and after the allocator rounded them up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRow {
    /// Smallest size in the class (0, then 1, 2, 4, …).
    pub min: u64,
    /// Largest size in the class (0, then 1, 3, 7, …).
    pub max: u64,
    /// Allocations that requested a size in the class.
    pub requests: u64,
    /// Their `bytes_req`.
    pub bytes_requested: u64,
    /// Allocations that got a size in the class.
    pub allocations: u64,
    /// Their `bytes_alloc`.
    pub bytes_allocated: u64,
}

figures!(SizeRow: FIELDS, fields => requests, bytes_requested, allocations, bytes_allocated);

/// Number of power-of-two size classes: 0, then `[2^(k-1), 2^k)` for k = 1..=64.
pub const SIZE_CLASSES: usize = 65;

/// The size class of `bytes`: 0 for 0, else `floor(log2(bytes)) + 1`.
pub fn size_class(bytes: u64) -> usize {
    (u64::BITS - bytes.leading_zeros()) as usize
}

/// The `[min, max]` bytes of size class `k`.
pub fn size_class_bounds(k: usize) -> (u64, u64) {
    match k {
        0 => (0, 0),
        64.. => (1 << 63, u64::MAX),
        _ => (1 << (k - 1), (1 << k) - 1),
    }
}

/// Kinds of inconsistent behaviour, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A free whose type differs from its allocation's (e.g. `kmem_cache_alloc` then `kfree`).
    MismatchedFree,
    /// A free of a non-NULL pointer with no open allocation.
    UnknownFree,
    /// An allocation at a pointer still open: the earlier free was lost.
    LostFree,
    /// `bytes_alloc < bytes_req`.
    ShortAlloc,
    /// `bytes_req == 0`.
    ZeroByteRequest,
    /// Gaps in the sequence numbers.
    LostEvents,
    /// The kernel said it dropped bytes (`total_overruns` > 0).
    Overruns,
    /// A sequence number seen twice.
    DuplicateSeq,
    /// A sequence number lower than the one before.
    OutOfOrderSeq,
    /// A sequence number outside its file neighbours' (corrupt), replayed in file order.
    BadSeq,
    /// Bytes that do not decode.
    DamagedRecords,
    /// Records with an unknown event or type id.
    UnknownRecord,
    /// `meta.json` disagrees with the data (byte order).
    MetaMismatch,
}

impl FindingKind {
    /// One line saying what the finding means.
    pub fn description(self) -> &'static str {
        match self {
            FindingKind::MismatchedFree => {
                "freed with another allocator family's free than it was allocated with"
            }
            FindingKind::UnknownFree => "free of a pointer that is not allocated",
            FindingKind::LostFree => {
                "allocation at a pointer that is still allocated: a free was lost"
            }
            FindingKind::ShortAlloc => "allocated fewer bytes than requested",
            FindingKind::ZeroByteRequest => "request of zero bytes",
            FindingKind::LostEvents => "sequence numbers missing: records were lost",
            FindingKind::Overruns => "the kernel dropped bytes because a relay buffer was full",
            FindingKind::DuplicateSeq => "sequence number seen more than once",
            FindingKind::OutOfOrderSeq => "sequence number lower than the previous one",
            FindingKind::BadSeq => {
                "sequence number outside its neighbours' in its CPU file (corrupt); replayed in file order"
            }
            FindingKind::DamagedRecords => "bytes that do not decode as records",
            FindingKind::UnknownRecord => "record with an unknown event or type id, skipped",
            FindingKind::MetaMismatch => "meta.json disagrees with the trace data",
        }
    }
}

/// One kind of finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What.
    pub kind: FindingKind,
    /// How many times.
    pub count: u64,
    /// What it means.
    pub description: String,
    /// The first few occurrences.
    pub examples: Vec<Example>,
    /// For findings about records (frees, allocations): the call sites with the most
    /// occurrences, most first (at most [`FINDING_SITES`]); empty for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_call_site: Vec<FindingSite>,
}

/// At most this many call sites are listed per finding.
pub const FINDING_SITES: usize = 10;

/// How often a finding occurred at one call site: the call site of the record that showed it
/// (the free for `mismatched_free` and `unknown_free`, the allocation that found its address
/// still open for `lost_free`, the allocation for `short_alloc` and `zero_byte_request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingSite {
    /// The call site.
    #[serde(with = "hex_u64")]
    pub call_site: u64,
    /// `function+0xoff`, when symbols are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Occurrences there.
    pub count: u64,
}

/// One occurrence of a finding (fields that do not apply are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Sequence number of the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i32>,
    /// CPU that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Call site.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_u64_opt")]
    pub call_site: Option<u64>,
    /// Call site symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Pointer.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_u64_opt")]
    pub ptr: Option<u64>,
    /// File, for damage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Byte offset in `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// More words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Sequence-number accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostEvents {
    /// Missing sequence numbers.
    pub lost_events: u64,
    /// Number of gaps.
    pub gaps: u64,
    /// The first gaps.
    pub examples: Vec<Gap>,
    /// `total_overruns` from the metadata, when known.
    pub total_overruns: Option<u64>,
    /// Sequence numbers seen twice.
    pub duplicate_seqs: u64,
    /// Sequence numbers going backwards.
    pub out_of_order_seqs: u64,
}

/// One gap in the sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The last sequence number before the gap.
    pub after_seq: i32,
    /// How many numbers are missing.
    pub missing: u64,
}

/// Damage found while decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageReport {
    /// Number of damaged regions.
    pub regions_total: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The first regions (at most [`crate::analyze::MAX_DAMAGE_LISTED`]).
    pub regions: Vec<DamageRegion>,
}

/// What a row is identified by, for sorting.
pub(crate) enum Ident<'a> {
    Addr(u64),
    Name(&'a str),
}

/// Rows the sort keys apply to.
pub(crate) trait Sortable {
    fn stats(&self) -> &SiteStats;
    fn ident(&self) -> Ident<'_>;
}

impl Sortable for CallsiteRow {
    fn stats(&self) -> &SiteStats {
        &self.stats
    }
    fn ident(&self) -> Ident<'_> {
        Ident::Addr(self.call_site)
    }
}

impl Sortable for FunctionRow {
    fn stats(&self) -> &SiteStats {
        &self.stats
    }
    fn ident(&self) -> Ident<'_> {
        Ident::Name(&self.function)
    }
}

impl Sortable for GroupRow {
    fn stats(&self) -> &SiteStats {
        &self.stats
    }
    fn ident(&self) -> Ident<'_> {
        Ident::Name(&self.key)
    }
}

fn ident_cmp(a: &Ident<'_>, b: &Ident<'_>) -> Ordering {
    match (a, b) {
        (Ident::Addr(x), Ident::Addr(y)) => x.cmp(y),
        (Ident::Name(x), Ident::Name(y)) => x.cmp(y),
        (Ident::Addr(_), Ident::Name(_)) => Ordering::Less,
        (Ident::Name(_), Ident::Addr(_)) => Ordering::Greater,
    }
}

type Cmp = fn(&SiteStats, &SiteStats) -> Ordering;

/// Sort keys by name: (name, what it sorts by, comparator or `None` for the identity key).
pub const SORT_KEYS: &[(&str, &str, Option<Cmp>)] = &[
    (
        "bytes",
        "bytes allocated, most first",
        Some(|a, b| b.bytes_allocated.cmp(&a.bytes_allocated)),
    ),
    (
        "req",
        "bytes requested, most first",
        Some(|a, b| b.bytes_requested.cmp(&a.bytes_requested)),
    ),
    (
        "hits",
        "allocations, most first",
        Some(|a, b| b.hits.cmp(&a.hits)),
    ),
    (
        "hit",
        "same as hits (perf's name)",
        Some(|a, b| b.hits.cmp(&a.hits)),
    ),
    (
        "frag",
        "fragmentation bytes, most first",
        Some(|a, b| b.fragmentation_bytes.cmp(&a.fragmentation_bytes)),
    ),
    (
        "pingpong",
        "cross-CPU frees, most first",
        Some(|a, b| b.cross_cpu_frees.cmp(&a.cross_cpu_frees)),
    ),
    (
        "live",
        "bytes still allocated at the end, most first",
        Some(|a, b| b.live_bytes.cmp(&a.live_bytes)),
    ),
    (
        "frees",
        "free records logged at the site, most first (not in the per-allocation table)",
        Some(|a, b| b.frees.cmp(&a.frees)),
    ),
    (
        "callsite",
        "call-site address or function name, ascending (the last allocation's call site in the per-allocation table)",
        None,
    ),
    (
        "ptr",
        "the allocation's address (per-allocation table; call site in the per-call-site one), ascending (perf's name)",
        None,
    ),
];

type AllocCmp = fn(&AllocRow, &AllocRow) -> Ordering;

/// The per-allocation table's comparators, by the names of [`SORT_KEYS`]: the keys that mean
/// something for one address, as perf kmem's `--alloc --sort` has them (`ptr`, `callsite`,
/// `bytes`, `hit`, `frag`, `pingpong`) and `req` and `live`. `frees` counts free records by the
/// site that logged them, which an address does not have: this table skips it.
pub const ALLOC_SORT_KEYS: &[(&str, AllocCmp)] = &[
    ("bytes", |a, b| b.bytes_allocated.cmp(&a.bytes_allocated)),
    ("req", |a, b| b.bytes_requested.cmp(&a.bytes_requested)),
    ("hits", |a, b| b.hits.cmp(&a.hits)),
    ("hit", |a, b| b.hits.cmp(&a.hits)),
    ("frag", |a, b| {
        b.fragmentation_bytes.cmp(&a.fragmentation_bytes)
    }),
    ("pingpong", |a, b| b.cross_cpu_frees.cmp(&a.cross_cpu_frees)),
    ("live", |a, b| b.live.cmp(&a.live)),
    ("callsite", |a, b| a.call_site.cmp(&b.call_site)),
    ("ptr", |a, b| a.ptr.cmp(&b.ptr)),
];

/// The order of per-allocation rows under `keys` (validated names): key by key, then by address,
/// so that the order is total.
pub(crate) fn alloc_row_order(keys: &[String]) -> impl Fn(&AllocRow, &AllocRow) -> Ordering {
    let cmps: Vec<AllocCmp> = keys
        .iter()
        .filter_map(|k| ALLOC_SORT_KEYS.iter().find(|e| e.0 == k).map(|e| e.1))
        .collect();
    move |a, b| {
        cmps.iter()
            .map(|c| c(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.ptr.cmp(&b.ptr))
    }
}

/// The default sort keys.
pub const DEFAULT_SORT: &[&str] = &["bytes", "hits", "callsite"];

/// The per-allocation table's default sort keys.
pub const DEFAULT_ALLOC_SORT: &[&str] = &["bytes", "hits", "ptr"];

/// Validate sort key names.
pub fn parse_sort_keys(keys: &[String]) -> Result<Vec<String>> {
    keys.iter()
        .flat_map(|k| k.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            if SORT_KEYS.iter().any(|(n, _, _)| *n == k) {
                Ok(k.to_string())
            } else {
                Err(Error::SortKey {
                    key: k.into(),
                    known: SORT_KEYS.iter().map(|e| e.0).collect::<Vec<_>>().join(","),
                })
            }
        })
        .collect()
}

/// Sort rows by `keys` (validated names), then by identity for a total, stable order.
pub(crate) fn sort_rows<T: Sortable>(rows: &mut [T], keys: &[String]) {
    let cmps: Vec<Option<Cmp>> = keys
        .iter()
        .filter_map(|k| SORT_KEYS.iter().find(|e| e.0 == k).map(|e| e.2))
        .collect();
    rows.sort_by(|a, b| {
        for c in &cmps {
            let o = match c {
                Some(f) => f(a.stats(), b.stats()),
                None => ident_cmp(&a.ident(), &b.ident()),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        ident_cmp(&a.ident(), &b.ident())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON keys of a row type, in serialisation order.
    fn keys<T: Default + Serialize>() -> Vec<String> {
        match serde_json::to_value(T::default()).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            v => panic!("not an object: {v}"),
        }
    }

    /// Every figure list (`figures!`, `counters!`) against the serialised keys of its struct:
    /// a full list is every key but the row's identity, in any order, each once; the call-site
    /// list a diff compares is a subset. And every summary figure has its line in the schema
    /// document. A field added to a struct without its list, or the reverse, fails here.
    #[test]
    fn figure_lists_match_the_serialised_keys() {
        let sorted = |v: Vec<&str>| {
            let mut v: Vec<String> = v.into_iter().map(String::from).collect();
            v.sort();
            v
        };
        // (struct, its list, its JSON keys, the keys that identify a row rather than count)
        type Full<'a> = (&'a str, &'a [&'a str], Vec<String>, &'a [&'a str]);
        let full: [Full<'_>; 4] = [
            ("Summary", Summary::FIELDS, keys::<Summary>(), &[]),
            ("TypeRow", TypeRow::FIELDS, keys::<TypeRow>(), &["type"]),
            (
                "PageOrderRow",
                PageOrderRow::FIELDS,
                keys::<PageOrderRow>(),
                &["order"],
            ),
            (
                "SizeRow",
                SizeRow::FIELDS,
                keys::<SizeRow>(),
                &["min", "max"],
            ),
        ];
        for (name, list, keys, identity) in full {
            let mut ours: Vec<&str> = list.to_vec();
            ours.extend(identity);
            assert_eq!(
                sorted(ours),
                sorted(keys.iter().map(String::as_str).collect()),
                "{name}"
            );
        }
        let site = keys::<SiteStats>();
        for f in SiteStats::COMPARED {
            assert!(site.iter().any(|k| k == f), "SiteStats::COMPARED: {f}");
        }
        let schema = include_str!("../docs/report-schema.md");
        for f in Summary::FIELDS {
            assert!(
                schema.contains(&format!("| `{f}` |")),
                "report-schema.md: summary {f}"
            );
        }
    }

    /// `+=` on a summary adds every field (the shards' and the merge's figures are added so).
    #[test]
    fn summaries_add_field_by_field() {
        let mut a = Summary {
            allocs: 1,
            fragmentation_bytes: -3,
            ..Summary::default()
        };
        let b = Summary {
            allocs: 2,
            damaged_bytes: 5,
            fragmentation_bytes: 1,
            ..Summary::default()
        };
        a += &b;
        let v: Vec<i64> = a.fields().into_iter().map(|(_, v)| v).collect();
        assert_eq!(v.iter().sum::<i64>(), 3 + 5 - 2);
        assert_eq!(
            (a.allocs, a.damaged_bytes, a.fragmentation_bytes),
            (3, 5, -2)
        );
    }
}
