// SPDX-License-Identifier: GPL-2.0-only
//! `kmemtrace check`: kmemtrace_check done properly. Validates each CPU file on its own (framing,
//! ids, sizes, sequence numbers increasing in serial-number order, partial records at the end)
//! and the files together (one byte order, agreeing with `meta.json`), and lists every problem
//! with file and byte offset.

use crate::abi::ByteOrder;
use crate::error::nothing_decodes;
use crate::exit_code::KmemtraceExitCode;
use crate::input::{self, LoadOptions, TraceInput};
use crate::scan::{self, DamageRegion, Item, Scanner};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Problems listed per file at most (all are counted).
pub const MAX_PROBLEMS_PER_FILE: usize = 10_000;

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Bytes that do not decode as records.
    BadRecord,
    /// A partial record at the end of the file.
    PartialRecord,
    /// Damage with no good record within the resynchronisation limit; the rest was not examined.
    Unexamined,
    /// A well-framed record with an unknown event or type id.
    UnknownRecord,
    /// A sequence number not greater than the previous one in the same file.
    SeqNotIncreasing,
    /// The file's byte order differs from the other files' (or from `meta.json`).
    ByteOrder,
    /// The file's size differs from the `bytes` `meta.json` gives for its CPU (a truncated or
    /// incomplete copy); the offset is where the shorter of the two ends.
    SizeMismatch,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// File.
    pub file: String,
    /// Byte offset in it.
    pub offset: u64,
    /// Kind.
    pub kind: ProblemKind,
    /// Words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.file, self.offset, self.message)
    }
}

/// What was checked in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedFile {
    /// File.
    pub file: String,
    /// Size.
    pub bytes: u64,
    /// Known records.
    pub records: u64,
    /// Detected byte order (`None`: empty or undecodable).
    pub byte_order: Option<ByteOrder>,
    /// First and last sequence numbers.
    pub first_seq: Option<i32>,
    /// Last sequence number.
    pub last_seq: Option<i32>,
    /// Problems found (may exceed the listed ones).
    pub problems: u64,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Files checked.
    pub files: Vec<CheckedFile>,
    /// Problems, by file then offset.
    pub problems: Vec<Problem>,
    /// Inputs that could not be used at all (missing, unreadable, no trace files, not one record
    /// decodes), as messages naming the file.
    pub unusable: Vec<String>,
}

impl CheckReport {
    /// [`KmemtraceExitCode::OK`] clean, [`KmemtraceExitCode::PROBLEMS_FOUND`] problems found,
    /// [`KmemtraceExitCode::BAD_INPUT`] unusable input (wins over problems).
    pub fn exit_code(&self) -> i32 {
        if !self.unusable.is_empty() {
            KmemtraceExitCode::BAD_INPUT
        } else if self.files.iter().any(|f| f.problems > 0) {
            KmemtraceExitCode::PROBLEMS_FOUND
        } else {
            KmemtraceExitCode::OK
        }
    }

    /// The report as pretty JSON (the `Serialize` derive's field names), with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a CheckReport serialises");
        s.push('\n');
        s
    }
}

/// Check paths (trace directories or CPU files). Never fails: what cannot be read is listed in
/// [`CheckReport::unusable`].
pub fn check(paths: &[PathBuf]) -> CheckReport {
    let mut input = TraceInput::default();
    let mut unusable = Vec::new();
    if paths.is_empty() {
        unusable.push("no path given".to_string());
    }
    for p in paths {
        match input::load(std::slice::from_ref(p), &LoadOptions::default()) {
            Ok(mut t) => {
                // Problems name files with their directory here: several may be checked.
                if let Some(dir) = &t.dir {
                    for f in &mut t.files {
                        f.name = dir.join(&f.name).display().to_string();
                    }
                }
                input.files.extend(t.files);
                // A metadata file describes its own directory only.
                if paths.len() == 1 {
                    input.meta = t.meta;
                }
            }
            Err(e) => unusable.push(crate::error::error_chain(&e)),
        }
    }
    let mut r = check_input(&input);
    unusable.append(&mut r.unusable);
    r.unusable = unusable;
    r
}

