// SPDX-License-Identifier: GPL-2.0-only
//! The cross-check against the kernel's own account: memory allocation profiling's
//! `/proc/allocinfo` (Linux 6.10+, `CONFIG_MEM_ALLOC_PROFILING`), read just after tracing went on
//! and just after the workload (`allocinfo.before`, `allocinfo.after` in a trace directory,
//! docs/contracts.md §1), against the trace's live bytes per function over the same window.
//!
//! The two accounts differ in ways that are real, not errors (kmemtrace/docs/report-schema.md, "allocinfo
//! cross-check"), and the comparison is built on them:
//!
//! - allocinfo's change also subtracts frees of memory allocated before the window; a trace sees
//!   those frees but cannot size them. So for a function both name, allocinfo's change is at most
//!   the trace's live bytes, and equal when nothing older was freed.
//! - allocinfo names the function whose source holds the allocation (an inlined helper such as
//!   `alloc_thread_stack_node`, or the caller of a `_noprof` wrapper such as `seq_buf_alloc`);
//!   the trace names the function the call was compiled into (`copy_process`,
//!   `__kvmalloc_node_noprof`). Names only one side has are compared as one pool, by the same
//!   rule.
//! - allocinfo counts allocations the six tracepoints never see: vmalloc's areas and pages
//!   (`mm/vmalloc.c`) and percpu memory (`mm/percpu*.c`); [`EXCLUDED_FILES`] leaves them out.
//!
//! Pure: text in, figures out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};

/// Source files whose allocinfo entries the trace cannot see, with why (prefix match).
pub const EXCLUDED_FILES: &[(&str, &str)] = &[
    (
        "mm/vmalloc.c",
        "vmalloc: its areas and its pages (alloc_pages_bulk) pass no kmem tracepoint",
    ),
    (
        "mm/percpu",
        "percpu memory: chunks are vmalloc'd or memblock, objects are carved without a tracepoint",
    ),
];

/// One `/proc/allocinfo` line: `<bytes> <calls> <file>:<line> [module] func:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Live bytes.
    pub bytes: i64,
    /// Live allocations.
    pub calls: i64,
    /// `file:line` of the allocation.
    pub location: String,
    /// The function allocinfo names.
    pub function: String,
}

/// Parse `/proc/allocinfo` text; `name` names the file in errors. Header lines (`allocinfo -
/// version: …`, `#…`) are skipped.
pub fn parse(text: &str, name: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let at = offset;
        offset += line.len();
        let line = line.trim_end_matches('\n');
        if line.trim().is_empty() || line.starts_with("allocinfo") || line.starts_with('#') {
            continue;
        }
        let bad = |detail: &str| Error::Allocinfo {
            file: name.to_string(),
            line: i + 1,
            offset: at as u64,
            detail: format!("{detail}: {line:?}"),
        };
        let mut words = line.split_whitespace();
        let bytes = words.next().and_then(|w| w.parse::<i64>().ok());
        let calls = words.next().and_then(|w| w.parse::<i64>().ok());
        let location = words.next();
        let function = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("func:"));
        match (bytes, calls, location, function) {
            (Some(bytes), Some(calls), Some(location), Some(function)) => entries.push(Entry {
                bytes,
                calls,
                location: location.to_string(),
                function: function.to_string(),
            }),
            (None, ..) | (_, None, ..) => return Err(bad("expected <bytes> <calls> first")),
            _ => return Err(bad("expected <file>:<line> and func:<name>")),
        }
    }
    Ok(entries)
}

/// The reason an entry is left out, if [`EXCLUDED_FILES`] names its file.
pub fn excluded(location: &str) -> Option<&'static str> {
    EXCLUDED_FILES
        .iter()
        .find(|(prefix, _)| location.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// A function name without the ELFv1 dot and the compiler's clone suffixes (`.isra.0`,
/// `.constprop.0`, `.cold`): what allocinfo's `func:` says for the same code.
///
/// This is [`crate::symbols::base_name`] except for a name whose plain form starts with a dot
/// (`.`, `..x`): `base_name` keeps it (`.`, `.x`), this gives `""`, and so puts all of them in
/// one row of the cross-check. Not unified, since that would change such rows; the test
/// `source_name_is_base_name_but_for_leading_dots` holds the difference to exactly that.
pub fn source_name(name: &str) -> &str {
    let name = crate::symbols::plain_name(name);
    name.split('.').next().unwrap_or(name)
}

/// How one function's two figures compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// The same live bytes.
    Equal,
    /// allocinfo's change is lower: memory from before the window was freed.
    OlderFreed,
    /// allocinfo's change is higher than what the trace saw allocated: an error of one of them.
    Exceeds,
    /// Only allocinfo names it (an inlined helper, a wrapper's caller): compared in the pool.
    AllocinfoOnly,
    /// Only the trace names it (the function a helper was inlined into, a wrapper).
    TraceOnly,
}

