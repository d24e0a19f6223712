// SPDX-License-Identifier: GPL-2.0-only
//! N configurations side by side: the figures an allocator study compares (SLAB against SLUB
//! against SLOB on one workload, or one allocator on two kernels), one column per side.
//!
//! `diff` compares two sides and says what changed; a study of allocators has more than two.
//! Each side is one or more reports of runs of one configuration: a figure of a side with
//! several runs is their median, and the range across them is kept, so that a reader sees
//! which differences between columns are bigger than the runs' own noise.
//!
//! A side's run, for `compare` as for `diff`, is loaded by [`load_side`]: a trace (analysed) or
//! a `report.json` (taken as it is). It lives here, above both [`crate::input`] and the
//! analysis, which it calls.

use crate::error::{io_in, nothing_decodes, Error, Result};
use crate::input::{list_cpu_files, load, trace_dir, LoadOptions};
use crate::report::Report;
use crate::rules::Allocator;
use crate::{analyze, AnalyzeOptions};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One side's heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideInfo {
    /// The label given, else `KERNEL_RELEASE ALLOCATOR` from the first run's trace.
    pub label: String,
    /// The kernel release of the first run (`meta.json`), if known.
    pub kernel_release: Option<String>,
    /// The allocator the frees were judged by.
    pub allocator: Option<String>,
    /// Runs on this side.
    pub runs: usize,
}

/// One figure across the sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideRow {
    /// The figure's name (`bytes_allocated`, `slab_pages.peak_live_bytes`, …).
    pub figure: String,
    /// What it is, for the text and markdown tables.
    pub title: String,
    /// Per side: the median over its runs, `None` where the figure is unknown (no symbols).
    pub values: Vec<Option<i64>>,
    /// Per side: the lowest and highest run (equal with one run).
    pub ranges: Vec<Option<(i64, i64)>>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideBySide {
    /// The sides, in the order given.
    pub sides: Vec<SideInfo>,
    /// The figures, in a fixed order: slab objects, slab pages and overhead, other pages, then
    /// allocations per size class.
    pub rows: Vec<SideRow>,
}

type Getter = fn(&Report) -> Option<i64>;

fn slab_types(r: &Report, f: fn(&crate::report::TypeRow) -> i64) -> Option<i64> {
    Some(
        r.types
            .iter()
            .filter(|t| t.type_id != Some(crate::AllocType::Pages))
            .map(f)
            .sum(),
    )
}

fn memory(r: &Report, use_: &str, f: fn(&crate::report::MemoryRow) -> u64) -> Option<i64> {
    let m = r.memory.as_ref()?;
    if !m.pages_classified && use_ != "slab_objects" && use_ != "other_pages" {
        return None;
    }
    m.row(use_).map(|x| f(x) as i64)
}

/// `part` per thousand of `whole`, rounded; none of nothing.
fn permille(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| (part * 1000 + whole / 2) / whole)
}

