// SPDX-License-Identifier: GPL-2.0-only
//! Comparing traces: what changed between a BASE and a NEW report, and CI gates on it.
//!
//! Pure: [`diff`] takes the reports of one or more runs per side and returns a [`Diff`] value;
//! [`render_diff_text`] and [`render_diff_markdown`] print it, serde gives the JSON. Loading a
//! side from a trace directory or a `report.json` is the one edge, [`load_side`].
//!
//! # What counts as a change
//! Each figure is compared as two ranges: the values of the base runs and the values of the new
//! runs. A change is *significant* only when the ranges do not overlap (every new run is above
//! every base run, or below) *and* the difference of the medians is larger than the wider of the
//! two ranges (the spread of the repeats). So with `--repeat N` a figure that moves within the
//! noise of the repeats is never reported as a change, even when two small samples happen not
//! to overlap; with one run per side the spreads are 0 and any difference is significant.
//! The value shown for a side is its median (the lower middle value for an even count), the delta
//! is the difference of the medians, and the relative delta is the delta over the base median
//! (absent when that is 0).
//!
//! # Matching call sites
//! By function name (`functions` rows: every call site inside one function together) when every
//! report has symbols, so that two different kernels, where addresses move, compare; else by
//! call-site address.

use crate::error::{io_in, nothing_decodes, Error, Result};
use crate::glob::Glob;
use crate::report::{PageOrderRow, Report, SiteStats, SizeRow, Summary, TypeRow};
use crate::{analyze, load, AnalyzeOptions, LoadOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Version of the diff JSON; bumped when the meaning of an existing key changes.
pub const DIFF_SCHEMA_VERSION: u32 = 1;

/// One figure on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Median of the base runs.
    pub base: i64,
    /// Median of the new runs.
    pub new: i64,
    /// `new - base`.
    pub delta: i64,
    /// `delta / |base|` (0.5 is +50 %); `null` when `base` is 0.
    pub relative: Option<f64>,
    /// Smallest and largest value over the base runs.
    pub base_range: [i64; 2],
    /// Smallest and largest value over the new runs.
    pub new_range: [i64; 2],
    /// Whether the ranges are disjoint and `|delta|` exceeds the wider range: a change beyond
    /// the spread of the repeats.
    pub significant: bool,
}

impl Delta {
    /// Compare the values of the base runs with those of the new runs (both non-empty).
    pub fn of(base: &[i64], new: &[i64]) -> Delta {
        let (bm, blo, bhi) = median_range(base);
        let (nm, nlo, nhi) = median_range(new);
        let delta = nm.saturating_sub(bm);
        Delta {
            base: bm,
            new: nm,
            delta,
            relative: (bm != 0).then(|| delta as f64 / (bm as f64).abs()),
            base_range: [blo, bhi],
            new_range: [nlo, nhi],
            significant: (nlo > bhi || nhi < blo)
                && delta.unsigned_abs() > bhi.abs_diff(blo).max(nhi.abs_diff(nlo)),
        }
    }
}

/// `(lower median, min, max)`; zeros for an empty slice.
fn median_range(v: &[i64]) -> (i64, i64, i64) {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => (0, 0, 0),
        n => (s[(n - 1) / 2], s[0], s[n - 1]),
    }
}

/// One named figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDelta {
    /// The figure's name, as in the report's JSON.
    pub field: String,
    /// Its values.
    #[serde(flatten)]
    pub delta: Delta,
}

/// How a row (call site, type, page order, size class) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In both, some figure changed significantly.
    Changed,
    /// In no base run, significantly different in the new runs.
    Appeared,
    /// In no new run, significantly different from the base runs.
    Vanished,
    /// No significant change.
    Same,
}

impl Status {
    /// The word used in text and markdown.
    pub fn name(self) -> &'static str {
        match self {
            Status::Changed => "changed",
            Status::Appeared => "appeared",
            Status::Vanished => "vanished",
            Status::Same => "same",
        }
    }
}

/// One row of a section on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowDelta {
    /// Function name or `0x…` address (call sites), type name, page order, or size class.
    pub key: String,
    /// How it changed.
    pub status: Status,
    /// Its figures.
    pub fields: Vec<FieldDelta>,
}

