// SPDX-License-Identifier: GPL-2.0-only
//! Re-encoding a trace in the other byte order (`kmemtrace convert`): the cross-architecture
//! proof re-encodes a real trace and demands an identical report.
//!
//! Known records are decoded and re-encoded (feature chains get their `feature_size` fields
//! swapped, feature data is opaque and copied). Unknown records get their 24-byte common header
//! re-encoded and the rest copied. Damaged bytes are copied verbatim, so the damage report of the
//! converted trace names the same offsets.

use crate::abi::{self, field, swap_features, ByteOrder, FREE_SIZE};
use crate::dest::Staging;
use crate::error::{io_out, nothing_decodes, Error, Result};
use crate::input::{self, TraceInput};
use crate::scan::{self, DamageRegion, Item, Scanner};
use std::io::Write;
use std::path::Path;

/// Re-encode one stream from `from` to `to`, writing to `w`.
pub fn convert_stream<W: Write>(
    b: &[u8],
    from: ByteOrder,
    to: ByteOrder,
    w: &mut W,
) -> std::io::Result<()> {
    convert_counting(b, "", from, to, w).map(|_| ())
}

/// What [`convert_counting`] met in a stream.
struct Met {
    /// Records, known or unknown.
    records: u64,
    /// The first damaged region.
    first_damage: Option<DamageRegion>,
}

/// [`convert_stream`] of the file `name`, counting its records and keeping its first damage.
fn convert_counting<W: Write>(
    b: &[u8],
    name: &str,
    from: ByteOrder,
    to: ByteOrder,
    w: &mut W,
) -> std::io::Result<Met> {
    let mut met = Met {
        records: 0,
        first_damage: None,
    };
    let mut buf = Vec::with_capacity(1 << 16);
    for item in Scanner::new(b, from) {
        match item {
            Item::Rec { offset, .. } => {
                met.records += 1;
                let Some(h) = abi::header(b, offset, from) else {
                    continue;
                };
                let mut r = abi::decode_known(b, offset, h, from);
                if !r.features.is_empty() && from != to {
                    r.features = swap_features(&r.features, from).unwrap_or(r.features);
                }
                r.encode_into(to, &mut buf);
            }
            Item::Unknown { offset, size, .. } => {
                met.records += 1;
                let raw = &b[offset..offset + size];
                buf.extend_from_slice(&raw[..field::EVENT_SIZE]);
                let sw = |x: &[u8]| -> Vec<u8> {
                    if from == to {
                        x.to_vec()
                    } else {
                        x.iter().rev().copied().collect()
                    }
                };
                buf.extend_from_slice(&sw(&raw[field::EVENT_SIZE..field::SEQ_NUM]));
                buf.extend_from_slice(&sw(&raw[field::SEQ_NUM..field::CALL_SITE]));
                buf.extend_from_slice(&sw(&raw[field::CALL_SITE..field::PTR]));
                buf.extend_from_slice(&sw(&raw[field::PTR..FREE_SIZE]));
                buf.extend_from_slice(&raw[FREE_SIZE..]);
            }
            Item::Damage {
                offset,
                length,
                kind,
                detail,
            } => {
                if met.first_damage.is_none() {
                    met.first_damage = Some(DamageRegion {
                        file: name.to_string(),
                        offset: offset as u64,
                        length: length as u64,
                        kind,
                        detail,
                    });
                }
                buf.extend_from_slice(&b[offset..offset + length])
            }
        }
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    Ok(met)
}

/// Re-encode in memory.
pub fn convert_bytes(b: &[u8], from: ByteOrder, to: ByteOrder) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    convert_stream(b, from, to, &mut v).expect("writing to a Vec cannot fail");
    v
}

/// The byte order shared by the files of `input` (detected; `meta.json` or little-endian when no
/// file decodes). Files that disagree are an error.
pub fn trace_byte_order(input: &TraceInput) -> Result<ByteOrder> {
    let mut little = Vec::new();
    let mut big = Vec::new();
    for f in &input.files {
        match scan::detect_byte_order(f.bytes()) {
            Some(ByteOrder::Little) => little.push(f.name.clone()),
            Some(ByteOrder::Big) => big.push(f.name.clone()),
            None => {}
        }
    }
    match (little.is_empty(), big.is_empty()) {
        (false, false) => Err(Error::MixedByteOrder { little, big }),
        (false, true) => Ok(ByteOrder::Little),
        (true, false) => Ok(ByteOrder::Big),
        (true, true) => Ok(input
            .meta
            .as_ref()
            .and_then(|m| m.byte_order)
            .unwrap_or(ByteOrder::Little)),
    }
}

/// Rewrite the trace directory `src` (or a `kmt run` output directory's trace, see
/// [`input::trace_dir`]) into `dst` (which must not exist or be an empty directory) in byte order
/// `to`: every `cpu<N>.out`, `kallsyms` copied, `meta.json` with `byte_order`
/// updated. `dst` is written whole or not at all (see `dest.rs`): a trace of which not one record
/// decodes is [`Error::NothingDecodes`] and leaves it untouched, as a failed write does. Returns
/// the source byte order.
pub fn convert_dir(src: &Path, dst: &Path, to: ByteOrder) -> Result<ByteOrder> {
    let src = &input::trace_dir(src);
    let input = input::load_dir(src)?;
    let from = trace_byte_order(&input)?;
    let staging = Staging::new(dst)?;
    let (mut records, mut first_damage) = (0u64, None);
    for f in &input.files {
        // Loaded from one directory, a file is named by its file name.
        let mut w = staging.create(&f.name)?;
        let met = convert_counting(f.bytes(), &f.name, from, to, &mut w)
            .and_then(|met| w.flush().map(|_| met))
            .map_err(io_out(staging.shown(&f.name), "cannot write"))?;
        records += met.records;
        first_damage = first_damage.or(met.first_damage);
    }
    if let (0, Some(first)) = (records, &first_damage) {
        let files = input
            .files
            .iter()
            .map(|f| (f.name.clone(), f.bytes().len() as u64));
        return Err(nothing_decodes(files, from, first, Some(src)));
    }
    let k = src.join("kallsyms");
    if k.exists() {
        staging.copy(&k, "kallsyms")?;
    }
    if let Some(mut meta) = input.meta {
        meta.byte_order = Some(to);
        staging.write("meta.json", meta.to_json().as_bytes())?;
    }
    staging.commit()?;
    Ok(from)
}