/// The figures, by name, title and how to read them from a report.
pub const FIGURES: &[(&str, &str, Getter)] = &[
    ("records", "records", |r| Some(r.summary.records as i64)),
    (
        "slab.allocs",
        "slab objects allocated (kmalloc + kmem_cache)",
        |r| slab_types(r, |t| t.allocs as i64),
    ),
    ("slab.bytes_requested", "slab bytes requested", |r| {
        slab_types(r, |t| t.bytes_requested as i64)
    }),
    ("slab.bytes_allocated", "slab bytes allocated", |r| {
        slab_types(r, |t| t.bytes_allocated as i64)
    }),
    (
        "slab.fragmentation_bytes",
        "internal fragmentation (bytes)",
        |r| slab_types(r, |t| t.fragmentation_bytes),
    ),
    (
        "slab.fragmentation_permille",
        "internal fragmentation (‰ of allocated)",
        |r| {
            permille(
                slab_types(r, |t| t.fragmentation_bytes)?,
                slab_types(r, |t| t.bytes_allocated as i64)?,
            )
        },
    ),
    (
        "slab_objects.live_bytes",
        "slab objects live at the end (bytes)",
        |r| memory(r, "slab_objects", |m| m.live_bytes),
    ),
    (
        "slab_objects.peak_live_bytes",
        "slab objects at the peak (bytes)",
        |r| memory(r, "slab_objects", |m| m.peak_live_bytes),
    ),
    (
        "slab_pages.allocs",
        "slab page allocations (trips to the page allocator)",
        |r| memory(r, "slab_pages", |m| m.allocs),
    ),
    (
        "slab_pages.per_1000_objects",
        "slab page allocations per 1000 objects",
        |r| {
            permille(
                memory(r, "slab_pages", |m| m.allocs)?,
                memory(r, "slab_objects", |m| m.allocs)?,
            )
        },
    ),
    (
        "slab_pages.bytes_allocated",
        "slab page bytes allocated",
        |r| memory(r, "slab_pages", |m| m.bytes_allocated),
    ),
    (
        "slab_pages.live_bytes",
        "slab pages live at the end (bytes)",
        |r| memory(r, "slab_pages", |m| m.live_bytes),
    ),
    (
        "slab_pages.peak_live_bytes",
        "slab pages at the peak (bytes)",
        |r| memory(r, "slab_pages", |m| m.peak_live_bytes),
    ),
    (
        "slab_overhead_bytes",
        "slab overhead at the end (pages − objects)",
        |r| r.memory.as_ref()?.slab_overhead_bytes,
    ),
    (
        "peak_slab_overhead_bytes",
        "slab overhead at its peak",
        |r| r.memory.as_ref()?.peak_slab_overhead_bytes,
    ),
    (
        "large_kmalloc_pages.bytes_allocated",
        "large kmalloc page bytes",
        |r| memory(r, "large_kmalloc_pages", |m| m.bytes_allocated),
    ),
    (
        "other_pages.bytes_allocated",
        "other page bytes allocated",
        |r| memory(r, "other_pages", |m| m.bytes_allocated),
    ),
    (
        "tracer_pages.bytes_allocated",
        "the tracer's own buffers (bytes)",
        |r| memory(r, "tracer_pages", |m| m.bytes_allocated),
    ),
    (
        "peak_page_bytes",
        "peak of pages taken (slab, large kmalloc, other)",
        |r| Some(r.memory.as_ref()?.peak_page_bytes as i64),
    ),
];

/// The median of `v` (the lower middle one of an even count) and the range.
fn median(mut v: Vec<i64>) -> Option<(i64, (i64, i64))> {
    v.sort_unstable();
    let (first, last) = (*v.first()?, *v.last()?);
    Some((v[(v.len() - 1) / 2], (first, last)))
}

fn row(
    figure: String,
    title: String,
    sides: &[Vec<Report>],
    get: impl Fn(&Report) -> Option<i64>,
) -> SideRow {
    let per: Vec<Option<(i64, (i64, i64))>> = sides
        .iter()
        .map(|runs| {
            let v: Option<Vec<i64>> = runs.iter().map(&get).collect();
            v.and_then(median)
        })
        .collect();
    SideRow {
        figure,
        title,
        values: per.iter().map(|p| p.map(|x| x.0)).collect(),
        ranges: per.iter().map(|p| p.map(|x| x.1)).collect(),
    }
}

