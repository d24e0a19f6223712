// SPDX-License-Identifier: GPL-2.0-only
//! `kmemtrace synth`: a realistic synthetic trace and the exact summary it must produce.
//!
//! The generator keeps its own model of the live allocations (not the analyser's code) and counts
//! every figure of [`Summary`] as it decides what to emit, so `analyze(synth) == expected` is a
//! real test of the analyser. It mixes kmalloc size classes, kmem_cache objects and page
//! allocations of orders 0-3 from many call sites in named functions, frees on other CPUs,
//! leaks (whatever is live at the end), and, with anomalies on, mismatched, NULL, unknown and
//! lost frees, zero-byte and short allocations, requests for other NUMA nodes, sequence gaps
//! and a sequence number wrap.

use crate::abi::{self, AllocFields, AllocType, ByteOrder, Record};
use crate::dest::Staging;
use crate::error::{io_out, Result};
use crate::input::TraceInput;
use crate::meta::{Meta, MetaCpu};
use crate::report::Summary;
use crate::rules::{self, Allocator, Rule};
use crate::symbols::Symbols;
use std::io::Write;
use std::path::Path;

/// Parameters of a synthetic trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Records to write.
    pub events: u64,
    /// CPU files.
    pub cpus: u32,
    /// NUMA nodes (CPU `c` is on node `c % nodes`; with 1 the metadata says -1, i.e. node 0).
    pub nodes: u32,
    /// Byte order of the records.
    pub order: ByteOrder,
    /// Random seed.
    pub seed: u64,
    /// Start the sequence numbers so they wrap past `i32::MAX` half-way.
    pub wrap: bool,
    /// Allocation call sites.
    pub callsites: u32,
    /// Most allocations open at once.
    pub max_live: usize,
    /// Sequence numbers to leave out (in up to 10 gaps): lost events.
    pub lose: u64,
    /// Emit the inconsistent behaviours (mismatched/NULL/unknown/lost frees, zero-byte and short
    /// allocations).
    pub anomalies: bool,
    /// The slab allocator `meta.json` names (it decides which of the mixed-up frees are errors).
    pub allocator: Allocator,
    /// Frames of the stack feature on every record (0: none, ABI version 1 records). The stacks
    /// come from their own random stream: the records are otherwise the same, byte for byte
    /// but the features, as without them.
    pub stack_depth: u8,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            events: 10_000,
            cpus: 2,
            nodes: 1,
            order: ByteOrder::Little,
            seed: 1,
            wrap: false,
            callsites: 120,
            max_live: 20_000,
            lose: 0,
            anomalies: true,
            allocator: Allocator::Slub,
            stack_depth: 0,
        }
    }
}

/// What `synth` produced besides the records.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOutput {
    /// The summary `kmemtrace report` must print for this trace (without a call-site filter).
    pub summary: Summary,
    /// The `meta.json` for the trace.
    pub meta: Meta,
    /// A kallsyms file covering the call sites.
    pub kallsyms: String,
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// True with probability `per_million` / 1e6.
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

