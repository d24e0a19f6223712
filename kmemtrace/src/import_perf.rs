// SPDX-License-Identifier: GPL-2.0-only
//! Import `perf script` output of the kmem tracepoints as a kmemtrace trace directory, so
//! `kmemtrace report` and `perf kmem stat` can be timed on the same events.
//!
//! Lines look like
//! `perf 10613 [001] 671.547855: kmem:kmalloc: call_site=f+0x10c ptr=0xffff… bytes_req=32
//! bytes_alloc=32 gfp_flags=GFP_KERNEL node=-1 accounted=false`. `kmalloc`, `kmalloc_node`,
//! `kmem_cache_alloc`, `kmem_cache_alloc_node`, `kfree`, `kmem_cache_free`, `mm_page_alloc` and
//! `mm_page_free` are imported; sequence numbers follow the input order (perf sorts by time);
//! symbolic call sites (`name+0xoff`) get synthetic addresses, one 1 MiB range per function,
//! listed in the written `kallsyms`. GFP flags are written as 0 (perf prints them symbolically).

use crate::abi::{AllocFields, AllocType, ByteOrder, Record};
use crate::dest::Staging;
use crate::error::{io_in, io_out, Error, Result};
use crate::input::TraceInput;
use crate::meta::{Meta, MetaCpu};
use crate::symbols::Symbols;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Function `k` (in order of first appearance) gets `[FN_BASE + k * FN_SPAN, +FN_SPAN)`: room for
/// [`MAX_FNS`] (2^27) functions in the top 2^47 bytes of the address space, where kernel text
/// lies (raw `0x…` call sites, which perf prints when it has no symbol, only collide with
/// functions past the first 130 million).
const FN_BASE: u64 = 0xffff_8000_0000_0000;
const FN_SPAN: u64 = 1 << 20;
/// Functions that get a range; any further one gets call site 0 (unknown) rather than another's.
const MAX_FNS: u64 = (u64::MAX - FN_BASE) / FN_SPAN + 1;

/// One parsed kmem event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfEvent {
    /// CPU in brackets.
    pub cpu: u32,
    /// Allocator family.
    pub type_id: AllocType,
    /// Whether it is an allocation.
    pub alloc: bool,
    /// `call_site=` as printed (`name+0xoff` or a hex address); empty for page events.
    pub call_site: String,
    /// `ptr=` (or `pfn * 4096` for page events).
    pub ptr: u64,
    /// `bytes_req=` (pages: `4096 << order`).
    pub bytes_req: u64,
    /// `bytes_alloc=`.
    pub bytes_alloc: u64,
    /// `node=`.
    pub node: i32,
}

