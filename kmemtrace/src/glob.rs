// SPDX-License-Identifier: GPL-2.0-only
//! A tiny glob matcher for call-site filters: `*` (any run), `?` (one character),
//! `[abc]`/`[a-z]`/`[!a]` (a set), `\x` (a literal x). Matching is on whole names.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Set {
        neg: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    toks: Vec<Tok>,
}

impl Glob {
    /// Compile `pattern`; an unclosed `[` or a trailing `\` is an error.
    pub fn new(pattern: &str) -> Result<Self> {
        let mut toks = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                '\\' => Tok::Lit(it.next().ok_or_else(|| Error::Glob(pattern.into()))?),
                '[' => {
                    let neg = matches!(it.peek(), Some('!') | Some('^'));
                    if neg {
                        it.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = it.next().ok_or_else(|| Error::Glob(pattern.into()))?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if it.peek() == Some(&'-') {
                            it.next();
                            match it.next() {
                                Some(']') => {
                                    ranges.push((c, c));
                                    ranges.push(('-', '-'));
                                    break;
                                }
                                Some(hi) => ranges.push((c, hi)),
                                None => return Err(Error::Glob(pattern.into())),
                            }
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    Tok::Set { neg, ranges }
                }
                c => Tok::Lit(c),
            });
        }
        Ok(Glob {
            pattern: pattern.into(),
            toks,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        // Iterative matcher with single-star backtracking: linear-ish, never exponential.
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if ti < self.toks.len() {
                match &self.toks[ti] {
                    Tok::Star => {
                        star = Some((ti, si));
                        ti += 1;
                        continue;
                    }
                    t if one(t, s[si]) => {
                        ti += 1;
                        si += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            }
        }
        self.toks[ti..].iter().all(|t| *t == Tok::Star)
    }
}

fn one(t: &Tok, c: char) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::Any => true,
        Tok::Set { neg, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *neg,
        Tok::Star => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = Glob::new("kmemtrace_selftest_*").unwrap();
        assert!(g.is_match("kmemtrace_selftest_run"));
        assert!(g.is_match("kmemtrace_selftest_"));
        assert!(!g.is_match("x_kmemtrace_selftest_run"));
        assert!(Glob::new("*alloc*").unwrap().is_match("__kmalloc_node"));
        assert!(Glob::new("a?c").unwrap().is_match("abc"));
        assert!(!Glob::new("a?c").unwrap().is_match("ac"));
        assert!(Glob::new("[a-c]x[!y]").unwrap().is_match("bxz"));
        assert!(!Glob::new("[a-c]x[!y]").unwrap().is_match("bxy"));
        assert!(Glob::new("a\\*").unwrap().is_match("a*"));
        assert!(Glob::new("*a*b*c").unwrap().is_match("xxaxxbxxbc"));
        assert!(Glob::new("[").is_err());
        assert!(Glob::new("\\").is_err());
    }
}
