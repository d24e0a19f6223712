// SPDX-License-Identifier: GPL-2.0-only
//! Golden reports (insta, explicit names) on `synth` traces, and the same trace in both byte
//! orders giving identical reports. Snapshots live in `kmemtrace/tests/snapshots/`.

use kmemtrace::{analyze, render_text, AnalyzeOptions, ByteOrder, SynthOptions, TextOptions};

fn synth_report(order: ByteOrder, alloc_rows: bool) -> kmemtrace::Report {
    let (input, out) = kmemtrace::synth_in_memory(&SynthOptions {
        events: 20_000,
        cpus: 2,
        nodes: 2,
        order,
        seed: 7,
        wrap: true,
        callsites: 60,
        max_live: 2000,
        lose: 3,
        anomalies: true,
        allocator: kmemtrace::rules::Allocator::Slub,
        stack_depth: 0,
    });
    let r = analyze(
        &input,
        &AnalyzeOptions {
            alloc_rows,
            ..AnalyzeOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.summary, out.summary);
    r
}

#[test]
fn synth_report_json_snapshot() {
    let mut r = synth_report(ByteOrder::Little, false);
    r.truncate_rows(8);
    insta::assert_json_snapshot!("synth_report_json", r);
}

#[test]
fn synth_report_text_snapshot() {
    let r = synth_report(ByteOrder::Big, true);
    let text = render_text(
        &r,
        &TextOptions {
            caller: true,
            alloc: true,
            functions: true,
            lines: 8,
            group_by: kmemtrace::GroupBy::Callsite,
        },
    );
    insta::assert_snapshot!("synth_report_text", text);
}

/// `--group-by caller` and `--group-by stack` on a trace with stacks of 3 frames.
#[test]
fn synth_groups_text_snapshot() {
    let (input, _) = kmemtrace::synth_in_memory(&SynthOptions {
        events: 5_000,
        seed: 7,
        callsites: 30,
        stack_depth: 3,
        ..SynthOptions::default()
    });
    for (name, by) in [
        ("synth_caller_text", kmemtrace::GroupBy::Caller),
        ("synth_stack_text", kmemtrace::GroupBy::Stack),
    ] {
        let r = analyze(
            &input,
            &AnalyzeOptions {
                group_by: by,
                ..AnalyzeOptions::default()
            },
        )
        .unwrap();
        let t = TextOptions {
            lines: 6,
            group_by: by,
            ..TextOptions::default()
        };
        let text = render_text(&r, &t);
        let table: String = text.split("\n\n").nth(1).unwrap_or_default().into();
        insta::assert_snapshot!(name, table);
    }
}

#[test]
fn same_trace_in_both_byte_orders_gives_identical_reports() {
    let le = synth_report(ByteOrder::Little, true);
    let be = synth_report(ByteOrder::Big, true);
    assert_eq!(le.without_trace(), be.without_trace());
    assert_eq!(le.trace.byte_order, Some(ByteOrder::Little));
    assert_eq!(be.trace.byte_order, Some(ByteOrder::Big));
}

#[test]
fn report_json_round_trips_through_serde() {
    let r = synth_report(ByteOrder::Little, true);
    let back: kmemtrace::Report = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn streamed_json_is_the_same_text() {
    let r = synth_report(ByteOrder::Little, true);
    let mut streamed = Vec::new();
    r.write_json(&mut streamed).unwrap();
    assert_eq!(String::from_utf8(streamed).unwrap(), r.to_json());
}

#[test]
fn summary_has_the_contract_fields() {
    let r = synth_report(ByteOrder::Little, false);
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["schema_version"], 1);
    for k in [
        "allocs",
        "frees",
        "bytes_requested",
        "bytes_allocated",
        "bytes_freed",
        "fragmentation_bytes",
        "cross_cpu_allocs",
        "cross_cpu_frees",
        "null_frees",
        "unknown_frees",
        "mismatched_frees",
        "live_allocations",
        "live_bytes",
        "lost_events",
    ] {
        assert!(v["summary"][k].is_i64() || v["summary"][k].is_u64(), "{k}");
    }
    for k in [
        "callsites",
        "functions",
        "types",
        "pages",
        "findings",
        "lost",
        "damage",
    ] {
        assert!(!v[k].is_null(), "{k}");
    }
}