fn hex(s: &str) -> Option<u64> {
    if s == "(nil)" {
        return Some(0);
    }
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Parse one `perf script` line; `None` for lines that are not imported kmem events.
pub fn parse_line(line: &str) -> Option<PerfEvent> {
    let k = line.find(" kmem:")?;
    let head = &line[..k];
    let cpu = head
        .split_whitespace()
        .find(|w| w.starts_with('[') && w.ends_with(']'))?
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .ok()?;
    let rest = &line[k + 6..];
    let (name, fields) = rest.split_once(':')?;
    let mut f: HashMap<&str, &str> = HashMap::new();
    for w in fields.split_whitespace() {
        if let Some((a, b)) = w.split_once('=') {
            f.insert(a, b);
        }
    }
    let (type_id, alloc) = match name {
        "kmalloc" | "kmalloc_node" => (AllocType::Kmalloc, true),
        "kmem_cache_alloc" | "kmem_cache_alloc_node" => (AllocType::KmemCache, true),
        "kfree" => (AllocType::Kmalloc, false),
        "kmem_cache_free" => (AllocType::KmemCache, false),
        "mm_page_alloc" => (AllocType::Pages, true),
        "mm_page_free" => (AllocType::Pages, false),
        _ => return None,
    };
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    if type_id == AllocType::Pages {
        let pfn = hex(f.get("pfn")?)?;
        let bytes = 4096u64 << num("order").min(20);
        return Some(PerfEvent {
            cpu,
            type_id,
            alloc,
            call_site: String::new(),
            ptr: pfn.wrapping_mul(4096),
            bytes_req: bytes,
            bytes_alloc: bytes,
            node: -1,
        });
    }
    Some(PerfEvent {
        cpu,
        type_id,
        alloc,
        call_site: f.get("call_site").copied().unwrap_or("").to_string(),
        ptr: hex(f.get("ptr")?)?,
        bytes_req: num("bytes_req"),
        bytes_alloc: num("bytes_alloc"),
        node: f.get("node").and_then(|v| v.parse().ok()).unwrap_or(-1),
    })
}

/// Synthetic addresses for symbolic call sites.
struct Sites {
    fns: HashMap<String, u64>,
    /// [`MAX_FNS`] (tests lower it).
    max_fns: u64,
}

impl Default for Sites {
    fn default() -> Self {
        Sites {
            fns: HashMap::new(),
            max_fns: MAX_FNS,
        }
    }
}

impl Sites {
    fn addr(&mut self, cs: &str) -> u64 {
        if cs.is_empty() {
            return 0;
        }
        if let Some(a) = cs
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            return a;
        }
        let (name, off) = match cs.rsplit_once('+') {
            Some((n, o)) => (n, hex(o).unwrap_or(0) % FN_SPAN),
            None => (cs, 0),
        };
        let n = self.fns.len() as u64;
        if n >= self.max_fns && !self.fns.contains_key(name) {
            return 0;
        }
        let base = *self
            .fns
            .entry(name.to_string())
            .or_insert(FN_BASE + n * FN_SPAN);
        base + off
    }

    /// The `kallsyms` text listing every function's range.
    fn kallsyms(&self) -> String {
        let mut syms: Vec<(u64, &String)> = self.fns.iter().map(|(n, a)| (*a, n)).collect();
        syms.sort();
        syms.iter()
            .map(|(a, n)| format!("{a:016x} T {n}\n"))
            .collect()
    }
}

/// The pure part of an import: `perf script` lines in, encoded records out (with the CPU that
/// logged each), and at the end the trace's `kallsyms` text and `meta.json`. The file edge,
/// [`import_perf`], and the in-memory one, [`import_perf_in_memory`], only say where the bytes go.
struct Importer {
    order: ByteOrder,
    sites: Sites,
    seq: i32,
    records: u64,
    /// Bytes written per CPU.
    cpus: BTreeMap<u32, u64>,
    buf: Vec<u8>,
}

impl Importer {
    fn new(order: ByteOrder) -> Self {
        Importer {
            order,
            sites: Sites::default(),
            seq: 1,
            records: 0,
            cpus: BTreeMap::new(),
            buf: Vec::with_capacity(64),
        }
    }

    /// The CPU and encoded record of one input line (its end of line included or not), or
    /// `None` when it is not an imported kmem event. Bytes that are not UTF-8 (a process name
    /// can be any bytes) are read as U+FFFD: the event's own fields are ASCII.
    fn line(&mut self, line: &[u8]) -> Option<(u32, &[u8])> {
        let e = parse_line(&String::from_utf8_lossy(line))?;
        let rec = Record {
            type_id: e.type_id,
            seq: self.seq,
            call_site: self.sites.addr(&e.call_site),
            ptr: e.ptr,
            alloc: e.alloc.then_some(AllocFields {
                bytes_req: e.bytes_req,
                bytes_alloc: e.bytes_alloc,
                gfp_flags: 0,
                numa_node: e.node,
            }),
            features: vec![],
        };
        self.seq = self.seq.wrapping_add(1);
        self.buf.clear();
        rec.encode_into(self.order, &mut self.buf);
        *self.cpus.entry(e.cpu).or_default() += self.buf.len() as u64;
        self.records += 1;
        Some((e.cpu, &self.buf))
    }

