// SPDX-License-Identifier: GPL-2.0-only
//! `kmt`: the kmemtrace harness's command line. Its exit-code table is in docs/cli.md.
//!
//! Everything kmt prints on stdout goes through [`write_stdout`] (the `out!` and `outln!`
//! macros; `print!` and `println!`, which panic on a closed stdout, are denied): a reader that
//! went away (`kmt doctor | head`) ends the output quietly and the command runs to its end and
//! exits with its own code. SIGPIPE stays ignored, as Rust leaves it: kmt also writes to QEMU's
//! QMP socket and to its children's pipes, where the signal would kill it past the guard that
//! stops QEMU.
#![deny(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{CommandFactory, Parser, Subcommand};
use kmemtrace::cli_doc::{self, Section};

use kmt::arch::{self, Arch, ArchArg};
use kmt::cache::Cache;
use kmt::error::{RunError, UsageError};
use kmt::kernel::KernelRequest;
use kmt::outcome::Outcome;
use kmt::program::Exec;
use kmt::run::{self, AccelChoice, RunRequest};
use kmt::workload;
use kmt::{bisect, compare, doctor, image, kernel, kernels};

/// `print!` on stdout through [`write_stdout`]: `out!(…)?`.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format!($($arg)*).as_bytes())
    };
}

/// `println!` on stdout through [`write_stdout`]: `outln!(…)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

#[derive(Parser)]
#[command(
    name = "kmt",
    version,
    about = "Build a kmemtrace kernel, boot it in QEMU, collect and analyse its allocation trace",
    after_long_help = long_help_tail()
)]
struct Cli {
    /// The kmt repository (default: $KMT_REPO, else found from the current directory).
    #[arg(long, global = true)]
    repo: Option<PathBuf>,
    /// More log lines: -v debug, -vv trace (KMT_LOG, when set, decides instead).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings, errors and the result: no progress lines and no spinner.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct KernelArgs {
    /// Architecture: x86_64, arm64 or ppc64 (default: the host's).
    #[arg(long)]
    arch: Option<ArchArg>,
    /// Kernel version: 6.12, 7.3 or 6.1 (Debian's linux-source-<version> and kmt's series for it;
    /// default 6.12, or the version of --kernel-src).
    #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
    kernel: Option<String>,
    /// Slab allocator: slub or slub-tiny on 6.12; slub, slab or slob on 6.1 (default: slub).
    #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
    allocator: Option<String>,
    /// Your own kernel tree instead of Debian's source (never modified: a copy is patched); its
    /// Makefile's version picks the series.
    #[arg(long)]
    kernel_src: Option<PathBuf>,
    /// An extra Kconfig fragment merged after kmt's own (repeatable).
    #[arg(long = "config")]
    configs: Vec<PathBuf>,
}

/// The kernel version and allocator for `--kernel`, `--allocator` and `--kernel-src`.
fn select_kernel(
    kernel: Option<&str>,
    allocator: Option<&str>,
    kernel_src: Option<&std::path::Path>,
) -> anyhow::Result<(&'static kernels::KernelVersion, &'static kernels::Allocator)> {
    let tree = kernel_src.map(|dir| {
        let text = std::fs::read_to_string(dir.join("Makefile")).unwrap_or_default();
        (dir, kernels::makefile_version(&text))
    });
    Ok(kernels::select(kernel, allocator, tree)?)
}

/// The man page's EXIT STATUS: [`Outcome::ALL`] with their codes and meanings.
fn exit_status() -> Section {
    Section {
        title: "EXIT STATUS",
        items: Outcome::ALL
            .iter()
            .map(|o| {
                (
                    format!("{} {}", o.exit_code(), o.name()),
                    o.meaning().to_string(),
                )
            })
            .collect(),
    }
}

