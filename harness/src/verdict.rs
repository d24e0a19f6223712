// SPDX-License-Identifier: GPL-2.0-only
//! How a boot ended: a pure function of what the guest printed on its console and of how the
//! wait for QEMU ended. `run::boot` turns the verdict into its outcome and message.

use crate::qemu;

/// How the wait for QEMU ended (`run::wait`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The deadline passed and QEMU was stopped.
    pub timed_out: bool,
    /// Ctrl-C or SIGTERM stopped QEMU.
    pub interrupted: bool,
    /// What QMP said about the shutdown, when it said something.
    pub shutdown_reason: Option<String>,
    /// QEMU's exit status, when it exited by itself.
    pub exit_status: Option<String>,
}

/// The verdict on one boot, most telling first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The user stopped it: nothing else the console says counts.
    Interrupted,
    /// The kernel panicked or oopsed (the console line). Checked before the timeout: a panicked
    /// guest that did not reboot runs into the deadline, and the panic is the news.
    Panic(String),
    /// The deadline passed first.
    TimedOut,
    /// QEMU ended without init's `KMT-STATUS` line: the guest never reached or finished init.
    NoSentinel,
    /// init said `KMT-STATUS: fail <reason>`.
    GuestFailed(String),
    /// init said `KMT-STATUS: ok`.
    Ok,
}

/// The verdict on a boot whose console printed `console` and whose wait ended as `ended`.
pub fn verdict(console: &str, ended: &Ended) -> Verdict {
    if ended.interrupted {
        return Verdict::Interrupted;
    }
    if let Some(line) = qemu::find_failure(console) {
        return Verdict::Panic(line.trim().to_string());
    }
    if ended.timed_out {
        return Verdict::TimedOut;
    }
    match qemu::find_sentinel(console) {
        None => Verdict::NoSentinel,
        Some(Err(reason)) => Verdict::GuestFailed(reason),
        Some(Ok(())) => Verdict::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real arm64 console logs: a selftest run, a run whose program exited 3, a run stopped by
    /// `--timeout 1` before init, and the kmt kernel booted with an init that does not exist.
    const OK: &str = include_str!("../tests/fixtures/console/ok.arm64.log");
    const GUEST_FAILED: &str = include_str!("../tests/fixtures/console/guest-failed.arm64.log");
    const TIMED_OUT: &str = include_str!("../tests/fixtures/console/timed-out.arm64.log");
    const PANIC: &str = include_str!("../tests/fixtures/console/panic.arm64.log");

    fn exited() -> Ended {
        Ended {
            exit_status: Some("exit status: 0".into()),
            ..Ended::default()
        }
    }

    fn stopped_at_deadline() -> Ended {
        Ended {
            timed_out: true,
            ..Ended::default()
        }
    }

    #[test]
    fn real_console_logs_get_their_verdicts() {
        assert_eq!(verdict(OK, &exited()), Verdict::Ok);
        assert_eq!(
            verdict(GUEST_FAILED, &exited()),
            Verdict::GuestFailed(
                "exec: run 0: the program ended with status 0x300; see /mnt/kmt/guest.log".into()
            )
        );
        assert_eq!(
            verdict(TIMED_OUT, &stopped_at_deadline()),
            Verdict::TimedOut
        );
        assert!(matches!(
            verdict(PANIC, &exited()),
            Verdict::Panic(line) if line.contains("Kernel panic - not syncing: No working init found")
        ));
    }

    #[test]
    fn the_order_is_interrupted_panic_timeout_sentinel() {
        let interrupted = Ended {
            interrupted: true,
            timed_out: true,
            ..Ended::default()
        };
        // Ctrl-C wins over everything the console says.
        for console in [OK, PANIC, TIMED_OUT] {
            assert_eq!(verdict(console, &interrupted), Verdict::Interrupted);
        }
        // A panic that ran into the deadline is a panic.
        assert!(matches!(
            verdict(PANIC, &stopped_at_deadline()),
            Verdict::Panic(_)
        ));
        // A deadline wins over a sentinel printed too late to end QEMU in its grace period.
        assert_eq!(verdict(OK, &stopped_at_deadline()), Verdict::TimedOut);
        // QEMU that ended by itself before init reported anything.
        assert_eq!(verdict(TIMED_OUT, &exited()), Verdict::NoSentinel);
        assert_eq!(verdict("", &exited()), Verdict::NoSentinel);
    }
}
