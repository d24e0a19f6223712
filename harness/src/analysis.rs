// SPDX-License-Identifier: GPL-2.0-only
//! The seam to the `kmemtrace` crate: check and report a collected trace in-process and write
//! `check.txt`, `report.txt` and `report.json` beside it.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// The figures of a trace that decide a run's outcome and fill the matrix table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceFigures {
    /// Records decoded.
    pub events: u64,
    /// CPU files.
    pub cpus: usize,
    /// Bytes of trace.
    pub bytes: u64,
    /// `total_overruns` from the collector's metadata (bytes the kernel dropped).
    pub total_overruns: Option<u64>,
    /// Sequence numbers missing from the merged stream.
    pub lost_events: u64,
    /// Damaged regions found by the decoder.
    pub damaged_regions: u64,
    /// Problems `kmemtrace check` found.
    pub check_problems: usize,
    /// What `kmemtrace check` found, one entry per damaged file: its name and the kinds of
    /// problem in it ("cpu1.out: records read twice and zero-filled").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_damage: Vec<String>,
}

impl TraceFigures {
    /// Why the trace is not whole, or None when it is.
    pub fn damage_summary(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(o) = self.total_overruns.filter(|&o| o > 0) {
            why.push(format!(
                "{o} bytes overrun (raise kmemtrace.subbufs=N with --append)"
            ));
        }
        if self.total_overruns.is_none() {
            why.push("meta.json does not give total_overruns".to_string());
        }
        if self.lost_events > 0 {
            why.push(format!(
                "{} events lost (gaps in seq_num)",
                self.lost_events
            ));
        }
        if self.damaged_regions > 0 {
            why.push(format!("{} damaged regions", self.damaged_regions));
        }
        if self.check_problems > 0 {
            let mut s = format!(
                "{} problems found by kmemtrace check (check.txt)",
                self.check_problems
            );
            if !self.check_damage.is_empty() {
                s.push_str(": ");
                s.push_str(&self.check_damage.join(", "));
            }
            why.push(s);
        }
        (!why.is_empty()).then(|| format!("the trace is not whole: {}", why.join("; ")))
    }
}

/// [`TraceFigures::check_damage`] of a check: per file with problems, its name without the
/// directory and the kinds found in it, in the order check lists them.
pub fn check_damage(check: &kmemtrace::CheckReport) -> Vec<String> {
    check
        .kinds_by_file()
        .into_iter()
        .map(|(file, kinds)| {
            let name = Path::new(&file)
                .file_name()
                .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
            let kinds: Vec<&str> = kinds.iter().map(|k| k.words()).collect();
            format!("{name}: {}", kinds.join(" and "))
        })
        .collect()
}

/// What the analysis produced.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub figures: TraceFigures,
    pub report_text: String,
    pub report: kmemtrace::Report,
}

/// Why the analysis of a collected trace failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A result file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `kmemtrace check` found the trace unusable.
    #[error("the trace is unusable: {}", .0.join("; "))]
    Unusable(Vec<String>),
    /// The kmemtrace library could not load or analyse the trace.
    #[error(transparent)]
    Kmemtrace(#[from] kmemtrace::Error),
}

fn write(path: &Path, text: &str) -> Result<(), AnalysisError> {
    fs::write(path, text).map_err(|source| AnalysisError::Write {
        path: path.into(),
        source,
    })
}

/// Checks and reports the trace in `trace_dir`, writing the results into `out_dir`; the report's
/// rows grouped by `group_by` (by caller when the run traced call stacks).
pub fn analyse(
    trace_dir: &Path,
    out_dir: &Path,
    group_by: kmemtrace::GroupBy,
) -> Result<Analysis, AnalysisError> {
    let check = kmemtrace::check(&[trace_dir.to_path_buf()]);
    write(&out_dir.join("check.txt"), &check.render_text())?;
    if !check.unusable.is_empty() {
        return Err(AnalysisError::Unusable(check.unusable.clone()));
    }
    let input = kmemtrace::load_dir(trace_dir)?;
    let opts = kmemtrace::AnalyzeOptions {
        group_by,
        ..kmemtrace::AnalyzeOptions::default()
    };
    let report = kmemtrace::analyze(&input, &opts)?;
    let report_text = kmemtrace::render_text(&report, &kmemtrace::TextOptions::default());
    write(&out_dir.join("report.txt"), &report_text)?;
    write(&out_dir.join("report.json"), &report.to_json())?;
    let figures = TraceFigures {
        events: report.summary.records,
        cpus: report.trace.files.len(),
        bytes: report.trace.files.iter().map(|f| f.bytes).sum(),
        total_overruns: report.lost.total_overruns,
        lost_events: report.summary.lost_events,
        damaged_regions: report.summary.damaged_regions,
        check_problems: check.problems.len(),
        check_damage: check_damage(&check),
    };
    Ok(Analysis {
        figures,
        report_text,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_trace_has_no_damage_summary() {
        let f = TraceFigures {
            events: 10,
            cpus: 2,
            bytes: 480,
            total_overruns: Some(0),
            ..Default::default()
        };
        assert_eq!(f.damage_summary(), None);
    }

    /// A trace_damaged outcome says which damage, not only how many problems.
    #[test]
    fn the_damage_check_found_is_named_by_file_and_kind() {
        use kmemtrace::{CheckReport, Problem, ProblemKind};
        let p = |file: &str, kind| Problem {
            file: file.into(),
            offset: 4536,
            kind,
            length: Some(1776),
            message: String::new(),
        };
        let check = CheckReport {
            problems: vec![
                p("/runs/x/trace/cpu1.out", ProblemKind::RecordsReadTwice),
                p("/runs/x/trace/cpu1.out", ProblemKind::RecordsReadTwice),
                p("/runs/x/trace/cpu1.out", ProblemKind::ZeroFilled),
                p("/runs/x/trace/cpu0.out", ProblemKind::BytesMissing),
            ],
            ..CheckReport::default()
        };
        let f = TraceFigures {
            total_overruns: Some(0),
            check_problems: check.problems.len(),
            check_damage: check_damage(&check),
            ..Default::default()
        };
        assert_eq!(
            f.damage_summary().unwrap(),
            "the trace is not whole: 4 problems found by kmemtrace check (check.txt): \
             cpu1.out: records read twice and zero-filled, cpu0.out: bytes missing"
        );
    }

    #[test]
    fn overruns_and_losses_are_named() {
        let f = TraceFigures {
            total_overruns: Some(4096),
            lost_events: 3,
            ..Default::default()
        };
        let s = f.damage_summary().unwrap();
        assert!(
            s.contains("4096 bytes overrun") && s.contains("3 events lost"),
            "{s}"
        );
    }
}