impl RowDelta {
    /// The figure named `field`.
    pub fn field(&self, field: &str) -> Option<&Delta> {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| &f.delta)
    }
}

/// How call sites were matched between the sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// By function name (every report had symbols).
    Function,
    /// By call-site address.
    Address,
}

/// What one side was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideInfo {
    /// What the user called it (the path, or a label).
    pub label: String,
    /// Runs compared (repeats).
    pub runs: usize,
    /// Distinct `kernel_release` values of the runs.
    pub kernel_release: Vec<String>,
    /// Distinct `machine` values of the runs.
    pub machine: Vec<String>,
    /// Whether every run had symbols.
    pub symbols: bool,
    /// The call-site filter the reports were made with.
    pub callsite_filter: Vec<String>,
}

/// One `--fail-on` threshold evaluated on one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// The expression as given.
    pub expr: String,
    /// The row it was evaluated on (`null` for summary gates).
    pub row: Option<String>,
    /// The figure.
    pub field: String,
    /// Its values.
    #[serde(flatten)]
    pub delta: Delta,
    /// Whether the threshold was crossed.
    pub crossed: bool,
}

/// The comparison of two sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// [`DIFF_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The base side.
    pub base: SideInfo,
    /// The new side.
    pub new: SideInfo,
    /// How call sites were matched.
    pub matched_by: MatchBy,
    /// Every summary field.
    pub summary: Vec<FieldDelta>,
    /// Per allocator family.
    pub types: Vec<RowDelta>,
    /// Per page order (key: the order).
    pub pages: Vec<RowDelta>,
    /// Per size class (key: `min-max` bytes).
    pub sizes: Vec<RowDelta>,
    /// Call sites that changed, appeared or vanished, most impact first.
    pub callsites: Vec<RowDelta>,
    /// Call sites (in either side) without a significant change.
    pub callsites_unchanged: u64,
    /// The `--fail-on` thresholds, one result per row they apply to.
    pub gates: Vec<GateResult>,
}

/// Summary fields that describe the input rather than the allocations (how many records the
/// trace held, how many the call-site filter left out): shown and gateable, but a change in them
/// alone is not a change of the allocation behaviour (with a filter they vary with whatever else
/// the kernel did during the run).
pub const INPUT_FIELDS: &[&str] = &["records", "filtered_out"];

impl Diff {
    /// The summary fields of the allocation behaviour (not [`INPUT_FIELDS`]) that changed
    /// significantly.
    pub fn changed_summary(&self) -> impl Iterator<Item = &FieldDelta> {
        self.summary
            .iter()
            .filter(|f| f.delta.significant && !INPUT_FIELDS.contains(&f.field.as_str()))
    }

    /// Whether any figure of the allocation behaviour changed significantly.
    pub fn changed(&self) -> bool {
        self.changed_summary().next().is_some()
            || [&self.types, &self.pages, &self.sizes, &self.callsites]
                .iter()
                .any(|s| s.iter().any(|r| r.status != Status::Same))
    }

    /// Whether a `--fail-on` threshold was crossed.
    pub fn gate_failed(&self) -> bool {
        self.gates.iter().any(|g| g.crossed)
    }

    /// Pretty JSON (with a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("Diff serialises");
        s.push('\n');
        s
    }
}

/// Figures of a call-site row, in output order.
pub const CALLSITE_FIELDS: &[&str] = SiteStats::COMPARED;
/// Figures of a type row.
pub const TYPE_FIELDS: &[&str] = TypeRow::FIELDS;
/// Figures of a page-order row.
pub const PAGE_FIELDS: &[&str] = PageOrderRow::FIELDS;
/// Figures of a size-class row.
pub const SIZE_FIELDS: &[&str] = SizeRow::FIELDS;

/// One report's rows of a section: (ordering key, row key, values in the section's field order).
type Rows = Vec<(u64, String, Vec<i64>)>;

