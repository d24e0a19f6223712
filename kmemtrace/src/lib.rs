// SPDX-License-Identifier: GPL-2.0-only
//! Decode, check and report kmemtrace ABI v1 and v2 traces (Linux kernel memory allocation traces).
//!
//! The library is a pure core with its file I/O at a few named edges ([`load`], [`load_dir`],
//! [`check()`], [`synth_to_dir`], [`convert_dir`]); the `kmemtrace` binary is a thin CLI over it,
//! exiting with the codes of [`KmemtraceExitCode`].
//!
//! ```no_run
//! use kmemtrace::{analyze, load_dir, render_text, AnalyzeOptions, TextOptions};
//! let input = load_dir("trace".as_ref())?;              // cpu<N>.out + meta.json + kallsyms
//! let opts = AnalyzeOptions {
//!     callsite_filter: vec!["kmemtrace_selftest_*".into()],
//!     ..AnalyzeOptions::default()
//! };
//! let report = analyze(&input, &opts)?;                  // a value: serde Serialize + Deserialize
//! assert_eq!(report.summary.mismatched_frees, 1);
//! print!("{}", render_text(&report, &TextOptions::default()));
//! println!("{}", report.to_json());                      // the documented JSON contract
//! # Ok::<(), kmemtrace::Error>(())
//! ```
//!
//! # Semantics
//! * Byte order is detected per file from `event_size` (24/48 in the right order, 0x1800/0x3000
//!   in the wrong one); files of one trace that disagree are [`Error::MixedByteOrder`].
//! * The per-CPU streams are merged by `seq_num` with serial-number arithmetic (each stream's
//!   wrapping `i32` is unwrapped to `i64`); gaps are lost events.
//! * Replay: an allocation opens `ptr`; a free of the same `ptr` closes it (its `bytes_alloc`
//!   counts in `bytes_freed`); an allocation at an open `ptr` is a lost free (the old one is closed
//!   without a free); a free of 0 is a NULL free; a free of anything else not open is an unknown
//!   free; a free with another `type_id` than its allocation is a mismatched free; a free logged on
//!   another CPU than its allocation is a cross-CPU free; an allocation whose `numa_node` is not
//!   -1 and not the logging CPU's node is a cross-CPU allocation.
//! * NUMA: a CPU's node comes from `meta.json` (`cpus[].node`); when the metadata is absent,
//!   does not list the CPU, or says -1, the CPU is on node 0.
//! * Damage never stops the analysis: the scanner resynchronises on the next record that is
//!   followed by another plausible record, and lists the damage with file and byte offset
//!   ([`Report::damage`]); [`AnalyzeOptions::strict`] turns it into [`Error::Damaged`]. A trace
//!   of which not one record decodes is [`Error::NothingDecodes`] (an empty trace is not).
//! * Memory grows with open allocations and call sites, not with events: files are
//!   memory-mapped, decoded in place and released as the merge passes them.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// The library returns values; the binary prints them, through its one stdout writer.
#![cfg_attr(not(test), deny(clippy::print_stdout))]

pub mod abi;
pub mod allocinfo;
mod analyze;
pub mod callers;
pub mod check;
pub mod cli_doc;
pub mod convert;
pub mod delta;
mod dest;
pub mod diff;
pub mod diff_render;
mod error;
pub mod exit_code;
pub mod flame;
pub mod glob;
pub mod import_perf;
pub mod input;
pub mod meta;
#[cfg(test)]
mod module_graph;
pub mod pageuse;
pub mod plot;
pub mod pprof;
pub mod render;
pub mod report;
pub mod rules;
pub mod scan;
pub mod sides;
pub mod symbols;
pub mod synth;
mod table;
pub mod threshold;

pub use abi::{AllocFields, AllocType, ByteOrder, Record};
pub use analyze::{analyze, AnalyzeOptions, MAX_DAMAGE_LISTED};
pub use check::{check, check_input, CheckReport, Problem, ProblemKind};
pub use convert::{convert_bytes, convert_dir, convert_stream};
pub use diff::{diff, load_side, Diff, DiffOptions, Threshold};
pub use error::{error_chain, Error, IoSide, Result};
pub use exit_code::KmemtraceExitCode;
pub use input::{load, load_dir, trace_dir, CpuFile, LoadOptions, TraceInput};
pub use meta::{Meta, MetaCpu};
pub use plot::{diff_svg, report_svg, PlotOptions};
pub use render::{render_text, TextOptions};
pub use report::{
    AllocRow, CallsiteRow, DamageReport, Example, FileInfo, Finding, FindingKind, FindingSite,
    FunctionRow, Gap, GroupBy, GroupRow, GroupTable, LostEvents, PageOrderRow, Report, SiteStats,
    SizeRow, Summary, TraceInfo, TypeRow, TypeSplit, SCHEMA_VERSION,
};
pub use scan::{decode_all, detect_byte_order, DamageKind, DamageRegion};
pub use symbols::Symbols;
pub use synth::{synth, synth_in_memory, synth_to_dir, SynthOptions, SynthOutput};
