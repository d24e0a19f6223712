// SPDX-License-Identifier: GPL-2.0-only
//! A running QEMU: the process under a guard that kills and reaps it on every path out, and its
//! QMP monitor.
//!
//! qapi's client is synchronous and only queues events while it reads a response, so waiting for
//! SHUTDOWN means asking a cheap question (`query-status`) now and then and draining the events
//! that came with the answer. The process's own exit is the ground truth; QMP adds the reason.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use qapi::qmp;

type QmpStream = qapi::Stream<BufReader<UnixStream>, UnixStream>;

/// The QMP monitor of one QEMU.
pub struct Monitor {
    qmp: qapi::Qmp<QmpStream>,
}

impl Monitor {
    /// Connects to `socket` (QEMU creates it shortly after starting), retrying until `deadline`,
    /// and negotiates capabilities.
    pub fn connect(socket: &Path, deadline: Instant) -> std::io::Result<Monitor> {
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        // A monitor that stops answering must not stall the harness.
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut qmp = qapi::Qmp::new(qapi::Stream::new(reader, stream));
        qmp.handshake().map_err(std::io::Error::other)?;
        Ok(Monitor { qmp })
    }

    /// QEMU's version, e.g. `7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)`.
    pub fn version(&mut self) -> std::io::Result<String> {
        let v = self
            .qmp
            .execute(&qmp::query_version {})
            .map_err(std::io::Error::other)?;
        let q = v.qemu;
        Ok(
            format!("{}.{}.{} {}", q.major, q.minor, q.micro, v.package.trim())
                .trim()
                .to_string(),
        )
    }

    /// Asks for the status and returns the reason of a SHUTDOWN event if one has arrived.
    pub fn poll_shutdown(&mut self) -> std::io::Result<Option<String>> {
        self.qmp
            .execute(&qmp::query_status {})
            .map_err(std::io::Error::other)?;
        Ok(self.qmp.events().find_map(|e| match e {
            qmp::Event::SHUTDOWN { data, .. } => Some(
                serde_json::to_value(data.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| format!("{:?}", data.reason)),
            ),
            _ => None,
        }))
    }

    /// Asks QEMU to exit. EOF or a reset connection in answer is success: QEMU is gone.
    pub fn quit(&mut self) {
        let _ = self.qmp.execute(&qmp::quit {});
    }
}

/// A QEMU process that is killed and reaped when this value goes away, whatever the path.
pub struct Guard {
    child: Option<std::process::Child>,
}

impl Guard {
    /// Starts `program args`, with stdout and stderr to `log`. The child also dies with kmt
    /// (PR_SET_PDEATHSIG), should kmt itself be killed outright.
    pub fn spawn(program: &str, args: &[std::ffi::OsString], log: &Path) -> std::io::Result<Guard> {
        let out = std::fs::File::create(log)?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Guard {
            child: Some(cmd.spawn()?),
        })
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match &mut self.child {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits up to `limit` for the process to end by itself.
    pub fn wait_for(
        &mut self,
        limit: Duration,
    ) -> std::io::Result<Option<std::process::ExitStatus>> {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills and reaps the process now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_kills_and_reaps_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let g = Guard::spawn("sleep", &["30".into()], &dir.path().join("log")).unwrap();
        let pid = g.child.as_ref().unwrap().id() as i32;
        drop(g);
        // SAFETY: kill with signal 0 only asks whether the pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the child outlived its guard");
    }

    #[test]
    fn wait_for_sees_an_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Guard::spawn("true", &[], &dir.path().join("log")).unwrap();
        let s = g.wait_for(Duration::from_secs(5)).unwrap();
        assert!(s.unwrap().success());
    }

    #[test]
    fn connecting_to_nothing_gives_up_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let r = Monitor::connect(
            &dir.path().join("none.sock"),
            Instant::now() + Duration::from_millis(200),
        );
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
