// SPDX-License-Identifier: GPL-2.0-only
//! Comparing traces: what changed between a BASE and a NEW report, and CI gates on it.
//!
//! Pure: [`diff`] takes the reports of one or more runs per side and returns a [`Diff`] value;
//! [`render_diff_text`] and [`render_diff_markdown`] print it ([`crate::diff_render`]), serde
//! gives the JSON. The `--fail-on` grammar is [`crate::threshold`]; loading a side from a trace
//! directory or a `report.json`, the one edge, is [`crate::sides::load_side`]. All three are
//! re-exported here.
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

use crate::error::{Error, Result};
use crate::report::{PageOrderRow, Report, SiteStats, SizeRow, Summary, TypeRow};
use crate::symbols::plain_name;
use std::collections::BTreeMap;

pub use crate::delta::{
    Delta, Diff, FieldDelta, GateResult, MatchBy, RowDelta, SideInfo, Status, DIFF_SCHEMA_VERSION,
    INPUT_FIELDS,
};
pub use crate::diff_render::{render_diff_markdown, render_diff_text, DiffTextOptions};
pub use crate::sides::load_side;
pub use crate::threshold::{Direction, Scope, Threshold, THRESHOLD_GRAMMAR};

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
    let by_kind = by;
    match by {
        // Keyed by the plain name: big-endian ppc64 is ELFv1 on 6.1 (kallsyms names text
        // '.__pud_alloc') and ELFv2 on 6.12 ('__pud_alloc'), and a diff across the two must
        // match them. Rows that meet under one key (never two text symbols of one kernel) add.
        MatchBy::Function => {
            let mut by: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
            for f in &r.functions {
                let v = values(f.stats.compared());
                let e = by
                    .entry(plain_name(&f.function))
                    .or_insert_with(|| vec![0; v.len()]);
                for (a, b) in e.iter_mut().zip(v) {
                    *a = a.saturating_add(b);
                }
            }
            by.into_iter().map(|(k, v)| (0, k.to_string(), v)).collect()
        }
        MatchBy::Address => r
            .callsites
            .iter()
            .map(|c| (0, format!("{:#x}", c.call_site), values(c.stats.compared())))
            .collect(),
        MatchBy::Caller | MatchBy::Stack => {
            let mut by: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for g in r.groups.iter().flat_map(|g| &g.rows) {
                let key = match by_kind {
                    MatchBy::Stack => g
                        .frames
                        .iter()
                        .rev()
                        .map(|f| plain_name(&crate::render::folded_frame(f)).to_string())
                        .collect::<Vec<_>>()
                        .join(";"),
                    _ => plain_name(&g.key).to_string(),
                };
                let v = values(g.stats.compared());
                let e = by.entry(key).or_insert_with(|| vec![0; v.len()]);
                for (a, b) in e.iter_mut().zip(v) {
                    *a = a.saturating_add(b);
                }
            }
            by.into_iter().map(|(k, v)| (0, k, v)).collect()
        }
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
    let distinct = |f: fn(&Report) -> Option<&str>| {
        let mut v: Vec<String> = runs.iter().filter_map(|r| f(r).map(String::from)).collect();
        v.sort();
        v.dedup();
        v
    };
    SideInfo {
        label: label.to_string(),
        runs: runs.len(),
        kernel_release: distinct(|r| r.trace.kernel_release.as_deref()),
        machine: distinct(|r| r.trace.machine.as_deref()),
        allocator: distinct(|r| r.trace.allocator.map(|a| a.name())),
        symbols: runs.iter().all(|r| r.trace.symbols),
        callsite_filter: runs
            .first()
            .map(|r| r.trace.callsite_filter.clone())
            .unwrap_or_default(),
    }
}

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Force call-site matching by address (default: by function when every report has symbols).
    pub by_address: bool,
    /// Thresholds to evaluate.
    pub fail_on: Vec<Threshold>,
    /// `caller` or `stack`: compare the reports' groups instead of their call sites (every
    /// report must hold groups of that kind).
    pub group_by: crate::report::GroupBy,
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
    use crate::report::GroupBy;
    let matched_by = match opts.group_by {
        GroupBy::Caller | GroupBy::Stack => {
            let by = opts.group_by;
            if let Some(r) = all().find(|r| r.groups.as_ref().map(|g| g.by) != Some(by)) {
                return Err(Error::NoGroups {
                    side: r
                        .trace
                        .directory
                        .clone()
                        .unwrap_or_else(|| "a report".into()),
                    by: GroupBy::NAMES[by as usize].into(),
                });
            }
            if by == GroupBy::Caller {
                MatchBy::Caller
            } else {
                MatchBy::Stack
            }
        }
        _ if !opts.by_address && all().all(|r| r.trace.symbols) => MatchBy::Function,
        _ => MatchBy::Address,
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
                                MatchBy::Caller => "caller function name",
                                MatchBy::Stack => "stack, outer;…;call_site",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FunctionRow, TraceInfo};
    use crate::{analyze, AnalyzeOptions};

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
            ..DiffOptions::default()
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

    /// ppc64 6.1 (ELFv1) names functions '.foo', 6.12 (ELFv2) 'foo': the same function.
    #[test]
    fn dot_symbols_match_their_plain_names() {
        let a = report(&[(".foo", 3, 300, 384), (".bar", 1, 8, 8)]);
        let b = report(&[("foo", 3, 300, 768), ("bar", 1, 8, 8)]);
        let d = diff("a", &[a], "b", &[b], &DiffOptions::default()).unwrap();
        assert_eq!(d.callsites.len(), 1, "{:?}", d.callsites);
        assert_eq!(d.callsites[0].key, "foo");
        assert_eq!(d.callsites[0].status, Status::Changed);
        assert_eq!(d.callsites_unchanged, 1);
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

    /// `--group-by caller|stack`: the groups are the rows; a side without them is an error.
    #[test]
    fn groups_are_compared_when_asked_and_required() {
        use crate::report::GroupBy;
        use crate::synth::{synth_in_memory, SynthOptions};
        let side = |seed: u64, by: GroupBy| {
            let (input, _) = synth_in_memory(&SynthOptions {
                events: 4000,
                stack_depth: 3,
                seed,
                ..SynthOptions::default()
            });
            let o = AnalyzeOptions {
                group_by: by,
                ..AnalyzeOptions::default()
            };
            analyze(&input, &o).unwrap()
        };
        for by in [GroupBy::Caller, GroupBy::Stack] {
            let a = side(1, by);
            let opts = DiffOptions {
                group_by: by,
                ..DiffOptions::default()
            };
            let same = diff(
                "a",
                std::slice::from_ref(&a),
                "a",
                std::slice::from_ref(&a),
                &opts,
            )
            .unwrap();
            assert!(same.callsites.is_empty(), "{:?}", same.callsites);
            let rows = a.groups.as_ref().unwrap().rows.len() as u64;
            if by == GroupBy::Caller {
                assert_eq!(same.callsites_unchanged, rows);
            } else {
                // Stacks that differ only in offsets meet under one key.
                assert!(same.callsites_unchanged > 0 && same.callsites_unchanged <= rows);
            }
            let mut b = a.clone();
            let row = &mut b.groups.as_mut().unwrap().rows[0];
            row.stats.bytes_allocated += 4096;
            let key = row.key.clone();
            let d = diff("a", std::slice::from_ref(&a), "b", &[b], &opts).unwrap();
            assert_eq!(d.callsites.len(), 1, "{by:?}");
            // The text names its rows for what they are.
            let text = crate::diff_render::render_diff_text(&d, &Default::default());
            let heading = if by == GroupBy::Caller {
                "\nCALLERS: 1 changed"
            } else {
                "\nSTACKS: 1 changed"
            };
            assert!(text.contains(heading), "{text}");
            if by == GroupBy::Caller {
                assert_eq!(d.callsites[0].key, key);
            } else {
                assert!(
                    !d.callsites[0].key.contains("+0x"),
                    "{}",
                    d.callsites[0].key
                );
            }
            let plain = side(1, GroupBy::Callsite);
            assert!(matches!(
                diff("a", &[a], "p", &[plain], &opts),
                Err(Error::NoGroups { .. })
            ));
        }
    }
}
