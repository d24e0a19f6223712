// SPDX-License-Identifier: GPL-2.0-only
//! The workloads init runs in the guest (docs/contracts.md §2), as one table like the
//! architectures: the CLI's value parser and help, the validation, the default timeout and
//! kernel command line, and the compare's default call-site filter all come from it. init.c has
//! the guest's half of each row; a test keeps the two tables equal.

/// One workload.
#[derive(Debug)]
pub struct Workload {
    /// The name on the command line and in init's job file.
    pub name: &'static str,
    /// What init does, for the help.
    pub runs: &'static str,
    /// What `--param` means.
    pub param: &'static str,
    /// init's default `param` (guest-tools/init.c, `workloads[]`).
    pub default_param: u64,
    /// Kernel command-line tokens the workload needs.
    pub append: &'static [&'static str],
    /// Seconds of guest time under KVM on the fastest architecture, before the accelerator's
    /// and the architecture's slowness factors.
    pub base_timeout_s: u64,
    /// The call sites `kmt compare` restricts the diff to by default (empty: every record).
    pub callsite_filter: &'static [&'static str],
    /// Runs the user's program (`--exec`), and only with one.
    pub needs_program: bool,
}

/// Every workload, the default first.
pub static WORKLOADS: &[Workload] = &[
    Workload {
        name: "selftest",
        runs: "the kernel's known-answer selftest (write `run` to debugfs kmemtrace/selftest)",
        param: "runs of the selftest",
        default_param: 1,
        append: &[],
        base_timeout_s: 30,
        // The rest of the kernel allocates concurrently and differently on every run.
        callsite_filter: &["kmemtrace_selftest_*"],
        needs_program: false,
    },
    Workload {
        name: "boot",
        runs: "tracing from early boot, then PARAM milliseconds more",
        param: "milliseconds of tracing after boot",
        default_param: 0,
        // Trace from the first allocation the tracer can see. Early boot logs before the
        // collector runs (x86_64: 11.5 MB on the boot CPU); the kernel's default buffer, sized
        // from memory (2 x 30 MiB with 512 MiB and 2 vCPUs), holds it.
        append: &["kmemtrace.enable=yes"],
        base_timeout_s: 30,
        callsite_filter: &[],
        needs_program: false,
    },
    Workload {
        name: "fork",
        runs: "fork + execve of /bin/kmt-true + waitpid, PARAM rounds",
        param: "rounds",
        default_param: 100,
        append: &[],
        base_timeout_s: 60,
        callsite_filter: &[],
        needs_program: false,
    },
    Workload {
        name: "files",
        runs: "create, write 512..8192 bytes, close and unlink a tmpfs file, PARAM rounds",
        param: "files",
        default_param: 1000,
        append: &[],
        base_timeout_s: 60,
        callsite_filter: &[],
        needs_program: false,
    },
    Workload {
        name: "exec",
        runs: "your static program (--exec), PARAM runs; each must exit 0",
        param: "runs of the program",
        default_param: 1,
        append: &[],
        base_timeout_s: 60,
        callsite_filter: &[],
        needs_program: true,
    },
    Workload {
        name: "bench",
        runs: "guest-tools/kmt-bench.c: PARAM operations (pipe, tmpfs file, fork) timed per round in each tracing mode (off, kmemtrace, ftrace's kmem events drained to the share or to /dev/null, and memory allocation profiling on a kernel built with it), 5 rounds; `kmt bench` reads the figures",
        param: "operations per round and mode",
        default_param: 200,
        append: &[],
        base_timeout_s: 120,
        callsite_filter: &[],
        needs_program: false,
    },
    Workload {
        name: "load",
        runs: "guest-tools/kmt-bench.c load: a worker per CPU repeats the bench operation as fast as it can, then at 1/8 to 7/8 of that rate, PARAM seconds per step, the collector catching up between steps; `kmt bench --load` reads which rates were drained",
        param: "seconds per step",
        default_param: 10,
        append: &[],
        // Eight steps of the default 10 s in guest wall-clock time, plus catching up.
        base_timeout_s: 120,
        callsite_filter: &[],
        needs_program: false,
    },
];

/// The workload named `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Every workload's name, in table order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    WORKLOADS.iter().map(|w| w.name)
}

/// The names of the workloads that run without a program of the user's (what `kmt matrix` runs).
pub fn without_program() -> impl Iterator<Item = &'static str> + Clone {
    WORKLOADS
        .iter()
        .filter(|w| !w.needs_program)
        .map(|w| w.name)
}

/// `--workload`'s help: one line per workload, from the table.
pub fn help() -> String {
    WORKLOADS
        .iter()
        .map(|w| {
            format!(
                "{}: {}; --param: {} (default {})",
                w.name, w.runs, w.param, w.default_param
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// init.c's `workloads[]` rows, `{ "name", default_param, from_boot, run_fn }`.
    fn init_rows() -> Vec<(String, u64, bool)> {
        let init = include_str!("../../guest-tools/init.c");
        let start = init
            .find("static const struct workload workloads[] = {")
            .expect("init.c has its workloads[] table");
        let body = &init[start..];
        let body = &body[..body.find("};").expect("the table ends")];
        body.lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("{ \"")?;
                let (name, rest) = l.split_once('"')?;
                let fields: Vec<&str> = rest.trim_start_matches(',').split(',').collect();
                Some((
                    name.to_string(),
                    fields.first()?.trim().parse().ok()?,
                    fields.get(1)?.trim() == "1",
                ))
            })
            .collect()
    }

    #[test]
    fn init_runs_the_same_workloads_with_the_same_defaults() {
        let rows = init_rows();
        assert_eq!(rows.len(), WORKLOADS.len(), "init.c: {rows:?}");
        for (w, (name, default_param, from_boot)) in WORKLOADS.iter().zip(&rows) {
            assert_eq!(w.name, name);
            assert_eq!(w.default_param, *default_param, "{name}");
            // init leaves tracing to the command line exactly when the workload asks for it.
            assert_eq!(
                w.append.contains(&"kmemtrace.enable=yes"),
                *from_boot,
                "{name}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_the_help_names_each() {
        let help = help();
        for (i, w) in WORKLOADS.iter().enumerate() {
            assert!(
                find(w.name).is_some_and(|f| std::ptr::eq(f, w)),
                "{}",
                w.name
            );
            assert!(!WORKLOADS[..i].iter().any(|o| o.name == w.name));
            assert!(help.contains(&format!("{}: ", w.name)));
        }
        assert_eq!(WORKLOADS[0].name, "selftest", "the default comes first");
        assert!(!without_program().any(|n| n == "exec"));
    }
}
