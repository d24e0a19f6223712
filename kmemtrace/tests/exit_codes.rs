// SPDX-License-Identifier: GPL-2.0-only
//! The exit-code tables of the documentation are the code's: `README.md` and the top of
//! `main.rs` hold the table of `KmemtraceExitCode::TABLE`, row for row.

use kmemtrace::KmemtraceExitCode;

/// The rows `(code, name, meaning)` of the markdown table whose header is
/// `| code | name | meaning |` in `text` (each line first stripped of `prefix`).
fn table(text: &str, prefix: &str) -> Vec<(i32, String, String)> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_prefix(prefix).unwrap_or(l).trim())
        .collect();
    let start = lines
        .iter()
        .position(|l| *l == "| code | name | meaning |")
        .expect("a `| code | name | meaning |` table");
    lines[start + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "{l}");
            (
                cells[0].parse().unwrap_or_else(|_| panic!("{l}")),
                cells[1].trim_matches('`').to_string(),
                cells[2].to_string(),
            )
        })
        .collect()
}

fn expected() -> Vec<(i32, String, String)> {
    KmemtraceExitCode::TABLE
        .iter()
        .map(|(c, n, m)| (*c, n.to_string(), m.to_string()))
        .collect()
}

fn assert_same(what: &str, found: Vec<(i32, String, String)>) {
    assert_eq!(
        found,
        expected(),
        "{what}'s exit-code table is not the code's; it should read:\n{}",
        KmemtraceExitCode::markdown_table()
    );
}

#[test]
fn readme_exit_code_table_is_the_codes() {
    let readme = include_str!("../README.md");
    assert_same("kmemtrace/README.md", table(readme, ""));
}

#[test]
fn main_rs_exit_code_table_is_the_codes() {
    let main = include_str!("../src/main.rs");
    assert_same("kmemtrace/src/main.rs", table(main, "//!"));
}
