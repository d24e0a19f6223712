// SPDX-License-Identifier: GPL-2.0-only
//! The outcomes of a run, each with its own exit code (a documented table, docs/cli.md).

use serde::Serialize;

/// How a `kmt` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything worked and the trace is whole.
    Ok,
    /// Something kmt needs is not installed (and kmt could not install it).
    PrerequisitesMissing,
    /// Preparing or building the kernel failed.
    KernelBuildFailed,
    /// Building guest-tools or the initramfs failed.
    ImageBuildFailed,
    /// The guest ended without printing the sentinel (and without a recognised crash).
    BootFailed,
    /// The console shows a kernel panic, Oops, BUG, RCU stall or soft lockup.
    KernelPanic,
    /// The guest was still running when the timeout expired.
    Timeout,
    /// init reported failure (`KMT-STATUS: fail ...`): the collector or the workload failed.
    CollectorFailed,
    /// The trace came back, but with overruns, lost events or damaged records.
    TraceDamaged,
    /// The analysis of the trace failed.
    AnalysisFailed,
    /// `kmt compare`: every run worked and a `--fail-on` threshold was crossed.
    ThresholdCrossed,
    /// `kmt bisect`: no first bad commit could be named and confirmed.
    BisectInconclusive,
    /// `kmt run --workload selftest`: the trace is whole, and the selftest's figures differ from
    /// its known answers.
    SelftestDiffers,
    /// Ctrl-C or SIGTERM stopped kmt.
    Interrupted,
    /// A bad argument or combination of arguments (also clap's own usage errors): found before
    /// anything is built or written.
    UsageError,
    /// Anything else: an I/O error of the harness itself.
    HarnessError,
}

impl Outcome {
    /// Every outcome, for the documentation table.
    pub const ALL: [Outcome; 16] = [
        Outcome::Ok,
        Outcome::HarnessError,
        Outcome::UsageError,
        Outcome::PrerequisitesMissing,
        Outcome::KernelBuildFailed,
        Outcome::ImageBuildFailed,
        Outcome::BootFailed,
        Outcome::KernelPanic,
        Outcome::Timeout,
        Outcome::CollectorFailed,
        Outcome::TraceDamaged,
        Outcome::AnalysisFailed,
        Outcome::ThresholdCrossed,
        Outcome::BisectInconclusive,
        Outcome::SelftestDiffers,
        Outcome::Interrupted,
    ];

    /// The process exit code. 2 is also what clap exits with on a malformed command line.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Ok => 0,
            Outcome::HarnessError => 1,
            Outcome::UsageError => 2,
            Outcome::PrerequisitesMissing => 10,
            Outcome::KernelBuildFailed => 11,
            Outcome::ImageBuildFailed => 12,
            Outcome::BootFailed => 13,
            Outcome::KernelPanic => 14,
            Outcome::Timeout => 15,
            Outcome::CollectorFailed => 16,
            Outcome::TraceDamaged => 17,
            Outcome::AnalysisFailed => 18,
            Outcome::ThresholdCrossed => 19,
            Outcome::BisectInconclusive => 20,
            Outcome::SelftestDiffers => 21,
            Outcome::Interrupted => 130,
        }
    }

    /// What the outcome means, as docs/cli.md's exit-code table, `--help` and the man page say it
    /// (a test keeps that table equal to this).
    pub fn meaning(self) -> &'static str {
        match self {
            Outcome::Ok => "the trace came back whole and was analysed",
            Outcome::HarnessError => "kmt itself failed (an I/O error of its own, e.g. a full disk; a reader that closes stdout early, as `head` does, is not one: the output stops and the code is the command's)",
            Outcome::UsageError => "a bad argument, found before anything is built or written: an unknown workload, `--smp` outside 1–8, `--memory` outside 128–16384, `--timeout` outside 1–86400, a missing `--config`/`--kernel-src`/`--exec` file, an `--exec` program for another machine, a bad `--fail-on`, an `--out` that exists and is not empty (also clap's own errors); nothing is created, not even the output directory",
            Outcome::PrerequisitesMissing => "a package is missing and could not be installed; the message has the `apt-get` line",
            Outcome::KernelBuildFailed => "patching, configuring or building the kernel failed (last 50 log lines + log path)",
            Outcome::ImageBuildFailed => "building guest-tools or the initramfs failed",
            Outcome::BootFailed => "the guest ended without the `KMT-STATUS` sentinel",
            Outcome::KernelPanic => "the console shows a panic, Oops, BUG, RCU stall or soft lockup",
            Outcome::Timeout => "the guest was still running at the deadline; QEMU was stopped",
            Outcome::CollectorFailed => "init printed `KMT-STATUS: fail <reason>` or the trace is incomplete",
            Outcome::TraceDamaged => "the trace came back with overruns, lost events or damaged records",
            Outcome::AnalysisFailed => "the analysis could not read the trace (not one record of it decodes, for one)",
            Outcome::ThresholdCrossed => "`kmt compare`: every run worked and a `--fail-on` threshold was crossed",
            Outcome::BisectInconclusive => "`kmt bisect`: no first bad commit named and confirmed (`--bad` crosses no threshold, `--good` cannot be run, only skipped commits are left, or the confirmation runs disagree); bisect.json says which",
            Outcome::SelftestDiffers => "`kmt run --workload selftest`: the trace is whole, but the selftest's figures differ from its known answers (`kernel/selftest-expected/<kernel>-<allocator>.json`); the verdict lists them",
            Outcome::Interrupted => "Ctrl-C / SIGTERM; QEMU was stopped and reaped",
        }
    }

    /// The snake_case name used in manifests and summaries.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_usage_is_clap_s() {
        let mut codes: Vec<i32> = Outcome::ALL.iter().map(|o| o.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Outcome::ALL.len());
        // clap exits 2 on a malformed command line: kmt's own usage errors agree with it.
        assert_eq!(Outcome::UsageError.exit_code(), 2);
    }

    /// docs/cli.md's exit-code table is this table: same codes, same names, same order.
    #[test]
    fn the_documented_table_agrees_with_the_code() {
        let readme = include_str!("../../docs/cli.md");
        let start = readme
            .find("## Outcomes and exit codes")
            .expect("docs/cli.md has the exit-code table");
        let rows: Vec<(i32, String, String)> = readme[start..]
            .lines()
            .skip_while(|l| !l.starts_with("| exit"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[1].parse().expect("an exit code"),
                    cells[2].trim_matches('`').to_string(),
                    cells[3].to_string(),
                )
            })
            .collect();
        let mut code: Vec<(i32, String, String)> = Outcome::ALL
            .iter()
            .map(|o| (o.exit_code(), o.name(), o.meaning().to_string()))
            .collect();
        code.sort();
        assert_eq!(rows, code);
    }

    #[test]
    fn names_are_snake_case() {
        assert_eq!(Outcome::TraceDamaged.name(), "trace_damaged");
        assert_eq!(Outcome::Ok.to_string(), "ok");
    }
}