/// The environment variables kmt reads.
fn environment() -> Section {
    let items = [
        ("KMT_CACHE_DIR", "the build cache (default: $XDG_CACHE_HOME/kmt, else ~/.cache/kmt)"),
        ("KMT_REPO", "the kmt repository when --repo is not given (default: found from the current directory)"),
        ("KMT_LOG", "the log filter, tracing's EnvFilter syntax (default: info; e.g. KMT_LOG=debug)"),
        ("KMT_SKIP_E2E", "1: the test suite marks its QEMU and perf trials ignored (for work on the analysis alone; CI refuses it)"),
        ("NO_COLOR", "set and not empty: no colour in the log lines, even on a terminal (https://no-color.org)"),
    ];
    Section {
        title: "ENVIRONMENT",
        items: items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// `--help`'s last part: the exit codes and the environment.
fn long_help_tail() -> String {
    let mut s = String::new();
    for section in [exit_status(), environment()] {
        s.push_str(&format!("{}:\n", section.title));
        for (term, text) in section.items {
            s.push_str(&format!("  {term}: {}\n", text.replace('`', "")));
        }
    }
    s
}

#[derive(Subcommand)]
enum Command {
    /// Check the prerequisites of the default run and print the apt-get line for what is
    /// missing.
    ///
    /// By default what `kmt run` needs without options: the host's architecture and kernel
    /// 6.12. --arch and --kernel name others; --all checks every architecture and kernel.
    /// Exit 0, or 10 when something is missing.
    Doctor {
        /// These architectures (repeatable; default: the host's).
        #[arg(long)]
        arch: Vec<ArchArg>,
        /// These kernel versions' source packages (repeatable; default: 6.12, what `kmt run`
        /// builds).
        #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
        kernel: Vec<String>,
        /// Every architecture and every kernel version (with --arch: every kernel version for
        /// those; with --kernel: every architecture for those).
        #[arg(long)]
        all: bool,
    },
    /// Install the missing prerequisites (Debian/Ubuntu, as root).
    Setup {
        #[arg(long)]
        arch: Vec<ArchArg>,
        /// Only these kernel versions' source packages (default: all).
        #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
        kernel: Vec<String>,
    },
    /// Build (or find in the cache) the kmemtrace kernel for an architecture.
    Kernel {
        #[command(flatten)]
        kernel: KernelArgs,
        /// Print the build's cache entry (`kernels/ARCH-KEY`, the hash of everything the build
        /// depends on: source, series, fragments, compiler) and build nothing: a CI cache key.
        #[arg(long)]
        print_key: bool,
    },
    /// Build guest-tools and the initramfs for an architecture.
    Image {
        #[arg(long)]
        arch: Option<ArchArg>,
    },
    /// Build what is missing, boot, collect, check and report.
    Run(RunArgs),
    /// Delete cached kernels and source trees that no current build uses (older patches,
    /// fragments or compilers), for every architecture.
    Prune,
    /// Run a workload on two kernels (or two command lines), --repeat times each, per
    /// architecture, and diff them: exit 19 when a --fail-on threshold is crossed.
    Compare(Box<CompareArgs>),
    /// Find the commit of your kernel git tree that changed an allocation figure: each step
    /// builds a commit with the kmemtrace series (incrementally), runs the workload --repeat
    /// times and judges it against --good's runs with --fail-on, as `kmt compare` does; the
    /// first bad commit is confirmed on --confirm further runs of it and of its parent. Exit 0
    /// when found and confirmed, 20 when not. Your tree is only read.
    Bisect(Box<BisectArgs>),
    /// Judge the commit checked out in --kernel-src against --good, for `git bisect run`:
    /// exit 0 good, 1 bad, 125 skip (the series does not apply, the kernel does not build or
    /// boot), 128 when it cannot judge at all (a bad argument, --good cannot run, kmt's own
    /// error: git bisect run stops), 130 interrupted. --good's runs are made once and kept.
    BisectStep(Box<BisectStepArgs>),
    /// The cost of tracing: boot each architecture once with the bench workload, which times
    /// the same allocation-heavy operation with tracing off, with kmemtrace and with ftrace's
    /// kmem events, round after round; print per mode the time per operation, the added cost
    /// per kmem event and its ratio to ftrace's (bench.json too).
    Bench {
        /// Architectures (default: all).
        #[arg(long)]
        arch: Vec<ArchArg>,
        /// Kernel version: 6.12, 7.3 or 6.1 (default 6.12).
        #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
        kernel: Option<String>,
        /// Slab allocator (default: slub).
        #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
        allocator: Option<String>,
        /// Operations per round and mode.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100000))]
        ops: u64,
        /// Instead of the modes: the sustained load. A worker per vCPU repeats the operation as
        /// fast as it can, then at 1/8 to 7/8 of that rate, SECONDS per step, with kmemtrace on
        /// and the collector draining; print per step the event rate made and drained, the
        /// backlog and the overruns, and the highest rate sustained (run it with --smp 2 and 4).
        #[arg(long, value_name = "SECONDS", conflicts_with = "ops", value_parser = clap::value_parser!(u64).range(1..=600))]
        load: Option<u64>,
        /// An extra Kconfig fragment (repeatable): with
        /// kernel/config/extra/mem-alloc-profiling.config the bench times memory allocation
        /// profiling as a fourth mode.
        #[arg(long = "config")]
        configs: Vec<PathBuf>,
        /// Directory for the runs and bench.json (must not exist or be empty; default: a new
        /// one under ./kmt-runs/).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelChoice,
        /// vCPUs.
        #[arg(long, default_value_t = 2)]
        smp: u32,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Print bench.json instead of the table.
        #[arg(long)]
        json: bool,
        /// Do not install missing Debian packages even when running as root.
        #[arg(long)]
        no_install: bool,
    },
    /// Run workloads on every architecture and print one line per run.
    Matrix {
        /// Architectures (default: all).
        #[arg(long)]
        arch: Vec<ArchArg>,
        /// Workloads (default: selftest).
        #[arg(long, value_parser = PossibleValuesParser::new(workload::without_program()))]
        workload: Vec<String>,
        /// Runs of each architecture and workload, back to back, with a tally of outcomes (a
        /// soak test: e.g. --repeat 50).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
        repeat: u32,
        /// Directory for the runs (must not exist or be empty; default: a new one under
        /// ./kmt-runs/).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelChoice,
        /// Kernel version: 6.12, 7.3 or 6.1 (default 6.12).
        #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
        kernel: Option<String>,
        /// Slab allocator: slub or slub-tiny on 6.12; slub, slab or slob on 6.1 (default: slub).
        #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
        allocator: Option<String>,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Print the shell completion script for SHELL (e.g. `kmt completions bash >
    /// /usr/share/bash-completion/completions/kmt`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff: kmt(1), or kmt-SUBCOMMAND(1) (e.g. `kmt man run | man -l -`).
    Man {
        /// A subcommand whose page to print.
        subcommand: Option<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    kernel: KernelArgs,
    #[command(flatten)]
    work: WorkloadArgs,
    /// Extra kernel command-line arguments (repeatable).
    #[arg(long)]
    append: Vec<String>,
    #[command(flatten)]
    trace: TraceArgs,
    #[command(flatten)]
    guest: GuestArgs,
}

/// What the kernel traces besides the records' fixed fields: shared by `run`, `compare` and
/// `matrix`.
#[derive(clap::Args)]
struct TraceArgs {
    /// Log up to N return addresses of the call stack with every record (0 to 32; 0: none),
    /// for `kmemtrace report --group-by caller|stack`, folded stacks, flame graphs and pprof.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(*run::STACK_DEPTH_RANGE.end())))]
    stack_depth: u32,
}

/// What the guest runs while tracing: shared by `run` and `compare`.
#[derive(clap::Args)]
struct WorkloadArgs {
    /// The workload (default: exec with --exec, else selftest).
    #[arg(long, value_parser = PossibleValuesParser::new(workload::names()),
          long_help = format!("The workload (default: exec with --exec, else selftest):\n{}", workload::help()))]
    workload: Option<String>,
    /// The workload's size parameter (see --workload; at most 1e9).
    #[arg(long)]
    param: Option<u64>,
    /// Your program as the workload: a static executable for the guest's architecture, run
    /// --param times (default 1) while tracing; it must exit 0.
    #[arg(long, value_name = "PROGRAM")]
    exec: Option<PathBuf>,
    /// An argument for the --exec program (repeatable).
    #[arg(
        long = "exec-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "exec"
    )]
    exec_args: Vec<String>,
}

impl WorkloadArgs {
    /// The workload, its parameter and its program.
    fn resolve(self) -> anyhow::Result<(String, Option<u64>, Option<Exec>)> {
        let workload = match (self.workload, &self.exec) {
            (None, Some(_)) => "exec".to_string(),
            (None, None) => "selftest".to_string(),
            (Some(w), Some(_)) if w != "exec" => anyhow::bail!(UsageError::new(format!(
                "--exec runs the exec workload; drop --workload {w}"
            ))),
            (Some(w), _) => w,
        };
        let exec = self.exec.map(|program| Exec {
            program,
            args: self.exec_args,
        });
        Ok((workload, self.param, exec))
    }
}

/// How guests run and where their output goes: shared by `run` and `compare`.
#[derive(clap::Args)]
struct GuestArgs {
    /// Output directory (must not exist or be empty; default: a new one under ./kmt-runs/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    vm: VmArgs,
}

/// How guests run: shared by `run`, `compare`, `bisect` and `bisect-step`.
#[derive(clap::Args)]
struct VmArgs {
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelChoice,
    /// Hard timeout per guest, in seconds (default: scaled by accelerator and arch).
    #[arg(long)]
    timeout: Option<u64>,
    /// vCPUs.
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// Do not install missing Debian packages even when running as root.
    #[arg(long)]
    no_install: bool,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// Architectures (default: the host's).
    #[arg(long)]
    arch: Vec<ArchArg>,
    /// Both sides: kernel version, 6.12, 7.3 or 6.1 (default 6.12, or the --kernel-src tree's).
    #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
    kernel: Option<String>,
    /// Base side: kernel version (default: --kernel).
    #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
    base_kernel: Option<String>,
    /// New side: kernel version (default: --kernel).
    #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
    new_kernel: Option<String>,
    /// Both sides: slab allocator (slub, slub-tiny on 6.12; slub, slab, slob on 6.1; default slub).
    #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
    allocator: Option<String>,
    /// Base side: slab allocator (default: --allocator), e.g. --base-allocator slab
    /// --new-allocator slub to compare allocators on one kernel.
    #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
    base_allocator: Option<String>,
    /// New side: slab allocator (default: --allocator).
    #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
    new_allocator: Option<String>,
    /// Base side: a kernel tree (default: Debian's source of --kernel, or --kernel-src).
    #[arg(long)]
    base_kernel_src: Option<PathBuf>,
    /// New side: a kernel tree.
    #[arg(long)]
    new_kernel_src: Option<PathBuf>,
    /// Both sides: a kernel tree.
    #[arg(long)]
    kernel_src: Option<PathBuf>,
    /// Base side: an extra Kconfig fragment (repeatable).
    #[arg(long = "base-config")]
    base_configs: Vec<PathBuf>,
    /// New side: an extra Kconfig fragment (repeatable).
    #[arg(long = "new-config")]
    new_configs: Vec<PathBuf>,
    /// Both sides: an extra Kconfig fragment (repeatable).
    #[arg(long = "config")]
    configs: Vec<PathBuf>,
    /// Base side: extra kernel command-line arguments (repeatable).
    #[arg(long)]
    base_append: Vec<String>,
    /// New side: extra kernel command-line arguments (repeatable),
    /// e.g. kmemtrace.selftest_grow=1.
    #[arg(long)]
    new_append: Vec<String>,
    /// Both sides: extra kernel command-line arguments (repeatable).
    #[arg(long)]
    append: Vec<String>,
    #[command(flatten)]
    work: WorkloadArgs,
    #[command(flatten)]
    trace: TraceArgs,
    /// Runs per side and architecture; a change counts only outside the spread of the repeats.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Compare only call sites in functions matching GLOB (repeatable; default for the
    /// selftest: kmemtrace_selftest_*, else every call site).
    #[arg(long = "callsite-filter", value_name = "GLOB")]
    callsite_filter: Vec<String>,
    /// Compare every call site even for the selftest.
    #[arg(long, conflicts_with = "callsite_filter")]
    all_callsites: bool,
    /// Exit 19 when a change crosses this threshold (repeatable; kmemtrace diff's grammar,
    /// e.g. callsite:foo:bytes_allocated:+10%).
    #[arg(long = "fail-on", value_name = "EXPR")]
    fail_on: Vec<String>,
    /// What to print: the diff as text, markdown or JSON.
    #[arg(long, default_value = "text", value_parser = ["text", "markdown", "json"])]
    format: String,
    /// Call-site rows in the diffs.
    #[arg(long, default_value_t = 20)]
    lines: usize,
    #[command(flatten)]
    guest: GuestArgs,
}

/// What `bisect` and `bisect-step` share.
#[derive(clap::Args)]
struct BisectCommon {
    /// Your kernel git tree (never modified: kmt checks commits out in a clone of its own).
    #[arg(long, value_name = "DIR")]
    kernel_src: PathBuf,
    /// A commit without the change (the base every step is judged against).
    #[arg(long, value_name = "REV")]
    good: String,
    /// Architecture: x86_64, arm64 or ppc64 (default: the host's).
    #[arg(long)]
    arch: Option<ArchArg>,
    /// Kernel version every commit must be (default: each commit's Makefile picks the series).
    #[arg(long, value_name = "VERSION", value_parser = PossibleValuesParser::new(kernels::names()))]
    kernel: Option<String>,
    /// Slab allocator (default: the version's default, slub).
    #[arg(long, value_parser = PossibleValuesParser::new(kernels::all_allocator_names()))]
    allocator: Option<String>,
    /// An extra Kconfig fragment merged after kmt's own (repeatable).
    #[arg(long = "config")]
    configs: Vec<PathBuf>,
    /// Extra kernel command-line arguments (repeatable).
    #[arg(long)]
    append: Vec<String>,
    #[command(flatten)]
    work: WorkloadArgs,
    /// Runs per commit; a change counts only outside the spread of the repeats.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Judge only call sites in functions matching GLOB (repeatable; default for the
    /// selftest: kmemtrace_selftest_*, else every call site).
    #[arg(long = "callsite-filter", value_name = "GLOB")]
    callsite_filter: Vec<String>,
    /// A commit is bad when a change crosses this threshold (repeatable, at least one;
    /// kmemtrace diff's grammar, e.g. callsite:alloc_pipe_info:bytes_allocated:+10%).
    #[arg(long = "fail-on", value_name = "EXPR", required = true)]
    fail_on: Vec<String>,
    #[command(flatten)]
    vm: VmArgs,
}

#[derive(clap::Args)]
struct BisectArgs {
    #[command(flatten)]
    common: BisectCommon,
    /// A commit with the change (a descendant of --good).
    #[arg(long, value_name = "REV")]
    bad: String,
    /// Further runs of the first bad commit and of its parent that must agree.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    confirm: u32,
    /// Output directory: new or empty, or one an interrupted bisect of the same arguments left
    /// (it continues from its bisect.json). Default: a new one under ./kmt-runs/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Call-site rows in the first bad commit's diff.
    #[arg(long, default_value_t = 20)]
    lines: usize,
}

#[derive(clap::Args)]
struct BisectStepArgs {
    #[command(flatten)]
    common: BisectCommon,
    /// The state directory: --good's runs and every step's (default: one per tree and
    /// arguments in the kmt cache, so that each `git bisect run` step reuses --good's runs).
    #[arg(long)]
    state: Option<PathBuf>,
}

impl BisectCommon {
    fn request(
        self,
        repo: &std::path::Path,
        bad: String,
        confirm: u32,
        out: PathBuf,
        lines: usize,
    ) -> anyhow::Result<bisect::BisectRequest> {
        let (workload, param, exec) = self.work.resolve()?;
        Ok(bisect::BisectRequest {
            tree: self.kernel_src,
            good: self.good,
            bad,
            arch: resolve_arch(self.arch)?,
            kernel: self.kernel.as_deref().map(kernels::by_name).transpose()?,
            allocator: self.allocator,
            repo: repo.to_path_buf(),
            configs: self.configs,
            append: self.append,
            callsite_filter: if self.callsite_filter.is_empty() {
                compare::default_callsite_filter(&workload)
            } else {
                self.callsite_filter
            },
            workload,
            param,
            exec,
            repeat: self.repeat,
            confirm,
            fail_on: self.fail_on,
            out,
            accel: self.vm.accel,
            timeout: self.vm.timeout.map(Duration::from_secs),
            smp: self.vm.smp,
            memory_mib: self.vm.memory,
            install_missing: !self.vm.no_install,
            lines,
        })
    }
}

fn resolve_arch(a: Option<ArchArg>) -> anyhow::Result<&'static Arch> {
    match a {
        Some(ArchArg(a)) => Ok(a),
        None => Arch::host().ok_or_else(|| {
            anyhow::anyhow!(UsageError::new(format!(
                "this host's architecture is not one kmt boots; pass --arch ({})",
                arch::names().join(", ")
            )))
        }),
    }
}

