// SPDX-License-Identifier: GPL-2.0-only
//! `kmemtrace check`: kmemtrace_check done properly. Validates each CPU file on its own (framing,
//! ids, sizes, sequence numbers increasing in serial-number order, partial records at the end)
//! and the files together (one byte order, agreeing with `meta.json`), and lists every problem
//! with file and byte offset.
//!
//! When `meta.json` says how many bytes the kernel logged on a CPU (`logged_bytes`), the CPU's
//! file must hold exactly that many, and a difference is named by the damage that explains it:
//! records read twice (a sequence number going back to bytes that repeat earlier bytes of the
//! file) or zero-filled runs (zero bytes where a record should start); both are found from the
//! file's content in the same single pass, with or without `logged_bytes`.

use crate::abi::{ByteOrder, FREE_SIZE};
use crate::error::nothing_decodes;
use crate::exit_code::KmemtraceExitCode;
use crate::input::{self, LoadOptions, TraceInput};
use crate::scan::{self, DamageRegion, Item, Scanner, MAX_RESYNC_SCAN};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Problems listed per file at most (all are counted).
pub const MAX_PROBLEMS_PER_FILE: usize = 10_000;

/// The shortest run of zero bytes where a record should start that is reported as
/// [`ProblemKind::ZeroFilled`]: one record's worth (a free). Zero bytes never decode (an
/// `event_size` of 0), so a shorter run stays a bad or partial record.
pub const MIN_ZERO_RUN: usize = FREE_SIZE;

/// Every how many records that raise a file's highest sequence number one is indexed, to find the
/// first copy of a record read twice (see [`SeqIndex`]).
const SEQ_INDEX_STRIDE: u64 = 64;

/// How many records at most the search for a first copy walks from an index entry: it bounds
/// the cost of a file whose numbers jump about, which is then not found to repeat.
const SEQ_WALK_LIMIT: usize = 1024;

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
    /// Records read twice: at the offset a sequence number goes back, and the bytes from there
    /// (`length` of them, whole records) repeat bytes the file already held. Also the kind of the
    /// file's accounting problem (more bytes than `logged_bytes`) when such repeats, alone or with
    /// zero-filled runs, make up the difference exactly and are the larger part.
    RecordsReadTwice,
    /// A run of zero bytes (`length` of them, at least [`MIN_ZERO_RUN`]) where a record should
    /// start; in place of the bad record the run would otherwise be. Also the kind of the
    /// accounting problem when zero-filled runs make up the difference and are the larger part.
    ZeroFilled,
    /// The file holds fewer bytes than the kernel logged on its CPU (`meta.json` `logged_bytes`);
    /// the offset is the file's end, `length` the bytes missing.
    BytesMissing,
    /// The file holds more bytes than the kernel logged on its CPU, and records read twice and
    /// zero-filled runs do not make up the difference exactly; the offset is where the logged
    /// bytes end, `length` the bytes too many.
    BytesUnaccounted,
}

