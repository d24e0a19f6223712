// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz `perf script` text through `kmemtrace import-perf` (`import_perf_in_memory`, the same
//! core the directory import uses): any bytes import without a panic, and what is imported is a
//! clean trace: every event decodes, nothing is lost, damaged or out of order, `check` finds no
//! problem, and the records are the lines `parse_line` accepts.
#![no_main]

mod common;

use kmemtrace::import_perf::{import_perf_in_memory, parse_line};
use kmemtrace::ByteOrder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let order = if data.first().is_some_and(|b| b & 1 == 1) {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let (input, n) = import_perf_in_memory(data, order);
    let parsed = data
        .split(|b| *b == b'\n')
        .filter(|l| parse_line(&String::from_utf8_lossy(l)).is_some())
        .count() as u64;
    assert_eq!(n, parsed);
    let check = kmemtrace::check_input(&input);
    assert!(check.problems.is_empty(), "{}", check.render_text());
    let r = kmemtrace::analyze(&input, &common::single_thread()).expect("an import analyses");
    let s = &r.summary;
    assert_eq!((s.records, s.allocs + s.frees), (n, n));
    assert_eq!(
        (s.lost_events, s.damaged_regions, s.unknown_records),
        (0, 0, 0)
    );
    assert_eq!(
        (s.duplicate_seqs, s.out_of_order_seqs, s.bad_seqs),
        (0, 0, 0)
    );
    let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
});
