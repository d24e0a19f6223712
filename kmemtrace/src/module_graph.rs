// SPDX-License-Identifier: GPL-2.0-only
//! Test-only: the crate's modules and which modules each one names, read from its source files,
//! for the tests that keep the module graph free of circles ([`assert_no_circles`]) and
//! `docs/architecture.md` listing every file ([`rows`]: its convention is stated there, under
//! "One line per module"). Both crates use it (`harness/src/lib.rs` includes this file by `#[path]`).
//!
//! A module is a file under `src/` (`scan.rs` is `scan`) or a folder (`analyze/`, with its
//! `mod.rs` and every file in it, is the one module `analyze`: a folder is one unit and its
//! files may name each other freely). `lib.rs` and `main.rs` are the crate roots, not modules:
//! they declare and re-export. A file named `tests.rs` and everything from a file's first
//! `#[cfg(test)]` line on are test code and are left out (tests may name any module).
//!
//! A module names another when its code (not a `//` comment line) has `crate::other`,
//! `crate::{other, …}`, or at the top of a file `super::other` (for a file in a folder,
//! `super::` is its own folder). A name the root re-exports (`crate::Report`, from
//! `pub use report::{Report, …}` in `lib.rs`) names the module it comes from. Reading text,
//! not parsing Rust, is enough here because every cross-module path in these crates starts
//! with `crate::` or `super::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it names (itself excluded).
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules of the crate whose `src/` is `src`, each with its files (the path under `src/`,
/// `/`-separated) and their text.
pub fn modules(src: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .expect("src/ is readable")
        .map(|e| e.expect("src/ entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(&p)
                .expect("module folder is readable")
                .map(|e| e.expect("folder entry").path())
                .filter(|f| f.extension().is_some_and(|e| e == "rs"))
                .collect();
            files.sort();
            if files.is_empty() {
                continue; // not a module (insta's snapshots/)
            }
            for f in files {
                let file = f.file_name().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&f).expect("source file is readable");
                m.entry(name.clone())
                    .or_default()
                    .push((format!("{name}/{file}"), text));
            }
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "lib" && stem != "main" {
                let text = std::fs::read_to_string(&p).expect("source file is readable");
                m.entry(stem.to_string()).or_default().push((name, text));
            }
        }
    }
    m
}

/// The code of a file the graph reads: up to its first `#[cfg(test)]` line, `//` comment lines
/// dropped; nothing of a `tests.rs`.
fn code(file: &str, text: &str) -> String {
    if file == "tests.rs" || file.ends_with("/tests.rs") {
        return String::new();
    }
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first segment of each path `prefix` starts in `code`: `b` for `prefix::b::c`, `b` and
/// `d` for `prefix::{b::c, d}`.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix).map(|i| from + i) {
        let before = code[..i].chars().next_back();
        let after = &code[i + prefix.len()..];
        from = i + prefix.len();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue; // `kmemtrace::crate`-like or `super::super::`: not ours
        }
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the group, up to its closing brace.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || c == '{' {
                    item.push(c);
                }
            }
            out.push(item);
        } else {
            out.push(after.chars().take_while(|&c| is_ident(c)).collect());
        }
    }
    out.into_iter()
        .map(|s| {
            s.trim()
                .chars()
                .take_while(|&c| is_ident(c))
                .collect::<String>()
        })
        .filter(|s| !s.is_empty() && s != "self" && s != "super")
        .collect()
}

/// The names `lib.rs` re-exports (`pub use report::{Report, …}`) and the module each comes from.
pub fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(path) = stmt.split_once("pub use ").map(|(_, p)| p) else {
            continue;
        };
        let Some((module, names)) = path.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',') {
            // `A as B` exports B; `a::B` exports B.
            let n = n.split(" as ").last().unwrap_or(n).trim();
            let n = n.rsplit("::").next().unwrap_or(n);
            if !n.is_empty() {
                m.insert(n.to_string(), module.trim().to_string());
            }
        }
    }
    m
}