/// The table of `sides` (label, runs). An empty label is filled from the first run's trace.
pub fn side_by_side(sides: &[(String, Vec<Report>)]) -> SideBySide {
    let infos = sides
        .iter()
        .map(|(label, runs)| {
            let t = runs.first().map(|r| &r.trace);
            let kernel_release = t.and_then(|t| t.kernel_release.clone());
            let allocator = t
                .and_then(|t| t.allocator)
                .map(|a| Allocator::name(a).to_string());
            let label = if label.is_empty() {
                [kernel_release.as_deref(), allocator.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                label.clone()
            };
            SideInfo {
                label,
                kernel_release,
                allocator,
                runs: runs.len(),
            }
        })
        .collect();
    let runs: Vec<Vec<Report>> = sides.iter().map(|(_, r)| r.clone()).collect();
    let mut rows: Vec<SideRow> = FIGURES
        .iter()
        .map(|(name, title, get)| row(name.to_string(), title.to_string(), &runs, get))
        .collect();
    // Allocations per size class (by bytes allocated), for every class any side has: where
    // the allocators' size classes differ, this is where it shows.
    let mut classes: Vec<(u64, u64)> = runs
        .iter()
        .flatten()
        .flat_map(|r| {
            r.sizes
                .iter()
                .filter(|s| s.allocations > 0)
                .map(|s| (s.min, s.max))
        })
        .collect();
    classes.sort_unstable();
    classes.dedup();
    for (min, max) in classes {
        let label = crate::render::size_label(min, max);
        rows.push(row(
            format!("sizes.{label}.allocations"),
            format!("allocations of {label} bytes"),
            &runs,
            move |r| {
                Some(
                    r.sizes
                        .iter()
                        .find(|s| (s.min, s.max) == (min, max))
                        .map_or(0, |s| s.allocations as i64),
                )
            },
        ));
    }
    SideBySide { sides: infos, rows }
}

fn cell(v: Option<i64>, range: Option<(i64, i64)>) -> String {
    match (v, range) {
        (None, _) => "–".into(),
        (Some(v), Some((lo, hi))) if lo != hi => format!("{v} ({lo}…{hi})"),
        (Some(v), _) => v.to_string(),
    }
}

impl SideBySide {
    /// A markdown table: one row per figure, one column per side.
    pub fn render_markdown(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "| figure |");
        for s in &self.sides {
            let _ = write!(out, " {} |", s.label);
        }
        let _ = write!(out, "\n| --- |");
        for _ in &self.sides {
            let _ = write!(out, " ---: |");
        }
        out.push('\n');
        for r in &self.rows {
            let _ = write!(out, "| {} |", r.title);
            for (v, g) in r.values.iter().zip(&r.ranges) {
                let _ = write!(out, " {} |", cell(*v, *g));
            }
            out.push('\n');
        }
        if self.sides.iter().any(|s| s.runs > 1) {
            let runs: Vec<String> = self.sides.iter().map(|s| s.runs.to_string()).collect();
            let _ = writeln!(
                out,
                "\nMedians over {} runs per side; (low…high) where the runs differ.",
                runs.join("/")
            );
        }
        out
    }

    /// An aligned text table.
    pub fn render_text(&self) -> String {
        let title_w = self
            .rows
            .iter()
            .map(|r| r.title.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.values
                    .iter()
                    .zip(&r.ranges)
                    .map(|(v, g)| cell(*v, *g))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..self.sides.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].chars().count())
                    .chain(std::iter::once(self.sides[i].label.chars().count()))
                    .max()
                    .unwrap_or(1)
            })
            .collect();
        let mut out = String::new();
        let _ = write!(out, "{:<title_w$}", "figure");
        for (s, w) in self.sides.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", s.label);
        }
        out.push('\n');
        for (r, c) in self.rows.iter().zip(&cells) {
            let pad = title_w - r.title.chars().count().min(title_w);
            let _ = write!(out, "{}{}", r.title, " ".repeat(pad));
            for (x, w) in c.iter().zip(&widths) {
                let _ = write!(out, "  {x:>w$}");
            }
            out.push('\n');
        }
        out
    }

    /// The table as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises") + "\n"
    }
}

