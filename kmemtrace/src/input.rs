// SPDX-License-Identifier: GPL-2.0-only
//! Loading a trace: per-CPU files (memory-mapped), `meta.json` and symbols. This is the library's
//! only file-reading edge; the analysis works on [`TraceInput`] values, which tests build from
//! bytes with [`TraceInput::from_streams`]. Wherever a trace directory is taken, a `kmt run`
//! output directory is as good: [`trace_dir`] finds the trace in its `trace/`. (A diff or
//! compare side, a trace or a `report.json`, is loaded by [`crate::sides::load_side`], above
//! both this and the analysis.)

use crate::error::{io_in, Error, Result};
use crate::meta::Meta;
use crate::symbols::Symbols;
use std::path::{Path, PathBuf};

/// The bytes of one CPU file.
enum Data {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

/// One per-CPU stream.
pub struct CpuFile {
    /// The name reports use (the path as given, or the name given to [`CpuFile::from_bytes`]).
    pub name: String,
    /// The CPU that logged the records (from `cpu<N>` in the file name, else the position).
    pub cpu: u32,
    data: Data,
}

impl std::fmt::Debug for CpuFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuFile")
            .field("name", &self.name)
            .field("cpu", &self.cpu)
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl CpuFile {
    /// A stream held in memory.
    pub fn from_bytes(name: impl Into<String>, cpu: u32, bytes: Vec<u8>) -> Self {
        CpuFile {
            name: name.into(),
            cpu,
            data: Data::Owned(bytes),
        }
    }

    /// Map `path` read-only. The CPU number comes from the file name (`cpu3.out`, `cpu3`) or is
    /// `fallback_cpu`.
    pub fn open(path: &Path, fallback_cpu: u32) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_in(path, "cannot open"))?;
        let len = file.metadata().map_err(io_in(path, "cannot stat"))?.len();
        let data = if len == 0 {
            Data::Owned(Vec::new())
        } else {
            // SAFETY: the mapping is read-only; a trace file truncated by someone else while we
            // read it would raise SIGBUS, as with any mmap reader (documented in the README).
            let m = unsafe { memmap2::Mmap::map(&file) }.map_err(io_in(path, "cannot map"))?;
            let _ = m.advise(memmap2::Advice::Sequential);
            Data::Mapped(m)
        };
        Ok(CpuFile {
            name: path.display().to_string(),
            cpu: cpu_from_name(path).unwrap_or(fallback_cpu),
            data,
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Mapped(m) => m,
        }
    }

    /// Ask the kernel to map `[from, from + len)` now, in one call, rather than page fault by page
    /// fault as the scanner gets there (`MADV_POPULATE_READ`; ignored where unsupported).
    pub(crate) fn prefault(&self, from: usize, len: usize) {
        if let Data::Mapped(m) = &self.data {
            let start = from / 4096 * 4096;
            let end = from.saturating_add(len).min(m.len());
            if end > start {
                let _ = m.advise_range(memmap2::Advice::PopulateRead, start, end - start);
            }
        }
    }

