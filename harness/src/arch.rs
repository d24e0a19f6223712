// SPDX-License-Identifier: GPL-2.0-only
//! The architectures kmt knows, as data: one record each, nothing arch-specific elsewhere.

use std::fmt;
use std::str::FromStr;

/// How QEMU attaches the virtio-9p share to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NinePForm {
    /// `-virtfs local,...`: the shorthand, which picks the right virtio-9p device for the machine.
    Virtfs,
    /// `-fsdev local,... -device virtio-9p-pci,...`: explicit PCI device, for machines where
    /// `-virtfs` would choose a transport the tiny kernel does not have.
    FsdevPci,
}

/// Everything that differs between the architectures kmt boots.
#[derive(Debug, PartialEq, Eq)]
pub struct Arch {
    /// Our name for it, as used on the command line, in paths and in trial names.
    pub name: &'static str,
    /// `ARCH=` for the kernel's make.
    pub make_arch: &'static str,
    /// `CROSS_COMPILE=` prefix when the host is not this architecture.
    pub cross_prefix: &'static str,
    /// The Debian package that brings `cross_prefix`gcc, with the static C library for the guest.
    pub cross_packages: &'static [&'static str],
    /// The kernel image QEMU boots, relative to the kernel build directory.
    pub image: &'static str,
    /// The make target that builds `image`.
    pub image_target: &'static str,
    /// The kernel's Kconfig fragment for this architecture, relative to the repository.
    pub fragment: &'static str,
    /// QEMU's system emulator for it.
    pub qemu: &'static str,
    /// The Debian package that brings `qemu`.
    pub qemu_package: &'static str,
    /// `-M` value.
    pub machine: &'static str,
    /// `-cpu` value, or None for the machine's default.
    pub cpu: Option<&'static str>,
    /// The console device the kernel writes to (`console=`).
    pub console: &'static str,
    /// How the 9p share is attached.
    pub ninep: NinePForm,
    /// `uname -m` of a host of this architecture (to tell whether KVM could apply).
    pub uname_machine: &'static str,
    /// The byte order the guest logs in.
    pub big_endian: bool,
    /// `e_machine` of the guest's 64-bit ELF programs (`kmt run --exec` checks it).
    pub elf_machine: u16,
    /// How much slower than the default a guest of this arch is under TCG (timeouts scale by it).
    pub tcg_slowness: u32,
}

/// The table. Add an architecture here and everything else follows.
pub static ARCHES: &[Arch] = &[
    Arch {
        name: "x86_64",
        make_arch: "x86_64",
        cross_prefix: "x86_64-linux-gnu-",
        cross_packages: &["gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross"],
        image: "arch/x86/boot/bzImage",
        image_target: "bzImage",
        fragment: "kernel/config/x86_64.config",
        qemu: "qemu-system-x86_64",
        qemu_package: "qemu-system-x86",
        // The default i440fx PC: ACPI enumerates every vCPU and gives the guest a power-off.
        machine: "pc",
        cpu: None,
        console: "ttyS0",
        ninep: NinePForm::Virtfs,
        uname_machine: "x86_64",
        big_endian: false,
        elf_machine: object::elf::EM_X86_64,
        tcg_slowness: 1,
    },
    Arch {
        name: "arm64",
        make_arch: "arm64",
        cross_prefix: "aarch64-linux-gnu-",
        cross_packages: &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        image: "arch/arm64/boot/Image",
        image_target: "Image",
        fragment: "kernel/config/arm64.config",
        qemu: "qemu-system-aarch64",
        qemu_package: "qemu-system-arm",
        machine: "virt",
        // `virt` has no default CPU under TCG; cortex-a57 is a plain ARMv8.0 core that every
        // QEMU since 2.x emulates, and the one the bring-up booted (kernel/README.md, "Measured").
        cpu: Some("cortex-a57"),
        console: "ttyAMA0",
        ninep: NinePForm::FsdevPci,
        uname_machine: "aarch64",
        big_endian: false,
        elf_machine: object::elf::EM_AARCH64,
        tcg_slowness: 1,
    },
    Arch {
        name: "ppc64",
        make_arch: "powerpc",
        cross_prefix: "powerpc64-linux-gnu-",
        cross_packages: &["gcc-powerpc64-linux-gnu", "libc6-dev-ppc64-cross"],
        image: "vmlinux",
        image_target: "vmlinux",
        fragment: "kernel/config/ppc64.config",
        qemu: "qemu-system-ppc64",
        qemu_package: "qemu-system-ppc",
        // Big-endian pseries guest under SLOF.
        machine: "pseries",
        // POWER8 is the newest CPU with which Debian's big-endian ppc64 user space and a
        // tinyconfig kernel booted in the bring-up (kernel/README.md, "Measured"); later models
        // assume little-endian firmware paths.
        cpu: Some("power8"),
        console: "hvc0",
        ninep: NinePForm::FsdevPci,
        uname_machine: "ppc64",
        big_endian: true,
        elf_machine: object::elf::EM_PPC64,
        // SLOF firmware and the slower TCG backend: boots took ~2x as long as arm64 here.
        tcg_slowness: 2,
    },
];

