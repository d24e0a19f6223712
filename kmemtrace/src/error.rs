// SPDX-License-Identifier: GPL-2.0-only
//! The library's error type.

use crate::abi::ByteOrder;
use crate::exit_code::KmemtraceExitCode;
use crate::scan::DamageRegion;
use std::path::PathBuf;

/// Which side of the program an I/O error is on; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoSide {
    /// Reading the input: a trace, its side files, a `report.json`, `perf script` text.
    Input,
    /// Writing the output: a destination directory and the files in it.
    Output,
}

/// Everything that can go wrong in the library. Damage inside a trace is not an error (it is
/// reported in [`crate::Report::damage`]) unless strict mode asks for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be opened, mapped, read or written.
    #[error("{path}: {what}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The operation that failed.
        what: &'static str,
        /// Whether it was reading input or writing output.
        side: IoSide,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no `cpu<N>.out` file, nor has a `trace/` that does.
    #[error("{path}: no cpu<N>.out trace files in this directory or its trace/")]
    NoTraceFiles {
        /// The directory.
        path: PathBuf,
    },
    /// `meta.json` is not valid JSON of the documented shape.
    #[error("{path}: invalid metadata")]
    Meta {
        /// The metadata file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The files of one trace were written in different byte orders.
    #[error("trace files disagree on byte order: little-endian {little:?}, big-endian {big:?}")]
    MixedByteOrder {
        /// Files detected as little-endian.
        little: Vec<String>,
        /// Files detected as big-endian.
        big: Vec<String>,
    },
    /// Not one record decodes: every byte of the trace is damage. The input is not a trace (or not
    /// in the byte order given), and an all-zero report would pass it off as an empty one. (An
    /// empty trace, with zero-length CPU files, has no damage and is not this error.)
    #[error(
        "nothing decodes: not one record in the {bytes} bytes of {} (read as {order}-endian); \
         the first damage is at byte {} of {}: {}: {}",
        .files.join(", "), .first.offset, .first.file, .first.kind.name(), .first.detail
    )]
    NothingDecodes {
        /// The files that hold bytes.
        files: Vec<String>,
        /// Their total size.
        bytes: u64,
        /// The byte order they were read in.
        order: ByteOrder,
        /// The first damaged region (its file named with its directory).
        first: DamageRegion,
    },
    /// Strict mode: the trace holds damage (the first region is named).
    #[error("{file} at byte {offset}: {kind}: {detail} (and {more} more damaged regions)")]
    Damaged {
        /// File of the first damaged region.
        file: String,
        /// Its byte offset.
        offset: u64,
        /// Kind of damage.
        kind: &'static str,
        /// The header found there.
        detail: String,
        /// Number of further damaged regions.
        more: u64,
    },
    /// A call-site filter was given but there are no symbols to match it against.
    #[error("--callsite-filter needs symbols: give --kallsyms or --system-map, or a trace directory with a kallsyms file")]
    FilterWithoutSymbols,
    /// A glob pattern is malformed.
    #[error("invalid glob pattern {0:?}")]
    Glob(String),
    /// `meta.json` names a slab allocator this version has no rules for.
    #[error("meta.json: allocator {0:?} is not one kmemtrace knows ({known}); give --allocator NAME to judge the frees by that allocator's rules", known = crate::rules::Allocator::names().join(", "))]
    UnknownAllocator(String),
    /// `synth`, `convert` and `import-perf` refuse to write into a directory that exists and is
    /// not empty.
    #[error("{path}: destination exists and is not empty; refusing to overwrite")]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// `synth`, `convert` and `import-perf` refuse a destination that exists and is not a
    /// directory (a symbolic link is refused, not followed).
    #[error("{path}: destination exists and is {what}, not a directory; refusing to overwrite")]
    DestinationNotADirectory {
        /// The destination.
        path: PathBuf,
        /// What it is ("a regular file", "a symbolic link", …).
        what: &'static str,
    },
    /// `import-perf` found no kmem event in its input: it would write a trace with no CPU file.
    #[error("{input}: no kmem event (kmem:kmalloc, kmem:kfree, …) in {lines} lines of `perf script` output")]
    NoPerfEvents {
        /// The input, as named to the command (`-`: stdin).
        input: String,
        /// Lines read.
        lines: u64,
    },
    /// A sort key is not known.
    #[error("unknown sort key {key:?} (known: {known})")]
    SortKey {
        /// The key given.
        key: String,
        /// The keys known, comma-separated.
        known: String,
    },
    /// `diff --group-by caller|stack` with a side that has no such groups.
    #[error("diff --group-by {by}: {side} has no {by} groups: compare trace directories, or report.json files made with --group-by {by}")]
    NoGroups {
        /// The side.
        side: String,
        /// `caller` or `stack`.
        by: String,
    },
    /// A `--fail-on` expression is malformed or can never apply.
    #[error("--fail-on {expr:?}: {why}")]
    Threshold {
        /// The expression.
        expr: String,
        /// What is wrong.
        why: String,
    },
    /// A `report.json` given to `diff` is not a kmemtrace report.
    #[error("{path}: not a kmemtrace report.json")]
    ReportJson {
        /// The file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A `/proc/allocinfo` copy does not parse.
    #[error("{file}: line {line} (byte {offset}): {detail}")]
    Allocinfo {
        /// The file, as named by the caller.
        file: String,
        /// The line (1-based).
        line: usize,
        /// The byte offset of the line's start.
        offset: u64,
        /// What is wrong, with the line.
        detail: String,
    },
    /// `--allocator` asked for other rules than a `report.json` was judged by.
    #[error("{path}: this report's frees were judged by {} rules; --allocator {asked} needs the trace directory, not a report.json", made_with.map_or("unknown", |a| a.name()))]
    AllocatorOnReport {
        /// The file.
        path: PathBuf,
        /// The allocator asked for.
        asked: crate::rules::Allocator,
        /// The allocator the report was made with.
        made_with: Option<crate::rules::Allocator>,
    },
    /// A call-site filter was asked for on a `report.json` made without it.
    #[error("{path}: this report was made with call-site filter {made_with:?}; a different --callsite-filter needs the trace directory, not a report.json")]
    FilterOnReport {
        /// The file.
        path: PathBuf,
        /// The filter it was made with.
        made_with: Vec<String>,
    },
}

