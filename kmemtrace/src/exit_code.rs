// SPDX-License-Identifier: GPL-2.0-only
//! The `kmemtrace` command's exit codes: the one table the CLI maps its errors onto
//! ([`crate::Error::exit_code`], [`crate::CheckReport::exit_code`]). The tables in `main.rs` and
//! `README.md` are checked against [`KmemtraceExitCode::TABLE`] by a test, so they cannot drift.

/// Exit codes of the `kmemtrace` command.
///
/// A usage error found by the argument parser (an unknown option, a missing argument) is also
/// [`KmemtraceExitCode::BAD_INPUT`]: it is what clap exits with.
pub enum KmemtraceExitCode {}

impl KmemtraceExitCode {
    /// Success: `check` found the input clean, `report` reported (findings are data, not
    /// failure), `diff` crossed no `--fail-on` threshold, `allocinfo` found the two accounts
    /// agreeing, `synth`/`convert`/`import-perf` wrote their directory.
    pub const OK: i32 = 0;

    /// The input is usable and has problems: `check` found some, `report --strict` met damage,
    /// `diff` crossed a `--fail-on` threshold, `allocinfo` found the accounts disagreeing.
    pub const PROBLEMS_FOUND: i32 = 1;

    /// The input or the usage is bad: a missing or unreadable path, no `cpu<N>.out`, a trace of
    /// which not one record decodes, an invalid `meta.json` or `report.json`, mixed byte orders, a
    /// bad glob, sort key or threshold, a destination that is not empty, is a file or a symbolic
    /// link, a bad option.
    pub const BAD_INPUT: i32 = 2;

    /// Writing the output failed: a file or directory of `synth`, `convert`, `import-perf` or
    /// `--svg`, or stdout. A reader that closes stdout early (`| head`) is no failure: the output
    /// stops there and the exit code is the command's.
    pub const OUTPUT_FAILED: i32 = 3;

    /// Every code with its name and its meaning as the documentation tables give it
    /// (`| code | name | meaning |`).
    pub const TABLE: &'static [(i32, &'static str, &'static str)] = &[
        (
            Self::OK,
            "OK",
            "success: `check` found the input clean, `report` reported (findings are data, not \
             failure), `diff` crossed no threshold, `allocinfo` found the accounts agreeing, \
             `synth`/`convert`/`import-perf` wrote their directory",
        ),
        (
            Self::PROBLEMS_FOUND,
            "PROBLEMS_FOUND",
            "problems in usable data: `check` found some, `report --strict` met damage, `diff` \
             crossed a `--fail-on` threshold, `allocinfo` found the accounts disagreeing",
        ),
        (
            Self::BAD_INPUT,
            "BAD_INPUT",
            "unusable input or usage (message on stderr, naming any file): missing or unreadable \
             path, no `cpu<N>.out`, not one record decodes, invalid `meta.json` or `report.json`, \
             mixed byte orders, bad glob, sort key or threshold, destination not empty or a \
             file or symlink, bad option",
        ),
        (
            Self::OUTPUT_FAILED,
            "OUTPUT_FAILED",
            "failure writing output: the directory of `synth`, `convert` or `import-perf` (left \
             as it was), an `--svg` file, stdout (a reader that closes it early, as `head` does, \
             is no failure: the output stops and the code is the command's)",
        ),
    ];

    /// [`KmemtraceExitCode::TABLE`] as the markdown table the documentation holds.
    pub fn markdown_table() -> String {
        let mut s = String::from("| code | name | meaning |\n| --- | --- | --- |\n");
        for (code, name, meaning) in Self::TABLE {
            s.push_str(&format!("| {code} | `{name}` | {meaning} |\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::KmemtraceExitCode as X;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<i32> = X::TABLE.iter().map(|r| r.0).collect();
        assert_eq!(
            codes,
            [X::OK, X::PROBLEMS_FOUND, X::BAD_INPUT, X::OUTPUT_FAILED]
        );
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
    }
}
