// SPDX-License-Identifier: GPL-2.0-only
//! Your own program as the workload (`kmt run --exec PROGRAM`): the guest's init copies it from
//! the share and runs it while tracing, so a reproducer of an allocator regression runs on every
//! architecture. It must be a static ELF executable for the guest's architecture (the initramfs
//! has no shared libraries); that is checked here, before anything is built or booted.

use std::path::{Path, PathBuf};

use object::elf::PT_INTERP;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::Endianness;

use crate::arch::Arch;

/// The file name of the program on the share (init copies it to `/tmp` and runs it from there).
pub const SHARE_NAME: &str = "program";
/// At most this many arguments (init's job parser holds a fixed number).
pub const MAX_ARGS: usize = 16;
/// At most this many bytes per argument.
pub const MAX_ARG_LEN: usize = 200;

/// What to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Why `bytes` cannot run as a program of `arch`'s guest, if it cannot.
pub fn check_program(bytes: &[u8], arch: &Arch) -> Result<(), String> {
    let f = ElfFile64::<Endianness>::parse(bytes)
        .map_err(|e| format!("not a 64-bit ELF executable ({e})"))?;
    let endian = f.endian();
    let machine = f.elf_header().e_machine(endian);
    let big = endian == Endianness::Big;
    if machine != arch.elf_machine || big != arch.big_endian {
        return Err(format!(
            "built for ELF machine {machine} ({}-endian), but the {} guest needs machine {} ({}-endian): build it with {}gcc -static",
            if big { "big" } else { "little" },
            arch.name,
            arch.elf_machine,
            if arch.big_endian { "big" } else { "little" },
            arch.cross_prefix
        ));
    }
    let interp = f
        .elf_program_headers()
        .iter()
        .any(|ph| ph.p_type(endian) == PT_INTERP);
    if interp {
        return Err(
            "dynamically linked: the guest has no shared libraries; link it with -static".into(),
        );
    }
    Ok(())
}

/// Why the arguments cannot go into the job file, if they cannot.
pub fn check_args(args: &[String]) -> Result<(), String> {
    if args.len() > MAX_ARGS {
        return Err(format!(
            "{} arguments: at most {MAX_ARGS} go to the guest",
            args.len()
        ));
    }
    // The job file is `key=value` lines: init trims values and cuts comments at '#'.
    for a in args {
        if a.len() > MAX_ARG_LEN || a.contains(['\n', '\r', '\0', '#']) || a.trim() != a {
            return Err(format!(
                "argument {a:?}: at most {MAX_ARG_LEN} bytes, without line breaks, NUL, '#' or surrounding blanks"
            ));
        }
    }
    Ok(())
}

/// Reads and checks `exec` for `arch`: the program's bytes, or what is wrong (naming the file).
pub fn load(exec: &Exec, arch: &Arch) -> Result<Vec<u8>, String> {
    let p: &Path = &exec.program;
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    check_program(&bytes, arch).map_err(|e| format!("{}: {e}", p.display()))?;
    check_args(&exec.args)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Arch, ARCHES};

    fn arch(name: &str) -> &'static Arch {
        ARCHES.iter().find(|a| a.name == name).unwrap()
    }

    /// A minimal ELF64 executable header with one program header of type `ptype`.
    fn elf(machine: u16, big: bool, ptype: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = if big { 2 } else { 1 };
        b[6] = 1; // EV_CURRENT
        let put16 = |b: &mut Vec<u8>, at: usize, v: u16| {
            let x = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            b[at..at + 2].copy_from_slice(&x);
        };
        let put32 = |b: &mut Vec<u8>, at: usize, v: u32| {
            let x = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            b[at..at + 4].copy_from_slice(&x);
        };
        put16(&mut b, 16, 2); // ET_EXEC
        put16(&mut b, 18, machine);
        put32(&mut b, 20, 1);
        b[32] = if big { 0 } else { 64 }; // e_phoff = 64
        if big {
            b[39] = 64;
        }
        put16(&mut b, 52, 64); // e_ehsize
        put16(&mut b, 54, 56); // e_phentsize
        put16(&mut b, 56, 1); // e_phnum
        put32(&mut b, 64, ptype);
        b
    }

    #[test]
    fn a_static_program_of_the_guest_arch_passes() {
        for a in ARCHES {
            let ok = elf(a.elf_machine, a.big_endian, object::elf::PT_LOAD);
            assert_eq!(check_program(&ok, a), Ok(()), "{}", a.name);
        }
    }

    #[test]
    fn wrong_machine_byte_order_or_linking_is_refused_with_the_fix() {
        let x86 = elf(object::elf::EM_X86_64, false, object::elf::PT_LOAD);
        let e = check_program(&x86, arch("ppc64")).unwrap_err();
        assert!(e.contains("powerpc64-linux-gnu-gcc -static"), "{e}");
        let le_ppc = elf(object::elf::EM_PPC64, false, object::elf::PT_LOAD);
        assert!(check_program(&le_ppc, arch("ppc64")).is_err());
        let dynamic = elf(object::elf::EM_AARCH64, false, PT_INTERP);
        let e = check_program(&dynamic, arch("arm64")).unwrap_err();
        assert!(e.contains("-static"), "{e}");
        assert!(check_program(b"#!/bin/sh\necho hi\n", arch("x86_64")).is_err());
        assert!(check_program(&[], arch("x86_64")).is_err());
    }

    #[test]
    fn arguments_must_fit_the_job_file() {
        assert_eq!(check_args(&["64".into(), "-v".into()]), Ok(()));
        assert!(check_args(&["a\nworkload=boot".into()]).is_err());
        assert!(check_args(&["# not a comment".into()]).is_err());
        assert!(check_args(&[" padded".into()]).is_err());
        assert!(check_args(&vec!["x".into(); MAX_ARGS + 1]).is_err());
        assert!(check_args(&["y".repeat(MAX_ARG_LEN + 1)]).is_err());
    }
}
