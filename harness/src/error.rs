// SPDX-License-Identifier: GPL-2.0-only
//! How a run fails: one typed error per outcome, with its cause kept as `#[source]`, so the exit
//! code comes from the type ([`RunError::outcome`]) and never from the wording of a message.

use std::path::PathBuf;

use crate::analysis::AnalysisError;
use crate::image::ImageError;
use crate::kernel::KernelError;
use crate::outcome::Outcome;
pub use crate::usage::UsageError;

/// Why a run did not end with a whole, analysed trace.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An argument is wrong; nothing was built or written.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A Debian package is missing and was not installed.
    #[error("{0}")]
    Prerequisites(String),
    /// The kernel could not be prepared or built.
    #[error("the kernel build failed")]
    Kernel(#[from] KernelError),
    /// guest-tools or the initramfs could not be built.
    #[error("the image build failed")]
    Image(#[from] ImageError),
    /// A file operation of the harness itself failed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What kmt was doing.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {qemu}")]
    Spawn {
        /// The QEMU binary.
        qemu: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The guest ended without its sentinel.
    #[error("the guest ended without printing the KMT-STATUS sentinel\n{tail}")]
    Boot {
        /// The console tail and log paths.
        tail: String,
    },
    /// The console shows a crash.
    #[error("the kernel crashed: {line}\n{tail}")]
    Panic {
        /// The console line with the marker.
        line: String,
        /// The console tail and log paths.
        tail: String,
    },
    /// The guest was still running at the deadline.
    #[error("the guest was still running after {seconds} s; QEMU was stopped\n{tail}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// The console tail and log paths.
        tail: String,
    },
    /// init reported failure, or the guest's trace is missing or incomplete.
    #[error("{0}")]
    Collector(String),
    /// The trace came back with overruns, lost events or damaged records.
    #[error("{0}")]
    Damaged(String),
    /// The analysis could not read the trace.
    #[error("the analysis failed")]
    Analysis(#[from] AnalysisError),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl RunError {
    /// The outcome (and so the exit code) of this error.
    pub fn outcome(&self) -> Outcome {
        match self {
            RunError::Usage(_) => Outcome::UsageError,
            RunError::Prerequisites(_) => Outcome::PrerequisitesMissing,
            RunError::Kernel(_) => Outcome::KernelBuildFailed,
            RunError::Image(_) => Outcome::ImageBuildFailed,
            RunError::Io { .. } => Outcome::HarnessError,
            RunError::Spawn { .. } | RunError::Boot { .. } => Outcome::BootFailed,
            RunError::Panic { .. } => Outcome::KernelPanic,
            RunError::Timeout { .. } => Outcome::Timeout,
            RunError::Collector(_) => Outcome::CollectorFailed,
            RunError::Damaged(_) => Outcome::TraceDamaged,
            RunError::Analysis(_) => Outcome::AnalysisFailed,
            RunError::Interrupted(_) => Outcome::Interrupted,
        }
    }

    /// The error with its whole chain of causes, one per line after the first (`a: b: c` reads
    /// badly when a cause is a multi-line log tail).
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// `e` and its causes, joined with ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// Maps an `io::Error` on `path` into [`RunError::Io`].
pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
    let path = path.into();
    move |source| RunError::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_outcome_and_keeps_its_cause() {
        let e = io("create", "/x/y")(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.outcome(), Outcome::HarnessError);
        let text = e.chain();
        assert!(text.starts_with("cannot create /x/y: "), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        assert_eq!(
            RunError::from(UsageError::new("--smp 0")).outcome(),
            Outcome::UsageError
        );
        assert_eq!(
            RunError::Timeout {
                seconds: 1,
                tail: String::new()
            }
            .outcome()
            .exit_code(),
            15
        );
    }
}
