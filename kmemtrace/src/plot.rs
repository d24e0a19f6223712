// SPDX-License-Identifier: GPL-2.0-only
//! Pictures: plain SVG that a browser or a pull request shows. Pure: a [`Report`] or a [`Diff`]
//! in, the SVG text out (built with the `svg` crate, which escapes text and orders attributes, so
//! the output is deterministic and snapshot-tested).
//!
//! * [`report_svg`]: the top call sites by bytes allocated, each bar split into the bytes
//!   requested and the fragmentation (allocated − requested); and the size histogram, requests
//!   against allocations per power-of-two size class.
//! * [`diff_svg`]: the call sites whose bytes allocated changed most, as bars left (less) or right
//!   (more) of zero.
//!
//! Every mark carries a `class` (`bar requested`, `bar fragmentation`, `bar requests`,
//! `bar allocations`, `bar more`, `bar less`) and a `<title>` with its exact figures.

use crate::diff::{Diff, Status};
use crate::render::size_label;
use crate::report::Report;
use svg::node::element::{Group, Line, Rectangle, Text, Title};
use svg::Document;

const WIDTH: f64 = 960.0;
const FONT: &str = "DejaVu Sans, Verdana, sans-serif";
const CHAR_W: f64 = 6.6; // average advance of a 11 px sans-serif character
const ROW_H: f64 = 18.0;
const BLUE: &str = "#4477aa";
const ORANGE: &str = "#ee8844";
const RED: &str = "#cc3311";
const GREEN: &str = "#228833";
const GREY: &str = "#888888";

/// What the pictures show.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Call sites shown.
    pub lines: usize,
    /// A title line above the charts (default: none).
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            lines: 15,
            title: None,
        }
    }
}

/// `73464` → `71.7 KiB`; below 10 KiB in bytes.
pub fn human_bytes(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    const K: f64 = 1024.0;
    if a < 10.0 * K && (a < K || a % K != 0.0) {
        format!("{n} B")
    } else if a < K * K {
        format!("{sign}{:.1} KiB", a / K)
    } else if a < K * K * K {
        format!("{sign}{:.1} MiB", a / K / K)
    } else {
        format!("{sign}{:.1} GiB", a / K / K / K)
    }
}

/// `200000` → `200k`, `1500000` → `1.5M`: tick labels.
fn short_count(v: f64) -> String {
    let v = v.round();
    if v >= 1e6 {
        format!("{}M", (v / 1e5).round() / 10.0)
    } else if v >= 1e4 {
        format!("{}k", (v / 1e2).round() / 10.0)
    } else {
        format!("{v}")
    }
}

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn text(x: f64, y: f64, s: impl Into<String>) -> Text {
    Text::new(s)
        .set("x", round(x))
        .set("y", round(y))
        .set("font-family", FONT)
        .set("font-size", 11)
}

fn rect(x: f64, y: f64, w: f64, h: f64, fill: &str, class: &str) -> Rectangle {
    Rectangle::new()
        .set("x", round(x))
        .set("y", round(y))
        .set("width", round(w.max(0.0)))
        .set("height", round(h.max(0.0)))
        .set("fill", fill)
        .set("class", class)
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64) -> Line {
    Line::new()
        .set("x1", round(x1))
        .set("y1", round(y1))
        .set("x2", round(x2))
        .set("y2", round(y2))
        .set("stroke", GREY)
        .set("stroke-width", 1)
}

/// The unit of an axis whose maximum is `max` bytes: B, KiB, MiB or GiB, as [`nice_bytes_max`]
/// picks it, so every tick of one axis is in the same unit.
fn bytes_unit(max: f64) -> (f64, &'static str) {
    let mut unit = (1.0, "B");
    for next in [(1024.0, "KiB"), (1048576.0, "MiB"), (1073741824.0, "GiB")] {
        if max > 1000.0 * unit.0 {
            unit = next;
        }
    }
    unit
}