impl ProblemKind {
    /// The kind in a few words, for summaries ("records read twice").
    pub fn words(self) -> &'static str {
        match self {
            ProblemKind::BadRecord => "bad record",
            ProblemKind::PartialRecord => "partial record",
            ProblemKind::Unexamined => "not examined",
            ProblemKind::UnknownRecord => "unknown record",
            ProblemKind::SeqNotIncreasing => "seq not increasing",
            ProblemKind::ByteOrder => "byte order",
            ProblemKind::SizeMismatch => "size differs from meta.json",
            ProblemKind::RecordsReadTwice => "records read twice",
            ProblemKind::ZeroFilled => "zero-filled",
            ProblemKind::BytesMissing => "bytes missing",
            ProblemKind::BytesUnaccounted => "bytes unaccounted for",
        }
    }
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
    /// Bytes concerned, for the kinds that say (records read twice, zero-filled, and the bytes
    /// missing or too many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
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
    /// Bytes the kernel logged on the file's CPU (`meta.json` `logged_bytes`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_bytes: Option<u64>,
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
    /// The kinds of problem found in each file with problems, each kind once, in the order of
    /// the file's listed problems: what a one-line summary names.
    pub fn kinds_by_file(&self) -> Vec<(String, Vec<ProblemKind>)> {
        let mut out: Vec<(String, Vec<ProblemKind>)> = Vec::new();
        for p in &self.problems {
            let i = match out.iter().position(|(f, _)| *f == p.file) {
                Some(i) => i,
                None => {
                    out.push((p.file.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            if !out[i].1.contains(&p.kind) {
                out[i].1.push(p.kind);
            }
        }
        out
    }

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
                length: None,
                message: format!("byte order {d}, but the trace is {majority}"),
            },
        );
    }
    let meta_cpu = input
        .meta
        .as_ref()
        .and_then(|m| m.cpus.iter().find(|c| c.cpu == f.cpu));
    let meta_bytes = meta_cpu.and_then(|c| c.bytes);
    if let Some(mb) = meta_bytes.filter(|mb| *mb != b.len() as u64) {
        push(
            &mut problems,
            Problem {
                file: f.name.clone(),
                offset: mb.min(b.len() as u64),
                kind: ProblemKind::SizeMismatch,
                length: None,
                message: format!("meta.json says {mb} bytes, the file has {}", b.len()),
            },
        );
    }
    // The accounting problem goes here, after the file-wide ones, once the scan has found what
    // explains it.
    let accounting_at = problems.len();
    let logged = meta_cpu.and_then(|c| c.logged_bytes);
    let order = detected.unwrap_or(majority);
    let (mut records, mut first, mut last) = (0u64, None, None::<i32>);
    let (mut unknown_records, mut first_damage) = (0u64, None);
    let mut seqs = SeqIndex::default();
    let mut found = Found::default();
    // Records before this offset lie in a repeat already reported.
    let mut repeat_end = 0usize;
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
                if let Some(prev) = last.filter(|p| ev.seq.wrapping_sub(*p) <= 0) {
                    if offset >= repeat_end {
                        let p = match read_twice(b, order, &seqs, offset, ev.seq) {
                            Some((earlier, length)) => {
                                repeat_end = offset + length;
                                found.read_twice.add(offset, length);
                                Problem {
                                    file: f.name.clone(),
                                    offset: offset as u64,
                                    kind: ProblemKind::RecordsReadTwice,
                                    length: Some(length as u64),
                                    message: format!(
                                        "records read twice: {} bytes repeat those from byte \
                                         {earlier} (seq {} after seq {prev})",
                                        grouped(length as u64),
                                        ev.seq
                                    ),
                                }
                            }
                            None => Problem {
                                file: f.name.clone(),
                                offset: offset as u64,
                                kind: ProblemKind::SeqNotIncreasing,
                                length: None,
                                message: format!("seq {} after seq {prev}", ev.seq),
                            },
                        };
                        push(&mut problems, p);
                    }
                }
                seqs.note(offset, ev.seq);
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
                        length: None,
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
                // Zero bytes where a record should start: counted only as far as the scanner
                // searched (an unexamined rest stays unexamined).
                let zeros = zero_run(&b[offset..offset + length.min(MAX_RESYNC_SCAN)]);
                let (offset, length, detail) = if zeros < MIN_ZERO_RUN {
                    (offset, length, detail)
                } else {
                    found.zeros.add(offset, zeros);
                    let to_the_end = if offset + zeros == b.len() {
                        ", to the end of the file"
                    } else {
                        ""
                    };
                    push(
                        &mut problems,
                        Problem {
                            file: f.name.clone(),
                            offset: offset as u64,
                            kind: ProblemKind::ZeroFilled,
                            length: Some(zeros as u64),
                            message: format!(
                                "zero-filled: {} zero bytes where a record should start{to_the_end}",
                                grouped(zeros as u64)
                            ),
                        },
                    );
                    let rest = offset + zeros;
                    (rest, length - zeros, scan::describe(b, rest, order))
                };
                if length > 0 {
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
                            length: None,
                            message: format!("{}: {length} bytes: {detail}", kind.name()),
                        },
                    )
                }
            }
        }
    }
    if let Some(p) = logged.and_then(|l| accounting(&f.name, b.len() as u64, l, &found)) {
        // Listed even past the limit: it is the file's verdict.
        total += 1;
        problems.insert(accounting_at, p);
    }
    Checked {
        file: CheckedFile {
            file: f.name.clone(),
            bytes: b.len() as u64,
            logged_bytes: logged,
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

/// Where one kind of explaining damage lies in a file, in sum.
#[derive(Debug, Default, Clone, Copy)]
struct Places {
    /// How many places.
    count: u64,
    /// The first place's offset.
    first: u64,
    /// Bytes in all of them.
    bytes: u64,
}

impl Places {
    fn add(&mut self, offset: usize, length: usize) {
        if self.count == 0 {
            self.first = offset as u64;
        }
        self.count += 1;
        self.bytes += length as u64;
    }

    /// "records read twice at byte 12345 and 2 more places"; `None` when there is none.
    fn describe(&self, what: &str) -> Option<String> {
        match self.count {
            0 => None,
            1 => Some(format!("{what} at byte {}", self.first)),
            2 => Some(format!("{what} at byte {} and 1 more place", self.first)),
            n => Some(format!(
                "{what} at byte {} and {} more places",
                self.first,
                n - 1
            )),
        }
    }
}

/// The damage found in a file that can explain bytes the kernel did not log.
#[derive(Debug, Default)]
struct Found {
    /// Records read twice (the repeated copies).
    read_twice: Places,
    /// Zero-filled runs.
    zeros: Places,
}

/// The accounting problem of a file that holds `held` bytes where the kernel logged `logged`:
/// `None` when they agree. Its kind names the damage that explains the difference (see
/// [`ProblemKind`]); the message reads e.g. "cpu1.out holds 1 049 096 bytes, the kernel logged
/// 524 808: 524 288 bytes more (records read twice at byte 12345)".
fn accounting(file: &str, held: u64, logged: u64, found: &Found) -> Option<Problem> {
    let places: Vec<String> = [
        found.read_twice.describe("records read twice"),
        found.zeros.describe("zero-filled"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let places = places.join(" and ");
    let explained = found.read_twice.bytes + found.zeros.bytes;
    let (kind, offset, why) = if held < logged {
        let why = if places.is_empty() {
            "bytes missing".to_string()
        } else {
            format!("bytes missing, besides {places}")
        };
        (ProblemKind::BytesMissing, held, why)
    } else if held > logged && explained == held - logged {
        let kind = if found.read_twice.bytes >= found.zeros.bytes {
            ProblemKind::RecordsReadTwice
        } else {
            ProblemKind::ZeroFilled
        };
        let first = [found.read_twice, found.zeros]
            .iter()
            .filter(|p| p.count > 0)
            .map(|p| p.first)
            .min()
            .unwrap_or(logged);
        (kind, first, places)
    } else if held > logged {
        let why = if places.is_empty() {
            "not accounted for".to_string()
        } else {
            format!(
                "not accounted for: {places} account for {}",
                grouped(explained)
            )
        };
        (ProblemKind::BytesUnaccounted, logged, why)
    } else {
        return None;
    };
    let name = std::path::Path::new(file)
        .file_name()
        .map_or(file.into(), |n| n.to_string_lossy());
    let (diff, more) = if held > logged {
        (held - logged, "more")
    } else {
        (logged - held, "fewer")
    };
    Some(Problem {
        file: file.to_string(),
        offset,
        kind,
        length: Some(diff),
        message: format!(
            "{name} holds {} bytes, the kernel logged {}: {} bytes {more} ({why})",
            grouped(held),
            grouped(logged),
            grouped(diff)
        ),
    })
}

/// `n` in decimal with its digits in groups of three, separated by spaces ("1 049 096").
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// How many zero bytes `b` starts with.
fn zero_run(b: &[u8]) -> usize {
    let mut n = 0;
    for chunk in b.chunks(4096) {
        match chunk.iter().position(|&x| x != 0) {
            Some(i) => return n + i,
            None => n += chunk.len(),
        }
    }
    n
}

/// Whether the record at `at`, whose sequence number `seq` went backwards, starts a copy of bytes
/// the file already held: `(where they were, how many bytes repeat)`, counting whole records only.
/// The earlier copy is the record where `seq` first appeared ([`SeqIndex::find`]); the repeat runs
/// as far as the bytes agree, through any further copies (a block read three times repeats,
/// from the second copy on, the bytes from the first on).
fn read_twice(
    b: &[u8],
    order: ByteOrder,
    seqs: &SeqIndex,
    at: usize,
    seq: i32,
) -> Option<(usize, usize)> {
    let earlier = seqs.find(b, order, at, seq)?;
    let same = common_prefix(b, earlier, at);
    let whole = whole_records(&b[at..at + same], order);
    (whole > 0).then_some((earlier, whole))
}

/// How many bytes from `b[at..]` equal those from `b[earlier..]` (`earlier < at`; the ranges may
/// overlap).
fn common_prefix(b: &[u8], earlier: usize, at: usize) -> usize {
    let n = b.len() - at;
    let mut i = 0;
    while i < n {
        let k = (n - i).min(4096);
        let (x, y) = (&b[earlier + i..earlier + i + k], &b[at + i..at + i + k]);
        if x == y {
            i += k;
        } else {
            return i + x.iter().zip(y).take_while(|(p, q)| p == q).count();
        }
    }
    n
}

/// The bytes of the whole records (known or unknown) `b` starts with.
fn whole_records(b: &[u8], order: ByteOrder) -> usize {
    let mut sc = Scanner::new(b, order);
    let mut end = 0;
    while let Some(Item::Rec { .. } | Item::Unknown { .. }) = sc.next() {
        end = sc.pos();
    }
    end
}

/// Where the records lie that raised a file's highest sequence number so far, every
/// [`SEQ_INDEX_STRIDE`]th of them: enough to find where a number first appeared without keeping
/// an entry per record (a 100 MB trace has millions). Numbers wrap, so they are kept relative to
/// the file's first one.
#[derive(Debug, Default)]
struct SeqIndex {
    /// The file's first sequence number.
    base: Option<i32>,
    /// The highest number so far, relative to `base`.
    top: i32,
    /// How many records raised `top`.
    raised: u64,
    /// (number relative to `base`, offset) of every [`SEQ_INDEX_STRIDE`]th record that raised
    /// `top`: increasing in both.
    entries: Vec<(i32, usize)>,
}

impl SeqIndex {
    /// Take the record at `offset` with number `seq`, the next in the file.
    fn note(&mut self, offset: usize, seq: i32) {
        let base = *self.base.get_or_insert(seq);
        let rel = seq.wrapping_sub(base);
        if self.raised > 0 && rel <= self.top {
            return;
        }
        if self.raised.is_multiple_of(SEQ_INDEX_STRIDE) {
            self.entries.push((rel, offset));
        }
        self.raised += 1;
        self.top = rel;
    }

    /// The offset of the first record before `before` numbered `seq`, if it raised the highest
    /// number when it came: found by walking at most [`SEQ_WALK_LIMIT`] records from the index
    /// entry at or below it.
    fn find(&self, b: &[u8], order: ByteOrder, before: usize, seq: i32) -> Option<usize> {
        let base = self.base?;
        let rel = seq.wrapping_sub(base);
        let i = self
            .entries
            .partition_point(|e| e.0 <= rel)
            .checked_sub(1)?;
        let from = self.entries[i].1;
        for item in Scanner::new(&b[from..before], order).take(SEQ_WALK_LIMIT) {
            if let Item::Rec { offset, ev } = item {
                match ev.seq.wrapping_sub(base).cmp(&rel) {
                    std::cmp::Ordering::Equal => return Some(from + offset),
                    std::cmp::Ordering::Greater => return None,
                    std::cmp::Ordering::Less => {}
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{AllocFields, AllocType, Record};
    use crate::input::CpuFile;
    use crate::meta::{Meta, MetaCpu};

    const ORDERS: [ByteOrder; 2] = [ByteOrder::Little, ByteOrder::Big];

    /// `n` records numbered from 0, an allocation (48 bytes) then its free (24 bytes) over and
    /// over: record `j` starts at byte `j / 2 * 72 + j % 2 * 48`.
    fn records(order: ByteOrder, n: i32) -> Vec<u8> {
        let mut v = Vec::new();
        for seq in 0..n {
            Record {
                type_id: AllocType::Kmalloc,
                seq,
                call_site: 0xffff_ffff_8100_0000 + (seq as u64 % 7) * 0x40,
                ptr: 0xffff_8880_0000_0000 + (seq as u64 / 2) * 64,
                alloc: (seq % 2 == 0).then_some(AllocFields {
                    bytes_req: 40,
                    bytes_alloc: 64,
                    gfp_flags: 0xcc0,
                    numa_node: -1,
                }),
                features: vec![],
            }
            .encode_into(order, &mut v);
        }
        v
    }

    /// A trace of one file, `cpu1.out`, whose `meta.json` says the collector wrote what it holds
    /// and the kernel logged `logged` bytes.
    fn trace(order: ByteOrder, bytes: Vec<u8>, logged: Option<u64>) -> TraceInput {
        let meta = Meta {
            byte_order: Some(order),
            cpus: vec![MetaCpu {
                cpu: 1,
                node: None,
                file: Some("cpu1.out".into()),
                bytes: Some(bytes.len() as u64),
                logged_bytes: logged,
                dropped_bytes: logged.map(|_| 0),
            }],
            ..Meta::default()
        };
        TraceInput {
            files: vec![CpuFile::from_bytes("cpu1.out", 1, bytes)],
            meta: Some(meta),
            ..TraceInput::default()
        }
    }

    fn kinds(r: &CheckReport) -> Vec<ProblemKind> {
        r.problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn a_file_holding_exactly_what_the_kernel_logged_is_clean() {
        for order in ORDERS {
            let b = records(order, 400);
            let len = b.len() as u64;
            let r = check_input(&trace(order, b, Some(len)));
            assert_eq!(r.problems, vec![], "{order}");
            assert_eq!(r.files[0].logged_bytes, Some(len));
            assert_eq!(r.exit_code(), KmemtraceExitCode::OK);
        }
    }

    /// The relay bug seen in real traces: a block of records read again and again. The seq
    /// going back is not a bare `seq_not_increasing` but the copy it starts, and the bytes too
    /// many are accounted for by it.
    #[test]
    fn a_block_of_888_bytes_read_three_times_is_records_read_twice() {
        for order in ORDERS {
            let clean = records(order, 400);
            // Records 101 (a free, at byte 3648) to 125: 888 bytes, then read twice more.
            let (start, end) = (50 * 72 + 48, 63 * 72);
            assert_eq!(end - start, 888);
            let mut b = clean[..end].to_vec();
            for _ in 0..2 {
                b.extend_from_slice(&clean[start..end]);
            }
            b.extend_from_slice(&clean[end..]);
            let logged = clean.len() as u64;
            let r = check_input(&trace(order, b.clone(), Some(logged)));
            assert_eq!(
                kinds(&r),
                [ProblemKind::RecordsReadTwice, ProblemKind::RecordsReadTwice],
                "{order}: {:#?}",
                r.problems
            );
            let (account, copy) = (&r.problems[0], &r.problems[1]);
            assert_eq!((account.offset, account.length), (4536, Some(1776)));
            assert_eq!(
                account.message,
                "cpu1.out holds 16 176 bytes, the kernel logged 14 400: 1 776 bytes more \
                 (records read twice at byte 4536)"
            );
            assert_eq!((copy.offset, copy.length), (4536, Some(1776)));
            assert_eq!(
                copy.message,
                "records read twice: 1 776 bytes repeat those from byte 3648 \
                 (seq 101 after seq 125)"
            );
            assert_eq!(r.files[0].problems, 2);
            assert_eq!(r.files[0].records, 450);
            assert_eq!(r.exit_code(), KmemtraceExitCode::PROBLEMS_FOUND);
            // Without logged_bytes the content still names the copy.
            let r = check_input(&trace(order, b, None));
            assert_eq!(kinds(&r), [ProblemKind::RecordsReadTwice], "{order}");
        }
    }

    /// Equal sequence numbers whose records differ are not a copy.
    #[test]
    fn a_seq_going_back_to_different_bytes_stays_seq_not_increasing() {
        for order in ORDERS {
            let clean = records(order, 40);
            let mut b = clean.clone();
            let mut again = clean[72..144].to_vec();
            again[20] ^= 0x10; // the allocation's ptr
            b.extend_from_slice(&again);
            let r = check_input(&trace(order, b, None));
            assert_eq!(kinds(&r), [ProblemKind::SeqNotIncreasing], "{order}");
            assert_eq!(r.problems[0].message, "seq 2 after seq 39");
        }
    }

    /// The relay bug seen in real traces: one sub-buffer's worth of zeros after the last record,
    /// which used to be a bad record.
    #[test]
    fn a_file_ending_in_524288_zero_bytes_is_zero_filled() {
        for order in ORDERS {
            let clean = records(order, 400);
            let mut b = clean.clone();
            b.resize(clean.len() + 524_288, 0);
            let logged = clean.len() as u64;
            let r = check_input(&trace(order, b.clone(), Some(logged)));
            assert_eq!(
                kinds(&r),
                [ProblemKind::ZeroFilled, ProblemKind::ZeroFilled],
                "{order}: {:#?}",
                r.problems
            );
            assert_eq!(
                r.problems[0].message,
                "cpu1.out holds 538 688 bytes, the kernel logged 14 400: 524 288 bytes more \
                 (zero-filled at byte 14400)"
            );
            let zeros = &r.problems[1];
            assert_eq!((zeros.offset, zeros.length), (14400, Some(524_288)));
            assert_eq!(
                zeros.message,
                "zero-filled: 524 288 zero bytes where a record should start, to the end of the \
                 file"
            );
            assert_eq!(r.files[0].records, 400);
            assert_eq!(r.exit_code(), KmemtraceExitCode::PROBLEMS_FOUND);
            // Named from the content alone too, in place of the bad record.
            let r = check_input(&trace(order, b, None));
            assert_eq!(kinds(&r), [ProblemKind::ZeroFilled], "{order}");
        }
    }

    #[test]
    fn zeros_between_records_are_zero_filled_and_the_records_after_them_count() {
        for order in ORDERS {
            let clean = records(order, 400);
            let mut b = clean[..7200].to_vec();
            b.resize(7200 + 1000, 0);
            b.extend_from_slice(&clean[7200..]);
            let r = check_input(&trace(order, b, Some(clean.len() as u64)));
            assert_eq!(
                kinds(&r),
                [ProblemKind::ZeroFilled, ProblemKind::ZeroFilled],
                "{order}"
            );
            assert_eq!(
                (r.problems[1].offset, r.problems[1].length),
                (7200, Some(1000))
            );
            assert_eq!(r.files[0].records, 400);
        }
    }

    /// What is not a run of zeros where a record should start keeps its old name.
    #[test]
    fn zeros_shorter_than_a_record_or_after_garbage_stay_bad_records() {
        let order = ByteOrder::Little;
        let clean = records(order, 10);
        let mut short = clean.clone();
        short.resize(clean.len() + 23, 0);
        let r = check_input(&trace(order, short, None));
        assert_eq!(kinds(&r), [ProblemKind::PartialRecord]);
        let mut late = clean.clone();
        late.extend_from_slice(&[0xee; 5]);
        late.resize(clean.len() + 5000, 0);
        let r = check_input(&trace(order, late, None));
        assert_eq!(kinds(&r), [ProblemKind::BadRecord]);
        // Zeros, then garbage: the zeros are named, the garbage stays a bad record after them.
        let mut both = clean.clone();
        both.resize(clean.len() + 100, 0);
        both.extend_from_slice(&[0xee; 30]);
        let r = check_input(&trace(order, both, None));
        assert_eq!(kinds(&r), [ProblemKind::ZeroFilled, ProblemKind::BadRecord]);
        assert_eq!(r.problems[1].offset, clean.len() as u64 + 100);
        assert_eq!(
            r.problems[1].message,
            "bad_record: 30 bytes: event_id 238 type_id 238 event_size 61166 with 30 bytes left"
        );
    }

    #[test]
    fn a_truncated_file_is_bytes_missing() {
        for order in ORDERS {
            let clean = records(order, 400);
            let b = clean[..10_000].to_vec();
            let r = check_input(&trace(order, b, Some(clean.len() as u64)));
            // The copy stopped in the middle of a record.
            assert_eq!(
                kinds(&r),
                [ProblemKind::BytesMissing, ProblemKind::PartialRecord],
                "{order}"
            );
            let p = &r.problems[0];
            assert_eq!((p.offset, p.length), (10_000, Some(4400)));
            assert_eq!(
                p.message,
                "cpu1.out holds 10 000 bytes, the kernel logged 14 400: 4 400 bytes fewer \
                 (bytes missing)"
            );
            assert_eq!(r.exit_code(), KmemtraceExitCode::PROBLEMS_FOUND);
        }
    }

    #[test]
    fn bytes_too_many_that_nothing_explains_are_unaccounted() {
        for order in ORDERS {
            let clean = records(order, 400);
            let r = check_input(&trace(order, clean.clone(), Some(14_400 - 72)));
            assert_eq!(kinds(&r), [ProblemKind::BytesUnaccounted], "{order}");
            assert_eq!(r.problems[0].offset, 14_328);
            assert_eq!(
                r.problems[0].message,
                "cpu1.out holds 14 400 bytes, the kernel logged 14 328: 72 bytes more \
                 (not accounted for)"
            );
            // Zeros that make up only part of the difference do not explain it.
            let mut b = clean.clone();
            b.resize(clean.len() + 48, 0);
            let r = check_input(&trace(order, b, Some(14_400 - 72)));
            assert_eq!(
                kinds(&r),
                [ProblemKind::BytesUnaccounted, ProblemKind::ZeroFilled]
            );
            assert_eq!(
                r.problems[0].message,
                "cpu1.out holds 14 448 bytes, the kernel logged 14 328: 120 bytes more \
                 (not accounted for: zero-filled at byte 14400 account for 48)"
            );
        }
    }

    /// The accounting names the file, not its directory, in its message; the problem's file is
    /// the path as given.
    #[test]
    fn the_accounting_message_names_the_file_without_its_directory() {
        let order = ByteOrder::Big;
        let mut t = trace(order, records(order, 4), Some(0));
        t.files[0].name = "trace/cpu1.out".into();
        let r = check_input(&t);
        assert_eq!(r.problems[0].file, "trace/cpu1.out");
        assert!(
            r.problems[0]
                .message
                .starts_with("cpu1.out holds 144 bytes"),
            "{}",
            r.problems[0].message
        );
    }

    #[test]
    fn the_text_shows_the_logged_bytes_and_the_damage() {
        let order = ByteOrder::Little;
        let clean = records(order, 400);
        let mut b = clean.clone();
        b.resize(clean.len() + 524_288, 0);
        let text = check_input(&trace(order, b, Some(clean.len() as u64))).render_text();
        assert_eq!(
            text,
            "cpu1.out at byte 14400: cpu1.out holds 538 688 bytes, the kernel logged 14 400: \
             524 288 bytes more (zero-filled at byte 14400)\n\
             cpu1.out at byte 14400: zero-filled: 524 288 zero bytes where a record should \
             start, to the end of the file\n\
             cpu1.out: 538688 bytes (the kernel logged 14400), 400 records, little byte order, \
             seq 0..399, 2 problems\n\
             problems found\n"
        );
    }

    #[test]
    fn kinds_by_file_lists_each_kind_once_per_file() {
        let p = |file: &str, kind| Problem {
            file: file.into(),
            offset: 0,
            kind,
            length: None,
            message: String::new(),
        };
        let r = CheckReport {
            problems: vec![
                p("cpu1.out", ProblemKind::RecordsReadTwice),
                p("cpu1.out", ProblemKind::ZeroFilled),
                p("cpu1.out", ProblemKind::RecordsReadTwice),
                p("cpu0.out", ProblemKind::BadRecord),
            ],
            ..CheckReport::default()
        };
        assert_eq!(
            r.kinds_by_file(),
            vec![
                (
                    "cpu1.out".to_string(),
                    vec![ProblemKind::RecordsReadTwice, ProblemKind::ZeroFilled]
                ),
                ("cpu0.out".to_string(), vec![ProblemKind::BadRecord]),
            ]
        );
    }

    #[test]
    fn the_new_kinds_have_snake_case_names() {
        for (k, name) in [
            (ProblemKind::RecordsReadTwice, "records_read_twice"),
            (ProblemKind::ZeroFilled, "zero_filled"),
            (ProblemKind::BytesMissing, "bytes_missing"),
            (ProblemKind::BytesUnaccounted, "bytes_unaccounted"),
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), name);
        }
    }

    #[test]
    fn byte_counts_are_grouped_in_threes() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1 000"),
            (524_288, "524 288"),
            (1_049_096, "1 049 096"),
        ] {
            assert_eq!(grouped(n), s);
        }
    }
}
