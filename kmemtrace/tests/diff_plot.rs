// SPDX-License-Identifier: GPL-2.0-only
//! `diff` and the pictures: golden SVG and diff output on synthetic traces (insta), the SVG's
//! structure, and the `diff` command's exit codes (0 clean, 1 threshold crossed, 2 bad input).

mod common;

use common::kmemtrace;
use kmemtrace::diff::{render_diff_markdown, render_diff_text, DiffTextOptions, Status};
use kmemtrace::{analyze, AnalyzeOptions, ByteOrder, DiffOptions, PlotOptions, SynthOptions};

fn synth_opts(seed: u64) -> SynthOptions {
    SynthOptions {
        events: 20_000,
        cpus: 2,
        nodes: 1,
        order: ByteOrder::Little,
        seed,
        wrap: false,
        callsites: 40,
        max_live: 2000,
        lose: 0,
        anomalies: false,
        allocator: kmemtrace::rules::Allocator::Slub,
        stack_depth: 0,
    }
}

fn synth_report(seed: u64) -> kmemtrace::Report {
    let (input, _) = kmemtrace::synth_in_memory(&synth_opts(seed));
    analyze(&input, &AnalyzeOptions::default()).unwrap()
}

/// The base report with its biggest function grown by one size class and one function gone.
fn regressed(base: &kmemtrace::Report) -> kmemtrace::Report {
    let mut new = base.clone();
    let top = &mut new.functions[0].stats;
    top.bytes_requested += top.hits;
    top.bytes_allocated += 64 * top.hits;
    top.fragmentation_bytes = top.bytes_allocated as i64 - top.bytes_requested as i64;
    let gone = new.functions.pop().unwrap();
    new.summary.bytes_requested += new.functions[0].stats.hits;
    new.summary.bytes_allocated += 64 * new.functions[0].stats.hits;
    new.summary.bytes_allocated -= gone.stats.bytes_allocated;
    new.summary.bytes_requested -= gone.stats.bytes_requested;
    new.summary.fragmentation_bytes =
        new.summary.bytes_allocated as i64 - new.summary.bytes_requested as i64;
    new
}

/// Element name and class of every element, in document order: the SVG's structure.
fn structure(svg_text: &str) -> Vec<(String, String)> {
    use svg::node::element::tag::Type;
    use svg::parser::Event;
    let mut out = Vec::new();
    for ev in svg::read(svg_text).unwrap() {
        if let Event::Tag(name, Type::Start | Type::Empty, attrs) = ev {
            let class = attrs
                .get("class")
                .map(|c| c.to_string())
                .unwrap_or_default();
            out.push((name.to_string(), class));
        }
    }
    out
}

fn count(s: &[(String, String)], class: &str) -> usize {
    s.iter().filter(|(_, c)| c == class).count()
}

#[test]
fn report_svg_has_one_split_bar_per_call_site_and_two_bars_per_size_class() {
    let r = synth_report(7);
    let svg_text = kmemtrace::report_svg(
        &r,
        &PlotOptions {
            lines: 8,
            title: Some("synthetic trace, seed 7".into()),
        },
    );
    let s = structure(&svg_text);
    assert_eq!(s[0].0, "svg");
    assert_eq!(count(&s, "bar requested"), 8);
    assert_eq!(count(&s, "bar fragmentation"), 8);
    assert_eq!(count(&s, "bar requests"), r.sizes.len());
    assert_eq!(count(&s, "bar allocations"), r.sizes.len());
    assert!(svg_text.contains(&r.functions[0].function));
    insta::assert_snapshot!("synth_report_svg", svg_text);
}