/// The values of a row's `figures` (named with the list the section is compared by).
fn values(figures: Vec<(&'static str, i64)>) -> Vec<i64> {
    figures.into_iter().map(|(_, v)| v).collect()
}

fn callsite_rows(r: &Report, by: MatchBy) -> Rows {
    match by {
        MatchBy::Function => r
            .functions
            .iter()
            .map(|f| (0, f.function.clone(), values(f.stats.compared())))
            .collect(),
        MatchBy::Address => r
            .callsites
            .iter()
            .map(|c| (0, format!("{:#x}", c.call_site), values(c.stats.compared())))
            .collect(),
    }
}

fn type_rows(r: &Report) -> Rows {
    r.types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t.type_id.map(|t| t.name()).unwrap_or("unknown");
            (i as u64, name.to_string(), values(t.fields()))
        })
        .collect()
}

fn page_rows(r: &Report) -> Rows {
    r.pages
        .iter()
        .map(|p| (u64::from(p.order), p.order.to_string(), values(p.fields())))
        .collect()
}

fn size_rows(r: &Report) -> Rows {
    r.sizes
        .iter()
        .map(|s| (s.min, format!("{}-{}", s.min, s.max), values(s.fields())))
        .collect()
}

/// Compare one section over all runs of both sides; rows keep their ordering key's order.
fn section(base: &[Rows], new: &[Rows], fields: &[&str]) -> Vec<RowDelta> {
    // key -> (ordering key, values per base run, values per new run); absent rows are zeros.
    type Acc = (u64, Vec<Option<Vec<i64>>>, Vec<Option<Vec<i64>>>);
    let mut rows: BTreeMap<String, Acc> = BTreeMap::new();
    for (side, runs) in [base, new].into_iter().enumerate() {
        for (i, run) in runs.iter().enumerate() {
            for (ord, key, vals) in run {
                let e = rows
                    .entry(key.clone())
                    .or_insert_with(|| (*ord, vec![None; base.len()], vec![None; new.len()]));
                let slot = if side == 0 { &mut e.1[i] } else { &mut e.2[i] };
                // The same key twice in one run (two addresses of `[unknown]`…): add up.
                match slot {
                    Some(old) => old.iter_mut().zip(vals).for_each(|(a, b)| {
                        *a = a.saturating_add(*b);
                    }),
                    None => *slot = Some(vals.clone()),
                }
            }
        }
    }
    let mut out: Vec<(u64, RowDelta)> = rows
        .into_iter()
        .map(|(key, (ord, b, n))| {
            let col = |runs: &[Option<Vec<i64>>], j: usize| -> Vec<i64> {
                runs.iter()
                    .map(|r| r.as_ref().map_or(0, |v| v[j]))
                    .collect()
            };
            let fields: Vec<FieldDelta> = fields
                .iter()
                .enumerate()
                .map(|(j, f)| FieldDelta {
                    field: f.to_string(),
                    delta: Delta::of(&col(&b, j), &col(&n, j)),
                })
                .collect();
            let status = if !fields.iter().any(|f| f.delta.significant) {
                Status::Same
            } else if b.iter().all(Option::is_none) {
                Status::Appeared
            } else if n.iter().all(Option::is_none) {
                Status::Vanished
            } else {
                Status::Changed
            };
            (
                ord,
                RowDelta {
                    key,
                    status,
                    fields,
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Most impact first: |Δ bytes allocated|, |Δ fragmentation|, |Δ hits|, |Δ frees|, then the key.
fn by_impact(a: &RowDelta, b: &RowDelta) -> std::cmp::Ordering {
    let mag = |r: &RowDelta, f: &str| r.field(f).map_or(0, |d| d.delta.unsigned_abs());
    ["bytes_allocated", "fragmentation_bytes", "hits", "frees"]
        .iter()
        .map(|f| mag(b, f).cmp(&mag(a, f)))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.key.cmp(&b.key))
}

fn side_info(label: &str, runs: &[Report]) -> SideInfo {
    let distinct = |f: fn(&Report) -> Option<&String>| {
        let mut v: Vec<String> = runs.iter().filter_map(|r| f(r).cloned()).collect();
        v.sort();
        v.dedup();
        v
    };
    SideInfo {
        label: label.to_string(),
        runs: runs.len(),
        kernel_release: distinct(|r| r.trace.kernel_release.as_ref()),
        machine: distinct(|r| r.trace.machine.as_ref()),
        symbols: runs.iter().all(|r| r.trace.symbols),
        callsite_filter: runs
            .first()
            .map(|r| r.trace.callsite_filter.clone())
            .unwrap_or_default(),
    }
}

/// Which direction of change a threshold is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `+N`: an increase beyond N.
    Up,
    /// `-N`: a decrease beyond N.
    Down,
    /// `N`: a change beyond N either way.
    Either,
}

/// What a threshold looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// A summary field.
    Summary,
    /// The call sites whose key (function name, or `0x…` address) matches the glob.
    Callsite(Glob),
    /// An allocator family (`kmalloc`, `kmem_cache`, `pages`).
    Type(String),
    /// A page order.
    Order(u32),
}

/// A parsed `--fail-on` expression: `[SCOPE:NAME:]FIELD:[+|-]AMOUNT[%]`.
///
/// It displays in a canonical form (no blanks, the amount as the shortest decimal that parses
/// back to it), which [`Threshold::parse`] reads back to the same threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given.
    pub expr: String,
    /// What it looks at.
    pub scope: Scope,
    /// The figure.
    pub field: String,
    /// Which way.
    pub direction: Direction,
    /// The amount (bytes or counts, or percent).
    pub amount: f64,
    /// Whether `amount` is a percentage of the base value.
    pub percent: bool,
}

/// The grammar, for error messages.
pub const THRESHOLD_GRAMMAR: &str = "FIELD:[+|-]N[%], callsite:GLOB:FIELD:[+|-]N[%], \
     type:kmalloc|kmem_cache|pages:FIELD:[+|-]N[%] or order:N:FIELD:[+|-]N[%] \
     (e.g. bytes_allocated:+5%, fragmentation_bytes:+1000, callsite:foo:bytes_allocated:+10%)";

impl Threshold {
    /// Parse a `--fail-on` expression, checking the field name against its scope's fields.
    pub fn parse(expr: &str) -> Result<Threshold> {
        let bad = |why: String| Error::Threshold {
            expr: expr.to_string(),
            why,
        };
        let mut parts = expr.rsplitn(3, ':');
        let amount = parts.next().unwrap_or_default().trim();
        let field = parts
            .next()
            .ok_or_else(|| bad(format!("expected {THRESHOLD_GRAMMAR}")))?
            .trim()
            .to_string();
        let (scope, known): (Scope, Vec<&str>) = match parts.next() {
            None => (Scope::Summary, Summary::FIELDS.to_vec()),
            Some(s) => {
                let (kind, name) = s
                    .split_once(':')
                    .ok_or_else(|| bad(format!("expected {THRESHOLD_GRAMMAR}")))?;
                match kind {
                    "callsite" => (Scope::Callsite(Glob::new(name)?), CALLSITE_FIELDS.to_vec()),
                    "type" => {
                        if !["kmalloc", "kmem_cache", "pages"].contains(&name) {
                            return Err(bad(format!(
                                "unknown type {name:?} (known: kmalloc, kmem_cache, pages)"
                            )));
                        }
                        (Scope::Type(name.to_string()), TYPE_FIELDS.to_vec())
                    }
                    "order" => (
                        Scope::Order(
                            name.parse()
                                .map_err(|_| bad(format!("page order {name:?} is not a number")))?,
                        ),
                        PAGE_FIELDS.to_vec(),
                    ),
                    k => {
                        return Err(bad(format!(
                            "unknown scope {k:?} (known: callsite, type, order)"
                        )))
                    }
                }
            }
        };
        if !known.contains(&field.as_str()) {
            return Err(bad(format!(
                "unknown field {field:?} here (known: {})",
                known.join(", ")
            )));
        }
        let (direction, rest) = match amount.as_bytes().first() {
            Some(b'+') => (Direction::Up, &amount[1..]),
            Some(b'-') => (Direction::Down, &amount[1..]),
            _ => (Direction::Either, amount),
        };
        let (percent, num) = match rest.strip_suffix('%') {
            Some(n) => (true, n),
            None => (false, rest),
        };
        // One sign at most: f64 parsing takes one of its own, and `+-0` (-0.0 >= 0) would pass.
        let num = num.trim();
        let amount: f64 = Some(num)
            .filter(|n| !n.starts_with(['+', '-']))
            .and_then(|n| n.parse().ok())
            .filter(|a: &f64| a.is_finite() && *a >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "threshold {amount:?} is not [+|-]N or [+|-]N% with N >= 0"
                ))
            })?;
        Ok(Threshold {
            expr: expr.to_string(),
            scope,
            field,
            direction,
            amount,
            percent,
        })
    }

    /// Whether `d` crosses the threshold: a significant change in the threshold's direction
    /// larger than its amount (a relative threshold on a base of 0 is crossed by any change).
    pub fn crossed_by(&self, d: &Delta) -> bool {
        let way = match self.direction {
            Direction::Up => d.delta > 0,
            Direction::Down => d.delta < 0,
            Direction::Either => d.delta != 0,
        };
        let size = if self.percent {
            d.relative.map_or(f64::INFINITY, |r| r.abs() * 100.0)
        } else {
            d.delta.unsigned_abs() as f64
        };
        d.significant && way && size > self.amount
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.scope {
            Scope::Summary => {}
            Scope::Callsite(g) => write!(f, "callsite:{}:", g.as_str())?,
            Scope::Type(t) => write!(f, "type:{t}:")?,
            Scope::Order(o) => write!(f, "order:{o}:")?,
        }
        let sign = match self.direction {
            Direction::Up => "+",
            Direction::Down => "-",
            Direction::Either => "",
        };
        let percent = if self.percent { "%" } else { "" };
        write!(f, "{}:{sign}{}{percent}", self.field, self.amount)
    }
}

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Force call-site matching by address (default: by function when every report has symbols).
    pub by_address: bool,
    /// Thresholds to evaluate.
    pub fail_on: Vec<Threshold>,
}

