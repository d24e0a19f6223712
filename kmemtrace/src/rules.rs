// SPDX-License-Identifier: GPL-2.0-only
//! Which free of which allocation is an error: one table, by slab allocator (the kernel version
//! decides which allocators exist), allocation family and free family. `docs/report-schema.md`
//! prints the same table; `rules::tests` checks that they agree.
//!
//! Linux documents that "objects allocated by `kmem_cache_alloc` can be freed with
//! `kmem_cache_free`, `kfree` or `kvfree`" (`Documentation/core-api/memory-allocation.rst`, 6.4
//! and later); SLAB and SLUB always allowed it. SLOB (removed in 6.4) did not: its `kfree()` reads a
//! size header in front of the object, which only `kmalloc()` writes. Nothing allows kmalloc memory
//! to be freed with `kmem_cache_free()`, or slab memory with the page allocator's free, or the reverse.

use crate::abi::{AllocType, TYPE_COUNT};
use serde::{Deserialize, Serialize};

/// A slab allocator, named as debugfs `kmemtrace/allocator` and `meta.json` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Allocator {
    /// SLAB (Linux 2.6.23 to 6.7).
    #[serde(rename = "slab")]
    Slab,
    /// SLUB (2.6.22 onwards; the only allocator since 6.8).
    #[serde(rename = "slub")]
    Slub,
    /// SLUB built for a minimal footprint, `CONFIG_SLUB_TINY` (6.2 onwards).
    #[serde(rename = "slub-tiny")]
    SlubTiny,
    /// SLOB (up to 6.3).
    #[serde(rename = "slob")]
    Slob,
}

impl Allocator {
    /// Every allocator.
    pub const ALL: [Allocator; 4] = [
        Allocator::Slab,
        Allocator::Slub,
        Allocator::SlubTiny,
        Allocator::Slob,
    ];

    /// The allocator assumed when the trace does not say: SLUB, the only one since Linux 6.8.
    pub const ASSUMED: Allocator = Allocator::Slub;

    /// The name (`slab`, `slub`, `slub-tiny`, `slob`).
    pub fn name(self) -> &'static str {
        match self {
            Allocator::Slab => "slab",
            Allocator::Slub => "slub",
            Allocator::SlubTiny => "slub-tiny",
            Allocator::Slob => "slob",
        }
    }

    /// The kernels that have it.
    pub fn kernels(self) -> &'static str {
        match self {
            Allocator::Slab => "2.6.23 to 6.7",
            Allocator::Slub => "2.6.22 onwards",
            Allocator::SlubTiny => "6.2 onwards",
            Allocator::Slob => "2.6.16 to 6.3",
        }
    }

    /// From a name, `None` when unknown.
    pub fn parse(name: &str) -> Option<Allocator> {
        Allocator::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Every name, for messages.
    pub fn names() -> Vec<&'static str> {
        Allocator::ALL.iter().map(|a| a.name()).collect()
    }
}

impl std::fmt::Display for Allocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule that makes a free an error (a finding), or lets it pass but counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `kmem_cache_alloc()` then `kfree()`: allowed (counted in `cache_objects_kfreed`) except
    /// on SLOB, where it is also a mismatched free.
    CacheObjectKfreed,
    /// `kmalloc()` then `kmem_cache_free()`.
    KmallocCacheFreed,
    /// Slab memory (`kmalloc`, `kmem_cache_alloc`) freed with the page allocator's free.
    SlabFreedAsPages,
    /// Page allocator memory freed with `kfree()` or `kmem_cache_free()`.
    PagesFreedAsSlab,
}

impl Rule {
    /// The rule's name as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::CacheObjectKfreed => "kmem_cache_object_kfreed",
            Rule::KmallocCacheFreed => "kmalloc_freed_by_kmem_cache_free",
            Rule::SlabFreedAsPages => "slab_memory_freed_as_pages",
            Rule::PagesFreedAsSlab => "pages_freed_as_slab_memory",
        }
    }

    /// What it means, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Rule::CacheObjectKfreed => {
                "a kmem_cache_alloc() object freed with kfree(): allowed on SLAB and SLUB, an error on SLOB (its kfree() reads a size header only kmalloc() writes)"
            }
            Rule::KmallocCacheFreed => {
                "kmalloc() memory freed with kmem_cache_free(): an error on every allocator"
            }
            Rule::SlabFreedAsPages => {
                "slab memory freed with the page allocator's free: an error on every allocator"
            }
            Rule::PagesFreedAsSlab => {
                "page allocator memory freed with kfree() or kmem_cache_free(): an error on every allocator"
            }
        }
    }
}

