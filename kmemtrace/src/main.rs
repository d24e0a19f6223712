// SPDX-License-Identifier: GPL-2.0-only
//! `kmemtrace`: report, check, synthesise and convert kmemtrace ABI v1 and v2 traces.
//!
//! Exit codes ([`kmemtrace::KmemtraceExitCode`]; the same table is in the README, and a test
//! compares both with the code):
//!
//! | code | name | meaning |
//! | --- | --- | --- |
//! | 0 | `OK` | success: `check` found the input clean, `report` reported (findings are data, not failure), `diff` crossed no threshold, `allocinfo` found the accounts agreeing, `synth`/`convert`/`import-perf` wrote their directory |
//! | 1 | `PROBLEMS_FOUND` | problems in usable data: `check` found some, `report --strict` met damage, `diff` crossed a `--fail-on` threshold, `allocinfo` found the accounts disagreeing |
//! | 2 | `BAD_INPUT` | unusable input or usage (message on stderr, naming any file): missing or unreadable path, no `cpu<N>.out`, not one record decodes, invalid `meta.json` or `report.json`, mixed byte orders, bad glob, sort key or threshold, destination not empty or a file or symlink, bad option |
//! | 3 | `OUTPUT_FAILED` | failure writing output: the directory of `synth`, `convert` or `import-perf` (left as it was), an `--svg` file, stdout (a reader that closes it early, as `head` does, is no failure: the output stops and the code is the command's) |
//!
//! Every error is typed: the library's [`kmemtrace::Error::exit_code`] and [`CliError::exit_code`]
//! map them onto the table. Fatal messages go to stderr, naming the file.
//!
//! Everything printed on stdout goes through [`out_with`] (`print!` and `println!`, which panic
//! on a closed stdout, are denied), where a reader that went away (`kmemtrace report … | head`)
//! ends the output quietly: the command runs to its end and exits with its own code.
#![deny(clippy::print_stdout)]

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use kmemtrace::cli_doc::{self, Section};
use kmemtrace::rules::Allocator;
use kmemtrace::{ByteOrder, KmemtraceExitCode};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kmemtrace",
    version,
    about = "Analyse kmemtrace kernel memory allocation traces",
    after_long_help = exit_status_help()
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Also say on stderr what was read and how long it took.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// No warnings or notes on stderr (errors still are); stdout is unchanged.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `report --format`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    /// Collapsed stacks (`outer;…;call_site VALUE`, one per line) for flamegraph.pl or
    /// inferno-flamegraph; the stacks are read whatever --group-by says.
    Folded,
    /// A gzip'd pprof profile.proto (alloc_objects, alloc_space, requested_space,
    /// wasted_space, inuse_objects, inuse_space per stack) on stdout, for `pprof -top`,
    /// `-focus`, `-diff_base` and its web view. Not written to a terminal.
    Pprof,
}

/// `report --value`: what a folded stack's number is.
#[derive(Clone, Copy, ValueEnum)]
enum ValueArg {
    #[value(alias = "bytes_allocated")]
    BytesAllocated,
    #[value(alias = "bytes_requested")]
    BytesRequested,
    /// bytes_allocated − bytes_requested.
    Wasted,
    #[value(alias = "live_bytes")]
    LiveBytes,
    Allocs,
}