impl Arch {
    /// The architecture of this host, when kmt knows it.
    pub fn host() -> Option<&'static Arch> {
        ARCHES
            .iter()
            .find(|a| a.uname_machine == std::env::consts::ARCH || a.name == std::env::consts::ARCH)
    }

    /// Whether this architecture is the host's (so it builds without a cross compiler, and KVM
    /// may apply).
    pub fn is_host(&self) -> bool {
        Arch::host().is_some_and(|h| h.name == self.name)
    }

    /// The `CROSS_COMPILE` prefix for building on this host: empty for the host's own arch.
    pub fn cross_compile(&self) -> &'static str {
        if self.is_host() {
            ""
        } else {
            self.cross_prefix
        }
    }

    /// The C compiler that builds for this arch here.
    pub fn cc(&self) -> String {
        format!("{}gcc", self.cross_compile())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// An architecture name that is not in the table.
#[derive(Debug, thiserror::Error)]
#[error("unknown architecture {0:?} (known: {known})", known = names().join(", "))]
pub struct UnknownArch(pub String);

/// The names of every architecture in the table.
pub fn names() -> Vec<&'static str> {
    ARCHES.iter().map(|a| a.name).collect()
}

/// Looks an architecture up by name; `aarch64` and `powerpc64` are accepted as aliases.
pub fn lookup(name: &str) -> Result<&'static Arch, UnknownArch> {
    let canonical = match name {
        "aarch64" => "arm64",
        "powerpc64" | "ppc64be" => "ppc64",
        "amd64" => "x86_64",
        other => other,
    };
    ARCHES
        .iter()
        .find(|a| a.name == canonical)
        .ok_or_else(|| UnknownArch(name.to_string()))
}

/// A clap-friendly wrapper.
#[derive(Debug, Clone, Copy)]
pub struct ArchArg(pub &'static Arch);

impl FromStr for ArchArg {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        lookup(s).map(ArchArg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_aliases_resolve() {
        let mut n = names();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), ARCHES.len());
        assert_eq!(lookup("aarch64").unwrap().name, "arm64");
        assert_eq!(lookup("powerpc64").unwrap().name, "ppc64");
        assert!(lookup("riscv64").is_err());
    }

    #[test]
    fn only_ppc64_is_big_endian() {
        let big: Vec<_> = ARCHES
            .iter()
            .filter(|a| a.big_endian)
            .map(|a| a.name)
            .collect();
        assert_eq!(big, ["ppc64"]);
    }

    #[test]
    fn host_builds_natively() {
        if let Some(h) = Arch::host() {
            assert_eq!(h.cross_compile(), "");
            assert_eq!(h.cc(), "gcc");
        }
    }
}
