// SPDX-License-Identifier: GPL-2.0-only
//! What the targets share: single-threaded analysis options (a fuzzer runs on one core) and a
//! small, fixed, realistic trace to analyse with fuzzed side files.
#![allow(dead_code)]

use kmemtrace::{AnalyzeOptions, Report, SynthOptions, TraceInput};
use std::sync::OnceLock;

/// Everything on the calling thread, per-address rows on: every part of the analysis runs.
pub fn single_thread() -> AnalyzeOptions {
    AnalyzeOptions {
        parallel: false,
        alloc_rows: true,
        ..AnalyzeOptions::default()
    }
}

/// A 300-record, 2-CPU, 2-node synthetic trace with every anomaly, without metadata or symbols
/// (the targets add their own); the same bytes every run.
pub fn small_trace() -> TraceInput {
    static STREAMS: OnceLock<Vec<(u32, Vec<u8>)>> = OnceLock::new();
    let streams = STREAMS.get_or_init(|| {
        let (input, _) = kmemtrace::synth_in_memory(&SynthOptions {
            events: 300,
            cpus: 2,
            nodes: 2,
            callsites: 12,
            ..SynthOptions::default()
        });
        input
            .files
            .iter()
            .map(|f| (f.cpu, f.bytes().to_vec()))
            .collect()
    });
    TraceInput::from_streams(streams.iter().cloned())
}

/// The report of [`small_trace`] with its own metadata and symbols, and of a second run of
/// another seed: two sides for `diff`.
pub fn two_reports() -> &'static (Report, Report) {
    static REPORTS: OnceLock<(Report, Report)> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let run = |seed| {
            let (input, _) = kmemtrace::synth_in_memory(&SynthOptions {
                events: 300,
                cpus: 2,
                callsites: 12,
                seed,
                ..SynthOptions::default()
            });
            kmemtrace::analyze(&input, &single_thread()).expect("a synthetic trace analyses")
        };
        (run(1), run(2))
    })
}