impl Error {
    /// The `kmemtrace` command's exit code for this error ([`KmemtraceExitCode`]): damage met in
    /// strict mode is a problem in usable data, a failed write is an output failure, everything
    /// else makes the input (or the usage) unusable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Damaged { .. } => KmemtraceExitCode::PROBLEMS_FOUND,
            Error::Io {
                side: IoSide::Output,
                ..
            } => KmemtraceExitCode::OUTPUT_FAILED,
            Error::Io {
                side: IoSide::Input,
                ..
            }
            | Error::NoTraceFiles { .. }
            | Error::Meta { .. }
            | Error::MixedByteOrder { .. }
            | Error::NothingDecodes { .. }
            | Error::FilterWithoutSymbols
            | Error::Glob(_)
            | Error::UnknownAllocator(_)
            | Error::DestinationNotEmpty { .. }
            | Error::DestinationNotADirectory { .. }
            | Error::NoPerfEvents { .. }
            | Error::SortKey { .. }
            | Error::Threshold { .. }
            | Error::NoGroups { .. }
            | Error::ReportJson { .. }
            | Error::FilterOnReport { .. }
            | Error::AllocatorOnReport { .. }
            | Error::Allocinfo { .. } => KmemtraceExitCode::BAD_INPUT,
        }
    }
}

/// `e` and its sources, joined by ": " (how the CLI and `check` print an error).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(": {x}"));
        src = x.source();
    }
    s
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error reading the input at `path` (for `map_err`).
pub(crate) fn io_in(
    path: impl Into<PathBuf>,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> Error {
    io_on(IoSide::Input, path.into(), what)
}

/// An error writing the output at `path` (for `map_err`).
pub(crate) fn io_out(
    path: impl Into<PathBuf>,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> Error {
    io_on(IoSide::Output, path.into(), what)
}

fn io_on(side: IoSide, path: PathBuf, what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        path,
        what,
        side,
        source,
    }
}

/// [`Error::NothingDecodes`] for a trace whose `files` (name, size) hold no record; `first` is
/// the first damaged region, its file named relative to `dir` when there is one.
pub(crate) fn nothing_decodes(
    files: impl IntoIterator<Item = (String, u64)>,
    order: ByteOrder,
    first: &DamageRegion,
    dir: Option<&std::path::Path>,
) -> Error {
    let full = |name: &str| match dir {
        Some(d) => d.join(name).display().to_string(),
        None => name.to_string(),
    };
    let (mut names, mut bytes) = (Vec::new(), 0u64);
    for (name, len) in files {
        if len > 0 {
            names.push(full(&name));
            bytes = bytes.saturating_add(len);
        }
    }
    let mut first = first.clone();
    first.file = full(&first.file);
    Error::NothingDecodes {
        files: names,
        bytes,
        order,
        first,
    }
}
