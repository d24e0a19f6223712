// SPDX-License-Identifier: GPL-2.0-only
//! The binary end to end: synth → report (the printed expected summary is reproduced),
//! convert → identical report, callsite filter, text output.

mod common;

use std::path::Path;

use common::{entries, kmemtrace, tree};

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

const PERF_LINES: &str = "\
ls 7 [000] 1.000001: kmem:kmalloc: call_site=f+0x10 ptr=0xffff888100001000 bytes_req=30 bytes_alloc=32 gfp_flags=GFP_KERNEL node=-1 accounted=false
ls 7 [001] 1.000002: kmem:kfree: call_site=g+0x8 ptr=0xffff888100001000
";

/// Runs the `kmemtrace` binary with files limited to `blocks` blocks of the shell's `ulimit -f`
/// (512 or 1024 bytes) and SIGXFSZ ignored, so that a write beyond the limit fails with EFBIG: a
/// full disk, as an unprivileged test can have it.
fn kmemtrace_with_file_limit(blocks: u32, args: &[&str]) -> (i32, String, String) {
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\"");
    common::outcome(
        std::process::Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_kmemtrace")])
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn convert_copy_failure_exits_3() {
    // An empty trace with a large kallsyms: the CPU files and meta.json fit under the limit, the
    // copy of kallsyms does not.
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("cpu0.out"), b"").unwrap();
    std::fs::write(src.join("meta.json"), "{\"kmemtrace_meta\": 1}\n").unwrap();
    let kallsyms: String = (0..2000)
        .map(|i| format!("ffffffff8100{i:04x} T f{i}\n"))
        .collect();
    std::fs::write(src.join("kallsyms"), kallsyms).unwrap();
    for existing in [false, true] {
        let dst = d.path().join("dst");
        if existing {
            std::fs::create_dir(&dst).unwrap();
        }
        let (code, _, err) =
            kmemtrace_with_file_limit(1, &["convert", "--endian", "big", p(&src), p(&dst)]);
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains(&format!(
                "{}: cannot copy to",
                dst.join("kallsyms").display()
            )),
            "{err}"
        );
        // Nothing half-written: the destination is as it was, no staging directory is left.
        if existing {
            assert!(entries(&dst).is_empty());
            assert_eq!(entries(d.path()), ["dst", "src"]);
            std::fs::remove_dir(&dst).unwrap();
        } else {
            assert_eq!(entries(d.path()), ["src"]);
        }
    }
}

#[test]
fn synth_write_failure_exits_3_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dst = d.path().join("out");
    let (code, out, err) =
        kmemtrace_with_file_limit(1, &["synth", "-o", p(&dst), "--events", "5000"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("{}: cannot write", dst.join("cpu0.out").display())),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    assert!(entries(d.path()).is_empty());
}

#[test]
fn stdout_and_svg_write_failures_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    assert_eq!(kmemtrace(&["synth", "-o", p(&t), "--events", "2000"]).0, 0);
    let full = std::fs::File::create("/dev/full").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kmemtrace"))
        .args(["report", p(&t)])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write to stdout"));
    let svg = d.path().join("no/such/dir/r.svg");
    let (code, _, err) = kmemtrace(&["report", "--svg", p(&svg), p(&t)]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("{}: cannot write", svg.display())),
        "{err}"
    );
}

/// The destinations `synth`, `convert` and `import-perf` must refuse, made in `d`: (path as
/// given, what the message says).
fn refused_destinations(d: &Path) -> Vec<(String, &'static str)> {
    let full = d.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("mine"), b"precious").unwrap();
    std::fs::write(d.join("file"), b"precious").unwrap();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::os::unix::fs::symlink(&empty, d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
    vec![
        (p(&full).to_string(), "not empty"),
        (p(&d.join("file")).to_string(), "is a regular file"),
        (p(&d.join("link")).to_string(), "is a symbolic link"),
        (
            format!("{}/", d.join("link").display()),
            "is a symbolic link",
        ),
        (p(&d.join("dangling")).to_string(), "is a symbolic link"),
    ]
}

