//! Fuzz the decoder and the whole analysis: arbitrary bytes, split into up to four CPU files,
//! in both byte orders, must never panic; `check` must agree with `report` on the record count.
#![no_main]

use kmemtrace::{analyze, check_input, AnalyzeOptions, ByteOrder, TraceInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmemtrace::detect_byte_order(data);
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let _ = kmemtrace::decode_all(data, order);
        let _ = kmemtrace::convert_bytes(data, order, order.swapped());
    }
    let (files, rest) = data.split_first().map_or((1, data), |(n, r)| ((*n % 4) as usize + 1, r));
    let chunk = rest.len() / files + 1;
    let input = TraceInput::from_streams(
        rest.chunks(chunk).enumerate().map(|(i, c)| (i as u32, c.to_vec())),
    );
    let _ = check_input(&input);
    for endian in [None, Some(ByteOrder::Little), Some(ByteOrder::Big)] {
        if let Ok(r) = analyze(&input, &AnalyzeOptions { endian, alloc_rows: true, ..Default::default() }) {
            let _ = kmemtrace::render_text(&r, &kmemtrace::TextOptions::default());
            let _ = r.to_json();
        }
    }
});