    /// The `kallsyms` text and the metadata of what was imported.
    fn finish(self) -> (String, Meta) {
        let meta = Meta {
            kmemtrace_meta: 1,
            collector: Some(format!(
                "kmemtrace import-perf {}",
                env!("CARGO_PKG_VERSION")
            )),
            abi_version: Some(1),
            byte_order: Some(self.order),
            page_size: Some(4096),
            cpus: self
                .cpus
                .iter()
                .map(|(&cpu, &bytes)| MetaCpu {
                    cpu,
                    node: Some(-1),
                    file: Some(format!("cpu{cpu}.out")),
                    bytes: Some(bytes),
                    logged_bytes: None,
                    dropped_bytes: None,
                })
                .collect(),
            ..Meta::default()
        };
        (self.sites.kallsyms(), meta)
    }
}

/// Read `perf script` text and write a trace directory (which must not exist or be an empty
/// directory). Returns the number of records written. [`import_perf_named`] with the input named
/// "perf script input" in messages.
pub fn import_perf(reader: impl BufRead, dir: &Path, order: ByteOrder) -> Result<u64> {
    import_perf_named(reader, "perf script input", dir, order)
}

/// [`import_perf`] of the input called `input` in messages (a path, or `-` for stdin). `dir` is
/// written whole or not at all (see `dest.rs`): input that fails half-way, or holds no kmem event
/// ([`Error::NoPerfEvents`]: there would be no CPU file), leaves it untouched.
pub fn import_perf_named(
    mut reader: impl BufRead,
    input: &str,
    dir: &Path,
    order: ByteOrder,
) -> Result<u64> {
    let staging = Staging::new(dir)?;
    type Out = (std::io::BufWriter<std::fs::File>, PathBuf);
    let mut files: HashMap<u32, Out> = HashMap::new();
    let mut imp = Importer::new(order);
    let mut line = Vec::new();
    let mut lines = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_in(input, "cannot read"))?;
        if n == 0 {
            break;
        }
        lines += 1;
        let Some((cpu, rec)) = imp.line(&line) else {
            continue;
        };
        let entry = match files.entry(cpu) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let name = format!("cpu{cpu}.out");
                v.insert((staging.create(&name)?, staging.shown(&name)))
            }
        };
        entry
            .0
            .write_all(rec)
            .map_err(io_out(&entry.1, "cannot write"))?;
    }
    if imp.records == 0 {
        return Err(Error::NoPerfEvents {
            input: input.to_string(),
            lines,
        });
    }
    for (mut w, shown) in files.into_values() {
        w.flush().map_err(io_out(&shown, "cannot write"))?;
    }
    let records = imp.records;
    let (kallsyms, meta) = imp.finish();
    staging.write("kallsyms", kallsyms.as_bytes())?;
    staging.write("meta.json", meta.to_json().as_bytes())?;
    staging.commit()?;
    Ok(records)
}

