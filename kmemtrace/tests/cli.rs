//! The binary end to end: synth → report (the printed expected summary is reproduced),
//! convert → identical report, callsite filter, text output.

mod common;

use std::path::Path;

use common::kmemtrace;

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn synth_then_report_reproduces_the_expected_summary_and_convert_keeps_the_report() {
    let d = tempfile::tempdir().unwrap();
    let le = d.path().join("le");
    let (code, expected, err) = kmemtrace(&[
        "synth",
        "-o",
        p(&le),
        "--events",
        "50000",
        "--cpus",
        "3",
        "--wrap",
        "--lose",
        "4",
        "--nodes",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kmemtrace(&["report", "--format", "json", p(&le)]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["summary"], json(&expected)["summary"]);

    // Damage must not make the two encodings' reports differ (it is copied verbatim and named
    // relative to the trace directory).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(le.join("cpu1.out"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xee; 30]).unwrap();
    drop(f);
    let (_, out, _) = kmemtrace(&["report", "--format", "json", p(&le)]);
    let report = json(&out);
    assert_eq!(report["damage"]["regions"][0]["file"], "cpu1.out");

    let be = d.path().join("be");
    let (code, _, err) = kmemtrace(&["convert", "--endian", "big", p(&le), p(&be)]);
    assert_eq!(code, 0, "{err}");
    let meta = json(&std::fs::read_to_string(be.join("meta.json")).unwrap());
    assert_eq!(meta["byte_order"], "big");
    assert!(be.join("kallsyms").exists());
    let (_, out_be, _) = kmemtrace(&["report", "--format", "json", p(&be)]);
    let mut a = report.clone();
    let mut b = json(&out_be);
    assert_eq!(b["trace"]["byte_order"], "big");
    a["trace"] = serde_json::Value::Null;
    b["trace"] = serde_json::Value::Null;
    assert_eq!(a, b);

    // Never overwrite user data.
    let (code, _, err) = kmemtrace(&["convert", "--endian", "little", p(&be), p(&le)]);
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");
    let (code, _, _) = kmemtrace(&["synth", "-o", p(&le)]);
    assert_eq!(code, 2);
}

#[test]
fn callsite_filter_and_text_output() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    assert_eq!(kmemtrace(&["synth", "-o", p(&t), "--events", "20000"]).0, 0);
    let (code, out, err) = kmemtrace(&[
        "report",
        "--format",
        "json",
        "--callsite-filter",
        "alloc_skb",
        "--callsite-filter",
        "kstr*",
        p(&t),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    for f in r["functions"].as_array().unwrap() {
        let name = f["function"].as_str().unwrap();
        assert!(name == "alloc_skb" || name.starts_with("kstr"), "{name}");
    }
    assert!(r["summary"]["filtered_out"].as_u64().unwrap() > 0);

    let (code, out, _) = kmemtrace(&[
        "report",
        "--caller",
        "--alloc",
        "--sort",
        "frag,hits",
        "--lines",
        "5",
        p(&t),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Callsite") && out.contains("Alloc Ptr") && out.contains("SUMMARY"),
        "{out}"
    );
    let (code, _, err) = kmemtrace(&["report", "--sort", "nonsense", p(&t)]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown sort key"), "{err}");
}

#[test]
fn explicit_cpu_files_with_kallsyms_and_meta() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    let (_, expected, _) = kmemtrace(&[
        "synth",
        "-o",
        p(&t),
        "--events",
        "5000",
        "--cpus",
        "2",
        "--endian",
        "big",
    ]);
    let (code, out, err) = kmemtrace(&[
        "report",
        "--format",
        "json",
        "--kallsyms",
        p(&t.join("kallsyms")),
        "--meta",
        p(&t.join("meta.json")),
        p(&t.join("cpu0.out")),
        p(&t.join("cpu1.out")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["summary"], json(&expected)["summary"]);
    assert!(json(&out)["callsites"][0]["symbol"].is_string());
}