#[test]
fn diff_names_the_grown_call_site_and_draws_it() {
    let base = synth_report(7);
    let new = regressed(&base);
    let grown = base.functions[0].function.clone();
    let gone = base.functions.last().unwrap().function.clone();
    let opts = DiffOptions {
        by_address: false,
        fail_on: vec![
            kmemtrace::Threshold::parse(&format!("callsite:{grown}:bytes_allocated:+10%")).unwrap(),
            kmemtrace::Threshold::parse("fragmentation_bytes:+1%").unwrap(),
        ],
        ..DiffOptions::default()
    };
    let d = kmemtrace::diff("base", &[base], "new", &[new], &opts).unwrap();
    assert!(d.changed());
    assert!(d.gate_failed());
    assert_eq!(d.callsites[0].key, grown);
    assert_eq!(d.callsites[0].status, Status::Changed);
    assert!(d
        .callsites
        .iter()
        .any(|r| r.key == gone && r.status == Status::Vanished));
    let t = DiffTextOptions { lines: 5 };
    insta::assert_snapshot!("synth_diff_text", render_diff_text(&d, &t));
    insta::assert_snapshot!("synth_diff_markdown", render_diff_markdown(&d, &t));
    let svg_text = kmemtrace::diff_svg(&d, &PlotOptions::default());
    let s = structure(&svg_text);
    assert_eq!(count(&s, "bar more"), 1);
    assert_eq!(count(&s, "bar less"), 1);
    insta::assert_snapshot!("synth_diff_svg", svg_text);
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn diff_command_exit_codes_and_inputs() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let (code, _, err) =
            kmemtrace(&["synth", "-o", p(dir), "--seed", seed, "--events", "20000"]);
        assert_eq!(code, 0, "{err}");
    }
    // Identical traces: clean, exit 0 even with a strict gate.
    let (code, out, _) = kmemtrace(&["diff", p(&a), p(&b), "--fail-on", "bytes_allocated:0"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: no significant change"), "{out}");
    // Different traces: the gate fires (exit 1); JSON says which.
    let (code, out, _) = kmemtrace(&[
        "diff",
        p(&a),
        p(&c),
        "--format",
        "json",
        "--fail-on",
        "bytes_allocated:0",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["gates"][0]["crossed"], true);
    // A report.json is a valid side; repeats via --base/--new.
    let (code, json, _) = kmemtrace(&["report", "--format", "json", p(&a)]);
    assert_eq!(code, 0);
    let rj = t.path().join("report.json");
    std::fs::write(&rj, json).unwrap();
    let (code, out, err) = kmemtrace(&[
        "diff",
        "--base",
        p(&rj),
        "--base",
        p(&a),
        "--new",
        p(&b),
        "--new",
        p(&b),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(2 runs"), "{out}");
    // A report.json made without a filter cannot be filtered afterwards.
    let (code, _, err) = kmemtrace(&["diff", "--callsite-filter", "fn_*", p(&rj), p(&b)]);
    assert_eq!(code, 2);
    assert!(err.contains("needs the trace directory"), "{err}");
    // Bad input: exit 2 with the reason.
    let (code, _, err) = kmemtrace(&["diff", p(&a), p(&b), "--fail-on", "bytes:+5%"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field"), "{err}");
    let (code, _, err) = kmemtrace(&["diff", p(&a), p(&t.path().join("missing"))]);
    assert_eq!(code, 2);
    assert!(err.contains("missing"), "{err}");
    let (code, _, _) = kmemtrace(&["diff", p(&a)]);
    assert_eq!(code, 2);
    // --svg writes an SVG, and never overwrites a file that is not one.
    let svg_path = t.path().join("d.svg");
    let (code, _, _) = kmemtrace(&["diff", p(&a), p(&c), "--svg", p(&svg_path)]);
    assert_eq!(code, 0);
    assert!(std::fs::read_to_string(&svg_path)
        .unwrap()
        .starts_with("<svg"));
    let cpu0 = a.join("cpu0.out");
    let before = std::fs::read(&cpu0).unwrap();
    let (code, _, err) = kmemtrace(&["report", p(&a), "--svg", p(&cpu0)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&cpu0).unwrap(), before);
}

#[test]
fn diff_with_itself_is_clean_and_swapping_sides_negates_every_delta() {
    let reports: Vec<kmemtrace::Report> = (1..=4).map(synth_report).collect();
    for (i, a) in reports.iter().enumerate() {
        let same = kmemtrace::diff(
            "a",
            std::slice::from_ref(a),
            "a",
            std::slice::from_ref(a),
            &DiffOptions::default(),
        )
        .unwrap();
        assert!(!same.changed(), "seed {} against itself", i + 1);
        for b in &reports[i + 1..] {
            let ab = kmemtrace::diff(
                "a",
                std::slice::from_ref(a),
                "b",
                std::slice::from_ref(b),
                &DiffOptions::default(),
            )
            .unwrap();
            let ba = kmemtrace::diff(
                "b",
                std::slice::from_ref(b),
                "a",
                std::slice::from_ref(a),
                &DiffOptions::default(),
            )
            .unwrap();
            let flat = |d: &kmemtrace::Diff| {
                let mut v: Vec<(String, String, i64)> = d
                    .summary
                    .iter()
                    .map(|f| (String::new(), f.field.clone(), f.delta.delta))
                    .collect();
                for r in d
                    .callsites
                    .iter()
                    .chain(&d.types)
                    .chain(&d.pages)
                    .chain(&d.sizes)
                {
                    v.extend(
                        r.fields
                            .iter()
                            .map(|f| (r.key.clone(), f.field.clone(), f.delta.delta)),
                    );
                }
                v.sort();
                v
            };
            let negated: Vec<_> = flat(&ba).into_iter().map(|(k, f, d)| (k, f, -d)).collect();
            assert_eq!(flat(&ab), negated);
            assert!(ab.changed());
            let appeared = |d: &kmemtrace::Diff| {
                d.callsites
                    .iter()
                    .filter(|r| r.status == Status::Appeared)
                    .count()
            };
            let vanished = |d: &kmemtrace::Diff| {
                d.callsites
                    .iter()
                    .filter(|r| r.status == Status::Vanished)
                    .count()
            };
            assert_eq!(appeared(&ab), vanished(&ba));
        }
    }
}