/// Compare the base runs with the new runs (at least one each).
///
/// Errors: a call-site threshold whose glob matches no call site on either side (a gate that
/// can never fire is a mistake, not a pass).
pub fn diff(
    base_label: &str,
    base: &[Report],
    new_label: &str,
    new: &[Report],
    opts: &DiffOptions,
) -> Result<Diff> {
    let all = || base.iter().chain(new);
    let matched_by = if !opts.by_address && all().all(|r| r.trace.symbols) {
        MatchBy::Function
    } else {
        MatchBy::Address
    };
    let rows =
        |runs: &[Report], f: &dyn Fn(&Report) -> Rows| runs.iter().map(f).collect::<Vec<_>>();

    let summary: Vec<FieldDelta> = {
        let b: Vec<Vec<(&str, i64)>> = base.iter().map(|r| r.summary.fields()).collect();
        let n: Vec<Vec<(&str, i64)>> = new.iter().map(|r| r.summary.fields()).collect();
        Summary::FIELDS
            .iter()
            .enumerate()
            .map(|(j, name)| FieldDelta {
                field: name.to_string(),
                delta: Delta::of(
                    &b.iter().map(|f| f[j].1).collect::<Vec<_>>(),
                    &n.iter().map(|f| f[j].1).collect::<Vec<_>>(),
                ),
            })
            .collect()
    };
    let types = section(&rows(base, &type_rows), &rows(new, &type_rows), TYPE_FIELDS);
    let pages = section(&rows(base, &page_rows), &rows(new, &page_rows), PAGE_FIELDS);
    let sizes = section(&rows(base, &size_rows), &rows(new, &size_rows), SIZE_FIELDS);
    let sites = |r: &Report| callsite_rows(r, matched_by);
    let all_sites = section(&rows(base, &sites), &rows(new, &sites), CALLSITE_FIELDS);

    let mut gates = Vec::new();
    for t in &opts.fail_on {
        let mut on = |row: Option<&str>, d: &Delta| {
            gates.push(GateResult {
                expr: t.expr.clone(),
                row: row.map(str::to_string),
                field: t.field.clone(),
                delta: d.clone(),
                crossed: t.crossed_by(d),
            })
        };
        let find = |rows: &[RowDelta], key: &str| {
            rows.iter()
                .find(|r| r.key == key)
                .and_then(|r| r.field(&t.field).map(|d| (r.key.clone(), d.clone())))
        };
        match &t.scope {
            Scope::Summary => {
                if let Some(f) = summary.iter().find(|f| f.field == t.field) {
                    on(None, &f.delta);
                }
            }
            Scope::Callsite(g) => {
                let hits: Vec<&RowDelta> =
                    all_sites.iter().filter(|r| g.is_match(&r.key)).collect();
                if hits.is_empty() {
                    return Err(Error::Threshold {
                        expr: t.expr.clone(),
                        why: format!(
                            "no call site matches {:?} in either side (call sites are matched by {})",
                            g.as_str(),
                            match matched_by {
                                MatchBy::Function => "function name",
                                MatchBy::Address => "address, 0x…",
                            }
                        ),
                    });
                }
                for r in hits {
                    if let Some(d) = r.field(&t.field) {
                        on(Some(&r.key), d);
                    }
                }
            }
            Scope::Type(name) => {
                if let Some((k, d)) = find(&types, name) {
                    on(Some(&k), &d);
                }
            }
            Scope::Order(o) => {
                let key = o.to_string();
                match find(&pages, &key) {
                    Some((k, d)) => on(Some(&k), &d),
                    // Absent on both sides: zero against zero.
                    None => on(Some(&key), &Delta::of(&[0], &[0])),
                }
            }
        }
    }

    let callsites_unchanged = all_sites
        .iter()
        .filter(|r| r.status == Status::Same)
        .count() as u64;
    let mut callsites: Vec<RowDelta> = all_sites
        .into_iter()
        .filter(|r| r.status != Status::Same)
        .collect();
    callsites.sort_by(by_impact);
    Ok(Diff {
        schema_version: DIFF_SCHEMA_VERSION,
        base: side_info(base_label, base),
        new: side_info(new_label, new),
        matched_by,
        summary,
        types,
        pages,
        sizes,
        callsites,
        callsites_unchanged,
        gates,
    })
}

