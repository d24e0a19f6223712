// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz the `--fail-on` grammar (`Threshold::parse`): any text gives a threshold or a typed
//! error; a threshold's display is canonical (it parses back to the same threshold and displays
//! the same); and it evaluates on any delta and in a diff without a panic.
#![no_main]

mod common;

use kmemtrace::diff::Delta;
use kmemtrace::{diff, DiffOptions, Threshold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return; // clap refuses an argument that is not UTF-8
    };
    let Ok(t) = Threshold::parse(expr) else {
        return;
    };
    let shown = t.to_string();
    let again = Threshold::parse(&shown).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
    assert_eq!(again.to_string(), shown, "the display is not canonical");
    assert_eq!(
        Threshold {
            expr: t.expr.clone(),
            ..again
        },
        t,
        "{shown:?} is not {expr:?}"
    );
    for (b, n) in [
        (&[0][..], &[0][..]),
        (&[100], &[101]),
        (&[100, 90, 110], &[50, 40]),
        (&[i64::MIN], &[i64::MAX]),
        (&[i64::MAX], &[i64::MIN, 0]),
    ] {
        let _ = t.crossed_by(&Delta::of(b, n));
    }
    let (a, b) = common::two_reports();
    let _ = diff(
        "a",
        std::slice::from_ref(a),
        "b",
        std::slice::from_ref(b),
        &DiffOptions {
            by_address: false,
            fail_on: vec![t],
            ..DiffOptions::default()
        },
    );
});