/// [`import_perf`] in memory: the trace it would write (streams, metadata and the symbols of its
/// `kallsyms`) and the number of records.
pub fn import_perf_in_memory(text: &[u8], order: ByteOrder) -> (TraceInput, u64) {
    let mut streams: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut imp = Importer::new(order);
    for line in text.split(|b| *b == b'\n') {
        if let Some((cpu, rec)) = imp.line(line) {
            streams.entry(cpu).or_default().extend_from_slice(rec);
        }
    }
    let records = imp.records;
    let (kallsyms, meta) = imp.finish();
    let mut input = TraceInput::from_streams(streams);
    input.meta = Some(meta);
    input.symbols = Some(Symbols::parse(&kallsyms));
    (input, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_script_lines() {
        let l = "            perf 10613 [001]   671.547930: kmem:kmem_cache_alloc: call_site=getname_flags.part.0+0x24 ptr=0xffff88810087f000 name=names_cache bytes_req=4096 bytes_alloc=4096 gfp_flags=GFP_KERNEL node=-1 accounted=false";
        let e = parse_line(l).unwrap();
        assert_eq!(e.cpu, 1);
        assert_eq!(e.type_id, AllocType::KmemCache);
        assert!(e.alloc);
        assert_eq!(e.call_site, "getname_flags.part.0+0x24");
        assert_eq!(e.ptr, 0xffff88810087f000);
        assert_eq!((e.bytes_req, e.bytes_alloc, e.node), (4096, 4096, -1));
        let f =
            parse_line("ls 1 [000] 1.0:            kmem:kfree: call_site=x+0x1 ptr=0x0").unwrap();
        assert!(!f.alloc && f.ptr == 0);
        let nil =
            parse_line("cc1 2 [001] 1.0: kmem:kfree: call_site=perf_event_mmap+0x258 ptr=(nil)")
                .unwrap();
        assert_eq!((nil.cpu, nil.ptr), (1, 0));
        assert!(parse_line("ls 1 [000] 1.0: sched:sched_switch: a=b").is_none());
        let mut s = Sites::default();
        assert_eq!(s.addr("f+0x10"), FN_BASE + 0x10);
        assert_eq!(s.addr("g+0x0"), FN_BASE + FN_SPAN);
        assert_eq!(s.addr("f+0x20"), FN_BASE + 0x20);
        // The last function's range ends at the top of the address space; past it, call site 0.
        assert_eq!(MAX_FNS, 1 << 27);
        assert_eq!(FN_BASE + (MAX_FNS - 1) * FN_SPAN + (FN_SPAN - 1), u64::MAX);
        s.max_fns = 3;
        assert_eq!(s.addr("h+0x8"), FN_BASE + 2 * FN_SPAN + 8);
        assert_eq!(s.addr("one_too_many+0x8"), 0);
        assert_eq!(s.addr("f+0x8"), FN_BASE + 8);
    }

    const SCRIPT: &[u8] = b"\
 perf 10 [001] 1.000001: kmem:kmalloc: call_site=f+0x10 ptr=0xffff888100001000 bytes_req=30 bytes_alloc=32 gfp_flags=GFP_KERNEL node=-1 accounted=false
 ls 11 [000] 1.000002: sched:sched_switch: prev_comm=ls
 \xff\xfe 12 [000] 1.000003: kmem:kfree: call_site=g+0x4 ptr=0xffff888100001000\r
 perf 10 [001] 1.000004: kmem:mm_page_alloc: page=0x1 pfn=0x1000 order=1 migratetype=0 gfp_flags=GFP_KERNEL
";

    #[test]
    fn in_memory_import_is_what_the_directory_holds() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("t");
        let n = import_perf(SCRIPT, &dir, ByteOrder::Big).unwrap();
        let (mem, m) = import_perf_in_memory(SCRIPT, ByteOrder::Big);
        assert_eq!(
            (n, m),
            (3, 3),
            "the line from a non-UTF-8 process name is imported too"
        );
        let disk = crate::load_dir(&dir).unwrap();
        assert_eq!(disk.meta, mem.meta);
        assert_eq!(disk.symbols, mem.symbols);
        let bytes = |t: &TraceInput| {
            t.files
                .iter()
                .map(|f| (f.cpu, f.bytes().to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bytes(&disk), bytes(&mem));
    }

    /// Found by reading, not by the fuzzer (its inputs are too short): function 1536 and every
    /// one after it overflowed the synthetic address range past 2^64 (a panic with overflow
    /// checks, call sites near 0 that no symbol names without).
    #[test]
    fn import_perf_gives_each_of_many_functions_its_own_range() {
        let script: String = (0..3000)
            .map(|i| {
                format!(
                    "p 1 [000] 1.0: kmem:kmalloc: call_site=fn_{i}+0x10 ptr=0x{:x} bytes_req=8 \
                     bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1\n",
                    0x1000 + i * 64
                )
            })
            .collect();
        let (input, n) = import_perf_in_memory(script.as_bytes(), ByteOrder::Little);
        assert_eq!(n, 3000);
        let syms = input.symbols.as_ref().unwrap();
        assert_eq!(syms.len(), 3000);
        let recs = crate::decode_all(input.files[0].bytes(), ByteOrder::Little);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(syms.resolve(r.call_site), Some((&*format!("fn_{i}"), 0x10)));
        }
    }
}
