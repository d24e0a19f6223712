// SPDX-License-Identifier: GPL-2.0-only
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use kmemtrace::{AllocFields, AllocType, ByteOrder, Record, TraceInput};

/// Hand-written records in both byte orders (see the file for how they were made).
pub mod golden {
    use kmemtrace::{AllocFields, AllocType, Record};
    include!("golden.rs");
}

/// Proptest strategies, shared with the crate's unit tests.
pub mod strategies {
    use kmemtrace::{AllocFields, AllocType, Record};
    include!("strategies.rs");
}

pub fn alloc(seq: i32, ty: AllocType, site: u64, ptr: u64, req: u64, al: u64) -> Record {
    Record {
        type_id: ty,
        seq,
        call_site: site,
        ptr,
        alloc: Some(AllocFields {
            bytes_req: req,
            bytes_alloc: al,
            gfp_flags: 0xcc0,
            numa_node: -1,
        }),
        features: vec![],
    }
}

pub fn free(seq: i32, ty: AllocType, site: u64, ptr: u64) -> Record {
    Record {
        type_id: ty,
        seq,
        call_site: site,
        ptr,
        alloc: None,
        features: vec![],
    }
}

pub fn encode(records: &[Record], order: ByteOrder) -> Vec<u8> {
    let mut v = Vec::new();
    for r in records {
        r.encode_into(order, &mut v);
    }
    v
}

/// A small, valid two-CPU trace (cpu, bytes) in `order`.
pub fn small_trace(order: ByteOrder) -> Vec<(u32, Vec<u8>)> {
    use AllocType::*;
    let cpu0 = vec![
        alloc(1, Kmalloc, 0x100, 0xa000, 10, 16),
        alloc(2, KmemCache, 0x200, 0xb000, 24, 24),
        free(4, Kmalloc, 0x300, 0xb000),
    ];
    let cpu1 = vec![
        free(3, Kmalloc, 0x300, 0xa000),
        alloc(5, Pages, 0x400, 0x10000, 4096, 4096),
    ];
    vec![(0, encode(&cpu0, order)), (1, encode(&cpu1, order))]
}

pub fn input(streams: Vec<(u32, Vec<u8>)>) -> TraceInput {
    TraceInput::from_streams(streams)
}

/// Runs the `kmemtrace` binary: (exit code, stdout, stderr).
pub fn kmemtrace(args: &[&str]) -> (i32, String, String) {
    outcome(
        std::process::Command::new(env!("CARGO_BIN_EXE_kmemtrace"))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// A finished command's (exit code, stdout, stderr).
pub fn outcome(o: std::process::Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The names in `dir`, sorted.
pub fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Everything under `dir` (not following symbolic links): each path with its content, its link
/// target or `dir`, sorted; to show that a command left a tree exactly as it was.
pub fn tree(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            };
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            v.push((rel, what));
        }
    }
    v.sort();
    v
}