#[test]
fn refused_destination_is_not_written() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    assert_eq!(
        kmemtrace(&["synth", "-o", p(&src), "--events", "2000"]).0,
        0
    );
    let perf = d.path().join("perf.txt");
    std::fs::write(&perf, PERF_LINES).unwrap();
    let refused = refused_destinations(d.path());
    let before = tree(d.path());
    for (dst, says) in &refused {
        let dst = dst.as_str();
        for args in [
            &["synth", "--events", "2000", "-o", dst][..],
            &["convert", "--endian", "big", p(&src), dst],
            &["import-perf", p(&perf), "-o", dst],
        ] {
            let (code, out, err) = kmemtrace(args);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            assert!(err.contains(says), "{args:?}: {err}");
            assert!(out.is_empty(), "{args:?}: {out}");
            assert_eq!(tree(d.path()), before, "{args:?} changed something");
        }
    }
}

#[test]
fn import_perf_failing_half_way_leaves_the_destination_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let perf = d.path().join("perf.txt");
    // Enough events that the CPU file outgrows a one-block file limit half-way through.
    std::fs::write(&perf, PERF_LINES.repeat(400)).unwrap();
    for existing in [false, true] {
        let dst = d.path().join("dst");
        if existing {
            std::fs::create_dir(&dst).unwrap();
        }
        let (code, _, err) =
            kmemtrace_with_file_limit(1, &["import-perf", p(&perf), "-o", p(&dst)]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("cannot write"), "{err}");
        if existing {
            assert!(entries(&dst).is_empty());
            assert_eq!(entries(d.path()), ["dst", "perf.txt"]);
            std::fs::remove_dir(&dst).unwrap();
        } else {
            assert_eq!(entries(d.path()), ["perf.txt"]);
        }
    }
    // Input without one kmem event would make a trace without a CPU file: refused.
    std::fs::write(&perf, "ls 1 [000] 1.0: sched:sched_switch: a=b\n").unwrap();
    let dst = d.path().join("dst");
    let (code, _, err) = kmemtrace(&["import-perf", p(&perf), "-o", p(&dst)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no kmem event") && err.contains("1 lines"),
        "{err}"
    );
    assert!(!dst.exists());
    // And good input into an existing empty directory works.
    std::fs::write(&perf, PERF_LINES).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let (code, _, err) = kmemtrace(&["import-perf", p(&perf), "-o", p(&dst)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        entries(&dst),
        ["cpu0.out", "cpu1.out", "kallsyms", "meta.json"]
    );
    assert_eq!(entries(d.path()), ["dst", "perf.txt"]);
}

/// The man pages and completions come from the clap definitions; EXIT STATUS lists the table.
#[test]
fn man_pages_and_completions_are_generated() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kmemtrace"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, man) = run(&["man"]);
    assert_eq!(code, Some(0));
    assert!(man.contains(".TH kmemtrace 1") && man.contains(".SH \"EXIT STATUS\""));
    for (c, name, _) in kmemtrace::KmemtraceExitCode::TABLE {
        assert!(man.contains(&format!("\\fB{c} {name}\\fR")), "{name}");
    }
    let (_, report) = run(&["man", "report"]);
    assert!(report.contains(".TH kmemtrace-report 1") && report.contains("callsite\\-filter"));
    assert_eq!(run(&["man", "nosuch"]).0, Some(2));
    let (code, fish) = run(&["completions", "fish"]);
    assert_eq!(code, Some(0));
    assert!(fish.contains("complete -c kmemtrace"));
}

