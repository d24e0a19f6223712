// SPDX-License-Identifier: GPL-2.0-only
//! Bad input: never a panic, never a hang, never unbounded memory; problems named with file and
//! byte offset; `check` exit codes 0/1/2.

mod common;

use common::*;
use kmemtrace::{
    analyze, check, check_input, load_dir, AllocType, AnalyzeOptions, ByteOrder, DamageKind, Error,
    FindingKind, ProblemKind, TraceInput,
};
use std::path::Path;

fn report(streams: Vec<(u32, Vec<u8>)>) -> kmemtrace::Report {
    analyze(&input(streams), &AnalyzeOptions::default()).unwrap()
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn write_dir(dir: &Path, streams: &[(u32, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (c, b) in streams {
        std::fs::write(dir.join(format!("cpu{c}.out")), b).unwrap();
    }
}

#[test]
fn truncated_file_salvages_whole_records_and_names_the_tail() {
    let mut t = small_trace(ByteOrder::Little);
    let len = t[0].1.len();
    t[0].1.truncate(len - 5);
    let r = report(t);
    assert_eq!(r.summary.records, 4);
    assert_eq!(r.damage.regions[0].kind, DamageKind::PartialRecord);
    assert_eq!(r.damage.regions[0].file, "cpu0.out");
    assert_eq!(r.damage.regions[0].offset, 48 + 48);
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::DamagedRecords));
}

/// 100 kB of xorshift bytes: no record decodes from them.
fn random_bytes() -> Vec<u8> {
    let mut seed = 0x1234_5678u64;
    (0..100_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn zero_and_ff_filled_and_random_files_are_damage_not_panics() {
    // Nothing decodes from them: an error naming the file and the first damage, not a report;
    // `check` lists the damage and calls the input unusable.
    for bytes in [vec![0u8; 100_000], vec![0xffu8; 100_000], random_bytes()] {
        match analyze(&input(vec![(0, bytes.clone())]), &AnalyzeOptions::default()) {
            Err(Error::NothingDecodes {
                files,
                bytes: n,
                first,
                ..
            }) => {
                assert_eq!(files, ["cpu0.out"]);
                assert_eq!((n, first.offset), (100_000, 0));
            }
            other => panic!("{other:?}"),
        }
        let c = check_input(&input(vec![(0, bytes.clone())]));
        assert_eq!(c.exit_code(), 2);
        assert!(
            c.unusable[0].contains("nothing decodes"),
            "{:?}",
            c.unusable
        );
        assert!(!c.problems.is_empty());
        // With one good record after them they are damage in a usable trace.
        let mut salvaged = bytes;
        salvaged.extend_from_slice(&encode(
            &[alloc(1, AllocType::Kmalloc, 1, 0x40, 8, 8)],
            ByteOrder::Little,
        ));
        let r = report(vec![(0, salvaged.clone())]);
        assert!(r.summary.damaged_bytes > 0);
        assert_eq!(r.summary.allocs, 1);
        let c = check_input(&input(vec![(0, salvaged)]));
        assert_eq!(c.exit_code(), 1);
    }
}

#[test]
fn event_size_zero_and_beyond_the_record() {
    let o = ByteOrder::Little;
    let good = encode(&[alloc(1, AllocType::Kmalloc, 1, 0x40, 8, 8)], o);
    let mut zero = good.clone();
    zero[2] = 0;
    zero[3] = 0;
    let mut tail = good.clone();
    tail.extend_from_slice(&good);
    let mut huge = good.clone();
    huge[2] = 0xff;
    huge[3] = 0xff;
    let mut beyond = huge.clone();
    beyond.extend_from_slice(&good);
    for (what, mut bytes) in [("zero", zero), ("huge", huge), ("beyond", beyond)] {
        bytes.extend_from_slice(&encode(&[alloc(2, AllocType::Kmalloc, 1, 0x80, 8, 8)], o));
        let r = report(vec![(0, bytes)]);
        assert_eq!(r.damage.regions[0].offset, 0, "{what}");
        assert!(
            r.summary.records >= 1,
            "{what}: the record after the damage is salvaged"
        );
    }
}

#[test]
fn unknown_ids_are_skipped_and_counted() {
    let o = ByteOrder::Big;
    let mut bytes = encode(&[alloc(1, AllocType::Kmalloc, 1, 0x40, 8, 8)], o);
    let mut unknown = encode(&[free(2, AllocType::Kmalloc, 1, 0x40)], o);
    unknown[1] = 9; // unknown type id
    bytes.extend_from_slice(&unknown);
    bytes.extend_from_slice(&encode(&[free(3, AllocType::Kmalloc, 1, 0x40)], o));
    let r = report(vec![(0, bytes.clone())]);
    assert_eq!(r.summary.unknown_records, 1);
    assert_eq!(r.summary.live_allocations, 0);
    let c = check_input(&input(vec![(0, bytes)]));
    assert_eq!(c.problems[0].kind, ProblemKind::UnknownRecord);
    assert_eq!(c.problems[0].offset, 48);
}

#[test]
fn mixed_byte_orders_are_refused_by_report_and_flagged_by_check() {
    let le = small_trace(ByteOrder::Little);
    let be = small_trace(ByteOrder::Big);
    let streams = vec![le[0].clone(), be[1].clone()];
    let e = analyze(&input(streams.clone()), &AnalyzeOptions::default()).unwrap_err();
    assert!(matches!(e, Error::MixedByteOrder { .. }));
    assert!(e.to_string().contains("cpu1.out"), "{e}");
    let c = check_input(&input(streams));
    assert!(c.problems.iter().any(|p| p.kind == ProblemKind::ByteOrder));
    assert_eq!(c.exit_code(), 1);
}

#[test]
fn duplicate_sequence_numbers_are_reported() {
    let o = ByteOrder::Little;
    let bytes = encode(
        &[
            alloc(1, AllocType::Kmalloc, 1, 0x40, 8, 8),
            alloc(1, AllocType::Kmalloc, 1, 0x80, 8, 8),
        ],
        o,
    );
    let r = report(vec![(0, bytes.clone())]);
    assert_eq!(r.summary.duplicate_seqs, 1);
    let c = check_input(&input(vec![(0, bytes)]));
    assert_eq!(c.problems[0].kind, ProblemKind::SeqNotIncreasing);
    assert_eq!(c.problems[0].offset, 48);
}

#[test]
fn empty_dir_and_missing_path() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_dir(d.path()),
        Err(Error::NoTraceFiles { .. })
    ));
    let missing = d.path().join("missing");
    let c = check(std::slice::from_ref(&missing));
    assert_eq!(c.exit_code(), 2);
    let (code, _, err) = kmemtrace(&["report", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing"), "{err}");
    let (code, _, _) = kmemtrace(&["report", d.path().to_str().unwrap()]);
    assert_eq!(code, 2);
}

#[test]
fn empty_cpu_files_are_clean() {
    let d = tempfile::tempdir().unwrap();
    write_dir(d.path(), &[(0, vec![]), (1, vec![])]);
    let r = analyze(&load_dir(d.path()).unwrap(), &AnalyzeOptions::default()).unwrap();
    assert_eq!(r.summary.records, 0);
    assert_eq!(check(&[d.path().to_path_buf()]).exit_code(), 0);
}

#[test]
fn huge_sparse_file_neither_hangs_nor_eats_memory() {
    let d = tempfile::tempdir().unwrap();
    let t = small_trace(ByteOrder::Little);
    write_dir(d.path(), &t);
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("cpu1.out"))
        .unwrap();
    f.set_len(64 << 30).unwrap();
    let start = std::time::Instant::now();
    let input = load_dir(d.path()).unwrap();
    let r = analyze(&input, &AnalyzeOptions::default()).unwrap();
    assert_eq!(r.summary.records, 5);
    let last = r.damage.regions.last().unwrap();
    assert_eq!(last.kind, DamageKind::Unexamined);
    assert_eq!(last.file, "cpu1.out");
    assert_eq!(r.trace.directory, Some(d.path().display().to_string()));
    let c = check(&[d.path().to_path_buf()]);
    assert_eq!(c.exit_code(), 1);
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
}

#[test]
fn check_exit_codes_0_1_2() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good");
    write_dir(&good, &small_trace(ByteOrder::Big));
    let (code, out, _) = kmemtrace(&["check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let bad = d.path().join("bad");
    let mut t = small_trace(ByteOrder::Big);
    t[1].1.extend_from_slice(&[0xff; 7]);
    write_dir(&bad, &t);
    let (code, out, _) = kmemtrace(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("cpu1.out at byte 72"), "{out}");
    let (code, _, _) = kmemtrace(&["check", d.path().join("nope").to_str().unwrap()]);
    assert_eq!(code, 2);
    // --strict turns damage into exit 1 for report, naming file and offset.
    let (code, _, err) = kmemtrace(&["report", "--strict", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cpu1.out at byte 72"), "{err}");
    let (code, _, err) = kmemtrace(&["report", bad.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(err.contains("warning"), "{err}");
}

#[test]
fn meta_byte_order_disagreement_is_a_finding() {
    let mut i: TraceInput = input(small_trace(ByteOrder::Little));
    i.meta = Some(kmemtrace::Meta {
        byte_order: Some(ByteOrder::Big),
        ..Default::default()
    });
    let r = analyze(&i, &AnalyzeOptions::default()).unwrap();
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::MetaMismatch));
    assert_eq!(r.trace.byte_order, Some(ByteOrder::Little));
}

#[test]
fn absurd_sizes_saturate_instead_of_overflowing() {
    let o = ByteOrder::Little;
    let recs: Vec<_> = (0..4)
        .map(|i| {
            alloc(
                i,
                AllocType::Pages,
                0x10,
                0x1000 + i as u64 * 4096,
                u64::MAX,
                u64::MAX - i as u64,
            )
        })
        .chain([
            free(9, AllocType::Pages, 0x10, 0x1000),
            alloc(10, AllocType::Kmalloc, 0x10, 0x9000, u64::MAX, 0),
        ])
        .collect();
    let mut i = input(vec![(0, encode(&recs, o))]);
    i.meta = Some(kmemtrace::Meta {
        page_size: Some(1),
        ..Default::default()
    });
    let r = analyze(
        &i,
        &AnalyzeOptions {
            alloc_rows: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.summary.bytes_requested, u64::MAX);
    assert_eq!(r.summary.short_allocs, 4);
    let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
}

#[test]
fn size_disagreeing_with_meta_json_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    kmemtrace::synth_to_dir(
        &kmemtrace::SynthOptions {
            events: 1000,
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    assert_eq!(check(std::slice::from_ref(&t)).exit_code(), 0);
    let f = t.join("cpu1.out");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 24 * 10)
        .unwrap();
    let c = check(std::slice::from_ref(&t));
    assert_eq!(c.exit_code(), 1);
    assert!(c
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::SizeMismatch && p.offset == len - 240));
    let r = analyze(&load_dir(&t).unwrap(), &AnalyzeOptions::default()).unwrap();
    let m = r
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::MetaMismatch)
        .unwrap();
    assert_eq!(m.count, 1);
    assert_eq!(m.examples[0].offset, Some(len - 240));
}

#[test]
fn check_of_a_missing_dir_reports_on_stderr() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing");
    let (code, out, err) = kmemtrace(&["check", p(&missing)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("{}: cannot access", missing.display())),
        "{err}"
    );
    assert_eq!(out, "unusable input\n");
    // JSON keeps the messages in the report as well (its schema), and says them on stderr.
    let (code, out, err) = kmemtrace(&["check", "--format", "json", p(&missing)]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot access"), "{err}");
    assert!(out.contains("cannot access"), "{out}");
}

#[test]
fn check_of_a_dir_without_cpu_files_reports_on_stderr() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("meta.json"), "{\"kmemtrace_meta\": 1}").unwrap();
    let (code, out, err) = kmemtrace(&["check", p(d.path())]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("{}: no cpu<N>.out", d.path().display())),
        "{err}"
    );
    assert!(!out.contains("cpu<N>"), "{out}");
}