/// The module graph of the crate whose `src/` is `src`.
pub fn graph(src: &Path) -> Graph {
    let mods = modules(src);
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let re = reexports(&lib);
    let resolve = |name: &str| -> Option<String> {
        if mods.contains_key(name) {
            Some(name.to_string())
        } else {
            re.get(name).cloned()
        }
    };
    let mut g = Graph::new();
    for (module, files) in &mods {
        let to = g.entry(module.clone()).or_default();
        for (file, text) in files {
            let code = code(file, text);
            let mut names = first_segments(&code, "crate::");
            // `super::` of a file in a folder (not its mod.rs) is the folder: itself.
            if !file.contains('/') || file.ends_with("/mod.rs") {
                names.extend(first_segments(&code, "super::"));
            }
            to.extend(
                names
                    .iter()
                    .filter_map(|n| resolve(n))
                    .filter(|n| n != module),
            );
        }
    }
    g
}

/// Every circle a depth-first walk meets (one per edge back to a module on the walk), each as
/// the modules around it, the first repeated at the end.
pub fn circles(g: &Graph) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    fn walk<'a>(
        g: &'a Graph,
        m: &'a str,
        state: &mut BTreeMap<&'a str, State>,
        path: &mut Vec<&'a str>,
        out: &mut Vec<Vec<String>>,
    ) {
        state.insert(m, State::OnPath);
        path.push(m);
        for n in g.get(m).into_iter().flatten() {
            match state.get(n.as_str()).copied().unwrap_or(State::New) {
                State::New => walk(g, n, state, path, out),
                State::OnPath => {
                    let at = path.iter().position(|p| p == n).expect("on the path");
                    let mut c: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                    c.push(n.clone());
                    out.push(c);
                }
                State::Done => {}
            }
        }
        path.pop();
        state.insert(m, State::Done);
    }
    let mut state = BTreeMap::new();
    let mut out = Vec::new();
    for m in g.keys() {
        if state.get(m.as_str()).copied().unwrap_or(State::New) == State::New {
            walk(g, m, &mut state, &mut Vec::new(), &mut out);
        }
    }
    out
}