/// Load one side: a trace directory (`cpu<N>.out`…), a `kmt run` output directory (its
/// `trace/`), or a `report.json` written by `kmemtrace report --format json` or `kmt run`.
///
/// A trace is analysed with `opts`; a `report.json` is taken as it is, so a call-site filter can
/// only be applied to it if it was made with that filter already. A side of which not one record
/// decodes is [`Error::NothingDecodes`], whether it is a trace or the report of one.
pub fn load_side(path: &Path, opts: &AnalyzeOptions) -> Result<Report> {
    let meta = std::fs::metadata(path).map_err(io_in(path, "cannot open"))?;
    let has_cpu_files = |d: &Path| -> bool {
        std::fs::read_dir(d)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().starts_with("cpu"))
            })
            .unwrap_or(false)
    };
    let (trace, json): (Option<PathBuf>, Option<PathBuf>) = if meta.is_dir() {
        if has_cpu_files(path) {
            (Some(path.to_path_buf()), None)
        } else if has_cpu_files(&path.join("trace")) {
            (Some(path.join("trace")), None)
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
    Ok(report)
}

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
        t + ")"
    };
    format!("{} -> {}", side(&d.base), side(&d.new))
}

fn matched_note(d: &Diff) -> &'static str {
    match d.matched_by {
        MatchBy::Function => "call sites matched by function name",
        MatchBy::Address if d.base.symbols && d.new.symbols => "call sites matched by address",
        MatchBy::Address => "call sites matched by address (a side has no symbols)",
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
    let _ = writeln!(
        out,
        "\nCALL SITES: {} changed, appeared or vanished; {} unchanged",
        d.callsites.len(),
        d.callsites_unchanged
    );
    if !d.callsites.is_empty() {
        let _ = write!(out, " {:<40} {:<9}", "call site", "status");
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
    if !d.callsites.is_empty() {
        let columns = || SITE_COLUMNS.iter().filter(|c| c.3);
        let _ = write!(out, "| call site | status |");
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
                "\n… and {} more call sites.",
                d.callsites.len() - o.lines
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} call sites unchanged. Types, page orders and size classes that changed:\n",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FunctionRow, SiteStats, TraceInfo};

    fn report(sites: &[(&str, u64, u64, u64)]) -> Report {
        let empty = crate::TraceInput::from_streams([(0u32, Vec::new())]);
        let mut r = analyze(&empty, &AnalyzeOptions::default()).expect("an empty trace analyses");
        r.trace = TraceInfo {
            symbols: true,
            ..TraceInfo::default()
        };
        for (name, hits, req, alloc) in sites {
            r.functions.push(FunctionRow {
                function: name.to_string(),
                call_sites: 1,
                stats: SiteStats {
                    hits: *hits,
                    bytes_requested: *req,
                    bytes_allocated: *alloc,
                    fragmentation_bytes: *alloc as i64 - *req as i64,
                    ..SiteStats::default()
                },
            });
            r.summary.allocs += hits;
            r.summary.bytes_requested += req;
            r.summary.bytes_allocated += alloc;
        }
        r.summary.fragmentation_bytes =
            r.summary.bytes_allocated as i64 - r.summary.bytes_requested as i64;
        r
    }

    fn gates(exprs: &[&str]) -> DiffOptions {
        DiffOptions {
            by_address: false,
            fail_on: exprs.iter().map(|e| Threshold::parse(e).unwrap()).collect(),
        }
    }

    #[test]
    fn identical_reports_diff_clean() {
        let a = report(&[("foo", 3, 300, 384), ("bar", 1, 8, 8)]);
        let mut b = a.clone();
        // More unrelated records around a filtered selection: the input, not the behaviour.
        b.summary.records += 100;
        b.summary.filtered_out += 100;
        let d = diff("a", &[a], "b", &[b], &gates(&["bytes_allocated:0"])).unwrap();
        assert!(!d.changed());
        assert!(!d.gate_failed());
        assert!(d.callsites.is_empty());
        assert_eq!(d.callsites_unchanged, 2);
    }

    #[test]
    fn a_grown_call_site_is_named_and_gates_fire() {
        let a = report(&[("foo", 1, 128, 128), ("bar", 2, 16, 16)]);
        let b = report(&[("foo", 1, 129, 192), ("bar", 2, 16, 16), ("baz", 1, 8, 8)]);
        let d = diff(
            "a",
            &[a],
            "b",
            &[b],
            &gates(&[
                "callsite:foo:bytes_allocated:+10%",
                "callsite:ba?:hits:+5",
                "fragmentation_bytes:+50",
                "bytes_allocated:-1",
            ]),
        )
        .unwrap();
        assert_eq!(d.callsites[0].key, "foo");
        assert_eq!(d.callsites[0].status, Status::Changed);
        let alloc = d.callsites[0].field("bytes_allocated").unwrap();
        assert_eq!((alloc.base, alloc.new, alloc.delta), (128, 192, 64));
        assert_eq!(alloc.relative, Some(0.5));
        assert_eq!(d.callsites[1].key, "baz");
        assert_eq!(d.callsites[1].status, Status::Appeared);
        let crossed: Vec<(&str, Option<&str>, bool)> = d
            .gates
            .iter()
            .map(|g| (g.expr.as_str(), g.row.as_deref(), g.crossed))
            .collect();
        assert_eq!(
            crossed,
            vec![
                ("callsite:foo:bytes_allocated:+10%", Some("foo"), true),
                ("callsite:ba?:hits:+5", Some("bar"), false),
                ("callsite:ba?:hits:+5", Some("baz"), false),
                ("fragmentation_bytes:+50", None, true),
                ("bytes_allocated:-1", None, false),
            ]
        );
    }

    #[test]
    fn with_repeats_only_changes_beyond_the_spread_count() {
        let runs = |v: &[u64]| -> Vec<Report> {
            v.iter().map(|n| report(&[("foo", 1, *n, *n)])).collect()
        };
        // New within the base spread: not significant, no gate fires.
        let d = diff(
            "a",
            &runs(&[100, 120, 110]),
            "b",
            &runs(&[115, 118, 119]),
            &gates(&["bytes_allocated:+1%"]),
        )
        .unwrap();
        let f = d
            .summary
            .iter()
            .find(|f| f.field == "bytes_allocated")
            .unwrap();
        assert_eq!((f.delta.base, f.delta.new), (110, 118));
        assert!(!f.delta.significant);
        assert!(!d.changed() && !d.gate_failed());
        // Disjoint, but the medians differ by less than the base spread (15 < 20): noise.
        let d = diff(
            "a",
            &runs(&[100, 120, 110]),
            "b",
            &runs(&[121, 130, 125]),
            &gates(&["bytes_allocated:+1%"]),
        )
        .unwrap();
        assert!(!d.changed() && !d.gate_failed());
        // Beyond the spread: significant.
        let d = diff(
            "a",
            &runs(&[100, 120, 110]),
            "b",
            &runs(&[135, 140, 138]),
            &gates(&["bytes_allocated:+1%"]),
        )
        .unwrap();
        assert!(d.changed() && d.gate_failed());
    }

    #[test]
    fn thresholds_parse_and_reject_what_they_must() {
        let t = Threshold::parse("callsite:kmemtrace_selftest_*:bytes_allocated:+10%").unwrap();
        assert!(matches!(t.scope, Scope::Callsite(_)));
        assert_eq!(
            (t.direction, t.amount, t.percent),
            (Direction::Up, 10.0, true)
        );
        let t = Threshold::parse("fragmentation_bytes:1000").unwrap();
        assert_eq!(
            (t.direction, t.amount, t.percent),
            (Direction::Either, 1000.0, false)
        );
        let t = Threshold::parse("order:3:allocs:-2").unwrap();
        assert!(matches!(t.scope, Scope::Order(3)));
        for bad in [
            "bytes",
            "nosuchfield:+5%",
            "bytes_allocated:+x%",
            "bytes_allocated:+-5",
            "callsite:foo:allocs:+1",
            "type:slab:allocs:+1",
            "order:x:allocs:+1",
            "node:0:allocs:+1",
            "callsite:[:hits:+1",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    /// Found by reading while writing the threshold fuzz target: `+-0` passed (the float parser
    /// takes a sign of its own, and -0.0 >= 0), while `+-5` was refused.
    #[test]
    fn threshold_amount_takes_one_sign_only() {
        for bad in [
            "bytes_allocated:+-0",
            "bytes_allocated:- -0%",
            "bytes_allocated:++1",
            "bytes_allocated:-0x",
            "bytes_allocated:inf",
            "bytes_allocated:NaN%",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} must be rejected");
        }
        let t = Threshold::parse("bytes_allocated:-0").unwrap();
        assert_eq!((t.direction, t.amount), (Direction::Down, 0.0));
    }

    #[test]
    fn thresholds_display_canonically_and_parse_back() {
        for (expr, canonical) in [
            ("bytes_allocated:+5%", "bytes_allocated:+5%"),
            (" fragmentation_bytes : 1000 ", "fragmentation_bytes:1000"),
            ("callsite:a:b*:hits:-2.50", "callsite:a:b*:hits:-2.5"),
            (
                "type:pages:live_bytes:+ 1e3 %",
                "type:pages:live_bytes:+1000%",
            ),
            ("order:+3:allocs:0", "order:3:allocs:0"),
        ] {
            let t = Threshold::parse(expr).unwrap();
            assert_eq!(t.to_string(), canonical);
            let again = Threshold::parse(canonical).unwrap();
            assert_eq!(
                Threshold {
                    expr: t.expr.clone(),
                    ..again
                },
                t
            );
        }
    }

    #[test]
    fn a_gate_on_a_call_site_that_exists_nowhere_is_an_error() {
        let a = report(&[("foo", 1, 8, 8)]);
        let e = diff(
            "a",
            std::slice::from_ref(&a),
            "b",
            std::slice::from_ref(&a),
            &gates(&["callsite:fo:hits:+1"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no call site matches"), "{e}");
    }

    #[test]
    fn without_symbols_call_sites_match_by_address() {
        let mut a = report(&[]);
        a.trace.symbols = false;
        a.callsites.push(crate::CallsiteRow {
            call_site: 0xffff_0010,
            symbol: None,
            stats: SiteStats {
                hits: 1,
                ..SiteStats::default()
            },
        });
        let mut b = a.clone();
        b.callsites[0].stats.hits = 2;
        let d = diff("a", &[a], "b", &[b], &DiffOptions::default()).unwrap();
        assert_eq!(d.matched_by, MatchBy::Address);
        assert_eq!(d.callsites[0].key, "0xffff0010");
    }
}
