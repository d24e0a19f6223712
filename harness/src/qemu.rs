// SPDX-License-Identifier: GPL-2.0-only
//! QEMU command lines, built by small pure functions (one per concern) so each is testable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::arch::{Arch, NinePForm};

/// The virtio-9p mount tag the guest's init mounts (docs/contracts.md §2).
pub const SHARE_TAG: &str = "kmt";

/// The line the guest's init prints once when it is done (docs/contracts.md §2).
pub const SENTINEL: &str = "KMT-STATUS: ";

/// Console lines that mean the kernel broke, whatever init says afterwards.
pub const FAILURE_MARKERS: &[&str] = &[
    "Kernel panic",
    "Oops",
    "BUG:",
    "rcu_sched detected stalls",
    "rcu: INFO: rcu_preempt detected stalls",
    "detected stalls on CPUs",
    "watchdog: BUG: soft lockup",
    "Unable to handle kernel",
    "general protection fault",
];

/// Which accelerator a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Software emulation: always works, any guest arch.
    Tcg,
    /// Hardware virtualisation: host arch only, and only once a probe proved it works.
    Kvm,
}

impl Accel {
    /// How much longer than KVM a TCG guest may take (timeouts scale by it).
    pub fn slowness(self) -> u32 {
        match self {
            Accel::Tcg => 4,
            Accel::Kvm => 1,
        }
    }
}

/// Everything one boot needs.
#[derive(Debug, Clone)]
pub struct Boot<'a> {
    pub arch: &'a Arch,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub share: PathBuf,
    pub console_log: PathBuf,
    pub qmp_socket: PathBuf,
    pub smp: u32,
    pub memory_mib: u32,
    /// Kernel command-line tokens beyond the harness's own (workload's and user's).
    pub extra_append: Vec<String>,
}

/// The full argument vector after the QEMU binary's name.
pub fn args(boot: &Boot<'_>) -> Vec<OsString> {
    let mut v = base_args();
    v.extend(machine_args(boot.arch, boot.accel));
    v.extend(resource_args(boot.smp, boot.memory_mib));
    v.extend(kernel_args(
        &boot.kernel,
        &boot.initrd,
        &kernel_cmdline(boot.arch, &boot.extra_append),
    ));
    v.extend(console_args(&boot.console_log));
    v.extend(plan9_args(boot.arch, &boot.share));
    v.extend(qmp_args(&boot.qmp_socket));
    v
}

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// QEMU's arguments for the KVM probe: the kernel alone under KVM, one vCPU, no initramfs, an
/// init that does not exist, so a working guest panics and (`panic=-1`) ends QEMU at once.
pub fn kvm_probe_args(arch: &Arch, kernel: &Path, console: &Path) -> Vec<OsString> {
    let mut v = base_args();
    v.extend(machine_args(arch, Accel::Kvm));
    v.extend(resource_args(1, 256));
    v.extend([
        "-kernel".into(),
        kernel.into(),
        "-append".into(),
        format!("console={} panic=-1 rdinit=/kmt-no-such-init", arch.console).into(),
    ]);
    v.extend(console_args(console));
    v
}