/// Every `.rs` file under `src` (recursively), as its `/`-separated path under `src/`.
pub fn files(src: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, under: &str, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("source folder is readable") {
            let p = e.expect("folder entry").path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, &format!("{under}{name}/"), out);
            } else if name.ends_with(".rs") {
                out.insert(format!("{under}{name}"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(src, "", &mut out);
    out
}

/// The files the table under the `### {heading}` line of `doc` (docs/architecture.md) has rows
/// for: the backticked words ending in `.rs` in each row's first cell.
pub fn rows(doc: &str, heading: &str) -> BTreeSet<String> {
    let title = format!("### {heading}");
    doc.lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix('|')?.split('|').next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|w| w.ends_with(".rs"))
        .map(String::from)
        .collect()
}

/// Panics naming every circle of the crate whose `src/` is `src`.
pub fn assert_no_circles(src: &Path) {
    let g = graph(src);
    let c = circles(&g);
    assert!(
        c.is_empty(),
        "import circles in {} (a → b: a names crate::b):\n{}",
        src.display(),
        c.iter()
            .map(|c| format!("  {}", c.join(" → ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate this file is compiled into has no circle.
    #[test]
    fn no_import_circles() {
        assert_no_circles(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    }

    /// docs/architecture.md has a row for every file of the crate this file is compiled into
    /// (under `### kmemtrace/src` or `### harness/src`), and no row for a file that is gone.
    #[test]
    fn every_file_has_a_row() {
        let krate = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc_path = krate.join("../docs/architecture.md");
        let doc = std::fs::read_to_string(&doc_path).expect("docs/architecture.md is readable");
        let heading = format!("{}/src", krate.file_name().unwrap().to_string_lossy());
        let have = files(&krate.join("src"));
        let rows = rows(&doc, &heading);
        let missing: Vec<_> = have.difference(&rows).collect();
        let gone: Vec<_> = rows.difference(&have).collect();
        assert!(
            missing.is_empty() && gone.is_empty(),
            "{}, table under `### {heading}`: no row for {missing:?}; rows for files that are not \
             there: {gone:?}",
            doc_path.display()
        );
    }

    #[test]
    fn rows_are_read_from_the_first_cell_under_their_heading() {
        let doc = "### a/src\n\n| module | job |\n| --- | --- |\n| `x.rs`, `f/y.rs` | `z.rs` |\n\
                   | `w.rs` | w |\n\n### b/src\n| `v.rs` | v |\n";
        let r = rows(doc, "a/src");
        assert_eq!(r.iter().collect::<Vec<_>>(), ["f/y.rs", "w.rs", "x.rs"]);
        assert_eq!(rows(doc, "b/src").len(), 1);
        assert!(rows(doc, "c/src").is_empty());
    }

    #[test]
    fn paths_and_groups_give_their_first_segments() {
        let code = "use crate::{error::Error, glob::{self, Glob}, Report};\n\
                    let x = crate::scan::decode(); kmemtrace::crate_x; super::super::y;\n\
                    use super::merge;";
        assert_eq!(
            first_segments(code, "crate::"),
            ["error", "glob", "Report", "scan"]
        );
        assert_eq!(first_segments(code, "super::"), ["merge"]);
    }

    #[test]
    fn reexports_name_their_module() {
        let re = reexports("pub mod a;\n/// Doc.\npub use report::{\n    Report, Summary as S,\n};\npub use analyze::analyze;\nuse std::path::Path;");
        assert_eq!(re.get("Report").map(String::as_str), Some("report"));
        assert_eq!(re.get("S").map(String::as_str), Some("report"));
        assert_eq!(re.get("analyze").map(String::as_str), Some("analyze"));
        assert_eq!(re.get("Path"), None);
    }

    /// The rules of the module doc on a small crate: a folder is one module whose files name
    /// each other and whose `mod.rs`'s `super::` is the root, a root re-export names its module,
    /// comments and test code name nothing.
    #[test]
    fn a_crate_on_disk_gives_its_graph() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w(
            "lib.rs",
            "mod a;\nmod b;\nmod f;\npub use b::{Bee, other};\n",
        );
        w(
            "a.rs",
            "use crate::Bee;\n// crate::c::Gone\n#[cfg(test)]\nmod tests { use crate::f::X; }\n",
        );
        w("b.rs", "use super::c::C;\nfn x() { crate::f::g(); }\n");
        w("c.rs", "pub struct C;\n");
        w("f/mod.rs", "mod g;\nuse super::a;\nuse g::G;\n");
        w("f/g.rs", "use super::G2;\nuse crate::{c, f::X};\n");
        w("f/tests.rs", "use crate::b;\n");
        w("snapshots/x.snap", "");
        let g = graph(d.path());
        let to = |m: &str| g[m].iter().map(String::as_str).collect::<Vec<_>>();
        assert_eq!(g.keys().collect::<Vec<_>>(), ["a", "b", "c", "f"]);
        assert_eq!(to("a"), ["b"]);
        assert_eq!(to("b"), ["c", "f"]);
        assert_eq!(to("c"), Vec::<&str>::new());
        assert_eq!(to("f"), ["a", "c"]);
        assert_eq!(circles(&g), [["a", "b", "f", "a"]]);
    }

    #[test]
    fn circles_are_found_and_named() {
        let g: Graph = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(m, to)| (m.to_string(), to.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(circles(&g), [["a", "b", "c", "a"]]);
        let mut g = g;
        g.get_mut("c").unwrap().clear();
        assert!(circles(&g).is_empty());
    }
}