    /// Tell the kernel the first `upto` bytes will not be read again, so a streaming pass over a
    /// large mapped file keeps a small resident set. No effect on in-memory streams.
    pub(crate) fn release(&self, from: usize, upto: usize) {
        if let Data::Mapped(m) = &self.data {
            let page = 4096;
            let start = from.div_ceil(page) * page;
            let end = upto / page * page;
            if end > start {
                // SAFETY: the mapping is a read-only shared mapping of a file (never written
                // through): MADV_DONTNEED only drops our page-table entries, and a later read
                // fetches the same bytes again from the page cache; nothing holds a reference
                // into the released range (the scanner is past it and records are copied).
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }
}

/// The CPU number in a name such as `cpu12.out` or `cpu12`.
pub fn cpu_from_name(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("cpu")?;
    let digits = rest.strip_suffix(".out").unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A loaded trace: CPU streams plus optional metadata and symbols.
#[derive(Debug, Default)]
pub struct TraceInput {
    /// The per-CPU streams, in CPU order for directories, in the given order otherwise.
    pub files: Vec<CpuFile>,
    /// `meta.json`, when there is one.
    pub meta: Option<Meta>,
    /// Symbols for call sites, when there are some.
    pub symbols: Option<Symbols>,
    /// The trace directory the files came from, when loaded from one. Files loaded from a
    /// directory are named relative to it (`cpu0.out`), so a report does not depend on where the
    /// trace lies.
    pub dir: Option<PathBuf>,
}

/// Where [`load`] finds optional side files when they are not in the trace directory.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Explicit `meta.json`.
    pub meta: Option<PathBuf>,
    /// Explicit kallsyms file (wins over the directory's `kallsyms`).
    pub kallsyms: Option<PathBuf>,
    /// Explicit System.map (wins over kallsyms).
    pub system_map: Option<PathBuf>,
}

impl TraceInput {
    /// A trace from in-memory streams `(cpu, bytes)`, named `cpu<N>.out`.
    pub fn from_streams(streams: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Self {
        TraceInput {
            files: streams
                .into_iter()
                .map(|(cpu, b)| CpuFile::from_bytes(format!("cpu{cpu}.out"), cpu, b))
                .collect(),
            meta: None,
            symbols: None,
            dir: None,
        }
    }

    /// Total bytes over all streams.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes().len() as u64).sum()
    }
}

/// The subdirectory of a `kmt run` output directory that holds the trace.
const RUN_TRACE_DIR: &str = "trace";

/// The trace directory that `dir` names: `dir` itself when it holds `cpu<N>.out` files, else its
/// `trace/` when that does (a `kmt run` output directory, which also holds `manifest.json`,
/// `report.txt`, `guest.log` …), else `dir`, whose want of trace files its reader reports. Every
/// command that reads a trace directory resolves it here, so that a run directory is accepted
/// wherever a trace directory is.
pub fn trace_dir(dir: &Path) -> PathBuf {
    let has_cpu_files = |d: &Path| list_cpu_files(d).is_ok_and(|f| !f.is_empty());
    let run_trace = dir.join(RUN_TRACE_DIR);
    if !has_cpu_files(dir) && has_cpu_files(&run_trace) {
        run_trace
    } else {
        dir.to_path_buf()
    }
}

/// Load a trace directory (or a `kmt run` output directory, see [`trace_dir`]): every
/// `cpu<N>.out` (in CPU order), `meta.json` and `kallsyms` if present.
pub fn load_dir(dir: &Path) -> Result<TraceInput> {
    load(&[dir.to_path_buf()], &LoadOptions::default())
}

/// Load a trace from one directory or from explicit CPU files, with optional side files.
///
/// A single directory is read as [`load_dir`] describes (a `kmt run` output directory by its
/// `trace/`); otherwise every path is a CPU file and `meta.json` / `kallsyms` are looked for only
/// through `opts`.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Result<TraceInput> {
    let mut input = TraceInput::default();
    let mut meta_path = opts.meta.clone();
    let mut kallsyms = None;
    for p in paths {
        let md = std::fs::metadata(p).map_err(io_in(p, "cannot access"))?;
        if md.is_dir() {
            let p = &trace_dir(p);
            let files = list_cpu_files(p)?;
            if files.is_empty() {
                return Err(Error::NoTraceFiles { path: p.clone() });
            }
            for (cpu, f) in files {
                let mut cf = CpuFile::open(&f, cpu)?;
                cf.cpu = cpu;
                if paths.len() == 1 {
                    if let Some(n) = f.file_name() {
                        cf.name = n.to_string_lossy().into_owned();
                    }
                }
                input.files.push(cf);
            }
            if paths.len() == 1 {
                input.dir = Some(p.clone());
            }
            let m = p.join("meta.json");
            if meta_path.is_none() && m.exists() {
                meta_path = Some(m);
            }
            let k = p.join("kallsyms");
            if kallsyms.is_none() && k.exists() {
                kallsyms = Some(k);
            }
        } else {
            let fallback = input.files.len() as u32;
            input.files.push(CpuFile::open(p, fallback)?);
        }
    }
    if let Some(m) = meta_path {
        let text = std::fs::read_to_string(&m).map_err(io_in(&m, "cannot read"))?;
        input.meta =
            Some(Meta::from_json(&text).map_err(|source| Error::Meta { path: m, source })?);
    }
    let sym_path = opts
        .system_map
        .clone()
        .or_else(|| opts.kallsyms.clone())
        .or(kallsyms);
    if let Some(s) = sym_path {
        let bytes = std::fs::read(&s).map_err(io_in(&s, "cannot read"))?;
        input.symbols = Some(Symbols::parse(&String::from_utf8_lossy(&bytes)));
    }
    Ok(input)
}

/// The `cpu<N>.out` files of a directory, sorted by N.
pub fn list_cpu_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_in(dir, "cannot list"))? {
        let e = e.map_err(io_in(dir, "cannot list"))?;
        let p = e.path();
        let is_out = p.extension().is_some_and(|x| x == "out");
        if let (true, Some(cpu)) = (is_out, cpu_from_name(&p)) {
            v.push((cpu, p));
        }
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_numbers_come_from_file_names() {
        assert_eq!(cpu_from_name(Path::new("/x/cpu12.out")), Some(12));
        assert_eq!(cpu_from_name(Path::new("cpu3")), Some(3));
        assert_eq!(cpu_from_name(Path::new("cpu.out")), None);
        assert_eq!(cpu_from_name(Path::new("cpux.out")), None);
        assert_eq!(cpu_from_name(Path::new("meta.json")), None);
    }

    #[test]
    fn missing_path_and_empty_directory_are_errors() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_dir(d.path()),
            Err(Error::NoTraceFiles { .. })
        ));
        let e = load_dir(&d.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
