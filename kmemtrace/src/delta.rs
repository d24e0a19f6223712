// SPDX-License-Identifier: GPL-2.0-only
//! The value a comparison returns: one figure over repeated runs of two sides is a [`Delta`]
//! (medians, ranges, whether the change is beyond the spread of the repeats; the rule is in
//! [`crate::diff`]'s "What counts as a change"), a row of them is a [`RowDelta`], and the whole
//! comparison is a [`Diff`]. A leaf, naming no other module: [`crate::diff`] makes the value
//! (and re-exports it: `kmemtrace::diff::Diff` is this one), [`crate::diff_render`] prints it,
//! the `--fail-on` gates ([`crate::threshold`]) judge its deltas, [`crate::plot`] draws it.

use serde::{Deserialize, Serialize};

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

/// Version of the diff JSON; bumped when the meaning of an existing key changes.
pub const DIFF_SCHEMA_VERSION: u32 = 1;

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
    /// By the caller outside the allocation wrappers (`--group-by caller`: the reports'
    /// caller groups), by function name.
    Caller,
    /// By the whole stack, as function names outermost first (`--group-by stack`: the
    /// reports' stack groups; offsets are left out, since they differ between kernels).
    Stack,
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
    /// Distinct allocators whose rules judged the runs' frees (absent from diffs written before).
    #[serde(default)]
    pub allocator: Vec<String>,
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
