// SPDX-License-Identifier: GPL-2.0-only
//! The `--fail-on` grammar: a [`Threshold`] parsed from `[SCOPE:NAME:]FIELD:[+|-]AMOUNT[%]`,
//! displayed canonically, and judged against a [`Delta`] (the diff evaluates them,
//! [`crate::diff()`]).

use crate::delta::Delta;
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::report::{PageOrderRow, SiteStats, Summary, TypeRow};

/// Which direction of change a threshold is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `+N`: an increase beyond N.
    Up,
    /// `-N`: a decrease beyond N.
    Down,
    /// `N`: a change beyond N either way.
    Either,
}

/// What a threshold looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// A summary field.
    Summary,
    /// The call sites whose key (function name, or `0x…` address) matches the glob.
    Callsite(Glob),
    /// An allocator family (`kmalloc`, `kmem_cache`, `pages`).
    Type(String),
    /// A page order.
    Order(u32),
}

/// A parsed `--fail-on` expression: `[SCOPE:NAME:]FIELD:[+|-]AMOUNT[%]`.
///
/// It displays in a canonical form (no blanks, the amount as the shortest decimal that parses
/// back to it), which [`Threshold::parse`] reads back to the same threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given.
    pub expr: String,
    /// What it looks at.
    pub scope: Scope,
    /// The figure.
    pub field: String,
    /// Which way.
    pub direction: Direction,
    /// The amount (bytes or counts, or percent).
    pub amount: f64,
    /// Whether `amount` is a percentage of the base value.
    pub percent: bool,
}

/// The grammar, for error messages.
pub const THRESHOLD_GRAMMAR: &str = "FIELD:[+|-]N[%], callsite:GLOB:FIELD:[+|-]N[%], \
     type:kmalloc|kmem_cache|pages:FIELD:[+|-]N[%] or order:N:FIELD:[+|-]N[%] \
     (e.g. bytes_allocated:+5%, fragmentation_bytes:+1000, callsite:foo:bytes_allocated:+10%)";