/// Check a loaded trace (pure). A trace with bytes of which not one record decodes is listed in
/// [`CheckReport::unusable`] (the message of [`crate::Error::NothingDecodes`]), its damage in
/// [`CheckReport::problems`].
pub fn check_input(input: &TraceInput) -> CheckReport {
    let detected: Vec<Option<ByteOrder>> = input
        .files
        .iter()
        .map(|f| scan::detect_byte_order(f.bytes()))
        .collect();
    let count = |o| detected.iter().filter(|d| **d == Some(o)).count();
    let majority = input.meta.as_ref().and_then(|m| m.byte_order).unwrap_or(
        if count(ByteOrder::Big) > count(ByteOrder::Little) {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        },
    );
    let jobs: Vec<usize> = (0..input.files.len()).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let mut results: Vec<(usize, Checked)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let jobs = &jobs;
                let detected = &detected;
                s.spawn(move || {
                    jobs.iter()
                        .filter(|j| *j % workers == w)
                        .map(|&i| (i, check_file(input, i, detected[i], majority)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|r| r.0);
    let mut report = CheckReport::default();
    let (mut records, mut first_damage) = (0u64, None);
    for (_, c) in results {
        records += c.file.records + c.unknown_records;
        first_damage = first_damage.or(c.first_damage);
        report.files.push(c.file);
        report.problems.extend(c.problems);
    }
    if let (0, Some(first)) = (records, &first_damage) {
        let files = report.files.iter().map(|f| (f.file.clone(), f.bytes));
        // The files' names already say where they lie.
        let order = detected
            .iter()
            .flatten()
            .next()
            .copied()
            .unwrap_or(majority);
        report
            .unusable
            .push(nothing_decodes(files, order, first, None).to_string());
    }
    report
}

/// What [`check_file`] found in one file.
struct Checked {
    file: CheckedFile,
    problems: Vec<Problem>,
    /// Well-framed records with unknown ids (they are problems, but the file decodes).
    unknown_records: u64,
    /// The first damaged region.
    first_damage: Option<DamageRegion>,
}

fn check_file(
    input: &TraceInput,
    i: usize,
    detected: Option<ByteOrder>,
    majority: ByteOrder,
) -> Checked {
    let f = &input.files[i];
    let b = f.bytes();
    let mut problems = Vec::new();
    let mut total = 0u64;
    let mut push = |problems: &mut Vec<Problem>, p: Problem| {
        total += 1;
        if problems.len() < MAX_PROBLEMS_PER_FILE {
            problems.push(p);
        }
    };
    if let Some(d) = detected.filter(|d| *d != majority) {
        push(
            &mut problems,
            Problem {
                file: f.name.clone(),
                offset: 0,
                kind: ProblemKind::ByteOrder,
                message: format!("byte order {d}, but the trace is {majority}"),
            },
        );
    }
    let meta_bytes = input
        .meta
        .as_ref()
        .and_then(|m| m.cpus.iter().find(|c| c.cpu == f.cpu))
        .and_then(|c| c.bytes);
    if let Some(mb) = meta_bytes.filter(|mb| *mb != b.len() as u64) {
        push(
            &mut problems,
            Problem {
                file: f.name.clone(),
                offset: mb.min(b.len() as u64),
                kind: ProblemKind::SizeMismatch,
                message: format!("meta.json says {mb} bytes, the file has {}", b.len()),
            },
        );
    }
    let order = detected.unwrap_or(majority);
    let (mut records, mut first, mut last) = (0u64, None, None::<i32>);
    let (mut unknown_records, mut first_damage) = (0u64, None);
    let mut sc = Scanner::new(b, order);
    let mut released = 0;
    while let Some(item) = sc.next() {
        if sc.pos() - released >= 32 << 20 {
            f.release(released, sc.pos());
            released = sc.pos();
        }
        match item {
            Item::Rec { offset, ev } => {
                records += 1;
                if first.is_none() {
                    first = Some(ev.seq);
                }
                if let Some(prev) = last {
                    if ev.seq.wrapping_sub(prev) <= 0 {
                        push(
                            &mut problems,
                            Problem {
                                file: f.name.clone(),
                                offset: offset as u64,
                                kind: ProblemKind::SeqNotIncreasing,
                                message: format!("seq {} after seq {prev}", ev.seq),
                            },
                        );
                    }
                }
                last = Some(ev.seq);
            }
            Item::Unknown {
                offset,
                event_id,
                type_id,
                size,
            } => {
                unknown_records += 1;
                push(
                    &mut problems,
                    Problem {
                        file: f.name.clone(),
                        offset: offset as u64,
                        kind: ProblemKind::UnknownRecord,
                        message: format!(
                        "unknown record: event_id {event_id} type_id {type_id} event_size {size}"
                    ),
                    },
                )
            }
            Item::Damage {
                offset,
                length,
                kind,
                detail,
            } => {
                if first_damage.is_none() {
                    first_damage = Some(DamageRegion {
                        file: f.name.clone(),
                        offset: offset as u64,
                        length: length as u64,
                        kind,
                        detail: detail.clone(),
                    });
                }
                push(
                    &mut problems,
                    Problem {
                        file: f.name.clone(),
                        offset: offset as u64,
                        kind: match kind {
                            scan::DamageKind::BadRecord => ProblemKind::BadRecord,
                            scan::DamageKind::PartialRecord => ProblemKind::PartialRecord,
                            scan::DamageKind::Unexamined => ProblemKind::Unexamined,
                        },
                        message: format!("{}: {length} bytes: {detail}", kind.name()),
                    },
                )
            }
        }
    }
    Checked {
        file: CheckedFile {
            file: f.name.clone(),
            bytes: b.len() as u64,
            records,
            byte_order: detected,
            first_seq: first,
            last_seq: last,
            problems: total,
        },
        problems,
        unknown_records,
        first_damage,
    }
}