impl From<ValueArg> for kmemtrace::render::Value {
    fn from(v: ValueArg) -> Self {
        use kmemtrace::render::Value;
        match v {
            ValueArg::BytesAllocated => Value::BytesAllocated,
            ValueArg::BytesRequested => Value::BytesRequested,
            ValueArg::Wasted => Value::Wasted,
            ValueArg::LiveBytes => Value::LiveBytes,
            ValueArg::Allocs => Value::Allocs,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Json,
    Markdown,
}

/// A slab allocator whose rules judge the frees (`kmemtrace::rules`).
#[derive(Clone, Copy, ValueEnum)]
enum AllocatorArg {
    Slab,
    Slub,
    SlubTiny,
    Slob,
}

impl From<AllocatorArg> for Allocator {
    fn from(a: AllocatorArg) -> Self {
        match a {
            AllocatorArg::Slab => Allocator::Slab,
            AllocatorArg::Slub => Allocator::Slub,
            AllocatorArg::SlubTiny => Allocator::SlubTiny,
            AllocatorArg::Slob => Allocator::Slob,
        }
    }
}

/// What the site rows are grouped by (`kmemtrace::GroupBy`).
#[derive(Clone, Copy, ValueEnum)]
enum GroupByArg {
    /// The allocator's caller, one row per address (the historical report).
    Callsite,
    /// The first frame outside the allocation wrappers (kmalloc_array, kmemdup, kstrdup,
    /// kvmalloc, *_noprof …), from the records' stacks.
    Caller,
    /// The call site with its whole stack.
    Stack,
    /// The call site's function, offsets folded.
    Function,
}

impl From<GroupByArg> for kmemtrace::GroupBy {
    fn from(g: GroupByArg) -> Self {
        match g {
            GroupByArg::Callsite => kmemtrace::GroupBy::Callsite,
            GroupByArg::Caller => kmemtrace::GroupBy::Caller,
            GroupByArg::Stack => kmemtrace::GroupBy::Stack,
            GroupByArg::Function => kmemtrace::GroupBy::Function,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Endian {
    Little,
    Big,
}

impl From<Endian> for ByteOrder {
    fn from(e: Endian) -> Self {
        match e {
            Endian::Little => ByteOrder::Little,
            Endian::Big => ByteOrder::Big,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Report on a trace directory (cpu<N>.out, meta.json, kallsyms) or explicit CPU files.
    Report {
        /// A trace directory (or a `kmt run` output directory: its trace/), or CPU files
        /// (cpu<N>.out; N is the CPU).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Show the per-call-site table (the default when --alloc is not given).
        #[arg(long)]
        caller: bool,
        /// Show the per-allocation (per-address) table.
        #[arg(long)]
        alloc: bool,
        /// Sort keys, comma-separated or repeated: bytes, req, hits (or hit), frag, pingpong,
        /// live, frees, callsite, ptr (perf kmem's names where it has them). They order the
        /// --alloc table too, frees excepted (default there: bytes,hits,ptr).
        #[arg(long, short, value_delimiter = ',')]
        sort: Vec<String>,
        /// Rows per table (text default 20; JSON default: all).
        #[arg(long, short)]
        lines: Option<usize>,
        /// Show call sites as raw addresses, reading no kallsyms or System.map (perf kmem's
        /// --raw-ip).
        #[arg(long, conflicts_with_all = ["kallsyms", "system_map"])]
        raw_ip: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// kallsyms file for call-site symbols (default: the trace directory's kallsyms).
        #[arg(long)]
        kallsyms: Option<PathBuf>,
        /// System.map file for call-site symbols (wins over kallsyms).
        #[arg(long)]
        system_map: Option<PathBuf>,
        /// meta.json (default: the trace directory's).
        #[arg(long)]
        meta: Option<PathBuf>,
        /// Decode in this byte order instead of detecting it.
        #[arg(long, value_enum)]
        endian: Option<Endian>,
        /// Only replay records whose call site is in a function matching GLOB (repeatable).
        #[arg(long = "callsite-filter", value_name = "GLOB")]
        callsite_filter: Vec<String>,
        /// Damage in the trace is an error (exit 1) instead of a finding.
        #[arg(long)]
        strict: bool,
        /// Examples kept per finding.
        #[arg(long, default_value_t = 5)]
        examples: usize,
        /// Decode and replay on one thread.
        #[arg(long)]
        single_thread: bool,
        /// Replay threads besides the decoding one (pointers are sharded between them).
        #[arg(long, default_value_t = 2)]
        replay_threads: usize,
        /// Also draw the top call sites and the size histogram into this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Judge the frees by this allocator's rules instead of meta.json's (default: meta.json's
        /// allocator, else SLUB, said in the report).
        #[arg(long, value_enum)]
        allocator: Option<AllocatorArg>,
        /// Group the site rows by call site (default), caller (the first frame outside the
        /// allocation wrappers), whole stack, or function; caller and stack read the records'
        /// stack feature (kmemtrace.stack_depth), and fall back to the call site without it.
        #[arg(long, value_enum, default_value = "callsite")]
        group_by: GroupByArg,
        /// The number of each folded stack (--format folded).
        #[arg(long, value_enum, default_value = "bytes-allocated")]
        value: ValueArg,
        /// Also draw a flame graph of the bytes allocated per stack, the wasted part shaded,
        /// into this SVG file (reads the stacks whatever --group-by says).
        #[arg(long, value_name = "FILE")]
        flamegraph: Option<PathBuf>,
    },
    /// Compare two traces (or sets of repeated runs): summary, per-type, page-order, size-class
    /// and call-site deltas. Exit 0, or 1 when a --fail-on threshold is crossed, 2 on bad input.
    Diff {
        /// BASE and NEW: trace directories, `kmt run` output directories or report.json files.
        #[arg(num_args = 0..=2, value_names = ["BASE", "NEW"])]
        paths: Vec<PathBuf>,
        /// A base run (repeatable, instead of BASE): runs of one side are treated as repeats.
        #[arg(long = "base", value_name = "PATH")]
        bases: Vec<PathBuf>,
        /// A new run (repeatable, instead of NEW).
        #[arg(long = "new", value_name = "PATH")]
        news: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
        /// Exit 1 when a change crosses this threshold (repeatable): FIELD:[+|-]N[%], or
        /// callsite:GLOB:FIELD:…, type:NAME:FIELD:…, order:N:FIELD:… (e.g. bytes_allocated:+5%).
        #[arg(long = "fail-on", value_name = "EXPR")]
        fail_on: Vec<String>,
        /// Only replay records whose call site is in a function matching GLOB (repeatable;
        /// applies to trace directories).
        #[arg(long = "callsite-filter", value_name = "GLOB")]
        callsite_filter: Vec<String>,
        /// Match call sites by address even when both sides have symbols.
        #[arg(long)]
        by_address: bool,
        /// Call-site rows in text and markdown (JSON: all).
        #[arg(long, short, default_value_t = 20)]
        lines: usize,
        /// Also draw the call-site deltas into this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Also draw a differential flame graph into this SVG file: the new side's bytes
        /// allocated per stack, each frame red where it grew against the base and blue where
        /// it shrank (trace directories with stacks; a side of repeated runs counts their mean).
        #[arg(long, value_name = "FILE")]
        flamegraph: Option<PathBuf>,
        /// Compare callers (outside the allocation wrappers) or whole stacks instead of call
        /// sites (trace directories with stacks, or report.json files made with the same
        /// --group-by).
        #[arg(long, value_enum, default_value = "callsite")]
        group_by: GroupByArg,
        /// Judge the frees of both sides by this allocator's rules instead of meta.json's
        /// (trace directories only).
        #[arg(long, value_enum)]
        allocator: Option<AllocatorArg>,
    },
    /// N configurations side by side (SLAB, SLUB and SLOB on one workload, say): one column
    /// per side with the slab, page and overhead figures and allocations per size class; a side
    /// of several runs shows their median and range.
    Compare {
        /// A side: PATH, or LABEL=PATH[,PATH…] for a labelled side of repeated runs (trace
        /// directories, `kmt run` output directories or report.json files).
        #[arg(required = true, value_name = "SIDE")]
        sides: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
        /// Only replay records whose call site is in a function matching GLOB (repeatable;
        /// applies to trace directories).
        #[arg(long = "callsite-filter", value_name = "GLOB")]
        callsite_filter: Vec<String>,
    },
    /// Validate CPU files or trace directories: every problem with file and byte offset.
    /// Exit 0 clean, 1 problems found, 2 unusable input.
    Check {
        /// Trace directories (or `kmt run` output directories) or CPU files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Write a synthetic trace directory and print the summary `report` must give for it (JSON).
    Synth {
        /// Output directory (must not exist or be an empty directory; never a file or symlink).
        #[arg(long, short)]
        out: PathBuf,
        /// Records.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// CPU files.
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// NUMA nodes (CPU c on node c % nodes; 1 writes node -1, meaning node 0).
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// Byte order.
        #[arg(long, value_enum, default_value = "little")]
        endian: Endian,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Make the sequence numbers wrap past i32::MAX half-way.
        #[arg(long)]
        wrap: bool,
        /// Allocation call sites.
        #[arg(long, default_value_t = 120)]
        callsites: u32,
        /// Most allocations open at once.
        #[arg(long, default_value_t = 20_000)]
        max_live: usize,
        /// Sequence numbers to leave out (lost events).
        #[arg(long, default_value_t = 0)]
        lose: u64,
        /// No mismatched/NULL/unknown/lost frees, zero-byte or short allocations.
        #[arg(long)]
        no_anomalies: bool,
        /// The allocator meta.json names (it decides which mixed-up frees are errors).
        #[arg(long, value_enum, default_value = "slub")]
        allocator: AllocatorArg,
        /// Give every record a stack of N frames (the ABI's stack feature; meta.json then says
        /// abi_version 2). The records are otherwise the same as without.
        #[arg(long, default_value_t = 0, value_name = "N")]
        stack_depth: u8,
    },
    /// Cross-check a trace against the kernel's own account: the change in /proc/allocinfo
    /// (allocinfo.before and allocinfo.after in the trace directory, written by kmt's init on
    /// kernels with memory allocation profiling) against the trace's live bytes per function
    /// (kmemtrace/docs/report-schema.md, "allocinfo cross-check"). Exit 1 when allocinfo's change exceeds
    /// what the trace saw.
    Allocinfo {
        /// The trace directory (or a `kmt run` output directory: its `trace/`).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Rows in the text table.
        #[arg(long, short, default_value_t = 30)]
        lines: usize,
    },
    /// Rewrite a trace directory in the other byte order (meta.json and kallsyms follow).
    Convert {
        /// Target byte order.
        #[arg(long, value_enum)]
        endian: Endian,
        /// Source trace directory (or a `kmt run` output directory: its trace/).
        src: PathBuf,
        /// Destination directory (must not exist or be an empty directory; never a file or symlink).
        dst: PathBuf,
    },
    /// Turn `perf script` output of kmem events into a trace directory (for comparing with perf).
    ImportPerf {
        /// `perf script` text (`-` for stdin).
        input: PathBuf,
        /// Output directory (must not exist or be an empty directory; never a file or symlink).
        #[arg(long, short)]
        out: PathBuf,
        /// Byte order to write.
        #[arg(long, value_enum, default_value = "little")]
        endian: Endian,
    },
    /// Print the shell completion script for SHELL (e.g. `kmemtrace completions bash >
    /// /usr/share/bash-completion/completions/kmemtrace`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff: kmemtrace(1), or kmemtrace-SUBCOMMAND(1) (e.g.
    /// `kmemtrace man report | man -l -`).
    Man {
        /// A subcommand whose page to print.
        subcommand: Option<String>,
    },
}

/// The exit codes, from [`KmemtraceExitCode::TABLE`]: the man page's EXIT STATUS.
fn exit_status() -> Section {
    Section {
        title: "EXIT STATUS",
        items: KmemtraceExitCode::TABLE
            .iter()
            .map(|(code, name, meaning)| (format!("{code} {name}"), meaning.to_string()))
            .collect(),
    }
}

/// `--help`'s last part: the exit codes.
fn exit_status_help() -> String {
    let mut s = String::from("Exit status:\n");
    for (term, text) in exit_status().items {
        s.push_str(&format!("  {term}: {}\n", text.replace('`', "")));
    }
    s
}

/// Why the command failed. Each variant has its exit code ([`CliError::exit_code`]).
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The library failed.
    #[error(transparent)]
    Lib(#[from] kmemtrace::Error),
    /// One side of `diff` could not be loaded.
    #[error("{}", .path.display())]
    Side {
        /// The side, as given.
        path: PathBuf,
        /// Why (boxed: the library's error is large).
        #[source]
        source: Box<kmemtrace::Error>,
    },
    /// The arguments do not make sense together (clap's own usage errors exit 2 as well).
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed.
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    /// Writing an output file failed.
    #[error("{}: cannot write", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
}

impl CliError {
    /// The exit code ([`KmemtraceExitCode`]).
    fn exit_code(&self) -> i32 {
        match self {
            CliError::Lib(e) => e.exit_code(),
            CliError::Side { source, .. } => source.exit_code(),
            CliError::Usage(_) => KmemtraceExitCode::BAD_INPUT,
            CliError::Stdout(_) | CliError::Write(..) => KmemtraceExitCode::OUTPUT_FAILED,
        }
    }
}

/// The process exit code for one of the table's codes (all fit in a byte).
fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => exit(code),
        Err(e) => {
            eprintln!("kmemtrace: {}", kmemtrace::error_chain(&e));
            exit(e.exit_code())
        }
    }
}

/// Write an SVG file atomically. An existing file is replaced only when it is an SVG itself, so a
/// mistyped path never clobbers a trace or a report.
fn write_svg(path: &Path, text: &str) -> Result<(), CliError> {
    if let Ok(old) = std::fs::read(path) {
        let head = String::from_utf8_lossy(&old[..old.len().min(256)]).to_string();
        if !(head.trim_start().starts_with("<svg") || head.trim_start().starts_with("<?xml")) {
            return Err(CliError::Usage(format!(
                "{}: exists and is not an SVG file; refusing to overwrite it",
                path.display()
            )));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        // Created 0666 minus the umask, like any file the user asks for (not tempfile's 0600).
        let mut f = tempfile::Builder::new()
            .prefix(".kmemtrace-svg")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)?;
        f.write_all(text.as_bytes())?;
        f.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| CliError::Write(path.to_path_buf(), e))
}

fn out(s: &str) -> Result<(), CliError> {
    out_with(|mut o| o.write_all(s.as_bytes()).and_then(|_| o.flush()))
}

/// Write to stdout with `write`; a closed pipe (`| head`) is not an error.
fn out_with(
    write: impl FnOnce(std::io::StdoutLock<'_>) -> std::io::Result<()>,
) -> Result<(), CliError> {
    match write(std::io::stdout().lock()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Stdout(e)),
        Ok(()) => Ok(()),
    }
}

/// A note on stderr, unless --quiet.
fn note(quiet: bool, what: std::fmt::Arguments<'_>) {
    if !quiet {
        eprintln!("kmemtrace: {what}");
    }
}

/// Run the command; `Ok` holds the exit code of a command that ran to its end.
fn run(cli: Cli) -> Result<i32, CliError> {
    let (verbose, quiet) = (cli.verbose, cli.quiet);
    match cli.cmd {
        Cmd::Completions { shell } => {
            out(&String::from_utf8_lossy(&cli_doc::completions(
                Cli::command(),
                shell,
            )))?;
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::Man { subcommand } => {
            // The page without --help's text version of the exit codes: it has its own section.
            let cmd = Cli::command().after_long_help(None::<&str>);
            let page = match subcommand {
                None => cli_doc::man_page(cmd, &[exit_status()]),
                Some(name) => cli_doc::subcommand_man_page(&cmd, &name, &[exit_status()])
                    .ok_or_else(|| CliError::Usage(format!("no subcommand {name:?}")))?,
            }
            .map_err(CliError::Stdout)?;
            out(&String::from_utf8_lossy(&page))?;
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::Report {
            paths,
            caller,
            alloc,
            sort,
            lines,
            format,
            kallsyms,
            system_map,
            meta,
            endian,
            callsite_filter,
            strict,
            examples,
            single_thread,
            replay_threads,
            svg,
            allocator,
            raw_ip,
            group_by,
            value,
            flamegraph,
        } => {
            // What the text shows; the analysis reads the stacks for the outputs made of them.
            let shown: kmemtrace::GroupBy = group_by.into();
            let group_by = match format {
                ReportFormat::Folded | ReportFormat::Pprof => kmemtrace::GroupBy::Stack,
                _ if flamegraph.is_some() && !shown.needs_stacks() => kmemtrace::GroupBy::Stack,
                _ => shown,
            };
            let started = std::time::Instant::now();
            let mut input = kmemtrace::load(
                &paths,
                &kmemtrace::LoadOptions {
                    meta,
                    kallsyms,
                    system_map,
                },
            )?;
            if raw_ip {
                input.symbols = None;
            }
            let opts = kmemtrace::AnalyzeOptions {
                endian: endian.map(Into::into),
                callsite_filter,
                alloc_rows: alloc,
                strict,
                sort,
                examples,
                parallel: !single_thread,
                replay_threads,
                batch_records: None,
                allocator: allocator.map(Into::into),
                // A flame graph and collapsed stacks need every stack.
                max_rows: match format {
                    _ if flamegraph.is_some() => None,
                    ReportFormat::Text => Some(lines.unwrap_or(20)),
                    ReportFormat::Json => lines,
                    ReportFormat::Folded | ReportFormat::Pprof => None,
                },
                group_by,
            };
            let mut report = kmemtrace::analyze(&input, &opts)?;
            if verbose {
                let t = &report.trace;
                eprintln!(
                    "kmemtrace: read {} records ({:.1} MiB in {} CPU files, {}) in {:.2} s",
                    t.files.iter().map(|f| f.records).sum::<u64>(),
                    t.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1048576.0,
                    t.files.len(),
                    t.byte_order
                        .map_or("no byte order".into(), |o| format!("{o}-endian")),
                    started.elapsed().as_secs_f64()
                );
            }
            if let Some(path) = &svg {
                let o = kmemtrace::PlotOptions {
                    lines: lines.unwrap_or(15),
                    ..Default::default()
                };
                write_svg(path, &kmemtrace::report_svg(&report, &o))?;
            }
            if let Some(path) = &flamegraph {
                let title = match &report.trace.kernel_release {
                    Some(k) => format!("kmemtrace: bytes allocated by stack, Linux {k}"),
                    None => "kmemtrace: bytes allocated by stack".to_string(),
                };
                // With --group-by caller the report's groups are callers: the stacks take a
                // second pass.
                let stacks =
                    if report.groups.as_ref().map(|g| g.by) == Some(kmemtrace::GroupBy::Stack) {
                        kmemtrace::flame::report_stacks(&report)
                    } else {
                        let o = kmemtrace::AnalyzeOptions {
                            group_by: kmemtrace::GroupBy::Stack,
                            alloc_rows: false,
                            ..opts.clone()
                        };
                        kmemtrace::flame::report_stacks(&kmemtrace::analyze(&input, &o)?)
                    };
                write_svg(path, &kmemtrace::flame::flame_svg(&stacks, &title))?;
            }
            let dir = input.dir.clone().unwrap_or_default();
            for d in report.damage.regions.iter().filter(|_| !quiet) {
                eprintln!(
                    "kmemtrace: warning: {} at byte {}: {} ({} bytes): {}",
                    dir.join(&d.file).display(),
                    d.offset,
                    d.kind.name(),
                    d.length,
                    d.detail
                );
            }
            let unlisted = report.damage.regions_total - report.damage.regions.len() as u64;
            if unlisted > 0 && !quiet {
                eprintln!("kmemtrace: warning: {unlisted} more damaged regions");
            }
            if format == ReportFormat::Pprof && std::io::stdout().is_terminal() {
                return Err(CliError::Usage(
                    "--format pprof writes a gzip'd profile: redirect stdout to a file".into(),
                ));
            }
            match format {
                ReportFormat::Pprof => {
                    out_with(|mut w| w.write_all(&kmemtrace::pprof::report_pprof(&report)))?
                }
                ReportFormat::Folded => {
                    out(&kmemtrace::render::render_folded(&report, value.into()))?
                }
                ReportFormat::Json => {
                    if let Some(n) = lines {
                        report.truncate_rows(n);
                    }
                    out_with(|w| report.write_json(std::io::BufWriter::with_capacity(1 << 16, w)))?;
                }
                ReportFormat::Text => {
                    let t = kmemtrace::TextOptions {
                        caller: caller || !alloc,
                        alloc,
                        functions: true,
                        lines: lines.unwrap_or(20),
                        group_by: shown,
                    };
                    out(&kmemtrace::render_text(&report, &t))?;
                }
            }
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::Diff {
            paths,
            bases,
            news,
            format,
            fail_on,
            callsite_filter,
            by_address,
            lines,
            svg,
            allocator,
            flamegraph,
            group_by,
        } => {
            let group_by: kmemtrace::GroupBy = group_by.into();
            if flamegraph.is_some() && group_by == kmemtrace::GroupBy::Caller {
                return Err(CliError::Usage(
                    "--flamegraph draws stacks: give it with --group-by stack or callsite".into(),
                ));
            }
            let (bases, news) = match (paths.len(), bases.is_empty(), news.is_empty()) {
                (2, true, true) => (vec![paths[0].clone()], vec![paths[1].clone()]),
                (0, false, false) => (bases, news),
                _ => {
                    return Err(CliError::Usage(
                        "give BASE and NEW, or --base PATH… and --new PATH…".into(),
                    ))
                }
            };
            let thresholds = fail_on
                .iter()
                .map(|e| kmemtrace::Threshold::parse(e))
                .collect::<Result<Vec<_>, _>>()?;
            let aopts = kmemtrace::AnalyzeOptions {
                callsite_filter,
                allocator: allocator.map(Into::into),
                group_by: if flamegraph.is_some() {
                    kmemtrace::GroupBy::Stack
                } else {
                    group_by
                },
                ..Default::default()
            };
            let load = |ps: &[PathBuf]| -> Result<Vec<kmemtrace::Report>, CliError> {
                ps.iter()
                    .map(|p| {
                        kmemtrace::load_side(p, &aopts).map_err(|source| CliError::Side {
                            path: p.clone(),
                            source: Box::new(source),
                        })
                    })
                    .collect()
            };
            let label = |ps: &[PathBuf]| {
                ps.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let (base_reports, new_reports) = (load(&bases)?, load(&news)?);
            if let Some(path) = &flamegraph {
                let title = format!("kmemtrace diff: {} against {}", label(&news), label(&bases));
                write_svg(
                    path,
                    &kmemtrace::flame::diff_flame_svg(
                        &kmemtrace::flame::mean_stacks(&base_reports),
                        &kmemtrace::flame::mean_stacks(&new_reports),
                        &title,
                    ),
                )?;
            }
            let d = kmemtrace::diff(
                &label(&bases),
                &base_reports,
                &label(&news),
                &new_reports,
                &kmemtrace::DiffOptions {
                    by_address,
                    fail_on: thresholds,
                    group_by: if group_by == kmemtrace::GroupBy::Function {
                        kmemtrace::GroupBy::Callsite
                    } else {
                        group_by
                    },
                },
            )?;
            if let Some(path) = &svg {
                let o = kmemtrace::PlotOptions {
                    lines,
                    ..Default::default()
                };
                write_svg(path, &kmemtrace::diff_svg(&d, &o))?;
            }
            let t = kmemtrace::diff::DiffTextOptions { lines };
            match format {
                DiffFormat::Text => out(&kmemtrace::diff::render_diff_text(&d, &t))?,
                DiffFormat::Markdown => out(&kmemtrace::diff::render_diff_markdown(&d, &t))?,
                DiffFormat::Json => out(&d.to_json())?,
            }
            Ok(if d.gate_failed() {
                KmemtraceExitCode::PROBLEMS_FOUND
            } else {
                KmemtraceExitCode::OK
            })
        }
        Cmd::Compare {
            sides,
            format,
            callsite_filter,
        } => {
            let aopts = kmemtrace::AnalyzeOptions {
                callsite_filter,
                ..Default::default()
            };
            let mut loaded = Vec::new();
            for side in &sides {
                let (label, paths) = match side.split_once('=') {
                    Some((l, ps)) if !l.is_empty() && !PathBuf::from(side).exists() => {
                        (l.to_string(), ps)
                    }
                    _ => (String::new(), side.as_str()),
                };
                let mut runs = Vec::new();
                for p in paths
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                {
                    let r = kmemtrace::load_side(&p, &aopts).map_err(|source| CliError::Side {
                        path: p.clone(),
                        source: Box::new(source),
                    })?;
                    runs.push(r);
                }
                if runs.is_empty() {
                    return Err(CliError::Usage(format!("side {side:?} names no run")));
                }
                loaded.push((label, runs));
            }
            let t = kmemtrace::sides::side_by_side(&loaded);
            match format {
                DiffFormat::Text => out(&t.render_text())?,
                DiffFormat::Markdown => out(&t.render_markdown())?,
                DiffFormat::Json => out(&t.to_json())?,
            }
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::Check { paths, format } => {
            let r = kmemtrace::check(&paths);
            // What makes the input unusable is fatal: on stderr, whatever stdout is sent to.
            for u in &r.unusable {
                eprintln!("kmemtrace: {u}");
            }
            match format {
                Format::Text => out(&r.render_findings_text())?,
                Format::Json => out(&r.to_json())?,
            }
            Ok(r.exit_code())
        }
        Cmd::Synth {
            out: dir,
            events,
            cpus,
            nodes,
            endian,
            seed,
            wrap,
            callsites,
            max_live,
            lose,
            no_anomalies,
            allocator,
            stack_depth,
        } => {
            let o = kmemtrace::SynthOptions {
                events,
                cpus,
                nodes,
                order: endian.into(),
                seed,
                wrap,
                callsites,
                max_live,
                lose,
                anomalies: !no_anomalies,
                allocator: allocator.into(),
                stack_depth,
            };
            let r = kmemtrace::synth_to_dir(&o, &dir)?;
            #[derive(serde::Serialize)]
            struct Expected {
                summary: kmemtrace::Summary,
            }
            let v = Expected { summary: r.summary };
            let text = serde_json::to_string_pretty(&v).expect("a Summary serialises");
            out(&(text + "\n"))?;
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::Allocinfo { dir, format, lines } => {
            let dir = kmemtrace::trace_dir(&dir);
            let read = |name: &str| -> Result<Option<Vec<kmemtrace::allocinfo::Entry>>, CliError> {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(kmemtrace::allocinfo::parse(
                        &String::from_utf8_lossy(&bytes),
                        &path.display().to_string(),
                    )?)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(kmemtrace::Error::Io {
                        path,
                        what: "cannot read",
                        side: kmemtrace::IoSide::Input,
                        source,
                    }
                    .into()),
                }
            };
            let before = read("allocinfo.before")?;
            let after = read("allocinfo.after")?.ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: no allocinfo.after (a trace taken by kmt on a kernel with memory \
                     allocation profiling has it)",
                    dir.display()
                ))
            })?;
            let input = kmemtrace::load(
                std::slice::from_ref(&dir),
                &kmemtrace::LoadOptions::default(),
            )?;
            let report = kmemtrace::analyze(&input, &kmemtrace::AnalyzeOptions::default())?;
            let c = kmemtrace::allocinfo::cross_check(
                before.as_deref(),
                &after,
                report.functions.iter().map(|f| {
                    (
                        f.function.as_str(),
                        f.stats.live_bytes,
                        f.stats.live_allocations,
                    )
                }),
            );
            match format {
                Format::Text => out(&c.render_text(lines))?,
                Format::Json => out(&c.to_json())?,
            }
            Ok(if c.agrees() {
                KmemtraceExitCode::OK
            } else {
                KmemtraceExitCode::PROBLEMS_FOUND
            })
        }
        Cmd::Convert { endian, src, dst } => {
            let from = kmemtrace::convert_dir(&src, &dst, endian.into())?;
            note(
                quiet,
                format_args!(
                    "converted {} ({from}-endian) to {} ({}-endian)",
                    src.display(),
                    dst.display(),
                    ByteOrder::from(endian)
                ),
            );
            Ok(KmemtraceExitCode::OK)
        }
        Cmd::ImportPerf {
            input,
            out: dir,
            endian,
        } => {
            use kmemtrace::import_perf::import_perf_named;
            let name = input.display().to_string();
            let n = if input.as_os_str() == "-" {
                import_perf_named(std::io::stdin().lock(), &name, &dir, endian.into())?
            } else {
                let f = std::fs::File::open(&input).map_err(|source| kmemtrace::Error::Io {
                    path: input.clone(),
                    what: "cannot open",
                    side: kmemtrace::IoSide::Input,
                    source,
                })?;
                import_perf_named(std::io::BufReader::new(f), &name, &dir, endian.into())?
            };
            note(
                quiet,
                format_args!("imported {n} records into {}", dir.display()),
            );
            Ok(KmemtraceExitCode::OK)
        }
    }
}
