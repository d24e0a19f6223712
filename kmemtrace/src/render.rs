// SPDX-License-Identifier: GPL-2.0-only
//! Text rendering of a [`Report`], in the spirit of `perf kmem stat`, and of a [`CheckReport`].
//! Pure: returns a `String`. (The diff's printers are [`crate::diff_render`], the SVGs [`crate::plot`].)

use crate::check::CheckReport;
use crate::exit_code::KmemtraceExitCode;
use crate::report::*;
use std::fmt::Write;

/// What the text shows.
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// The per-call-site table.
    pub caller: bool,
    /// The per-address table (needs [`Report::allocations`]).
    pub alloc: bool,
    /// The per-function table (when symbols exist).
    pub functions: bool,
    /// Rows per table.
    pub lines: usize,
    /// Which site table: call sites and functions (`callsite`), functions only, or the
    /// [`Report::groups`] rows (`caller`, `stack`).
    pub group_by: GroupBy,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            caller: true,
            alloc: false,
            functions: true,
            lines: 20,
            group_by: GroupBy::Callsite,
        }
    }
}

/// A report section: a title and a function writing it.
type Section = (&'static str, fn(&Report, &TextOptions, &mut String));

/// Sections in output order; each decides itself whether it has anything to say.
const SECTIONS: &[Section] = &[
    ("header", header),
    ("callsites", callsites),
    ("functions", functions),
    ("groups", groups),
    ("allocations", allocations),
    ("summary", summary),
    ("types", types),
    ("memory", memory),
    ("pages", pages),
    ("sizes", sizes),
    ("findings", findings),
    ("damage", damage),
];

/// Render `report` as text.
pub fn render_text(report: &Report, opts: &TextOptions) -> String {
    let mut out = String::new();
    for (_, f) in SECTIONS {
        f(report, opts, &mut out);
    }
    out
}

const RULE: &str = "--------------------------------------------------------------------------------------------------------------";

fn per(total: u64, n: u64) -> u64 {
    total.checked_div(n).unwrap_or(0)
}

fn pct(part: i64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `name` in at most `width` characters: a longer one is elided inside the symbol, keeping the
/// `+0x…` offset that `faddr2line` needs (`radix_tree_node_alloc.co…+0x34`).
fn fit_name(name: &str, width: usize) -> String {
    let len = name.chars().count();
    if len <= width {
        return name.to_string();
    }
    let offset = name.rfind("+0x").map(|i| &name[i..]).unwrap_or("");
    let keep = width.saturating_sub(offset.chars().count() + 1);
    if offset.is_empty() || keep == 0 {
        return format!("{}…", name.chars().take(width - 1).collect::<String>());
    }
    format!("{}…{offset}", name.chars().take(keep).collect::<String>())
}

/// One row of a site table: its name, figures, and lines printed under it (a stack's frames).
type SiteLine<'a> = (String, &'a SiteStats, &'a [String]);

fn site_table(out: &mut String, title: &str, rows: Vec<SiteLine<'_>>, total: usize) {
    let _ = writeln!(out, "{RULE}");
    let _ = writeln!(
        out,
        " {title:<36} | {:>20} | {:>20} | {:>9} | {:>9} | {:>6} | {:>6}",
        "Total_alloc/Per", "Total_req/Per", "Hit", "Ping-pong", "Frag", "Live"
    );
    let _ = writeln!(out, "{RULE}");
    for (name, s, under) in &rows {
        let name = fit_name(name, 36);
        let _ = writeln!(
            out,
            " {name:<36} | {:>20} | {:>20} | {:>9} | {:>9} | {:>5.1}% | {:>6}",
            format!("{}/{}", s.bytes_allocated, per(s.bytes_allocated, s.hits)),
            format!("{}/{}", s.bytes_requested, per(s.bytes_requested, s.hits)),
            s.hits,
            s.cross_cpu_frees,
            pct(s.fragmentation_bytes, s.bytes_allocated),
            s.live_allocations,
        );
        for u in under.iter() {
            let _ = writeln!(out, "     from {u}");
        }
    }
    if total > rows.len() {
        let _ = writeln!(out, " ... | {} more", total - rows.len());
    }
    let _ = writeln!(out, "{RULE}");
    out.push('\n');
}

fn callsites(r: &Report, o: &TextOptions, out: &mut String) {
    if !o.caller || o.group_by != GroupBy::Callsite {
        return;
    }
    let rows = r
        .callsites
        .iter()
        .take(o.lines)
        .map(|c| {
            (
                c.symbol
                    .clone()
                    .unwrap_or_else(|| format!("{:#x}", c.call_site)),
                &c.stats,
                &[][..],
            )
        })
        .collect();
    site_table(out, "Callsite", rows, r.callsites.len());
}

fn functions(r: &Report, o: &TextOptions, out: &mut String) {
    let shown = matches!(o.group_by, GroupBy::Callsite | GroupBy::Function);
    if !o.caller || !o.functions || !shown || r.functions.is_empty() {
        return;
    }
    let rows = r
        .functions
        .iter()
        .take(o.lines)
        .map(|f| (f.function.clone(), &f.stats, &[][..]))
        .collect();
    site_table(out, "Function", rows, r.functions.len());
}

/// `--group-by caller|stack`: a stack's row is named by its call site, its frames under it.
fn groups(r: &Report, o: &TextOptions, out: &mut String) {
    let Some(g) = r.groups.as_ref().filter(|_| o.caller) else {
        return;
    };
    let rows = g
        .rows
        .iter()
        .take(o.lines)
        .map(|row| match g.by {
            GroupBy::Stack => (
                row.frames.first().cloned().unwrap_or_default(),
                &row.stats,
                row.frames.get(1..).unwrap_or(&[]),
            ),
            _ => (row.key.clone(), &row.stats, &[][..]),
        })
        .collect();
    let title = match g.by {
        GroupBy::Stack => "Stack (call site, then its callers)",
        _ => "Caller (outside allocation wrappers)",
    };
    site_table(out, title, rows, g.rows.len());
    if g.sites_with_stacks == 0 {
        let _ = writeln!(
            out,
            "(no record has a stack: the trace was taken without kmemtrace.stack_depth, so \
             every row is a call site)\n"
        );
    }
}

fn allocations(r: &Report, o: &TextOptions, out: &mut String) {
    let (true, Some(rows)) = (o.alloc, &r.allocations) else {
        return;
    };
    let _ = writeln!(out, "{RULE}");
    let _ = writeln!(
        out,
        " {:<20} | {:>20} | {:>20} | {:>9} | {:>9} | {:>6} | Callsite",
        "Alloc Ptr", "Total_alloc/Per", "Total_req/Per", "Hit", "Ping-pong", "Frag"
    );
    let _ = writeln!(out, "{RULE}");
    for a in rows.iter().take(o.lines) {
        let _ = writeln!(
            out,
            " {:<20} | {:>20} | {:>20} | {:>9} | {:>9} | {:>5.1}% | {}",
            format!("{:#x}", a.ptr),
            format!("{}/{}", a.bytes_allocated, per(a.bytes_allocated, a.hits)),
            format!("{}/{}", a.bytes_requested, per(a.bytes_requested, a.hits)),
            a.hits,
            a.cross_cpu_frees,
            pct(a.fragmentation_bytes, a.bytes_allocated),
            a.symbol
                .clone()
                .unwrap_or_else(|| format!("{:#x}", a.call_site)),
        );
    }
    if rows.len() > o.lines {
        let _ = writeln!(out, " ... | {} more", rows.len() - o.lines);
    }
    let _ = writeln!(out, "{RULE}");
    out.push('\n');
}

/// One line: the traced kernel and the allocator whose rules judged the frees.
pub fn trace_line(r: &Report) -> String {
    let t = &r.trace;
    let mut s = format!(
        "Kernel {} on {}",
        t.kernel_release.as_deref().unwrap_or("(release unknown)"),
        t.machine.as_deref().unwrap_or("(machine unknown)")
    );
    if let Some(a) = t.allocator {
        let from = t.allocator_source.map_or("", |f| f.describe());
        let _ = write!(s, "; frees judged by {a} rules ({from})");
    }
    s
}

fn header(r: &Report, _: &TextOptions, out: &mut String) {
    let _ = writeln!(out, "{}\n", trace_line(r));
}

fn summary(r: &Report, _: &TextOptions, out: &mut String) {
    let s = &r.summary;
    let _ = writeln!(out, "SUMMARY");
    let _ = writeln!(out, "=======");
    let lines: [(&str, String); 17] = [
        ("Total bytes requested", s.bytes_requested.to_string()),
        ("Total bytes allocated", s.bytes_allocated.to_string()),
        ("Total bytes freed", s.bytes_freed.to_string()),
        (
            "Internal fragmentation",
            format!(
                "{} bytes ({:.6}%)",
                s.fragmentation_bytes,
                pct(s.fragmentation_bytes, s.bytes_allocated)
            ),
        ),
        ("Allocations", s.allocs.to_string()),
        ("Frees", s.frees.to_string()),
        (
            "Live allocations at end",
            format!("{} ({} bytes)", s.live_allocations, s.live_bytes),
        ),
        ("Cross CPU allocations", s.cross_cpu_allocs.to_string()),
        ("Cross CPU frees", s.cross_cpu_frees.to_string()),
        ("NULL frees", s.null_frees.to_string()),
        ("Unknown frees", s.unknown_frees.to_string()),
        ("Mismatched frees", s.mismatched_frees.to_string()),
        ("Cache objects kfreed", s.cache_objects_kfreed.to_string()),
        ("Lost frees", s.lost_frees.to_string()),
        ("Lost events", s.lost_events.to_string()),
        ("Records", {
            let mut t = s.records.to_string();
            if s.filtered_out > 0 {
                let _ = write!(t, " ({} left out by the call-site filter)", s.filtered_out);
            }
            t
        }),
        (
            "Damaged",
            format!("{} regions, {} bytes", s.damaged_regions, s.damaged_bytes),
        ),
    ];
    for (k, v) in lines {
        let _ = writeln!(out, "{k:<24}: {v}");
    }
    out.push('\n');
}

fn types(r: &Report, _: &TextOptions, out: &mut String) {
    let _ = writeln!(
        out,
        " {:<10} | {:>10} | {:>10} | {:>14} | {:>14} | {:>14} | {:>10}",
        "Type", "Allocs", "Frees", "Requested", "Allocated", "Freed", "Live"
    );
    for t in &r.types {
        let _ = writeln!(
            out,
            " {:<10} | {:>10} | {:>10} | {:>14} | {:>14} | {:>14} | {:>10}",
            t.type_id.map(|t| t.name()).unwrap_or("?"),
            t.allocs,
            t.frees,
            t.bytes_requested,
            t.bytes_allocated,
            t.bytes_freed,
            t.live_allocations
        );
    }
    out.push('\n');
}

/// Memory by use: slab objects apart from the pages, the slab allocator's overhead and peaks.
fn memory(r: &Report, _: &TextOptions, out: &mut String) {
    let Some(m) = &r.memory else {
        return;
    };
    let _ = writeln!(
        out,
        " {:<19} | {:>8} | {:>8} | {:>12} | {:>12} | {:>12} | {:>12}",
        "Memory by use", "Allocs", "Frees", "Allocated", "Freed", "Live", "Peak live"
    );
    for u in &m.uses {
        let _ = writeln!(
            out,
            " {:<19} | {:>8} | {:>8} | {:>12} | {:>12} | {:>12} | {:>12}",
            u.use_,
            u.allocs,
            u.frees,
            u.bytes_allocated,
            u.bytes_freed,
            u.live_bytes,
            u.peak_live_bytes
        );
    }
    let objects = m.row("slab_objects").map_or(0, |r| r.allocs);
    match (
        m.slab_overhead_bytes,
        m.peak_slab_overhead_bytes,
        m.row("slab_pages"),
    ) {
        (Some(end), Some(peak), Some(sp)) => {
            let _ = writeln!(
                out,
                " slab overhead {end} bytes at the end, {peak} at the peak; {} slab page allocations ({:.2} per 1000 objects); peak pages {} bytes (sampled every {} records)",
                sp.allocs,
                if objects == 0 { 0.0 } else { sp.allocs as f64 * 1000.0 / objects as f64 },
                m.peak_page_bytes,
                m.peak_resolution_records
            );
        }
        _ => {
            let _ = writeln!(
                out,
                " pages not told apart by use (no symbols): slab overhead unknown; peak pages {} bytes",
                m.peak_page_bytes
            );
        }
    }
    out.push('\n');
}

fn pages(r: &Report, _: &TextOptions, out: &mut String) {
    if r.pages.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        " {:<5} | {:>10} | {:>10} | {:>14} | {:>10}",
        "Order", "Allocs", "Frees", "Bytes", "Live"
    );
    for p in &r.pages {
        let _ = writeln!(
            out,
            " {:<5} | {:>10} | {:>10} | {:>14} | {:>10}",
            p.order, p.allocs, p.frees, p.bytes_allocated, p.live_allocations
        );
    }
    out.push('\n');
}

/// `min-max` of a size class, with K/M suffixes where exact.
pub(crate) fn size_label(min: u64, max: u64) -> String {
    fn short(n: u64) -> String {
        match n {
            0 => "0".into(),
            n if n % (1 << 20) == 0 => format!("{}M", n >> 20),
            n if n % (1 << 10) == 0 => format!("{}K", n >> 10),
            n => n.to_string(),
        }
    }
    if min == max {
        short(min)
    } else {
        // The classes are [2^(k-1), 2^k): show the exclusive upper bound, which is round.
        format!("{}-{}", short(min), short(max.saturating_add(1).max(max)))
    }
}

fn sizes(r: &Report, _: &TextOptions, out: &mut String) {
    if r.sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        " {:<10} | {:>10} | {:>14} | {:>11} | {:>14}",
        "Size [a,b)", "Requests", "Requested", "Allocations", "Allocated"
    );
    for s in &r.sizes {
        let _ = writeln!(
            out,
            " {:<10} | {:>10} | {:>14} | {:>11} | {:>14}",
            size_label(s.min, s.max),
            s.requests,
            s.bytes_requested,
            s.allocations,
            s.bytes_allocated
        );
    }
    out.push('\n');
}

