// SPDX-License-Identifier: GPL-2.0-only
//! The kernel selftest's known answers (`kernel/selftest-expected/<kernel>-<allocator>.json`,
//! docs/contracts.md §3) held against a run's trace: the verdict `kmt run --workload selftest`
//! prints first, and the figures the end-to-end trials compare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kernels::{Allocator, KernelVersion};

/// The call sites of the kernel's selftest.
pub const SELFTEST_FILTER: &str = "kmemtrace_selftest_*";

/// The known answers' file of a kernel and allocator, relative to the repository.
pub fn expected_file(kernel: &KernelVersion, allocator: &Allocator) -> String {
    format!(
        "kernel/selftest-expected/{}-{}.json",
        kernel.name, allocator.name
    )
}

/// Why a run's selftest figures need not match the known answers, or None when they must: the
/// answers are those of kmt's own kernel, built from its series, running the sequence unchanged.
pub fn not_applicable(
    kernel_src: Option<&Path>,
    extra_fragments: &[PathBuf],
    append: &[String],
) -> Option<String> {
    if kernel_src.is_some() {
        return Some("the kernel is built from --kernel-src".into());
    }
    if !extra_fragments.is_empty() {
        return Some("--config changes the kernel".into());
    }
    append
        .iter()
        .find(|a| a.starts_with("kmemtrace.selftest_grow"))
        .map(|a| format!("--append {a} changes the sequence"))
}

/// The summary figures expected on `arch`: `identical` on every architecture, then the
/// architecture's own (`per_arch`). A missing or empty section is an error, never a check of
/// nothing.
pub fn expectations(known: &Value, arch: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut m = BTreeMap::new();
    for part in ["/identical".to_string(), format!("/per_arch/{arch}")] {
        let section = known
            .pointer(&part)
            .and_then(Value::as_object)
            .filter(|o| !o.is_empty())
            .ok_or_else(|| format!("no {part} object"))?;
        m.extend(section.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(m)
}

/// Every expected figure the `summary` (a report's, as JSON) does not have, one line each.
pub fn differences(summary: &Value, want: &BTreeMap<String, Value>) -> Vec<String> {
    want.iter()
        .filter_map(|(k, w)| match summary.get(k) {
            None => Some(format!(
                "{k}: expected {w}, but the summary has no such field"
            )),
            Some(g) if g != w => Some(format!("{k}: expected {w}, got {g}")),
            Some(_) => None,
        })
        .collect()
}

/// A selftest run's figures against its known answers.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The known answers' file, relative to the repository.
    pub file: String,
    /// How many figures were compared.
    pub checked: usize,
    /// The figures that differ, one line each (empty: the answers hold).
    pub differences: Vec<String>,
    /// The report of the selftest's own call sites.
    pub report_text: String,
}

impl Verdict {
    /// The verdict's first line.
    pub fn headline(&self) -> String {
        if self.differences.is_empty() {
            format!(
                "selftest: the known answers hold ({} figures of {})",
                self.checked, self.file
            )
        } else {
            format!(
                "selftest: {} of {} figures differ from {}:\n  {}",
                self.differences.len(),
                self.checked,
                self.file,
                self.differences.join("\n  ")
            )
        }
    }
}

/// Analyses the selftest's records of `trace_dir` and holds them against the known answers of
/// `kernel` and `allocator` on `arch`.
pub fn check(
    repo: &Path,
    kernel: &KernelVersion,
    allocator: &Allocator,
    arch: &str,
    trace_dir: &Path,
) -> Result<Verdict, String> {
    let file = expected_file(kernel, allocator);
    let path = repo.join(&file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let known: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let want = expectations(&known, arch).map_err(|e| format!("{}: {e}", path.display()))?;
    let input = kmemtrace::load_dir(trace_dir).map_err(|e| e.to_string())?;
    let opts = kmemtrace::AnalyzeOptions {
        callsite_filter: vec![SELFTEST_FILTER.into()],
        ..kmemtrace::AnalyzeOptions::default()
    };
    let report = kmemtrace::analyze(&input, &opts).map_err(|e| e.to_string())?;
    let summary = serde_json::to_value(&report.summary).unwrap_or(Value::Null);
    Ok(Verdict {
        file,
        checked: want.len(),
        differences: differences(&summary, &want),
        report_text: kmemtrace::render_text(&report, &kmemtrace::TextOptions::default()),
    })
}

/// The verdict of a `kmt run` that ran the selftest and came back whole: `Ok(verdict)`, or
/// `Err(why)` when the answers do not apply to it or cannot be read. None for other workloads.
pub fn for_run(req: &crate::run::RunRequest, out_dir: &Path) -> Option<Result<Verdict, String>> {
    if req.workload != "selftest" {
        return None;
    }
    let k = &req.kernel;
    if let Some(why) = not_applicable(k.kernel_src.as_deref(), &k.extra_fragments, &req.append) {
        return Some(Err(why));
    }
    Some(check(
        &k.repo,
        k.kernel,
        k.allocator,
        k.arch.name,
        &out_dir.join(crate::share::TRACE_DIR),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expectations_are_the_identical_figures_and_the_arch_s_own() {
        let known = json!({
            "identical": {"allocs": 46},
            "per_arch": {"x86_64": {"bytes_allocated": 90808}, "arm64": {"bytes_allocated": 1}}
        });
        let want = expectations(&known, "x86_64").unwrap();
        assert_eq!(want.len(), 2);
        assert_eq!(want["bytes_allocated"], 90808);
        assert!(expectations(&known, "ppc64")
            .unwrap_err()
            .contains("/per_arch/ppc64"));
    }

    #[test]
    fn every_difference_is_named() {
        let want = expectations(
            &json!({"identical": {"allocs": 46, "frees": 46, "gone": 0}, "per_arch": {"a": {"x": 1}}}),
            "a",
        )
        .unwrap();
        let d = differences(&json!({"allocs": 45, "frees": 46, "x": 1}), &want);
        assert_eq!(
            d,
            [
                "allocs: expected 46, got 45",
                "gone: expected 0, but the summary has no such field"
            ]
        );
    }

    #[test]
    fn changed_kernels_and_sequences_are_not_held_to_the_answers() {
        assert_eq!(not_applicable(None, &[], &["quiet".into()]), None);
        assert!(not_applicable(Some(Path::new("/src")), &[], &[]).is_some());
        assert!(not_applicable(None, &["x.config".into()], &[]).is_some());
        assert!(
            not_applicable(None, &[], &["kmemtrace.selftest_grow=8".into()])
                .unwrap()
                .contains("selftest_grow")
        );
    }
}
