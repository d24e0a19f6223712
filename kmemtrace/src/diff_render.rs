// SPDX-License-Identifier: GPL-2.0-only
//! The diff's printers: text for a terminal and markdown for a pull-request comment (the JSON is
//! serde's, [`Diff::to_json`]; the SVG is [`crate::plot::diff_svg`]). They print a [`Diff`] value,
//! computing nothing but the layout.

use crate::delta::{Delta, Diff, FieldDelta, MatchBy, RowDelta, SideInfo, Status, INPUT_FIELDS};
use std::fmt::Write;

fn signed(v: i64) -> String {
    if v > 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

fn rel(d: &Delta) -> String {
    match d.relative {
        Some(r) if r != 0.0 && (r * 100.0).abs() < 0.05 => {
            format!("{}<0.1%", if r > 0.0 { "+" } else { "-" })
        }
        Some(r) => format!("{:+.1}%", r * 100.0),
        None if d.delta != 0 => "new".to_string(),
        None => "".to_string(),
    }
}

/// `+64 (+50.0%)`, `=` for no change, `~+3` for a change within the spread of the repeats.
fn cell(d: &Delta) -> String {
    if d.delta == 0 && !d.significant {
        "=".to_string()
    } else if !d.significant {
        format!("~{}", signed(d.delta))
    } else {
        match d.relative {
            Some(_) => format!("{} ({})", signed(d.delta), rel(d)),
            None => signed(d.delta),
        }
    }
}

fn range(r: [i64; 2]) -> String {
    if r[0] == r[1] {
        r[0].to_string()
    } else {
        format!("{}..{}", r[0], r[1])
    }
}

/// The call-site columns of text and markdown: (field, title, text width, shown in markdown).
const SITE_COLUMNS: &[(&str, &str, usize, bool)] = &[
    ("hits", "hits", 12, true),
    ("bytes_requested", "requested", 20, true),
    ("bytes_allocated", "allocated", 20, true),
    ("fragmentation_bytes", "fragmentation", 20, true),
    ("cross_cpu_frees", "x-cpu frees", 12, true),
    ("frees", "frees", 12, false),
];

fn site_cell(r: &RowDelta, field: &str) -> String {
    r.field(field).map(cell).unwrap_or_default()
}

/// What to print.
#[derive(Debug, Clone)]
pub struct DiffTextOptions {
    /// Call-site rows shown.
    pub lines: usize,
}

impl Default for DiffTextOptions {
    fn default() -> Self {
        DiffTextOptions { lines: 20 }
    }
}

fn header(d: &Diff) -> String {
    let side = |s: &SideInfo| {
        let mut t = format!(
            "{} ({} run{}",
            s.label,
            s.runs,
            if s.runs == 1 { "" } else { "s" }
        );
        if !s.kernel_release.is_empty() {
            let _ = write!(t, ", {}", s.kernel_release.join(" / "));
        }
        if !s.machine.is_empty() {
            let _ = write!(t, ", {}", s.machine.join(" / "));
        }
        if !s.allocator.is_empty() {
            let _ = write!(t, ", {}", s.allocator.join(" / "));
        }
        t + ")"
    };
    format!("{} -> {}", side(&d.base), side(&d.new))
}

fn matched_note(d: &Diff) -> &'static str {
    match d.matched_by {
        MatchBy::Function => "call sites matched by function name",
        MatchBy::Address if d.base.symbols && d.new.symbols => "call sites matched by address",
        MatchBy::Address => "call sites matched by address (a side has no symbols)",
        MatchBy::Caller => {
            "rows are callers outside the allocation wrappers, matched by function name"
        }
        MatchBy::Stack => "rows are stacks, matched by their functions' names",
    }
}

fn spread_note(d: &Diff) -> Option<String> {
    (d.base.runs > 1 || d.new.runs > 1).then(|| {
        "values are medians of the runs; a change counts only when the ranges of the two sides \
         do not overlap and the medians differ by more than the wider range (~ marks a change \
         within the spread)"
            .to_string()
    })
}

/// What a diff's rows are: call sites, or callers or stacks with `--group-by` (the text's
/// section, its column, and the plural in prose).
fn row_names(m: MatchBy) -> (&'static str, &'static str, &'static str) {
    match m {
        MatchBy::Caller => ("CALLERS", "caller", "callers"),
        MatchBy::Stack => ("STACKS", "stack", "stacks"),
        MatchBy::Function | MatchBy::Address => ("CALL SITES", "call site", "call sites"),
    }
}