#[test]
fn random_bytes_are_unusable_not_an_empty_trace() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    write_dir(&t, &[(0, random_bytes()), (1, vec![0xff; 5000])]);
    let cpu0 = t.join("cpu0.out").display().to_string();
    let cpu1 = t.join("cpu1.out").display().to_string();
    for args in [
        &["report"][..],
        &["report", "--strict"],
        &["report", "--format", "json"],
    ] {
        let (code, out, err) = kmemtrace(&[args, &[p(&t)]].concat());
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains("nothing decodes"), "{err}");
        assert!(err.contains(&format!("{cpu0}, {cpu1}")), "{err}");
        assert!(
            err.contains(&format!("byte 0 of {cpu0}: bad_record")),
            "{err}"
        );
    }
    // check: the damage is listed on stdout, the verdict is on stderr, exit 2.
    let (code, out, err) = kmemtrace(&["check", p(&t)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("nothing decodes") && err.contains(&cpu0),
        "{err}"
    );
    assert!(
        out.contains(&format!("{cpu0} at byte 0: bad_record")),
        "{out}"
    );
    assert!(out.ends_with("unusable input\n"), "{out}");
    // diff: either side.
    let good = d.path().join("good");
    write_dir(&good, &small_trace(ByteOrder::Little));
    for (base, new) in [(&t, &good), (&good, &t)] {
        let (code, out, err) = kmemtrace(&["diff", p(base), p(new)]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains(&format!("kmemtrace: {}: nothing decodes", t.display())),
            "{err}"
        );
    }
    // convert: refused, nothing written.
    let dst = d.path().join("dst");
    let (code, _, err) = kmemtrace(&["convert", "--endian", "big", p(&t), p(&dst)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing decodes"), "{err}");
    assert!(!dst.exists());
    assert_eq!(entries(d.path()), ["good", "t"]);
}

#[test]
fn a_report_json_of_an_undecodable_trace_is_an_unusable_diff_side() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    write_dir(&t, &[(0, vec![])]);
    let (code, out, _) = kmemtrace(&["report", "--format", "json", p(&t)]);
    assert_eq!(code, 0);
    // What an older kmemtrace wrote for 7 bytes of garbage.
    let mut r: serde_json::Value = serde_json::from_str(&out).unwrap();
    r["trace"]["files"][0]["bytes"] = 7.into();
    r["summary"]["damaged_bytes"] = 7.into();
    r["damage"] = serde_json::json!({"regions_total": 1, "bytes": 7, "regions": [
        {"file": "cpu0.out", "offset": 0, "length": 7, "kind": "partial_record", "detail": "7 bytes"}
    ]});
    let json = d.path().join("report.json");
    std::fs::write(&json, r.to_string()).unwrap();
    let (code, _, err) = kmemtrace(&["diff", p(&json), p(&t)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nothing decodes") && err.contains("cpu0.out"),
        "{err}"
    );
}

#[test]
fn an_empty_trace_is_not_damage() {
    // Zero-length CPU files and a valid meta.json: a trace in which nothing happened.
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    write_dir(&t, &[(0, vec![]), (1, vec![])]);
    let meta = kmemtrace::Meta {
        kmemtrace_meta: 1,
        byte_order: Some(ByteOrder::Big),
        ..Default::default()
    };
    std::fs::write(t.join("meta.json"), meta.to_json()).unwrap();
    let (code, out, err) = kmemtrace(&["report", "--format", "json", p(&t)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["summary"]["records"], 0);
    assert_eq!(r["summary"]["allocs"], 0);
    assert_eq!(r["damage"]["regions_total"], 0);
    let (code, out, err) = kmemtrace(&["check", p(&t)]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.ends_with("clean\n"), "{out}");
    let (code, _, err) = kmemtrace(&["diff", p(&t), p(&t)]);
    assert_eq!(code, 0, "{err}");
    let dst = d.path().join("le");
    let (code, _, err) = kmemtrace(&["convert", "--endian", "little", p(&t), p(&dst)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entries(&dst), ["cpu0.out", "cpu1.out", "meta.json"]);
}
