// SPDX-License-Identifier: GPL-2.0-only
//! `report --format pprof`: the stacks as a gzip'd `profile.proto` (github.com/google/pprof,
//! `proto/profile.proto`), so that `pprof -top`, `-focus`, `-diff_base` and its web view work on
//! kernel allocations.
//!
//! One sample per stack (the call site first, then outward: pprof's leaf-first order), with six
//! values: `alloc_objects`/count, `alloc_space`/bytes, `requested_space`/bytes,
//! `wasted_space`/bytes (allocated − requested), `inuse_objects`/count and `inuse_space`/bytes
//! (what was still allocated at the end of the trace). One location per address, one function per
//! name; every location is in one mapping of the kernel's text. The encoder is the few lines of
//! protobuf wire format the message needs (varints and length-delimited fields, repeated scalars
//! packed as proto3 does).

use crate::render::frame_function;
use crate::report::{GroupBy, Report};
use std::collections::BTreeMap;
use std::io::Write;

/// The sample types, in the order of each sample's values.
pub const SAMPLE_TYPES: [(&str, &str); 6] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("requested_space", "bytes"),
    ("wasted_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A varint field (wire type 0); proto3 leaves zeros out.
fn field_u64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        varint(out, u64::from(field) << 3);
        varint(out, v);
    }
}

/// A length-delimited field (wire type 2).
fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A packed repeated varint field.
fn field_packed(out: &mut Vec<u8>, field: u32, vs: impl IntoIterator<Item = u64>) {
    let mut p = Vec::new();
    for v in vs {
        varint(&mut p, v);
    }
    if !p.is_empty() {
        field_bytes(out, field, &p);
    }
}

/// The string table: index 0 is "".
#[derive(Default)]
struct Strings {
    index: BTreeMap<String, u64>,
    list: Vec<String>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings::default();
        s.get("");
        s
    }

    fn get(&mut self, v: &str) -> u64 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.list.len() as u64;
        self.list.push(v.to_string());
        self.index.insert(v.to_string(), i);
        i
    }
}

/// The profile (not yet gzip'd) of a report grouped by stack; a report without stack groups
/// gives a profile without samples.
pub fn profile(r: &Report) -> Vec<u8> {
    let mut strings = Strings::new();
    let types: Vec<(u64, u64)> = SAMPLE_TYPES
        .iter()
        .map(|(t, u)| (strings.get(t), strings.get(u)))
        .collect();
    let mut locations: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // address -> (id, function id)
    let mut functions: BTreeMap<String, u64> = BTreeMap::new(); // name -> id
    let mut samples = Vec::new();
    let rows = r
        .groups
        .as_ref()
        .filter(|g| g.by == GroupBy::Stack)
        .map_or(&[][..], |g| &g.rows[..]);
    for row in rows {
        let mut ids = Vec::with_capacity(row.addrs.len());
        for (i, &a) in row.addrs.iter().enumerate() {
            let name = row
                .frames
                .get(i)
                .map_or("", |f| frame_function(f))
                .to_string();
            let next_fn = functions.len() as u64 + 1;
            let fid = *functions.entry(name).or_insert(next_fn);
            let next_loc = locations.len() as u64 + 1;
            ids.push(locations.entry(a).or_insert((next_loc, fid)).0);
        }
        let s = &row.stats;
        let values = [
            s.hits,
            s.bytes_allocated,
            s.bytes_requested,
            s.fragmentation_bytes.max(0) as u64,
            s.live_allocations,
            s.live_bytes,
        ];
        let mut m = Vec::new();
        field_packed(&mut m, 1, ids);
        field_packed(&mut m, 2, values);
        samples.push(m);
    }
    let names: BTreeMap<u64, u64> = functions
        .iter()
        .map(|(n, &id)| (id, strings.get(n)))
        .collect();

    let mut out = Vec::new();
    for (t, u) in &types {
        let mut m = Vec::new();
        field_u64(&mut m, 1, *t);
        field_u64(&mut m, 2, *u);
        field_bytes(&mut out, 1, &m);
    }
    for m in &samples {
        field_bytes(&mut out, 2, m);
    }
    // One mapping: the kernel's text, from the lowest address to past the highest.
    let lo = locations.keys().next().copied().unwrap_or(0);
    let hi = locations.keys().next_back().copied().unwrap_or(0);
    let mut m = Vec::new();
    field_u64(&mut m, 1, 1);
    field_u64(&mut m, 2, lo);
    field_u64(&mut m, 3, hi.saturating_add(1));
    field_u64(&mut m, 5, strings.get("[kernel.kallsyms]"));
    field_u64(&mut m, 7, 1); // has_functions
    field_bytes(&mut out, 3, &m);
    for (&addr, &(id, fid)) in &locations {
        let mut line = Vec::new();
        field_u64(&mut line, 1, fid);
        let mut m = Vec::new();
        field_u64(&mut m, 1, id);
        field_u64(&mut m, 2, 1);
        field_u64(&mut m, 3, addr);
        field_bytes(&mut m, 4, &line);
        field_bytes(&mut out, 4, &m);
    }
    for (&id, &name) in &names {
        let mut m = Vec::new();
        field_u64(&mut m, 1, id);
        field_u64(&mut m, 2, name);
        field_u64(&mut m, 3, name);
        field_bytes(&mut out, 5, &m);
    }
    let comment = strings.get(&format!(
        "kmemtrace report{}",
        r.trace
            .kernel_release
            .as_ref()
            .map_or(String::new(), |k| format!(", Linux {k}"))
    ));
    // default_sample_type: alloc_space.
    let default_type = types[1].0;
    for s in &strings.list {
        field_bytes(&mut out, 6, s.as_bytes());
    }
    field_packed(&mut out, 13, [comment]);
    field_u64(&mut out, 14, default_type);
    out
}