/// One function's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The function (allocinfo's name, or the trace's without clone suffixes).
    pub function: String,
    /// allocinfo's change in live bytes over the window.
    pub allocinfo_bytes: i64,
    /// allocinfo's change in live allocations.
    pub allocinfo_calls: i64,
    /// The trace's live bytes (allocated in the window, not freed in it).
    pub trace_bytes: i64,
    /// The trace's live allocations.
    pub trace_allocations: i64,
    /// How they compare.
    pub agreement: Agreement,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// Functions with a non-zero figure on either side, the largest difference first.
    pub rows: Vec<Row>,
    /// Functions both name with equal bytes.
    pub equal: usize,
    /// Functions both name.
    pub both: usize,
    /// The pool of names only allocinfo has: the sum of their changes.
    pub allocinfo_only_bytes: i64,
    /// The pool of names only the trace has: the sum of their live bytes.
    pub trace_only_bytes: i64,
    /// allocinfo's change in bytes left out by [`EXCLUDED_FILES`], per file prefix.
    pub excluded: BTreeMap<String, i64>,
}

impl CrossCheck {
    /// What allocinfo's changes exceed the trace's by, over the functions both name: a wrapper
    /// the trace names (`kmalloc_array_noprof` not inlined) allocated it for the function
    /// allocinfo charges.
    pub fn excess_bytes(&self) -> i64 {
        self.rows
            .iter()
            .filter(|r| r.agreement == Agreement::Exceeds)
            .map(|r| r.allocinfo_bytes - r.trace_bytes)
            .sum()
    }

    /// The rule holds: allocinfo's change for the names only it has, plus what it exceeds the
    /// trace by on the names both have, is at most the trace's live bytes for the names only the
    /// trace has (the inlined-into functions and the wrappers).
    pub fn agrees(&self) -> bool {
        self.allocinfo_only_bytes + self.excess_bytes() <= self.trace_only_bytes
    }

    /// The rows as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serialisable") + "\n"
    }

    /// A text table.
    pub fn render_text(&self, lines: usize) -> String {
        let mut s = format!(
            "allocinfo cross-check: {} of {} functions both name agree exactly; allocinfo has {} \
             bytes on names only it has and {} bytes more than the trace on names both have, \
             against {} bytes on names only the trace has: {}\n",
            self.equal,
            self.both,
            self.allocinfo_only_bytes,
            self.excess_bytes(),
            self.trace_only_bytes,
            if self.agrees() { "agrees" } else { "DISAGREES" }
        );
        for (file, bytes) in self.excluded.iter().filter(|(_, b)| **b != 0) {
            s.push_str(&format!("  left out: {file}: {bytes} bytes\n"));
        }
        s.push_str(&format!(
            "\n{:<40} {:>12} {:>8} {:>12} {:>8}  agreement\n",
            "function", "allocinfo", "calls", "trace", "allocs"
        ));
        for r in self.rows.iter().take(lines) {
            s.push_str(&format!(
                "{:<40} {:>12} {:>8} {:>12} {:>8}  {}\n",
                r.function,
                r.allocinfo_bytes,
                r.allocinfo_calls,
                r.trace_bytes,
                r.trace_allocations,
                serde_json::to_value(r.agreement)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ));
        }
        if self.rows.len() > lines {
            s.push_str(&format!("… {} more functions\n", self.rows.len() - lines));
        }
        s
    }
}