/// The kernel versions named (default: all).
fn kernel_versions(names: &[String]) -> anyhow::Result<Vec<&'static kernels::KernelVersion>> {
    if names.is_empty() {
        return Ok(kernels::KERNELS.iter().collect());
    }
    Ok(names
        .iter()
        .map(|n| kernels::by_name(n))
        .collect::<Result<_, _>>()?)
}

fn arches(list: &[ArchArg]) -> Vec<&'static Arch> {
    if list.is_empty() {
        arch::ARCHES.iter().collect()
    } else {
        list.iter().map(|a| a.0).collect()
    }
}

fn kernel_request(repo: &std::path::Path, k: &KernelArgs) -> anyhow::Result<KernelRequest> {
    let (kernel, allocator) = select_kernel(
        k.kernel.as_deref(),
        k.allocator.as_deref(),
        k.kernel_src.as_deref(),
    )?;
    Ok(KernelRequest {
        arch: resolve_arch(k.arch)?,
        kernel,
        allocator,
        repo: repo.to_path_buf(),
        kernel_src: k.kernel_src.clone(),
        extra_fragments: k.configs.clone(),
    })
}

/// The log filter when `KMT_LOG` is not set: `-q` warnings, `-v` debug, `-vv` trace, else info.
fn log_level(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    }
}

