// SPDX-License-Identifier: GPL-2.0-only
//! One run: build what is missing, boot, wait for the guest under a hard timeout, bring the
//! trace back, analyse it, and leave everything in the output directory with a manifest.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::arch::Arch;
use crate::cache::Cache;
use crate::error::{io, RunError, UsageError};
use crate::image::{self, ImageBuild};
use crate::kernel::{self, KernelBuild, KernelRequest};
pub use crate::manifest::{ExecInfo, Manifest, Phases, QemuInfo};
use crate::outcome::Outcome;
use crate::proc::tail_of;
use crate::program::{self, Exec};
use crate::qemu::{self, Accel, Boot};
use crate::scratch::{self, Scratch};
use crate::share::{self, Intake, TRACE_DIR};
use crate::verdict::{verdict, Ended, Verdict};
use crate::vm::{Guard, Monitor};
use crate::workload::{self, Workload};
use crate::{analysis, doctor};

/// Set by the Ctrl-C / SIGTERM handler; every wait loop checks it.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The vCPUs a guest may have: the kernels are built with `CONFIG_NR_CPUS=8`
/// (kernel/config/common.config).
pub const SMP_RANGE: std::ops::RangeInclusive<u32> = 1..=8;
/// Guest memory in MiB: below 128 the tiny kernels with 32 MiB of relay buffers per CPU do not
/// boot reliably; above 16 GiB is more than this kind of machine should lend one guest.
pub const MEMORY_RANGE: std::ops::RangeInclusive<u32> = 128..=16384;
/// Return addresses per record the kernel series logs at most (`KMEMTRACE_MAX_STACK_DEPTH`).
pub const STACK_DEPTH_RANGE: std::ops::RangeInclusive<u32> = 0..=32;
/// Seconds a guest may be given: at least one, at most a day.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
/// init refuses a larger workload parameter (guest-tools/init.c).
pub const MAX_PARAM: u64 = 1_000_000_000;

/// How the accelerator is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when the guest is the host's arch and a bounded probe boots a guest with it; else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// What `kmt run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub kernel: KernelRequest,
    pub workload: String,
    pub param: Option<u64>,
    /// The program of the `exec` workload (and only of it).
    pub exec: Option<Exec>,
    pub out: Option<PathBuf>,
    pub accel: AccelChoice,
    pub timeout: Option<Duration>,
    pub smp: u32,
    pub memory_mib: u32,
    pub append: Vec<String>,
    /// Return addresses of the call stack logged with every record (`kmemtrace.stack_depth`;
    /// 0: none).
    pub stack_depth: u32,
    /// Install missing Debian packages when running as root.
    pub install_missing: bool,
    /// A kernel already built for `kernel` (by `kmt bisect`'s incremental builds): used as it
    /// is instead of [`kernel::build`].
    pub prebuilt: Option<KernelBuild>,
}

impl RunRequest {
    pub fn arch(&self) -> &'static Arch {
        self.kernel.arch
    }
}

/// The result of a run.
#[derive(Debug)]
pub struct RunResult {
    pub outcome: Outcome,
    pub out_dir: PathBuf,
    /// What went wrong (with the console tail and log paths), or a one-line success.
    pub message: String,
    pub manifest: Manifest,
    /// The text report, when the analysis ran.
    pub report_text: Option<String>,
}

/// A new output directory under `./kmt-runs/`, named by arch, workload and time.
pub fn default_out_dir(arch: &Arch, workload: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    let base = PathBuf::from("kmt-runs").join(format!("{stamp}-{}-{workload}", arch.name));
    let mut p = base.clone();
    let mut n = 1;
    while p.exists() {
        n += 1;
        p = PathBuf::from(format!("{}.{n}", base.display()));
    }
    p
}