fn findings(r: &Report, _: &TextOptions, out: &mut String) {
    if r.findings.is_empty() {
        let _ = writeln!(out, "FINDINGS: none\n");
        return;
    }
    let _ = writeln!(out, "FINDINGS");
    let _ = writeln!(out, "========");
    for f in &r.findings {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(out, "{kind}: {} ({})", f.count, f.description);
        if !f.by_call_site.is_empty() {
            let sites: Vec<String> = f
                .by_call_site
                .iter()
                .take(5)
                .map(|x| match &x.symbol {
                    Some(s) => format!("{s} {}", x.count),
                    None => format!("{:#x} {}", x.call_site, x.count),
                })
                .collect();
            let more = if f.by_call_site.len() > 5 {
                ", ..."
            } else {
                ""
            };
            let _ = writeln!(out, "  by call site: {}{more}", sites.join(", "));
        }
        for e in &f.examples {
            let mut parts = Vec::new();
            if let Some(x) = e.seq {
                parts.push(format!("seq {x}"));
            }
            if let Some(x) = e.cpu {
                parts.push(format!("cpu {x}"));
            }
            if let Some(x) = e.call_site {
                parts.push(match &e.symbol {
                    Some(s) => format!("at {s} ({x:#x})"),
                    None => format!("at {x:#x}"),
                });
            }
            if let Some(x) = e.ptr {
                parts.push(format!("ptr {x:#x}"));
            }
            if let Some(x) = &e.file {
                parts.push(match e.offset {
                    Some(o) => format!("{x} at byte {o}"),
                    None => x.clone(),
                });
            }
            if let Some(x) = &e.detail {
                parts.push(x.clone());
            }
            let _ = writeln!(out, "    {}", parts.join(", "));
        }
    }
    out.push('\n');
}