/// The allocator: synth writes it, the report judges by it and says so, `--allocator` overrides
/// it, a report.json judged by other rules is refused, and an unknown name is an input error.
#[test]
fn frees_are_judged_by_the_allocator_meta_json_names_or_the_option() {
    let d = tempfile::tempdir().unwrap();
    let slob = d.path().join("slob");
    let (code, expected, err) = kmemtrace(&[
        "synth",
        "-o",
        p(&slob),
        "--events",
        "200000",
        "--seed",
        "3",
        "--allocator",
        "slob",
    ]);
    assert_eq!(code, 0, "{err}");
    let want = json(&expected)["summary"].clone();
    assert!(want["cache_objects_kfreed"].as_u64().unwrap() > 0, "{want}");
    let (code, out, err) = kmemtrace(&["report", "--format", "json", p(&slob)]);
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    assert_eq!(r["summary"], want);
    assert_eq!(r["trace"]["allocator"], "slob");
    assert_eq!(r["trace"]["allocator_source"], "meta");
    // The same trace by SLUB's rules: the cache objects kfreed are no longer errors.
    let (code, out, err) = kmemtrace(&[
        "report",
        "--format",
        "json",
        "--allocator",
        "slub",
        p(&slob),
    ]);
    assert_eq!(code, 0, "{err}");
    let s = json(&out)["summary"].clone();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n(&s, "cache_objects_kfreed"),
        n(&want, "cache_objects_kfreed")
    );
    assert_eq!(
        n(&s, "mismatched_frees") + n(&want, "cache_objects_kfreed"),
        n(&want, "mismatched_frees")
    );
    let (code, text, err) = kmemtrace(&["report", "--allocator", "slub", p(&slob)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.starts_with(
            "Kernel synthetic on synthetic; frees judged by slub rules (from --allocator)"
        ),
        "{text}"
    );
    // A report.json judged by SLOB's rules cannot be re-judged: that needs the trace.
    let rj = d.path().join("report.json");
    let (_, out, _) = kmemtrace(&["report", "--format", "json", p(&slob)]);
    std::fs::write(&rj, out).unwrap();
    let (code, _, err) = kmemtrace(&["diff", "--allocator", "slab", p(&rj), p(&slob)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("judged by slob rules"), "{err}");
    // An allocator kmemtrace does not know, in meta.json: exit 2, asking for --allocator.
    let meta = slob.join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("\"slob\"", "\"slqb\"")).unwrap();
    let (code, _, err) = kmemtrace(&["report", p(&slob)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"slqb\"") && err.contains("--allocator"),
        "{err}"
    );
    let (code, _, err) = kmemtrace(&["report", "--allocator", "slab", p(&slob)]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn perf_kmem_short_options_raw_ip_and_quiet_verbose() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    let (code, _, err) = kmemtrace(&["synth", "-o", p(&t), "--events", "20000"]);
    assert_eq!(code, 0, "{err}");
    // -s and -l are --sort and --lines, as in perf kmem; ptr and hit are perf's sort keys.
    let (code, short, err) = kmemtrace(&["report", "-s", "hit,ptr", "-l", "4", p(&t)]);
    assert_eq!(code, 0, "{err}");
    let (_, long, _) = kmemtrace(&["report", "--sort", "hits,ptr", "--lines", "4", p(&t)]);
    assert_eq!(short, long);
    // The call-site table: the rows between the dashes under its header and the next dashes.
    let rows = |s: &str| {
        s.lines()
            .skip_while(|l| !l.contains("Callsite"))
            .skip(2)
            .take_while(|l| !l.starts_with("---"))
            .count()
    };
    assert_eq!(rows(&short), 4, "{short}");
    // The synthetic trace has kallsyms: names by default, raw addresses with --raw-ip.
    assert!(!short.contains(" 0xffffffff"), "{short}");
    let (code, raw, err) = kmemtrace(&["report", "--raw-ip", "-l", "4", p(&t)]);
    assert_eq!(code, 0, "{err}");
    assert!(raw.contains(" 0xffffffff"), "{raw}");
    let (code, _, err) = kmemtrace(&["report", "--raw-ip", "--kallsyms", "x", p(&t)]);
    assert_eq!(code, 2, "{err}");

    // Damage is a warning on stderr; -q keeps stderr for errors, and stdout is the same.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(t.join("cpu0.out"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xee; 30]).unwrap();
    drop(f);
    let (code, out, err) = kmemtrace(&["report", p(&t)]);
    assert_eq!(code, 0);
    assert!(
        err.contains("warning:") && err.contains("cpu0.out at byte"),
        "{err}"
    );
    let (code, quiet_out, quiet_err) = kmemtrace(&["-q", "report", p(&t)]);
    assert_eq!((code, quiet_err.as_str()), (0, ""));
    assert_eq!(quiet_out, out);
    let (_, verbose_out, verbose_err) = kmemtrace(&["report", "-v", p(&t)]);
    assert_eq!(verbose_out, out);
    assert!(
        verbose_err.contains("kmemtrace: read 20000 records")
            && verbose_err.contains("little-endian"),
        "{verbose_err}"
    );
}

/// `compare`: one column per side, labelled or named by its trace, a side of runs as their
/// median; JSON agrees with the report of each side; a side that is not a trace exits 2 and
/// names it.
#[test]
fn compare_puts_sides_in_columns() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for (dir, events) in [(&a, "3000"), (&b, "5000")] {
        let (code, _, err) = kmemtrace(&["synth", "-o", p(dir), "--events", events]);
        assert_eq!(code, 0, "{err}");
    }
    let (_, ra, _) = kmemtrace(&["report", "--format", "json", p(&a)]);
    let ra = json(&ra);
    let both = format!("runs={},{}", p(&a), p(&b));
    let (code, out, err) = kmemtrace(&["compare", p(&a), &both, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let t = json(&out);
    assert_eq!(t["sides"][0]["label"], "synthetic slub");
    assert_eq!(t["sides"][1]["label"], "runs");
    assert_eq!(t["sides"][1]["runs"], 2);
    let row = |name: &str| {
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["figure"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("records")["values"], serde_json::json!([3000, 3000]));
    assert_eq!(row("records")["ranges"][1], serde_json::json!([3000, 5000]));
    assert_eq!(
        row("peak_page_bytes")["values"][0],
        ra["memory"]["peak_page_bytes"]
    );
    let (code, out, _) = kmemtrace(&["compare", p(&a), p(&b), "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("| figure | synthetic slub | synthetic slub |"),
        "{out}"
    );
    let missing = d.path().join("missing");
    let (code, _, err) = kmemtrace(&["compare", p(&a), p(&missing)]);
    assert_eq!(code, 2);
    assert!(err.contains(p(&missing)), "{err}");
}

/// The stack outputs end to end, on a trace with stacks in both byte orders: the same folded
/// stacks and the same pprof profile from each, and the profile decoded by protoc against
/// pprof's own profile.proto (Debian's protobuf-compiler and golang-github-google-pprof-dev,
/// which `.ci/run` installs; without them, outside CI, only the rest is checked).
#[test]
fn folded_and_pprof_outputs_are_the_same_in_both_byte_orders_and_decode_with_protoc() {
    let d = tempfile::tempdir().unwrap();
    let le = d.path().join("le");
    let (code, expected, err) = kmemtrace(&[
        "synth",
        "-o",
        p(&le),
        "--events",
        "20000",
        "--stack-depth",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    let expected = json(&expected);
    let be = d.path().join("be");
    let (code, _, err) = kmemtrace(&["convert", "--endian", "big", p(&le), p(&be)]);
    assert_eq!(code, 0, "{err}");
    let pprof = |dir: &Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kmemtrace"))
            .args(["report", "--format", "pprof", p(dir)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let (a, b) = (pprof(&le), pprof(&be));
    assert_eq!(
        a, b,
        "the byte order of the trace must not show in the profile"
    );
    let (_, fa, _) = kmemtrace(&["report", "--format", "folded", p(&le)]);
    let (_, fb, _) = kmemtrace(&["report", "--format", "folded", p(&be)]);
    assert_eq!(fa, fb);
    let folded_total: u64 = fa
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(folded_total, expected["summary"]["bytes_allocated"]);

    let proto = Path::new("/usr/share/gocode/src/github.com/google/pprof/proto/profile.proto");
    let protoc = std::process::Command::new("protoc")
        .arg("--version")
        .output();
    if !proto.exists() || protoc.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must decode the profile: install protobuf-compiler and golang-github-google-pprof-dev"
        );
        eprintln!("protoc or profile.proto missing: the profile was not decoded");
        return;
    }
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut raw).unwrap();
    let mut child = std::process::Command::new("protoc")
        .args(["--decode", "perftools.profiles.Profile", "-I"])
        .arg(proto.parent().unwrap())
        .arg("profile.proto")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &raw).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    // Each sample's second value is its alloc_space; they add up to the bytes allocated.
    let mut space = 0u64;
    for sample in text.split("sample {").skip(1) {
        let values: Vec<u64> = sample
            .lines()
            .filter_map(|l| l.trim().strip_prefix("value: "))
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values.len(), 6, "{sample}");
        space += values[1];
    }
    assert_eq!(space, expected["summary"]["bytes_allocated"]);
    assert!(text.contains("string_table: \"alloc_space\""), "{text}");
    assert!(text.contains("string_table: \"do_syscall_64\""));
}

#[test]
fn a_kmt_run_directory_is_read_wherever_a_trace_directory_is() {
    // A run directory as `kmt run` leaves it: the trace in trace/, reports and logs beside it.
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("20260101-000000-x86_64-selftest");
    let trace = run.join("trace");
    let (code, _, err) = kmemtrace(&[
        "synth",
        "-o",
        p(&trace),
        "--events",
        "5000",
        "--stack-depth",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    for name in ["manifest.json", "report.json", "report.txt", "guest.log"] {
        std::fs::write(run.join(name), "not a trace\n").unwrap();
    }
    let same = |args: &[&str]| {
        let on = |dir: &Path| {
            let mut a = args.to_vec();
            a.push(p(dir));
            kmemtrace(&a)
        };
        let (from_trace, from_run) = (on(&trace), on(&run));
        assert_eq!(from_trace.0, 0, "{args:?}: {}", from_trace.2);
        assert_eq!(from_run, from_trace, "{args:?}");
    };
    same(&["report"]);
    same(&["report", "--format", "json"]);
    same(&["report", "--format", "folded"]);
    same(&["check"]);
    same(&["check", "--format", "json"]);
    let (code, _, err) = kmemtrace(&[
        "convert",
        "--endian",
        "big",
        p(&run),
        p(&d.path().join("be")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entries(&d.path().join("be")), entries(&trace));
    // A directory with neither says where it looked.
    let (code, _, err) = kmemtrace(&["report", p(d.path())]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no cpu<N>.out trace files in this directory or its trace/"),
        "{err}"
    );
}

/// `kmemtrace report … | head` must not panic: with stdout a pipe whose reader is already gone,
/// every command that prints ends its output quietly and exits with its own code.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    let u = d.path().join("u");
    let runs: [&[&str]; 7] = [
        &["synth", "-o", p(&t), "--events", "5000"],
        &["report", p(&t)],
        &["report", "--alloc", "--format", "json", p(&t)],
        &["report", "--format", "folded", p(&t)],
        &["check", p(&t)],
        &["man"],
        &["completions", "bash"],
    ];
    for args in runs.into_iter().chain([&["synth", "-o", p(&u)][..]]) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kmemtrace"))
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // What was written beside stdout is whole.
    assert_eq!(kmemtrace(&["check", p(&u)]).0, 0);
}
