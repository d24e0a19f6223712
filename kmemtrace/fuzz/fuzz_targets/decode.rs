// SPDX-License-Identifier: GPL-2.0-only
//! Fuzz the decoder and the whole analysis: arbitrary bytes, split into up to four CPU files,
//! in both byte orders, must never panic; `check` must agree with `report` on the record count.
#![no_main]

mod common;

use kmemtrace::{analyze, check_input, AnalyzeOptions, ByteOrder, TraceInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmemtrace::detect_byte_order(data);
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let _ = kmemtrace::decode_all(data, order);
        let _ = kmemtrace::convert_bytes(data, order, order.swapped());
    }
    let (files, rest) = data
        .split_first()
        .map_or((1, data), |(n, r)| ((*n % 4) as usize + 1, r));
    let chunk = rest.len() / files + 1;
    let input = TraceInput::from_streams(
        rest.chunks(chunk)
            .enumerate()
            .map(|(i, c)| (i as u32, c.to_vec())),
    );
    let check = check_input(&input);
    let mut rendered = false;
    for endian in [None, Some(ByteOrder::Little), Some(ByteOrder::Big)] {
        let opts = AnalyzeOptions {
            endian,
            ..common::single_thread()
        };
        // The renderers once, on the detected byte order's report (or the first that decodes):
        // rendering costs more than the analysis, and the three reports are alike.
        if let Ok(r) = analyze(&input, &opts) {
            if endian.is_none() {
                let checked: u64 = check.files.iter().map(|f| f.records).sum();
                assert_eq!(checked, r.summary.records, "check and report disagree");
            }
            if !rendered {
                rendered = true;
                let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
                let _ = kmemtrace::report_svg(&r, &kmemtrace::PlotOptions::default());
                let _ = r.to_json();
            }
        }
    }
});