/// allocinfo's change per function from `before` to `after` (each `(bytes, calls)`), with
/// [`EXCLUDED_FILES`] left out and summed per prefix. With no `before` (a boot: the counters
/// start with the kernel), `after` is the change.
pub fn change(
    before: Option<&[Entry]>,
    after: &[Entry],
) -> (BTreeMap<String, (i64, i64)>, BTreeMap<String, i64>) {
    let mut by_function: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut left_out: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |e: &Entry, sign: i64| {
        if let Some(prefix) = EXCLUDED_FILES
            .iter()
            .map(|(p, _)| *p)
            .find(|p| e.location.starts_with(p))
        {
            *left_out.entry(prefix.to_string()).or_default() += sign * e.bytes;
            return;
        }
        let f = by_function.entry(e.function.clone()).or_default();
        f.0 += sign * e.bytes;
        f.1 += sign * e.calls;
    };
    for e in before.unwrap_or_default() {
        add(e, -1);
    }
    for e in after {
        add(e, 1);
    }
    by_function.retain(|_, v| *v != (0, 0));
    (by_function, left_out)
}

/// Compare allocinfo's change with the trace's live figures per function, `(function,
/// live_bytes, live_allocations)`: every row of a report's `functions` (analysed without a row
/// limit).
pub fn cross_check<'a>(
    before: Option<&[Entry]>,
    after: &[Entry],
    functions: impl IntoIterator<Item = (&'a str, u64, u64)>,
) -> CrossCheck {
    let (allocinfo, excluded) = change(before, after);
    let mut trace: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (function, bytes, allocations) in functions {
        let t = trace.entry(source_name(function).to_string()).or_default();
        t.0 += bytes as i64;
        t.1 += allocations as i64;
    }
    trace.retain(|_, v| v.0 != 0);
    let mut rows: Vec<Row> = allocinfo
        .keys()
        .chain(trace.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|name| {
            let a = allocinfo.get(name).copied();
            let t = trace.get(name).copied();
            let (ab, ac) = a.unwrap_or_default();
            let (tb, tc) = t.unwrap_or_default();
            let agreement = match (a, t) {
                (Some(_), None) => Agreement::AllocinfoOnly,
                (None, _) => Agreement::TraceOnly,
                _ if ab == tb => Agreement::Equal,
                _ if ab < tb => Agreement::OlderFreed,
                _ => Agreement::Exceeds,
            };
            Row {
                function: name.clone(),
                allocinfo_bytes: ab,
                allocinfo_calls: ac,
                trace_bytes: tb,
                trace_allocations: tc,
                agreement,
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let d = |r: &Row| (r.allocinfo_bytes - r.trace_bytes).unsigned_abs();
        d(y).cmp(&d(x)).then_with(|| x.function.cmp(&y.function))
    });
    let count = |a: Agreement| rows.iter().filter(|r| r.agreement == a).count();
    let sum = |a: Agreement, f: fn(&Row) -> i64| {
        rows.iter().filter(|r| r.agreement == a).map(f).sum::<i64>()
    };
    CrossCheck {
        equal: count(Agreement::Equal),
        both: count(Agreement::Equal) + count(Agreement::OlderFreed) + count(Agreement::Exceeds),
        allocinfo_only_bytes: sum(Agreement::AllocinfoOnly, |r| r.allocinfo_bytes),
        trace_only_bytes: sum(Agreement::TraceOnly, |r| r.trace_bytes),
        rows,
        excluded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "allocinfo - version: 1.0\n\
        #     <size>  <calls> <tag info>\n\
        \x20       4096        1 kernel/fork.c:300 func:alloc_thread_stack_node\n\
        \x20        640        5 kernel/pid.c:180 func:alloc_pid\n\
        \x20       8192        2 mm/vmalloc.c:3000 func:__vmalloc_area_node\n";
    const AFTER: &str = "allocinfo - version: 1.0\n\
        #     <size>  <calls> <tag info>\n\
        \x20      20480        5 kernel/fork.c:300 func:alloc_thread_stack_node\n\
        \x20        512        4 kernel/pid.c:180 func:alloc_pid\n\
        \x20      16384        4 mm/vmalloc.c:3000 func:__vmalloc_area_node\n\
        \x20        192        1 fs/dcache.c:1600 [ext4] func:__d_alloc\n";

    fn report<'a>(rows: &'a [(&'a str, u64, u64)]) -> impl Iterator<Item = (&'a str, u64, u64)> {
        rows.iter().copied()
    }

    /// The one way this rule and `symbols::base_name` differ (see [`source_name`]).
    #[test]
    fn source_name_is_base_name_but_for_leading_dots() {
        use crate::symbols::base_name;
        for n in [
            "alloc_pid",
            ".alloc_pid",
            "kmalloc_array_noprof.constprop.0",
            ".seq_open.isra.0.cold",
            "",
        ] {
            assert_eq!(source_name(n), base_name(n), "{n:?}");
        }
        for (n, base) in [(".", "."), ("..x", ".x"), ("..x.cold", ".x.cold")] {
            assert_eq!((source_name(n), base_name(n)), ("", base), "{n:?}");
        }
    }

    #[test]
    fn parses_lines_and_names_the_bad_one_with_its_offset() {
        let e = parse(AFTER, "after").unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[3].function, "__d_alloc");
        assert_eq!(e[3].location, "fs/dcache.c:1600");
        assert_eq!((e[0].bytes, e[0].calls), (20480, 5));
        let bad = "allocinfo - version: 1.0\n  12 x fs/a.c:1 func:f\n";
        let msg = parse(bad, "allocinfo.after").unwrap_err().to_string();
        assert!(
            msg.contains("allocinfo.after") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(msg.contains("byte 25"), "{msg}");
        assert!(parse("1 2 fs/a.c:1 nofunc\n", "x").is_err());
    }

    #[test]
    fn the_change_leaves_out_vmalloc_and_subtracts_the_before() {
        let (b, a) = (parse(BEFORE, "b").unwrap(), parse(AFTER, "a").unwrap());
        let (by, left) = change(Some(&b), &a);
        assert_eq!(by["alloc_thread_stack_node"], (16384, 4));
        assert_eq!(by["alloc_pid"], (-128, -1));
        assert_eq!(left["mm/vmalloc.c"], 8192);
        assert!(!by.contains_key("__vmalloc_area_node"));
        assert_eq!(change(None, &a).0["alloc_pid"], (512, 4));
    }

    #[test]
    fn compares_by_the_rules() {
        let (b, a) = (parse(BEFORE, "b").unwrap(), parse(AFTER, "a").unwrap());
        // The trace: copy_process holds the inlined stack allocation; alloc_pid's objects were
        // allocated in the window and older ones freed; __d_alloc equal.
        let r = report(&[
            ("copy_process", 16384, 4),
            (".alloc_pid.isra.0", 512, 4),
            ("__d_alloc", 192, 1),
        ]);
        let c = cross_check(Some(&b), &a, r);
        let row = |f: &str| c.rows.iter().find(|r| r.function == f).unwrap().agreement;
        assert_eq!(row("__d_alloc"), Agreement::Equal);
        assert_eq!(row("alloc_pid"), Agreement::OlderFreed);
        assert_eq!(row("alloc_thread_stack_node"), Agreement::AllocinfoOnly);
        assert_eq!(row("copy_process"), Agreement::TraceOnly);
        assert_eq!((c.equal, c.both), (1, 2));
        assert_eq!((c.allocinfo_only_bytes, c.trace_only_bytes), (16384, 16384));
        assert!(c.agrees(), "{}", c.render_text(20));

        // A trace that missed allocations disagrees, per function and in the pool.
        let short = report(&[
            ("copy_process", 16384, 4),
            ("alloc_pid", 512, 4),
            ("__d_alloc", 96, 1),
        ]);
        let c = cross_check(Some(&b), &a, short);
        assert_eq!(
            c.rows
                .iter()
                .find(|r| r.function == "__d_alloc")
                .unwrap()
                .agreement,
            Agreement::Exceeds
        );
        assert_eq!(c.excess_bytes(), 96);
        assert!(!c.agrees());
        assert!(c.render_text(20).contains("DISAGREES"));
        // Unless a wrapper the trace names holds the rest.
        let wrapped = report(&[
            ("copy_process", 16384, 4),
            ("alloc_pid", 512, 4),
            ("__d_alloc", 96, 1),
            ("kmalloc_array_noprof.constprop.0", 96, 1),
        ]);
        assert!(cross_check(Some(&b), &a, wrapped).agrees());
        let pool_only = report(&[
            ("copy_process", 4096, 1),
            ("alloc_pid", 512, 4),
            ("__d_alloc", 192, 1),
        ]);
        assert!(!cross_check(Some(&b), &a, pool_only).agrees());
    }
}