fn damage(r: &Report, _: &TextOptions, out: &mut String) {
    if r.damage.regions_total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "DAMAGE: {} regions, {} bytes",
        r.damage.regions_total, r.damage.bytes
    );
    for d in &r.damage.regions {
        let _ = writeln!(
            out,
            "    {} at byte {}: {} bytes, {}: {}",
            d.file,
            d.offset,
            d.length,
            d.kind.name(),
            d.detail
        );
    }
    if r.damage.regions_total > r.damage.regions.len() as u64 {
        let _ = writeln!(
            out,
            "    ... {} more",
            r.damage.regions_total - r.damage.regions.len() as u64
        );
    }
}

/// `kmemtrace check`'s text, printed here like the report's.
impl CheckReport {
    /// Human-readable text: one line per unusable input, per problem and per file, a verdict.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for u in &self.unusable {
            s.push_str(&format!("unusable: {u}\n"));
        }
        s + &self.render_findings_text()
    }

    /// [`CheckReport::render_text`] without the unusable inputs, which a command prints on
    /// stderr instead: one line per problem and per file, a verdict.
    pub fn render_findings_text(&self) -> String {
        let mut s = String::new();
        for p in &self.problems {
            s.push_str(&format!("{p}\n"));
        }
        for f in &self.files {
            let logged = f
                .logged_bytes
                .map(|l| format!(" (the kernel logged {l})"))
                .unwrap_or_default();
            s.push_str(&format!(
                "{}: {} bytes{logged}, {} records, {} byte order, seq {}..{}, {} problems\n",
                f.file,
                f.bytes,
                f.records,
                f.byte_order.map(|o| o.as_str()).unwrap_or("unknown"),
                f.first_seq.map(|x| x.to_string()).unwrap_or_default(),
                f.last_seq.map(|x| x.to_string()).unwrap_or_default(),
                f.problems
            ));
        }
        s.push_str(match self.exit_code() {
            KmemtraceExitCode::OK => "clean\n",
            KmemtraceExitCode::PROBLEMS_FOUND => "problems found\n",
            _ => "unusable input\n",
        });
        s
    }
}