/// Why `dir` cannot be an output directory, if it cannot: it must not exist, or be an empty
/// directory. Nothing is created or written here.
pub fn check_out_dir(dir: &Path) -> Result<(), UsageError> {
    match fs::symlink_metadata(dir) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                Ok(())
            } else {
                Err(UsageError::new(format!(
                    "the output directory {} exists and is not empty: choose another --out (kmt never overwrites)",
                    dir.display()
                )))
            }
        }
        Ok(_) => Err(UsageError::new(format!(
            "--out {}: exists and is not a directory (kmt never overwrites)",
            dir.display()
        ))),
    }
}

/// Creates `dir` after [`check_out_dir`]: nothing a user has is ever overwritten, and a refused
/// directory is not written to at all.
pub fn prepare_out_dir(dir: &Path) -> Result<(), RunError> {
    check_out_dir(dir)?;
    fs::create_dir_all(dir).map_err(io("create", dir))
}

/// "FLAG VALUE: give A to B UNIT" when `value` is outside `range`. Pure.
/// The kernel command-line token that turns call stacks on: none for 0 (the kernel's default,
/// records without stacks).
pub fn stack_depth_arg(depth: u32) -> Option<String> {
    (depth > 0).then(|| format!("kmemtrace.stack_depth={depth}"))
}

fn out_of_range<T: PartialOrd + std::fmt::Display>(
    flag: &str,
    value: T,
    range: &std::ops::RangeInclusive<T>,
    unit: &str,
) -> Option<String> {
    (!range.contains(&value)).then(|| {
        format!(
            "{flag} {value}: give {} to {} {unit}",
            range.start(),
            range.end()
        )
    })
}

/// Checks every argument of a run before anything is built, booted or written: ranges,
/// the workload and its program, the files named, the output directory. Cheap. Returns the
/// `exec` workload's program, read and checked.
pub fn validate(req: &RunRequest) -> Result<Option<Vec<u8>>, UsageError> {
    let u = |m: String| Err(UsageError::new(m));
    let Some(work) = workload::find(&req.workload) else {
        return u(format!(
            "unknown workload {:?} (known: {})",
            req.workload,
            workload::names().collect::<Vec<_>>().join(", ")
        ));
    };
    let ranges = [
        out_of_range(
            "--smp",
            req.smp,
            &SMP_RANGE,
            "vCPUs (the kernels' CONFIG_NR_CPUS)",
        ),
        out_of_range("--memory", req.memory_mib, &MEMORY_RANGE, "MiB"),
        out_of_range(
            "--stack-depth",
            req.stack_depth,
            &STACK_DEPTH_RANGE,
            "frames (the series' KMEMTRACE_MAX_STACK_DEPTH)",
        ),
        req.timeout
            .and_then(|t| out_of_range("--timeout", t.as_secs(), &TIMEOUT_RANGE, "seconds")),
    ];
    if let Some(why) = ranges.into_iter().flatten().next() {
        return u(why);
    }
    if let Some(p) = req.param.filter(|&p| p > MAX_PARAM) {
        return u(format!("--param {p}: at most {MAX_PARAM}"));
    }
    for a in &req.append {
        if a.is_empty() || a.chars().any(char::is_whitespace) {
            return u(format!(
                "--append {a:?}: one kernel command-line token per --append, without blanks"
            ));
        }
    }
    kernel::check_request(&req.kernel).map_err(|e| UsageError::new(e.to_string()))?;
    let program = match (&req.exec, work.needs_program) {
        (Some(e), true) => Some(
            program::load(e, req.arch()).map_err(|e| UsageError::new(format!("--exec: {e}")))?,
        ),
        (None, false) => None,
        (None, true) => {
            return u("the exec workload needs a program (kmt run --exec PROGRAM)".into());
        }
        (Some(_), false) => {
            return u(format!(
                "--exec runs the exec workload, not {}",
                req.workload
            ));
        }
    };
    if let Some(out) = &req.out {
        check_out_dir(out)?;
    }
    Ok(program)
}

/// The hard timeout when the user gives none: TCG is slow, and some architectures slower still.
pub fn default_timeout(arch: &Arch, accel: Accel, work: &Workload) -> Duration {
    Duration::from_secs(
        work.base_timeout_s * u64::from(accel.slowness()) * u64::from(arch.tcg_slowness),
    )
}