impl Threshold {
    /// Parse a `--fail-on` expression, checking the field name against its scope's fields.
    pub fn parse(expr: &str) -> Result<Threshold> {
        let bad = |why: String| Error::Threshold {
            expr: expr.to_string(),
            why,
        };
        let mut parts = expr.rsplitn(3, ':');
        let amount = parts.next().unwrap_or_default().trim();
        let field = parts
            .next()
            .ok_or_else(|| bad(format!("expected {THRESHOLD_GRAMMAR}")))?
            .trim()
            .to_string();
        let (scope, known): (Scope, Vec<&str>) = match parts.next() {
            None => (Scope::Summary, Summary::FIELDS.to_vec()),
            Some(s) => {
                let (kind, name) = s
                    .split_once(':')
                    .ok_or_else(|| bad(format!("expected {THRESHOLD_GRAMMAR}")))?;
                match kind {
                    "callsite" => (
                        Scope::Callsite(Glob::new(name)?),
                        SiteStats::COMPARED.to_vec(),
                    ),
                    "type" => {
                        if !["kmalloc", "kmem_cache", "pages"].contains(&name) {
                            return Err(bad(format!(
                                "unknown type {name:?} (known: kmalloc, kmem_cache, pages)"
                            )));
                        }
                        (Scope::Type(name.to_string()), TypeRow::FIELDS.to_vec())
                    }
                    "order" => (
                        Scope::Order(
                            name.parse()
                                .map_err(|_| bad(format!("page order {name:?} is not a number")))?,
                        ),
                        PageOrderRow::FIELDS.to_vec(),
                    ),
                    k => {
                        return Err(bad(format!(
                            "unknown scope {k:?} (known: callsite, type, order)"
                        )))
                    }
                }
            }
        };
        if !known.contains(&field.as_str()) {
            return Err(bad(format!(
                "unknown field {field:?} here (known: {})",
                known.join(", ")
            )));
        }
        let (direction, rest) = match amount.as_bytes().first() {
            Some(b'+') => (Direction::Up, &amount[1..]),
            Some(b'-') => (Direction::Down, &amount[1..]),
            _ => (Direction::Either, amount),
        };
        let (percent, num) = match rest.strip_suffix('%') {
            Some(n) => (true, n),
            None => (false, rest),
        };
        // One sign at most: f64 parsing takes one of its own, and `+-0` (-0.0 >= 0) would pass.
        let num = num.trim();
        let amount: f64 = Some(num)
            .filter(|n| !n.starts_with(['+', '-']))
            .and_then(|n| n.parse().ok())
            .filter(|a: &f64| a.is_finite() && *a >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "threshold {amount:?} is not [+|-]N or [+|-]N% with N >= 0"
                ))
            })?;
        Ok(Threshold {
            expr: expr.to_string(),
            scope,
            field,
            direction,
            amount,
            percent,
        })
    }

    /// Whether `d` crosses the threshold: a significant change in the threshold's direction
    /// larger than its amount (a relative threshold on a base of 0 is crossed by any change).
    pub fn crossed_by(&self, d: &Delta) -> bool {
        let way = match self.direction {
            Direction::Up => d.delta > 0,
            Direction::Down => d.delta < 0,
            Direction::Either => d.delta != 0,
        };
        let size = if self.percent {
            d.relative.map_or(f64::INFINITY, |r| r.abs() * 100.0)
        } else {
            d.delta.unsigned_abs() as f64
        };
        d.significant && way && size > self.amount
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.scope {
            Scope::Summary => {}
            Scope::Callsite(g) => write!(f, "callsite:{}:", g.as_str())?,
            Scope::Type(t) => write!(f, "type:{t}:")?,
            Scope::Order(o) => write!(f, "order:{o}:")?,
        }
        let sign = match self.direction {
            Direction::Up => "+",
            Direction::Down => "-",
            Direction::Either => "",
        };
        let percent = if self.percent { "%" } else { "" };
        write!(f, "{}:{sign}{}{percent}", self.field, self.amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_reject_what_they_must() {
        let t = Threshold::parse("callsite:kmemtrace_selftest_*:bytes_allocated:+10%").unwrap();
        assert!(matches!(t.scope, Scope::Callsite(_)));
        assert_eq!(
            (t.direction, t.amount, t.percent),
            (Direction::Up, 10.0, true)
        );
        let t = Threshold::parse("fragmentation_bytes:1000").unwrap();
        assert_eq!(
            (t.direction, t.amount, t.percent),
            (Direction::Either, 1000.0, false)
        );
        let t = Threshold::parse("order:3:allocs:-2").unwrap();
        assert!(matches!(t.scope, Scope::Order(3)));
        for bad in [
            "bytes",
            "nosuchfield:+5%",
            "bytes_allocated:+x%",
            "bytes_allocated:+-5",
            "callsite:foo:allocs:+1",
            "type:slab:allocs:+1",
            "order:x:allocs:+1",
            "node:0:allocs:+1",
            "callsite:[:hits:+1",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    /// Found by reading while writing the threshold fuzz target: `+-0` passed (the float parser
    /// takes a sign of its own, and -0.0 >= 0), while `+-5` was refused.
    #[test]
    fn threshold_amount_takes_one_sign_only() {
        for bad in [
            "bytes_allocated:+-0",
            "bytes_allocated:- -0%",
            "bytes_allocated:++1",
            "bytes_allocated:-0x",
            "bytes_allocated:inf",
            "bytes_allocated:NaN%",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} must be rejected");
        }
        let t = Threshold::parse("bytes_allocated:-0").unwrap();
        assert_eq!((t.direction, t.amount), (Direction::Down, 0.0));
    }

    #[test]
    fn thresholds_display_canonically_and_parse_back() {
        for (expr, canonical) in [
            ("bytes_allocated:+5%", "bytes_allocated:+5%"),
            (" fragmentation_bytes : 1000 ", "fragmentation_bytes:1000"),
            ("callsite:a:b*:hits:-2.50", "callsite:a:b*:hits:-2.5"),
            (
                "type:pages:live_bytes:+ 1e3 %",
                "type:pages:live_bytes:+1000%",
            ),
            ("order:+3:allocs:0", "order:3:allocs:0"),
        ] {
            let t = Threshold::parse(expr).unwrap();
            assert_eq!(t.to_string(), canonical);
            let again = Threshold::parse(canonical).unwrap();
            assert_eq!(
                Threshold {
                    expr: t.expr.clone(),
                    ..again
                },
                t
            );
        }
    }
}