/// How many of a diff axis side's four grid lines get a label: 4, 2 or 1, as many as leave
/// 72 px between labels on a side `half` px wide.
fn tick_labels_per_side(half: f64) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|n| half / *n as f64 >= 72.0)
        .unwrap_or(1)
}

/// A tick label: `v` bytes in the unit of the axis maximum `max` (`6.2 KiB`, not `6400 B`).
fn tick_bytes(v: f64, max: f64) -> String {
    let (size, name) = bytes_unit(max);
    let x = v / size;
    if (x - x.round()).abs() < 0.05 {
        format!("{} {name}", x.round())
    } else {
        format!("{x:.1} {name}")
    }
}

/// A round axis maximum for bytes: 1, 2 or 5 times 10^k B, KiB, MiB or GiB.
fn nice_bytes_max(v: f64) -> f64 {
    let mut unit = 1.0;
    while v > 1000.0 * unit && unit < (1u64 << 30) as f64 {
        unit *= 1024.0;
    }
    nice_max(v / unit) * unit
}

/// Two decimals at most, so the text is stable and short.
fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn clip(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(chars.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A chart's title: bold, at the left margin.
fn chart_title(y: f64, title: &str) -> Text {
    text(10.0, y, title)
        .set("font-size", 14)
        .set("font-weight", "bold")
}

/// A report chart's group with its title and legend; the plot goes from `top + 48` down.
fn chart(class: &str, top: f64, title: &str, items: &[(&str, &str)]) -> Group {
    let g = Group::new()
        .set("class", class)
        .add(chart_title(top + 14.0, title));
    legend(g, 10.0, top + 34.0, items)
}

fn legend(g: Group, x: f64, y: f64, items: &[(&str, &str)]) -> Group {
    let mut g = g;
    let mut x = x;
    for (color, label) in items {
        g = g
            .add(rect(x, y - 9.0, 10.0, 10.0, color, "legend"))
            .add(text(x + 14.0, y, *label));
        x += 24.0 + label.chars().count() as f64 * CHAR_W;
    }
    g
}

/// Functions whose allocations are the tracer's own: kmemtrace's relay buffers (logged when a CPU
/// comes online while tracing, kernel/README.md). The chart leaves them out and says so; the
/// report's tables keep them.
///
/// Not (yet) [`crate::pageuse::TABLE`]'s tracer rows, which also name `relay_create_buf` and
/// `relay_alloc_buf` (the page allocator's callers when `relay_open_buf` is not inlined into):
/// reading them here would also leave out those functions' rows, a change of the chart and the
/// flame graph. A test keeps this list within that table.
const TRACER_OWN: &[&str] = &["relay_open_buf"];

/// Whether `function` (as kallsyms names it, clone suffixes and ppc64's dot looked through:
/// [`crate::symbols::base_name`]) is one of the tracer's own ([`TRACER_OWN`]).
pub(crate) fn is_tracer_own(function: &str) -> bool {
    TRACER_OWN.contains(&crate::symbols::base_name(function))
}

/// The top call sites by bytes allocated (functions when there are symbols).
fn callsite_chart(r: &Report, o: &PlotOptions, top: f64) -> (Group, f64) {
    let by_function = r.trace.symbols && !r.functions.is_empty();
    let rows: Vec<(String, &crate::SiteStats)> = if by_function {
        r.functions
            .iter()
            .map(|f| (f.function.clone(), &f.stats))
            .collect()
    } else {
        r.callsites
            .iter()
            .map(|c| (format!("{:#x}", c.call_site), &c.stats))
            .collect()
    };
    let (own, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .filter(|r| r.1.hits > 0)
        .partition(|r| by_function && is_tracer_own(&r.0));
    let mut rows = rows;
    rows.sort_by(|a, b| {
        b.1.bytes_allocated
            .cmp(&a.1.bytes_allocated)
            .then_with(|| a.0.cmp(&b.0))
    });
    rows.truncate(o.lines);
    let label_w = rows
        .iter()
        .map(|r| r.0.chars().count().min(44))
        .max()
        .unwrap_or(10) as f64
        * CHAR_W
        + 12.0;
    let value_w = 150.0;
    let plot_w = WIDTH - 20.0 - label_w - value_w;
    let max = nice_bytes_max(rows.iter().map(|r| r.1.bytes_allocated).max().unwrap_or(0) as f64);
    let what = if by_function {
        "Top functions by bytes allocated"
    } else {
        "Top call sites by bytes allocated"
    };
    let mut g = chart(
        "chart callsites",
        top,
        what,
        &[
            (BLUE, "requested"),
            (ORANGE, "fragmentation (allocated − requested)"),
        ],
    );
    let x0 = 10.0 + label_w;
    let mut y = top + 48.0;
    if !own.is_empty() {
        let left_out: Vec<String> = own
            .iter()
            .map(|(name, s)| format!("{name} ({})", human_bytes(s.bytes_allocated as i64)))
            .collect();
        g = g.add(
            text(
                10.0,
                y + 8.0,
                format!(
                    "left out: the tracer's own relay buffers, {}",
                    left_out.join(", ")
                ),
            )
            .set("class", "note"),
        );
        y += 18.0;
    }
    let chart_top = y;
    if rows.is_empty() {
        g = g.add(text(x0, y + 12.0, "no allocations"));
        return (g, y + 24.0 - top);
    }
    for (name, s) in &rows {
        let scale = |v: u64| v as f64 / max * plot_w;
        let req = s.bytes_requested.min(s.bytes_allocated);
        let frag = s.bytes_allocated - req;
        let tip = format!(
            "{name}: {} allocations, {} bytes requested, {} bytes allocated, {} bytes fragmentation",
            s.hits, s.bytes_requested, s.bytes_allocated, s.fragmentation_bytes
        );
        let pct = if s.bytes_allocated > 0 {
            s.fragmentation_bytes as f64 * 100.0 / s.bytes_allocated as f64
        } else {
            0.0
        };
        let row = Group::new()
            .set("class", "row")
            .add(Title::new(tip))
            .add(
                text(x0 - 6.0, y + 12.5, clip(name, 44))
                    .set("text-anchor", "end")
                    .set("class", "label"),
            )
            .add(rect(
                x0,
                y + 2.0,
                scale(req),
                ROW_H - 4.0,
                BLUE,
                "bar requested",
            ))
            .add(rect(
                x0 + scale(req),
                y + 2.0,
                scale(frag),
                ROW_H - 4.0,
                ORANGE,
                "bar fragmentation",
            ))
            .add(
                text(
                    x0 + scale(s.bytes_allocated) + 6.0,
                    y + 12.5,
                    format!("{} ({pct:.1}% frag)", human_bytes(s.bytes_allocated as i64)),
                )
                .set("class", "value"),
            );
        g = g.add(row);
        y += ROW_H;
    }
    g = g.add(line(x0, chart_top - 2.0, x0, y + 2.0));
    for i in 0..=4 {
        let x = x0 + plot_w * i as f64 / 4.0;
        let v = max * i as f64 / 4.0;
        let label = if i == 0 {
            "0".to_string()
        } else {
            tick_bytes(v, max)
        };
        if i > 0 {
            g = g.add(line(x, chart_top - 2.0, x, y + 2.0).set("stroke-opacity", 0.3));
        }
        g = g.add(
            text(x, y + 16.0, label)
                .set("text-anchor", "middle")
                .set("class", if i == 4 { "tick axis-max" } else { "tick" }),
        );
    }
    (g, y + 28.0 - top)
}

/// Requests against allocations per size class.
fn size_chart(r: &Report, top: f64) -> (Group, f64) {
    let mut g = chart(
        "chart sizes",
        top,
        "Allocations by size class: requested size against allocated size (log scale)",
        &[
            (BLUE, "allocations by requested size"),
            (ORANGE, "allocations by allocated size"),
        ],
    );
    let plot_top = top + 48.0;
    let plot_h = 180.0;
    let x0 = 60.0;
    if r.sizes.is_empty() {
        g = g.add(text(x0, plot_top + 12.0, "no allocations"));
        return (g, 72.0);
    }
    // Logarithmic: a boot has 10^5 allocations in one class and tens in others, which a linear
    // axis draws as nothing. The axis goes up to the power of ten at or above the largest count.
    let largest = r
        .sizes
        .iter()
        .map(|s| s.requests.max(s.allocations))
        .max()
        .unwrap_or(0);
    let decades = (largest.max(1) as f64).log10().ceil().max(1.0) as i32;
    let slot = (WIDTH - x0 - 20.0) / r.sizes.len() as f64;
    let bar = (slot * 0.4).min(28.0);
    let base = plot_top + plot_h;
    for d in 0..=decades {
        let y = base - plot_h * d as f64 / decades as f64;
        g = g
            .add(line(x0 - 4.0, y, WIDTH - 20.0, y).set("stroke-opacity", 0.3))
            .add(
                text(x0 - 8.0, y + 4.0, short_count(10f64.powi(d)))
                    .set("text-anchor", "end")
                    .set("class", "tick"),
            );
    }
    for (i, s) in r.sizes.iter().enumerate() {
        let cx = x0 + slot * (i as f64 + 0.5);
        // 1 sits on the base line's tick (10^0); 0 draws no bar.
        let h = |v: u64| {
            if v == 0 {
                0.0
            } else {
                ((v as f64).log10() / decades as f64 * plot_h).max(2.0)
            }
        };
        let label = size_label(s.min, s.max);
        g = g.add(
            Group::new()
                .set("class", "size")
                .add(Title::new(format!(
                    "{label} bytes: {} requests ({} bytes requested), {} allocations ({} bytes allocated)",
                    s.requests, s.bytes_requested, s.allocations, s.bytes_allocated
                )))
                .add(rect(cx - bar, base - h(s.requests), bar, h(s.requests), BLUE, "bar requests"))
                .add(rect(cx, base - h(s.allocations), bar, h(s.allocations), ORANGE, "bar allocations"))
                .add(
                    text(cx, base + 14.0, label)
                        .set("text-anchor", "middle")
                        .set("class", "label"),
                ),
        );
    }
    g = g
        .add(line(x0, base, WIDTH - 20.0, base))
        .add(
            text(x0 + (WIDTH - x0) / 2.0, base + 30.0, "size class (bytes)")
                .set("text-anchor", "middle"),
        )
        .add(
            text(14.0, plot_top + plot_h / 2.0, "allocations")
                .set("text-anchor", "middle")
                .set(
                    "transform",
                    format!("rotate(-90 14 {})", round(plot_top + plot_h / 2.0)),
                ),
        );
    (g, base + 40.0 - top)
}

fn document(height: f64, title: &str) -> Document {
    svg_document(WIDTH, height, title, "white")
}

/// An SVG document of `width` × `height` pixels with a `<title>` and a background.
pub(crate) fn svg_document(width: f64, height: f64, title: &str, background: &str) -> Document {
    Document::new()
        .set("width", width)
        .set("height", round(height))
        .set("viewBox", (0, 0, width, round(height)))
        .add(Title::new(title))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", background),
        )
}

fn heading(r: &Report) -> String {
    let mut t = String::from("kmemtrace report");
    if let Some(m) = &r.trace.machine {
        t += &format!(", {m}");
    }
    if let Some(k) = &r.trace.kernel_release {
        t += &format!(", Linux {k}");
    }
    if !r.trace.callsite_filter.is_empty() {
        t += &format!(", call sites {}", r.trace.callsite_filter.join(" "));
    }
    t
}

/// The report's pictures as one SVG document.
pub fn report_svg(r: &Report, o: &PlotOptions) -> String {
    let title = o.title.clone().unwrap_or_else(|| heading(r));
    let mut y = 10.0;
    let head = text(10.0, y + 14.0, title.clone()).set("font-size", 16);
    y += 30.0;
    let summary = text(
        10.0,
        y + 4.0,
        format!(
            "{} allocations, {} requested, {} allocated, {} fragmentation",
            r.summary.allocs,
            human_bytes(r.summary.bytes_requested as i64),
            human_bytes(r.summary.bytes_allocated as i64),
            human_bytes(r.summary.fragmentation_bytes),
        ),
    )
    .set("class", "summary");
    y += 16.0;
    let (sites, h1) = callsite_chart(r, o, y);
    y += h1 + 10.0;
    let (sizes, h2) = size_chart(r, y);
    y += h2 + 10.0;
    document(y, &title)
        .add(head)
        .add(summary)
        .add(sites)
        .add(sizes)
        .to_string()
        + "\n"
}

/// The call sites whose bytes allocated changed most, as a diverging bar chart.
pub fn diff_svg(d: &Diff, o: &PlotOptions) -> String {
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| format!("kmemtrace diff: {} → {}", d.base.label, d.new.label));
    let rows: Vec<_> = d
        .callsites
        .iter()
        .filter_map(|r| r.field("bytes_allocated").map(|a| (r, a)))
        .filter(|(_, a)| a.delta != 0)
        .take(o.lines)
        .collect();
    let label_w = rows
        .iter()
        .map(|(r, _)| r.key.chars().count().min(44) + 11)
        .max()
        .unwrap_or(10) as f64
        * CHAR_W
        + 12.0;
    let value_w = 170.0;
    let x0 = 10.0 + label_w;
    let total_w = WIDTH - 20.0 - label_w;
    // Zero in the middle when call sites moved both ways, else at the side the bars start from.
    let more = rows.iter().any(|(_, a)| a.delta > 0);
    let less = rows.iter().any(|(_, a)| a.delta < 0);
    let (mid, half) = match (more, less) {
        (true, true) => (x0 + total_w / 2.0, total_w / 2.0 - value_w),
        (true, false) => (x0 + 10.0, total_w - 10.0 - value_w),
        _ => (x0 + total_w - 10.0, total_w - 10.0 - value_w),
    };
    let max = nice_bytes_max(
        rows.iter()
            .map(|(_, a)| a.delta.unsigned_abs())
            .max()
            .unwrap_or(0) as f64,
    );
    let mut y = 10.0;
    let mut g = Group::new()
        .set("class", "chart diff")
        .add(text(10.0, y + 14.0, title.clone()).set("font-size", 16));
    y += 30.0;
    g = g.add(chart_title(
        y + 4.0,
        "Change in bytes allocated per call site (significant changes only)",
    ));
    y += 12.0;
    g = legend(
        g,
        10.0,
        y + 16.0,
        &[(RED, "more allocated"), (GREEN, "less allocated")],
    );
    y += 26.0;
    if rows.is_empty() {
        g = g.add(text(
            10.0,
            y + 12.0,
            "no call site's bytes allocated changed",
        ));
        y += 30.0;
        return document(y, &title).add(g).to_string() + "\n";
    }
    let top = y;
    for (r, a) in &rows {
        let w = a.delta.unsigned_abs() as f64 / max * half;
        let (x, color, class) = if a.delta > 0 {
            (mid, RED, "bar more")
        } else {
            (mid - w, GREEN, "bar less")
        };
        let status = match r.status {
            Status::Appeared => " (new)",
            Status::Vanished => " (gone)",
            _ => "",
        };
        let sign = if a.delta > 0 { "+" } else { "" };
        let change = match a.relative {
            Some(rel) => format!("{sign}{} ({:+.1}%)", human_bytes(a.delta), rel * 100.0),
            None => format!("{sign}{}", human_bytes(a.delta)),
        };
        let value_x = if a.delta > 0 {
            mid + w + 6.0
        } else {
            mid - w - 6.0
        };
        let anchor = if a.delta > 0 { "start" } else { "end" };
        g = g.add(
            Group::new()
                .set("class", "row")
                .add(Title::new(format!(
                    "{}{status}: bytes allocated {} → {} ({change})",
                    r.key, a.base, a.new
                )))
                .add(
                    text(x0 - 6.0, y + 12.5, format!("{}{status}", clip(&r.key, 44)))
                        .set("text-anchor", "end")
                        .set("class", "label"),
                )
                .add(rect(x, y + 2.0, w, ROW_H - 4.0, color, class))
                .add(
                    text(value_x, y + 12.5, change)
                        .set("text-anchor", anchor)
                        .set("class", "value"),
                ),
        );
        y += ROW_H;
    }
    g = g
        .add(line(mid, top - 2.0, mid, y + 2.0))
        .add(text(mid, y + 16.0, "0").set("text-anchor", "middle"));
    // Grid lines at a quarter, a half, three quarters and all of the largest change, each side
    // used; labels on as many of them as fit (a label is up to ~60 px wide: with both sides
    // drawn, a half is too narrow for four).
    let labelled = tick_labels_per_side(half);
    for (used, dir, sign) in [(more, 1.0, "+"), (less, -1.0, "-")] {
        if !used {
            continue;
        }
        for i in 1..=4 {
            let x = mid + dir * half * i as f64 / 4.0;
            g = g.add(line(x, top - 2.0, x, y + 2.0).set("stroke-opacity", 0.3));
            if i % (4 / labelled) == 0 {
                g = g.add(
                    text(
                        x,
                        y + 16.0,
                        format!("{sign}{}", tick_bytes(max * i as f64 / 4.0, max)),
                    )
                    .set("text-anchor", "middle")
                    .set("class", "tick"),
                );
            }
        }
    }
    y += 30.0;
    document(y, &title).add(g).to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart's tracer functions are tracer functions of the page-use table (not the other
    /// way round, see [`TRACER_OWN`]).
    #[test]
    fn the_tracers_own_functions_are_the_page_use_tables() {
        use crate::pageuse::{PageUse, TABLE};
        for f in TRACER_OWN {
            assert!(
                TABLE
                    .iter()
                    .any(|(t, u, _)| t == f && *u == PageUse::Tracer),
                "{f}"
            );
        }
        assert!(is_tracer_own(".relay_open_buf.part.0"));
        assert!(!is_tracer_own("relay_alloc_buf"));
    }

    #[test]
    fn diff_tick_labels_thin_out_on_a_narrow_side() {
        assert_eq!(tick_labels_per_side(400.0), 4);
        assert_eq!(tick_labels_per_side(150.0), 2);
        assert_eq!(tick_labels_per_side(100.0), 1);
        assert_eq!(tick_labels_per_side(10.0), 1);
    }

    #[test]
    fn ticks_share_the_unit_of_their_axis() {
        assert_eq!(tick_bytes(6400.0, 25600.0), "6.2 KiB");
        assert_eq!(tick_bytes(12800.0, 25600.0), "12.5 KiB");
        assert_eq!(tick_bytes(25.0, 100.0), "25 B");
        assert_eq!(tick_bytes(5.0 * 1048576.0, 20.0 * 1048576.0), "5 MiB");
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(73464.0), 100000.0);
        assert_eq!(nice_max(150.0), 200.0);
        assert_eq!(nice_max(20.08), 25.0);
        assert_eq!(nice_max(500.0), 500.0);
        assert_eq!(nice_bytes_max(73464.0), 100.0 * 1024.0);
        assert_eq!(nice_bytes_max(64.0), 100.0);
        assert_eq!(nice_bytes_max(1500.0), 2048.0);
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(73464), "71.7 KiB");
        assert_eq!(human_bytes(-20480), "-20.0 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(9140720), "8.7 MiB");
        assert_eq!(short_count(200000.0), "200k");
        assert_eq!(short_count(12500.0), "12.5k");
        assert_eq!(short_count(1500000.0), "1.5M");
        assert_eq!(short_count(15.0), "15");
    }

    #[test]
    fn long_labels_are_clipped() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdefgh", 5), "abcd…");
    }
}