/// The job file init reads from the share; `args` are the `exec` workload's program's.
pub fn job_file(workload: &str, param: Option<u64>, args: &[String]) -> String {
    let mut s = format!("# written by kmt\nworkload={workload}\nout={TRACE_DIR}\n");
    if let Some(p) = param {
        s.push_str(&format!("param={p}\n"));
    }
    for a in args {
        s.push_str(&format!("arg={a}\n"));
    }
    s
}

/// Runs one workload on one architecture. Never panics on a failed step: every failure is an
/// outcome with a message, and the output directory holds what there is. A request that fails
/// [`validate`] ends with `usage_error` before anything is built or written, the output
/// directory included.
pub fn run(req: &RunRequest, cache: &Cache) -> RunResult {
    let started = Instant::now();
    let arch = req.arch();
    let out_dir = req
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(arch, &req.workload));
    let mut m = Manifest {
        kmt_manifest: 1,
        kmt_version: env!("CARGO_PKG_VERSION"),
        outcome: Outcome::HarnessError,
        message: String::new(),
        arch: arch.name,
        workload: req.workload.clone(),
        param: req.param,
        exec: None,
        smp: req.smp,
        memory_mib: req.memory_mib,
        timeout_s: 0,
        kernel_cmdline: String::new(),
        qemu: QemuInfo::default(),
        kernel: None,
        image: None,
        trace: None,
        share: None,
        phases: Phases::default(),
    };
    let mut report_text = None;
    // Only a directory this run created gets a manifest: a refused one is not touched.
    let mut created = false;
    let result = validate(req).map_err(RunError::from).and_then(|program| {
        scratch::sweep();
        prepare_out_dir(&out_dir)?;
        created = true;
        run_steps(req, program, cache, &out_dir, &mut m, &mut report_text)
    });
    let (outcome, message) = match result {
        Ok(message) => (Outcome::Ok, message),
        // Ctrl-C reaches make and QEMU too; whatever step failed because of it, say why.
        Err(e) if INTERRUPTED.load(Ordering::SeqCst) => (
            Outcome::Interrupted,
            format!("interrupted during the run: {}", e.chain()),
        ),
        Err(e) => (e.outcome(), e.chain()),
    };
    m.outcome = outcome;
    m.message = message.clone();
    m.phases.total_s = started.elapsed().as_secs_f64();
    if created {
        if let Ok(json) = serde_json::to_string_pretty(&m) {
            let _ = fs::write(out_dir.join("manifest.json"), json + "\n");
        }
    }
    RunResult {
        outcome,
        out_dir,
        message,
        manifest: m,
        report_text,
    }
}

