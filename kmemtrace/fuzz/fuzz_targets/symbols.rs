// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz the kallsyms / System.map parser (`Symbols::parse`, fed as the loader feeds it, lossy
//! UTF-8): the table is sorted and every symbol resolves to itself; rebuilding it from its own
//! pairs gives the same table; a trace symbolised and filtered with it never panics.
#![no_main]

mod common;

use kmemtrace::{AnalyzeOptions, Symbols};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let syms = Symbols::parse(&String::from_utf8_lossy(data));
    let mut prev = 0u64;
    for (i, (addr, name)) in syms.iter().enumerate() {
        assert!(
            addr != 0 && (i == 0 || addr > prev),
            "table not sorted at {addr:#x}"
        );
        assert!(!name.is_empty() && !name.contains(char::is_whitespace));
        assert_eq!(syms.resolve(addr), Some((name, 0)));
        assert!(syms.describe(addr.saturating_add(1)).is_some());
        prev = addr;
    }
    assert_eq!(Symbols::from_pairs(syms.iter()), syms);
    let mut input = common::small_trace();
    input.symbols = Some(syms);
    for filter in [vec![], vec!["*".to_string()], vec!["[a-m]*".to_string()]] {
        let opts = AnalyzeOptions {
            callsite_filter: filter,
            ..common::single_thread()
        };
        if let Ok(r) = kmemtrace::analyze(&input, &opts) {
            assert_eq!(r.summary.records, 300);
            let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
        }
    }
});