/// Arguments every boot has: no default devices, no display, and a guest reboot ends QEMU.
pub fn base_args() -> Vec<OsString> {
    os(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
}

/// Machine, accelerator and CPU model.
pub fn machine_args(arch: &Arch, accel: Accel) -> Vec<OsString> {
    let mut v = os(&["-M", arch.machine]);
    match accel {
        Accel::Tcg => {
            v.extend(os(&["-accel", "tcg"]));
            if let Some(cpu) = arch.cpu {
                v.extend(os(&["-cpu", cpu]));
            }
        }
        // Under KVM the guest runs on the host's own CPU model.
        Accel::Kvm => v.extend(os(&["-accel", "kvm", "-cpu", "host"])),
    }
    v
}

/// vCPUs and memory.
pub fn resource_args(smp: u32, memory_mib: u32) -> Vec<OsString> {
    vec![
        "-smp".into(),
        smp.to_string().into(),
        "-m".into(),
        format!("{memory_mib}M").into(),
    ]
}

/// The kernel's command line, one token per concern.
pub fn kernel_cmdline(arch: &Arch, extra: &[String]) -> String {
    let mut tokens = vec![
        // Every printk to the one console the harness logs and scans.
        format!("console={}", arch.console),
        // A panic reboots at once; with -no-reboot QEMU then exits instead of hanging.
        "panic=-1".to_string(),
        // An Oops in a probe leaves a half-dead guest: make it a panic so the run ends now.
        "oops=panic".to_string(),
        // The initramfs's /init is our init (also the kernel's default; said for the reader).
        "rdinit=/init".to_string(),
    ];
    tokens.extend(extra.iter().cloned());
    tokens.join(" ")
}

/// Kernel, initramfs and command line.
pub fn kernel_args(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<OsString> {
    vec![
        "-kernel".into(),
        kernel.into(),
        "-initrd".into(),
        initrd.into(),
        "-append".into(),
        cmdline.into(),
    ]
}

/// The guest's console goes to a file the harness scans.
pub fn console_args(log: &Path) -> Vec<OsString> {
    let mut spec = OsString::from("file:");
    spec.push(log);
    vec!["-serial".into(), spec]
}

/// The 9p share, in the form the architecture's tiny kernel understands.
pub fn plan9_args(arch: &Arch, share: &Path) -> Vec<OsString> {
    let path = share.to_string_lossy();
    // security_model=mapped-xattr: the guest is not trusted. The owners, modes and file types it
    // asks for (set-uid bits, symbolic links, device nodes) are kept in user.virtfs.* xattrs of
    // plain 0600 host files instead of being applied on the host, where QEMU may run as root.
    // With `none` a guest's chmod 04755 became a set-uid-root host file. share.rs reads the
    // xattr back to refuse such files.
    match arch.ninep {
        NinePForm::Virtfs => vec![
            "-virtfs".into(),
            format!("local,path={path},mount_tag={SHARE_TAG},security_model=mapped-xattr,id=kmt")
                .into(),
        ],
        NinePForm::FsdevPci => vec![
            "-fsdev".into(),
            format!("local,id=kmt,path={path},security_model=mapped-xattr").into(),
            "-device".into(),
            format!("virtio-9p-pci,fsdev=kmt,mount_tag={SHARE_TAG}").into(),
        ],
    }
}

/// QMP on a unix socket; QEMU does not wait for the client before starting the guest.
pub fn qmp_args(socket: &Path) -> Vec<OsString> {
    vec![
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", socket.to_string_lossy()).into(),
    ]
}

/// The first console failure marker in `console`, with its line.
pub fn find_failure(console: &str) -> Option<&str> {
    console
        .lines()
        .find(|l| FAILURE_MARKERS.iter().any(|m| l.contains(m)))
}

/// What init's sentinel said, if it printed one: `Ok(())` for ok, `Err(reason)` for fail.
pub fn find_sentinel(console: &str) -> Option<Result<(), String>> {
    console.lines().find_map(|l| {
        let rest = &l[l.find(SENTINEL)? + SENTINEL.len()..];
        let rest = rest.trim_end();
        Some(if rest == "ok" {
            Ok(())
        } else {
            Err(rest.strip_prefix("fail").unwrap_or(rest).trim().to_string())
        })
    })
}

/// A command line a user can paste into a shell.
pub fn shell_line(program: &str, args: &[OsString]) -> String {
    std::iter::once(program.to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .map(|w| shlex::try_quote(&w).map(|q| q.into_owned()).unwrap_or(w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::lookup;

    fn boot(arch: &'static Arch, accel: Accel) -> Boot<'static> {
        Boot {
            arch,
            accel,
            kernel: "/c/k/bzImage".into(),
            initrd: "/c/i/initramfs.cpio".into(),
            share: "/t/share".into(),
            console_log: "/t/console.log".into(),
            qmp_socket: "/t/qmp.sock".into(),
            smp: 2,
            memory_mib: 512,
            extra_append: vec!["kmemtrace.enable=yes".into()],
        }
    }

    fn line(b: &Boot<'_>) -> String {
        shell_line(b.arch.qemu, &args(b))
    }

    #[test]
    fn x86_64_tcg_command_line() {
        insta::assert_snapshot!(
            "qemu_x86_64_tcg",
            line(&boot(lookup("x86_64").unwrap(), Accel::Tcg))
        );
    }

    #[test]
    fn arm64_tcg_command_line() {
        insta::assert_snapshot!(
            "qemu_arm64_tcg",
            line(&boot(lookup("arm64").unwrap(), Accel::Tcg))
        );
    }

    #[test]
    fn ppc64_tcg_command_line() {
        insta::assert_snapshot!(
            "qemu_ppc64_tcg",
            line(&boot(lookup("ppc64").unwrap(), Accel::Tcg))
        );
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let a = machine_args(lookup("x86_64").unwrap(), Accel::Kvm);
        assert_eq!(os(&["-M", "pc", "-accel", "kvm", "-cpu", "host"]), a);
    }

    #[test]
    fn every_boot_ends_deterministically() {
        let cmd = kernel_cmdline(lookup("ppc64").unwrap(), &[]);
        assert!(cmd.contains("panic=-1"));
        assert!(cmd.contains("console=hvc0"));
        assert!(base_args().contains(&"-no-reboot".into()));
        assert!(base_args().contains(&"-nodefaults".into()));
    }

    #[test]
    fn sentinel_and_markers_are_found() {
        let log = "booting\nfoo KMT-STATUS: fail collector exited 3\n";
        assert_eq!(find_sentinel(log), Some(Err("collector exited 3".into())));
        assert_eq!(find_sentinel("KMT-STATUS: ok\r\n"), Some(Ok(())));
        assert_eq!(find_sentinel("nothing here"), None);
        assert_eq!(
            find_failure("a\n[ 1.0] Kernel panic - not syncing: x\n"),
            Some("[ 1.0] Kernel panic - not syncing: x")
        );
        assert_eq!(find_failure("all fine\n"), None);
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        let s = shell_line("qemu", &["-kernel".into(), "/a b/k".into()]);
        assert_eq!(s, "qemu -kernel '/a b/k'");
    }
}
