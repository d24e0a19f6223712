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
use crate::meta::{Meta, MetaCpu};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

const FN_BASE: u64 = 0xffff_ffff_a000_0000;
const FN_SPAN: u64 = 1 << 20;

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
#[derive(Default)]
struct Sites {
    fns: HashMap<String, u64>,
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
        let base = *self
            .fns
            .entry(name.to_string())
            .or_insert(FN_BASE + n * FN_SPAN);
        base + off
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
    reader: impl BufRead,
    input: &str,
    dir: &Path,
    order: ByteOrder,
) -> Result<u64> {
    let staging = Staging::new(dir)?;
    type Out = (std::io::BufWriter<std::fs::File>, u64, PathBuf);
    let mut files: HashMap<u32, Out> = HashMap::new();
    let mut sites = Sites::default();
    let mut seq: i32 = 1;
    let (mut n, mut lines) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(64);
    for line in reader.lines() {
        let line = line.map_err(io_in(input, "cannot read"))?;
        lines += 1;
        let Some(e) = parse_line(&line) else { continue };
        let rec = Record {
            type_id: e.type_id,
            seq,
            call_site: sites.addr(&e.call_site),
            ptr: e.ptr,
            alloc: e.alloc.then_some(AllocFields {
                bytes_req: e.bytes_req,
                bytes_alloc: e.bytes_alloc,
                gfp_flags: 0,
                numa_node: e.node,
            }),
            features: vec![],
        };
        seq = seq.wrapping_add(1);
        buf.clear();
        rec.encode_into(order, &mut buf);
        let entry = match files.entry(e.cpu) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let name = format!("cpu{}.out", e.cpu);
                v.insert((staging.create(&name)?, 0, staging.shown(&name)))
            }
        };
        entry
            .0
            .write_all(&buf)
            .map_err(io_out(&entry.2, "cannot write"))?;
        entry.1 += buf.len() as u64;
        n += 1;
    }
    if n == 0 {
        return Err(Error::NoPerfEvents {
            input: input.to_string(),
            lines,
        });
    }
    let mut cpus: Vec<MetaCpu> = Vec::new();
    for (cpu, (mut w, bytes, shown)) in files {
        w.flush().map_err(io_out(&shown, "cannot write"))?;
        cpus.push(MetaCpu {
            cpu,
            node: Some(-1),
            file: Some(format!("cpu{cpu}.out")),
            bytes: Some(bytes),
        });
    }
    cpus.sort_by_key(|c| c.cpu);
    let mut syms: Vec<(u64, &String)> = sites.fns.iter().map(|(n, a)| (*a, n)).collect();
    syms.sort();
    let text: String = syms
        .iter()
        .map(|(a, n)| format!("{a:016x} T {n}\n"))
        .collect();
    staging.write("kallsyms", text.as_bytes())?;
    let meta = Meta {
        kmemtrace_meta: 1,
        collector: Some(format!(
            "kmemtrace import-perf {}",
            env!("CARGO_PKG_VERSION")
        )),
        abi_version: Some(1),
        byte_order: Some(order),
        page_size: Some(4096),
        cpus,
        ..Meta::default()
    };
    staging.write("meta.json", meta.to_json().as_bytes())?;
    staging.commit()?;
    Ok(n)
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
    }
}