/// Text for a terminal.
pub fn render_diff_text(d: &Diff, o: &DiffTextOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "kmemtrace diff: {}", header(d));
    let _ = writeln!(out, "{}", matched_note(d));
    if let Some(n) = spread_note(d) {
        let _ = writeln!(out, "{n}");
    }
    let spread = d.base.runs > 1 || d.new.runs > 1;
    let _ = writeln!(out, "\nSUMMARY");
    let _ = writeln!(
        out,
        " {:<22} {:>16} {:>16} {:>22}",
        "field", "base", "new", "delta"
    );
    for f in &d.summary {
        let input = INPUT_FIELDS.contains(&f.field.as_str());
        let (b, n) = if spread {
            (range(f.delta.base_range), range(f.delta.new_range))
        } else {
            (f.delta.base.to_string(), f.delta.new.to_string())
        };
        let _ = writeln!(
            out,
            " {:<22} {:>16} {:>16} {:>22}{}",
            f.field,
            b,
            n,
            cell(&f.delta),
            if input && f.delta.delta != 0 {
                "  (input size, not a change)"
            } else {
                ""
            }
        );
    }
    let (section, column, _) = row_names(d.matched_by);
    let _ = writeln!(
        out,
        "\n{section}: {} changed, appeared or vanished; {} unchanged",
        d.callsites.len(),
        d.callsites_unchanged
    );
    if !d.callsites.is_empty() {
        let _ = write!(out, " {:<40} {:<9}", column, "status");
        for (_, title, w, _) in SITE_COLUMNS {
            let _ = write!(out, " {title:>w$}");
        }
        out.push('\n');
        for r in d.callsites.iter().take(o.lines) {
            let _ = write!(out, " {:<40} {:<9}", r.key, r.status.name());
            for (field, _, w, _) in SITE_COLUMNS {
                let _ = write!(out, " {:>w$}", site_cell(r, field));
            }
            out.push('\n');
        }
        if d.callsites.len() > o.lines {
            let _ = writeln!(out, " … {} more", d.callsites.len() - o.lines);
        }
    }
    for (title, rows) in [
        ("TYPES", &d.types),
        ("PAGE ORDERS", &d.pages),
        ("SIZE CLASSES (bytes)", &d.sizes),
    ] {
        let changed: Vec<&RowDelta> = rows.iter().filter(|r| r.status != Status::Same).collect();
        if changed.is_empty() {
            let _ = writeln!(out, "\n{title}: no change");
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for r in changed {
            for f in r.fields.iter().filter(|f| f.delta.significant) {
                let _ = writeln!(
                    out,
                    " {:<12} {:<9} {:<20} {:>12} -> {:<12} {}",
                    r.key,
                    r.status.name(),
                    f.field,
                    f.delta.base,
                    f.delta.new,
                    cell(&f.delta)
                );
            }
        }
    }
    if !d.gates.is_empty() {
        let _ = writeln!(out, "\nGATES");
        for g in &d.gates {
            let _ = writeln!(
                out,
                " {:<4}  {}{}: {} -> {}, {}",
                if g.crossed { "FAIL" } else { "ok" },
                g.expr,
                g.row
                    .as_ref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default(),
                g.delta.base,
                g.delta.new,
                cell(&g.delta)
            );
        }
    }
    let _ = writeln!(out, "\n{}", verdict(d));
    out
}

fn verdict(d: &Diff) -> String {
    let failed = d.gates.iter().filter(|g| g.crossed).count();
    match (d.changed(), failed) {
        (_, n) if n > 0 => format!("verdict: {n} threshold(s) crossed"),
        (true, _) => "verdict: changes found, no threshold crossed".to_string(),
        (false, _) => "verdict: no significant change".to_string(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

/// Markdown for a pull-request comment.
pub fn render_diff_markdown(d: &Diff, o: &DiffTextOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### kmemtrace diff\n");
    let _ = writeln!(
        out,
        "`{}` → `{}`; {}.",
        d.base.label,
        d.new.label,
        matched_note(d)
    );
    if let Some(n) = spread_note(d) {
        let _ = writeln!(out, "Runs: {} base, {} new; {n}.", d.base.runs, d.new.runs);
    }
    let _ = writeln!(
        out,
        "\n**{}**\n",
        verdict(d).trim_start_matches("verdict: ")
    );
    if !d.gates.is_empty() {
        let _ = writeln!(out, "| gate | row | base | new | change | result |");
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- |");
        for g in &d.gates {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                g.expr,
                g.row.as_deref().map(md_escape).unwrap_or_default(),
                g.delta.base,
                g.delta.new,
                cell(&g.delta),
                if g.crossed { "**FAIL**" } else { "ok" }
            );
        }
        out.push('\n');
    }
    let changed: Vec<&FieldDelta> = d.changed_summary().collect();
    if changed.is_empty() {
        let _ = writeln!(out, "Summary: no significant change.\n");
    } else {
        let _ = writeln!(out, "| summary field | base | new | change |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
        for f in changed {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md_escape(&f.field),
                range(f.delta.base_range),
                range(f.delta.new_range),
                cell(&f.delta)
            );
        }
        out.push('\n');
    }
    let (_, column, plural) = row_names(d.matched_by);
    if !d.callsites.is_empty() {
        let columns = || SITE_COLUMNS.iter().filter(|c| c.3);
        let _ = write!(out, "| {column} | status |");
        columns().for_each(|c| out.push_str(&format!(" {} |", c.1)));
        let _ = write!(out, "\n| --- | --- |");
        columns().for_each(|_| out.push_str(" ---: |"));
        out.push('\n');
        for r in d.callsites.iter().take(o.lines) {
            let _ = write!(out, "| `{}` | {} |", r.key, r.status.name());
            columns().for_each(|c| out.push_str(&format!(" {} |", site_cell(r, c.0))));
            out.push('\n');
        }
        if d.callsites.len() > o.lines {
            let _ = writeln!(
                out,
                "\n… and {} more {plural}.",
                d.callsites.len() - o.lines
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} {plural} unchanged. Types, page orders and size classes that changed:\n",
        d.callsites_unchanged
    );
    let mut any = false;
    for (title, rows) in [
        ("type", &d.types),
        ("page order", &d.pages),
        ("size class", &d.sizes),
    ] {
        for r in rows.iter().filter(|r| r.status != Status::Same) {
            for f in r.fields.iter().filter(|f| f.delta.significant) {
                any = true;
                let _ = writeln!(
                    out,
                    "- {title} {}: {} {} → {}, {}",
                    md_escape(&r.key),
                    md_escape(&f.field),
                    f.delta.base,
                    f.delta.new,
                    cell(&f.delta)
                );
            }
        }
    }
    if !any {
        let _ = writeln!(out, "- none");
    }
    out
}
