// SPDX-License-Identifier: GPL-2.0-only
//! Manual pages and shell completions of the `kmemtrace` and `kmt` commands, made from their
//! clap definitions, so that `--help`, the man page and the completions cannot disagree.

use std::io::{self, Write};

/// A man page section of our own after the options: a title and `(term, text)` entries.
pub struct Section {
    /// The section's title, e.g. `EXIT STATUS`.
    pub title: &'static str,
    /// Each entry's term (`0`, `KMT_LOG`) and its text.
    pub items: Vec<(String, String)>,
}

/// `text` made safe for roff: backslashes and minus signs escaped, a leading dot or quote
/// neutralised, backquotes dropped (the sources use them for code).
fn roff(text: &str) -> String {
    let t = text
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('`', "");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The man page of `cmd` (section 1): name, synopsis, description, options, subcommands, then
/// `extra`, then the version.
pub fn man_page(cmd: clap::Command, extra: &[Section]) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out)?;
    }
    for s in extra {
        writeln!(out, ".SH \"{}\"", s.title)?;
        for (term, text) in &s.items {
            writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(text))?;
        }
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The man page of `cmd`'s subcommand `name`, as `<cmd>-<name>(1)`; `None` when there is no such
/// subcommand.
pub fn subcommand_man_page(
    cmd: &clap::Command,
    name: &str,
    extra: &[Section],
) -> Option<io::Result<Vec<u8>>> {
    let sub = cmd.find_subcommand(name)?.clone();
    let full = format!("{}-{}", cmd.get_name(), sub.get_name());
    let version = cmd.get_version().unwrap_or_default().to_string();
    Some(man_page(sub.name(full).version(version), extra))
}

/// The completion script of `cmd` for `shell`.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .version("1.2")
            .about("A demo")
            .subcommand(clap::Command::new("run").about("Run it"))
    }

    #[test]
    fn the_page_has_our_sections_escaped() {
        let page = man_page(
            demo(),
            &[Section {
                title: "EXIT STATUS",
                items: vec![("2".into(), ".bad `--flag` \\ input".into())],
            }],
        )
        .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH demo 1"));
        assert!(
            page.contains(".SH \"EXIT STATUS\"\n.TP\n\\fB2\\fR\n\\&.bad \\-\\-flag \\e input\n")
        );
        assert!(page.contains("run"));
        let sub =
            String::from_utf8(subcommand_man_page(&demo(), "run", &[]).unwrap().unwrap()).unwrap();
        assert!(sub.contains(".TH demo-run 1"), "{sub}");
        assert!(subcommand_man_page(&demo(), "nosuch", &[]).is_none());
    }

    #[test]
    fn completions_name_the_command() {
        let bash = String::from_utf8(completions(demo(), clap_complete::Shell::Bash)).unwrap();
        assert!(bash.contains("_demo()"));
    }
}
