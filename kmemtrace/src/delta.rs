// SPDX-License-Identifier: GPL-2.0-only
//! One figure compared over repeated runs of two sides: a [`Delta`] (medians, ranges, whether the
//! change is beyond the spread of the repeats; the rule is in [`crate::diff`]'s "What counts as
//! a change"). A leaf: the diff makes them, the `--fail-on` gates ([`crate::threshold`]) judge
//! them. `crate::diff` re-exports it.

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