/// Colour on a terminal unless `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    // Parsed first: -v and -q set the log level (clap's own errors and --help need no log).
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // git bisect run takes 1–127 (but 125) for "bad": a malformed bisect-step command
            // line must stop the bisect instead.
            let step = std::env::args().any(|a| a == "bisect-step");
            let code = match e.exit_code() {
                0 => 0,
                _ if step => 128,
                c => c,
            };
            std::process::exit(code);
        }
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let colour = colour(terminal, std::env::var_os("NO_COLOR"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KMT_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(log_level(cli.verbose, cli.quiet))
            }),
        );
    // A person at a terminal reads no RFC 3339 timestamps; logs kept in files (CI) keep them.
    if terminal {
        logs.without_time().init();
    } else {
        logs.init();
    }
    if cli.quiet {
        kmt::proc::QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // Ctrl-C and SIGTERM stop the wait loops, whose guards then kill and reap QEMU.
    let _ =
        ctrlc::set_handler(|| run::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
    match real_main(cli) {
        Ok(o) => ExitCode::from(o.exit_code() as u8),
        Err(e) => {
            eprintln!("kmt: error: {e:#}");
            ExitCode::from(outcome_of(&e).exit_code() as u8)
        }
    }
}

/// The outcome of an error that ended a command: typed errors carry their own, anything else
/// is the harness's own failure.
fn outcome_of(e: &anyhow::Error) -> Outcome {
    if let Some(r) = e.downcast_ref::<RunError>() {
        r.outcome()
    } else if e.downcast_ref::<UsageError>().is_some() {
        Outcome::UsageError
    } else {
        Outcome::HarnessError
    }
}

/// Writes `bytes` to stdout, as everything kmt prints there: a reader that went away
/// (`kmt doctor | head`) ends the output quietly (this and every later write is dropped), any
/// other failure is an error, never a panic.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

fn real_main(cli: Cli) -> anyhow::Result<Outcome> {
    // What needs no repository.
    match cli.command {
        Command::Completions { shell } => {
            write_stdout(&cli_doc::completions(Cli::command(), shell))?;
            Ok(Outcome::Ok)
        }
        Command::Man { subcommand } => {
            // The page without --help's text version of these: they have their own sections.
            let cmd = Cli::command().after_long_help(None::<&str>);
            let extra = [exit_status(), environment()];
            let page = match subcommand {
                None => cli_doc::man_page(cmd, &extra)?,
                Some(name) => cli_doc::subcommand_man_page(&cmd, &name, &extra)
                    .ok_or_else(|| UsageError::new(format!("no subcommand {name:?}")))??,
            };
            write_stdout(&page)?;
            Ok(Outcome::Ok)
        }
        command => real_main_in_repo(cli.repo, command),
    }
}

fn real_main_in_repo(repo: Option<PathBuf>, command: Command) -> anyhow::Result<Outcome> {
    let repo = match repo.or_else(kmt::find_repo) {
        Some(r) => r,
        None => anyhow::bail!("cannot find the kmt repository (kernel/ and guest-tools/): run from inside it or pass --repo"),
    };
    let cache = Cache::from_env();
    match command {
        // Printed by real_main, which needs no repository for them.
        Command::Completions { .. } | Command::Man { .. } => Ok(Outcome::Ok),
        Command::Doctor { arch, kernel, all } => {
            let named: Vec<&Arch> = arch.iter().map(|a| a.0).collect();
            let named_kernels = kernel
                .iter()
                .map(|n| kernels::by_name(n))
                .collect::<Result<Vec<_>, _>>()?;
            let (a, k) = doctor::doctor_scope(&named, &named_kernels, all, Arch::host())?;
            let all = doctor::prerequisites(&a, &k);
            let missing: Vec<_> = all
                .iter()
                .filter(|p| !doctor::present(p))
                .cloned()
                .collect();
            for p in &all {
                let mark = if doctor::present(p) {
                    "ok     "
                } else {
                    "MISSING"
                };
                outln!("{mark} {:<40} (Debian package {})", p.what, p.package)?;
            }
            let kvm = if doctor::kvm_device_usable() {
                "usable device (a boot probe decides at run time)"
            } else {
                "not usable: runs use TCG"
            };
            for line in doctor::fetched_sources(&k, &cache) {
                outln!("{line}")?;
            }
            outln!("info    /dev/kvm: {kvm}")?;
            if missing.is_empty() {
                let names = |v: Vec<&str>| v.join(", ");
                let every = a.len() == arch::ARCHES.len() && k.len() == kernels::KERNELS.len();
                outln!(
                    "all prerequisites are installed for {} with Linux {}{}",
                    names(a.iter().map(|a| a.name).collect()),
                    names(k.iter().map(|k| k.name).collect()),
                    if every {
                        ""
                    } else {
                        " (--all: every architecture and kernel)"
                    }
                )?;
                Ok(Outcome::Ok)
            } else {
                outln!(
                    "install with:\n  {}",
                    doctor::install_line(&doctor::packages(&missing))
                )?;
                Ok(Outcome::PrerequisitesMissing)
            }
        }
        Command::Setup { arch, kernel } => {
            let a = arches(&arch);
            let k = kernel_versions(&kernel)?;
            fs_create(&cache.root.join("logs"))?;
            let log = cache.root.join("logs/setup.log");
            match doctor::ensure_prerequisites(&a, &k, true, &log)
                .and_then(|()| doctor::fetch_sources(&k, &cache, &log).map_err(|e| e.to_string()))
            {
                Ok(()) => {
                    outln!("all prerequisites are installed")?;
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    eprintln!("kmt: {e}");
                    Ok(Outcome::PrerequisitesMissing)
                }
            }
        }
        Command::Kernel {
            kernel: k,
            print_key,
        } => {
            let req = kernel_request(&repo, &k)?;
            kernel::check_request(&req).map_err(|e| UsageError::new(e.to_string()))?;
            if print_key {
                return match kernel::current_entries(&req, &cache) {
                    Ok([_, kernel]) => {
                        outln!("{kernel}")?;
                        Ok(Outcome::Ok)
                    }
                    Err(e) => {
                        eprintln!("kmt: {e}");
                        Ok(Outcome::KernelBuildFailed)
                    }
                };
            }
            match kernel::build(&req, &cache) {
                Ok(b) => {
                    outln!("{}", b.image.display())?;
                    eprintln!(
                        "kmt: kernel {} {} in {:.1} s (config {})",
                        req.arch.name,
                        if b.built { "built" } else { "from the cache" },
                        b.seconds,
                        b.config_hash
                    );
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    eprintln!("kmt: kernel build failed: {e}");
                    Ok(Outcome::KernelBuildFailed)
                }
            }
        }
        Command::Image { arch } => {
            let a = resolve_arch(arch)?;
            match image::build(a, &repo, &cache) {
                Ok(b) => {
                    outln!("{}", b.initramfs.display())?;
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    eprintln!("kmt: image build failed: {e}");
                    Ok(Outcome::ImageBuildFailed)
                }
            }
        }
        Command::Run(r) => {
            let (workload, param, exec) = r.work.resolve()?;
            let req = RunRequest {
                kernel: kernel_request(&repo, &r.kernel)?,
                workload,
                param,
                exec,
                out: r.guest.out,
                accel: r.guest.vm.accel,
                timeout: r.guest.vm.timeout.map(Duration::from_secs),
                smp: r.guest.vm.smp,
                memory_mib: r.guest.vm.memory,
                append: r.append,
                stack_depth: r.trace.stack_depth,
                install_missing: !r.guest.vm.no_install,
                prebuilt: None,
            };
            let mut res = run::run(&req, &cache);
            // The selftest's verdict first, then its own call sites; report.txt has the rest.
            let verdict = (res.outcome == Outcome::Ok)
                .then(|| kmt::known_answers::for_run(&req, &res.out_dir))
                .flatten();
            match &verdict {
                Some(Ok(v)) => outln!("{}\n\n{}", v.headline(), v.report_text)?,
                Some(Err(why)) => {
                    eprintln!("kmt: selftest: not held to its known answers: {why}");
                    if let Some(t) = &res.report_text {
                        outln!("{t}")?;
                    }
                }
                None => {
                    if let Some(t) = &res.report_text {
                        outln!("{t}")?;
                    }
                }
            }
            if let Some(Ok(v)) = &verdict {
                if !v.differences.is_empty() {
                    res.outcome = Outcome::SelftestDiffers;
                    res.message = v.headline();
                }
            }
            if res.outcome == Outcome::Ok {
                eprintln!("kmt: ok: {}", res.message);
            } else {
                eprintln!("kmt: {}: {}", res.outcome, res.message);
            }
            // A refused run made no directory.
            if res.out_dir.is_dir() {
                eprintln!("kmt: output in {}", res.out_dir.display());
            }
            Ok(res.outcome)
        }
        Command::Compare(c) => {
            let c = *c;
            let (workload, param, exec) = c.work.resolve()?;
            let arches: Vec<&'static Arch> = if c.arch.is_empty() {
                vec![resolve_arch(None)?]
            } else {
                c.arch.iter().map(|a| a.0).collect()
            };
            let side = |version: &Option<String>,
                        allocator: &Option<String>,
                        src: &Option<PathBuf>,
                        configs: &[PathBuf],
                        append: &[String]|
             -> anyhow::Result<compare::Side> {
                let kernel_src = src.clone().or_else(|| c.kernel_src.clone());
                let (kernel, allocator) = select_kernel(
                    version.as_deref().or(c.kernel.as_deref()),
                    allocator.as_deref().or(c.allocator.as_deref()),
                    kernel_src.as_deref(),
                )?;
                Ok(compare::Side {
                    kernel,
                    allocator,
                    kernel_src,
                    configs: c.configs.iter().chain(configs).cloned().collect(),
                    append: c.append.iter().chain(append).cloned().collect(),
                })
            };
            let base = side(
                &c.base_kernel,
                &c.base_allocator,
                &c.base_kernel_src,
                &c.base_configs,
                &c.base_append,
            )?;
            let new = side(
                &c.new_kernel,
                &c.new_allocator,
                &c.new_kernel_src,
                &c.new_configs,
                &c.new_append,
            )?;
            if base.kernel == new.kernel
                && base.allocator == new.allocator
                && base.kernel_src == new.kernel_src
                && base.configs == new.configs
                && base.append == new.append
            {
                eprintln!(
                    "kmt: note: both sides are the same kernel and command line: this measures the noise between runs"
                );
            }
            let req = compare::CompareRequest {
                out: c
                    .guest
                    .out
                    .unwrap_or_else(|| run::default_out_dir(arches[0], "compare")),
                arches,
                repo: repo.clone(),
                base,
                new,
                callsite_filter: if c.all_callsites {
                    Vec::new()
                } else if c.callsite_filter.is_empty() {
                    compare::default_callsite_filter(&workload)
                } else {
                    c.callsite_filter
                },
                workload,
                param,
                exec,
                repeat: c.repeat,
                stack_depth: c.trace.stack_depth,
                accel: c.guest.vm.accel,
                timeout: c.guest.vm.timeout.map(Duration::from_secs),
                smp: c.guest.vm.smp,
                memory_mib: c.guest.vm.memory,
                install_missing: !c.guest.vm.no_install,
                fail_on: c.fail_on,
                lines: c.lines,
            };
            let res = match compare::compare(&req, &cache, |p, r| {
                eprintln!(
                    "kmt: {} {} run {}: {} ({:.1} s)",
                    p.arch.name,
                    p.side.name(),
                    p.index,
                    r.outcome,
                    r.manifest.phases.total_s
                );
            }) {
                Ok(res) => res,
                Err(e) => {
                    eprintln!("kmt: {}: {}", e.outcome(), e.chain());
                    return Ok(e.outcome());
                }
            };
            let t = kmemtrace::diff::DiffTextOptions { lines: c.lines };
            if c.format == "json" {
                // One JSON object: architecture name -> its diff.
                let all: serde_json::Map<String, serde_json::Value> = res
                    .arches
                    .iter()
                    .filter_map(|a| {
                        Some((
                            a.arch.to_string(),
                            serde_json::to_value(a.diff.as_ref()?).ok()?,
                        ))
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                for a in &res.arches {
                    if let Some(d) = &a.diff {
                        let text = if c.format == "markdown" {
                            kmemtrace::diff::render_diff_markdown(d, &t)
                        } else {
                            kmemtrace::diff::render_diff_text(d, &t)
                        };
                        outln!("== {} ==\n{text}", a.arch)?;
                    }
                }
            }
            for a in &res.arches {
                eprintln!("kmt: {}: {}: {}", a.arch, a.outcome, a.message);
            }
            eprintln!("kmt: output in {}", res.out.display());
            Ok(res.outcome)
        }
        Command::Bisect(b) => {
            let b = *b;
            let arch = resolve_arch(b.common.arch)?;
            let out = b
                .out
                .unwrap_or_else(|| run::default_out_dir(arch, "bisect"));
            let req = b.common.request(&repo, b.bad, b.confirm, out, b.lines)?;
            let mut progress = |m: &str| eprintln!("kmt: {m}");
            match bisect::bisect(&req, &cache, &mut progress) {
                Ok(res) => {
                    outln!("{}", res.report)?;
                    eprintln!("kmt: output in {}", req.out.display());
                    Ok(res.outcome)
                }
                Err(e) => {
                    eprintln!("kmt: {}: {}", e.outcome(), e.chain());
                    Ok(e.outcome())
                }
            }
        }
        Command::BisectStep(b) => {
            let b = *b;
            let state = match &b.state {
                Some(s) => s.clone(),
                None => bisect::default_state_dir(
                    &cache,
                    &b.common.kernel_src,
                    &std::env::args().collect::<Vec<_>>(),
                ),
            };
            let req = b.common.request(&repo, "HEAD".into(), 1, state, 20)?;
            let mut progress = |m: &str| eprintln!("kmt: {m}");
            let code = match bisect::step_only(&req, &cache, &mut progress) {
                Ok(r) => {
                    let s = &r.step;
                    outln!(
                        "{} {}: {} ({}){}",
                        s.commit.short(),
                        s.commit.subject,
                        match s.verdict {
                            Some(bisect::Verdict::Bad) => "bad",
                            Some(bisect::Verdict::Skip) => "skip",
                            _ => "good",
                        },
                        s.message,
                        if r.tested {
                            ""
                        } else {
                            ", from the state directory"
                        }
                    )?;
                    for f in &s.figures {
                        let (bm, _) = bisect::mean_stddev(&f.base);
                        let (nm, _) = bisect::mean_stddev(&f.new);
                        outln!(
                            "  {}: {bm:.0} -> {nm:.0}{}",
                            f.expr,
                            if f.crossed { " (crossed)" } else { "" }
                        )?;
                    }
                    eprintln!("kmt: state in {}", req.out.display());
                    bisect::step_exit_code(s.verdict)
                }
                Err(e) => {
                    eprintln!("kmt: {}: {}", e.outcome(), e.chain());
                    if e.outcome() == Outcome::Interrupted {
                        130
                    } else {
                        128
                    }
                }
            };
            std::process::exit(code);
        }
        Command::Bench {
            arch,
            kernel,
            allocator,
            ops,
            load,
            configs,
            out,
            accel,
            smp,
            memory,
            json,
            no_install,
        } => {
            let a = arches(&arch);
            let (k, al) = select_kernel(kernel.as_deref(), allocator.as_deref(), None)?;
            let req = kmt::bench::BenchRequest {
                out: out.unwrap_or_else(|| kmt::bench::default_out(a[0])),
                kernel: KernelRequest {
                    kernel: k,
                    allocator: al,
                    extra_fragments: configs,
                    ..KernelRequest::new(a[0], repo.clone())
                },
                arches: a,
                ops,
                load,
                accel,
                smp,
                memory_mib: memory,
                install_missing: !no_install,
            };
            let mut progress = |m: &str| eprintln!("kmt: {m}");
            match kmt::bench::bench(&req, &cache, &mut progress) {
                Ok(results) => {
                    if json {
                        out!(
                            "{}",
                            std::fs::read_to_string(req.out.join("bench.json")).unwrap_or_default()
                        )?;
                    } else {
                        out!("{}", kmt::bench::render(&results, smp))?;
                    }
                    eprintln!("kmt: output in {}", req.out.display());
                    let worst = results
                        .iter()
                        .map(|r| r.outcome)
                        .find(|o| *o != Outcome::Ok)
                        .unwrap_or(Outcome::Ok);
                    Ok(worst)
                }
                Err(e) => {
                    eprintln!("kmt: {}: {}", e.outcome(), e.chain());
                    Ok(e.outcome())
                }
            }
        }
        Command::Prune => {
            let mut keep = Vec::new();
            // The repository's example fragments (kernel/config/extra) count as current too:
            // the e2e trial `config_regression` builds x86_64 with one of them.
            let mut extras: Vec<Vec<PathBuf>> = vec![Vec::new()];
            if let Ok(dir) = std::fs::read_dir(repo.join("kernel/config/extra")) {
                let mut found: Vec<PathBuf> = dir
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "config"))
                    .collect();
                found.sort();
                extras.extend(found.into_iter().map(|p| vec![p]));
            }
            let builds = kernels::KERNELS.iter().flat_map(|k| {
                k.allocators
                    .iter()
                    .flat_map(move |al| arch::ARCHES.iter().map(move |a| (k, *al, a)))
            });
            for ((kernel, allocator, arch), extra_fragments) in
                builds.flat_map(|b| extras.iter().map(move |e| (b, e.clone())))
            {
                let req = KernelRequest {
                    arch,
                    kernel,
                    allocator,
                    repo: repo.clone(),
                    kernel_src: None,
                    extra_fragments,
                };
                // Without its compiler an arch's current key is unknown: remove nothing.
                let e = kernel::current_entries(&req, &cache).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot tell {}'s current kernel ({e}); nothing removed",
                        arch.name
                    )
                })?;
                keep.extend(e);
            }
            keep.sort();
            keep.dedup();
            let removed = cache.prune(&["kernels", "source"], &keep)?;
            for r in &removed {
                outln!("removed {}", r.display())?;
            }
            eprintln!(
                "kmt: removed {} cache entries, kept {}",
                removed.len(),
                keep.join(", ")
            );
            Ok(Outcome::Ok)
        }
        Command::Matrix {
            arch,
            workload,
            repeat,
            out,
            accel,
            kernel,
            allocator,
            trace,
        } => {
            let a = arches(&arch);
            let (kernel, allocator) = select_kernel(kernel.as_deref(), allocator.as_deref(), None)?;
            let req = kmt::matrix::MatrixRequest {
                kernel,
                allocator,
                out: out.unwrap_or_else(|| run::default_out_dir(a[0], "matrix")),
                arches: a,
                workloads: if workload.is_empty() {
                    vec!["selftest".to_string()]
                } else {
                    workload
                },
                repeat,
                repo: repo.clone(),
                accel,
                stack_depth: trace.stack_depth,
            };
            let mut lines = Vec::new();
            let res = kmt::matrix::run_matrix(&req, &cache, |p, r| {
                if r.outcome != Outcome::Ok {
                    eprintln!(
                        "kmt: {} {} run {}: {}: {}",
                        p.arch.name, p.workload, p.index, r.outcome, r.message
                    );
                } else if repeat > 1 {
                    eprintln!(
                        "kmt: {} {} run {}/{repeat}: ok ({:.1} s)",
                        p.arch.name, p.workload, p.index, r.manifest.phases.total_s
                    );
                }
                lines.push(kmt::matrix::matrix_line(r));
            });
            let res = match res {
                Ok(res) => res,
                Err(e) => {
                    eprintln!("kmt: {}: {}", e.outcome(), e.chain());
                    return Ok(e.outcome());
                }
            };
            outln!("Linux {}, {}", req.kernel.name, req.allocator.name)?;
            outln!("{}", kmt::matrix::MATRIX_HEADER)?;
            for l in lines {
                outln!("{l}")?;
            }
            if repeat > 1 {
                outln!("\n{}", kmt::matrix::render_tally(&res.tallies))?;
            }
            eprintln!("kmt: runs in {}", req.out.display());
            Ok(res.outcome)
        }
    }
}

fn fs_create(p: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(p).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_and_colour() {
        assert_eq!(log_level(0, false), "info");
        assert_eq!(log_level(1, false), "debug");
        assert_eq!(log_level(3, false), "trace");
        assert_eq!(log_level(0, true), "warn");
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        let cli = Cli::try_parse_from(["kmt", "-vv", "doctor"]).unwrap();
        assert_eq!((cli.verbose, cli.quiet), (2, false));
        let cli = Cli::try_parse_from(["kmt", "doctor", "-q"]).unwrap();
        assert!(cli.quiet);
        assert!(Cli::try_parse_from(["kmt", "-q", "-v", "doctor"]).is_err());
    }
}
