// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz `meta.json` (`Meta::from_json`, what loading a trace directory reads): any bytes give a
//! value or a typed error; a value rewritten (as `convert` does) reads back the same, and a trace
//! analysed and checked under it (any page size, nodes, byte order, file sizes) never panics.
#![no_main]

mod common;

use kmemtrace::Meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the loader's read_to_string refuses it: an I/O error naming the file
    };
    let Ok(meta) = Meta::from_json(text) else {
        return;
    };
    let json = meta.to_json();
    let again = Meta::from_json(&json).expect("a rewritten meta.json parses");
    assert_eq!(again, meta, "meta.json does not survive a rewrite");
    assert_eq!(again.to_json(), json);
    for cpu in 0..3 {
        assert!(meta.node_of(cpu) >= 0);
    }
    let mut input = common::small_trace();
    input.meta = Some(meta);
    let _ = kmemtrace::check_input(&input);
    if let Ok(r) = kmemtrace::analyze(&input, &common::single_thread()) {
        let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
        let _ = r.to_json();
    }
});