/// What a free of an allocation is, under one allocator's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The rule that applies (`None`: the allocation's own free).
    pub rule: Option<Rule>,
    /// Whether it is an error (a mismatched free).
    pub error: bool,
}

const OWN: Verdict = Verdict {
    rule: None,
    error: false,
};

const fn finding(rule: Rule) -> Verdict {
    Verdict {
        rule: Some(rule),
        error: true,
    }
}

/// The verdict on freeing an allocation of family `alloc` with a free of family `free` under
/// `allocator`: the whole table.
pub const fn verdict(allocator: Allocator, alloc: AllocType, free: AllocType) -> Verdict {
    use AllocType::*;
    match (alloc, free) {
        (Kmalloc, Kmalloc) | (KmemCache, KmemCache) | (Pages, Pages) => OWN,
        (KmemCache, Kmalloc) => Verdict {
            rule: Some(Rule::CacheObjectKfreed),
            error: matches!(allocator, Allocator::Slob),
        },
        (Kmalloc, KmemCache) => finding(Rule::KmallocCacheFreed),
        (Kmalloc | KmemCache, Pages) => finding(Rule::SlabFreedAsPages),
        (Pages, Kmalloc | KmemCache) => finding(Rule::PagesFreedAsSlab),
    }
}

/// The table for one allocator, indexed by `[alloc type_id][free type_id]`, for the replay.
pub fn table(allocator: Allocator) -> [[Verdict; TYPE_COUNT]; TYPE_COUNT] {
    let mut t = [[OWN; TYPE_COUNT]; TYPE_COUNT];
    for a in AllocType::ALL {
        for f in AllocType::ALL {
            t[a as usize][f as usize] = verdict(allocator, a, f);
        }
    }
    t
}

/// The free functions of a family, for the printed table.
fn free_name(t: AllocType) -> &'static str {
    match t {
        AllocType::Kmalloc => "kfree",
        AllocType::KmemCache => "kmem_cache_free",
        AllocType::Pages => "page free",
    }
}

/// The rules table as markdown: one row per allocator and pair of families that is not the
/// allocation's own free (those are always right).
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| allocator | kernels | allocated with | freed with | verdict | rule |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for al in Allocator::ALL {
        for a in AllocType::ALL {
            for f in AllocType::ALL {
                let v = verdict(al, a, f);
                let Some(rule) = v.rule else { continue };
                let what = if v.error {
                    "finding"
                } else {
                    "allowed, counted"
                };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {what} | `{}` |\n",
                    al.name(),
                    al.kernels(),
                    a.name(),
                    free_name(f),
                    rule.name()
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllocType::*;

    #[test]
    fn only_slob_forbids_kfree_of_a_cache_object() {
        for al in Allocator::ALL {
            let v = verdict(al, KmemCache, Kmalloc);
            assert_eq!(v.rule, Some(Rule::CacheObjectKfreed));
            assert_eq!(v.error, al == Allocator::Slob, "{al}");
        }
    }

    #[test]
    fn the_other_cross_family_frees_are_findings_everywhere_and_own_frees_never() {
        for al in Allocator::ALL {
            for a in AllocType::ALL {
                for f in AllocType::ALL {
                    let v = verdict(al, a, f);
                    if a == f {
                        assert_eq!(v, OWN);
                    } else if (a, f) != (KmemCache, Kmalloc) {
                        assert!(v.error, "{al} {a:?} {f:?}");
                    }
                }
            }
        }
        assert!(!table(Allocator::Slub)[1][0].error);
        assert!(table(Allocator::Slob)[1][0].error);
    }

    #[test]
    fn names_round_trip() {
        for a in Allocator::ALL {
            assert_eq!(Allocator::parse(a.name()), Some(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
        }
        assert_eq!(Allocator::parse("SLUB"), None);
    }

    /// The schema document prints the table this module holds.
    #[test]
    fn the_schema_document_has_this_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report-schema.md"),
        )
        .unwrap();
        assert!(
            doc.contains(&markdown_table()),
            "docs/report-schema.md lacks the rules table; it is:\n{}",
            markdown_table()
        );
    }
}