/// Load one side: a trace directory (`cpu<N>.out`…), a `kmt run` output directory (its
/// `trace/`), or a `report.json` written by `kmemtrace report --format json` or `kmt run`.
///
/// A trace is analysed with `opts`; a `report.json` is taken as it is, so a call-site filter can
/// only be applied to it if it was made with that filter already. A side of which not one record
/// decodes is [`Error::NothingDecodes`], whether it is a trace or the report of one.
pub fn load_side(path: &Path, opts: &AnalyzeOptions) -> Result<Report> {
    let meta = std::fs::metadata(path).map_err(io_in(path, "cannot open"))?;
    let (trace, json): (Option<PathBuf>, Option<PathBuf>) = if meta.is_dir() {
        let dir = trace_dir(path);
        if list_cpu_files(&dir).is_ok_and(|f| !f.is_empty()) {
            (Some(dir), None)
        } else if path.join("report.json").is_file() {
            (None, Some(path.join("report.json")))
        } else {
            return Err(Error::NoTraceFiles {
                path: path.to_path_buf(),
            });
        }
    } else {
        (None, Some(path.to_path_buf()))
    };
    if let Some(dir) = trace {
        let input = load(&[dir], &LoadOptions::default())?;
        return analyze(&input, opts);
    }
    let json = json.expect("one of the two");
    let text = std::fs::read(&json).map_err(io_in(&json, "cannot read"))?;
    let report = Report::from_json(&text).map_err(|source| Error::ReportJson {
        path: json.clone(),
        source,
    })?;
    // A report of a trace that did not decode (made before that was an error) is as unusable.
    let s = &report.summary;
    if let (0, 0, Some(first)) = (s.records, s.unknown_records, report.damage.regions.first()) {
        let files = report.trace.files.iter().map(|f| (f.file.clone(), f.bytes));
        let order = report.trace.byte_order.unwrap_or(crate::ByteOrder::Little);
        let dir = report.trace.directory.as_deref().map(Path::new);
        return Err(nothing_decodes(files, order, first, dir));
    }
    if !opts.callsite_filter.is_empty() && report.trace.callsite_filter != opts.callsite_filter {
        return Err(Error::FilterOnReport {
            path: json,
            made_with: report.trace.callsite_filter,
        });
    }
    if let Some(a) = opts
        .allocator
        .filter(|a| report.trace.allocator != Some(*a))
    {
        return Err(Error::AllocatorOnReport {
            path: json,
            asked: a,
            made_with: report.trace.allocator,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{synth_in_memory, SynthOptions};

    fn report(events: u64, seed: u64) -> Report {
        let (input, _) = synth_in_memory(&SynthOptions {
            events,
            seed,
            ..SynthOptions::default()
        });
        analyze(&input, &AnalyzeOptions::default()).unwrap()
    }

    #[test]
    fn medians_and_ranges_per_side_and_every_size_class() {
        let a = report(4000, 1);
        let b = report(8000, 2);
        let c = report(6000, 3);
        let t = side_by_side(&[
            ("one".into(), vec![a.clone()]),
            (String::new(), vec![a.clone(), b.clone(), c.clone()]),
        ]);
        assert_eq!(t.sides[0].label, "one");
        assert_eq!(t.sides[1].label, "synthetic slub");
        assert_eq!(t.sides[1].runs, 3);
        let records = &t.rows[0];
        assert_eq!(records.figure, "records");
        assert_eq!(records.values, vec![Some(4000), Some(6000)]);
        assert_eq!(records.ranges, vec![Some((4000, 4000)), Some((4000, 8000))]);
        // Every size class with an allocation on any side has a row.
        let classes = t
            .rows
            .iter()
            .filter(|r| r.figure.starts_with("sizes."))
            .count();
        let mut want: Vec<(u64, u64)> = [&a, &b, &c]
            .iter()
            .flat_map(|r| {
                r.sizes
                    .iter()
                    .filter(|s| s.allocations > 0)
                    .map(|s| (s.min, s.max))
            })
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(classes, want.len());
        let md = t.render_markdown();
        assert!(md.starts_with("| figure | one | synthetic slub |\n| --- | ---: | ---: |\n"));
        assert!(md.contains("| records | 4000 | 6000 (4000…8000) |"), "{md}");
        assert!(md.contains("Medians over 1/3 runs per side"));
        let text = t.render_text();
        assert_eq!(text.lines().count(), t.rows.len() + 1);
        // Without symbols the page uses are unknown, not zero.
        let mut nosym = a.clone();
        nosym.memory.as_mut().unwrap().pages_classified = false;
        let t = side_by_side(&[(String::new(), vec![nosym])]);
        let sp = t
            .rows
            .iter()
            .find(|r| r.figure == "slab_pages.allocs")
            .unwrap();
        assert_eq!(sp.values, vec![None]);
        assert!(t.render_text().contains('–'));
    }
}
