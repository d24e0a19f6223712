// SPDX-License-Identifier: GPL-2.0-only
//! Running a build command with its whole output in a log file, a progress line on a terminal,
//! and an error that carries everything needed to act on a failure.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many lines of a failed command's log an error carries.
pub const TAIL_LINES: usize = 50;

/// A command that ran and failed (or could not start).
#[derive(Debug, thiserror::Error)]
#[error("command failed ({status}): {command}\n--- last lines of the log ---\n{tail}\n--- full log: {} ---", log.display())]
pub struct CommandFailed {
    /// The command line, quoted so it can be pasted into a shell.
    pub command: String,
    /// The exit status, or why it did not run.
    pub status: String,
    /// The last lines of its output.
    pub tail: String,
    /// Where the whole output is.
    pub log: PathBuf,
}

/// One command to run in `dir`, with extra environment.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<OsString>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
        }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Cmd {
        self.dir = Some(d.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The command line as a user would paste it (with `cd DIR &&` and the environment).
    pub fn display(&self) -> String {
        let mut s = String::new();
        if let Some(d) = &self.dir {
            s.push_str(&format!("cd {} && ", quote(&d.to_string_lossy())));
        }
        for (k, v) in &self.env {
            s.push_str(&format!("{k}={} ", quote(v)));
        }
        s.push_str(&crate::qemu::shell_line(&self.program, &self.args));
        s
    }

    fn expression(&self) -> duct::Expression {
        // A build must not outlive kmt: make gets SIGTERM when kmt dies, and stops its jobs.
        let mut e = duct::cmd(&self.program, &self.args).before_spawn(|cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            Ok(())
        });
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    /// Runs it, appending stdout and stderr to `log`; shows `label` and the latest output line
    /// on a terminal while it runs.
    pub fn run_logged(&self, label: &str, log: &Path) -> Result<(), CommandFailed> {
        use std::io::Write;
        let fail = |status: String| CommandFailed {
            command: self.display(),
            status,
            tail: tail(log, TAIL_LINES),
            log: log.to_path_buf(),
        };
        tracing::info!("{label}: {}", self.display());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| fail(format!("cannot open the log: {e}")))?;
        let _ = writeln!(f, "$ {}", self.display());
        let handle = self
            .expression()
            .stdin_null()
            .stderr_to_stdout()
            .stdout_file(f)
            .unchecked()
            .start()
            .map_err(|e| fail(format!("could not start: {e}")))?;
        let bar = progress(label);
        let started = Instant::now();
        let output = loop {
            match handle.try_wait() {
                Ok(Some(o)) => break o.clone(),
                Ok(None) => {}
                Err(e) => return Err(fail(format!("wait failed: {e}"))),
            }
            if let Some(b) = &bar {
                let last = tail(log, 1);
                b.set_message(format!(
                    "{label} [{}s] {}",
                    started.elapsed().as_secs(),
                    clip(&last, 80)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if output.status.success() {
            Ok(())
        } else {
            Err(fail(output.status.to_string()))
        }
    }

    /// Runs it and returns its stdout (for short queries such as `gcc --version`).
    pub fn read(&self) -> Result<String, CommandFailed> {
        let out = self
            .expression()
            .stdin_null()
            .stderr_capture()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|e| CommandFailed {
                command: self.display(),
                status: format!("could not start: {e}"),
                tail: String::new(),
                log: PathBuf::new(),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CommandFailed {
                command: self.display(),
                status: out.status.to_string(),
                tail: String::from_utf8_lossy(&out.stderr).into_owned(),
                log: PathBuf::new(),
            })
        }
    }
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.to_string())
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// `kmt -q`: no spinner.
pub static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A spinner on a terminal, nothing elsewhere (CI, pipes, files, `-q`).
fn progress(label: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal()
        || std::env::var_os("CI").is_some()
        || QUIET.load(std::sync::atomic::Ordering::Relaxed)
    {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_message(label.to_string());
    b.enable_steady_tick(Duration::from_millis(120));
    Some(b)
}

/// The last `n` lines of a file, reading at most its last 64 KiB.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    tail_of(&String::from_utf8_lossy(&buf), n)
}

/// The last `n` lines of `text`.
pub fn tail_of(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_of("a", 5), "a");
        assert_eq!(tail_of("", 5), "");
    }

    #[test]
    fn display_is_pasteable() {
        let c = Cmd::new("make")
            .arg("O=/a b")
            .dir("/src")
            .env("ARCH", "arm64");
        assert_eq!(c.display(), "cd /src && ARCH=arm64 make 'O=/a b'");
    }

    #[test]
    fn a_failed_command_carries_status_tail_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let e = Cmd::new("sh")
            .args(["-c", "for i in $(seq 1 80); do echo line$i; done; exit 3"])
            .run_logged("test", &log)
            .unwrap_err();
        assert!(e.status.contains('3'), "{}", e.status);
        assert_eq!(e.tail.lines().count(), TAIL_LINES);
        assert!(e.tail.ends_with("line80"));
        assert_eq!(e.log, log);
        let msg = e.to_string();
        assert!(msg.contains("sh -c") && msg.contains("x.log"), "{msg}");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let e = Cmd::new("/nonexistent/kmt-prog")
            .run_logged("x", &dir.path().join("l"))
            .unwrap_err();
        assert!(e.status.contains("could not start"), "{}", e.status);
    }
}
