// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz `report.json` as `kmemtrace diff` reads a side (`Report::from_json`): any bytes give a
//! report or a typed error; a report writes back to JSON that reads as the same report; and a
//! diff of a report against itself is clean (nothing changed, no gate crossed) and renders as
//! text, markdown, JSON and SVG.
#![no_main]

use kmemtrace::{diff, DiffOptions, Report, Threshold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = Report::from_json(data) else {
        return;
    };
    let again = Report::from_json(report.to_json().as_bytes()).expect("a written report parses");
    assert_eq!(again, report, "report.json does not survive a rewrite");
    let gates = [
        "bytes_allocated:0",
        "fragmentation_bytes:-0%",
        "type:kmalloc:allocs:+0",
        "order:0:allocs:0%",
        "callsite:*:hits:0",
    ];
    let opts = |with_callsite: bool| DiffOptions {
        by_address: false,
        fail_on: gates
            .iter()
            .filter(|g| with_callsite || !g.starts_with("callsite"))
            .map(|g| Threshold::parse(g).expect("a fixed gate parses"))
            .collect(),
        ..DiffOptions::default()
    };
    let one = std::slice::from_ref(&report);
    // A call-site gate is an error when no call site matches (a report without rows).
    let d = diff("base", one, "new", one, &opts(true))
        .or_else(|_| diff("base", one, "new", one, &opts(false)))
        .expect("a report diffs against itself");
    assert!(!d.changed(), "a report differs from itself");
    assert!(!d.gate_failed(), "a report crosses a gate against itself");
    let t = kmemtrace::diff::DiffTextOptions::default();
    let _ = kmemtrace::diff::render_diff_text(&d, &t);
    let _ = kmemtrace::diff::render_diff_markdown(&d, &t);
    let _ = d.to_json();
    let _ = kmemtrace::diff_svg(&d, &kmemtrace::PlotOptions::default());
});