/// The number a folded stack carries (`--value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Bytes the allocator gave.
    BytesAllocated,
    /// Bytes asked for.
    BytesRequested,
    /// `bytes_allocated - bytes_requested` (internal fragmentation).
    Wasted,
    /// Bytes still allocated at the end of the trace.
    LiveBytes,
    /// Allocations.
    Allocs,
}

impl Value {
    fn of(self, s: &SiteStats) -> u64 {
        match self {
            Value::BytesAllocated => s.bytes_allocated,
            Value::BytesRequested => s.bytes_requested,
            Value::Wasted => s.fragmentation_bytes.max(0) as u64,
            Value::LiveBytes => s.live_bytes,
            Value::Allocs => s.hits,
        }
    }
}

/// A frame as a flame graph shows it: the function, offsets folded (`;` and blanks, which the
/// format reserves, replaced by `_`).
pub(crate) fn folded_frame(f: &str) -> String {
    frame_function(f).replace([';', ' '], "_")
}

/// The function of a `function+0xoff` frame (the frame itself when it has no offset).
pub(crate) fn frame_function(f: &str) -> &str {
    match f.rfind("+0x") {
        Some(i) if i > 0 => &f[..i],
        _ => f,
    }
}

/// Collapsed stacks, one `outer;…;call_site VALUE` line per distinct folded stack (offsets
/// folded, stacks that then coincide summed), sorted; stacks whose value is 0 are left out. Needs
/// [`Report::groups`] by stack (a trace without stacks gives one-frame stacks: the call sites).
pub fn render_folded(r: &Report, value: Value) -> String {
    let mut lines: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    if let Some(g) = r.groups.as_ref().filter(|g| g.by == GroupBy::Stack) {
        for row in &g.rows {
            let key: Vec<String> = row.frames.iter().rev().map(|f| folded_frame(f)).collect();
            *lines.entry(key.join(";")).or_default() += value.of(&row.stats);
        }
    }
    let mut out = String::new();
    for (k, v) in lines.into_iter().filter(|(_, v)| *v > 0) {
        let _ = writeln!(out, "{k} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fit_name;

    #[test]
    fn a_long_call_site_keeps_its_offset() {
        assert_eq!(
            fit_name("radix_tree_node_alloc.constprop.0+0x34", 36),
            "radix_tree_node_alloc.constpro…+0x34"
        );
        assert_eq!(
            fit_name("radix_tree_node_alloc.constprop.0+0x34", 36)
                .chars()
                .count(),
            36
        );
        assert_eq!(fit_name("kmalloc+0x10", 36), "kmalloc+0x10");
    }

    #[test]
    fn a_long_name_without_offset_is_cut_at_the_width() {
        let name = "a_function_name_longer_than_the_column_is";
        assert_eq!(fit_name(name, 36), format!("{}…", &name[..35]));
    }
}
