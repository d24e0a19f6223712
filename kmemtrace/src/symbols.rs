// SPDX-License-Identifier: GPL-2.0-only
//! Call-site symbolisation from `/proc/kallsyms` or `System.map` text (`ADDR TYPE NAME [MODULE]`),
//! and the rules for reading a symbol's name: [`plain_name`] (ppc64 ELFv1's leading dot) and
//! [`base_name`] (that and the compiler's clone suffixes), the one definition the call-site
//! filter, the diff, `--group-by caller` ([`crate::callers`]), the page-use table
//! ([`crate::pageuse`]) and the chart's tracer rows ([`crate::plot`]) use.

/// A sorted address table of text symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    addrs: Vec<u64>,
    names: Vec<Box<str>>,
}

impl Symbols {
    /// Parse kallsyms or System.map text. Lines that do not parse are skipped, as are symbols
    /// at address 0 (kallsyms read with `kptr_restrict` set). Text symbols (`t T w W`) are used
    /// when there are any, otherwise every symbol.
    pub fn parse(text: &str) -> Self {
        let mut all = Vec::new();
        let mut text_syms = Vec::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(a), Some(t), Some(n)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(a.trim_start_matches("0x"), 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            if matches!(t, "t" | "T" | "w" | "W") {
                text_syms.push((addr, n));
            }
            all.push((addr, n));
        }
        let mut v = if text_syms.is_empty() { all } else { text_syms };
        v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        v.dedup_by_key(|e| e.0);
        Symbols {
            addrs: v.iter().map(|e| e.0).collect(),
            names: v.iter().map(|e| e.1.into()).collect(),
        }
    }

    /// Build from `(address, name)` pairs.
    pub fn from_pairs<S: AsRef<str>>(pairs: impl IntoIterator<Item = (u64, S)>) -> Self {
        let text: String = pairs
            .into_iter()
            .map(|(a, n)| format!("{a:016x} T {}\n", n.as_ref()))
            .collect();
        Self::parse(&text)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The function containing `addr` and the offset into it (binary search for the last symbol
    /// at or below `addr`).
    pub fn resolve(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.addrs.partition_point(|a| *a <= addr).checked_sub(1)?;
        Some((&self.names[i], addr - self.addrs[i]))
    }

    /// `name+0xoff` for `addr`, or `None` when below the first symbol.
    pub fn describe(&self, addr: u64) -> Option<String> {
        self.resolve(addr).map(|(n, o)| format!("{n}+{o:#x}"))
    }

    /// Iterate `(address, name)` in address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str)> {
        self.addrs
            .iter()
            .copied()
            .zip(self.names.iter().map(|n| &**n))
    }
}

/// The name a filter matches: ppc64 ELFv1 dot-symbols (`.kmalloc`) match without their dot.
pub fn plain_name(name: &str) -> &str {
    name.strip_prefix('.')
        .filter(|n| !n.is_empty())
        .unwrap_or(name)
}

/// `name` without ppc64's leading dot and the compiler's clone suffixes: the part before the
/// first `.` of what is left (`kmalloc_array_noprof.constprop.0` → `kmalloc_array_noprof`,
/// `.kmemdup` → `kmemdup`, `foo.isra.0.cold` → `foo`). What is left after the dot when it starts
/// with a dot itself (`.`, `..x`) is kept whole (`.`, `.x`): never an empty name.
pub fn base_name(name: &str) -> &str {
    let n = plain_name(name);
    match n.find('.') {
        Some(0) | None => n,
        Some(i) => &n[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_binary_search() {
        let s = Symbols::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t foo\nffffffff81000200 T bar [mod]\n\
             ffffffff82000000 D some_data\n0000000000000000 T zeroed\ngarbage line\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.resolve(0xffffffff81000150), Some(("foo", 0x50)));
        assert_eq!(s.resolve(0xffffffff81000200), Some(("bar", 0)));
        assert_eq!(
            s.describe(0xffffffff81000000).as_deref(),
            Some("_stext+0x0")
        );
        assert_eq!(s.resolve(0x10), None);
        assert_eq!(plain_name(".kmalloc"), "kmalloc");
        assert_eq!(plain_name("."), ".");
    }

    #[test]
    fn clone_suffixes_and_dots_are_looked_through() {
        assert_eq!(
            base_name("kmalloc_array_noprof.constprop.0"),
            "kmalloc_array_noprof"
        );
        assert_eq!(base_name(".kmemdup"), "kmemdup");
        assert_eq!(base_name("foo.isra.0.cold"), "foo");
        assert_eq!(base_name("relay_open_buf.part.0"), "relay_open_buf");
        assert_eq!(base_name("."), ".");
        assert_eq!(base_name("..x.cold"), ".x.cold");
        assert_eq!(base_name(""), "");
    }
}