/// [`profile`] gzip'd, as pprof reads it.
pub fn report_pprof(r: &Report) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&profile(r));
    gz.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    /// A minimal reader of the fields written above, independent of the writer's helpers.
    fn fields(mut b: &[u8]) -> Vec<(u32, Result<u64, Vec<u8>>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = read_varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, key & 7);
            if wire == 0 {
                out.push((field, Ok(read_varint(&mut b))));
            } else {
                assert_eq!(wire, 2);
                let n = read_varint(&mut b) as usize;
                out.push((field, Err(b[..n].to_vec())));
                b = &b[n..];
            }
        }
        out
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let mut v = Vec::new();
        field_u64(&mut v, 1, 0);
        assert!(v.is_empty(), "proto3 leaves zeros out");
    }

    #[test]
    fn a_stacked_report_becomes_samples_locations_and_functions() {
        use crate::analyze::{analyze, AnalyzeOptions};
        use crate::synth::{synth_in_memory, SynthOptions};
        let (input, out) = synth_in_memory(&SynthOptions {
            events: 3000,
            stack_depth: 2,
            anomalies: false,
            ..SynthOptions::default()
        });
        let r = analyze(
            &input,
            &AnalyzeOptions {
                group_by: GroupBy::Stack,
                ..AnalyzeOptions::default()
            },
        )
        .unwrap();
        let p = fields(&profile(&r));
        let count = |f: u32| p.iter().filter(|x| x.0 == f).count();
        assert_eq!(count(1), 6, "sample types");
        assert_eq!(
            count(2),
            r.groups.as_ref().unwrap().rows.len(),
            "one sample per stack"
        );
        assert_eq!(count(3), 1, "one mapping");
        let strings: Vec<String> = p
            .iter()
            .filter(|x| x.0 == 6)
            .map(|x| String::from_utf8(x.1.clone().unwrap_err()).unwrap())
            .collect();
        assert_eq!(strings[0], "");
        assert!(strings.iter().any(|s| s == "alloc_space"));
        // The samples' alloc_space values add up to the bytes allocated.
        let mut space = 0;
        for (_, v) in p.iter().filter(|x| x.0 == 2) {
            let sample = fields(v.as_ref().unwrap_err());
            let values = sample
                .iter()
                .find(|x| x.0 == 2)
                .unwrap()
                .1
                .clone()
                .unwrap_err();
            let mut vals = Vec::new();
            let mut b = &values[..];
            while !b.is_empty() {
                vals.push(read_varint(&mut b));
            }
            assert_eq!(vals.len(), 6);
            space += vals[1];
        }
        assert_eq!(space, out.summary.bytes_allocated);
        let gz = report_pprof(&r);
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
    }
}