/// The steps after [`validate`]; `program` is the `exec` workload's, as validate read it.
fn run_steps(
    req: &RunRequest,
    program: Option<Vec<u8>>,
    cache: &Cache,
    out_dir: &Path,
    m: &mut Manifest,
    report_text: &mut Option<String>,
) -> Result<String, RunError> {
    let arch = req.arch();
    if let (Some(e), Some(bytes)) = (&req.exec, &program) {
        m.exec = Some(ExecInfo {
            program: e.program.display().to_string(),
            args: e.args.clone(),
            sha256: format!("{:x}", Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
        });
    }
    let work = workload::find(&req.workload)
        .ok_or_else(|| UsageError::new(format!("unknown workload {:?}", req.workload)))?;
    let t = Instant::now();
    let setup_log = out_dir.join("setup.log");
    // A user's own tree needs no Debian source package.
    let sources = match (&req.kernel.kernel_src, &req.prebuilt) {
        (Some(_), _) | (_, Some(_)) => Vec::new(),
        (None, None) => vec![req.kernel.kernel],
    };
    doctor::ensure_prerequisites(&[arch], &sources, req.install_missing, &setup_log)
        .map_err(RunError::Prerequisites)?;
    m.phases.prerequisites_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let kernel = match &req.prebuilt {
        Some(k) => k.clone(),
        None => kernel::build(&req.kernel, cache)?,
    };
    m.phases.kernel_s = t.elapsed().as_secs_f64();
    m.kernel = Some(kernel.clone());

    let t = Instant::now();
    let img = image::build(arch, &req.kernel.repo, cache)?;
    m.phases.image_s = t.elapsed().as_secs_f64();
    m.image = Some(img.clone());

    let accel = match req.accel {
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Auto if doctor::kvm_works(arch, &kernel, cache) => Accel::Kvm,
        AccelChoice::Auto => Accel::Tcg,
    };
    let timeout = req
        .timeout
        .unwrap_or_else(|| default_timeout(arch, accel, work));
    m.timeout_s = timeout.as_secs();

    let t = Instant::now();
    let booted = boot(
        req,
        &kernel,
        &img,
        program.as_deref(),
        accel,
        timeout,
        out_dir,
        m,
    );
    m.phases.boot_s = t.elapsed().as_secs_f64();
    booted?;

    let t = Instant::now();
    // With stacks the user asked who allocates: the report charges wrappers' allocations to
    // their callers (`kmemtrace report --group-by caller`).
    let group_by = if req.stack_depth > 0 {
        kmemtrace::GroupBy::Caller
    } else {
        kmemtrace::GroupBy::Callsite
    };
    let analysed = analysis::analyse(&out_dir.join(TRACE_DIR), out_dir, group_by);
    m.phases.analysis_s = t.elapsed().as_secs_f64();
    let a = analysed?;
    *report_text = Some(a.report_text.clone());
    m.trace = Some(a.figures.clone());
    match a.figures.damage_summary() {
        Some(d) => Err(RunError::Damaged(format!(
            "{d}\nreport: {}",
            out_dir.join("report.txt").display()
        ))),
        None => Ok(format!(
            "{} events from {} CPUs, 0 overruns; report in {}",
            a.figures.events,
            a.figures.cpus,
            out_dir.join("report.txt").display()
        )),
    }
}

/// Boots the guest and waits for it; on success the trace is in `out_dir/trace`.
#[allow(clippy::too_many_arguments)]
fn boot(
    req: &RunRequest,
    kernel: &KernelBuild,
    img: &ImageBuild,
    program: Option<&[u8]>,
    accel: Accel,
    timeout: Duration,
    out_dir: &Path,
    m: &mut Manifest,
) -> Result<(), RunError> {
    let arch = req.arch();
    let tmp = Scratch::new("kmt-run-").map_err(io(
        "create the run's scratch directory in",
        std::env::temp_dir(),
    ))?;
    let share = tmp.path().join("share");
    fs::create_dir(&share).map_err(io("create the 9p share", &share))?;
    let args = req.exec.as_ref().map_or(&[][..], |e| &e.args[..]);
    let job = share.join("job");
    fs::write(&job, job_file(&req.workload, req.param, args))
        .map_err(io("write the job file", &job))?;
    if let Some(bytes) = program {
        let p = share.join(program::SHARE_NAME);
        fs::write(&p, bytes).map_err(io("put the program on the share at", &p))?;
    }
    let console_log = out_dir.join("console.log");
    // Known: run_steps looked it up.
    let needs = workload::find(&req.workload).map_or(&[][..], |w| w.append);
    let mut extra: Vec<String> = needs.iter().map(|a| a.to_string()).collect();
    extra.extend(stack_depth_arg(req.stack_depth));
    extra.extend(req.append.iter().cloned());
    let b = Boot {
        arch,
        accel,
        kernel: kernel.image.clone(),
        initrd: img.initramfs.clone(),
        share: share.clone(),
        console_log: console_log.clone(),
        qmp_socket: tmp.path().join("qmp.sock"),
        smp: req.smp,
        memory_mib: req.memory_mib,
        extra_append: extra,
    };
    m.kernel_cmdline = qemu::kernel_cmdline(arch, &b.extra_append);
    let args = qemu::args(&b);
    m.qemu.command = qemu::shell_line(arch.qemu, &args);
    m.qemu.accel = Some(accel);
    // The whole command line (600 characters) is in manifest.json; -v shows it here.
    tracing::info!(
        "boot: {} {}, {} vCPUs, {} MiB, {}",
        arch.qemu,
        arch.name,
        req.smp,
        req.memory_mib,
        match accel {
            Accel::Tcg => "TCG",
            Accel::Kvm => "KVM",
        }
    );
    tracing::debug!("boot: {}", m.qemu.command);
    let qemu_log = out_dir.join("qemu.log");
    let mut guard =
        Guard::spawn(arch.qemu, &args, &qemu_log).map_err(|source| RunError::Spawn {
            qemu: arch.qemu,
            source,
        })?;
    let started = Instant::now();
    let mut monitor = Monitor::connect(&b.qmp_socket, started + Duration::from_secs(10)).ok();
    if let Some(mon) = monitor.as_mut() {
        m.qemu.version = mon.version().ok();
    }
    let ended = wait(&mut guard, &mut monitor, &console_log, started + timeout);
    m.qemu.shutdown_reason = ended.shutdown_reason.clone();
    m.qemu.exit_status = ended.exit_status.clone();
    drop(guard);
    // Whatever the outcome, keep what the guest left on the share that the contract allows.
    let intake = share::take(&share, out_dir, req.smp, &["job", program::SHARE_NAME]);
    for r in &intake.rejected {
        tracing::warn!(
            "the guest left {} on the share: not taken: {}",
            r.path,
            r.why
        );
    }
    let kept = trace_complete(&intake, out_dir);
    m.share = Some(intake);
    let console = read_console(&console_log);
    let tail = format!(
        "--- console tail ---\n{}\n--- console log: {} (QEMU's own output: {}) ---",
        tail_of(&console, 30),
        console_log.display(),
        qemu_log.display()
    );
    match verdict(&console, &ended) {
        Verdict::Interrupted => Err(RunError::Interrupted(format!("QEMU was stopped\n{tail}"))),
        Verdict::Panic(line) => Err(RunError::Panic { line, tail }),
        Verdict::TimedOut => Err(RunError::Timeout {
            seconds: timeout.as_secs(),
            tail,
        }),
        Verdict::NoSentinel => Err(RunError::Boot { tail }),
        Verdict::GuestFailed(reason) => Err(RunError::Collector(format!(
            "the guest reported failure: {reason}\nguest log: {}\n{tail}",
            out_dir.join("guest.log").display(),
        ))),
        Verdict::Ok => kept.map_err(RunError::Collector),
    }
}

/// Err when the trace the guest said it wrote did not come back whole from the share.
fn trace_complete(intake: &Intake, out_dir: &Path) -> Result<(), String> {
    if !out_dir.join(TRACE_DIR).is_dir() {
        return Err(format!(
            "the guest left no {TRACE_DIR}/ directory on the share"
        ));
    }
    if !out_dir.join(TRACE_DIR).join("meta.json").is_file() {
        let why = intake
            .rejected
            .iter()
            .find(|r| r.path == format!("{TRACE_DIR}/meta.json"))
            .map(|r| format!(" (not taken: {})", r.why))
            .unwrap_or_default();
        return Err(format!(
            "the trace has no meta.json{why}: the collector did not finish"
        ));
    }
    Ok(())
}

/// The console log as text. An oopsing kernel can print bytes that are not UTF-8 (a corrupted
/// string, a register dump of one): read strictly, one such byte made the whole log empty, so
/// neither the crash marker (which stops the wait early) nor the panic line was found and the
/// guest ran to its deadline. Empty when the file cannot be read.
fn read_console(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits for QEMU to exit by itself (the guest reboots after its sentinel; a panic reboots too),
/// stopping it at the deadline, on a crash marker that does not end the guest, or on Ctrl-C.
fn wait(
    guard: &mut Guard,
    monitor: &mut Option<Monitor>,
    console: &Path,
    deadline: Instant,
) -> Ended {
    let mut ended = Ended::default();
    let mut last_poll = Instant::now();
    // When the sentinel or a crash marker appears, the guest has a grace period to end itself.
    let mut grace_until: Option<Instant> = None;
    loop {
        if let Ok(Some(status)) = guard.try_wait() {
            ended.exit_status = Some(status.to_string());
            break;
        }
        let now = Instant::now();
        if INTERRUPTED.load(Ordering::SeqCst) {
            ended.interrupted = true;
            break;
        }
        if now >= deadline {
            ended.timed_out = true;
            break;
        }
        if grace_until.is_some_and(|g| now >= g) {
            break;
        }
        if grace_until.is_none() {
            let text = read_console(console);
            if qemu::find_sentinel(&text).is_some() || qemu::find_failure(&text).is_some() {
                grace_until = Some(now + Duration::from_secs(15));
            }
        }
        if now.duration_since(last_poll) >= Duration::from_millis(500) {
            last_poll = now;
            if let Some(mon) = monitor.as_mut() {
                match mon.poll_shutdown() {
                    Ok(Some(reason)) => ended.shutdown_reason = Some(reason),
                    Ok(None) => {}
                    // QEMU closes the monitor as it exits; the process check above tells.
                    Err(_) => *monitor = None,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if ended.exit_status.is_none() {
        if let Some(mon) = monitor.as_mut() {
            mon.quit();
        }
        if let Ok(Some(s)) = guard.wait_for(Duration::from_secs(3)) {
            ended.exit_status = Some(s.to_string());
        }
        guard.kill();
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::lookup;

    #[test]
    fn an_existing_nonempty_out_dir_is_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("mine.txt"), "precious").unwrap();
        let e = prepare_out_dir(d.path()).unwrap_err();
        assert!(e.chain().contains("not empty"), "{}", e.chain());
        assert_eq!(e.outcome(), Outcome::UsageError);
        assert_eq!(
            fs::read_to_string(d.path().join("mine.txt")).unwrap(),
            "precious"
        );
        prepare_out_dir(&d.path().join("new/sub")).unwrap();
        let file = d.path().join("mine.txt");
        assert!(
            check_out_dir(&file).is_err(),
            "a file is not an output directory"
        );
    }

    #[test]
    fn stack_depth_is_a_kernel_parameter_only_when_on() {
        assert_eq!(
            stack_depth_arg(0),
            None,
            "0: the kernel's default, no token"
        );
        assert_eq!(
            stack_depth_arg(8).as_deref(),
            Some("kmemtrace.stack_depth=8")
        );
        assert_eq!(
            stack_depth_arg(*STACK_DEPTH_RANGE.end()).as_deref(),
            Some("kmemtrace.stack_depth=32")
        );
    }

    fn request(out: &Path) -> RunRequest {
        RunRequest {
            kernel: KernelRequest::new(
                lookup("x86_64").unwrap(),
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
            ),
            workload: "selftest".into(),
            param: None,
            exec: None,
            out: Some(out.to_path_buf()),
            accel: AccelChoice::Tcg,
            timeout: None,
            smp: 2,
            memory_mib: 512,
            append: Vec::new(),
            stack_depth: 0,
            install_missing: false,
            prebuilt: None,
        }
    }

    /// Regression: `kmt run --out DIR` with a non-empty DIR said it never overwrites, then
    /// wrote manifest.json into DIR, replacing the user's.
    #[test]
    fn a_refused_out_dir_is_not_written_to() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("manifest.json"), "mine").unwrap();
        let cache = Cache {
            root: d.path().join("no-cache"),
        };
        let r = run(&request(d.path()), &cache);
        assert_eq!(r.outcome, Outcome::UsageError, "{}", r.message);
        assert_eq!(
            fs::read_to_string(d.path().join("manifest.json")).unwrap(),
            "mine"
        );
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Regression: `kmt run --smp 0 --timeout 1` built a kernel for minutes before failing,
    /// and `--workload nosuch` exited 1 leaving an output folder.
    #[test]
    fn bad_arguments_stop_before_anything_is_built_or_written() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let cache = Cache {
            root: d.path().join("cache"),
        };
        type Change = Box<dyn Fn(&mut RunRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("--smp 0", Box::new(|r| r.smp = 0)),
            ("--smp 9", Box::new(|r| r.smp = 9)),
            ("--memory 16", Box::new(|r| r.memory_mib = 16)),
            (
                "--timeout 0",
                Box::new(|r| r.timeout = Some(Duration::ZERO)),
            ),
            ("nosuch", Box::new(|r| r.workload = "nosuch".into())),
            ("--param", Box::new(|r| r.param = Some(MAX_PARAM + 1))),
            ("--append", Box::new(|r| r.append = vec!["a b".into()])),
            ("--stack-depth 33", Box::new(|r| r.stack_depth = 33)),
            (
                "--config",
                Box::new(|r| r.kernel.extra_fragments = vec!["/no/such.config".into()]),
            ),
            (
                "--kernel-src",
                Box::new(|r| r.kernel.kernel_src = Some("/no/such/tree".into())),
            ),
            ("exec", Box::new(|r| r.workload = "exec".into())),
            (
                "--exec",
                Box::new(|r| {
                    r.workload = "exec".into();
                    r.exec = Some(Exec {
                        program: "/no/such/program".into(),
                        args: Vec::new(),
                    });
                }),
            ),
        ];
        for (what, change) in cases {
            let mut req = request(&out);
            change(&mut req);
            let started = Instant::now();
            let r = run(&req, &cache);
            assert_eq!(r.outcome, Outcome::UsageError, "{what}: {}", r.message);
            assert_eq!(r.outcome.exit_code(), 2);
            assert!(started.elapsed() < Duration::from_secs(2), "{what}");
            assert!(!out.exists(), "{what}: the output directory was created");
            assert!(!cache.root.exists(), "{what}: the cache was touched");
        }
    }

    #[test]
    fn a_console_with_bytes_that_are_not_utf8_still_shows_its_oops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut bytes = b"[    0.45] kernel BUG at mm/mempolicy.c:1943!\n".to_vec();
        bytes.extend_from_slice(&[0xc0, 0xff, 0xfe, b'\n']);
        bytes.extend_from_slice(b"[    0.46] Oops: Exception in kernel mode, sig: 5 [#1]\n");
        std::fs::write(&log, &bytes).unwrap();
        let text = read_console(&log);
        assert!(qemu::find_failure(&text).is_some(), "{text}");
        assert_eq!(read_console(&dir.path().join("missing")), "");
    }

    #[test]
    fn timeouts_scale_with_accel_and_arch() {
        let x = lookup("x86_64").unwrap();
        let p = lookup("ppc64").unwrap();
        let w = &workload::WORKLOADS[0];
        assert!(default_timeout(x, Accel::Tcg, w) > default_timeout(x, Accel::Kvm, w));
        assert!(default_timeout(p, Accel::Tcg, w) > default_timeout(x, Accel::Tcg, w));
    }

    #[test]
    fn the_job_file_follows_the_contract() {
        assert_eq!(
            job_file("fork", Some(100), &[]),
            "# written by kmt\nworkload=fork\nout=trace\nparam=100\n"
        );
        assert!(!job_file("selftest", None, &[]).contains("param"));
        assert_eq!(
            job_file("exec", None, &["64".into(), "-v".into()]),
            "# written by kmt\nworkload=exec\nout=trace\narg=64\narg=-v\n"
        );
    }

    #[test]
    fn default_out_dirs_are_new() {
        let p = default_out_dir(lookup("arm64").unwrap(), "selftest");
        assert!(p.starts_with("kmt-runs"));
        assert!(p.to_string_lossy().ends_with("-arm64-selftest"));
    }

    #[test]
    fn a_trace_without_meta_json_is_incomplete() {
        let out = tempfile::tempdir().unwrap();
        fs::create_dir(out.path().join("trace")).unwrap();
        let e = trace_complete(&Intake::default(), out.path()).unwrap_err();
        assert!(e.contains("meta.json"), "{e}");
        fs::write(out.path().join("trace/meta.json"), "{}").unwrap();
        trace_complete(&Intake::default(), out.path()).unwrap();
    }
}