const FUNCTIONS: &[&str] = &[
    "alloc_skb",
    "__d_alloc",
    "getname_flags",
    "alloc_inode",
    "kernfs_fop_open",
    "seq_open",
    "alloc_pipe_info",
    "proc_alloc_inode",
    "load_elf_binary",
    "copy_process",
    "mm_alloc",
    "vm_area_alloc",
    "alloc_fdtable",
    "single_open",
    "alloc_buffer_head",
    "bio_alloc_bioset",
    "ext4_alloc_inode",
    "sk_prot_alloc",
    "kmemdup",
    "kstrdup",
    "alloc_pages_exact",
    "__get_free_pages_user",
    "dup_fd",
    "security_file_alloc",
];
const FN_BASE: u64 = 0xffff_ffff_8120_0000;
const FN_STRIDE: u64 = 0x400;
const SITES_PER_FN: u64 = 3;
const KMALLOC_CLASSES: &[u64] = &[
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// The functions stacks go out through (after the call sites' functions in the address space),
/// a wrapper among them so that `--group-by caller` has nested wrappers to look through.
const CALLERS: &[&str] = &[
    "kvmalloc_node_noprof",
    "create_pipe_files",
    "do_sys_openat2",
    "path_openat",
    "ksys_write",
    "kernel_clone",
    "do_execveat_common",
    "seq_read_iter",
    "sock_alloc_send_pskb",
    "ext4_lookup",
    "load_module",
    "do_syscall_64",
];

/// A stack of `depth` frames for a record at `call_site`: one of two paths per call site (by
/// `variant`), through [`CALLERS`] laid out from `callers_base`.
fn synth_stack(call_site: u64, variant: u64, depth: u8, callers_base: u64) -> Vec<u64> {
    let n = CALLERS.len() as u64;
    (0..u64::from(depth))
        .map(|k| {
            let c = ((call_site >> 6) + variant * 7 + k * 5) % n;
            callers_base + c * FN_STRIDE + 0x20 + 0x10 * (k % 16)
        })
        .collect()
}

fn function_name(f: u64) -> String {
    let n = FUNCTIONS.len() as u64;
    if f < n {
        FUNCTIONS[f as usize].to_string()
    } else {
        format!("{}_{}", FUNCTIONS[(f % n) as usize], f / n)
    }
}

fn site_addr(i: u64) -> u64 {
    FN_BASE + (i / SITES_PER_FN) * FN_STRIDE + 0x1c + (i % SITES_PER_FN) * 0x40
}

#[derive(Clone, Copy)]
struct Site {
    addr: u64,
    ty: AllocType,
    /// kmalloc: max class index; kmem_cache: object size; pages: max order.
    param: u64,
}

#[derive(Clone, Copy)]
struct Live {
    ptr: u64,
    ty: AllocType,
    cpu: u32,
    bytes_alloc: u64,
}

/// Generate a trace, handing each CPU's bytes to `sink(cpu, bytes)` in order (in pieces of about
/// 64 KiB). Memory is bounded by `max_live`, not by `events`.
pub fn synth<E>(
    opts: &SynthOptions,
    mut sink: impl FnMut(u32, &[u8]) -> Result<(), E>,
) -> Result<SynthOutput, E> {
    let cpus = opts.cpus.max(1);
    let nodes = opts.nodes.max(1);
    let mut rng = Rng(opts.seed ^ 0x6b6d_656d_7472_6163);
    let nsites = opts.callsites.max(1) as u64;
    let sites: Vec<Site> = (0..nsites)
        .map(|i| {
            let ty = match rng.below(10) {
                0..=5 => AllocType::Kmalloc,
                6..=8 => AllocType::KmemCache,
                _ => AllocType::Pages,
            };
            let param = match ty {
                AllocType::Kmalloc => rng.below(KMALLOC_CLASSES.len() as u64),
                AllocType::KmemCache => 16 + rng.below(120) * 8,
                AllocType::Pages => rng.below(4),
            };
            Site {
                addr: site_addr(i),
                ty,
                param,
            }
        })
        .collect();
    let node_of = |cpu: u32| if nodes > 1 { (cpu % nodes) as i32 } else { 0 };
    let fns = nsites.div_ceil(SITES_PER_FN);
    let callers_base = FN_BASE + fns * FN_STRIDE;
    // The stacks' own stream: the records' choices do not depend on whether there are stacks.
    let mut stack_rng = Rng(opts.seed ^ 0x7374_6163_6b73);

    let mut s = Summary {
        records: opts.events,
        ..Summary::default()
    };
    let mut live: Vec<Live> = Vec::with_capacity(opts.max_live.min(1 << 20));
    let mut pool: [Vec<u64>; 3] = Default::default();
    let mut bump: [u64; 3] = [
        0xffff_8880_0000_0000,
        0xffff_8881_0000_0000,
        0xffff_8882_0000_0000,
    ];
    let mut unknown_ptr = 0xffff_c900_0000_0000u64;
    let mut bufs: Vec<Vec<u8>> = (0..cpus).map(|_| Vec::with_capacity(1 << 16)).collect();
    let mut seq: i32 = if opts.wrap {
        (i32::MAX as i64 - (opts.events / 2) as i64) as i32
    } else {
        1
    };
    // Lost events: `lose` sequence numbers skipped in up to 10 gaps spread over the trace.
    let gaps = opts.lose.min(10).min(opts.events.saturating_sub(1));
    let mut gap_at: Vec<(u64, u64)> = (1..=gaps)
        .map(|g| (g * opts.events / (gaps + 1), opts.lose / gaps.max(1)))
        .collect();
    if let Some(last) = gap_at.last_mut() {
        last.1 += opts.lose - (opts.lose / gaps.max(1)) * gaps;
    }
    gap_at.reverse();
    let anomalies = opts.anomalies;

    for n in 0..opts.events {
        if gap_at.last().is_some_and(|g| g.0 == n) {
            let (_, skip) = gap_at.pop().unwrap_or_default();
            seq = seq.wrapping_add(skip as i32);
            s.lost_events += skip;
        }
        let this_seq = seq;
        seq = seq.wrapping_add(1);
        let want_alloc = live.len() < opts.max_live && (live.is_empty() || rng.chance(520_000));
        let (cpu, rec) = if want_alloc {
            let site = sites[rng.below(nsites) as usize];
            let cpu = rng.below(cpus as u64) as u32;
            let (mut req, mut alloc) = match site.ty {
                AllocType::Kmalloc => {
                    let ci = rng.below(site.param + 1) as usize;
                    let class = KMALLOC_CLASSES[ci];
                    let lo = if ci == 0 { 0 } else { KMALLOC_CLASSES[ci - 1] };
                    (lo + 1 + rng.below(class - lo), class)
                }
                AllocType::KmemCache => (site.param, site.param),
                AllocType::Pages => {
                    let b = 4096u64 << rng.below(site.param + 1);
                    (b, b)
                }
            };
            if anomalies && rng.chance(100) {
                req = 0;
                s.zero_byte_requests += 1;
            } else if anomalies && req >= 2 && rng.chance(100) {
                alloc = req - 1;
                s.short_allocs += 1;
            }
            let numa_node = match rng.below(100) {
                0..=89 => -1,
                90..=97 => node_of(cpu),
                _ => (node_of(cpu) + 1) % (nodes.max(2) as i32),
            };
            if numa_node != -1 && numa_node != node_of(cpu) {
                s.cross_cpu_allocs += 1;
            }
            let t = site.ty as usize;
            let reuse = if anomalies && !live.is_empty() && rng.chance(500) {
                let i = rng.below(live.len() as u64) as usize;
                // Only a pointer of the same address space (pages, or slab objects) can be
                // reused: a page and a slab object at one address are both legitimately open.
                let pages = |ty| ty == AllocType::Pages;
                (pages(live[i].ty) == pages(site.ty)).then_some(i)
            } else {
                None
            };
            let ptr = if let Some(i) = reuse {
                // Reuse a live pointer: its free was lost.
                let old = live.swap_remove(i);
                s.lost_frees += 1;
                old.ptr
            } else if !pool[t].is_empty() && rng.chance(700_000) {
                let i = rng.below(pool[t].len() as u64) as usize;
                pool[t].swap_remove(i)
            } else {
                let p = bump[t];
                bump[t] += alloc.max(8).next_multiple_of(8);
                p
            };
            s.allocs += 1;
            s.bytes_requested += req;
            s.bytes_allocated += alloc;
            live.push(Live {
                ptr,
                ty: site.ty,
                cpu,
                bytes_alloc: alloc,
            });
            (
                cpu,
                Record {
                    type_id: site.ty,
                    seq: this_seq,
                    call_site: site.addr,
                    ptr,
                    alloc: Some(AllocFields {
                        bytes_req: req,
                        bytes_alloc: alloc,
                        gfp_flags: if site.ty == AllocType::Pages {
                            0x400dc0
                        } else {
                            0xcc0
                        },
                        numa_node,
                    }),
                    features: vec![],
                },
            )
        } else {
            let site = sites[rng.below(nsites) as usize];
            s.frees += 1;
            let (cpu, ty, ptr) = if anomalies && rng.chance(2_000) {
                s.null_frees += 1;
                (rng.below(cpus as u64) as u32, AllocType::Kmalloc, 0)
            } else if anomalies && rng.chance(1_000) {
                s.unknown_frees += 1;
                unknown_ptr += 64;
                (
                    rng.below(cpus as u64) as u32,
                    AllocType::Kmalloc,
                    unknown_ptr,
                )
            } else {
                let i = rng.below(live.len() as u64) as usize;
                let l = live.swap_remove(i);
                let cpu = if cpus > 1 && rng.chance(100_000) {
                    (l.cpu + 1 + rng.below(cpus as u64 - 1) as u32) % cpus
                } else {
                    l.cpu
                };
                if cpu != l.cpu {
                    s.cross_cpu_frees += 1;
                }
                s.bytes_freed += l.bytes_alloc;
                let ty = if anomalies && l.ty != AllocType::Pages && rng.chance(1_000) {
                    let wrong = if l.ty == AllocType::Kmalloc {
                        AllocType::KmemCache
                    } else {
                        AllocType::Kmalloc
                    };
                    let v = rules::verdict(opts.allocator, l.ty, wrong);
                    s.mismatched_frees += v.error as u64;
                    s.cache_objects_kfreed += (v.rule == Some(Rule::CacheObjectKfreed)) as u64;
                    wrong
                } else {
                    l.ty
                };
                let p = &mut pool[l.ty as usize];
                if p.len() < 100_000 {
                    p.push(l.ptr);
                }
                (cpu, ty, l.ptr)
            };
            (
                cpu,
                Record {
                    type_id: ty,
                    seq: this_seq,
                    call_site: site.addr,
                    ptr,
                    alloc: None,
                    features: vec![],
                },
            )
        };
        let mut rec = rec;
        if opts.stack_depth > 0 {
            let frames = synth_stack(
                rec.call_site,
                stack_rng.below(2),
                opts.stack_depth,
                callers_base,
            );
            rec.features = abi::stack_feature(&frames, opts.order);
        }
        let buf = &mut bufs[cpu as usize];
        rec.encode_into(opts.order, buf);
        if buf.len() >= 1 << 16 {
            sink(cpu, buf)?;
            buf.clear();
        }
    }
    for (cpu, buf) in bufs.iter().enumerate() {
        sink(cpu as u32, buf)?;
    }
    s.live_allocations = live.len() as u64;
    s.live_bytes = live.iter().map(|l| l.bytes_alloc).sum();
    s.fragmentation_bytes = s.bytes_allocated as i64 - s.bytes_requested as i64;

    let mut kallsyms = String::from("ffffffff81000000 T _stext\n");
    for f in 0..fns {
        kallsyms.push_str(&format!(
            "{:016x} T {}\n",
            FN_BASE + f * FN_STRIDE,
            function_name(f)
        ));
    }
    let mut end = callers_base;
    if opts.stack_depth > 0 {
        for (c, name) in CALLERS.iter().enumerate() {
            kallsyms.push_str(&format!(
                "{:016x} T {name}\n",
                callers_base + c as u64 * FN_STRIDE
            ));
        }
        end += CALLERS.len() as u64 * FN_STRIDE;
    }
    kallsyms.push_str(&format!("{end:016x} T _etext\n"));
    let meta = Meta {
        kmemtrace_meta: 1,
        collector: Some(format!("kmemtrace synth {}", env!("CARGO_PKG_VERSION"))),
        abi_version: Some(if opts.stack_depth > 0 { 2 } else { 1 }),
        byte_order: Some(opts.order),
        machine: Some("synthetic".into()),
        kernel_release: Some("synthetic".into()),
        allocator: Some(opts.allocator.name().into()),
        page_size: Some(4096),
        total_overruns: Some(0),
        cpus: (0..cpus)
            .map(|c| MetaCpu {
                cpu: c,
                node: Some(if nodes > 1 { (c % nodes) as i32 } else { -1 }),
                file: Some(format!("cpu{c}.out")),
                bytes: None,
                logged_bytes: None,
                dropped_bytes: None,
            })
            .collect(),
        start_unix_ms: None,
        stop_unix_ms: None,
        extra: Default::default(),
    };
    Ok(SynthOutput {
        summary: s,
        meta,
        kallsyms,
    })
}

/// Generate a trace in memory (tests): the input (with metadata and symbols) and the output.
pub fn synth_in_memory(opts: &SynthOptions) -> (TraceInput, SynthOutput) {
    let mut streams: Vec<Vec<u8>> = vec![Vec::new(); opts.cpus.max(1) as usize];
    let out = synth::<std::convert::Infallible>(opts, |cpu, b| {
        streams[cpu as usize].extend_from_slice(b);
        Ok(())
    })
    .unwrap_or_else(|e| match e {});
    let mut meta = out.meta.clone();
    for (c, s) in meta.cpus.iter_mut().zip(&streams) {
        c.bytes = Some(s.len() as u64);
    }
    let mut input =
        TraceInput::from_streams(streams.into_iter().enumerate().map(|(c, b)| (c as u32, b)));
    input.meta = Some(meta.clone());
    input.symbols = Some(Symbols::parse(&out.kallsyms));
    (input, SynthOutput { meta, ..out })
}

/// Write a synthetic trace directory (`cpu<N>.out`, `kallsyms`, `meta.json`). `dir` must not
/// exist or be an empty directory; it is written whole or not at all (see `dest.rs`).
pub fn synth_to_dir(opts: &SynthOptions, dir: &Path) -> Result<SynthOutput> {
    let staging = Staging::new(dir)?;
    let mut files = Vec::new();
    for c in 0..opts.cpus.max(1) {
        let name = format!("cpu{c}.out");
        let w = staging.create(&name)?;
        files.push((staging.shown(&name), w, 0u64));
    }
    let mut out = synth(opts, |cpu, b| {
        let (p, w, n) = &mut files[cpu as usize];
        *n += b.len() as u64;
        w.write_all(b).map_err(io_out(p.as_path(), "cannot write"))
    })?;
    for ((p, mut w, n), c) in files.into_iter().zip(out.meta.cpus.iter_mut()) {
        w.flush().map_err(io_out(&p, "cannot write"))?;
        c.bytes = Some(n);
    }
    staging.write("kallsyms", out.kallsyms.as_bytes())?;
    staging.write("meta.json", out.meta.to_json().as_bytes())?;
    staging.commit()?;
    Ok(out)
}
